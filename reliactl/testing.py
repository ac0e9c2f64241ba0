"""Test helpers for reliactl and for users' own test suites: time that never really passes.

``FakeClock`` gives a monotonic clock, a wall clock and sleep functions (sync and async) that
advance time instantly; pass ``clock.monotonic`` / ``clock.sleep`` where reliactl takes a
clock or a sleep, and no test ever waits for a backoff or a recovery timeout.

``zero_backoff()`` makes every backoff in the process zero (and can cap retries): RetryPolicy
and ``@retry``, the HTTP clients and ``run``'s retries all decide through
``reliactl.backoff.decide``, which it switches. For the test suites of programs that use
reliactl's retries without injecting a sleep.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


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


class zero_backoff:
    """Make every retry backoff zero in this process (all threads), so tests never sleep.

    Use as a context manager (``with zero_backoff():``), a decorator, or call ``enable()`` /
    ``disable()`` (e.g. from a pytest fixture or conftest). ``max_retries`` also caps the
    number of retries of every policy, for suites that want failures to surface fast. Hooks
    still run; on_retry sees a delay of 0. The previous setting is restored on exit.
    """

    def __init__(self, *, max_retries: int | None = None) -> None:
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self._saved: list[tuple[bool, int | None]] = []

    def enable(self) -> None:
        from reliactl import backoff

        self._saved.append((backoff._ZERO_BACKOFF, backoff._TEST_MAX_RETRIES))
        backoff._ZERO_BACKOFF = True
        backoff._TEST_MAX_RETRIES = self.max_retries

    def disable(self) -> None:
        from reliactl import backoff

        if self._saved:
            backoff._ZERO_BACKOFF, backoff._TEST_MAX_RETRIES = self._saved.pop()
        else:
            backoff._ZERO_BACKOFF, backoff._TEST_MAX_RETRIES = False, None

    def __enter__(self) -> zero_backoff:
        self.enable()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disable()

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_flags & 0x80:  # a coroutine function

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self:
                    return await fn(*args, **kwargs)  # type: ignore[misc]

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self:
                return fn(*args, **kwargs)

        return wrapper


def backoff_is_zero() -> bool:
    """Whether ``zero_backoff`` is in force."""
    from reliactl import backoff

    return backoff._ZERO_BACKOFF
