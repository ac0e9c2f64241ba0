"""The sync retry engine: filtering, bounds, Retry-After, budget, hooks, stats, blocks, config.

No test sleeps for a backoff: sleeps go to a FakeClock, or zero_backoff() is on, or a real
sleep is cut short by a signal.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliactl.errors import ConfigError, RetryError
from reliactl.retry import (
    ExponentialBackoffStrategy,
    FixedDelayStrategy,
    RetryBudget,
    RetryPolicy,
    RetryStats,
    retry,
    retry_async,
    retrying,
)
from reliactl.testing import FakeClock, backoff_is_zero, zero_backoff

# Settings that never read the configuration: exponential 1, 2, 4, 8 ... capped at 30.
EXACT: dict[str, Any] = {
    "strategy": "exponential",
    "base_delay": 1.0,
    "max_delay": 30.0,
    "multiplier": 2.0,
    "jitter": "none",
    "max_elapsed": None,
}


class Flaky:
    """Fails ``failures`` times with ``exc`` (advancing ``clock`` by ``took`` per attempt)."""

    def __init__(
        self,
        failures: int,
        exc: BaseException | None = None,
        result: Any = "ok",
        clock: FakeClock | None = None,
        took: float = 0.0,
    ) -> None:
        self.failures = failures
        self.exc = exc if exc is not None else ConnectionError("refused")
        self.result = result
        self.calls = 0
        self.clock = clock
        self.took = took

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.took)
        if self.calls <= self.failures:
            raise self.exc
        return self.result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=0.0)


def policy(clock: FakeClock, **kwargs: Any) -> RetryPolicy:
    options = {**EXACT, "max_retries": 3, "sleep": clock.sleep, "clock": clock.monotonic}
    options.update(kwargs)
    return retry(**options)


# ---- success and exhaustion


def test_retries_until_success_with_the_strategy_delays(clock: FakeClock) -> None:
    fn = policy(clock)(Flaky(2))
    assert fn() == "ok"
    assert clock.sleeps == [1.0, 2.0]


def test_arguments_reach_every_attempt(clock: FakeClock) -> None:
    seen = []

    @policy(clock)
    def add(a: int, b: int = 0) -> int:
        seen.append((a, b))
        if len(seen) < 2:
            raise TimeoutError
        return a + b

    assert add(2, b=3) == 5
    assert seen == [(2, 3), (2, 3)]


def test_exhaustion_raises_retry_error_with_attempts_and_cause(clock: FakeClock) -> None:
    errors = [ConnectionError(f"try {n}") for n in range(1, 5)]
    it = iter(errors)

    @policy(clock)
    def fetch() -> None:
        raise next(it)

    with pytest.raises(RetryError) as info:
        fetch()
    assert info.value.attempts == 4
    assert info.value.reason == "attempts"
    assert info.value.__cause__ is errors[-1]
    assert "fetch failed after 4 attempts (no retries left): ConnectionError: try 4" in str(
        info.value
    )
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_reraise_raises_the_last_exception_itself(clock: FakeClock) -> None:
    errors = [TimeoutError(n) for n in range(3)]
    it = iter(errors)

    @policy(clock, max_retries=2, reraise=True)
    def fetch() -> None:
        raise next(it)

    with pytest.raises(TimeoutError) as info:
        fetch()
    assert info.value is errors[-1]


def test_zero_retries_means_one_attempt(clock: FakeClock) -> None:
    flaky = Flaky(5)
    with pytest.raises(RetryError) as info:
        policy(clock, max_retries=0)(flaky)()
    assert flaky.calls == 1 and info.value.attempts == 1 and clock.sleeps == []
    assert "after 1 attempt (" in str(info.value)


# ---- what is retried


def test_default_retries_connection_and_timeout_errors_only(clock: FakeClock) -> None:
    flaky = Flaky(1, exc=ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        policy(clock)(flaky)()
    assert flaky.calls == 1 and clock.sleeps == []
    assert policy(clock)(Flaky(1, exc=ConnectionResetError()))() == "ok"
    assert policy(clock)(Flaky(1, exc=TimeoutError()))() == "ok"


def test_retry_on_types(clock: FakeClock) -> None:
    assert policy(clock, retry_on=KeyError)(Flaky(2, exc=KeyError("k")))() == "ok"
    assert policy(clock, retry_on=(KeyError, OSError))(Flaky(2, exc=FileNotFoundError()))() == "ok"
    flaky = Flaky(2, exc=ConnectionError())
    with pytest.raises(ConnectionError):
        policy(clock, retry_on=KeyError)(flaky)()
    assert flaky.calls == 1


def test_retry_on_predicate(clock: FakeClock) -> None:
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, OSError) and exc.errno == 11

    eagain = OSError(11, "try again")
    enoent = OSError(2, "no such file")
    assert policy(clock, retry_on=transient)(Flaky(2, exc=eagain))() == "ok"
    flaky = Flaky(2, exc=enoent)
    with pytest.raises(OSError, match="no such file"):
        policy(clock, retry_on=transient)(flaky)()
    assert flaky.calls == 1


def test_a_strategy_object_brings_its_retryable_exceptions(clock: FakeClock) -> None:
    strategy = ExponentialBackoffStrategy(
        max_retries=2, jitter="none", retryable_exceptions=(KeyError,)
    )
    fn = retry(strategy=strategy, sleep=clock.sleep)(Flaky(2, exc=KeyError("k")))
    assert fn() == "ok" and clock.sleeps == [1.0, 2.0]
    flaky = Flaky(1, exc=ConnectionError())
    with pytest.raises(ConnectionError):
        retry(strategy=strategy, sleep=clock.sleep)(flaky)()
    assert flaky.calls == 1


def test_retry_on_result(clock: FakeClock) -> None:
    results = iter([None, None, 42])
    fn = policy(clock, retry_on_result=lambda r: r is None)(lambda: next(results))
    assert fn() == 42 and clock.sleeps == [1.0, 2.0]


def test_retry_on_result_exhausted_raises_with_the_last_result(clock: FakeClock) -> None:
    fn = policy(clock, max_retries=2, retry_on_result=lambda r: r < 0)(lambda: -1)
    with pytest.raises(RetryError) as info:
        fn()
    assert info.value.attempts == 3 and info.value.last_result == -1
    assert info.value.__cause__ is None and "result -1" in str(info.value)


# ---- never retry or swallow an interruption


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()], ids=lambda e: type(e).__name__
)
@pytest.mark.parametrize(
    "retry_on",
    [BaseException, lambda e: True, None],
    ids=["BaseException", "always-predicate", "default"],
)
def test_interruptions_propagate_at_once(clock: FakeClock, exc: BaseException, retry_on) -> None:
    """Even retry_on=BaseException or an always-true predicate does not retry them."""
    flaky = Flaky(1, exc=exc)
    fn = policy(clock, retry_on=retry_on)(flaky)
    with pytest.raises(type(exc)) as info:
        fn()
    assert info.value is exc
    assert flaky.calls == 1 and clock.sleeps == []
    assert fn.retry_stats.interrupted == 1 and fn.retry_stats.failures == 0


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_interruption_inside_the_backoff_sleep_propagates(
    clock: FakeClock, exc_type: type[BaseException]
) -> None:
    def sleep(seconds: float) -> None:
        raise exc_type()

    flaky = Flaky(5)
    fn = policy(clock, sleep=sleep)(flaky)
    with pytest.raises(exc_type):
        fn()
    assert flaky.calls == 1
    assert dict(fn.retry_stats) == {
        **dict(RetryStats()),
        "calls": 1,
        "attempts": 1,
        "interrupted": 1,
    }


CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from reliactl.retry import retry

    if sys.argv[1] == "TERM":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

    @retry(strategy="fixed", base_delay=600, max_delay=600, max_retries=5, jitter="none",
           max_elapsed=None, retry_on=OSError,
           on_retry=lambda attempt, delay, exc: print("sleeping", delay, flush=True))
    def fetch():
        print("attempt", flush=True)
        raise OSError("down")

    try:
        fetch()
    except BaseException as exc:
        print("ended", type(exc).__name__, dict(fetch.retry_stats)["interrupted"], flush=True)
        raise
    """
)


