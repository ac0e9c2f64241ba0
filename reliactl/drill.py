"""Game days: scripted drills against the real configuration, each step checked.

A drill exercises a path that must work when something fails, with the configuration, state
store and alert sinks in use, and says step by step whether it behaved:

- ``breaker``: trip a drill breaker in the real store; ``reliactl run --breaker`` (a real
  process) refuses with 69; after its open time the next run is the trial, succeeds and
  closes it. The drill breaker's record is removed afterwards.
- ``alerts``: a drill problem (check ``drill:alerts``) through every configured sink, the
  same problem again inside the cooldown (nothing may be sent), then its recovery.
- ``job-missed``: every declared job (or a drill job of ``every: 15m`` when none is) judged at
  a moment past its period and grace with no run since: the job check must say CRITICAL.
- ``disk``: the configured disk thresholds applied to a forced value just past critical and
  to the real usage of each disk path: CRITICAL, then a real reading.

Messages sent by a drill say DRILL in their check name, so nobody mistakes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reliactl.errors import ReliactlError
from reliactl.hostname import hostname

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.config import Config
    from reliactl.state.base import StateStore

__all__ = ["DRILLS", "DrillReport", "DrillStep", "run_drill"]

UNAVAILABLE = 69  # `run --breaker` refusing (ExitCode.UNAVAILABLE; the CLI is above us)


@dataclass(frozen=True)
class DrillStep:
    """One checked step: what was done, whether it behaved, and what was seen."""

    drill: str
    step: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"drill": self.drill, "step": self.step, "ok": self.ok, "detail": self.detail}


@dataclass
class DrillReport:
    """Every step of the drills run; ``ok`` only when each one behaved."""

    steps: list[DrillStep] = field(default_factory=list)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "steps": [s.to_dict() for s in self.steps],
        }


class _Recorder:
    def __init__(self, drill: str, report: DrillReport) -> None:
        self.drill = drill
        self.report = report

    def step(self, step: str, ok: bool, detail: str) -> bool:
        self.report.steps.append(DrillStep(self.drill, step, ok, detail))
        return ok


def _cli(config_path: str | None) -> list[str]:
    return [sys.executable, "-m", "reliactl", *(["-c", config_path] if config_path else [])]


def _breaker_drill(rec: _Recorder, config: Config, store: StateStore, path: str | None) -> None:
    from reliactl.breaker import RECORD_KIND, CircuitState, get_persistent_breaker

    name = f"drill-{hostname()}-{os.getpid()}"
    # Open long enough that the refused run surely starts inside the window (a loaded host can
    # take seconds to start a process), then open again briefly for the trial.
    refuse_for, open_for = 120.0, 1.0
    breaker = get_persistent_breaker(name, config, store)
    try:
        breaker.trip(refuse_for, reason="drill: tripped")
        rec.step("trip", breaker.state is CircuitState.OPEN, f"breaker {name!r} tripped")
        run = [*_cli(path), "run", "--breaker", name, "--no-history", "--", "true"]
        refused = subprocess.run(run, check=False, capture_output=True, text=True, timeout=60)
        rec.step(
            "refuse",
            refused.returncode == UNAVAILABLE,
            f"`run --breaker {name}` exited {refused.returncode} (expected {UNAVAILABLE})",
        )
        breaker.trip(open_for, reason="drill: tripped for the trial")
        time.sleep(open_for + 0.2)
        trial = subprocess.run(run, check=False, capture_output=True, text=True, timeout=60)
        state = get_persistent_breaker(name, config, store).state
        rec.step(
            "recover",
            trial.returncode == 0 and state is CircuitState.CLOSED,
            f"after {open_for:g}s the trial run exited {trial.returncode}; breaker {state.value}",
        )
    finally:
        store.delete(RECORD_KIND, name)


def _alert_drill(rec: _Recorder, config: Config, store: StateStore) -> None:
    import asyncio  # the alerts drill alone: asyncio imports typing (issue 21, start-up)

    from reliactl.health.alerts import AlertManager
    from reliactl.health.model import HealthMetric, HealthReport, Status
    from reliactl.health.records import RecordStore

    sinks = list(config.health_monitor.alerts)
    if not rec.step(
        "sinks",
        bool(sinks),
        f"{len(sinks)} sink(s): {', '.join(s.name for s in sinks)}"
        if sinks
        else "no alert sinks configured: nobody would be told",
    ):
        return
    check = f"drill:alerts:{hostname()}:{os.getpid()}"
    manager = AlertManager(
        sinks, RecordStore(store), default_cooldown=config.health_monitor.alert_cooldown
    )

    def report(status: Status, text: str) -> HealthReport:
        metric = HealthMetric(check, status, None, text, kind="drill")
        return HealthReport(status, {check: metric}, time.time(), 0.0)

    names = sorted(s.name for s in sinks)
    problem = asyncio.run(manager.process(report(Status.CRITICAL, "DRILL: a rehearsed problem")))
    sent = sorted(o.sink for o in problem if o.delivered)
    failed = [o.describe() for o in problem if not o.delivered]
    rec.step(
        "problem",
        sent == names and not failed,
        f"delivered to {', '.join(sent) or 'none'}" + (f"; failed: {failed}" if failed else ""),
    )
    try:
        again = asyncio.run(manager.process(report(Status.CRITICAL, "DRILL: still failing")))
        repeated = sum(o.delivered for o in again)
        rec.step(
            "cooldown",
            repeated == 0,
            f"the same problem again inside the cooldown sent {repeated} message(s)",
        )
        recovery = asyncio.run(manager.process(report(Status.OK, "DRILL: recovered")))
        sent = sorted(o.sink for o in recovery if o.delivered)
        rec.step("recovery", sent == names, f"recovery delivered to {', '.join(sent) or 'none'}")
    finally:  # the drill's problem record and each sink's entry: nothing of it stays
        from reliactl.health.alertstate import forget

        forget(manager.records, [s.name for s in sinks], check, manager.host)


def _job_drill(rec: _Recorder, config: Config) -> None:
    from reliactl.config import JobSettings
    from reliactl.schedule import Schedule, default_grace, evaluate_job

    jobs = dict(config.jobs) or {"drill-job": JobSettings(every=900.0)}
    now = time.time()
    for name, spec in jobs.items():
        # Declared now and never run: judged two periods and its grace (and a minute) later.
        schedule = Schedule.of(spec)
        period = schedule.period(now) or 86400.0
        grace = spec.grace if spec.grace is not None else default_grace(schedule, now)
        late = now + 2 * period + grace + 60.0
        status = evaluate_job(name, spec, [], now=late, first_declared=now)
        rec.step(
            f"overdue:{name}",
            status.status == "CRITICAL",
            f"job {name!r} with no run: {status.status}: {status.message}",
        )


def _disk_drill(rec: _Recorder, config: Config) -> None:
    from reliactl.health.checks import CheckContext, disk_check, disk_paths
    from reliactl.health.model import Status, evaluate
    from reliactl.health.records import RecordStore
    from reliactl.ranges import parse_range

    hm = config.health_monitor
    critical = parse_range(hm.disk_critical)
    warn = parse_range(hm.disk_warn)
    forced = min(100.0, float(hm.disk_critical) + 1.0)
    status = evaluate(forced, warn, critical)
    rec.step(
        "forced",
        status is Status.CRITICAL,
        f"{forced:g}% used against critical {hm.disk_critical:g}%: {status.value}",
    )
    for path in disk_paths(hm, None):
        check = disk_check(path, hm.disk_warn, hm.disk_critical)
        metric = check.func(CheckContext(records=RecordStore()))
        rec.step(
            f"read:{path}",
            metric.status is not Status.UNKNOWN and metric.value is not None,
            f"{metric.status.value}: {metric.message}",
        )


DRILLS: dict[str, Callable[..., None]] = {
    "breaker": _breaker_drill,
    "alerts": _alert_drill,
    "job-missed": _job_drill,
    "disk": _disk_drill,
}


def run_drill(
    names: Sequence[str],
    config: Config,
    open_store: Callable[[], StateStore],
    *,
    config_path: str | None = None,
) -> DrillReport:
    """Run the named drills (``all`` for every one) in order; a step that raises a reliactl
    error is a failed step, never a traceback."""
    chosen = list(DRILLS) if "all" in names else list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in DRILLS]
    if unknown:
        raise ReliactlError(f"no drill named {unknown[0]!r} (drills: {', '.join(DRILLS)}, or all)")
    report = DrillReport()
    started = time.monotonic()
    for name in chosen:
        rec = _Recorder(name, report)
        try:
            if name == "breaker":
                _breaker_drill(rec, config, open_store(), config_path)
            elif name == "alerts":
                _alert_drill(rec, config, open_store())
            elif name == "job-missed":
                _job_drill(rec, config)
            else:
                _disk_drill(rec, config)
        except (ReliactlError, OSError, subprocess.SubprocessError) as exc:
            rec.step("error", False, f"{type(exc).__name__}: {exc}")
    report.duration = time.monotonic() - started
    return report
