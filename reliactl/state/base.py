"""The StateStore protocol: what reliactl keeps between processes.

Records are small JSON objects addressed by (kind, key). ``update`` is an atomic
read-modify-write across processes: the function sees the current record (or None) and
returns the new one (or None to delete it). Breakers, alert cooldowns, rate-limit buckets and
small samples (CPU times, debounce counters) are records of their own kind; breaker
transitions and runs are append-only history tables, bounded by retention.

Nothing outside ``reliactl.state`` knows which backend is in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from dataclasses import dataclass, field
    from typing import Any, Literal, Protocol

    RecordKind = Literal["breaker", "alert", "rate", "kv"]
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, field

    # Without typing (~3 ms of every `run` and `health` start, issue 21): the type checker
    # reads the protocols below as typing.Protocol and checks stores structurally; at run
    # time they are plain base classes (a class may still name one as its base).
    Protocol = object
    RecordKind = str  # one of RECORD_KINDS (a Literal for the type checker)
    # The records' string annotations name Any: at run time it stands for object (any value),
    # so typing.get_type_hints and pydantic resolve them without this module importing typing.
    Any = object

RECORD_KINDS: tuple[RecordKind, ...] = ("breaker", "alert", "rate", "kv")

Record = dict[str, "Any"]  # the string: Any is the type checker's only
Updater = Callable[[Record | None], Record | None]


def path_text(path: str | os.PathLike[str]) -> str:
    """``str(pathlib.Path(path))`` without importing pathlib (with urllib.parse and
    ipaddress, ~3-4 ms of every `run` and `health` start): empty and ``.`` components
    dropped, repeated and trailing slashes collapsed, ``..`` kept (it is not resolved:
    a symbolic link may stand before it), a leading ``//`` kept as POSIX allows."""
    text = os.fspath(path)
    if text.startswith("/"):
        lead = "//" if text.startswith("//") and not text.startswith("///") else "/"
    else:
        lead = ""
    body = "/".join(part for part in text.split("/") if part and part != ".")
    return lead + body or "."


@dataclass(frozen=True)
class BreakerEvent:
    """One breaker state transition."""

    name: str
    from_state: str
    to_state: str
    reason: str
    at: float  # wall-clock epoch seconds
    host: str | None = None  # the host that recorded it (shared backends; None on SQLite)


# ``update_with_events``' fn: the new record (None deletes it) and the events to record with it.
EventUpdater = Callable[[Record | None], tuple[Record | None, Sequence[BreakerEvent]]]


@dataclass(frozen=True)
class RunRecord:
    """One `reliactl run` (after all its attempts), or one still running (ended_at None)."""

    name: str
    command: str
    started_at: float
    ended_at: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    outcome: str = "running"  # running | success | failure | timeout | signal | skipped | ...
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed."""

    events_removed: int
    runs_removed: int
    records_removed: int
    bytes_before: int
    bytes_after: int


@dataclass(frozen=True)
class HealthPoint:
    """One check's result at one moment (health history, raw)."""

    check: str
    at: float  # wall-clock epoch seconds
    status: str  # OK | WARNING | CRITICAL | UNKNOWN
    value: float | None


@dataclass(frozen=True)
class HealthAggregate:
    """A check's raw points of one bucket ``[start, start + seconds)`` folded together."""

    check: str
    start: float
    seconds: float
    count: int
    min: float | None
    max: float | None
    mean: float | None
    worst: str


@dataclass(frozen=True)
class HealthEvent:
    """A check's status change (OK -> CRITICAL, ...)."""

    check: str
    at: float
    from_status: str
    to_status: str
    message: str = ""
    host: str | None = None


