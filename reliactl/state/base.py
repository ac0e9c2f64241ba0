"""The StateStore protocol: what reliactl keeps between processes.

Records are small JSON objects addressed by (kind, key). ``update`` is an atomic
read-modify-write across processes: the function sees the current record (or None) and
returns the new one (or None to delete it). Breakers, alert cooldowns, rate-limit buckets and
small samples (CPU times, debounce counters) are records of their own kind; breaker
transitions and runs are append-only history tables, bounded by retention.

Nothing outside ``reliactl.state`` knows which backend is in use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RecordKind = Literal["breaker", "alert", "rate", "kv"]
RECORD_KINDS: tuple[RecordKind, ...] = ("breaker", "alert", "rate", "kv")

Record = dict[str, Any]
Updater = Callable[[Record | None], Record | None]


@dataclass(frozen=True)
class BreakerEvent:
    """One breaker state transition."""

    name: str
    from_state: str
    to_state: str
    reason: str
    at: float  # wall-clock epoch seconds
    host: str | None = None  # the host that recorded it (shared backends; None on SQLite)


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


class StateStore(Protocol):
    """Persisted state shared by every reliactl process using the same store."""

    @property
    def location(self) -> str:
        """Where the state lives (a path, or a URL for a shared backend)."""
        ...

    def get(self, kind: RecordKind, key: str) -> Record | None:
        """The record, or None."""
        ...

    def update(self, kind: RecordKind, key: str, fn: Updater) -> Record | None:
        """Atomically replace the record by ``fn(current)`` (None deletes it); return it.

        ``fn`` may be called more than once (an optimistic backend calls it again when another
        client changed the record meanwhile); only the last call's result is stored, so
        anything ``fn`` reports to its caller must be reset at the start of each call.
        """
        ...

    def items(self, kind: RecordKind) -> dict[str, Record]:
        """Every record of a kind, by key."""
        ...

    def delete(self, kind: RecordKind, key: str) -> bool:
        """Remove a record; True if it existed."""
        ...

    def add_event(self, event: BreakerEvent) -> None:
        """Append a breaker transition."""
        ...

    def events(self, name: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        """The newest transitions first, of one breaker or all."""
        ...

    def add_run(self, run: RunRecord) -> int:
        """Append a run; returns its id (unique among every client of the store)."""
        ...

    def finish_run(self, run_id: int, run: RunRecord) -> None:
        """Replace a run's record (its end, attempts, exit code, outcome)."""
        ...

    def runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The newest runs first, of one name or all."""
        ...

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
        ...

    def check(self) -> list[str]:
        """Integrity problems found (empty when healthy)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
