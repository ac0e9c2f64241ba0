"""The shared store with a rule for when Redis is away (``state.on_unavailable``).

``FleetStore`` forwards every call to the Redis store. When Redis cannot be reached (at open,
or in the middle of a run: killed, partitioned), it warns once, and from then on it does not ask
Redis again for ``RETRY_REMOTE_S`` (so a hung Redis costs one timeout, not one per call); a
long-lived process (``serve``, ``health --watch``) then pings it, ships what it queued, and
goes back to Redis with one line saying so. Meanwhile:

- records (breakers, rate-limit buckets, alert cooldowns, kv) follow the mode: ``local`` uses
  the host's own SQLite store (``state.path``); ``closed`` keeps breakers and rate limits in
  this process's memory (calls go through, as if every breaker were closed) and alert
  cooldowns and kv in the SQLite store; ``open`` treats every breaker as open (forced: calls
  are refused, exit 69), refuses rate-limit tokens (StateUnavailableError) and keeps alert
  cooldowns and kv in the SQLite store (a page is never dropped for want of Redis);
- history (runs, breaker transitions) is written to the SQLite store and queued in its
  outbox, in every mode: ``sync`` ships it when Redis answers again (the next command that
  opens the store, or ``reliactl state sync``), marked ``delayed``, exactly once (each item's
  origin is remembered on Redis).

Mode ``error`` does not use this class: the Redis store's errors reach the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from reliactl.errors import StateError, StateUnavailableError
from reliactl.hostname import hostname
from reliactl.state.base import (
    BreakerEvent,
    EventUpdater,
    HealthAggregate,
    HealthEvent,
    HealthPoint,
    PruneReport,
    Record,
    RecordKind,
    RunRecord,
    Updater,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any

    from reliactl.state.redis import RedisStateStore
    from reliactl.state.sqlite import SQLiteStateStore
else:  # without the dataclasses module (issue 21; see _records)
    from reliactl._records import dataclass

MODES = ("local", "open", "closed")
SHIP_AT_OPEN = 200  # items shipped by a command's start; `state sync` ships everything
RETRY_REMOTE_S = 30.0  # how long a degraded store waits before asking Redis again


@dataclass(frozen=True)
class SyncReport:
    """What one shipping pass did."""

    shipped: int  # items added to (or finished on) the shared store
    duplicates: int  # items the shared store already had (shipped before)
    dropped: int  # queued items whose local row was gone (pruned)
    left: int  # items still queued (Redis went away again, or the limit was reached)


def event_origin(event: BreakerEvent) -> str:
    """A breaker event's origin: its host, breaker, transition and exact time. The same
    for its copy in a Redis outbox and in a host's queue (a lost EXEC reply leaves both),
    so the stream gets it once; events are told apart by time (``time.time()``, one
    transition per breaker at a time)."""
    return (
        f"event|{event.host or hostname()}|{event.name}|{event.from_state}|{event.to_state}|"
        f"{float(event.at)!r}"
    )


def origin_of(kind: str, local_path: str, local_id: int, at: float) -> str:
    """Where an item came from, unique across hosts and stores: what makes shipping
    idempotent (a store recreated after corruption reuses ids, never their start times)."""
    return f"{kind}|{hostname()}|{local_path}|{local_id}|{at!r}"


def sync(remote: RedisStateStore, local: SQLiteStateStore, limit: int | None = None) -> SyncReport:
    """Ship the local outbox to Redis, oldest first, each item once.

    A StateUnavailableError from Redis stops the pass (what is left stays queued); nothing
    is removed from the outbox before Redis confirmed it.
    """
    shipped = duplicates = dropped = 0
    done = 0
    after = 0
    path = str(local.path)
    while limit is None or done < limit:
        batch = local.queued(min(500, limit - done) if limit is not None else 500, after)
        if not batch:
            break
        for queue_id, kind, ref, remote_id, queued_at in batch:
            done += 1
            after = queue_id
            extra = {"delayed": True, "queued_at": queued_at}
            if kind == "run":
                run = local.run_by_id(ref)
                if run is None:
                    dropped += 1
                elif run.ended_at is None and time.time() - run.started_at < 7 * 86400:
                    continue  # still running here: shipped once it ends (it stays queued)
                else:
                    shipped_run = RunRecord(
                        name=run.name,
                        command=run.command,
                        started_at=run.started_at,
                        ended_at=run.ended_at,
                        attempts=run.attempts,
                        exit_code=run.exit_code,
                        outcome=run.outcome,
                        data={**run.data, **extra},
                    )
                    origin = origin_of("run", path, ref, run.started_at)
                    if remote.ship_run(origin, shipped_run, remote_id):
                        shipped += 1
                    else:
                        duplicates += 1
            else:
                event = local.event_by_id(ref)
                if event is None:
                    dropped += 1
                else:
                    origin = event_origin(event)
                    marks = {"delayed": "1", "queued_at": repr(queued_at)}
                    if remote.ship_event(origin, event, marks):
                        shipped += 1
                    else:
                        duplicates += 1
            local.dequeue(queue_id)
    return SyncReport(shipped, duplicates, dropped, local.queued_count())


def forced_open_record(wall: float) -> Record:
    """A breaker record every breaker reads as open (tripped by hand): mode ``open``."""
    return {
        "state": "open",
        "forced": True,
        "opened_at": wall,
        "since": wall,
        "last_failure": "the shared state store is unreachable (state.on_unavailable: open)",
        "last_failure_at": wall,
    }


class _MemoryRecords:
    """Records kept in this process only (mode ``closed``: breakers and rate limits)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], Record] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: str) -> Record | None:
        with self._lock:
            return self._data.get((kind, key))

    def update(self, kind: str, key: str, fn: Updater) -> Record | None:
        with self._lock:
            new = fn(self._data.get((kind, key)))
            if new is None:
                self._data.pop((kind, key), None)
            else:
                self._data[(kind, key)] = new
            return new

    def items(self, kind: str) -> dict[str, Record]:
        with self._lock:
            return {k: v for (c, k), v in sorted(self._data.items()) if c == kind}

    def delete(self, kind: str, key: str) -> bool:
        with self._lock:
            return self._data.pop((kind, key), None) is not None


