"""Several "hosts" on one Redis: processes with distinct RELIACTL_HOSTNAME and local state dirs.

Each scenario also runs on one shared SQLite file (the same contract on one host), so a
failure on Redis alone points at the backend, not at the scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOSTS = 4
PER_HOST = 8
HANG_BOUND = 300.0


def host_env(state_env: dict[str, str], tmp_path: Path, host: int) -> dict[str, str]:
    """One simulated host: its own name and its own local state directory."""
    local = tmp_path / f"host{host}"
    local.mkdir(exist_ok=True)
    return {
        **os.environ,
        **state_env,
        "RELIACTL_HOSTNAME": f"host-{host}",
        "XDG_STATE_HOME": str(local / "state"),
        "HOME": str(local),
    }


def start_fleet(
    script: str, state_env: dict[str, str], tmp_path: Path, *args: str
) -> list[subprocess.Popen[str]]:
    procs = []
    for host in range(HOSTS):
        env = host_env(state_env, tmp_path, host)
        for _ in range(PER_HOST):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", script, *args],
                    env=env,
                    cwd=tmp_path,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    return procs


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=HANG_BOUND)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def wait_ready(tmp_path: Path, count: int) -> None:
    """Release every process at once, after all have imported and connected."""
    deadline = time.monotonic() + HANG_BOUND
    while len(list(tmp_path.glob("ready-*"))) < count:
        assert time.monotonic() < deadline, "the fleet never got ready"
        time.sleep(0.05)
    (tmp_path / "go").touch()


PRELUDE = """
import os, sys, time
from pathlib import Path
from reliactl.breaker import get_persistent_breaker
from reliactl.config import get_reliability_config
from reliactl.state import open_state
store = open_state()
config = get_reliability_config()
Path(f"ready-{os.getpid()}").touch()
while not Path("go").exists():
    time.sleep(0.01)
"""

FAILURES = (
    PRELUDE
    + """
breaker = get_persistent_breaker("api", config, store)
def boom():
    raise ConnectionError("down")
for _ in range(20):
    try:
        breaker.call(boom)
    except ConnectionError:
        pass
"""
)


@pytest.mark.stress
def test_640_failures_from_4_hosts_are_all_counted(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """4 hosts x 8 processes x 20 failures of one persisted breaker: exactly 640 recorded."""
    env = {**state_env, "RELIACTL_CIRCUIT_BREAKER__FAILURE_THRESHOLD": "100000"}
    procs = start_fleet(FAILURES, env, tmp_path)
    wait_ready(tmp_path, len(procs))
    finish(procs)
    from reliactl.config import load
    from reliactl.state import open_state

    store = open_state(load(environ={**os.environ, **env}).config)
    try:
        record = store.get("breaker", "api")
    finally:
        store.close()
    assert record is not None
    assert (record["failures"], record["consecutive_failures"], record["calls"]) == (640, 640, 640)


TRIAL = (
    PRELUDE
    + """
breaker = get_persistent_breaker("api", config, store)
def trial():
    Path(f"trial-{os.getpid()}").touch()
    time.sleep(1.0)
    raise ConnectionError("still down")  # re-opens: a late caller cannot be a second trial
try:
    breaker.call(trial)
except Exception as exc:
    print(type(exc).__name__)
"""
)


@pytest.mark.stress
def test_the_half_open_trial_is_taken_by_one_process_of_the_fleet(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """32 processes on 4 hosts reach a half-open breaker at once: exactly one runs the trial."""
    env = {**state_env, "RELIACTL_CIRCUIT_BREAKER__RECOVERY_TIMEOUT": "10m"}
    from reliactl.breaker import get_persistent_breaker
    from reliactl.config import load
    from reliactl.state import open_state

    config = load(environ={**os.environ, **env}).config
    store = open_state(config)
    try:
        get_persistent_breaker("api", config, store).trip(duration=0.05)
    finally:
        store.close()
    time.sleep(0.1)  # now due for its trial
    procs = start_fleet(TRIAL, env, tmp_path)
    wait_ready(tmp_path, len(procs))
    outputs = finish(procs)
    assert len(list(tmp_path.glob("trial-*"))) == 1
    assert sorted(o.strip() for o in outputs).count("CircuitOpenError") == len(procs) - 1


LIMITED = (
    PRELUDE
    + """
