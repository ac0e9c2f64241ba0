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

__all__ = ["Record", "RecordStore"]

Record = dict[str, "Any"]  # the string: Any is the type checker's only (no typing at run time)
# The kind of health.alertstate's records (silences, problems, what sinks were told). Named
# here so a caller can see that there are none without importing alertstate (issue 21).
ALERT_KIND = "alert"


class RecordStore:
    """A thread-safe view of the state store's records, or an in-memory stand-in."""

    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store
        self._memory: dict[tuple[str, str], Record] = {}
        self._lock = threading.Lock()
        self._left: float | None = None  # ``bounded``: what the store operations may still wait
        self.given_up: ReliactlError | None = None  # ``bounded``: the first operation given up

    @contextlib.contextmanager
    def bounded(self, seconds: float) -> Iterator[None]:
        """Within: the store operations made through this view, by any thread (a round's
        checks run in threads of their own), wait at most about ``seconds`` in all on a store
        another process holds locked (``state.base.bounded_waits``, spent as it spends). One
        that fails (busy past that, or the store broke) is done in memory instead, as without
        a store (a debounce streak counts from what this process saw), and ``given_up``
        keeps the first such error of the block (None: all went to the store)."""
        self._left, self.given_up = max(0.0, seconds), None
        try:
            yield
        finally:
            self._left = None

    def _store_op(self, op: Callable[[StateStore], Any], in_memory: Callable[[], Any]) -> Any:
        """``op(store)`` under the view's lock; within ``bounded``, waiting for the lock (another
        check's operation) and in the store only what is left, and ``in_memory()`` instead
        when the store fails."""
        store = self.store
        assert store is not None
        left = self._left
        if left is None:
            with self._lock:
                return op(store)
        from reliactl.state.base import bounded_waits

        started = time.monotonic()
        try:
            if not self._lock.acquire(timeout=left):
                self._left = None if self._left is None else 0.0
                raise StateError(
                    f"state store {store.location}: database is locked (another check is"
                    " waiting on it)"
                )
            try:
                left = self._left  # another thread may have spent some meanwhile
                if left is None:  # the block ended meanwhile (an abandoned check's operation)
                    return op(store)
                left -= time.monotonic() - started
                began = time.monotonic()
                try:
                    with bounded_waits(store, max(0.0, left)):
                        return op(store)
                finally:
                    if self._left is not None:
                        self._left = max(0.0, left - (time.monotonic() - began))
            finally:
                self._lock.release()
        except ReliactlError as exc:
            if self._left is None:  # not bounded any more: the caller sees the error
                raise
            if self.given_up is None:
                self.given_up = exc
        return in_memory()

    def get(self, kind: Any, key: str) -> Record | None:
        if self.store is not None:
            stored: Record | None = self._store_op(
                lambda store: store.get(kind, key), lambda: self._memory_get(kind, key)
            )
            return stored
        return self._memory_get(kind, key)

    def _memory_get(self, kind: Any, key: str) -> Record | None:
        with self._lock:
            found = self._memory.get((kind, key))
            return None if found is None else dict(found)

    def history(self, check: str, since: float) -> list[tuple[float, float]]:
        """A check's recorded values since ``since``, oldest first: each older aggregate's
        mean (at its bucket's middle), then the raw points. Empty without a state store."""
        if self.store is None:
            return []
        aggregates, points = self._store_op(
            lambda store: (
                store.health_aggregates(check, since),
                store.health_points(check, since),
            ),
            lambda: ([], []),
        )
        out = [(a.start + a.seconds / 2, a.mean) for a in aggregates if a.mean is not None]
        out += [(p.at, p.value) for p in points if p.value is not None]
        return out

    def items(self, kind: Any) -> dict[str, Record]:
        """Every record of ``kind``, by key."""
        if self.store is not None:
            every: dict[str, Record] = self._store_op(
                lambda store: store.items(kind), lambda: self._memory_items(kind)
            )
            return every
        return self._memory_items(kind)

    def _memory_items(self, kind: Any) -> dict[str, Record]:
        with self._lock:
            return {k: dict(rec) for (found, k), rec in self._memory.items() if found == kind}

    def update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        if self.store is not None:
            new: Record | None = self._store_op(
                lambda store: store.update(kind, key, fn),
                lambda: self._memory_update(kind, key, fn),
            )
            return new
        return self._memory_update(kind, key, fn)

    def _memory_update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        with self._lock:
            current = self._memory.get((kind, key))
            new = fn(None if current is None else dict(current))
            if new is None:
                self._memory.pop((kind, key), None)
            else:
                self._memory[(kind, key)] = dict(new)
            return new
