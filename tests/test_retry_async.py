"""The async retry engine: the seed's decorator forms, cancellation, deadline, blocks."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from reliactl.errors import RetryError
from reliactl.retry import (
    ExponentialBackoffStrategy,
    RetryBudget,
    retry,
    retry_async,
    retrying_async,
)
from reliactl.testing import FakeClock, zero_backoff

EXACT: dict[str, Any] = {
    "strategy": "exponential",
    "base_delay": 1.0,
    "max_delay": 30.0,
    "multiplier": 2.0,
    "jitter": "none",
    "max_elapsed": None,
}


class AsyncFlaky:
    def __init__(
        self, failures: int, exc: BaseException | None = None, clock: FakeClock | None = None
    ) -> None:
        self.failures = failures
        self.exc = exc if exc is not None else ConnectionError("refused")
        self.calls = 0
        self.clock = clock

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.clock is not None:
            self.clock.advance(2.0)
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=0.0)


def test_seed_form_with_settings(clock: FakeClock) -> None:
    """@retry_async(max_retries=3, base_delay=1.0), the rest from the (default) config."""
    calls = 0

    @retry_async(max_retries=3, base_delay=1.0, jitter="none", sleep=clock.async_sleep)
    async def flaky_operation() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError
        return "done"

    assert asyncio.run(flaky_operation()) == "done"
    assert clock.sleeps == [1.0, 2.0]
    assert flaky_operation.retry_stats["retries"] == 2


def test_seed_form_with_a_strategy(clock: FakeClock) -> None:
    strategy = ExponentialBackoffStrategy(
        base_delay=1.0,
        max_delay=30.0,
        max_retries=5,
        jitter="none",
        retryable_exceptions=(ConnectionError, TimeoutError),
    )
    flaky = AsyncFlaky(10)

    @retry_async(strategy=strategy, sleep=clock.async_sleep)
    async def reliable_operation() -> str:
        return await flaky()

    with pytest.raises(RetryError) as info:
        asyncio.run(reliable_operation())
    assert info.value.attempts == 6 and flaky.calls == 6
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert isinstance(info.value.__cause__, ConnectionError)


def test_retry_detects_coroutine_functions(clock: FakeClock) -> None:
    """Also an object whose __call__ is async, and a functools.partial of one."""
    fn = retry(**EXACT, max_retries=2, async_sleep=clock.async_sleep)(AsyncFlaky(2))
    assert asyncio.iscoroutinefunction(fn)
    assert asyncio.run(fn()) == "ok" and clock.sleeps == [1.0, 2.0]

    async def add(a: int, b: int) -> int:
        return a + b

    part = retry(**EXACT, max_retries=2)(functools.partial(add, 1))
    assert asyncio.iscoroutinefunction(part) and asyncio.run(part(2)) == 3


def test_retry_async_keeps_coroutine_function_identity(clock: FakeClock) -> None:
    @retry_async(**EXACT, max_retries=1, sleep=clock.async_sleep)
    async def op() -> int:
        """Doc."""
        return 1

    assert asyncio.iscoroutinefunction(op)
    assert op.__name__ == "op" and op.__doc__ == "Doc."


def test_a_sync_sleep_is_accepted_for_async(clock: FakeClock) -> None:
    """FakeClock.sleep (a plain function) also works as the async sleep."""
    fn = retry_async(**EXACT, max_retries=2, sleep=clock.sleep)(AsyncFlaky(1))  # type: ignore[arg-type]
    assert asyncio.run(fn()) == "ok" and clock.sleeps == [1.0]


def test_exceptions_that_are_not_retried_propagate(clock: FakeClock) -> None:
    flaky = AsyncFlaky(5, exc=ValueError("bad"))
    fn = retry_async(**EXACT, max_retries=3, sleep=clock.async_sleep)(flaky)
    with pytest.raises(ValueError, match="bad"):
        asyncio.run(fn())
    assert flaky.calls == 1 and fn.retry_stats.failures == 1


def test_cancelled_error_from_the_call_is_never_retried(clock: FakeClock) -> None:
    flaky = AsyncFlaky(5, exc=asyncio.CancelledError())
    fn = retry_async(**EXACT, max_retries=3, retry_on=BaseException, sleep=clock.async_sleep)(flaky)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(fn())
    assert flaky.calls == 1 and clock.sleeps == []
    assert fn.retry_stats.interrupted == 1


def test_cancelling_the_task_ends_a_real_backoff_sleep_at_once() -> None:
    """A 600 s asyncio.sleep backoff is cancelled; no further attempt is made."""
    flaky = AsyncFlaky(100)
    sleeping = asyncio.Event()

    fn = retry_async(
        strategy="fixed",
        base_delay=600.0,
        max_delay=600.0,
        jitter="none",
        max_retries=5,
        max_elapsed=None,
        on_retry=lambda a, d, e: sleeping.set(),
    )(flaky)

    async def main() -> None:
        task = asyncio.create_task(fn())
        await asyncio.wait_for(sleeping.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert flaky.calls == 1
    assert fn.retry_stats.interrupted == 1 and fn.retry_stats.retries == 0


def test_wait_for_timeout_reaches_through_the_backoff() -> None:
    flaky = AsyncFlaky(100)
    fn = retry_async(
        strategy="fixed",
        base_delay=600.0,
        max_delay=600.0,
        jitter="none",
        max_retries=5,
        max_elapsed=None,
    )(flaky)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fn(), 0.05)

    asyncio.run(main())
    assert flaky.calls == 1


def test_async_deadline_cuts_the_last_sleep(clock: FakeClock) -> None:
    """Attempts take 2 s; max_elapsed 10 s: sleeps 1, 2, 1."""
    flaky = AsyncFlaky(100, clock=clock)
    fn = retry_async(
        **{**EXACT, "max_elapsed": 10.0},
        max_retries=10,
        sleep=clock.async_sleep,
        clock=clock.monotonic,
    )(flaky)
    with pytest.raises(RetryError) as info:
        asyncio.run(fn())
    assert clock.sleeps == [1.0, 2.0, 1.0] and info.value.reason == "deadline"


def test_async_retry_after_and_result_predicate(clock: FakeClock) -> None:
    class Busy(ConnectionError):
        retry_after = 3.0

    results = iter(["pending", "pending", "done"])
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Busy()
        return next(results)

    fn = retry_async(
        **EXACT, max_retries=5, retry_on_result=lambda r: r == "pending", sleep=clock.async_sleep
    )(op)
    assert asyncio.run(fn()) == "done"
    assert clock.sleeps == [3.0, 2.0, 4.0]


def test_async_budget_shared_by_concurrent_calls(clock: FakeClock) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5)
    fn = retry_async(**EXACT, max_retries=5, budget=budget, sleep=clock.async_sleep)(
        AsyncFlaky(1000)
    )

    async def main() -> list[BaseException | str]:
        return await asyncio.gather(*(fn() for _ in range(4)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RetryError) and o.reason == "budget" for o in outcomes)
    assert fn.retry_stats.retries == 2 and budget.tokens == 0


def test_async_block(clock: FakeClock) -> None:
    tries: list[int] = []

    async def main() -> None:
        async for attempt in retrying_async(**EXACT, max_retries=3, sleep=clock.async_sleep):
            with attempt:
                tries.append(attempt.number)
                if attempt.number < 3:
                    raise ConnectionError

    asyncio.run(main())
    assert tries == [1, 2, 3] and clock.sleeps == [1.0, 2.0]


def test_async_block_gives_up(clock: FakeClock) -> None:
    async def main() -> None:
        async for attempt in retrying_async(**EXACT, max_retries=1, sleep=clock.async_sleep):
            with attempt:
                raise TimeoutError

    with pytest.raises(RetryError) as info:
        asyncio.run(main())
    assert info.value.attempts == 2


def test_call_async(clock: FakeClock) -> None:
    p = retry(**EXACT, max_retries=2, async_sleep=clock.async_sleep)
    assert asyncio.run(p.call_async(AsyncFlaky(1))) == "ok"
    assert p.get_stats()["successes"] == 1


def test_zero_backoff_with_the_default_asyncio_sleep() -> None:
    fn = retry_async(
        strategy="fixed", base_delay=900.0, max_delay=900.0, jitter="none", max_retries=3
    )(AsyncFlaky(3))
    with zero_backoff():
        assert asyncio.run(fn()) == "ok"
    assert fn.retry_stats.total_delay == 0.0 and fn.retry_stats.retries == 3


def test_zero_backoff_decorates_async_tests() -> None:
    seen = []

    @zero_backoff()
    async def inner() -> None:
        from reliactl.testing import backoff_is_zero

        seen.append(backoff_is_zero())

    asyncio.run(inner())
    assert seen == [True]


def test_async_config_defaults(tmp_path: Path, monkeypatch, clock: FakeClock) -> None:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("retry:\n  max_retries: 1\n  jitter: none\n  strategy: linear\n")
    monkeypatch.setenv("RELIACTL_CONFIG", str(cfg))
    flaky = AsyncFlaky(10)
    with pytest.raises(RetryError):
        asyncio.run(retry_async(base_delay=2.0, sleep=clock.async_sleep)(flaky)())
    assert flaky.calls == 2 and clock.sleeps == [2.0]
