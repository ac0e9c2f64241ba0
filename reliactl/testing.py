"""Test helpers for reliactl and for users' own test suites: time that never really passes.

``FakeClock`` gives a monotonic clock, a wall clock and sleep functions (sync and async) that
advance time instantly; pass ``clock.monotonic`` / ``clock.sleep`` where reliactl takes a
clock or a sleep, and no test ever waits for a backoff or a recovery timeout.
"""

from __future__ import annotations

import threading


class FakeClock:
    """A controllable clock: ``sleep`` and ``advance`` move time forward instantly."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        """Wall-clock epoch seconds; ``set_wall`` makes it jump without moving monotonic time."""
        with self._lock:
            return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def set_wall(self, epoch: float) -> None:
        """Jump the wall clock (NTP step, operator error) to ``epoch``."""
        with self._lock:
            self._wall_offset = epoch - self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
