"""Retries with backoff: strategies as pure functions of an attempt number, and the engine.

Strategies (``ExponentialBackoffStrategy``, ``LinearBackoffStrategy``, ``FixedDelayStrategy``)
never sleep: ``delay(attempt, previous_delay)`` returns the seconds to wait before retry number
``attempt`` (1 = before the first retry). Jitter: ``none``, ``full`` (uniform 0..d), ``equal``
(d/2 + uniform 0..d/2) and ``decorrelated`` (min(max_delay, uniform(base, previous * 3)));
every delay is capped by ``max_delay`` and safe at any attempt number.

The engine is a ``RetryPolicy``; ``retry(...)`` / ``retry_async(...)`` make one and use it as a
decorator, ``retrying(...)`` retries a block::

    @retry_async(max_retries=3, base_delay=1.0)
    async def flaky() -> None: ...

    for attempt in retrying(retry_on=ConnectionError):
        with attempt:
            connect()

Rules the engine keeps:

- Only ``Exception`` instances of the configured types (or accepted by the predicate) are
  retried; ``KeyboardInterrupt``, ``SystemExit``, ``asyncio.CancelledError`` and
  ``GeneratorExit`` propagate at once, also when raised inside a backoff sleep.
- Bounds: ``max_retries`` and ``max_elapsed`` (measured from the start of the first attempt);
  the sleep before the last attempt is cut short at the deadline instead of overshooting it.
- An exception with a ``retry_after`` attribute (seconds) sets the delay, capped by
  ``max_delay`` and the deadline.
- Giving up raises ``RetryError`` (``.attempts``, ``.reason``, last exception as
  ``__cause__``) or, with ``reraise=True``, the last exception itself.
- Clock and sleep are injected; ``reliactl.testing.zero_backoff()`` makes every delay zero.
- Settings that are not given come from the ``retry`` configuration section, read at the first
  call (never at import); a broken configuration raises ``ConfigError`` from that call.

Importing this module is cheap: no asyncio, no configuration, no random until needed.
"""

from __future__ import annotations

import functools
import math
import os
import select
import signal
import time
from _thread import allocate_lock
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from itertools import chain, starmap

from reliactl import chaos as _chaos
from reliactl import tracing as _tracing
from reliactl._strategies import (
    DEFAULT_RETRYABLE,
    UNSET,
    BackoffStrategy,
    ExceptionTypes,
    ExponentialBackoffStrategy,
    FixedDelayStrategy,
    LinearBackoffStrategy,
    _check_delay,
    _check_jitter,
    _check_multiplier,
    _check_name,
    _check_retries,
    _default_rng,
    _exception_types,
    _Unset,
    make_strategy,
    strategy_from_config,
)
from reliactl.backoff import JITTERS, STRATEGIES, GiveUp
from reliactl.backoff import decide as _decide_next

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import random
    from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

    from reliactl.config import RetryConfig

    P = ParamSpec("P")
    R = TypeVar("R")
else:  # without typing (~3 ms of a `retry plan` start, issue 21); the overloads of retry()
    # and retry_async() are the type checker's only
    from reliactl._records import NamedTuple

__all__ = [
    "DEFAULT_RETRYABLE",
    "JITTERS",
    "STRATEGIES",
    "UNSET",
    "AsyncRetryDecorator",
    "Attempt",
    "BackoffStrategy",
    "ExponentialBackoffStrategy",
    "FixedDelayStrategy",
    "LinearBackoffStrategy",
    "PlanRow",
    "RetryBudget",
    "RetryPlan",
    "RetryPolicy",
    "RetryStats",
    "make_strategy",
    "plan_schedule",
    "retry",
    "retry_async",
    "retrying",
    "retrying_async",
    "strategy_from_config",
]

RetryOn = ExceptionTypes | Callable[[BaseException], bool]
OnRetry = Callable[[int, float, BaseException | None], object]
OnGiveup = Callable[[int, BaseException | None], object]

_CO_COROUTINE = 0x80
_CO_GENERATORS = 0x20 | 0x200  # CO_GENERATOR | CO_ASYNC_GENERATOR


# --------------------------------------------------------------------------- plans


class PlanRow(NamedTuple):
    """One retry of a schedule: the delay before attempt ``retry + 1``."""

    retry: int
    delay: float
    cumulative: float
    low: float
    high: float
    cut: bool  # shortened by max_elapsed


class RetryPlan(NamedTuple):
    """What a strategy will do if every attempt fails at once (attempts take no time)."""

    strategy: BackoffStrategy
    max_elapsed: float | None
    rows: tuple[PlanRow, ...]

    @property
    def attempts(self) -> int:
        return len(self.rows) + 1

    @property
    def total_delay(self) -> float:
        return self.rows[-1].cumulative if self.rows else 0.0


def plan_schedule(strategy: BackoffStrategy, *, max_elapsed: float | None = None) -> RetryPlan:
    """The delays a policy with ``strategy`` and ``max_elapsed`` would sleep, in order."""
    rows: list[PlanRow] = []
    total = 0.0
    previous: float | None = None
    for attempt in range(1, strategy.max_retries + 1):
        low, high = strategy.bounds(attempt, previous)
        delay = strategy.delay(attempt, previous)
        previous = delay
        cut = False
        if max_elapsed is not None:
            remaining = max_elapsed - total
            if remaining <= 0:
                break
            if delay > remaining:
                delay, cut = remaining, True
        total += delay
        rows.append(PlanRow(attempt, delay, total, low, high, cut))
    return RetryPlan(strategy, max_elapsed, tuple(rows))


