"""When jobs are expected, and whether they ran: missed runs, failure streaks, runs too long.

A job declared in the ``jobs:`` section has a schedule (a cron expression with a time zone,
read by cronsim, the parser healthchecks.io uses, imported only when a cron schedule is
evaluated; or ``every:`` a duration), a ``grace``, a ``max_duration`` and ``max_failures``.
``evaluate_job`` is a pure function of that, the job's run history (``RunRecord``s, newest
first), when the job was first declared, and ``now`` (wall-clock epoch seconds):

- CRITICAL when the run expected after the last success (or, for a job that never succeeded,
  after it was first declared) is later than ``grace`` overdue, or when the last
  ``max_failures`` decisive runs all failed;
- WARNING when it failed fewer times than that in a row, or a run has been going longer than
  ``max_duration``;
- OK otherwise.

A name found only in history (not declared) is at worst WARNING: nothing says what is
expected of it.

Runs that never started their command (lock busy, breaker open, gate refused) are neither
successes nor failures: a job refused for a week is caught as overdue. A clock set back
(a success "in the future") counts as age zero, never as "forever".

No printing; ``reliactl jobs`` and the ``job`` health check render what this returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

from reliactl.durations import format_duration

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any

    from reliactl.config import JobSettings
    from reliactl.state.base import RunRecord
else:  # frozen records without the dataclasses module (every load of a `jobs:` section)
    from reliactl._records import dataclass

__all__ = [
    "JobStatus",
    "Schedule",
    "cron_problem",
    "declared_at",
    "evaluate_job",
    "job_status",
    "job_statuses",
    "record_outcome",
    "tz_problem",
]

# Outcomes that say nothing about the job itself: its command never ran.
NOT_DECISIVE = frozenset({"running", "skipped", "busy", "gated", "breaker_open"})
MIN_GRACE = 60.0
MAX_GRACE = 3600.0
DECLARED_KEY = "job:{}"  # kv record: {"declared_at": epoch}


# Cron expressions cronsim accepted in this process, or at an earlier start with the same
# configuration text and the same cronsim (kept with the parse by config/_cache.py): validating
# one imports cronsim with calendar and locale (~3 ms of a `run` start), evaluating it does not
# need the verdict.
_ACCEPTED: set[str] = set()


def accept_crons(expressions: Iterable[str]) -> None:
    """Take ``expressions`` as accepted by cronsim (config/_cache.py's kept verdicts)."""
    _ACCEPTED.update(expressions)


def accepted_crons() -> list[str]:
    """The expressions ``cron_problem`` found valid (or was told were), sorted."""
    return sorted(_ACCEPTED)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression cronsim can evaluate, or None."""
    if expression in _ACCEPTED:
        return None
    _cronsim_stamp()  # the files of the cronsim about to be imported (kept expected runs)
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        return f"not a valid cron expression ({exc}): {expression!r}"
    except Exception as exc:  # cronsim raising something else for odd input
        return f"not a valid cron expression ({type(exc).__name__}): {expression!r}"
    _ACCEPTED.add(expression)
    return None


def tz_problem(name: str) -> str | None:
    """Why ``name`` is not a time zone this system knows, or None."""
    try:
        _zone(name)
    except Exception:
        return f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
    return None


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    if not name or "\x00" in name or name.startswith("/") or ".." in name:
        raise ValueError(name)
    # Read from its file every time, never zoneinfo's per-process cache: a long-running
    # process (health --watch, serve) must not keep (and store, see _kept_times) the rules of
    # a zone file replaced since it first read it.
    return ZoneInfo.no_cache(name)


def _local_zone() -> Any:
    """The system's time zone with its DST rules (cron runs in local time): $TZ if it names
    a zone, else /etc/localtime, else UTC."""
    import os
    from datetime import timezone

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:  # try/except, not contextlib.suppress: contextlib is ~0.7 ms of a start
            return _zone(name)
        except Exception:  # noqa: S110 - a $TZ that names no zone: /etc/localtime, as before
            pass
    try:
        from zoneinfo import ZoneInfo

        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except Exception:
        return timezone.utc


@dataclass(frozen=True)
class Schedule:
    """A job's expected rhythm: a cron expression (in ``tz``) or a fixed period."""

    cron: str = ""
    tz: str = ""
    every: float | None = None

    @classmethod
    def of(cls, spec: JobSettings) -> Schedule:
        return cls(spec.schedule, spec.tz, spec.every)

    @property
    def defined(self) -> bool:
        return bool(self.cron) or self.every is not None

    def next_after(self, epoch: float) -> float | None:
        """The first expected run strictly after ``epoch`` (None: no schedule)."""
        if self.every is not None:
            return epoch + self.every
        if not self.cron:
            return None
        from datetime import datetime, timezone

        _cronsim_stamp()  # the files of the cronsim about to be imported (kept expected runs)
        from cronsim import CronSim

        zone = _zone(self.tz) if self.tz else _local_zone()
        start = datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone(zone)
        fire = next(CronSim(self.cron, start))
        return fire.timestamp()

    def period(self, around: float) -> float | None:
        """Seconds between two expected runs near ``around`` (for the default grace)."""
        if self.every is not None:
            return self.every
        first = self.next_after(around)
        if first is None:
            return None
        second = self.next_after(first)
        return None if second is None else second - first

    def describe(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        if self.cron:
            return f"at '{self.cron}'" + (f" {self.tz}" if self.tz else "")
        return "no schedule"


def default_grace(schedule: Schedule, around: float) -> float:
    return _grace_of(schedule.period(around))


def _grace_of(period: float | None) -> float:
    if period is None:
        return MAX_GRACE
    return min(MAX_GRACE, max(MIN_GRACE, period / 2))


# ---- a cron schedule's expected times, kept in the job's record --------------------------
#
# A cron job's next expected run after its reference (the last success, or when it was first
# declared) is the same at every health check until the job succeeds again, but working it
# out imports cronsim (with calendar and locale) and zoneinfo (with sysconfig): ~5 ms of every
# `health` start with a cron job. So the job's kv record (the one holding `declared_at`, written
# at every check anyway) keeps it: the cron expression, the zone, the reference, what the
# answer depends on (the zone file zoneinfo reads: its path, device, inode, size and mtime;
# $TZ and /etc/localtime for the local zone; the search path and the Python it came from;
# cronsim's files; reliactl's version) and the two expected runs after the reference (the
# second gives the default grace). Anything different is worked out again, as before. A zone
# named by `tz:` or $TZ with no file on the search path (the tzdata package, or a name zoneinfo
# refuses) is never kept.

EXPECTED_FORMAT = 1
EXPECTED_KEPT = 4  # entries per job: hosts of a shared store with different zones each keep one
_CRONSIM_FILES: list[Any] = []


def _file_stamp(path: str) -> list[int] | None:
    import os

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode]


def _cronsim_stamp() -> list[Any]:
    """cronsim's installed files (its package and module), once per process: taken before
    this process imports cronsim, so they are the files of the code that runs."""
    if not _CRONSIM_FILES:
        import os
        from importlib.util import find_spec

        spec = find_spec("cronsim")
        origin = spec.origin if spec is not None and spec.origin else ""
        where = os.path.dirname(origin)
        for path in (origin, os.path.join(where, "cronsim.py")):
            _CRONSIM_FILES.append([path, _file_stamp(path) if origin else None])
    return _CRONSIM_FILES


def _expected_key(schedule: Schedule, after: float, tzpath: list[str]) -> list[Any] | None:
    """What the expected runs of ``schedule`` after ``after`` depend on, as JSON values, for
    zoneinfo's search path ``tzpath``; None when they cannot be kept (a zone from the tzdata
    package, or an invalid name: worked out, and reported, every time)."""
    import os
    import sys

    from reliactl._version import __version__

    local = os.environ.get("TZ", "") if not schedule.tz else None
    name = schedule.tz or (local or "").lstrip(":")
    zone_files: list[Any] = []
    if name:
        found = False
        if "\x00" not in name and not name.startswith("/") and ".." not in name:
            for directory in tzpath:
                path = os.path.join(directory, name)
                stamp = _file_stamp(path)
                zone_files.append([path, stamp])
                if stamp is not None and (stamp[4] & 0o170000) == 0o100000:  # regular file
                    found = True
                    break
        if not found:
            return None  # the tzdata package, or a name zoneinfo refuses
    if local is not None:  # the local zone: $TZ if it names one, else /etc/localtime, else UTC
        zone_files.append(["/etc/localtime", _file_stamp("/etc/localtime")])
    return [
        EXPECTED_FORMAT,
        __version__,
        sys.version,
        os.environ.get("PYTHONTZPATH"),
        list(tzpath),
        schedule.cron,
        schedule.tz,
        local,
        after,
        zone_files,
        _cronsim_stamp(),
    ]


def _kept_times(
    schedule: Schedule, after: float, kept: list[Any]
) -> tuple[float | None, float | None]:
    """The first two expected runs of cron ``schedule`` after ``after``: from ``kept`` (the
    job record's entries) when one was worked out under the same conditions, else worked out
    (cronsim, zoneinfo) and appended to ``kept``."""
    for entry in kept:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), list):
            continue
        key = entry["key"]
        if len(key) < 5 or not isinstance(key[4], list):
            continue
        tzpath = key[4]
        if not all(isinstance(p, str) for p in tzpath) or key != _expected_key(
            schedule, after, tzpath
        ):
            continue
        first, second = entry.get("next"), entry.get("then")
        if all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in (first, second)):
            return first, second
    import zoneinfo

    tzpath = list(zoneinfo.TZPATH)
    before = _expected_key(schedule, after, tzpath)
    first = schedule.next_after(after)
    second = None if first is None else schedule.next_after(first)
    if before is not None and before == _expected_key(schedule, after, tzpath):
        kept.append({"key": before, "next": first, "then": second})
    return first, second