from reliactl.ratelimit import RateLimiter
limiter = RateLimiter("60/minute", key="openai", store=store)
print(sum(limiter.try_acquire() for _ in range(4)))
"""
)


@pytest.mark.stress
def test_a_shared_60_per_minute_limit_admits_at_most_60(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """128 requests from 32 processes on 4 hosts against 60/minute: at most 60 admitted."""
    started = time.monotonic()
    procs = start_fleet(LIMITED, state_env, tmp_path)
    wait_ready(tmp_path, len(procs))
    admitted = sum(int(out) for out in finish(procs))
    assert admitted <= 60
    if time.monotonic() - started < 60:  # all inside one window: the budget is used up
        assert admitted == 60


@pytest.mark.stress
def test_one_alert_per_cooldown_across_hosts(state_env: dict[str, str], tmp_path: Path) -> None:
    """One failing check seen by 4 hosts (2 runs each, at once): each host delivers its own
    problem exactly once (alert state is per host and check, as Alertmanager's `instance`
    label, since the eighth session): the two runs of a host never both send it, and no
    host's alert stands in for another's."""
    sent = tmp_path / "alerts"  # one file per delivery: 4 hosts deliver at once, and
    sent.mkdir()  # appends to one shared file could interleave
    config = tmp_path / "reliactl.yaml"
    config.write_text(
        json.dumps(
            {
                "health_monitor": {
                    "system_checks": [],
                    "checks": [
                        {"name": "api", "kind": "command", "command": ["sh", "-c", "exit 2"]}
                    ],
                    "alerts": [
                        {
                            "name": "log",
                            "kind": "command",
                            "command": ["sh", "-c", f'cat > "$(mktemp {sent}/a.XXXXXX)"'],
                            "cooldown": "15m",
                        }
                    ],
                }
            }
        )
    )
    procs = []
    for host in range(HOSTS):
        env = {**host_env(state_env, tmp_path, host), "RELIACTL_CONFIG": str(config)}
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "reliactl", "health", "--json"],
                    env=env,
                    cwd=tmp_path,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    for proc in procs:
        _, err = proc.communicate(timeout=HANG_BOUND)
        assert proc.returncode == 2, err  # CRITICAL
        assert "Traceback" not in err
    alerts = [json.loads(path.read_text()) for path in sent.iterdir()]
    assert sorted(alert["host"] for alert in alerts) == [f"host-{h}" for h in range(HOSTS)], alerts


FAKETIME = shutil.which("faketime")


def _skewed(
    env: dict[str, str], tmp_path: Path, host: int, skew: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """``reliactl ARGS`` as host ``host`` whose wall clock is off by ``skew`` (libfaketime,
    e.g. "-120s", "+1d"; the wall clock only: the breaker's times are wall clock)."""
    argv = [sys.executable, "-m", "reliactl", *args]
    extra = {}
    if skew is not None:
        assert FAKETIME is not None
        argv = [FAKETIME, "-f", skew, *argv]
        extra = {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return subprocess.run(
        argv,
        env={**host_env(env, tmp_path, host), **extra},
        capture_output=True,
        text=True,
        timeout=HANG_BOUND,
    )


@pytest.mark.parametrize("backend", ["redis"])
def test_a_host_whose_clock_is_behind_does_not_shorten_an_open_breaker(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """On a shared store (Redis), a host whose wall clock is 120 s behind sees the fleet's
    open breaker opened "in the future"; it is refused (69) without moving the shared
    opened_at back to its own time, so a host with a correct clock still finds the breaker
    open (69), not past its recovery time (a trial run against a service the fleet found
    down). `breaker show` on the host behind gives the retry-after `run` counts there (the
    skew counted, at most two periods), not the period alone. (On SQLite, one host, such a
    process clamps it: a clock set back, see the next test.)"""
    if FAKETIME is None:
        pytest.skip("faketime is not installed (apt-get install faketime; .ci/run does)")
    env = {**state_env, "RELIACTL_CIRCUIT_BREAKER__RECOVERY_TIMEOUT": "30s"}
    job = ("run", "--breaker", "sk", "--")

    codes = [_skewed(env, tmp_path, 1, None, *job, "false").returncode for _ in range(5)]
    assert codes == [1, 1, 1, 1, 1]
    shown = _skewed(env, tmp_path, 3, "-120s", "breaker", "show", "sk", "--json")
    assert shown.returncode == 0, shown.stderr
    retry_after = json.loads(shown.stdout)["breaker"]["retry_after"]
    assert 30 < retry_after <= 60, retry_after  # as admission counts it: not 30 s
    behind = _skewed(env, tmp_path, 3, "-120s", *job, "sh", "-c", "echo ran")
    assert behind.returncode == 69, behind.stderr
    assert "ran" not in behind.stdout
    again = _skewed(env, tmp_path, 1, None, *job, "sh", "-c", "echo ran; exit 1")
    assert again.returncode == 69, again.stderr  # still open for host-1: no trial
    assert "ran" not in again.stdout


def test_a_host_whose_clock_is_far_ahead_does_not_keep_a_breaker_open_for_the_others(
    backend: str, state_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A host whose wall clock is a day ahead opens the breaker (recovery 2 s): its
    opened_at is a day in the other hosts' future. Another host is refused at first, then
    runs its trial within two open periods of first seeing it (never "retry in 1d"): on
    Redis it counts from no later than its first sight plus a period, and never writes the
    fleet's opened_at (the opener's record keeps it); on SQLite (one host, whatever its
    processes are called) it clamps it as a clock set back."""
    if FAKETIME is None:
        pytest.skip("faketime is not installed (apt-get install faketime; .ci/run does)")
    env = {**state_env, "RELIACTL_CIRCUIT_BREAKER__RECOVERY_TIMEOUT": "2s"}
    job = ("run", "--breaker", "sk", "--")

    codes = [_skewed(env, tmp_path, 1, "+1d", *job, "false").returncode for _ in range(5)]
    assert codes == [1, 1, 1, 1, 1]
    shown = _skewed(env, tmp_path, 2, None, "breaker", "show", "sk", "--json")
    assert shown.returncode == 0, shown.stderr
    opened = json.loads(shown.stdout)["breaker"]
    assert opened["state"] == "open" and opened["retry_after"] <= 4, opened
    first = _skewed(env, tmp_path, 2, None, *job, "sh", "-c", "echo ran")
    assert first.returncode == 69 and "retry in 1d" not in first.stderr, first.stderr
    if backend == "redis":  # never written back: the record keeps the opener's opened_at
        raw = (
            request.getfixturevalue("redis_server")
            .client()
            .get(f"{state_env['RELIACTL_STATE__NAMESPACE']}:r:{{breaker:sk}}")
        )
        assert json.loads(raw)["d"]["opened_at"] > time.time() + 12 * 3600
    deadline = time.monotonic() + 60  # 30 open periods: "within two", generously
    while (done := _skewed(env, tmp_path, 2, None, *job, "sh", "-c", "echo ran")).returncode == 69:
        assert "retry in 1d" not in done.stderr
        assert time.monotonic() < deadline, done.stderr
        time.sleep(0.2)
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr
