"""Health's records (debounce counters, alert claims): the state store's, or memory's.

Its own module so that monitor (which runs checks) and alerts (which claims deliveries) both
use it without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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

    def get(self, kind: Any, key: str) -> Record | None:
        with self._lock:
            if self.store is not None:
                return self.store.get(kind, key)
            found = self._memory.get((kind, key))
            return None if found is None else dict(found)

    def history(self, check: str, since: float) -> list[tuple[float, float]]:
        """A check's recorded values since ``since``, oldest first: each older aggregate's
        mean (at its bucket's middle), then the raw points. Empty without a state store."""
        if self.store is None:
            return []
        with self._lock:
            aggregates = self.store.health_aggregates(check, since)
            points = self.store.health_points(check, since)
        out = [(a.start + a.seconds / 2, a.mean) for a in aggregates if a.mean is not None]
        out += [(p.at, p.value) for p in points if p.value is not None]
        return out

    def items(self, kind: Any) -> dict[str, Record]:
        """Every record of ``kind``, by key."""
        with self._lock:
            if self.store is not None:
                return self.store.items(kind)
            return {k: dict(rec) for (found, k), rec in self._memory.items() if found == kind}

    def update(
        self, kind: Any, key: str, fn: Callable[[Record | None], Record | None]
    ) -> Record | None:
        with self._lock:
            if self.store is not None:
                return self.store.update(kind, key, fn)
            current = self._memory.get((kind, key))
            new = fn(None if current is None else dict(current))
            if new is None:
                self._memory.pop((kind, key), None)
            else:
                self._memory[(kind, key)] = dict(new)
            return new