@dataclass(frozen=True)
class JobStatus:
    """What ``reliactl jobs`` and the ``job`` check say about one job."""

    name: str
    declared: bool
    status: str  # OK WARNING CRITICAL UNKNOWN (reliactl.health.model.Status values)
    message: str
    schedule: str
    last_run_at: float | None = None
    last_outcome: str | None = None
    last_success_at: float | None = None
    last_success_host: str | None = None
    next_expected_at: float | None = None
    consecutive_failures: int = 0
    running_for: float | None = None
    success_age: float | None = None  # seconds since the last success (perfdata)
    declared_at: float | None = None
    overdue: bool = False  # a run was expected (plus grace) and did not happen: missed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "declared": self.declared,
            "status": self.status,
            "message": self.message,
            "schedule": self.schedule,
            "last_run_at": self.last_run_at,
            "last_outcome": self.last_outcome,
            "last_success_at": self.last_success_at,
            "last_success_host": self.last_success_host,
            "next_expected_at": self.next_expected_at,
            "consecutive_failures": self.consecutive_failures,
            "running_for": self.running_for,
            "last_success_age": self.success_age,
            "declared_at": self.declared_at,
            "overdue": self.overdue,
        }


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "0s"
    return format_duration(round(seconds) if seconds >= 60 else round(seconds, 1))


def _failure_streak(history: list[RunRecord]) -> int:
    """Failed runs since the last success, newest first; refusals neither count nor break."""
    streak = 0
    for run in history:
        if run.outcome in NOT_DECISIVE:
            continue
        if run.outcome == "success":
            break
        streak += 1
    return streak


def _last_success(history: list[RunRecord]) -> tuple[float | None, str | None]:
    """When the newest success ended (or started, if its end was not recorded), and where."""
    success = next((r for r in history if r.outcome == "success"), None)
    if success is None:
        return None, None
    at = success.ended_at if success.ended_at is not None else success.started_at
    host = success.data.get("host") if isinstance(success.data, Mapping) else None
    return at, host


def record_outcome(record: RunRecord, *, host: str | None = None) -> str:
    """A record's outcome; a "running" one whose reliactl (on this host) is gone is "lost":
    its pid is not alive, or is another process's now (not started at the record's
    ``pid_start``: the pid was reused). A finished run whose row was given up on a busy
    store (jobs.RUN_RECORD_WAIT) is one of these: how it ended is not known."""
    if record.outcome != "running":
        return str(record.outcome)
    data = record.data if isinstance(record.data, Mapping) else {}
    pid, where = data.get("pid"), data.get("host")
    if isinstance(pid, int) and pid > 0:
        from reliactl.hostname import hostname

        if where != (host or hostname()):
            return "running"
        from reliactl._procfs import pid_alive, start_ticks

        if not pid_alive(pid):
            return "lost"
        began = data.get("pid_start")
        if isinstance(began, str) and start_ticks(pid) not in (None, began):
            return "lost"
    return "running"


def evaluate_job(
    name: str,
    spec: JobSettings | None,
    runs: Iterable[RunRecord],
    *,
    now: float,
    first_declared: float | None = None,
    kept: list[Any] | None = None,
) -> JobStatus:
    """The status of job ``name`` from its history (newest first) at wall-clock ``now``.

    ``kept``: the expected runs of a cron schedule kept in the job's record (see
    ``job_status``); read, and appended to when worked out."""
    history = list(runs)
    schedule = Schedule.of(spec) if spec is not None else Schedule()
    last = history[0] if history else None
    streak = _failure_streak(history)
    # A row left "running" by a run whose end was not recorded (a busy store) is lost, not a
    # run going on: its reliactl is gone (record_outcome).
    running = next(
        (r for r in history if r.ended_at is None and record_outcome(r) == "running"), None
    )
    running_for = None if running is None else max(0.0, now - running.started_at)
    success_at, success_host = _last_success(history)
    age = None if success_at is None else max(0.0, now - success_at)

    problems: list[tuple[int, str]] = []  # (severity 2 CRITICAL / 1 WARNING, text)
    overdue = False
    expected = schedule.describe()
    reference = success_at if success_at is not None else first_declared
    next_expected = None
    if schedule.defined and reference is not None:
        after = min(reference, now)
        grace = spec.grace if spec is not None and spec.grace is not None else None
        if kept is not None and schedule.cron and schedule.every is None:
            next_expected, following = _kept_times(schedule, after, kept)
            if grace is None:
                period = None
                if next_expected is not None and following is not None:
                    period = following - next_expected
                grace = _grace_of(period)
        else:
            next_expected = schedule.next_after(after)
            if grace is None:
                grace = default_grace(schedule, after)
        if next_expected is not None and now > next_expected + grace:
            overdue = True
            late = now - next_expected
            if success_at is None:
                assert first_declared is not None
                problems.append(
                    (2, f"never ran successfully since declared {_ago(now - first_declared)} ago")
                )
            else:
                problems.append((2, f"missed: expected a run {_ago(late)} ago"))
    max_failures = spec.max_failures if spec is not None else 1
    if streak:
        severity = 2 if streak >= max_failures else 1
        last_failed = next(r for r in history if r.outcome not in NOT_DECISIVE)
        code = "" if last_failed.exit_code is None else f", exit {last_failed.exit_code}"
        limit = f"CRITICAL at {max_failures}; " if spec is not None else ""
        problems.append(
            (
                severity,
                f"{streak} failed run{'s' if streak != 1 else ''} in a row"
                f" ({limit}last {last_failed.outcome}{code})",
            )
        )
    if (
        running_for is not None
        and spec is not None
        and spec.max_duration is not None
        and running_for > spec.max_duration
    ):
        problems.append(
            (
                1,
                f"running for {_ago(running_for)}, longer than max_duration"
                f" {format_duration(spec.max_duration)}",
            )
        )

    if success_at is not None:
        where = f" on {success_host}" if success_host else ""
        happened = f"last success {_ago(now - success_at)} ago{where}"
    elif last is not None:
        happened = f"no success yet; last run {_ago(now - last.started_at)} ago ({last.outcome})"
    elif first_declared is not None:
        happened = f"never ran; declared {_ago(now - first_declared)} ago"
    else:
        happened = "never ran"
    severity = max((p[0] for p in problems), default=0)
    if spec is None:  # only seen in history: nothing says when it is critical
        severity = min(severity, 1)
    status = ("OK", "WARNING", "CRITICAL")[severity]
    message = (
        f"expected {expected}, {happened}" if spec is not None else f"not declared; {happened}"
    )
    if problems:
        message += "; " + "; ".join(text for _, text in sorted(problems, key=lambda p: -p[0]))
    return JobStatus(
        name=name,
        declared=spec is not None,
        status=status,
        message=message,
        schedule=expected,
        last_run_at=None if last is None else last.started_at,
        last_outcome=None if last is None else last.outcome,
        last_success_at=success_at,
        last_success_host=success_host,
        next_expected_at=next_expected,
        consecutive_failures=streak,
        running_for=running_for,
        success_age=age,
        declared_at=first_declared,
        overdue=overdue,
    )


