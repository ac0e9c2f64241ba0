"""The job engine (reliactl.jobs) as a library call: the gate and history rules of `run`.

In-process and fast: real SQLite stores, real subprocesses for the jobs, real health checks
(Nagios plugins in sh), real locks. Nothing of reliactl's own is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from reliactl.config import Config, load
from reliactl.errors import GateSetupError, JobSpecError, StateError
from reliactl.hostname import hostname
from reliactl.jobs import (
    FROM_CONFIG,
    JobHooks,
    JobResult,
    JobSpec,
    JobStart,
    newest_decisive,
    record_outcome,
    run_job,
)
from reliactl.runner import RunEvent
from reliactl.state import open_state
from reliactl.state.base import RunRecord


def config(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load(str(path)).config


def health(*checks: tuple[str, int, str]) -> str:
    """A health_monitor section of `command` checks (Nagios plugins) only: name, exit, line."""
    lines = "".join(
        f"    - {{name: {name}, kind: command, command: [sh, -c, "
        f"{json.dumps(f'echo {message!r}; exit {code}')}]}}\n"
        for name, code, message in checks
    )
    return "health_monitor:\n  system_checks: []\n  checks:\n" + lines


class Recorder(JobHooks):
    """Hooks that remember what they saw."""

    def __init__(self) -> None:
        self.started: list[JobStart] = []
        self.finished: list[JobResult] = []

    def on_start(self, start: JobStart) -> None:
        self.started.append(start)

    def on_finish(self, result: JobResult) -> None:
        self.finished.append(result)


def events() -> tuple[list[str], object]:
    seen: list[str] = []

    def on_event(event: RunEvent) -> None:
        seen.append(event.message)

    return seen, on_event


# ------------------------------------------------------------------ the health gate


def test_critical_health_refuses_with_75_never_starts_and_records_gated(tmp_path: Path) -> None:
    """CRITICAL: exit 75, outcome "gated", the command never runs, the report is kept, the
    history says gated, and only the finish hook hears of it."""
    cfg = config(tmp_path, health(("db", 2, "DB down"), ("load", 1, "LOAD high")))
    marker = tmp_path / "ran"
    hooks = Recorder()
    job = run_job(
        JobSpec(("touch", str(marker)), name="gated-job", check=True, hooks=(hooks,)), config=cfg
    )
    assert (job.exit_code, job.outcome) == (75, "gated")
    assert not marker.exists()
    assert job.run.message is not None and "db (DB down)" in job.run.message
    assert "load" not in job.run.message  # only the CRITICAL checks are named
    assert job.health is not None and job.health.overall_status.value == "CRITICAL"
    store = open_state(cfg)
    [row] = store.runs("gated-job", limit=5)
    assert (row.id, row.outcome, row.exit_code, row.attempts) == (job.run_id, "gated", 75, 0)
    assert hooks.started == [] and [r.outcome for r in hooks.finished] == ["gated"]
    doc = job.to_dict()
    assert doc["health"]["status"] == "CRITICAL" and doc["run_id"] == job.run_id
    json.dumps(doc)  # a document, as --json-report writes it


@pytest.mark.parametrize(("code", "status"), [(1, "WARNING"), (3, "UNKNOWN")])
def test_warning_or_unknown_health_starts_the_command_with_a_warning(
    tmp_path: Path, code: int, status: str
) -> None:
    """WARNING and UNKNOWN are not a reason to refuse: the command runs, one warning event."""
    cfg = config(tmp_path, health(("probe", code, "not sure")))
    marker = tmp_path / "ran"
    seen, on_event = events()
    job = run_job(
        JobSpec(("touch", str(marker)), check=True),
        config=cfg,
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert (job.exit_code, job.outcome) == (0, "success") and marker.exists()
    assert [m for m in seen if m.startswith("warning:")] == [
        f"warning: health is {status}: probe (not sure); starting anyway"
    ]


def test_an_invalid_health_setup_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A health setup that validation never saw (a Config built in code) and that cannot be
    built raises GateSetupError before the command runs or a history row is written."""
    from dataclasses import replace

    from reliactl.config import CheckSpec

    cfg = config(tmp_path)
    bogus = replace(cfg.health_monitor, system_checks=(), checks=(CheckSpec("x", "bogus"),))
    cfg = replace(cfg, health_monitor=bogus)
    marker = tmp_path / "ran"
    with pytest.raises(GateSetupError, match="invalid health configuration: unknown check kind"):
        run_job(JobSpec(("touch", str(marker)), name="bad", check=True), config=cfg)
    assert not marker.exists()
    assert open_state(cfg).runs("bad", limit=5) == []


# ------------------------------------------------------------------ the breaker gate

BREAKER = "circuit_breaker:\n  failure_threshold: 1\n  recovery_timeout: 1h\n"


