"""Healing: a failing health check runs its ``remediate:`` command, then is checked again.

``Remediator(monitor, config).apply(report)`` takes a health report, runs the remediation
of every check that calls for one and returns the report with each such check's *verified*
status, plus one :class:`Remediation` per check it considered. It never prints.

The rules (the safeguards are Monit's and systemd's: StartLimitBurst/IntervalSec, "if 3
restarts within 5 cycles then unmonitor"):

- When: a check that is CRITICAL ``after`` consecutive runs (default 1: when it turns
  CRITICAL); the streak lives in the state store (kind "kv", ``remediate:NAME``) so cron runs
  share it, and restarts after each attempt.
- How: under the job engine (:func:`reliactl.jobs.run_job`): the lock ``remediate.NAME``
  (skip when held: never two remediations of one check at once, across processes, and
  across hosts once the lock layer has a fleet scope), the remediation's ``timeout`` (the
  whole process tree is stopped), the breaker ``remediate.NAME`` and the run history (name
  ``remediate.NAME``). Its output is captured (the tail) into the check's message, and so
  into the alert the failing check sends.
- Once across processes: an attempt is claimed in the same record (a lease that outlives
  the run) before it starts; a run that finds a live claim reports "busy", and one whose
  report predates an attempt that finished meanwhile re-checks instead of acting again.
- Verify: ``verify_after`` later the check runs again; OK (or WARNING) is "remediated",
  anything else "remediation failed". The report carries the verified metric.
- Cap: at most ``max_attempts`` within ``window``; then nothing runs and one alert
  ("remediation_exhausted") goes to every sink, once per exhaustion (claimed in the record);
  the check recovering, or the window letting another attempt through, re-arms it.
- UNKNOWN (a check that could not run or timed out) is not CRITICAL: nothing runs for it.
- Trust: nothing runs when the configuration file is (now) owned by another user or
  writable by others (reliactl.trust). A signal pidfile follows systemd's ``PIDFile=``
  rule: a path all root's or this user's names any process; one through one other user's
  directory, link or file only that user's processes; two such users, or anything writable
  by others (not sticky), refused. A pidfile whose process started after the file was
  written is a reused pid, refused; the killer re-checks the process's start ticks through
  a pidfd just before signalling it (the pid could be reused while the job is claimed).
- ``dry_run`` shows what would run for every CRITICAL check and changes nothing.

Built-in actions: ``cleanup:ROOT`` runs ``reliactl cleanup`` on that configured root (the
cleanup core, its safety checks included), ``restart:UNIT`` runs ``systemctl restart UNIT``
when systemd is the init (otherwise it is "unavailable", with why), ``signal:PIDFILE:SIG``
sends SIG to the process whose id the (trusted) pidfile holds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from reliactl.durations import format_duration
from reliactl.errors import ReliactlError
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.redact import redact_argv

if TYPE_CHECKING:
    from pathlib import Path

    from reliactl.config import CheckSpec, Config, RemediateSpec
    from reliactl.health.alerts import AlertOutcome
    from reliactl.health.monitor import HealthMonitor

__all__ = ["OUTPUT_TAIL", "Remediation", "Remediator", "plan_command"]

# How much of a remediation's output (its tail, both streams) is kept for the report/alert.
OUTPUT_TAIL = 2000
# A claim outlives its remediation by this much (kill_after, the verify, a slow store).
CLAIM_MARGIN = 60.0
RECORD_KIND = "kv"
SYSTEMD_MARK = "/run/systemd/system"  # sd_booted(3): systemd is the init

# Results (Remediation.result)
REMEDIATED = "remediated"
FAILED = "remediation failed"
EXHAUSTED = "remediation exhausted"
BUSY = "remediation busy"
REFUSED = "remediation refused"
UNAVAILABLE = "remediation unavailable"
WOULD_RUN = "would run"
WAITING = "waiting"


@dataclass(frozen=True)
class Remediation:
    """What happened to one check's remediation in this run."""

    check: str
    result: str  # remediated, remediation failed/exhausted/busy/refused/unavailable, ...
    command: tuple[str, ...] = ()
    action: str = ""
    message: str = ""
    outcome: str | None = None  # the job engine's outcome (success, failure, timeout...)
    exit_code: int | None = None
    output: str = ""
    attempt: int | None = None  # this attempt's number within the window
    max_attempts: int | None = None
    run_id: int | None = None
    alerts: tuple[AlertOutcome, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "result": self.result,
            "command": redact_argv(self.command),
            "action": self.action or None,
            "message": self.message,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "output": self.output,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "run_id": self.run_id,
        }

    def describe(self) -> str:
        """One line: "disk: remediated (cleanup:tmp, attempt 1/3)"."""
        what = self.action or " ".join(redact_argv(self.command))
        extra = f", attempt {self.attempt}/{self.max_attempts}" if self.attempt else ""
        tail = f": {self.message}" if self.message else ""
        return f"{self.check}: {self.result} ({what}{extra}){tail}"