@pytest.mark.parametrize(("sig", "code"), [("INT", -signal.SIGINT), ("TERM", 143)])
def test_a_signal_ends_a_real_backoff_sleep_at_once(tmp_path: Path, sig: str, code: int) -> None:
    """A 600 s backoff sleep ends at SIGINT/SIGTERM; no further attempt is made."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), sig],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "attempt"
    assert proc.stdout.readline().strip() == "sleeping 600.0"
    proc.send_signal(getattr(signal, f"SIG{sig}"))
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - the bug this test is for
        proc.kill()
        raise
    expected = "KeyboardInterrupt" if sig == "INT" else "SystemExit"
    assert out.strip() == f"ended {expected} 1", err
    assert proc.returncode == code, err


# ---- the deadline


def test_deadline_cuts_the_last_sleep_short(clock: FakeClock) -> None:
    """Attempts take 2 s; max_elapsed 10 s: sleeps 1, 2, then 1 (not 4) to end at 10 s."""
    flaky = Flaky(100, clock=clock, took=2.0)
    fn = policy(clock, max_retries=10, max_elapsed=10.0)(flaky)
    with pytest.raises(RetryError) as info:
        fn()
    assert clock.sleeps == [1.0, 2.0, 1.0]
    assert flaky.calls == 4 and info.value.attempts == 4
    assert info.value.reason == "deadline" and "max_elapsed 10s reached" in str(info.value)
    assert clock.monotonic() == 12.0  # the last attempt started exactly at the deadline


def test_no_retry_starts_after_the_deadline(clock: FakeClock) -> None:
    flaky = Flaky(100, clock=clock, took=11.0)
    with pytest.raises(RetryError) as info:
        policy(clock, max_elapsed=10.0)(flaky)()
    assert flaky.calls == 1 and clock.sleeps == [] and info.value.reason == "deadline"


def test_deadline_and_attempts_whichever_first(clock: FakeClock) -> None:
    flaky = Flaky(100)
    with pytest.raises(RetryError) as info:
        policy(clock, max_retries=2, max_elapsed=1000.0)(flaky)()
    assert info.value.reason == "attempts" and flaky.calls == 3


# ---- Retry-After


class Throttled(ConnectionError):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("429 Too Many Requests")
        self.retry_after = retry_after


def test_retry_after_sets_the_delay(clock: FakeClock) -> None:
    fn = policy(clock)(Flaky(2, exc=Throttled(7.5)))
    assert fn() == "ok"
    assert clock.sleeps == [7.5, 7.5]


def test_retry_after_is_capped_by_max_delay(clock: FakeClock) -> None:
    fn = policy(clock, max_delay=20.0)(Flaky(1, exc=Throttled(3600)))
    assert fn() == "ok" and clock.sleeps == [20.0]


def test_retry_after_is_capped_by_the_deadline(clock: FakeClock) -> None:
    flaky = Flaky(100, exc=Throttled(25), clock=clock, took=1.0)
    with pytest.raises(RetryError):
        policy(clock, max_elapsed=12.0)(flaky)()
    assert clock.sleeps == [11.0]


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), -3, "soon", object()])
def test_a_useless_retry_after_falls_back_to_the_strategy(clock: FakeClock, value: Any) -> None:
    assert policy(clock)(Flaky(2, exc=Throttled(value)))() == "ok"
    assert clock.sleeps == [1.0, 2.0]


def test_retry_after_as_numeric_string_is_honoured(clock: FakeClock) -> None:
    assert policy(clock)(Flaky(1, exc=Throttled("4")))() == "ok"
    assert clock.sleeps == [4.0]


# ---- hooks


def test_on_retry_and_on_giveup_hooks(clock: FakeClock) -> None:
    retries: list[tuple[int, float, str]] = []
    giveups: list[tuple[int, str]] = []
    fn = policy(
        clock,
        max_retries=2,
        on_retry=lambda a, d, e: retries.append((a, d, str(e))),
        on_giveup=lambda a, e: giveups.append((a, str(e))),
    )(Flaky(10, exc=TimeoutError("slow")))
    with pytest.raises(RetryError):
        fn()
    assert retries == [(1, 1.0, "slow"), (2, 2.0, "slow")]
    assert giveups == [(3, "slow")]


def test_on_giveup_is_not_called_for_errors_that_are_not_retried(clock: FakeClock) -> None:
    giveups: list[Any] = []
    with pytest.raises(ValueError):
        policy(clock, on_giveup=lambda a, e: giveups.append(a))(Flaky(1, exc=ValueError()))()
    assert giveups == []


# ---- the retry budget


def test_budget_is_shared_by_calls_and_stops_a_retry_storm(clock: FakeClock) -> None:
    budget = RetryBudget(capacity=12, retry_cost=5)
    flaky = Flaky(1000)
    fn = policy(clock, max_retries=5, budget=budget)(flaky)
    with pytest.raises(RetryError) as first:
        fn()
    assert first.value.reason == "budget" and flaky.calls == 3  # two retries: 12 -> 7 -> 2
    assert "retry budget exhausted" in str(first.value)
    with pytest.raises(RetryError) as second:
        fn()
    assert second.value.reason == "budget" and second.value.attempts == 1
    assert flaky.calls == 4
    assert fn.retry_stats.budget_denied == 2 and fn.retry_stats.giveups == 2
    assert budget.tokens == 2


def test_budget_refills_on_success(clock: FakeClock) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5, success_refund=1)
    fn = policy(clock, budget=budget)(Flaky(1))
    assert fn() == "ok"
    assert budget.tokens == 10  # the retry's 5 tokens came back with the success
    budget.acquire()
    ok = policy(clock, budget=budget)(lambda: "fine")
    ok()
    ok()
    assert budget.tokens == 7  # 5 + 1 + 1


def test_timeouts_cost_more(clock: FakeClock) -> None:
    budget = RetryBudget(capacity=100, retry_cost=5, timeout_cost=10)
    assert budget.acquire(TimeoutError()) == 10 and budget.acquire(ConnectionError()) == 5
    assert budget.tokens == 85


def test_budget_is_exact_under_threads() -> None:
    budget = RetryBudget(capacity=1000, retry_cost=1)
    taken: list[float | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(300):
            got = budget.acquire()
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for t in taken if t is not None) == 1000 and budget.tokens == 0


# ---- statistics


def test_stats_per_function_and_per_policy(clock: FakeClock) -> None:
    shared = policy(clock)
    a = shared(Flaky(2))
    b = shared(Flaky(10))
    assert a() == "ok"
    with pytest.raises(RetryError):
        b()
    assert dict(a.retry_stats) == {
        "calls": 1,
        "attempts": 3,
        "successes": 1,
        "failures": 0,
        "retries": 2,
        "giveups": 0,
        "budget_denied": 0,
        "interrupted": 0,
        "total_delay": 3.0,
    }
    assert b.retry_stats["attempts"] == 4 and b.retry_stats["giveups"] == 1
    stats = shared.get_stats()
    assert stats["calls"] == 2 and stats["attempts"] == 7 and stats["retries"] == 5
    assert stats["successes"] == 1 and stats["failures"] == 1 and stats["total_delay"] == 10.0
    assert a.retry_policy is shared


def test_stats_count_first_try_successes_and_reset(clock: FakeClock) -> None:
    fn = policy(clock)(lambda: 1)
    for _ in range(5):
        fn()
    assert fn.retry_stats.calls == 5 and fn.retry_stats.attempts == 5
    fn.retry_stats.reset()
    assert fn.retry_stats.as_dict()["calls"] == 0


def test_errors_that_are_not_retried_count_as_failures(clock: FakeClock) -> None:
    fn = policy(clock)(Flaky(1, exc=ValueError()))
    with pytest.raises(ValueError):
        fn()
    assert fn.retry_stats.failures == 1 and fn.retry_stats.giveups == 0


# ---- the decorator itself


def test_wraps_keeps_name_doc_and_works_on_methods(clock: FakeClock) -> None:
    class Client:
        def __init__(self) -> None:
            self.tries = 0

        @policy(clock)
        def get(self, path: str) -> str:
            """Get a path."""
            self.tries += 1
            if self.tries < 2:
                raise ConnectionError
            return path

    c = Client()
    assert c.get("/x") == "/x" and c.tries == 2
    assert Client.get.__name__ == "get" and Client.get.__doc__ == "Get a path."


def test_call_retries_without_decorating(clock: FakeClock) -> None:
    p = policy(clock)
    assert p.call(Flaky(1), 1, key="v") == "ok"
    assert p.get_stats()["retries"] == 1


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"jitter": "sometimes"}, ValueError),
        ({"strategy": "quadratic"}, ValueError),
        ({"max_retries": -2}, ValueError),
        ({"base_delay": -1.0}, ValueError),
        ({"max_elapsed": -5.0}, ValueError),
        ({"retry_on": "ConnectionError"}, TypeError),
        ({"strategy": FixedDelayStrategy(), "max_retries": 3}, TypeError),
    ],
)
def test_bad_arguments_fail_at_decoration(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        retry(**kwargs)


def test_generator_functions_are_refused() -> None:
    """Generator and async generator functions are refused at decoration and by call(),
    with a message that says what to do instead (the breaker refuses them the same way)."""

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    policy = RetryPolicy(**EXACT, max_retries=1)
    for fn, kind in ((gen, "a generator"), (agen, "an async generator")):
        with pytest.raises(TypeError, match=f"it is {kind} function.*retrying"):
            retry(**EXACT, max_retries=1)(fn)
        with pytest.raises(TypeError, match=kind):
            policy.call(fn)
    with pytest.raises(TypeError, match="an async generator"):
        retry_async(max_retries=1)(agen)
    with pytest.raises(TypeError, match="an async generator"):
        asyncio.run(policy.call_async(agen))
    with pytest.raises(TypeError, match="a generator"):
        retry(functools.partial(gen))


def test_bare_retry_decorates_with_the_configured_policy() -> None:
    """`@retry` without parentheses works like `@retry()`: settings from the configuration."""
    calls = []

    @retry
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("once")
        return "done"

    with zero_backoff():
        assert flaky() == "done"
    assert len(calls) == 2 and flaky.retry_stats.successes == 1  # type: ignore[attr-defined]

    @retry_async
    async def aflaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("once")
        return "async done"

    with zero_backoff():
        assert asyncio.run(aflaky()) == "async done"
    assert len(calls) == 4
    with pytest.raises(TypeError, match=r"keyword arguments only, e.g. @retry\(max_retries=3\)"):
        retry(3)  # type: ignore[call-overload]


def test_a_hook_that_raises_is_not_swallowed(clock: FakeClock) -> None:
    def hook(attempt: int, delay: float, exc: BaseException | None) -> None:
        raise RuntimeError("hook bug")

    with pytest.raises(RuntimeError, match="hook bug"):
        policy(clock, on_retry=hook)(Flaky(1))()


# ---- blocks


def test_block_retries_until_it_succeeds(clock: FakeClock) -> None:
    tries = []
    for attempt in retrying(**EXACT, max_retries=3, sleep=clock.sleep):
        with attempt:
            tries.append(attempt.number)
            if attempt.number < 3:
                raise ConnectionError("down")
    assert tries == [1, 2, 3] and clock.sleeps == [1.0, 2.0]


def test_block_gives_up_with_retry_error(clock: FakeClock) -> None:
    tries = []
    with pytest.raises(RetryError) as info:
        for attempt in retrying(**EXACT, max_retries=2, sleep=clock.sleep):
            with attempt:
                tries.append(attempt.number)
                raise TimeoutError("slow")
    assert tries == [1, 2, 3] and info.value.attempts == 3
    assert isinstance(info.value.__cause__, TimeoutError)


def test_block_lets_other_errors_and_interrupts_through(clock: FakeClock) -> None:
    for exc in (ValueError("no"), KeyboardInterrupt()):
        tries = 0
        with pytest.raises(type(exc)):
            for attempt in retrying(**EXACT, max_retries=5, sleep=clock.sleep):
                with attempt:
                    tries += 1
                    raise exc
        assert tries == 1
    assert clock.sleeps == []


def test_block_reraise_and_stats(clock: FakeClock) -> None:
    p = policy(clock, max_retries=1, reraise=True)
    with pytest.raises(ConnectionError):
        for attempt in p.attempts():
            with attempt:
                raise ConnectionError
    for attempt in p.attempts():
        with attempt:
            pass
    stats = p.get_stats()
    assert stats["calls"] == 2 and stats["successes"] == 1 and stats["giveups"] == 1


# ---- zero_backoff: users' test suites never sleep


def test_zero_backoff_makes_real_sleeps_zero() -> None:
    """With the default time.sleep and a 1000 s base delay, the retries happen at once."""
    delays: list[float] = []
    fn = retry(
        strategy="fixed",
        base_delay=1000.0,
        max_delay=1000.0,
        max_retries=3,
        jitter="none",
        max_elapsed=None,
        on_retry=lambda a, d, e: delays.append(d),
    )(Flaky(3))
    with zero_backoff():
        assert backoff_is_zero()
        assert fn() == "ok"
    assert not backoff_is_zero()
    assert delays == [0.0, 0.0, 0.0]


def test_zero_backoff_can_cap_retries_and_nests() -> None:
    flaky = Flaky(10)
    fn = retry(**EXACT, max_retries=5)(flaky)
    with zero_backoff(), zero_backoff(max_retries=1), pytest.raises(RetryError) as info:
        fn()
    assert info.value.attempts == 2 and flaky.calls == 2
    assert not backoff_is_zero()


def test_zero_backoff_as_decorator() -> None:
    @zero_backoff()
    def inner() -> bool:
        return backoff_is_zero()

    assert inner() is True and backoff_is_zero() is False


# ---- configuration


def test_unset_settings_come_from_the_config_file(tmp_path: Path, monkeypatch, clock) -> None:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        "retry:\n  max_retries: 1\n  base_delay: 250ms\n  jitter: none\n  strategy: fixed\n"
    )
    monkeypatch.setenv("RELIACTL_CONFIG", str(cfg))
    flaky = Flaky(10)
    fn = retry(sleep=clock.sleep)(flaky)
    with pytest.raises(RetryError) as info:
        fn()
    assert info.value.attempts == 2 and clock.sleeps == [0.25]
    assert fn.retry_policy.strategy.name == "fixed"


def test_config_max_elapsed_applies(tmp_path: Path, monkeypatch, clock) -> None:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("retry:\n  max_retries: 50\n  max_elapsed: 5s\n  jitter: none\n")
    monkeypatch.setenv("RELIACTL_CONFIG", str(cfg))
    with pytest.raises(RetryError) as info:
        retry(sleep=clock.sleep, clock=clock.monotonic)(Flaky(1000))()
    assert info.value.reason == "deadline" and sum(clock.sleeps) == 5.0


def test_environment_overrides_reach_the_decorator(monkeypatch, clock) -> None:
    monkeypatch.setenv("RELIACTL_RETRY__MAX_RETRIES", "2")
    monkeypatch.setenv("RELIACTL_RETRY__JITTER", "none")
    flaky = Flaky(10)
    with pytest.raises(RetryError):
        retry(sleep=clock.sleep)(flaky)()
    assert flaky.calls == 3 and clock.sleeps == [1.0, 2.0]


def test_a_broken_config_fails_the_call_not_the_decoration(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("retry:\n  max_retries: lots\n")
    monkeypatch.setenv("RELIACTL_CONFIG", str(cfg))
    fn = retry(max_retries=2)(lambda: "ok")  # decorating reads nothing
    with pytest.raises(ConfigError, match="max_retries"):
        fn()


def test_complete_settings_never_read_the_config(tmp_path: Path, monkeypatch, clock) -> None:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("retry: [broken\n")
    monkeypatch.setenv("RELIACTL_CONFIG", str(cfg))
    assert retry(**EXACT, max_retries=1, sleep=clock.sleep)(Flaky(1))() == "ok"
    strategy = FixedDelayStrategy(max_retries=1)
    assert retry(strategy=strategy, sleep=clock.sleep)(Flaky(1))() == "ok"


IMPORTER = textwrap.dedent(
    """
    import sys
    from reliactl.retry import retry, retry_async

    @retry(max_retries=3)
    def f():
        return "called"

    @retry_async(max_retries=3, base_delay=1.0)
    async def g():
        return "called"

    loaded = [m for m in ("asyncio", "random", "reliactl.config", "yaml", "typer", "rich",
                          "httpx", "inspect") if m in sys.modules]
    print("LOADED", loaded, flush=True)
    try:
        f()
    except Exception as exc:
        print("CALL", type(exc).__name__, flush=True)
    """
)


def test_import_is_cheap_and_a_broken_config_breaks_only_the_call(tmp_path: Path) -> None:
    """Importing and decorating loads no asyncio/random/config; the call reports ConfigError."""
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("retry:\n  jitter: sometimes\n")
    script = tmp_path / "user_module.py"
    script.write_text(IMPORTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**env, "RELIACTL_CONFIG": str(cfg)},
        timeout=60,
    )
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
    assert "CALL ConfigError" in result.stdout, result.stdout + result.stderr


STRESS_CHILD = textwrap.dedent(
    """
    import sys
    from reliactl.retry import retry

    @retry(strategy="fixed", base_delay=600, max_delay=600, max_retries=5, jitter="none",
           max_elapsed=None, retry_on=OSError,
           on_retry=lambda attempt, delay, exc: print("sleeping", flush=True))
    def fetch():
        raise OSError("down")

    for round in range(int(sys.argv[1])):
        try:
            fetch()
        except KeyboardInterrupt:
            print("ended", flush=True)
    """
)


@pytest.mark.stress
def test_no_signal_is_lost_before_a_backoff_sleep(tmp_path: Path) -> None:
    """SIGINT sent right as the backoff begins, 200 times: every one ends its 600 s sleep.

    time.sleep alone loses about one in a hundred (the signal lands between the interpreter's
    last check and the sleep's start, or inside an import's weakref callback).
    """
    rounds = 200
    script = tmp_path / "child.py"
    script.write_text(STRESS_CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(rounds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ended = 0
    try:
        for _ in range(rounds):
            assert proc.stdout.readline().strip() == "sleeping"
            proc.send_signal(signal.SIGINT)
            timer = threading.Timer(20, proc.kill)
            timer.start()
            line = proc.stdout.readline().strip()
            timer.cancel()
            assert line == "ended", f"round {ended + 1}: the signal was lost"
            ended += 1
    finally:
        proc.kill()
        proc.wait()
    assert ended == rounds


# ---- the default sync sleep


@pytest.fixture
def wakeup_pipe():
    """A wakeup fd of our own (as asyncio would install), restored afterwards."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    os.set_blocking(r, False)
    old = signal.set_wakeup_fd(w)
    try:
        yield r, w
    finally:
        signal.set_wakeup_fd(old)
        os.close(r)
        os.close(w)