class FleetStore:
    """A StateStore on Redis that degrades to the host as ``mode`` says (see the module)."""

    thread_safe = True  # its stores are; switching between them is under ``_lock``

    def __init__(
        self,
        remote: RedisStateStore | None,
        open_local: Callable[[], SQLiteStateStore],
        *,
        mode: str,
        location: str,
        warn: Callable[[str], None],
        reason: StateUnavailableError | None = None,
        clock: Callable[[], float] = time.time,
        retry_after: float = RETRY_REMOTE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown state.on_unavailable mode {mode!r}")
        self.mode = mode
        self._remote = remote
        self._open_local = open_local
        self._local: SQLiteStateStore | None = None
        self._location = location
        self._warn = warn
        self._clock = clock
        self._memory = _MemoryRecords()
        self._lock = threading.RLock()
        self._local_runs: set[int] = set()
        self._retry_after = retry_after
        self._monotonic = monotonic
        self._degraded_at = 0.0
        self._reason: StateUnavailableError | None = None
        self.degraded = False
        if remote is None:
            self._degrade(reason or StateUnavailableError(f"state store {location}: unreachable"))

    # ---- switching

    @property
    def shared(self) -> bool:
        """Several hosts share the records (breakers count skew by ``opened_by``,
        breaker.py) while Redis answers; fallen back, they are this host's alone."""
        return not self.degraded

    @property
    def location(self) -> str:
        return self._location

    @property
    def remote(self) -> RedisStateStore | None:
        """The Redis store while it answers; None while degraded (asked again, and the queue
        shipped, once ``retry_after`` seconds have passed)."""
        if not self.degraded:
            return self._remote
        if self._remote is None or self._monotonic() - self._degraded_at < self._retry_after:
            return None
        with self._lock:  # one thread asks; another one finding it back asks again: harmless
            self._degraded_at = self._monotonic()
            try:
                self._remote.ping()
                report = sync(self._remote, self.local(), limit=SHIP_AT_OPEN)
            except StateUnavailableError:
                return None
            except StateError as exc:  # answers, but refuses (full, auth): stay local
                self._warn(f"{self._location} answers again but cannot take the queue: {exc}")
                return None
            self.degraded = False
            self._warn(
                f"{self._location} answers again; {report.shipped} queued items shipped,"
                f" {report.left} left"
            )
            return self._remote

    def unreachable(self) -> StateUnavailableError | None:
        """Why Redis is taken as away, while it is and will not be asked again yet (degraded
        less than ``retry_after`` ago); else None. What else this command would connect to
        the same Redis for (the fleet lock's leases, jobs.py) fails with it at once instead
        of paying the connect timeout a second time."""
        with self._lock:
            if self.degraded and self._monotonic() - self._degraded_at < self._retry_after:
                return self._reason
            return None

    def local(self) -> SQLiteStateStore:
        """The host's SQLite store (opened on first use)."""
        with self._lock:
            if self._local is None:
                self._local = self._open_local()
            return self._local

    def _degrade(self, exc: StateUnavailableError) -> None:
        with self._lock:
            if self.degraded:
                return
            self.degraded = True
            self._degraded_at = self._monotonic()
            self._reason = exc
            what = {
                "local": "using this host's store",
                "closed": "breakers and rate limits in memory (calls go through), the rest in",
                "open": "every breaker open and no rate-limit tokens, the rest in",
            }[self.mode]
            try:
                where = self.local().location
            except StateError as local_exc:
                where = f"(unusable: {local_exc})"
            self._warn(
                f"{exc}; {what} {where} (state.on_unavailable: {self.mode});"
                " history is queued and shipped when Redis answers (reliactl state sync)"
            )

    def _shared(self, remote_op: Callable[[RedisStateStore], Any]) -> tuple[bool, Any]:
        """(True, result) from Redis, or (False, None) once Redis is (or just became) away."""
        remote = self.remote
        if remote is None:
            return False, None
        try:
            return True, remote_op(remote)
        except StateUnavailableError as exc:
            self._degrade(exc)
            return False, None

    def _records(self, kind: RecordKind) -> Any:
        if self.mode == "closed" and kind in ("breaker", "rate"):
            return self._memory
        if self.mode == "open" and kind == "rate":
            raise StateUnavailableError(
                f"state store {self._location}: unreachable, and state.on_unavailable is open:"
                " no rate-limit tokens are handed out until it answers"
            )
        return self.local()

    # ---- records

    def get(self, kind: RecordKind, key: str) -> Record | None:
        ok, result = self._shared(lambda r: r.get(kind, key))
        if ok:
            return result  # type: ignore[no-any-return]
        if self.mode == "open" and kind == "breaker":
            return forced_open_record(self._clock())
        return self._records(kind).get(kind, key)  # type: ignore[no-any-return]

    def update(self, kind: RecordKind, key: str, fn: Updater) -> Record | None:
        ok, result = self._shared(lambda r: r.update(kind, key, fn))
        if ok:
            return result  # type: ignore[no-any-return]
        if self.mode == "open" and kind == "breaker":
            return fn(forced_open_record(self._clock()))  # seen, never stored
        return self._records(kind).update(kind, key, fn)  # type: ignore[no-any-return]

    def update_with_events(
        self,
        kind: RecordKind,
        key: str,
        fn: EventUpdater,
    ) -> Record | None:
        """``update`` whose ``fn`` also returns breaker events: on Redis they commit with the
        record (its outbox, see state/redis.py); while Redis is away the record is updated
        as ``update`` says and the events are queued in this host's store, as ``add_event``
        queues them."""
        tried: list[BreakerEvent] = []  # the events of the last attempt sent to Redis

        def remote_fn(record: Record | None) -> tuple[Record | None, Sequence[BreakerEvent]]:
            new, events = fn(record)
            tried[:] = events
            return new, events

        ok, result = self._shared(lambda r: r.update_with_events(kind, key, remote_fn))
        if ok:
            return result  # type: ignore[no-any-return]
        events: list[BreakerEvent] = []

        def inner(record: Record | None) -> Record | None:
            new, got = fn(record)
            # The same transitions as the attempt sent to Redis, whose EXEC may have
            # committed with its reply lost (a timeout): queue that attempt's events, so the
            # copy in Redis's outbox and this one have the same origin
            # (redis.event_origin) and the stream gets one of them.
            same = [(e.name, e.from_state, e.to_state) for e in got] == [
                (e.name, e.from_state, e.to_state) for e in tried
            ]
            events[:] = tried if same else got
            return new

        if self.mode == "open" and kind == "breaker":
            new = inner(forced_open_record(self._clock()))  # seen, never stored
        else:
            new = self._records(kind).update(kind, key, inner)
        for event in events:
            self.local().queue_event(event)
        return new

    def items(self, kind: RecordKind) -> dict[str, Record]:
        ok, result = self._shared(lambda r: r.items(kind))
        if ok:
            return result  # type: ignore[no-any-return]
        if self.mode == "open" and kind in ("breaker", "rate"):
            return {}
        return self._records(kind).items(kind)  # type: ignore[no-any-return]

    def delete(self, kind: RecordKind, key: str) -> bool:
        ok, result = self._shared(lambda r: r.delete(kind, key))
        if ok:
            return bool(result)
        if self.mode == "open" and kind in ("breaker", "rate"):
            return False
        return bool(self._records(kind).delete(kind, key))

    # ---- history: queued locally while Redis is away

    def add_event(self, event: BreakerEvent) -> None:
        ok, _ = self._shared(lambda r: r.add_event(event))
        if ok:
            return
        self.local().queue_event(event)

    def events(self, name: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        ok, result = self._shared(lambda r: r.events(name, limit))
        if ok:
            return result  # type: ignore[no-any-return]
        return self.local().events(name, limit)

    def add_run(self, run: RunRecord) -> int:
        ok, result = self._shared(lambda r: r.add_run(run))
        if ok:
            return int(result)
        run_id = self.local().queue_run(run)
        self._local_runs.add(run_id)
        return run_id

    def finish_run(self, run_id: int, run: RunRecord) -> None:
        if run_id in self._local_runs:
            self.local().finish_run(run_id, run)
            return
        ok, _ = self._shared(lambda r: r.finish_run(run_id, run))
        if ok:
            return
        # Started on Redis, ended while it is away: queued to finish that record in place.
        self.local().queue_run(run, remote_id=run_id)

    def runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        ok, result = self._shared(lambda r: r.runs(name, limit))
        if ok:
            return result  # type: ignore[no-any-return]
        return self.local().runs(name, limit)

    # ---- the rest: Redis, else the host's store

    def prune(
        self,
        now: float,
        retention: float,
        max_rows: int,
        keep_breaker: Callable[[str, Record], bool] | None = None,
    ) -> PruneReport:
        ok, result = self._shared(lambda r: r.prune(now, retention, max_rows, keep_breaker))
        if ok:
            return result  # type: ignore[no-any-return]
        return self.local().prune(now, retention, max_rows, keep_breaker)

    def add_health_points(self, points: Sequence[HealthPoint]) -> None:
        ok, _ = self._shared(lambda r: r.add_health_points(points))
        if not ok:
            self.local().add_health_points(points)

    def health_points(self, check: str, since: float) -> list[HealthPoint]:
        ok, result = self._shared(lambda r: r.health_points(check, since))
        return result if ok else self.local().health_points(check, since)

    def health_aggregates(self, check: str, since: float) -> list[HealthAggregate]:
        ok, result = self._shared(lambda r: r.health_aggregates(check, since))
        return result if ok else self.local().health_aggregates(check, since)

    def health_checks(self) -> list[str]:
        ok, result = self._shared(lambda r: r.health_checks())
        return result if ok else self.local().health_checks()

    def add_health_event(self, event: HealthEvent) -> None:
        ok, _ = self._shared(lambda r: r.add_health_event(event))
        if not ok:
            self.local().add_health_event(event)

    def health_events(
        self, check: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[HealthEvent]:
        ok, result = self._shared(lambda r: r.health_events(check, since, limit))
        return result if ok else self.local().health_events(check, since, limit)

    def compact_health(
        self, now: float, raw_retention: float, aggregate_retention: float, bucket: float
    ) -> int:
        ok, result = self._shared(
            lambda r: r.compact_health(now, raw_retention, aggregate_retention, bucket)
        )
        if ok:
            return int(result)
        return self.local().compact_health(now, raw_retention, aggregate_retention, bucket)

    def check(self) -> list[str]:
        ok, result = self._shared(lambda r: r.check())
        return result if ok else self.local().check()

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> FleetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