class _Refused(Exception):
    """A remediation that cannot be run here (result, message)."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "..." + flat[-(limit - 3) :]


def plan_command(
    spec: RemediateSpec,
    config: Config,
    *,
    config_path: Path | str | None = None,
    systemd_mark: str = SYSTEMD_MARK,
) -> tuple[str, ...]:
    """The argv a remediation runs. Raises _Refused (unavailable) for an action that cannot
    run here: restart without systemd, a missing or untrusted pidfile, an unknown root."""
    if not spec.action:
        if isinstance(spec.command, str):
            return ("/bin/sh", "-c", spec.command)
        return tuple(spec.command)
    from reliactl.config import parse_remediation_action

    try:
        kind, args = parse_remediation_action(spec.action)
    except ValueError as exc:
        raise _Refused(UNAVAILABLE, str(exc)) from None
    if kind == "cleanup":
        return _cleanup_command(args[0], config, config_path)
    if kind == "restart":
        if not os.path.isdir(systemd_mark):
            raise _Refused(
                UNAVAILABLE,
                f"restart:{args[0]} needs systemd, and systemd is not running on this host"
                f" ({systemd_mark} is missing); use a command instead",
            )
        return ("systemctl", "restart", "--", args[0])
    pidfile, signame = args
    pid, ticks = _read_pidfile(pidfile)
    return (sys.executable, "-c", _KILL, str(pid), "SIG" + signame, ticks)


# The signal action's killer, run as the job (a fresh interpreter, no reliactl import): the
# pid is checked when the remediation is planned, then claimed and run, so it could be reused
# in between. argv: PID SIGNAL START_TICKS. A pidfd pins the process the pid names now; it is
# signalled only if that process started at the ticks seen at planning (/proc/PID/stat field
# 22), else exit 1 with a line saying so. Without pidfds (Python < 3.9, Linux < 5.3: ENOSYS)
# the same re-check, then kill.
_KILL = """import os,signal,sys
pid,sig,ticks=int(sys.argv[1]),signal.Signals[sys.argv[2]],sys.argv[3]
def started():
    try:
        with open(f"/proc/{pid}/stat") as fh: text=fh.read()
    except OSError: return None
    return text[text.rindex(")")+2:].split()[19]
try: fd=os.pidfd_open(pid)
except (AttributeError,OSError) as exc:
    if isinstance(exc,ProcessLookupError): sys.exit(f"process {pid} is gone; not signalled")
    fd=None
if started()!=ticks:
    sys.exit(f"process {pid} is not the one the pidfile named (pid reused); not signalled")
if fd is None: os.kill(pid,sig)
else:
    try: signal.pidfd_send_signal(fd,sig)
    except (AttributeError,OSError) as exc:
        if isinstance(exc,ProcessLookupError): sys.exit(f"process {pid} is gone; not signalled")
        os.kill(pid,sig)