def test_a_raising_handler_ends_the_default_sleep(wakeup_pipe) -> None:
    """A handler that raises (SIGTERM -> SystemExit style) ends a 600 s sleep; the previous
    wakeup fd is restored and receives the signal number."""
    from reliactl.retry import interruptible_sleep

    r, w = wakeup_pipe

    class Stop(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Stop

    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(Stop):
            interruptible_sleep(600)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)
    assert signal.set_wakeup_fd(w) == w  # ours again
    assert os.read(r, 16) == bytes([signal.SIGUSR1])  # passed on to the previous fd


def test_a_handler_that_returns_does_not_shorten_the_sleep() -> None:
    from reliactl.retry import interruptible_sleep

    clock = FakeClock()
    seen: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    timer = threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        import time

        start = time.monotonic()
        timer.start()
        interruptible_sleep(0.2)
        slept = time.monotonic() - start
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)
    assert seen == [signal.SIGUSR1]
    assert slept >= 0.2  # a lower bound of a sleep, not a speed
    assert clock.sleeps == []


def test_the_default_sleep_works_outside_the_main_thread() -> None:
    from reliactl.retry import interruptible_sleep

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            interruptible_sleep(0.01)
            interruptible_sleep(0)
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert errors == [] and not t.is_alive()


def test_ctrl_c_anywhere_in_the_sleep_leaves_no_descriptor_and_restores_the_wakeup_fd() -> None:
    """A Ctrl-C (a signal handler's exception) raised at every point of reliactl/retry.py
    where Python runs a pending handler (a function's start, just after each call returns),
    one point a sleep: each sleep ends or raises, its pipe is closed and the previous wakeup
    fd is back either way. The old code leaked both pipe fds when it landed just after
    ``os.pipe()`` returned (before ``fds.extend`` stored them) or after ``map(os.close,
    fds)`` returned in the ``finally`` (before ``list`` ran it)."""
    from reliactl import retry
    from tests.test_cleanup_leftovers import _interrupt_at, _leaked, _open_fds

    before = _open_fds()
    initial = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(initial)
    k = interrupted = 0
    while True:
        k += 1
        trace, seen = _interrupt_at(k, KeyboardInterrupt, retry.__file__)
        previous = sys.gettrace()
        sys.settrace(trace)
        try:
            retry.interruptible_sleep(0.001)  # one poll of 1 ms: the same points every time
            finished = True
        except KeyboardInterrupt:
            finished = False
            interrupted += 1
        finally:
            sys.settrace(previous)
        wakeup = signal.set_wakeup_fd(initial)
        leaked = _leaked(before)
        for fd in leaked:
            os.close(fd)
        assert not leaked, f"interrupted at point {k} of {seen[0]}: {len(leaked)} fd(s) leaked"
        assert wakeup == initial, f"interrupted at point {k}: the wakeup fd was left at {wakeup}"
        if finished:
            break
        assert k < 500, "the sleep never finished"
    assert interrupted == k - 1 and interrupted > 10