@pytest.mark.parametrize(
    ("command", "timeout", "outcome"),
    [
        (("false",), FROM_CONFIG, "failure"),
        (("sleep", "30"), 0.2, "timeout"),
        (("/nonexistent/job",), FROM_CONFIG, "not_found"),
    ],
)
def test_failures_timeouts_and_missing_commands_count_and_open_the_breaker(
    tmp_path: Path, command: tuple[str, ...], timeout: object, outcome: str
) -> None:
    """Each of these outcomes is one failure of the service; at the threshold the next job is
    refused with 69 ("breaker_open") and not run."""
    cfg = config(tmp_path, BREAKER)
    first = run_job(JobSpec(command, breaker="svc", timeout=timeout), config=cfg)  # type: ignore[arg-type]
    assert first.outcome == outcome
    assert first.breaker is not None and first.breaker["recorded"] == "failure"
    marker = tmp_path / "ran"
    refused = run_job(JobSpec(("touch", str(marker)), breaker="svc"), config=cfg)
    assert (refused.exit_code, refused.outcome) == (69, "breaker_open")
    assert refused.breaker is not None and refused.breaker["decision"] == "rejected"
    assert not marker.exists()


def test_a_busy_lock_or_a_gated_run_never_counts_for_the_breaker(tmp_path: Path) -> None:
    """Skipped (lock busy) never asks the breaker; gated by health is "ignored": neither
    opens a breaker whose threshold is one failure."""
    from reliactl import locks

    cfg = config(tmp_path, BREAKER + health(("db", 2, "down")))
    held = locks.acquire(os.path.join(cfg.run.lock_dir, "j.lock"))
    try:
        skipped = run_job(
            JobSpec(("true",), lock_name="j", skip_if_locked=True, breaker="svc"), config=cfg
        )
    finally:
        held.release()
    assert (skipped.exit_code, skipped.outcome, skipped.breaker) == (0, "skipped", None)
    gated = run_job(JobSpec(("true",), breaker="svc", check=True), config=cfg)
    assert gated.outcome == "gated"
    assert gated.breaker is not None and gated.breaker["recorded"] == "ignored"
    ran = run_job(JobSpec(("true",), breaker="svc"), config=cfg)
    assert ran.outcome == "success" and ran.breaker is not None
    assert ran.breaker["decision"] == "admitted"


def test_the_breaker_sees_one_call_per_job_after_all_retries(tmp_path: Path) -> None:
    """Two failed attempts then a success under retries are one success, not two failures."""
    cfg = config(tmp_path, BREAKER)
    counter = tmp_path / "n"
    script = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]"
    job = run_job(
        JobSpec(("sh", "-c", script), breaker="svc", max_retries=3, base_delay=0.01, jitter="none"),
        config=cfg,
    )
    assert job.outcome == "success" and len(job.run.attempts) == 3
    assert job.breaker is not None and job.breaker["recorded"] == "success"


# ------------------------------------------------------------------ history and its rules


def test_a_run_is_recorded_with_its_outcome_and_run_id(tmp_path: Path) -> None:
    """The history row carries the outcome, the exit code and the attempts; run_id names it."""
    cfg = config(tmp_path)
    job = run_job(JobSpec(("sh", "-c", "exit 3"), name="three"), config=cfg)
    [row] = open_state(cfg).runs("three", limit=5)
    assert row.id == job.run_id is not None
    assert (row.outcome, row.exit_code, row.attempts) == ("failure", 3, 1)
    assert row.data["host"] == hostname() and row.data["pid"] == os.getpid()


def test_no_history_records_nothing(tmp_path: Path) -> None:
    """history=False: no row, no run id, and the store is not even opened."""
    cfg = config(tmp_path)

    def never() -> object:
        raise AssertionError("the store was opened")

    job = run_job(JobSpec(("true",), name="quiet", history=False), config=cfg, store=never)  # type: ignore[arg-type]
    assert job.outcome == "success" and job.run_id is None


