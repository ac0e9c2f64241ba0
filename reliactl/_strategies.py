"""The backoff strategies (pure ``delay(attempt)``), their validation and the ``retry``
configuration's strategy: the part of ``reliactl.retry`` that a client built from the
configuration needs (``ResilientClient``, ``reliactl http``), without the retry engine's
module (its policy, decorators, iterators, the signal-safe sleep: ~2-3 ms with ``signal``'s
enums at every `http` start, issue 21 item 4). ``reliactl.retry`` re-exports every name:
import them from there."""

from __future__ import annotations

import math
from enum import Enum

from reliactl._settings import JITTERS, STRATEGIES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import random
    from typing import Any

    from reliactl.config import RetryConfig

DEFAULT_RETRYABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


class _Unset(Enum):
    UNSET = "UNSET"


UNSET = _Unset.UNSET
"""Marks a setting that was not given (so it comes from the configuration)."""

_random: Any = None


def _default_rng() -> random.Random:
    global _random
    if _random is None:
        import random

        _random = random.Random()
    return _random  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- validation


def _check_delay(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return number


def _check_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {value!r}")
    return value


def _check_multiplier(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"multiplier must be a number >= 1, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 1:
        raise ValueError(f"multiplier must be a finite number >= 1, got {value!r}")
    return number


def _check_jitter(value: object) -> str:
    if value not in JITTERS:
        raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {value!r}")
    return str(value)


def _check_name(value: object) -> str:
    if value not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {value!r}")
    return str(value)


def _exception_types(value: object, what: str) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{what} must be exception types, got {item!r}")
    return items


def _check_attempt(attempt: object) -> int:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
    return attempt


# --------------------------------------------------------------------------- strategies


class BackoffStrategy:
    """Base of the strategies: a capped delay per attempt, then jitter. Never sleeps."""

    name = ""
    __slots__ = (
        "base_delay",
        "jitter",
        "max_delay",
        "max_retries",
        "retryable_exceptions",
        "rng",
    )

    def __init__(
        self,
        base_delay: float,
        max_delay: float,
        max_retries: int,
        jitter: str,
        retryable_exceptions: ExceptionTypes,
        rng: random.Random | None,
    ) -> None:
        self.base_delay = _check_delay("base_delay", base_delay)
        self.max_delay = _check_delay("max_delay", max_delay)
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"max_delay ({self.max_delay:g}s) must not be less than base_delay "
                f"({self.base_delay:g}s)"
            )
        self.max_retries = _check_retries(max_retries)
        self.jitter = _check_jitter(jitter)
        self.retryable_exceptions = _exception_types(retryable_exceptions, "retryable_exceptions")
        self.rng = rng

    def base(self, attempt: int) -> float:
        """The delay before retry ``attempt`` without jitter, capped at ``max_delay``."""
        raise NotImplementedError

    def _previous(self, attempt: int, previous_delay: float | None) -> float:
        # AWS's "sleep" starts at base and never goes below it: a previous delay under
        # base_delay (0 from a caller that has none yet, a retry_after of 0) counts as base,
        # so the first retry is jittered too (uniform(base, 3 * base)), never exactly base.
        if previous_delay is not None and math.isfinite(previous_delay) and previous_delay >= 0:
            return max(float(previous_delay), self.base_delay)
        return self.base(attempt - 1) if attempt > 1 else self.base_delay

    def bounds(self, attempt: int, previous_delay: float | None = None) -> tuple[float, float]:
        """The lowest and highest delay ``delay(attempt, previous_delay)`` can return."""
        d = self.base(attempt)
        jitter = self.jitter
        if jitter == "none":
            return d, d
        if jitter == "full":
            return 0.0, d
        if jitter == "equal":
            return d / 2, d
        low = self.base_delay
        return low, min(self.max_delay, max(low, self._previous(attempt, previous_delay) * 3.0))

    def delay(self, attempt: int, previous_delay: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1 = before the first retry).

        ``previous_delay`` is the delay returned for the retry before; only decorrelated jitter
        uses it (without it, the un-jittered previous delay stands in).
        """
        d = self.base(attempt)
        jitter = self.jitter
        if jitter == "none":
            return d
        rng = self.rng if self.rng is not None else _default_rng()
        if jitter == "full":
            return min(d, rng.uniform(0.0, d))
        if jitter == "equal":
            half = d / 2
            return max(half, min(d, half + rng.uniform(0.0, half)))
        # Decorrelated jitter exactly as published (AWS, "Exponential Backoff And Jitter"):
        # sleep = min(cap, uniform(base, previous * 3)); the cap applies to the draw, so a
        # share of the delays is exactly the cap once previous * 3 passes it.
        low = self.base_delay
        high = max(low, self._previous(attempt, previous_delay) * 3.0)
        return min(self.max_delay, max(low, rng.uniform(low, high)))

    def schedule(self, retries: int | None = None) -> list[float]:
        """The delays of retries 1..``retries`` (default: max_retries), jitter chained."""
        out: list[float] = []
        previous: float | None = None
        for attempt in range(1, (self.max_retries if retries is None else retries) + 1):
            previous = self.delay(attempt, previous)
            out.append(previous)
        return out

    def is_retryable(self, exc: BaseException) -> bool:
        """True for an ``Exception`` of one of ``retryable_exceptions``."""
        return isinstance(exc, Exception) and isinstance(exc, self.retryable_exceptions)

    def _describe(self) -> str:
        return f"base_delay={self.base_delay:g}, max_delay={self.max_delay:g}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._describe()}, max_retries={self.max_retries}, "
            f"jitter={self.jitter!r})"
        )


class ExponentialBackoffStrategy(BackoffStrategy):
    """``base_delay * multiplier ** (attempt - 1)``, capped at ``max_delay``; full jitter."""

    name = "exponential"
    __slots__ = ("_cap_attempt", "multiplier")

    def __init__(
        self,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        multiplier: float = 2.0,
        max_retries: int = 5,
        jitter: str = "full",
        retryable_exceptions: ExceptionTypes = DEFAULT_RETRYABLE,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_delay, max_delay, max_retries, jitter, retryable_exceptions, rng)
        self.multiplier = _check_multiplier(multiplier)
        # From this attempt on the delay is certainly max_delay: no pow, no overflow.
        if self.base_delay > 0 and self.multiplier > 1:
            ratio = math.log(self.max_delay) - math.log(self.base_delay)  # no overflow
            self._cap_attempt = min(int(ratio / math.log(self.multiplier)) + 2, 1 << 62)
        else:
            self._cap_attempt = 1 << 62

    def base(self, attempt: int) -> float:
        if _check_attempt(attempt) >= self._cap_attempt:
            return self.max_delay
        try:
            d = self.base_delay * self.multiplier ** (attempt - 1)
        except OverflowError:  # a subnormal base_delay: the pow overflows before the cap
            return self.max_delay
        return d if d < self.max_delay else self.max_delay

    def _describe(self) -> str:
        return f"{super()._describe()}, multiplier={self.multiplier:g}"


class LinearBackoffStrategy(BackoffStrategy):
    """``base_delay + increment * (attempt - 1)`` (increment defaults to base_delay), capped."""

    name = "linear"
    __slots__ = ("increment",)

    def __init__(
        self,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        increment: float | None = None,
        max_retries: int = 5,
        jitter: str = "none",
        retryable_exceptions: ExceptionTypes = DEFAULT_RETRYABLE,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_delay, max_delay, max_retries, jitter, retryable_exceptions, rng)
        self.increment = (
            self.base_delay if increment is None else _check_delay("increment", increment)
        )

    def base(self, attempt: int) -> float:
        d = self.base_delay + self.increment * (_check_attempt(attempt) - 1)
        return d if d < self.max_delay else self.max_delay

    def _describe(self) -> str:
        return f"{super()._describe()}, increment={self.increment:g}"


class FixedDelayStrategy(BackoffStrategy):
    """The same ``base_delay`` before every retry (jitter, if any, varies it)."""

    name = "fixed"
    __slots__ = ()

    def __init__(
        self,
        base_delay: float = 1.0,
        max_delay: float | None = None,
        max_retries: int = 5,
        jitter: str = "none",
        retryable_exceptions: ExceptionTypes = DEFAULT_RETRYABLE,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            base_delay,
            base_delay if max_delay is None else max_delay,
            max_retries,
            jitter,
            retryable_exceptions,
            rng,
        )

    def base(self, attempt: int) -> float:
        _check_attempt(attempt)
        return self.base_delay


def make_strategy(
    name: str,
    *,
    base_delay: float,
    max_delay: float,
    multiplier: float = 2.0,
    max_retries: int,
    jitter: str,
    rng: random.Random | None = None,
    retryable_exceptions: ExceptionTypes = DEFAULT_RETRYABLE,
) -> BackoffStrategy:
    """A strategy by name: exponential, linear (increment = base_delay) or fixed."""
    kind = _check_name(name)
    if kind == "exponential":
        return ExponentialBackoffStrategy(
            base_delay, max_delay, multiplier, max_retries, jitter, retryable_exceptions, rng
        )
    if kind == "linear":
        return LinearBackoffStrategy(
            base_delay,
            max_delay,
            None,
            max_retries,
            jitter,
            retryable_exceptions,
            rng,
        )
    return FixedDelayStrategy(base_delay, max_delay, max_retries, jitter, retryable_exceptions, rng)


_OVERRIDABLE = frozenset(
    {
        "name",
        "strategy",
        "base_delay",
        "max_delay",
        "multiplier",
        "max_retries",
        "jitter",
        "rng",
        "retryable_exceptions",
    }
)


def strategy_from_config(retry_config: RetryConfig, **overrides: Any) -> BackoffStrategy:
    """The strategy of a ``retry`` config section; overrides that are None are ignored.

    ``strategy=`` (or ``name=``) picks the kind. When only ``base_delay`` is overridden above
    the configured ``max_delay``, max_delay rises to it; when only ``max_delay`` is overridden
    below the configured ``base_delay``, base_delay comes down to it.
    """
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise TypeError(f"strategy_from_config() got unexpected overrides: {sorted(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None and v is not UNSET}
    if "strategy" in given:
        given["name"] = given.pop("strategy")
    values: dict[str, Any] = {
        "name": retry_config.strategy,
        "base_delay": retry_config.base_delay,
        "max_delay": retry_config.max_delay,
        "multiplier": retry_config.multiplier,
        "max_retries": retry_config.max_retries,
        "jitter": retry_config.jitter,
    }
    values.update(given)
    base, cap = values["base_delay"], values["max_delay"]
    if isinstance(base, (int, float)) and isinstance(cap, (int, float)) and base > cap:
        if "max_delay" not in given:
            values["max_delay"] = base
        elif "base_delay" not in given:
            values["base_delay"] = cap
    name = values.pop("name")
    return make_strategy(name, **values)


# The public names belong to ``reliactl.retry``, which re-exports them: pickles, reprs and
# help() name that module, as they did before the split (a pickle made here loads in an
# older reliactl), and loading one imports ``reliactl.retry``, which holds the same objects.
for _public in (
    _Unset,
    BackoffStrategy,
    ExponentialBackoffStrategy,
    LinearBackoffStrategy,
    FixedDelayStrategy,
    make_strategy,
    strategy_from_config,
):
    _public.__module__ = "reliactl.retry"
del _public