# --------------------------------------------------------------------------- statistics and budget


class RetryStats(Mapping[str, float]):
    """Counters of a decorated function or a policy; a read-only mapping (``dict(stats)``).

    Every finished call ends as one of: success, failure (gave up, or an error that is not
    retried) or interrupted (KeyboardInterrupt, SystemExit, cancellation). ``attempts`` counts
    successes + failures + interrupted + retries.
    """

    __slots__ = (
        "budget_denied",
        "failures",
        "giveups",
        "interrupted",
        "retries",
        "successes",
        "total_delay",
    )
    _KEYS = (
        "calls",
        "attempts",
        "successes",
        "failures",
        "retries",
        "giveups",
        "budget_denied",
        "interrupted",
        "total_delay",
    )

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0
        self.retries = 0
        self.giveups = 0
        self.budget_denied = 0
        self.interrupted = 0
        self.total_delay = 0.0

    @property
    def calls(self) -> int:
        """Finished calls."""
        return self.successes + self.failures + self.interrupted

    @property
    def attempts(self) -> int:
        return self.calls + self.retries

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in self._KEYS}

    def __getitem__(self, key: str) -> float:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return f"RetryStats({self.as_dict()})"


class RetryBudget:
    """A token bucket that all calls of a policy share, as the AWS SDKs' retry quota.

    A retry takes ``retry_cost`` tokens (``timeout_cost`` after a TimeoutError); when too few
    are left the retry is denied and the call gives up, so a failing dependency is not hit by a
    retry storm. A success after retries gives the last cost back; a first-try success adds
    ``success_refund``; never above ``capacity``. Thread-safe.
    """

    __slots__ = ("_lock", "_tokens", "capacity", "retry_cost", "success_refund", "timeout_cost")

    def __init__(
        self,
        capacity: float = 500.0,
        *,
        retry_cost: float = 5.0,
        timeout_cost: float = 10.0,
        success_refund: float = 1.0,
    ) -> None:
        self.capacity = _check_delay("capacity", capacity)
        self.retry_cost = _check_delay("retry_cost", retry_cost)
        self.timeout_cost = _check_delay("timeout_cost", timeout_cost)
        self.success_refund = _check_delay("success_refund", success_refund)
        self._tokens = self.capacity
        self._lock = allocate_lock()

    @property
    def tokens(self) -> float:
        return self._tokens

    def acquire(self, exc: BaseException | None = None) -> float | None:
        """Take the cost of one retry after ``exc``; None (nothing taken) when too few are left."""
        cost = self.timeout_cost if isinstance(exc, TimeoutError) else self.retry_cost
        with self._lock:
            if self._tokens < cost:
                return None
            self._tokens -= cost
        return cost

    def release(self, amount: float) -> None:
        """Give ``amount`` tokens back, up to ``capacity``."""
        if amount > 0:
            with self._lock:
                self._tokens = min(self.capacity, self._tokens + amount)

    def record_success(self, spent: float = 0.0) -> None:
        """A call succeeded; ``spent`` is the cost of its last retry (0: first try)."""
        if self._tokens < self.capacity:
            self.release(spent if spent > 0 else self.success_refund)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self._tokens:g}/{self.capacity:g})"


# --------------------------------------------------------------------------- the engine