def declared_at(records: Any, name: str, now: float) -> float:
    """When job ``name`` was first declared (recorded in the state store on first sight)."""
    return _declared(records, name, now)[0]


def _declared(records: Any, name: str, now: float) -> tuple[float, list[Any]]:
    """``declared_at``, and the expected runs kept in the same record (``_kept_times``).
    Read first: the record is written only when it has no usable ``declared_at`` yet, so a
    status (/metrics, /api/jobs) needs no write lock once the job was declared."""
    found: list[tuple[float, list[Any]]] = []

    def usable(value: Any) -> bool:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value <= now + 86400
        )

    current = records.get("kv", DECLARED_KEY.format(name))
    if isinstance(current, dict) and usable(current.get("declared_at")):
        kept = current.get("expected")
        return float(current["declared_at"]), kept if isinstance(kept, list) else []

    def step(current: dict[str, Any] | None) -> dict[str, Any]:
        found.clear()
        record = dict(current or {})
        value = record.get("declared_at")
        if not usable(value):
            record["declared_at"] = now  # absent, unreadable or far in the future: from now
        kept = record.get("expected")
        found.append((float(record["declared_at"]), kept if isinstance(kept, list) else []))
        return record

    records.update("kv", DECLARED_KEY.format(name), step)
    return found[-1] if found else (now, [])


def job_status(
    records: Any, name: str, spec: JobSettings, runs: Iterable[RunRecord], now: float
) -> JobStatus:
    """The status of declared job ``name`` (``evaluate_job``), recording when it was first
    declared and keeping its cron schedule's expected runs in its record (written only when
    they were worked out again; a failed write changes nothing but the next start's cost)."""
    first, kept = _declared(records, name, now)
    mine = list(kept)
    status = evaluate_job(name, spec, runs, now=now, first_declared=first, kept=mine)
    if mine != kept:
        fresh = mine[-EXPECTED_KEPT:]

        def keep(current: dict[str, Any] | None) -> dict[str, Any]:
            record = dict(current or {})
            record.setdefault("declared_at", first)
            record["expected"] = fresh
            return record

        from reliactl.errors import ReliactlError

        try:
            records.update("kv", DECLARED_KEY.format(name), keep)
        except (ReliactlError, OSError):
            pass
    return status


def job_statuses(
    jobs: Mapping[str, JobSettings],
    store: Any,
    *,
    now: float | None = None,
    limit: int = 200,
    include_seen: bool = True,
) -> list[JobStatus]:
    """Every declared job, then (``include_seen``) every other name found in run history."""
    when = time.time() if now is None else now
    out = []
    for name, spec in jobs.items():
        if store is not None:
            out.append(job_status(store, name, spec, store.runs(name, limit), when))
        else:
            out.append(evaluate_job(name, spec, [], now=when, first_declared=when))
    if include_seen and store is not None:
        seen = sorted({r.name for r in store.runs(None, 1000)} - set(jobs))
        for name in seen:
            out.append(evaluate_job(name, None, store.runs(name, limit), now=when))
    return out
