"""One persisted breaker shared by real processes: exact counters, bounded trials, no wedging.

Recovery timeouts here are tiny real ones (0.2 s); every wait is a bounded poll.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reliactl.breaker import BreakerConfig, CircuitBreaker, CircuitState
from reliactl.errors import CircuitOpenError
from reliactl.state.sqlite import open_store

WORKER = r"""
import os, sys, time
from pathlib import Path
from reliactl.breaker import BreakerConfig, CircuitBreaker
from reliactl.errors import CircuitOpenError
from reliactl.state.sqlite import open_store

db, mode, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cfg = BreakerConfig(
    failure_threshold=int(os.environ.get("T_THRESHOLD", "1")),
    recovery_timeout=0.2,
    half_open_max_calls=int(os.environ.get("T_MAX_CALLS", "1")),
    trial_timeout=float(os.environ.get("T_TRIAL_TIMEOUT", "60")),
)
breaker = CircuitBreaker("shared", cfg, store=open_store(db))

def wait_for(path, limit=30.0):
    end = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > end:
            sys.exit("timed out waiting for " + str(path))
        time.sleep(0.005)

(out / f"ready-{os.getpid()}").touch()
wait_for(out / "go")
if mode == "fail":
    def failing():
        raise ValueError("down")
    for _ in range(int(os.environ["T_CALLS"])):
        try:
            breaker.call(failing)
        except ValueError:
            pass
elif mode == "flip":
    for i in range(int(os.environ["T_CALLS"])):
        breaker.trip(reason=f"trip {os.getpid()} {i}")
        breaker.close(reason=f"close {os.getpid()} {i}")
elif mode == "trial":
    def trial():
        (out / f"trial-{os.getpid()}").touch()
        wait_for(out / "release", limit=float(os.environ.get("T_HOLD", "30")))
        return "ok"
    try:
        breaker.call(trial)
    except CircuitOpenError:
        (out / f"rejected-{os.getpid()}").touch()