def _no_op() -> None:
    """Entering a Python function runs the signal handlers that are pending."""


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that a signal always ends at once (the default sync backoff sleep).

    ``time.sleep`` misses a signal that lands after the interpreter last looked for one and
    before the sleep starts: the handler (KeyboardInterrupt, a SIGTERM handler raising
    SystemExit) then runs only when the whole sleep is over. In the main thread this sleeps in
    poll() on a pipe that is the signal wakeup fd, so such a signal wakes it; bytes meant for
    a previous wakeup fd (asyncio's) are passed on. A handler that returns normally does not
    shorten the sleep. Elsewhere (no signal handler runs there) it is ``time.sleep``.
    """
    if seconds <= 0:
        time.sleep(0)
        return
    # A Python signal handler can raise after any call returns, before its result is stored.
    # So results are stored by C code (list.extend) and every cleanup is one C call: whatever
    # the point where a KeyboardInterrupt lands, the wakeup fd is restored and the pipe closed.
    # os.pipe is called from C too (``fds.extend(os.pipe())`` let the handler run between
    # the pipe's creation and its storing), and ``closing`` is built before the ``try``,
    # while ``fds`` is empty: ``list(map(os.close, fds))`` in the ``finally`` let it run
    # between ``map`` and ``list`` (cleanup._open_held explains the pattern).
    fds: list[int] = []
    saved: list[int] = []
    closing = map(os.close, fds)
    try:
        try:
            fds.extend(chain.from_iterable(starmap(os.pipe, ((),))))
        except OSError:  # out of file descriptors: a plain sleep beats failing the call
            time.sleep(seconds)
            return
        reader, writer = fds
        os.set_blocking(writer, False)
        os.set_blocking(reader, False)
        try:
            saved.extend(map(_set_wakeup_fd, (writer,)))
        except ValueError:  # not the main thread: no signal handler runs here anyway
            time.sleep(seconds)
            return
        poller = select.poll()  # not select(): no FD_SETSIZE limit in a busy service
        poller.register(reader, select.POLLIN)
        _no_op()  # a signal that came before set_wakeup_fd is handled here
        deadline = time.monotonic() + seconds
        remaining = seconds
        while remaining > 0:
            if poller.poll(min(math.ceil(remaining * 1000), _MAX_POLL_MS)):
                _pass_on(reader, saved[0])
                _no_op()  # run the handler now; if it raises, the sleep ends
            remaining = deadline - time.monotonic()
    finally:
        try:
            if saved:
                signal.set_wakeup_fd(saved[0])
                _pass_on(fds[0], saved[0])  # e.g. when the handler raised inside select()
        finally:
            list(closing)


def _pass_on(reader: int, previous: int) -> None:
    """Move signal numbers from our wakeup pipe to the previous wakeup fd (asyncio's)."""
    while True:
        try:
            data = os.read(reader, 512)
        except OSError:
            return
        if not data:
            return
        if previous >= 0:
            try:
                os.write(previous, data)
            except OSError:
                return


_MAX_POLL_MS = 2**31 - 1
_set_wakeup_fd = functools.partial(signal.set_wakeup_fd, warn_on_full_buffer=False)


def _is_coroutine_function(fn: Any) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None:
        return bool(code.co_flags & _CO_COROUTINE)
    import inspect

    if inspect.iscoroutinefunction(fn):  # functools.partial, markcoroutinefunction
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def refuse_generator(fn: Any, action: str, instead: str) -> None:
    """Raise TypeError when ``fn`` is a generator or async generator function.

    Retry and breaker refuse them alike: the body runs while the caller iterates, after the
    call has returned, so neither could see its failures (and yielded items cannot be taken
    back to try again). ``action`` starts the message, ``instead`` says what to do.
    """
    inner = fn
    for _ in range(8):  # a bound method or functools.partial of one
        inner = getattr(inner, "__func__", None) or getattr(inner, "func", None) or inner
        if getattr(inner, "__code__", None) is not None:
            break
    code = getattr(inner, "__code__", None)
    if code is None or not code.co_flags & _CO_GENERATORS:
        return
    kind = "an async generator" if code.co_flags & 0x200 else "a generator"
    raise TypeError(
        f"{action} {_qualname(fn)}: it is {kind} function, whose body runs while the caller "
        f"iterates, after the call has returned; {instead}"
    )


_RETRY_INSTEAD = (
    "retry a function that returns the items (a list), or retry around the iteration: "
    "`for attempt in retrying(...): with attempt: items = list(gen())`"
)


def _qualname(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


_errors: Any = None


def _preload() -> None:
    """Import what giving up needs before the first backoff, not in the middle of it.

    A signal that arrives while a module is being imported can run its handler inside an
    importlib weakref callback, where the KeyboardInterrupt is printed and dropped; so the
    path from a failure to the end of its backoff sleep imports nothing.
    """
    global _errors
    if _errors is None:
        import reliactl.errors

        _default_rng()
        _errors = reliactl.errors


_CHECKS: dict[str, Callable[[Any], object]] = {
    "multiplier": _check_multiplier,
    "max_retries": _check_retries,
    "jitter": _check_jitter,
    "name": _check_name,
}


class RetryPolicy:
    """One retry configuration: a decorator (``@policy``), ``call()``, and ``attempts()``.

    Settings left as None / UNSET come from the ``retry`` configuration section at the first
    call. ``strategy`` is a strategy object (which then carries every backoff setting) or a
    strategy name.
    """

    __slots__ = (
        "_async_sleep",
        "_budget",
        "_clock",
        "_given",
        "_max_elapsed",
        "_on_giveup",
        "_on_retry",
        "_reraise",
        "_result_pred",
        "_retry_pred",
        "_retry_types",
        "_retry_types_given",
        "_rng",
        "_sleep",
        "_stats",
        "_strategy",
        "name",
    )

    def __init__(
        self,
        *,
        strategy: BackoffStrategy | str | None = None,
        max_retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        multiplier: float | None = None,
        jitter: str | None = None,
        max_elapsed: float | _Unset | None = UNSET,
        retry_on: RetryOn | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        reraise: bool = False,
        on_retry: OnRetry | None = None,
        on_giveup: OnGiveup | None = None,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "base_delay": base_delay,
            "max_delay": max_delay,
            "multiplier": multiplier,
            "max_retries": max_retries,
            "jitter": jitter,
        }
        given = {k: v for k, v in given.items() if v is not None}
        self._strategy: BackoffStrategy | None = None
        if isinstance(strategy, BackoffStrategy):
            if given:
                raise TypeError(
                    f"give either strategy= or backoff settings, not both (got {sorted(given)})"
                )
            self._strategy = strategy
        elif strategy is not None:
            given["name"] = _check_name(strategy)
        # Check what was given now, so a typo fails at decoration, not at 3 a.m.
        for key, value in given.items():
            if key in ("base_delay", "max_delay"):
                _check_delay(key, value)
            else:
                _CHECKS[key](value)
        if max_elapsed is not UNSET and max_elapsed is not None:
            _check_delay("max_elapsed", max_elapsed)
        self._given = given
        self._rng = rng
        if isinstance(strategy, BackoffStrategy) and max_elapsed is UNSET:
            max_elapsed = None  # a complete strategy object: the configuration is not read
        self._max_elapsed: float | _Unset | None = max_elapsed
        if rng is not None and isinstance(strategy, BackoffStrategy):
            raise TypeError("give rng= to the strategy object, not to retry()")
        self._retry_types: tuple[type[BaseException], ...] = DEFAULT_RETRYABLE
        self._retry_types_given = False
        self._retry_pred: Callable[[BaseException], bool] | None = None
        if retry_on is not None:
            if isinstance(retry_on, (type, tuple)):
                self._retry_types = _exception_types(retry_on, "retry_on")
                self._retry_types_given = True
            elif callable(retry_on):
                self._retry_pred = retry_on
            else:
                raise TypeError(
                    f"retry_on must be exception types or a predicate, got {retry_on!r}"
                )
        if self._strategy is not None and retry_on is None:
            self._retry_types = self._strategy.retryable_exceptions
        if retry_on_result is not None and not callable(retry_on_result):
            raise TypeError(f"retry_on_result must be a predicate, got {retry_on_result!r}")
        self._result_pred = retry_on_result
        self._reraise = bool(reraise)
        self._on_retry = on_retry
        self._on_giveup = on_giveup
        self._budget = budget
        self._sleep = sleep if sleep is not None else interruptible_sleep
        self._async_sleep = async_sleep
        self._clock = clock if clock is not None else time.monotonic
        self._stats = RetryStats()
        self.name = name
        if self._strategy is None and self._complete():
            self._resolve()

    @classmethod
    def from_config(
        cls,
        retry_config: RetryConfig,
        *,
        strategy: str | None = None,
        max_retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        multiplier: float | None = None,
        jitter: str | None = None,
        max_elapsed: float | _Unset | None = UNSET,
        rng: random.Random | None = None,
        **options: Any,
    ) -> RetryPolicy:
        """A policy from a given ``retry`` section (a command's loaded configuration, not the
        process-wide one), settings that are not None overriding it. ``options`` are the
        other keyword arguments of RetryPolicy (retry_on, hooks, budget, sleep, clock...)."""
        built = strategy_from_config(
            retry_config,
            strategy=strategy,
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            multiplier=multiplier,
            jitter=jitter,
            rng=rng,
        )
        if max_elapsed is UNSET:
            max_elapsed = retry_config.max_elapsed
        return cls(strategy=built, max_elapsed=max_elapsed, **options)

    # ---- settings

    def _complete(self) -> bool:
        keys = {"name", "base_delay", "max_delay", "max_retries", "jitter"}
        if self._given.get("name") == "exponential":
            keys.add("multiplier")
        return keys <= set(self._given) and self._max_elapsed is not UNSET

    def _resolve(self) -> BackoffStrategy:
        """Build the strategy, reading the configuration only for what was not given."""
        strategy = self._strategy
        if strategy is None:
            if self._complete():
                values = dict(self._given)
                values.setdefault("multiplier", 2.0)
                strategy = make_strategy(values.pop("name"), rng=self._rng, **values)
            else:
                from reliactl._configsource import process_config

                section = process_config().retry
                strategy = strategy_from_config(section, rng=self._rng, **self._given)
                if self._max_elapsed is UNSET:
                    self._max_elapsed = section.max_elapsed
            if not self._retry_types_given and self._retry_pred is None:
                self._retry_types = strategy.retryable_exceptions
            self._strategy = strategy  # last: other threads test it
        return strategy

    @property
    def strategy(self) -> BackoffStrategy:
        """The backoff strategy (resolved from the configuration if need be)."""
        return self._strategy if self._strategy is not None else self._resolve()

    @property
    def max_elapsed(self) -> float | None:
        if self._max_elapsed is UNSET:
            self._resolve()
        return None if self._max_elapsed is UNSET else self._max_elapsed

    @property
    def stats(self) -> RetryStats:
        return self._stats

    @property
    def budget(self) -> RetryBudget | None:
        return self._budget

    def get_stats(self) -> dict[str, float]:
        """This policy's counters over every function and block it retried, as a dict."""
        return self._stats.as_dict()

    def __repr__(self) -> str:
        shown = repr(self._strategy) if self._strategy is not None else f"from config {self._given}"
        return f"RetryPolicy({shown})"

    # ---- decisions

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this policy retries (never a BaseException that is not an
        Exception: KeyboardInterrupt, SystemExit, CancelledError, GeneratorExit)."""
        if not isinstance(exc, Exception):
            return False
        if self._retry_pred is not None:
            return bool(self._retry_pred(exc))
        return isinstance(exc, self._retry_types)

    def _next_delay(
        self,
        attempt: int,
        exc: BaseException | None,
        previous: float | None,
        start: float,
    ) -> tuple[float, float, float] | str:
        """(delay to sleep, strategy delay, budget tokens taken) before attempt + 1, or why
        no retry is allowed: "attempts", "deadline" or "budget" (``reliactl.backoff.decide``).
        """
        strategy = self._strategy
        assert strategy is not None
        requested = getattr(exc, "retry_after", None) if exc is not None else None
        retry_after: float | None = None
        if requested is not None:
            try:
                retry_after = float(requested)
            except (TypeError, ValueError):
                retry_after = None
        max_elapsed = self._max_elapsed
        timed = max_elapsed is not None and max_elapsed is not UNSET
        decision = _decide_next(
            strategy,
            attempt,
            previous=previous,
            retry_after=retry_after,
            retry_after_cap=strategy.max_delay,
            now=self._clock() if timed else 0.0,
            deadline=start + max_elapsed if timed else None,  # type: ignore[operator]
        )
        if isinstance(decision, GiveUp):
            return decision.value
        spent = 0.0
        if self._budget is not None:
            taken = self._budget.acquire(exc)
            if taken is None:
                return GiveUp.BUDGET.value
            spent = taken
        return decision.delay, decision.computed, spent

    def _give_up(
        self,
        fn: Any,
        reason: str,
        attempt: int,
        exc: BaseException | None,
        result: Any,
    ) -> BaseException:
        """Call on_giveup and return the exception to raise."""
        if self._on_giveup is not None:
            self._on_giveup(attempt, exc)
        if self._reraise and exc is not None:
            return exc
        _preload()
        RetryError = _errors.RetryError
        why = {
            "attempts": "no retries left",
            "deadline": f"max_elapsed {_format_seconds(self.max_elapsed or 0.0)} reached",
            "budget": "retry budget exhausted",
        }[reason]
        what = f"{type(exc).__name__}: {exc}" if exc is not None else f"result {result!r}"
        plural = "s" if attempt != 1 else ""
        error: BaseException = RetryError(
            f"{_qualname(fn)} failed after {attempt} attempt{plural} ({why}): {what}",
            attempt,
            reason=reason,
            last_result=result,
        )
        error.__cause__ = exc
        error.__suppress_context__ = True
        return error

    def _decide(
        self,
        attempt: int,
        exc: BaseException | None,
        previous: float | None,
        start: float,
    ) -> tuple[float, float, float] | str:
        """Attempt ``attempt`` failed: the next delay and on_retry, or why the call ends
        ("no": not retried; "attempts", "deadline", "budget": give up)."""
        if _errors is None:
            _preload()
        if exc is not None and not self.should_retry(exc):
            return "no"
        planned = self._next_delay(attempt, exc, previous, start)
        if isinstance(planned, tuple) and self._on_retry is not None:
            self._on_retry(attempt, planned[0], exc)
        return planned

    def _traced(
        self,
        trace: _tracing.RetryTrace | None,
        fn: Callable[..., Any],
        began: int,
        attempt: int,
        delay: float,
        exc: BaseException | None,
    ) -> _tracing.RetryTrace | None:
        """Tracing is on and attempt ``attempt`` is retried: its event (and the call's span)."""
        if trace is None:
            trace = _tracing.start_retry(self.name or _qualname(fn), began or None)
        if trace is not None:
            trace.retry(attempt, delay, exc)
        return trace

    @staticmethod
    def _slept(stats: tuple[RetryStats, ...], delay: float) -> None:
        for s in stats:
            s.retries += 1
            s.total_delay += delay

    @staticmethod
    def _ended(stats: tuple[RetryStats, ...], end: BaseException, reason: str | None) -> None:
        """Count a call that ends by raising ``end`` (``reason``: see _decide)."""
        for s in stats:
            if reason is not None and reason != "no":
                s.failures += 1
                s.giveups += 1
                if reason == "budget":
                    s.budget_denied += 1
            elif isinstance(end, Exception):
                s.failures += 1
            else:
                s.interrupted += 1

    def _succeeded(self, stats: tuple[RetryStats, ...], spent: float) -> None:
        for s in stats:
            s.successes += 1
        if self._budget is not None:
            self._budget.record_success(spent)

    # ---- sync

    def _retry_sync(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException | None,
        result: Any,
        start: float,
        stats: tuple[RetryStats, ...],
        began: int = 0,
    ) -> Any:
        attempt = 1
        trace: _tracing.RetryTrace | None = None
        previous: float | None = None
        sleep = self._sleep
        result_pred = self._result_pred
        reason: str | None = None
        try:
            while True:
                decision = self._decide(attempt, exc, previous, start)
                if isinstance(decision, str):
                    reason = decision
                    if decision == "no":
                        assert exc is not None
                        raise exc
                    raise self._give_up(fn, decision, attempt, exc, result)
                delay, previous, spent = decision
                if _tracing.ACTIVE:
                    trace = self._traced(trace, fn, began, attempt, delay, exc)
                sleep(delay)
                self._slept(stats, delay)
                attempt += 1
                try:
                    result = fn(*args, **kwargs)
                except BaseException as error:
                    exc = error
                    continue
                exc = None
                if result_pred is not None and result_pred(result):
                    continue
                self._succeeded(stats, spent)
                if trace is not None:
                    trace.end(attempt, None, None)
                return result
        except BaseException as end:
            # Every way out counts once: not retried, gave up, a hook failed, or an
            # interruption (also one that lands between two statements of this loop).
            self._ended(stats, end, reason)
            if trace is not None:
                trace.end(attempt, end, None if reason == "no" else reason)
            raise
        finally:
            exc = None  # no frame <-> traceback cycle

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``fn(*args, **kwargs)`` with retries (counted in this policy's stats)."""
        refuse_generator(fn, "cannot retry", _RETRY_INSTEAD)
        if self._strategy is None:
            self._resolve()
        if _chaos.ACTIVE:
            fn = _chaos.wrap("retry", self.name or _qualname(fn), fn)
        max_elapsed = self._max_elapsed
        start = self._clock() if max_elapsed is not None else 0.0
        began = time.time_ns() if _tracing.ACTIVE else 0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            failure: BaseException | None = exc
        else:
            if self._result_pred is None or not self._result_pred(result):
                self._succeeded((self._stats,), 0.0)
                return result
            failure = None
        try:
            return self._retry_sync(  # type: ignore[no-any-return]
                fn,
                args,
                kwargs,
                failure,
                result if failure is None else None,
                start,
                (self._stats,),
                began,
            )
        finally:
            failure = None

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        policy = self
        fstats = RetryStats()
        pstats = self._stats
        both = (fstats, pstats)
        result_pred = self._result_pred
        budget = self._budget
        clock = self._clock

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if policy._strategy is None:
                policy._resolve()
            target = fn
            if _chaos.ACTIVE:
                target = _chaos.wrap("retry", policy.name or _qualname(fn), fn)
            start = clock() if policy._max_elapsed is not None else 0.0
            began = time.time_ns() if _tracing.ACTIVE else 0
            try:
                result = target(*args, **kwargs)
            except BaseException as exc:
                failure: BaseException | None = exc
            else:
                if result_pred is None or not result_pred(result):
                    fstats.successes += 1
                    pstats.successes += 1
                    if budget is not None:
                        budget.record_success()
                    return result
                failure = None
            try:
                return policy._retry_sync(  # type: ignore[no-any-return]
                    target,
                    args,
                    kwargs,
                    failure,
                    result if failure is None else None,
                    start,
                    both,
                    began,
                )
            finally:
                failure = None

        wrapper.retry_stats = fstats  # type: ignore[attr-defined]
        wrapper.retry_policy = policy  # type: ignore[attr-defined]
        return wrapper

    # ---- async

    async def _sleep_async(self, delay: float) -> None:
        sleep = self._async_sleep
        if sleep is None:
            import asyncio

            await asyncio.sleep(delay)
            return
        waited = sleep(delay)
        if waited is not None and hasattr(waited, "__await__"):
            await waited

    async def _retry_async(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: BaseException | None,
        result: Any,
        start: float,
        stats: tuple[RetryStats, ...],
        began: int = 0,
    ) -> Any:
        attempt = 1
        trace: _tracing.RetryTrace | None = None
        previous: float | None = None
        result_pred = self._result_pred
        reason: str | None = None
        try:
            while True:
                decision = self._decide(attempt, exc, previous, start)
                if isinstance(decision, str):
                    reason = decision
                    if decision == "no":
                        assert exc is not None
                        raise exc
                    raise self._give_up(fn, decision, attempt, exc, result)
                delay, previous, spent = decision
                if _tracing.ACTIVE:
                    trace = self._traced(trace, fn, began, attempt, delay, exc)
                await self._sleep_async(delay)
                self._slept(stats, delay)
                attempt += 1
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as error:
                    exc = error
                    continue
                exc = None
                if result_pred is not None and result_pred(result):
                    continue
                self._succeeded(stats, spent)
                if trace is not None:
                    trace.end(attempt, None, None)
                return result
        except BaseException as end:
            self._ended(stats, end, reason)
            if trace is not None:
                trace.end(attempt, end, None if reason == "no" else reason)
            raise
        finally:
            exc = None

    async def call_async(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` with retries (counted in this policy's stats)."""
        refuse_generator(fn, "cannot retry", _RETRY_INSTEAD)
        if self._strategy is None:
            self._resolve()
        if _chaos.ACTIVE:
            fn = _chaos.wrap("retry", self.name or _qualname(fn), fn)
        start = self._clock() if self._max_elapsed is not None else 0.0
        began = time.time_ns() if _tracing.ACTIVE else 0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            failure: BaseException | None = exc
        else:
            if self._result_pred is None or not self._result_pred(result):
                self._succeeded((self._stats,), 0.0)
                return result
            failure = None
        try:
            return await self._retry_async(  # type: ignore[no-any-return]
                fn,
                args,
                kwargs,
                failure,
                result if failure is None else None,
                start,
                (self._stats,),
                began,
            )
        finally:
            failure = None

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        policy = self
        fstats = RetryStats()
        pstats = self._stats
        both = (fstats, pstats)
        result_pred = self._result_pred
        budget = self._budget
        clock = self._clock

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if policy._strategy is None:
                policy._resolve()
            target = fn
            if _chaos.ACTIVE:
                target = _chaos.wrap("retry", policy.name or _qualname(fn), fn)
            start = clock() if policy._max_elapsed is not None else 0.0
            began = time.time_ns() if _tracing.ACTIVE else 0
            try:
                result = await target(*args, **kwargs)
            except BaseException as exc:
                failure: BaseException | None = exc
            else:
                if result_pred is None or not result_pred(result):
                    fstats.successes += 1
                    pstats.successes += 1
                    if budget is not None:
                        budget.record_success()
                    return result
                failure = None
            try:
                return await policy._retry_async(  # type: ignore[no-any-return]
                    target,
                    args,
                    kwargs,
                    failure,
                    result if failure is None else None,
                    start,
                    both,
                    began,
                )
            finally:
                failure = None

        wrapper.retry_stats = fstats  # type: ignore[attr-defined]
        wrapper.retry_policy = policy  # type: ignore[attr-defined]
        return wrapper

    # ---- decorating

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` (a coroutine function gets an async wrapper)."""
        if not callable(fn):
            raise TypeError(f"retry decorates a function, got {fn!r}")
        refuse_generator(fn, "cannot retry", _RETRY_INSTEAD)
        if _is_coroutine_function(fn):
            return self._wrap_async(fn)  # type: ignore[arg-type, return-value]
        return self._wrap_sync(fn)

    def wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        """Decorate ``fn`` as async even when it is a plain function returning an awaitable."""
        refuse_generator(fn, "cannot retry", _RETRY_INSTEAD)
        return self._wrap_async(fn)

    # ---- blocks

    def attempts(self) -> AttemptIterator:
        """Retry a block: ``for attempt in policy.attempts(): with attempt: ...``."""
        return AttemptIterator(self)

    def attempts_async(self) -> AsyncAttemptIterator:
        """Retry a block in async code: ``async for attempt in ...: with attempt: ...``."""
        return AsyncAttemptIterator(self)


class Attempt:
    """One attempt of a retried block; ``with attempt:`` records how it ended."""

    __slots__ = ("_run", "number")

    def __init__(self, run: _BlockRun, number: int) -> None:
        self._run = run
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        return self._run.finish(self, exc)

    def __repr__(self) -> str:
        return f"Attempt({self.number})"


class _BlockRun:
    """State shared by the sync and async attempt iterators."""

    __slots__ = ("delay", "done", "number", "policy", "previous", "spent", "start", "stats")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.stats = (policy._stats,)
        self.number = 0
        self.done = False
        self.delay: float | None = None  # set when the last attempt failed and will be retried
        self.previous: float | None = None
        self.spent = 0.0
        self.start = 0.0

    def begin(self) -> Attempt:
        policy = self.policy
        if policy._strategy is None:
            policy._resolve()
        self.start = policy._clock() if policy._max_elapsed is not None else 0.0
        self.number = 1
        return Attempt(self, 1)

    def finish(self, attempt: Attempt, exc: BaseException | None) -> bool:
        if attempt.number != self.number or self.done:
            return False  # a stale attempt object: let whatever happened propagate
        policy = self.policy
        if exc is None:
            self.done = True
            policy._succeeded(self.stats, self.spent)
            return False
        reason: str | None = None
        try:
            decision = policy._decide(self.number, exc, self.previous, self.start)
            if isinstance(decision, tuple):
                self.delay, self.previous, self.spent = decision
                return True
            reason = decision
            if decision != "no":
                what = policy.name or "retried block"
                error = policy._give_up(what, decision, self.number, exc, None)
                if error is not exc:
                    raise error
        except BaseException as end:
            self.done = True
            policy._ended(self.stats, end, reason)
            raise
        self.done = True
        policy._ended(self.stats, exc, reason)
        return False  # not retried, or reraise=True: the original propagates

    def next_number(self) -> int:
        """After the sleep: the number of the next attempt, or 0 when the run is over."""
        if self.delay is None:
            if not self.done:  # the block did not use `with attempt:`: it ended normally
                self.done = True
                self.policy._succeeded(self.stats, self.spent)
            return 0
        self.policy._slept(self.stats, self.delay)
        self.delay = None
        self.number += 1
        return self.number


class AttemptIterator:
    """``for attempt in policy.attempts(): with attempt: ...`` (sleeps between attempts)."""

    __slots__ = ("_run",)

    def __init__(self, policy: RetryPolicy) -> None:
        self._run = _BlockRun(policy)

    def __iter__(self) -> AttemptIterator:
        return self

    def __next__(self) -> Attempt:
        run = self._run
        if run.number == 0:
            return run.begin()
        if run.delay is not None:
            try:
                run.policy._sleep(run.delay)
            except BaseException as exc:
                run.done = True
                run.policy._ended(run.stats, exc, None)
                raise
        number = run.next_number()
        if number == 0:
            raise StopIteration
        return Attempt(run, number)


class AsyncAttemptIterator:
    """``async for attempt in policy.attempts_async(): with attempt: ...``."""

    __slots__ = ("_run",)

    def __init__(self, policy: RetryPolicy) -> None:
        self._run = _BlockRun(policy)

    def __aiter__(self) -> AsyncAttemptIterator:
        return self

    async def __anext__(self) -> Attempt:
        run = self._run
        if run.number == 0:
            return run.begin()
        if run.delay is not None:
            try:
                await run.policy._sleep_async(run.delay)
            except BaseException as exc:
                run.done = True
                run.policy._ended(run.stats, exc, None)
                raise
        number = run.next_number()
        if number == 0:
            raise StopAsyncIteration
        return Attempt(run, number)


# --------------------------------------------------------------------------- the short forms


if TYPE_CHECKING:

    @overload
    def retry(fn: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def retry(
        fn: None = None,
        /,
        *,
        strategy: BackoffStrategy | str | None = None,
        max_retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        multiplier: float | None = None,
        jitter: str | None = None,
        max_elapsed: float | _Unset | None = UNSET,
        retry_on: RetryOn | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        reraise: bool = False,
        on_retry: OnRetry | None = None,
        on_giveup: OnGiveup | None = None,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> RetryPolicy: ...


def retry(
    fn: Callable[P, R] | None = None,
    /,
    *,
    strategy: BackoffStrategy | str | None = None,
    max_retries: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    multiplier: float | None = None,
    jitter: str | None = None,
    max_elapsed: float | _Unset | None = UNSET,
    retry_on: RetryOn | None = None,
    retry_on_result: Callable[[Any], bool] | None = None,
    reraise: bool = False,
    on_retry: OnRetry | None = None,
    on_giveup: OnGiveup | None = None,
    budget: RetryBudget | None = None,
    sleep: Callable[[float], object] | None = None,
    async_sleep: Callable[[float], Awaitable[object]] | None = None,
    clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
) -> RetryPolicy | Callable[P, R]:
    """A retry decorator: ``@retry(max_retries=3, retry_on=OSError)``, or bare ``@retry``
    (every setting from the ``retry`` configuration section, as ``@retry()``).

    Works on plain and coroutine functions (``sleep`` for the first, ``async_sleep`` for the
    second). The decorated function has ``.retry_stats`` and ``.retry_policy``.
    """
    if fn is not None:
        if not callable(fn):
            raise TypeError(
                f"retry() takes keyword arguments only, e.g. @retry(max_retries=3); got {fn!r}"
            )
        return RetryPolicy()(fn)
    return RetryPolicy(
        strategy=strategy,
        max_retries=max_retries,
        base_delay=base_delay,
        max_delay=max_delay,
        multiplier=multiplier,
        jitter=jitter,
        max_elapsed=max_elapsed,
        retry_on=retry_on,
        retry_on_result=retry_on_result,
        reraise=reraise,
        on_retry=on_retry,
        on_giveup=on_giveup,
        budget=budget,
        sleep=sleep,
        async_sleep=async_sleep,
        clock=clock,
        rng=rng,
    )


class AsyncRetryDecorator:
    """What ``retry_async(...)`` returns: decorates async functions with its ``policy``."""

    __slots__ = ("policy",)

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        return self.policy.wrap_async(fn)


if TYPE_CHECKING:

    @overload
    def retry_async(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def retry_async(
        fn: None = None,
        /,
        *,
        strategy: BackoffStrategy | str | None = None,
        max_retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        multiplier: float | None = None,
        jitter: str | None = None,
        max_elapsed: float | _Unset | None = UNSET,
        retry_on: RetryOn | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        reraise: bool = False,
        on_retry: OnRetry | None = None,
        on_giveup: OnGiveup | None = None,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> AsyncRetryDecorator: ...


def retry_async(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    strategy: BackoffStrategy | str | None = None,
    max_retries: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    multiplier: float | None = None,
    jitter: str | None = None,
    max_elapsed: float | _Unset | None = UNSET,
    retry_on: RetryOn | None = None,
    retry_on_result: Callable[[Any], bool] | None = None,
    reraise: bool = False,
    on_retry: OnRetry | None = None,
    on_giveup: OnGiveup | None = None,
    budget: RetryBudget | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
) -> AsyncRetryDecorator | Callable[P, Coroutine[Any, Any, R]]:
    """The seed's async decorator: ``@retry_async(max_retries=3, base_delay=1.0)`` or
    ``@retry_async(strategy=strategy)``, or bare ``@retry_async`` (settings from the
    configuration); ``sleep`` is an async sleep (default asyncio.sleep).
    """
    if fn is not None:
        if not callable(fn):
            raise TypeError(
                "retry_async() takes keyword arguments only, e.g. @retry_async(max_retries=3);"
                f" got {fn!r}"
            )
        return RetryPolicy().wrap_async(fn)
    return AsyncRetryDecorator(
        RetryPolicy(
            strategy=strategy,
            max_retries=max_retries,
            base_delay=base_delay,
            max_delay=max_delay,
            multiplier=multiplier,
            jitter=jitter,
            max_elapsed=max_elapsed,
            retry_on=retry_on,
            retry_on_result=retry_on_result,
            reraise=reraise,
            on_retry=on_retry,
            on_giveup=on_giveup,
            budget=budget,
            async_sleep=sleep,
            clock=clock,
            rng=rng,
        )
    )


def retrying(**options: Any) -> AttemptIterator:
    """Retry a block: ``for attempt in retrying(retry_on=OSError): with attempt: ...``.

    Takes the keyword arguments of ``retry()``.
    """
    return RetryPolicy(**options).attempts()


def retrying_async(**options: Any) -> AsyncAttemptIterator:
    """``async for attempt in retrying_async(...): with attempt: ...``; ``sleep`` is async."""
    if "sleep" in options:
        options["async_sleep"] = options.pop("sleep")
    return RetryPolicy(**options).attempts_async()
