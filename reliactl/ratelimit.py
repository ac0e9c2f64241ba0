"""Token-bucket rate limiting, in memory or shared by processes through the state store.

A limiter holds one bucket per rate of its spec ("60/minute;1000/hour"): a bucket of
``count`` tokens, full at first, refilled evenly at ``count / per`` tokens a second. A request
of weight ``w`` takes ``w`` tokens from every bucket at once, or from none. So "60/minute"
allows a burst of 60 and then one request a second; add "5/second" to cap the burst too.

``try_acquire`` never waits. ``acquire`` waits until the tokens are there, at most until its
deadline (``timeout``): when the wait it would need is already longer than the time left, it
raises :class:`~reliactl.errors.RateLimitExceeded` at once (tokens are never given back, so
the wait can only grow) with ``retry_after`` set to that wait.

With a ``store``, the buckets are one record of kind "rate" keyed by the limiter's key, read
and written in one atomic ``store.update``: every process (cron runs, parallel CI jobs) that
uses the same key and store shares one budget. Persisted time is wall-clock epoch seconds; a
clock that steps back counts as no time passed, never as "forever".

This module imports nothing heavy (no httpx): the HTTP client and the CLI build on it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reliactl.config import parse_rates
from reliactl.errors import RateLimitExceeded

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.state import Record, StateStore

__all__ = [
    "Rate",
    "RateLimiter",
    "format_rates",
    "limiter_for",
    "rates_from",
]

# A grant is refused when a bucket holds less than weight - EPSILON: float refill arithmetic
# must never turn "exactly one token" into 0.9999999 and a spurious extra wait.
_EPSILON = 1e-9
# How long past the computed instant a waiter sleeps, so it wakes with the token there.
_WAKE_SLACK = 0.001


@dataclass(frozen=True)
class Rate:
    """``count`` tokens per ``per`` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count <= 0 or not self.per > 0 or not math.isfinite(self.per):
            raise ValueError(f"a rate needs a positive count and period, got {self}")

    @property
    def per_second(self) -> float:
        return self.count / self.per

    @property
    def key(self) -> str:
        """The bucket's name inside a stored record, e.g. "60/60"."""
        return f"{self.count}/{self.per:g}"

    def __str__(self) -> str:
        return f"{self.count}/{_format_period(self.per)}"


_PERIOD_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}


def _format_period(per: float) -> str:
    name = _PERIOD_NAMES.get(per)
    if name is not None:
        return name
    from reliactl.durations import format_duration

    return format_duration(per)


def rates_from(spec: str | int | Rate | list[Rate] | list[tuple[int, float]]) -> list[Rate]:
    """Rates from "60/minute;1000/hour", a bare per-minute count, or (count, per) pairs."""
    if isinstance(spec, Rate):
        return [spec]
    if isinstance(spec, bool):
        raise ValueError(f"expected a rate such as '60/minute', got {spec!r}")
    if isinstance(spec, int):
        return [Rate(spec, 60.0)]
    if isinstance(spec, str):
        return [Rate(count, per) for count, per in parse_rates(spec)]
    rates = [r if isinstance(r, Rate) else Rate(int(r[0]), float(r[1])) for r in spec]
    if not rates:
        raise ValueError("expected at least one rate")
    return rates


def format_rates(rates: list[Rate]) -> str:
    """The spec text of ``rates``: "60/minute;1000/hour"."""
    return ";".join(str(r) for r in rates)


# --------------------------------------------------------------------------- bucket arithmetic


# One bucket as the arithmetic needs it: (name in the record, capacity, tokens per second).
_Bucket = tuple[str, float, float]


def _buckets(rates: list[Rate]) -> list[_Bucket]:
    return [(rate.key, float(rate.count), rate.per_second) for rate in rates]


def _refill(
    buckets: list[_Bucket], tokens: dict[str, float], last: float | None, now: float
) -> dict[str, float]:
    """The buckets at ``now``: refilled since ``last``, capped at capacity, new ones full."""
    elapsed = 0.0 if last is None else max(0.0, now - last)  # a clock step back is no time
    out: dict[str, float] = {}
    for name, capacity, per_second in buckets:
        have = tokens.get(name)
        if have is None or not math.isfinite(have):
            out[name] = capacity
        else:
            out[name] = min(capacity, max(0.0, have) + elapsed * per_second)
    return out