FD_CHILD = textwrap.dedent(
    """
    import os, resource
    from reliactl.retry import interruptible_sleep

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    null = os.open(os.devnull, os.O_RDONLY)
    held = [os.dup(null) for _ in range(1200)]  # the sleep's pipe gets fds above 1024
    interruptible_sleep(0.01)
    print("high fds ok", flush=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(held) + 10, hard))
    try:
        while True:
            held.append(os.dup(null))
    except OSError:
        pass
    interruptible_sleep(0.01)  # no fd left for a pipe: a plain sleep, not an error
    print("no fds ok", flush=True)
    """
)


def test_the_default_sleep_survives_high_fds_and_fd_exhaustion(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(FD_CHILD)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split("\n")[:2] == ["high fds ok", "no fds ok"], result.stderr


# ---- properties of the engine


@settings(max_examples=200, deadline=None)
@given(
    failures=st.integers(min_value=0, max_value=30),
    max_retries=st.integers(min_value=0, max_value=20),
    max_elapsed=st.one_of(st.none(), st.floats(min_value=0.5, max_value=200.0)),
    took=st.floats(min_value=0.0, max_value=20.0),
    jitter=st.sampled_from(["none", "full", "equal", "decorrelated"]),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_engine_invariants(
    failures: int,
    max_retries: int,
    max_elapsed: float | None,
    took: float,
    jitter: str,
    seed: int,
) -> None:
    """Attempts never exceed max_retries + 1; no attempt starts after the deadline; the
    stats agree with what happened; the call succeeds exactly when the bounds allowed it."""
    import random

    clock = FakeClock(start=0.0)
    starts: list[float] = []

    def op() -> str:
        starts.append(clock.monotonic())
        clock.advance(took)
        if len(starts) <= failures:
            raise ConnectionError
        return "ok"

    strategy = ExponentialBackoffStrategy(
        base_delay=1.0,
        max_delay=30.0,
        max_retries=max_retries,
        jitter=jitter,
        rng=random.Random(seed),
    )
    fn = retry(
        strategy=strategy, max_elapsed=max_elapsed, sleep=clock.sleep, clock=clock.monotonic
    )(op)
    try:
        outcome: object = fn()
    except RetryError as exc:
        outcome = exc
    assert len(starts) <= max_retries + 1
    if max_elapsed is not None:
        assert all(t <= max_elapsed + 1e-9 for t in starts)
    stats = fn.retry_stats
    assert stats.attempts == len(starts) and stats.calls == 1
    assert stats.total_delay == pytest.approx(sum(clock.sleeps))
    assert all(0 <= d <= 30.0 for d in clock.sleeps)
    if outcome == "ok":
        assert len(starts) == failures + 1 and stats.successes == 1
    else:
        assert isinstance(outcome, RetryError) and outcome.attempts == len(starts)
        assert stats.giveups == 1 and len(starts) <= failures


def test_public_names_and_the_module_name() -> None:
    """Every exported retry name resolves; `reliactl.retry` stays the module."""
    import importlib
    import types

    import reliactl

    for name in (
        "ExponentialBackoffStrategy",
        "RetryPolicy",
        "retry_async",
        "retrying",
        "RetryBudget",
        "RetryStats",
        "make_strategy",
        "strategy_from_config",
    ):
        assert name in reliactl.__all__
        assert getattr(reliactl, name) is getattr(importlib.import_module("reliactl.retry"), name)
    assert isinstance(reliactl.retry, types.ModuleType)
    assert reliactl.__all__ == sorted(reliactl.__all__)


def test_policy_from_a_given_config_section(clock: FakeClock) -> None:
    """Commands pass their own loaded section (--config), not the process-wide one."""
    from reliactl.config import RetryConfig

    section = RetryConfig(max_retries=2, base_delay=0.5, jitter="none", max_elapsed=100.0)
    p = RetryPolicy.from_config(section, strategy="linear", sleep=clock.sleep, retry_on=OSError)
    assert p.max_elapsed == 100.0 and p.strategy.name == "linear"
    flaky = Flaky(10, exc=FileNotFoundError())
    with pytest.raises(RetryError):
        p(flaky)()
    assert flaky.calls == 3 and clock.sleeps == [0.5, 1.0]
    assert RetryPolicy.from_config(section, max_elapsed=None).max_elapsed is None
