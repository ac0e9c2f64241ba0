"""`reliactl run` with a state store another process holds locked (``BEGIN EXCLUSIVE``): the
job is not delayed by the store's 30 s busy wait, and what cannot be recorded is one warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from runhelpers import reliactl_cmd
from storelock import write_lock_held, write_lock_pulsing

# Generous (the bounded waits are ~6 s in all), yet below the 30 s of one unbounded wait
# (before: 30.7 s for `run -- true`, 60.5 s with --breaker).
HANG = 25.0


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RELIACTL_STATE__PATH": str(tmp_path / "state" / "state.db")}


def _runs(tmp_path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        reliactl_cmd("runs", "--json"),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    runs: list[dict[str, object]] = json.loads(done.stdout)["runs"]
    return runs


def _end_under_a_held_lock(proc: subprocess.Popen[str], started: Path, go: Path, db: Path) -> str:
    """Wait (within HANG) for ``proc``'s job to touch ``started``, then let it end (touch
    ``go``) while another process holds ``db``'s write lock; ``proc``'s stderr once it
    exited, the lock still held (what run records at its end meets the busy store)."""
    deadline = time.monotonic() + HANG
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    with write_lock_held(db):
        go.touch()
        _out, err = proc.communicate(timeout=HANG)
    return err


def test_a_locked_store_delays_neither_the_job_nor_its_end(tmp_path: Path) -> None:
    """`run --breaker b` while the store stays locked: the job runs, its exit code passes
    through, and the breaker's outcome and the history row are given up within the bound,
    the row with one warning line (no traceback)."""
    env = _env(tmp_path)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    with write_lock_held(tmp_path / "state" / "state.db"):
        done = subprocess.run(
            reliactl_cmd("run", "--breaker", "b", "--", "sh", "-c", "echo ran; exit 3"),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    assert done.returncode == 3 and done.stdout == "ran\n"
    lines = [line for line in done.stderr.splitlines() if "not recorded in the history" in line]
    assert len(lines) == 1 and "database is locked" in lines[0] and "gave up" in lines[0]
    assert "Traceback" not in done.stderr
    assert len(_runs(tmp_path)) == 1  # only the run before the lock


def test_a_row_not_written_before_the_job_is_written_after_it(tmp_path: Path) -> None:
    """The store locked when the run starts and free by its end: the job starts within the
    bound (not after the 30 s busy wait) and its whole row, outcome included, is written
    after it (no warning)."""
    env = _env(tmp_path)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    started, go = tmp_path / "started", tmp_path / "go"
    job = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; exit 4"
    with write_lock_held(tmp_path / "state" / "state.db"):
        proc = subprocess.Popen(
            reliactl_cmd("run", "--name", "late", "--", "sh", "-c", job),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + HANG
        while not started.exists():
            assert time.monotonic() < deadline, "the job did not start within the bound"
            assert proc.poll() is None
            time.sleep(0.05)
    go.touch()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert "not recorded" not in err and "history disabled" not in err
    newest = _runs(tmp_path)[0]
    assert newest["name"] == "late" and newest["outcome"] == "failure"
    assert newest["exit_code"] == 4 and newest["ended_at"] is not None


def _configured(tmp_path: Path, text: str) -> dict[str, str]:
    config = tmp_path / "reliactl.yaml"
    config.write_text(text, encoding="utf-8")
    return {**_env(tmp_path), "RELIACTL_CONFIG": str(config)}


def _breaker(env: dict[str, str], name: str = "b") -> dict[str, Any]:
    done = subprocess.run(
        reliactl_cmd("breaker", "show", name, "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _locked_run(
    tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    with write_lock_held(tmp_path / "state" / "state.db"):
        return subprocess.run(
            reliactl_cmd("run", *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )


BREAKER = "circuit_breaker:\n  breakers:\n    b: {failure_threshold: 1, recovery_timeout: %s}\n"


def test_an_open_breaker_on_a_locked_store_still_refuses_the_job(tmp_path: Path) -> None:
    """An open breaker's rejection is a write (its count): with the store locked that write
    is given up within the bound (not after the 30 s busy wait), but the state still reads
    open, so the job is refused as usual (exit 69, not run) and the rejection is not
    counted; the breaker is left as it was (open, nothing counted). No traceback."""
    env = _configured(tmp_path, BREAKER % "1h")
    subprocess.run(reliactl_cmd("run", "--breaker", "b", "--", "false"), env=env, timeout=60)
    assert _breaker(env)["breaker"]["state"] == "open"
    for history in ((), ("--no-history",)):
        done = _locked_run(
            tmp_path, env, *history, "--breaker", "b", "--", "sh", "-c", "echo ran; exit 5"
        )
        assert done.returncode == 69 and done.stdout == "", done.stderr
        lines = [line for line in done.stderr.splitlines() if "breaker 'b'" in line]
        assert len(lines) == 1, done.stderr
        assert "is open; retry in" in lines[0] and "rejection not counted" in lines[0]
        assert "unusable" not in done.stderr and "Traceback" not in done.stderr
    after = _breaker(env)
    assert after["breaker"]["state"] == "open"
    assert after["breaker"]["rejections"] == 0 and after["breaker"]["calls"] == 1
    assert len(after["transitions"]) == 1  # closed -> open only


def _open_until_due(tmp_path: Path, env: dict[str, str]) -> None:
    subprocess.run(reliactl_cmd("run", "--breaker", "b", "--", "false"), env=env, timeout=60)
    deadline = time.monotonic() + 30
    while _breaker(env)["breaker"]["retry_after"] > 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_due_trial_on_a_locked_store_is_refused_not_run_unreserved(tmp_path: Path) -> None:
    """An open breaker whose recovery time has passed admits a half-open trial (a write: the
    reservation): with the store locked it cannot be reserved, so the job is refused (exit
    69, not run) within the bound rather than run as a trial nobody reserved (every such run
    would call the recovering service); nothing is reserved nor any transition recorded."""
    env = _configured(tmp_path, BREAKER % "1s")
    _open_until_due(tmp_path, env)
    done = _locked_run(tmp_path, env, "--breaker", "b", "--", "sh", "-c", "echo ran")
    assert done.returncode == 69 and done.stdout == "", done.stderr
    assert "is due a trial call; not reserved" in done.stderr
    assert "gave up after 1s" in done.stderr and "Traceback" not in done.stderr
    after = _breaker(env)
    assert after["breaker"]["state"] == "open" and after["breaker"]["trials_in_flight"] == 0
    assert [t["to"] for t in after["transitions"]] == ["open"]


def test_a_half_open_breaker_with_its_trial_taken_refuses_on_a_locked_store(
    tmp_path: Path,
) -> None:
    """Half-open with its one trial slot taken by a run still going on: another run while
    the store is locked reads that state and is refused (exit 69, its job not run: one call
    at a time to the recovering service), its rejection not counted; the trial's run ends
    and its success closes the breaker as usual."""
    env = _configured(tmp_path, BREAKER % "1s, trial_timeout: 60s")
    _open_until_due(tmp_path, env)
    started, go = tmp_path / "started", tmp_path / "go"
    trial = subprocess.Popen(
        reliactl_cmd(
            "run", "--breaker", "b", "--", "sh", "-c",
            f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done",
        ),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + HANG
        while not started.exists():
            assert time.monotonic() < deadline and trial.poll() is None
            time.sleep(0.05)
        assert _breaker(env)["breaker"]["trials_in_flight"] == 1
        done = _locked_run(tmp_path, env, "--breaker", "b", "--", "sh", "-c", "echo ran")
    finally:
        go.touch()
        trial.communicate(timeout=60)
    assert done.returncode == 69 and done.stdout == "", done.stderr
    assert "rejection not counted" in done.stderr and "Traceback" not in done.stderr
    assert "circuit breaker 'b' is half-open with its trial slots taken" in done.stderr
    assert trial.returncode == 0
    after = _breaker(env)["breaker"]
    assert after["state"] == "closed" and after["rejections"] == 0


# A check that is CRITICAL every time, debounced: held at OK for its first two results.
FLAPPY = (
    "health_monitor:\n  system_checks: []\n  jobs_checks: false\n  checks:\n"
    "    - name: flappy\n      kind: command\n"
    "      command: [sh, -c, 'echo CRITICAL - down; exit 2']\n      debounce: 3\n"
)


def _streak(tmp_path: Path) -> object:
    from reliactl.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(tmp_path / "state" / "state.db")
    try:
        record = store.get("kv", "health:debounce:flappy")
    finally:
        store.close()
    return None if record is None else record.get("streak")


def test_the_health_gate_on_a_locked_store_debounces_in_memory(tmp_path: Path) -> None:
    """--require-healthy with the store locked: the debounce streak's write is given up
    within the bound (not the 30 s busy wait) and the check is judged in memory, as with an
    unusable store (its first bad result held at OK): the job runs, one warning line says
    so, and the stored streak is left as it was."""
    env = _configured(tmp_path, FLAPPY)
    subprocess.run(reliactl_cmd("run", "--require-healthy", "--", "true"), env=env, timeout=60)
    assert _streak(tmp_path) == 1
    done = _locked_run(tmp_path, env, "--require-healthy", "--", "sh", "-c", "echo ran")
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr
    lines = [line for line in done.stderr.splitlines() if "health state" in line]
    assert len(lines) == 1, done.stderr
    assert "kept in memory" in lines[0] and "gave up after 1s" in lines[0]
    assert "Traceback" not in done.stderr
    assert _streak(tmp_path) == 1


def test_watch_health_on_a_locked_store_neither_delays_nor_repeats(tmp_path: Path) -> None:
    """--watch-health with the store locked for the whole run: each round's debounce write
    is given up within the bound (the rounds go on, in memory), the job's exit code passes
    through, reliactl ends within the bound (not after a check thread's 30 s busy wait),
    and the store's warning is one line for the run, not one a round."""
    env = _configured(tmp_path, FLAPPY)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    job = "sleep 4; echo done; exit 3"
    done = _locked_run(tmp_path, env, "--watch-health", "1s", "--", "sh", "-c", job)
    assert done.returncode == 3 and done.stdout == "done\n", done.stderr
    lines = [line for line in done.stderr.splitlines() if "health state" in line]
    assert len(lines) == 1, done.stderr
    assert "kept in memory" in lines[0] and "gave up after 1s" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_row_whose_end_was_given_up_reads_lost_not_running(tmp_path: Path) -> None:
    """The store free when the job starts (its "running" row written) and locked at its end
    (the row's end given up after the bound, one warning): `runs` reads that row as lost
    (how it ended is not known), and the job's health check does not take it for a run
    still going on (no "running for ..., longer than max_duration" however old it grows)."""
    env = _configured(tmp_path, "jobs:\n  late: {every: 1h, max_duration: 1s}\n")
    started, go = tmp_path / "started", tmp_path / "go"
    job = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done"
    proc = subprocess.Popen(
        reliactl_cmd("run", "--name", "late", "--", "sh", "-c", job),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = _end_under_a_held_lock(proc, started, go, tmp_path / "state" / "state.db")
    assert proc.returncode == 0
    assert "run not recorded in the history" in err and "gave up after 5s" in err
    newest = _runs(tmp_path)[0]
    assert newest["name"] == "late" and newest["ended_at"] is None
    assert newest["outcome"] == "lost"
    health = subprocess.run(
        reliactl_cmd("health", "-C", "job:late", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (check,) = json.loads(health.stdout)["checks"]
    assert check["status"] == "OK" and "running for" not in check["message"], check


def test_an_alert_on_a_locked_store_is_sent_within_the_bound(tmp_path: Path) -> None:
    """`run --alert` of a failing job with the store locked: the alert's state (its problem
    and the sink's claim) is given up within the bound, not after a 30 s busy wait a write,
    and kept in memory for the run, so the alert is still delivered (a page is never dropped
    for want of the store); one warning line says so, no traceback."""
    sent = tmp_path / "sent.jsonl"
    sink = tmp_path / "sink.sh"
    sink.write_text(f"#!/bin/sh\ncat >> {sent}\necho >> {sent}\n", encoding="utf-8")
    sink.chmod(0o755)
    env = _configured(
        tmp_path,
        f"health_monitor:\n  alerts:\n    - name: file\n      kind: command\n"
        f"      command: [{sink}]\n",
    )
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    done = _locked_run(tmp_path, env, "--name", "nightly", "--alert", "--", "sh", "-c", "exit 4")
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if "warning: alert" in line]
    assert len(lines) == 1, done.stderr
    assert "alert state kept in memory" in lines[0] and "gave up after 1s" in lines[0]
    assert "Traceback" not in done.stderr
    alerts = [json.loads(line) for line in sent.read_text(encoding="utf-8").splitlines() if line]
    assert [(a["check"], a["status"]) for a in alerts] == [("run:nightly", "CRITICAL")]


def test_a_lightly_busy_store_debounces_in_the_store_as_a_free_one(tmp_path: Path) -> None:
    """--require-healthy with many checks writing the store (a job check per declared job)
    while another process takes the write lock for a few milliseconds at a time: every
    operation waits out those short locks within the round's bound (a deadline, not a
    budget that concurrent operations each spend), so the debounce streak is the store's,
    not memory's: the third bad result in a row is refused, as on a free store, and no
    warning says the state was kept in memory."""
    jobs = "".join(f"  j{i}: {{every: 1h}}\n" for i in range(300))
    env = _configured(tmp_path, FLAPPY.replace("  jobs_checks: false\n", "") + "jobs:\n" + jobs)
    for _ in range(2):  # the check's first two bad results are held at OK
        first = subprocess.run(
            reliactl_cmd("run", "--require-healthy", "--", "true"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert first.returncode == 0, first.stderr
    assert _streak(tmp_path) == 2
    with write_lock_pulsing(tmp_path / "state" / "state.db", hold=0.015, gap=0.05):
        done = subprocess.run(
            reliactl_cmd("run", "--require-healthy", "--", "sh", "-c", "echo ran"),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    assert "kept in memory" not in done.stderr, done.stderr
    assert done.returncode == 75 and done.stdout == "", done.stderr
    assert _streak(tmp_path) == 3


# The CPU check (its first sample waits on the store's CPU record) abandoned at its timeout
# while its store operation waits, and a debounced check whose streak is written after it.
SLOW_CPU = (
    "health_monitor:\n  check_timeout: 1.05s\n  jobs_checks: false\n"
    "  system_checks: [cpu]\n  checks:\n"
    "    - name: flappy\n      kind: command\n"
    "      command: [sh, -c, 'echo CRITICAL - down; exit 2']\n      debounce: 3\n"
)


def test_a_check_abandoned_on_a_locked_store_holds_nothing_after_its_round(
    tmp_path: Path,
) -> None:
    """--watch-health with the store locked for the whole run and a check abandoned at its
    timeout while it waits on the store: what that check's thread does after its round is
    done in memory at once (never the store's 30 s busy wait), so it holds neither the
    state's lock nor the store's connection: the debounce, the run's row and reliactl's exit
    wait only their own bounds, and the job's exit code passes through."""
    env = _configured(tmp_path, SLOW_CPU)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    job = "sleep 3; echo done; exit 3"
    done = _locked_run(tmp_path, env, "--watch-health", "1s", "--", "sh", "-c", job)
    assert done.returncode == 3 and done.stdout == "done\n", done.stderr
    assert "kept in memory" in done.stderr and "Traceback" not in done.stderr


# A debounced check whose streak write waits on the store, and one CRITICAL at once.
FLAPPY_AND_DOWN = FLAPPY + (
    "    - name: down\n      kind: command\n"
    "      command: [sh, -c, 'echo CRITICAL - gone; exit 2']\n"
)


@pytest.mark.parametrize(
    "how",
    [
        ("--on-critical", "stop", "--", "sleep", "20"),
        # The first round ends 1 s or more after it began (the streak's write waits out the
        # bound), so a next round would begin 3 s or more after the job started: after its end.
        ("--", "sleep", "2.9"),
    ],
    ids=["stopped", "ended-before-the-next-round"],
)
def test_watch_health_says_the_store_line_once_however_the_job_ends(
    tmp_path: Path, how: tuple[str, ...]
) -> None:
    """--watch-health on a locked store with a check CRITICAL from the first round: the
    "health state kept in memory" line is said exactly once, also when that round's CRITICAL
    stops the job (--on-critical stop), and when its "health is CRITICAL" line goes first and
    the job ends before another round (that line waited for a round that never came)."""
    env = _configured(tmp_path, FLAPPY_AND_DOWN)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    done = _locked_run(tmp_path, env, "--watch-health", "1s", *how)
    assert "Traceback" not in done.stderr
    assert done.returncode == (122 if "stop" in how else 0), done.stderr
    assert "health is CRITICAL during the run: down" in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "health state" in line]
    assert len(lines) == 1, done.stderr
    assert "warning: health state kept in memory for this run" in lines[0]
    assert "gave up after 1s" in lines[0]


def test_a_breaker_outcome_not_recorded_is_one_warning_of_the_run(tmp_path: Path) -> None:
    """The store free when the job starts and locked at its end: the breaker's outcome is
    given up within the run's records bound as its history row is, and said as the run's
    other warnings are (the run's timestamped "reliactl: warning:" line, the bound named),
    not as a bare log line of the library; --json-report says it was not recorded."""
    env = _env(tmp_path)
    started, go, report = tmp_path / "started", tmp_path / "go", tmp_path / "report.json"
    job = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; exit 1"
    proc = subprocess.Popen(
        reliactl_cmd("run", "--breaker", "b", "--json-report", str(report), "--", "sh", "-c", job),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        err = _end_under_a_held_lock(proc, started, go, tmp_path / "state" / "state.db")
    finally:
        proc.kill()  # an assertion above, or the deadline, leaves no run behind
        proc.wait(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "breaker 'b'" in line]
    assert len(lines) == 1, err
    assert "reliactl: warning: breaker 'b': the run's outcome (failure) not recorded" in lines[0]
    assert "database is locked" in lines[0] and "(busy: gave up after 5s)" in lines[0]
    history = [line for line in err.splitlines() if "not recorded in the history" in line]
    assert len(history) == 1 and "reliactl: warning:" in history[0], err
    assert json.loads(report.read_text())["breaker"]["recorded"] == "not recorded"


@pytest.mark.parametrize("failures", [0, 3], ids=["never-ran", "failing"])
def test_a_job_check_waits_on_the_store_no_longer_than_the_rounds_bound(
    tmp_path: Path, failures: int
) -> None:
    """The health gate's job check (job:NAME reads the job's run history) while another
    process holds the store locked and another thread of this process holds the store's
    connection through its own 30 s busy wait (an application sharing the store with
    run_job): the history read waits only until the round's bound, as the checks' other
    store operations do (not until the check's 10 s timeout), and the check is UNKNOWN
    "run history not read: ...", never judged without its runs: a job whose history is
    three failures (CRITICAL on the free store) is not OK "never ran; declared 0s ago".
    The gate warns and starts the job (UNKNOWN), one "kept in memory" warning, and the gate
    never waited for that thread (still waiting when the run is over)."""
    import threading

    from reliactl.config import load
    from reliactl.errors import StateBusyError
    from reliactl.jobs import JobSpec, run_job
    from reliactl.runner import RunEvent
    from reliactl.state.base import bounded_waits
    from reliactl.state.sqlite import SQLiteStateStore

    env = _configured(
        tmp_path, "health_monitor:\n  system_checks: []\njobs:\n  nightly: {every: 1h}\n"
    )
    for _ in range(failures):  # the job's history: real runs of it that failed
        cmd = reliactl_cmd("run", "--name", "nightly", "--", "sh", "-c", "exit 1")
        assert subprocess.run(cmd, env=env, timeout=60, check=False).returncode == 1
    config = load(env["RELIACTL_CONFIG"]).config
    path = tmp_path / "state" / "state.db"
    path.parent.mkdir(exist_ok=True)
    store = SQLiteStateStore(path)
    seen: list[str] = []

    def on_event(event: RunEvent) -> None:
        seen.append(event.message)

    gated = JobSpec(("true",), name="gated", check=True, history=False)
    try:
        if failures:  # on the free store, that history refuses the job
            free = run_job(gated, config=config, store=store)
            assert free.health is not None and free.run.outcome != "success"
            assert free.health.metrics["job:nightly"].status.value == "CRITICAL"
        with write_lock_held(path):
            writer = threading.Thread(
                target=lambda: store.update("kv", "app", lambda r: {"n": 1}), daemon=True
            )
            writer.start()
            deadline = time.monotonic() + HANG
            while True:  # until that thread holds the connection in its busy wait
                assert time.monotonic() < deadline and writer.is_alive()
                try:
                    with bounded_waits(store, 0.05):
                        store.get("kv", "probe")
                except StateBusyError:
                    break
            job = run_job(gated, config=config, store=store, on_event=on_event)
            assert writer.is_alive()  # the gate decided without waiting for it
        writer.join(timeout=60)
    finally:
        store.close()
    assert job.run.outcome == "success", seen
    assert job.health is not None
    check = job.health.metrics["job:nightly"]
    assert check.status.value == "UNKNOWN", check
    assert check.message.startswith("run history not read: "), check
    assert "database is locked" in check.message, check
    unknown = [line for line in seen if "health is UNKNOWN" in line]
    assert len(unknown) == 1 and "job:nightly (run history not read: " in unknown[0], seen
    assert "starting anyway" in unknown[0]
    lines = [line for line in seen if "health state" in line]
    assert len(lines) == 1, seen
    assert "kept in memory for this run" in lines[0] and "gave up after 1s" in lines[0]


def test_require_healthy_with_watch_health_says_the_store_line_once(tmp_path: Path) -> None:
    """--require-healthy and --watch-health on a locked store: the gate's round and the
    watch's rounds all keep the health state in memory, and the run says so in one line
    (the gate's, before the job), not once for the gate and again for the watch."""
    env = _configured(tmp_path, FLAPPY)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    job = "sleep 4; echo done"
    done = _locked_run(
        tmp_path, env, "--require-healthy", "--watch-health", "1s", "--", "sh", "-c", job
    )
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "health state" in line]
    assert len(lines) == 1, done.stderr
    assert "warning: health state kept in memory for this run" in lines[0]
    assert "gave up after 1s" in lines[0]