"""


def _cleanup_command(name: str, config: Config, config_path: Path | str | None) -> tuple[str, ...]:
    from reliactl.config import cleanup_root_name

    roots = [root for root in config.cleanup.roots if cleanup_root_name(root) == name]
    if len(roots) != 1:
        raise _Refused(UNAVAILABLE, f"cleanup:{name}: no single cleanup root named {name!r}")
    root = roots[0]
    argv = [sys.executable, "-m", "reliactl"]
    if config_path is not None:
        argv += ["--config", os.path.abspath(config_path)]
    argv += ["cleanup", "--older-than", format_duration(root.max_age)]
    for pattern in root.include:
        argv += ["--include", pattern]
    for pattern in root.exclude:
        argv += ["--exclude", pattern]
    if root.max_total_size is not None:
        argv += ["--max-size", str(root.max_total_size)]
    return (*argv, "--", root.path)


def _read_pidfile(path: str) -> tuple[int, str]:
    """The process id in ``path`` and its start ticks (for the killer's re-check). systemd's
    ``PIDFile=`` rule (``reliactl.trust.open_pidfile``): a path all root's or this user's may
    name any process; one through another user's directory, link or file may only name that
    user's processes (they could signal those anyway); else refused. A process that started
    after the file was last written is a reused pid, refused too (``_procfs.started_after``;
    a file on tmpfs older than the boot time is not judged: the wall clock stepped)."""
    from reliactl._procfs import pid_alive, real_uid, start_ticks, started_after
    from reliactl.trust import Untrusted, open_pidfile, owner_name

    try:
        fd, owner = open_pidfile(path)
        try:
            mtime = os.fstat(fd).st_mtime
            text = os.read(fd, 64).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    except Untrusted as exc:
        raise _Refused(REFUSED, f"pidfile {exc}; refused") from None
    except OSError as exc:
        raise _Refused(UNAVAILABLE, f"pidfile {path}: {exc.strerror or exc}") from None
    if not text.isdigit() or int(text) <= 1:
        raise _Refused(UNAVAILABLE, f"pidfile {path}: does not hold a process id")
    pid = int(text)
    if not pid_alive(pid):
        raise _Refused(UNAVAILABLE, f"pidfile {path}: process {pid} is not running")
    if owner is not None and real_uid(pid) != owner:
        raise _Refused(
            REFUSED,
            f"pidfile {path}: its path is {owner_name(owner)}'s, and process {pid} is not"
            " theirs; refused",
        )
    from reliactl.locks import filesystem_type

    # a file on tmpfs (/run) cannot predate this boot: an mtime before it is a clock step
    this_boot = filesystem_type(path) in ("tmpfs", "ramfs")
    if started_after(pid, mtime, this_boot=this_boot):
        raise _Refused(
            REFUSED,
            f"pidfile {path}: process {pid} started after the file was written (a reused"
            " pid, the service gone, or the clock stepped forward since?); refused",
        )
    ticks = start_ticks(pid)
    if ticks is None:
        raise _Refused(UNAVAILABLE, f"pidfile {path}: process {pid} is not running")
    return pid, ticks


class _Capture:
    """The job engine's OutputSink: keeps the last OUTPUT_TAIL bytes of both streams."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, stream: int, data: bytes) -> None:
        self.data += data
        if len(self.data) > 2 * OUTPUT_TAIL:
            del self.data[: len(self.data) - OUTPUT_TAIL]

    def end_attempt(self, attempt: int) -> None:
        pass

    def text(self) -> str:
        return bytes(self.data[-OUTPUT_TAIL:]).decode("utf-8", "replace").strip()


class Remediator:
    """Runs the remediations a health report calls for (see the module's rules)."""

    def __init__(
        self,
        monitor: HealthMonitor,
        config: Config,
        *,
        config_path: Path | str | None = None,
        dry_run: bool = False,
        alerts: bool = True,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        systemd_mark: str = SYSTEMD_MARK,
    ) -> None:
        """``clock`` defaults to the monitor's (the report's ``checked_at`` is compared with
        the attempts' times, so both must read one clock)."""
        self.monitor = monitor
        self.config = config
        self.config_path = config_path
        self.dry_run = dry_run
        self.alerts = alerts
        self.clock = clock if clock is not None else monitor.clock
        self.sleep = sleep
        self.systemd_mark = systemd_mark

    def specs(self) -> dict[str, CheckSpec]:
        return {c.name: c for c in self.config.health_monitor.checks if c.remediate is not None}

    def apply(self, report: HealthReport) -> tuple[HealthReport, list[Remediation]]:
        """The report with remediated checks' verified metrics, and what was done."""
        specs = self.specs()
        done: list[Remediation] = []
        metrics = dict(report.metrics)
        for name, metric in report.metrics.items():
            check = specs.get(name)
            if check is None or check.remediate is None:
                continue
            try:
                result, verified = self._one(check, check.remediate, metric, report.checked_at)
            except ReliactlError as exc:  # the state store failed: never act blind
                result = Remediation(name, REFUSED, message=f"state store: {_one_line(str(exc))}")
                verified = None
            if result is None:
                continue
            done.append(result)
            metrics[name] = _annotated(verified or metric, result, metric)
        if not done:
            return report, done
        healed = replace(
            report,
            metrics=metrics,
            overall_status=worst(m.status for m in metrics.values()),
        )
        return healed, done

    # ---- one check

    def _one(
        self, check: CheckSpec, spec: RemediateSpec, metric: HealthMetric, checked_at: float
    ) -> tuple[Remediation | None, HealthMetric | None]:
        name = check.name
        failing = metric.status is Status.CRITICAL
        if self.dry_run:
            if not failing:
                return None, None
            try:
                argv = self._plan(spec)
            except _Refused as exc:
                return Remediation(name, exc.result, action=spec.action, message=str(exc)), None
            note = f"after {spec.after} consecutive CRITICAL runs" if spec.after > 1 else ""
            return Remediation(name, WOULD_RUN, argv, spec.action, note), None
        streak = self._count(name, failing)
        if not failing:
            return None, None
        if streak < spec.after:
            return Remediation(
                name, WAITING, action=spec.action, message=f"CRITICAL {streak}/{spec.after}"
            ), None
        try:
            argv = self._plan(spec)
        except _Refused as exc:
            return Remediation(name, exc.result, action=spec.action, message=str(exc)), None
        token = os.urandom(16).hex()
        claim = self._claim(name, spec, token, checked_at)
        verdict = claim["verdict"]
        if verdict == "busy":
            return Remediation(
                name, BUSY, argv, spec.action, "another run is remediating this check now"
            ), None
        if verdict == "done":  # another run remediated it after we looked: look again
            verified = self._verify(name, 0.0)
            good = verified is not None and verified.status in (Status.OK, Status.WARNING)
            seen = verified.status.value if verified is not None else "not checked"
            return Remediation(
                name, REMEDIATED if good else FAILED, argv, spec.action,
                f"another run remediated it meanwhile; verified {seen}",
            ), verified  # fmt: skip
        if verdict == "exhausted":
            return self._exhausted(name, spec, argv, claim), None
        return self._run(name, spec, argv, token, claim["attempt"])

    def _plan(self, spec: RemediateSpec) -> tuple[str, ...]:
        if self.config_path is not None:
            from pathlib import Path

            from reliactl.config import config_untrusted

            reason = config_untrusted(Path(self.config_path))
            if reason is not None:
                raise _Refused(
                    REFUSED,
                    f"configuration {self.config_path}: {reason}; its remediations are not run",
                )
        return plan_command(
            spec, self.config, config_path=self.config_path, systemd_mark=self.systemd_mark
        )

    def _count(self, name: str, failing: bool) -> int:
        """This run's streak of CRITICAL results; a good result also re-arms exhaustion."""
        seen: list[int] = []

        def step(prev: dict[str, Any] | None) -> dict[str, Any] | None:
            seen.clear()
            current = dict(prev or {})
            if failing:
                current["streak"] = int(current.get("streak", 0)) + 1
            else:
                current["streak"] = 0
                current.pop("exhausted_at", None)
            seen.append(current["streak"])
            return current

        self.monitor.records.update(RECORD_KIND, f"remediate:{name}", step)
        return seen[0] if seen else 0

    def _claim(
        self, name: str, spec: RemediateSpec, token: str, checked_at: float
    ) -> dict[str, Any]:
        """Atomically: busy, done (by another run since ``checked_at``), exhausted, or run."""
        decided: dict[str, Any] = {}

        def step(prev: dict[str, Any] | None) -> dict[str, Any] | None:
            decided.clear()
            now = self.clock()
            current = dict(prev or {})
            until = current.get("claimed_until")
            if current.get("claim") and isinstance(until, (int, float)) and now < until:
                decided["verdict"] = "busy"
                return prev
            finished = current.get("finished_at")
            if isinstance(finished, (int, float)) and finished > checked_at:
                decided["verdict"] = "done"
                return prev
            attempts = [
                t
                for t in current.get("attempts", [])
                if isinstance(t, (int, float)) and now - spec.window < t <= now + 5
            ]
            current["attempts"] = attempts
            if len(attempts) >= spec.max_attempts:
                decided.update(
                    verdict="exhausted",
                    announce=not current.get("exhausted_at"),
                    attempts=len(attempts),
                    oldest=min(attempts),
                )
                current.setdefault("exhausted_at", now)
                return current
            attempts.append(now)
            current.pop("exhausted_at", None)  # the window let one through: a new episode
            current.update(claim=token, claimed_until=now + spec.timeout + CLAIM_MARGIN)
            decided.update(verdict="run", attempt=len(attempts))
            return current

        self.monitor.records.update(RECORD_KIND, f"remediate:{name}", step)
        return decided

    def _settle(self, name: str, token: str, ran: bool) -> None:
        """Release the claim; a run that never started gives its attempt back."""

        def step(prev: dict[str, Any] | None) -> dict[str, Any] | None:
            current = dict(prev or {})
            if current.get("claim") == token:
                current.pop("claim", None)
                current.pop("claimed_until", None)
                if ran:
                    current["finished_at"] = self.clock()
                else:
                    attempts = list(current.get("attempts", []))
                    current["attempts"] = attempts[:-1]
            current["streak"] = 0  # `after: N` counts anew after an attempt
            return current

        try:
            self.monitor.records.update(RECORD_KIND, f"remediate:{name}", step)
        except ReliactlError:
            pass  # the store failed after the run: the claim's lease expires on its own

    def _run(
        self, name: str, spec: RemediateSpec, argv: tuple[str, ...], token: str, attempt: int
    ) -> tuple[Remediation, HealthMetric | None]:
        from reliactl.jobs import JobSpec, run_job

        capture = _Capture()
        store = self.monitor.records.store
        job_name = f"remediate.{name}"
        ran = False
        try:
            try:
                job = run_job(
                    JobSpec(
                        command=argv,
                        name=job_name,
                        lock_name=job_name,
                        skip_if_locked=True,
                        timeout=spec.timeout,
                        # Its job is often to start something (`/etc/init.d/foo start`
                        # daemonizes and returns): what it started is not a leftover.
                        leave_running=True,
                        breaker=job_name if store is not None else None,
                        history=store is not None,
                    ),
                    config=self.config,
                    store=store,
                    output=capture,
                )
            except ReliactlError as exc:
                return Remediation(
                    name, FAILED, argv, spec.action, _one_line(str(exc)), attempt=attempt,
                    max_attempts=spec.max_attempts,
                ), None  # fmt: skip
            ran = job.outcome not in ("skipped", "busy", "breaker_open", "gated")
        finally:
            self._settle(name, token, ran)
        output = capture.text()
        common: dict[str, Any] = {
            "command": argv,
            "action": spec.action,
            "outcome": job.outcome,
            "exit_code": job.exit_code,
            "output": output,
            "attempt": attempt if ran else None,
            "max_attempts": spec.max_attempts,
            "run_id": job.run_id,
        }
        if job.outcome in ("skipped", "busy"):
            return Remediation(
                name, BUSY, message="its lock is held by another run", **common
            ), None
        if job.outcome == "breaker_open":
            why = _one_line(job.run.message or "breaker open")
            return Remediation(name, FAILED, message=why, **common), None
        if not job.succeeded:
            why = f"{job.outcome}, exit {job.exit_code}"
            if output:
                why += f": {_one_line(output)}"
            return Remediation(name, FAILED, message=why, **common), None
        verified = self._verify(name, spec.verify_after)
        if verified is None:
            return Remediation(
                name, FAILED, message="the check could not run again", **common
            ), None
        if verified.status.is_ok or verified.status is Status.WARNING:
            return Remediation(
                name, REMEDIATED, message=f"verified {verified.status.value}", **common
            ), verified
        why = f"still {verified.status.value} after it"
        if output:
            why += f"; its output: {_one_line(output)}"
        return Remediation(name, FAILED, message=why, **common), verified  # fmt: skip

    def _verify(self, name: str, delay: float) -> HealthMetric | None:
        if delay > 0:
            self.sleep(delay)
        try:
            report = self.monitor.run_now([name])
        except ReliactlError:
            return None
        return report.metrics.get(name)

    def _exhausted(
        self, name: str, spec: RemediateSpec, argv: tuple[str, ...], claim: dict[str, Any]
    ) -> Remediation:
        again = claim["oldest"] + spec.window - self.clock()
        message = (
            f"{claim['attempts']} attempts within {format_duration(spec.window)}; no more"
            f" until {format_duration(max(1.0, again))} from now"
        )
        outcomes: tuple[AlertOutcome, ...] = ()
        if claim.get("announce") and self.alerts and self.monitor.config.alerts:
            outcomes = tuple(self._announce(name, message))
            if outcomes and not any(o.delivered for o in outcomes):
                self._rearm(name)  # nobody heard it: the next run says it again
        return Remediation(
            name, EXHAUSTED, argv, spec.action, message, max_attempts=spec.max_attempts,
            alerts=outcomes,
        )  # fmt: skip

    def _announce(self, name: str, message: str) -> list[AlertOutcome]:
        import asyncio

        from reliactl.health.alerts import Alert

        manager = self.monitor.alert_manager()
        alert = Alert(
            name,
            Status.CRITICAL,
            Status.CRITICAL,
            "remediation_exhausted",
            f"remediation exhausted: {message}; a person is needed",
            host=manager.host,
            at=self.clock(),
        )
        return list(asyncio.run(manager.announce(alert)))

    def _rearm(self, name: str) -> None:
        def step(prev: dict[str, Any] | None) -> dict[str, Any] | None:
            current = dict(prev or {})
            current.pop("exhausted_at", None)
            return current

        self.monitor.records.update(RECORD_KIND, f"remediate:{name}", step)


def _annotated(metric: HealthMetric, result: Remediation, seen: HealthMetric) -> HealthMetric:
    """The (verified) metric with the remediation's result in its message and details; a
    verified metric also says what was seen before (``seen``)."""
    note = result.result
    if metric is not seen:
        note += f": was {seen.status.value}: {_one_line(seen.message, 200)}"
    elif result.message:
        note += f": {result.message}"
    return replace(
        metric,
        message=f"{metric.message} [{note}]",
        details={**metric.details, "remediation": result.to_dict()},
    )


def summarize(results: Sequence[Remediation]) -> list[str]:
    """One line per remediation, for the text report."""
    return [result.describe() for result in results]