def test_an_unusable_store_is_one_warning_and_the_job_still_runs(tmp_path: Path) -> None:
    """A store that cannot be opened disables history and the breaker, with one warning."""
    cfg = config(tmp_path)
    marker = tmp_path / "ran"

    def broken() -> object:
        raise StateError("disk on fire")

    seen, on_event = events()
    job = run_job(
        JobSpec(("touch", str(marker)), breaker="svc"),
        config=cfg,
        store=broken,  # type: ignore[arg-type]
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert job.outcome == "success" and marker.exists() and job.run_id is None
    assert job.breaker is None
    assert [m for m in seen if m.startswith("warning:")] == [
        "warning: state store unusable, run history and --breaker disabled: disk on fire"
    ]


def test_a_running_record_whose_reliactl_is_gone_reads_as_lost(tmp_path: Path) -> None:
    """ "running" with a dead pid on this host is "lost"; a live pid or another host's record
    stays "running" (it cannot be checked from here); finished records keep their outcome."""
    dead = subprocess.Popen(["true"])
    dead.wait()

    def rec(outcome: str, pid: int, host: str) -> RunRecord:
        return RunRecord("j", "true", 0.0, outcome=outcome, data={"pid": pid, "host": host})

    assert record_outcome(rec("running", dead.pid, hostname())) == "lost"
    assert record_outcome(rec("running", os.getpid(), hostname())) == "running"
    assert record_outcome(rec("running", dead.pid, "another-host")) == "running"
    assert record_outcome(rec("failure", dead.pid, hostname())) == "failure"


def test_a_running_record_whose_pid_was_reused_reads_as_lost() -> None:
    """A "running" record names its reliactl by pid and start (``pid_start``, clock ticks
    since boot): a live process with that pid but another start is someone else's (the pid
    was reused), so the run is "lost", not still running; the same pid and start is running;
    an older record without ``pid_start`` is judged by the pid alone."""
    from reliactl._procfs import start_ticks

    me, began = os.getpid(), start_ticks(os.getpid())
    assert began is not None

    def rec(data: dict[str, object]) -> RunRecord:
        return RunRecord("j", "true", 0.0, outcome="running", data={"host": hostname(), **data})

    assert record_outcome(rec({"pid": me, "pid_start": str(int(began) + 1)})) == "lost"
    assert record_outcome(rec({"pid": me, "pid_start": began})) == "running"
    assert record_outcome(rec({"pid": me})) == "running"


def test_last_looks_past_ticks_that_found_the_lock_busy() -> None:
    """newest_decisive (runs --last) skips "skipped" and "busy" ticks: a hung job whose ticks
    keep skipping must not look healthy; None when nothing decisive is there."""

    def rec(outcome: str) -> RunRecord:
        return RunRecord("j", "true", 0.0, outcome=outcome)

    newest_first = [rec("skipped"), rec("busy"), rec("failure"), rec("success")]
    decisive = newest_decisive(newest_first)
    assert decisive is not None and decisive.outcome == "failure"
    assert newest_decisive([rec("skipped"), rec("busy")]) is None
    assert newest_decisive([]) is None


# ------------------------------------------------------------------ hooks, names, retries


def test_hooks_hear_the_start_and_the_finish_and_a_failing_hook_is_a_warning(
    tmp_path: Path,
) -> None:
    """on_start runs once the command is about to start (with the run id), on_finish after
    the history is written; an exception in a hook is a warning, never the job's result."""
    cfg = config(tmp_path)
    hooks = Recorder()

    class Broken(JobHooks):
        def on_start(self, start: JobStart) -> None:
            raise RuntimeError("ping endpoint down")

    seen, on_event = events()
    job = run_job(
        JobSpec(("true",), name="hooked", hooks=(Broken(), hooks)),
        config=cfg,
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert job.outcome == "success"
    assert [(s.name, s.run_id) for s in hooks.started] == [("hooked", job.run_id)]
    assert hooks.finished == [job]
    assert any("ping endpoint down" in m and m.startswith("warning: hook") for m in seen)


def test_invalid_specs_are_refused_before_running(tmp_path: Path) -> None:
    """A bad lock name or an impossible retry policy is a JobSpecError, and nothing runs."""
    cfg = config(tmp_path)
    marker = tmp_path / "ran"
    for spec in (
        JobSpec(("touch", str(marker)), lock_name="../escape"),
        JobSpec(("touch", str(marker)), max_retries=-1),
        JobSpec(("touch", str(marker)), retry=True, strategy="sideways"),
        JobSpec(("touch", str(marker)), retry=True, max_elapsed=0.0),
    ):
        with pytest.raises(JobSpecError):
            run_job(spec, config=cfg)
    assert not marker.exists()


def test_the_ambiguous_derived_lock_name_is_a_warning_event(tmp_path: Path) -> None:
    """`sh -c CODE` has no script to name the lock after: the engine says so (an event)."""
    cfg = config(tmp_path)
    seen, on_event = events()
    job = run_job(
        JobSpec(("sh", "-c", "true"), lock=True, history=False),
        config=cfg,
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert job.outcome == "success"
    assert any("may be ambiguous" in m for m in seen), seen


def test_max_elapsed_ends_the_retries(tmp_path: Path) -> None:
    """retry.max_elapsed bounds a run's retries as it bounds RetryPolicy and `retry plan`:
    no retry starts past it (the runner used to ignore it and make all 101 attempts)."""
    cfg = config(tmp_path, "retry:\n  max_elapsed: 300ms\n")
    seen, on_event = events()
    job = run_job(
        JobSpec(("false",), max_retries=100, strategy="fixed", base_delay=0.05, jitter="none"),
        config=cfg,
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert job.outcome == "failure"
    # 300 ms of 50 ms pauses: at most 7 attempts, fewer when attempts take time themselves.
    assert 1 <= len(job.run.attempts) <= 7, len(job.run.attempts)
    assert "max_elapsed 300ms reached" in seen[-1]
    unbounded = run_job(
        JobSpec(("false",), max_retries=3, base_delay=0.01, jitter="none", max_elapsed=None),
        config=cfg,
    )
    assert len(unbounded.run.attempts) == 4  # None: no limit, whatever the configuration says