"""


def wait_until(predicate: Callable[[], bool], limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(mode: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "state.db"), mode, str(tmp_path)],
            env={**os.environ, **env},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def count(tmp_path: Path, prefix: str) -> int:
    return len(list(tmp_path.glob(prefix + "-*")))


def test_32_processes_x_20_failures_count_exactly_640(tmp_path: Path, spawn) -> None:
    procs = [spawn("fail", T_THRESHOLD="1000000", T_CALLS="20") for _ in range(32)]
    wait_until(lambda: count(tmp_path, "ready") == 32, limit=120)
    (tmp_path / "go").touch()
    for proc in procs:
        assert proc.wait(120) == 0
    record = open_store(tmp_path / "state.db").get("breaker", "shared")
    assert record is not None
    assert record["failures"] == 640
    assert record["calls"] == 640
    assert record["consecutive_failures"] == 640
    assert record["state"] == "closed"


def open_shared(tmp_path: Path, **cfg: float) -> CircuitBreaker:
    breaker = CircuitBreaker(
        "shared",
        BreakerConfig(failure_threshold=1, recovery_timeout=0.2, **cfg),  # type: ignore[arg-type]
        store=open_store(tmp_path / "state.db"),
    )
    breaker.admit().failure("opened by the test")
    assert breaker.state is CircuitState.OPEN
    return breaker


def test_20_concurrent_callers_run_exactly_max_calls_trials(tmp_path: Path, spawn) -> None:
    open_shared(tmp_path, half_open_max_calls=2)
    procs = [spawn("trial", T_MAX_CALLS="2") for _ in range(20)]
    wait_until(lambda: count(tmp_path, "ready") == 20, limit=120)
    time.sleep(0.25)  # past the 0.2 s recovery timeout
    (tmp_path / "go").touch()
    wait_until(lambda: count(tmp_path, "trial") + count(tmp_path, "rejected") == 20)
    assert count(tmp_path, "trial") == 2
    assert count(tmp_path, "rejected") == 18
    (tmp_path / "release").touch()
    for proc in procs:
        assert proc.wait(60) == 0
    record = open_store(tmp_path / "state.db").get("breaker", "shared")
    assert record is not None
    assert record["state"] == "closed"
    assert record["rejections"] == 18
    assert record["trials"] == {}


def test_a_trial_killed_with_sigkill_does_not_wedge_the_breaker(tmp_path: Path, spawn) -> None:
    breaker = open_shared(tmp_path, trial_timeout=3600)
    time.sleep(0.25)
    holder = spawn("trial", T_TRIAL_TIMEOUT="3600", T_HOLD="60")
    (tmp_path / "go").touch()
    wait_until(lambda: count(tmp_path, "trial") == 1)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "not yet: the trial is running")
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert breaker.call(lambda: "probe") == "probe"  # the dead owner's reservation is gone
    assert breaker.state is CircuitState.CLOSED


def test_a_hung_trial_reservation_expires(tmp_path: Path, spawn) -> None:
    """A stopped (alive, never reporting) trial holds its slot only until trial_timeout."""
    breaker = open_shared(tmp_path, trial_timeout=3.0)
    time.sleep(0.25)
    holder = spawn("trial", T_TRIAL_TIMEOUT="3", T_HOLD="60")
    (tmp_path / "go").touch()
    wait_until(lambda: count(tmp_path, "trial") == 1)
    holder.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "not yet")
        probes: list[str] = []

        def probe() -> bool:
            try:
                probes.append(breaker.call(lambda: "probe"))
            except CircuitOpenError:
                return False
            return True

        wait_until(probe, limit=20)
        assert probes == ["probe"]
        assert holder.poll() is None  # the holder is alive: its reservation expired
        assert breaker.state is CircuitState.CLOSED
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)


ROUNDS_WORKER = r"""
import os, sys, time
from pathlib import Path
from reliactl.breaker import BreakerConfig, CircuitBreaker
from reliactl.errors import CircuitOpenError
from reliactl.state.sqlite import open_store

db, out, rounds, max_calls = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = BreakerConfig(failure_threshold=1, recovery_timeout=0.05, half_open_max_calls=max_calls,
                    trial_timeout=60)
breaker = CircuitBreaker("shared", cfg, store=open_store(db))
pid = os.getpid()

def wait_for(path, limit=60.0):
    end = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > end:
            sys.exit("timed out waiting for " + str(path))
        time.sleep(0.002)

(out / f"ready-{pid}").touch()
for r in range(rounds):
    wait_for(out / f"go-{r}")
    def trial():
        (out / f"trial-{r}-{pid}").touch()
        wait_for(out / f"release-{r}")
    try:
        breaker.call(trial)
    except CircuitOpenError:
        (out / f"rejected-{r}-{pid}").touch()
"""


@pytest.mark.stress
def test_rounds_of_half_open_races_with_killed_trials(tmp_path: Path) -> None:
    """Round after round, 24 racing processes: exactly max_calls trials; kill -9 frees a slot."""
    rounds, max_calls, workers = 12, 3, 24
    db = tmp_path / "state.db"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ROUNDS_WORKER,
                str(db),
                str(tmp_path),
                str(rounds),
                str(max_calls),
            ]
        )
        for _ in range(workers)
    ]
    alive = {p.pid: p for p in procs}
    parent = CircuitBreaker(
        "shared",
        BreakerConfig(
            failure_threshold=1,
            recovery_timeout=0.05,
            half_open_max_calls=max_calls,
            trial_timeout=60,
        ),
        store=open_store(db),
    )
    try:
        wait_until(lambda: count(tmp_path, "ready") == workers, limit=120)
        for r in range(rounds):
            parent.trip(0.05)
            time.sleep(0.1)
            (tmp_path / f"go-{r}").touch()
            wait_until(
                lambda r=r: (
                    count(tmp_path, f"trial-{r}") + count(tmp_path, f"rejected-{r}") == len(alive)
                )
            )
            trials = [int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob(f"trial-{r}-*")]
            assert len(trials) == max_calls, (r, trials)
            if r % 3 == 1:  # kill one trial holder: its slot is free at the next call
                victim = alive.pop(trials[0])
                victim.kill()
                victim.wait(10)
                extra = parent.admit()
                assert extra.trial
                with pytest.raises(CircuitOpenError):
                    parent.admit()
                extra.ignore()
            (tmp_path / f"release-{r}").touch()
            wait_until(lambda: parent.state is CircuitState.CLOSED)
        for proc in alive.values():
            assert proc.wait(60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    record = open_store(db).get("breaker", "shared")
    assert record is not None and record["trials"] == {}


OPENER = r"""
from reliactl.breaker import BreakerConfig, circuit_manager