_SEVERITY = {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe status word (as health.model.worst; OK < UNKNOWN < WARNING < CRITICAL)."""
    result = "OK"
    for status in statuses:
        if _SEVERITY.get(status, 1) > _SEVERITY.get(result, 1):
            result = status
    return result


def aggregate_points(points: Sequence[HealthPoint], bucket: float) -> list[HealthAggregate]:
    """Fold raw points into buckets aligned on multiples of ``bucket`` seconds (every backend).

    Deterministic: the same points always give the same aggregates, so two processes that
    compact the same bucket at once write the same values.
    """
    groups: dict[tuple[str, float], list[HealthPoint]] = {}
    for p in points:
        start = (p.at // bucket) * bucket
        groups.setdefault((p.check, start), []).append(p)
    out: list[HealthAggregate] = []
    for (check, start), members in sorted(groups.items()):
        values = [p.value for p in members if p.value is not None]
        out.append(
            HealthAggregate(
                check=check,
                start=start,
                seconds=bucket,
                count=len(members),
                min=min(values) if values else None,
                max=max(values) if values else None,
                mean=round(sum(values) / len(values), 6) if values else None,
                worst=worst_status(p.status for p in members),
            )
        )
    return out


class BreakerFastPath(Protocol):
    """Optional capabilities of a store for a persisted breaker's hot path (the SQLite store
    has them; a breaker looks them up with ``getattr`` and falls back to ``get``/``update``).

    ``breaker_state(key)``: the record's ``state`` without decoding the record; None when
    there is no record, "" when it cannot be read that way (the caller then uses ``get``).

    ``breaker_success(key, config_id, window_size)``: count one success atomically when it
    changes only the counters (the record is closed, has the ``config_id`` given, no
    consecutive failure and no failure in its window); False, writing nothing, otherwise.

    ``breaker_failure(key, config_id, limits, slow, reason, wall)``: count one failure of a
    closed breaker atomically when it opens nothing (the record has the ``config_id`` given;
    with ``limits`` = (window size, failure threshold, rate threshold or None, minimum calls
    for the rate), its consecutive failures stay under the threshold and the window with
    the failure in it does not reach the rate); False, writing nothing, otherwise.

    ``update_with_events(kind, key, fn)``: ``update`` whose ``fn`` returns ``(record,
    events)``; the breaker events are recorded in the same transaction as the record, so
    the event log follows the order of the state changes across processes (without it a
    breaker adds them with ``add_event`` after the update).

    ``breaker_rejection(key, config_id, now)``: count one rejection atomically when the
    record is open with no transition due at ``now``; its ``(opened_at, open_for)``, or None,
    writing nothing, otherwise.
    """

    def breaker_state(self, key: str) -> str | None: ...

    def breaker_success(self, key: str, config_id: str, window_size: int) -> bool: ...

    def breaker_failure(
        self,
        key: str,
        config_id: str,
        limits: tuple[int, int, float | None, int],
        slow: bool,
        reason: str,
        wall: float,
    ) -> bool: ...

    def breaker_rejection(
        self, key: str, config_id: str, now: float
    ) -> tuple[float, float | None] | None: ...


class StateStore(Protocol):
    """Persisted state shared by every reliactl process using the same store.

    A store that several threads may use at once says so with a class attribute
    ``thread_safe = True`` (the SQLite, Redis and fleet stores do); a persisted breaker
    serialises its operations on any other store, per store. A store that several hosts
    share says so with ``shared = True`` (the Redis and fleet stores): a persisted breaker
    then clamps an ``opened_at`` ahead of this host's clock only when this host wrote it
    (``breaker._open_since``); on any other store (SQLite: one host) it always does.
    """

    @property
    def location(self) -> str:
        """Where the state lives (a path, or a URL for a shared backend)."""

    def get(self, kind: RecordKind, key: str) -> Record | None:
        """The record, or None."""

    def update(self, kind: RecordKind, key: str, fn: Updater) -> Record | None:
        """Atomically replace the record by ``fn(current)`` (None deletes it); return it.

        ``fn`` may be called more than once (an optimistic backend calls it again when another
        client changed the record meanwhile); only the last call's result is stored, so
        anything ``fn`` reports to its caller must be reset at the start of each call.
        """

    def items(self, kind: RecordKind) -> dict[str, Record]:
        """Every record of a kind, by key."""

    def delete(self, kind: RecordKind, key: str) -> bool:
        """Remove a record; True if it existed."""

    def add_event(self, event: BreakerEvent) -> None:
        """Append a breaker transition."""

    def events(self, name: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        """The newest transitions first, of one breaker or all."""

    def add_run(self, run: RunRecord) -> int:
        """Append a run; returns its id (unique among every client of the store)."""

    def finish_run(self, run_id: int, run: RunRecord) -> None:
        """Replace a run's record (its end, attempts, exit code, outcome)."""

    def runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The newest runs first, of one name or all."""

    def prune(
        self,
        now: float,
        retention: float,
        max_rows: int,
        keep_breaker: Callable[[str, Record], bool] | None = None,
    ) -> PruneReport:
        """Remove history older than ``retention`` seconds or beyond ``max_rows``; vacuum.

        Breaker records not updated within ``retention`` go too when ``keep_breaker`` is
        given and answers False for them (it keeps open and configured ones); without it
        breaker records are kept.
        """

    def add_health_points(self, points: Sequence[HealthPoint]) -> None:
        """Append raw health history points (one per check of a health run)."""

    def health_points(self, check: str, since: float) -> list[HealthPoint]:
        """A check's raw points at or after ``since``, oldest first."""

    def health_aggregates(self, check: str, since: float) -> list[HealthAggregate]:
        """A check's aggregates whose bucket ends after ``since``, oldest first."""

    def health_checks(self) -> list[str]:
        """Every check with history (raw points or aggregates), sorted."""

    def add_health_event(self, event: HealthEvent) -> None:
        """Append a check's status change."""

    def health_events(
        self, check: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[HealthEvent]:
        """Status changes at or after ``since``, newest first, of one check or all."""

    def compact_health(
        self, now: float, raw_retention: float, aggregate_retention: float, bucket: float
    ) -> int:
        """Fold raw points older than ``raw_retention`` into ``bucket`` aggregates (whole
        buckets only, see aggregate_points), drop aggregates and events older than
        ``aggregate_retention``; returns the number of raw points folded. Safe to run from
        several processes at once."""

    def check(self) -> list[str]:
        """Integrity problems found (empty when healthy)."""

    def close(self) -> None:
        """Release the connection."""


def store_busy(exc: BaseException) -> bool:
    """Whether a store error is SQLite's "database is locked/busy": another process held the
    write lock for longer than the caller would wait (``bounded_waits``)."""
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    return "database is locked" in str(exc) or "database is busy" in str(exc)


def bounded_waits(store: object, seconds: float) -> AbstractContextManager[None]:
    """``store.bounded_waits(seconds)`` when the store has it (SQLite: this thread's waits on
    another process's write lock end after ``seconds`` in all), else nothing to bound (Redis
    has its own ``state.operation_timeout``)."""
    bound = getattr(store, "bounded_waits", None)
    if bound is None:
        import contextlib

        return contextlib.nullcontext()
    result: AbstractContextManager[None] = bound(seconds)
    return result
