"""Health's records (debounce counters, alert claims): the state store's, or memory's.

Its own module so that monitor (which runs checks) and alerts (which claims deliveries) both
use it without importing each other.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from reliactl.errors import ReliactlError, StateError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.state import StateStore
    from reliactl.state.base import RunRecord

__all__ = ["Record", "RecordStore"]

Record = dict[str, "Any"]  # the string: Any is the type checker's only (no typing at run time)
# The kind of health.alertstate's records (silences, problems, what sinks were told). Named
# here so a caller can see that there are none without importing alertstate (issue 21).
ALERT_KIND = "alert"


class _Bound:
    """One ``RecordStore.bounded`` block: its wall-clock deadline, whether it ended, and the
    first operation it gave up. Each block has its own (a check thread left over from one
    round never spends nor reports in the next)."""

    __slots__ = ("deadline", "ended", "given_up")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + max(0.0, seconds)
        self.ended = False
        self.given_up: ReliactlError | None = None


class RecordStore:
    """A thread-safe view of the state store's records, or an in-memory stand-in."""

    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store
        self._memory: dict[tuple[str, str], Record] = {}
        self._lock = threading.Lock()  # the store's operations, one at a time
        self._memory_lock = threading.Lock()  # the memory's (never waits on the store)
        self._bound: _Bound | None = None  # ``bounded``: the block going on
        self._last: _Bound | None = None  # ``bounded``: the last block (``given_up``)

    @property
    def given_up(self) -> ReliactlError | None:
        """The first store operation the last ``bounded`` block gave up (None: none)."""
        return None if self._last is None else self._last.given_up

    @contextlib.contextmanager
    def bounded(self, seconds: float) -> Iterator[None]:
        """Within: the store operations made through this view, by any thread (a round's
        checks run in threads of their own: ``round_view``), wait on a store another process
        holds locked (``state.base.bounded_waits``) and for each other only until ``seconds``
        after the block began: a deadline, not a budget (concurrent operations do not add up,
        and one given up costs the others nothing). One that fails (busy past the deadline,
        or the store broke) is done in memory instead, as without a store (a debounce streak
        counts from what this process saw), and ``given_up`` keeps the first such error of
        the block (None: all went to the store). An operation of a thread that outlives the
        block (an abandoned check) is done in memory at once."""
        bound = _Bound(seconds)
        self._bound = self._last = bound
        try:
            yield
        finally:
            bound.ended = True
            self._bound = None

    def round_view(self) -> RecordStore | _RoundView:
        """What a round's checks use: within ``bounded``, a view tied to this block (its
        operations after the block ends are done in memory at once, never bounded by the
        next block); else this view itself."""
        bound = self._bound
        return self if bound is None else _RoundView(self, bound)

    def _store_op(
        self,
        op: Callable[[StateStore], Any],
        in_memory: Callable[[ReliactlError | None], Any],
        bound: _Bound | None,
    ) -> Any:
        """``op(store)`` under the view's lock; within a ``bounded`` block, waiting for the
        lock (another check's operation) and in the store only until the block's deadline,
        and ``in_memory(error)`` instead when the store fails (``error``: why) or the block
        has ended (None)."""
        store = self.store
        assert store is not None
        if bound is None:
            with self._lock:
                return op(store)
        if bound.ended:  # an abandoned check's operation: its round is over
            return in_memory(None)
        from reliactl.state.base import bounded_waits

        try:
            if not self._lock.acquire(timeout=max(0.0, bound.deadline - time.monotonic())):
                raise StateError(
                    f"state store {store.location}: database is locked (another check's"
                    " operation waited on it until the deadline)"
                )
            try:
                with bounded_waits(store, max(0.0, bound.deadline - time.monotonic())):
                    return op(store)
            finally:
                self._lock.release()
        except ReliactlError as exc:
            if bound.given_up is None and not bound.ended:
                bound.given_up = exc
            return in_memory(exc)

    def get(self, kind: Any, key: str) -> Record | None:
        return self._get(kind, key, self._bound)

    def _get(self, kind: Any, key: str, bound: _Bound | None) -> Record | None:
        if self.store is not None:
            stored: Record | None = self._store_op(
                lambda store: store.get(kind, key), lambda _: self._memory_get(kind, key), bound
            )
            return stored
        return self._memory_get(kind, key)

    def _memory_get(self, kind: Any, key: str) -> Record | None:
        with self._memory_lock:
            found = self._memory.get((kind, key))
            return None if found is None else dict(found)

    def history(self, check: str, since: float) -> list[tuple[float, float]]:
        """A check's recorded values since ``since``, oldest first: each older aggregate's
        mean (at its bucket's middle), then the raw points. Empty without a state store."""
        return self._history(check, since, self._bound)

    def _history(self, check: str, since: float, bound: _Bound | None) -> list[tuple[float, float]]:
        if self.store is None:
            return []
        aggregates, points = self._store_op(
            lambda store: (
                store.health_aggregates(check, since),
                store.health_points(check, since),
            ),
            lambda _: ([], []),
            bound,
        )
        out = [(a.start + a.seconds / 2, a.mean) for a in aggregates if a.mean is not None]
        out += [(p.at, p.value) for p in points if p.value is not None]
        return out

    def runs(self, name: str, limit: int) -> list[RunRecord]:
        """Job ``name``'s run history in the store, newest first (the ``job`` check's), bounded
        as every operation of this view; ``[]`` without a store. Raises the store's error
        (StateError) when its answer was given up (busy past the deadline, broken) or the
        block ended: memory has no history, and a job judged without its runs would be judged
        wrong (the caller says it was not read)."""
        return self._runs(name, limit, self._bound)

    def _runs(self, name: str, limit: int, bound: _Bound | None) -> list[RunRecord]:
        if self.store is None:
            return []

        def not_read(exc: ReliactlError | None) -> list[RunRecord]:
            raise exc if exc is not None else StateError("the health round it was for is over")

        found: list[RunRecord] = self._store_op(
            lambda store: store.runs(name, limit), not_read, bound
        )
        return found

    def items(self, kind: Any) -> dict[str, Record]:
        """Every record of ``kind``, by key."""
        return self._items(kind, self._bound)

    def _items(self, kind: Any, bound: _Bound | None) -> dict[str, Record]:
        if self.store is not None:
            every: dict[str, Record] = self._store_op(
                lambda store: store.items(kind), lambda _: self._memory_items(kind), bound
            )
            return every
        return self._memory_items(kind)

    def _memory_items(self, kind: Any) -> dict[str, Record]:
        with self._memory_lock:
            return {k: dict(rec) for (found, k), rec in self._memory.items() if found == kind}

    def update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        return self._update(kind, key, fn, self._bound)

    def _update(
        self,
        kind: Any,
        key: str,
        fn: Callable[[Record | None], Record | None],
        bound: _Bound | None,
    ) -> Record | None:
        if self.store is not None:
            new: Record | None = self._store_op(
                lambda store: store.update(kind, key, fn),
                lambda _: self._memory_update(kind, key, fn),
                bound,
            )
            return new
        return self._memory_update(kind, key, fn)

    def _memory_update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        with self._memory_lock:
            current = self._memory.get((kind, key))
            new = fn(None if current is None else dict(current))
            if new is None:
                self._memory.pop((kind, key), None)
            else:
                self._memory[(kind, key)] = dict(new)
            return new


class _RoundView:
    """A RecordStore as one ``bounded`` block's checks see it (``RecordStore.round_view``):
    its operations are bounded by that block's deadline, and done in memory once it ended."""

    __slots__ = ("_bound", "_records")

    def __init__(self, records: RecordStore, bound: _Bound) -> None:
        self._records, self._bound = records, bound

    @property
    def store(self) -> StateStore | None:
        return self._records.store

    def get(self, kind: Any, key: str) -> Record | None:
        return self._records._get(kind, key, self._bound)

    def history(self, check: str, since: float) -> list[tuple[float, float]]:
        return self._records._history(check, since, self._bound)

    def items(self, kind: Any) -> dict[str, Record]:
        return self._records._items(kind, self._bound)

    def runs(self, name: str, limit: int) -> list[RunRecord]:
        return self._records._runs(name, limit, self._bound)

    def update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        return self._records._update(kind, key, fn, self._bound)