def _wait_for(buckets: list[_Bucket], tokens: dict[str, float], weight: float) -> float:
    """Seconds until every bucket holds ``weight`` tokens (0 when they already do)."""
    wait = 0.0
    for name, _, per_second in buckets:
        missing = weight - tokens[name]
        if missing > _EPSILON:
            wait = max(wait, missing / per_second)
    return wait


# --------------------------------------------------------------------------- the limiter


class RateLimiter:
    """A token bucket per rate; in memory, or shared through ``store`` under ``key``.

    ``clock`` is the monotonic clock used for deadlines (and for the in-memory buckets);
    ``wall`` the epoch clock of stored buckets; ``sleep`` / ``async_sleep`` wait (the default
    sync sleep is ``reliactl.retry.interruptible_sleep``: a signal ends it at once). Inject a
    ``reliactl.testing.FakeClock``'s methods and no test ever really waits.
    """

    def __init__(
        self,
        rates: str | int | Rate | list[Rate] | list[tuple[int, float]],
        *,
        key: str = "default",
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rates = rates_from(rates)
        self._buckets = _buckets(self.rates)
        if not key:
            raise ValueError("a rate limiter needs a non-empty key")
        self.key = key
        self.store = store
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()  # in-memory buckets; and one store connection per limiter
        # In memory: tokens per bucket, in the order of self._buckets (full at first).
        self._tokens = [capacity for _, capacity, _ in self._buckets]
        self._last: float | None = None
        self._max_weight = min(r.count for r in self.rates)

    def __repr__(self) -> str:
        where = f" store={self.store.location!r}" if self.store is not None else ""
        return f"RateLimiter({format_rates(self.rates)!r}, key={self.key!r}{where})"

    @property
    def spec(self) -> str:
        return format_rates(self.rates)

    # ---- one attempt

    def _check_weight(self, weight: float) -> None:
        if not weight > 0 or not math.isfinite(weight):
            raise ValueError(f"weight must be a positive number, got {weight!r}")
        if weight > self._max_weight:
            raise ValueError(
                f"weight {weight:g} can never be granted by {self.spec!r}"
                f" (at most {self._max_weight} at once)"
            )

    def _attempt(self, weight: float) -> float:
        """Take ``weight`` tokens if every bucket has them: 0.0; else the wait needed."""
        if self.store is not None:
            return self._attempt_stored(weight)
        with self._lock:  # the hot path of every request: plain floats, no allocation
            now = self._clock()
            last = self._last
            elapsed = 0.0 if last is None or now <= last else now - last
            self._last = now
            tokens = self._tokens
            wait = 0.0
            for index, (_, capacity, per_second) in enumerate(self._buckets):
                have = tokens[index] + elapsed * per_second
                have = min(have, capacity)
                tokens[index] = have
                missing = weight - have
                if missing > _EPSILON and missing / per_second > wait:
                    wait = missing / per_second
            if wait == 0.0:
                for index in range(len(tokens)):
                    tokens[index] -= weight
            return wait

    def _attempt_stored(self, weight: float) -> float:
        store = self.store
        assert store is not None
        result: list[float] = []

        def update(record: Record | None) -> Record:
            result.clear()  # the store may run this more than once
            now = self._wall()
            old: dict[str, Any] = record or {}
            raw = old.get("tokens")
            stored = raw if isinstance(raw, dict) else {}
            last = old.get("at")
            tokens = _refill(
                self._buckets,
                {k: float(v) for k, v in stored.items() if isinstance(v, (int, float))},
                float(last) if isinstance(last, (int, float)) else None,
                now,
            )
            wait = _wait_for(self._buckets, tokens, weight)
            if wait == 0.0:
                for name in tokens:
                    tokens[name] -= weight
            result.append(wait)
            return {"spec": self.spec, "at": now, "tokens": tokens}

        with self._lock:
            store.update("rate", self.key, update)
        return result[-1]

    # ---- the public calls

    def try_acquire(self, weight: float = 1) -> bool:
        """Take ``weight`` tokens from every bucket if they are all there now; never waits."""
        if weight != 1:
            self._check_weight(weight)
        return self._attempt(weight) == 0.0

    def acquire(self, weight: float = 1, timeout: float | None = None) -> float:
        """Wait for ``weight`` tokens, at most ``timeout`` seconds (None: as long as it takes).

        Returns the seconds spent waiting (0.0 when the tokens were there). Raises
        RateLimitExceeded, with ``retry_after``, as soon as the wait would pass the deadline.
        """
        if weight != 1:
            self._check_weight(weight)
        wait = self._attempt(weight)
        if wait == 0.0:
            return 0.0  # the common case: no clock read beyond the bucket's own
        started = self._clock()
        deadline = None if timeout is None else started + max(0.0, timeout)
        while True:
            self._give_up_if_late(wait, deadline, timeout)
            if self._sleep is None:
                from reliactl.retry import interruptible_sleep

                self._sleep = interruptible_sleep
            self._sleep(wait + _WAKE_SLACK)
            wait = self._attempt(weight)
            if wait == 0.0:
                return max(0.0, self._clock() - started)

    async def acquire_async(self, weight: float = 1, timeout: float | None = None) -> float:
        """``acquire`` for asyncio: waits with ``async_sleep``, never blocking the loop long."""
        if weight != 1:
            self._check_weight(weight)
        wait = self._attempt(weight)
        if wait == 0.0:
            return 0.0
        started = self._clock()
        deadline = None if timeout is None else started + max(0.0, timeout)
        while True:
            self._give_up_if_late(wait, deadline, timeout)
            await self._async_sleep(wait + _WAKE_SLACK)
            wait = self._attempt(weight)
            if wait == 0.0:
                return max(0.0, self._clock() - started)

    async def try_acquire_async(self, weight: float = 1) -> bool:
        """``try_acquire`` for symmetry in async code (it never waits either way)."""
        return self.try_acquire(weight)

    def _give_up_if_late(self, wait: float, deadline: float | None, timeout: float | None) -> None:
        if deadline is None:
            return
        now = self._clock()
        if now + wait > deadline:
            raise RateLimitExceeded(
                f"rate limit {self.spec!r} of {self.key!r}: no token within"
                f" {_seconds(timeout or 0.0)} (next in {_seconds(wait)})",
                retry_after=wait,
            )

    def reset(self) -> None:
        """Fill every bucket again (forget what was taken), here and in the store."""
        with self._lock:
            self._tokens = [capacity for _, capacity, _ in self._buckets]
            self._last = None
            if self.store is not None:
                self.store.delete("rate", self.key)

    def available(self) -> dict[str, float]:
        """Tokens in each bucket now, by rate text ("60/minute"), without taking any."""
        if self.store is None:
            with self._lock:
                held = {
                    name: have
                    for (name, _, _), have in zip(self._buckets, self._tokens, strict=True)
                }
                tokens = _refill(self._buckets, held, self._last, self._clock())
        else:
            record = self.store.get("rate", self.key) or {}
            raw = record.get("tokens")
            last = record.get("at")
            tokens = _refill(
                self._buckets,
                dict(raw) if isinstance(raw, dict) else {},
                float(last) if isinstance(last, (int, float)) else None,
                self._wall(),
            )
        return {str(rate): tokens[rate.key] for rate in self.rates}


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 10 else f"{value:.0f}s"


# --------------------------------------------------------------------------- from config


def limiter_for(
    key: str,
    config: Config | None = None,
    *,
    rates: str | int | list[Rate] | None = None,
    store: StateStore | None = None,
    **kwargs: Any,
) -> RateLimiter:
    """The limiter of ``key``: ``rates`` if given, else ``rate_limit.limits[key]``, else for
    "openai" ``rate_limit.openai_requests_per_minute`` (env RATE_LIMIT_OPENAI_RPM).

    Raises ValueError when no rate is known for ``key``.
    """
    if rates is None:
        if config is None:
            from reliactl.config import get_reliability_config

            config = get_reliability_config()
        settings = config.rate_limit
        if key in settings.limits:
            rates = settings.limits[key]
        elif key == "openai":
            rates = f"{settings.openai_requests_per_minute}/minute"
        else:
            known = ", ".join(sorted(settings.limits)) or "none"
            raise ValueError(f"no rate limit named {key!r} in rate_limit.limits (known: {known})")
    return RateLimiter(rates, key=key, store=store, **kwargs)