def down():
    raise ConnectionError("payments are down")

payments = circuit_manager.get_breaker("payments", BreakerConfig(failure_threshold=1),
                                       persistent=True)
try:
    payments.call(down)
except ConnectionError:
    pass
circuit_manager.get_breaker("search", persistent=True).call(lambda: "ok")
"""

LOOKER = r"""
import json
from reliactl.breaker import circuit_manager

circuit_manager.get_breaker("local-only")  # this process's own, in memory
print(json.dumps(circuit_manager.get_health_status()))
"""


def test_health_status_in_a_new_process_sees_every_breaker_of_the_shared_store(
    tmp_path: Path,
) -> None:
    """The seed's troubleshooting snippet (a fresh `python -c` printing open_breakers) sees
    the breakers other processes opened, the same ones `reliactl breaker list` shows."""
    state = Path(os.environ["XDG_STATE_HOME"]) / "reliactl" / "state.db"
    looked = subprocess.run(
        [sys.executable, "-c", LOOKER], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(looked.stdout)["total_breakers"] == 1  # only its own, in memory
    assert not state.exists(), "looking must not create a state database"
    subprocess.run([sys.executable, "-c", OPENER], timeout=60, check=True)
    looked = subprocess.run(
        [sys.executable, "-c", LOOKER], capture_output=True, text=True, timeout=60, check=True
    )
    status = json.loads(looked.stdout)
    assert status["open_breakers"] == 1 and status["open"] == ["payments"], status
    assert set(status["breakers"]) == {"local-only", "payments", "search"}
    assert status["breakers"]["payments"]["last_failure"].endswith("payments are down")
    assert "store_error" not in status
    listed = subprocess.run(
        [sys.executable, "-m", "reliactl", "breaker", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {b["name"] for b in json.loads(listed.stdout)["breakers"]} == {"payments", "search"}


@pytest.mark.stress
def test_events_of_five_processes_follow_the_state_changes_in_order(tmp_path: Path, spawn) -> None:
    """Issue 21: five processes trip and close one breaker as fast as they can; each event
    is written in the transaction of the state change it records, so the stored event log,
    in the order it was written, is one unbroken chain (every event starts in the state the
    one before it ended in) with every transition in it. Written after the commit, another
    process's later event could land first (seen in one of two runs)."""
    procs = [spawn("flip", T_CALLS="60") for _ in range(5)]
    wait_until(lambda: count(tmp_path, "ready") == 5, limit=120)
    (tmp_path / "go").touch()
    for proc in procs:
        assert proc.wait(120) == 0
    store = open_store(tmp_path / "state.db")
    events = list(reversed(store.events("shared", limit=10_000)))
    trips = [e for e in events if e.to_state == "open"]
    assert len(trips) == 5 * 60
    for before, after in itertools.pairwise(events):
        assert after.from_state == before.to_state, (before, after)
    assert events[-1].to_state == store.get("breaker", "shared")["state"]
