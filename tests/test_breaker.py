"""The breaker state machine, in memory, on a FakeClock: no test sleeps for a timeout."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from reliactl.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitState,
    circuit_breaker,
    create_http_circuit_config,
    is_http_failure,
)
from reliactl.errors import CircuitOpenError
from reliactl.state.base import BreakerEvent
from reliactl.testing import FakeClock


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def make(clock: FakeClock, **kw: object) -> CircuitBreaker:
    cfg = BreakerConfig(**{"failure_threshold": 3, "recovery_timeout": 10.0, **kw})  # type: ignore[arg-type]
    return CircuitBreaker("svc", cfg, clock=clock)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 2)
    assert b.state is CircuitState.CLOSED
    fail(b)
    assert b.state is CircuitState.OPEN
    snap = b.snapshot()
    assert snap.consecutive_failures == 3 and snap.failures == 3


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 2)
    assert b.call(ok) == "ok"
    fail(b, 2)
    assert b.state is CircuitState.CLOSED
    assert b.snapshot().consecutive_failures == 2


def test_open_breaker_rejects_with_name_and_retry_after(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 3)
    ran = []
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: ran.append(1))
    assert ran == []
    assert info.value.name == "svc"
    assert info.value.retry_after == pytest.approx(6.0)
    assert b.snapshot().rejections == 1


def test_after_recovery_timeout_a_trial_success_closes(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 3)
    clock.advance(10)
    assert b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED
    assert [(e.from_state, e.to_state) for e in reversed(b.events())] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_success_threshold_needs_that_many_trial_successes(clock: FakeClock) -> None:
    b = make(clock, success_threshold=2)
    fail(b, 3)
    clock.advance(10)
    b.call(ok)
    assert b.state is CircuitState.HALF_OPEN
    b.call(ok)
    assert b.state is CircuitState.CLOSED


def test_a_failed_trial_reopens_for_longer_up_to_the_cap(clock: FakeClock) -> None:
    b = make(clock, recovery_multiplier=2.0, max_recovery_timeout=30.0)
    fail(b, 3)
    expected = [20.0, 30.0, 30.0]
    wait = 10.0
    for open_for in expected:
        clock.advance(wait)
        fail(b)  # the trial
        snap = b.snapshot()
        assert snap.state is CircuitState.OPEN
        assert snap.open_for == open_for
        clock.advance(open_for - 0.5)
        with pytest.raises(CircuitOpenError):
            b.call(ok)
        wait = 0.5
    clock.advance(0.5)
    b.call(ok)
    assert b.state is CircuitState.CLOSED
    # closing forgets the growth: the next opening is short again
    fail(b, 3)
    assert b.snapshot().open_for == 10.0


def test_half_open_admits_at_most_max_calls_at_once(clock: FakeClock) -> None:
    b = make(clock, half_open_max_calls=2, success_threshold=3)
    fail(b, 3)
    clock.advance(10)
    first, second = b.admit(), b.admit()
    assert first.trial and second.trial
    with pytest.raises(CircuitOpenError):
        b.admit()
    first.success()  # frees a slot without closing (3 successes needed)
    third = b.admit()
    assert third.trial
    assert b.snapshot().trials_in_flight == 2


def test_a_trial_that_never_reports_expires(clock: FakeClock) -> None:
    b = make(clock, trial_timeout=5.0)
    fail(b, 3)
    clock.advance(10)
    b.admit()  # never reports (its caller hung)
    with pytest.raises(CircuitOpenError) as info:
        b.admit()
    assert info.value.retry_after == pytest.approx(5.0)
    clock.advance(5)
    assert b.admit().trial


def test_keyboard_interrupt_and_cancellation_never_count(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(b.call(cancelled))
    snap = b.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert snap.failures == 0 and snap.calls == 0


def test_an_interrupted_trial_releases_its_slot(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 3)
    clock.advance(10)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.state is CircuitState.HALF_OPEN
    assert b.call(ok) == "ok"  # the slot was released, not leaked
    assert b.state is CircuitState.CLOSED


def test_excluded_exceptions_are_ignored(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1, excluded_exceptions=(Boom,))
    fail(b, 5)
    snap = b.snapshot()
    assert snap.state is CircuitState.CLOSED and snap.failures == 0


def test_is_failure_false_counts_as_success(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1, is_failure=lambda exc: not isinstance(exc, Boom))
    fail(b, 3)
    snap = b.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert snap.successes == 3 and snap.failures == 0


def test_failure_rate_opens_only_after_minimum_calls(clock: FakeClock) -> None:
    b = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=50,
        sliding_window_size=10,
        minimum_calls=6,
    )
    for _ in range(2):
        b.call(ok)
        fail(b)
    assert b.state is CircuitState.CLOSED  # 50% but only 4 calls
    b.call(ok)
    assert b.state is CircuitState.CLOSED  # 2/5 = 40%
    fail(b)
    assert b.state is CircuitState.OPEN  # 3/6 = 50%
    assert "failure rate 50% over the last 6 calls" in b.events()[0].reason


def test_failure_rate_is_evaluated_after_a_success_too(clock: FakeClock) -> None:
    """resilience4j: the call that reaches minimum_calls opens the breaker on the window's
    rate even when that call succeeded (3 failures + 1 success = 75% >= 50%)."""
    b = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=50,
        sliding_window_size=10,
        minimum_calls=4,
    )
    fail(b, 3)
    assert b.state is CircuitState.CLOSED  # only 3 calls: below minimum_calls
    assert b.call(ok) == "ok"  # the call itself goes through and succeeds...
    assert b.state is CircuitState.OPEN  # ...and the window it completes is 75% failures
    assert "failure rate 75% over the last 4 calls" in b.events()[0].reason
    with pytest.raises(CircuitOpenError):
        b.call(ok)


def test_failure_rate_window_slides(clock: FakeClock) -> None:
    b = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=60,
        sliding_window_size=5,
        minimum_calls=5,
    )
    fail(b, 2)
    for _ in range(5):
        b.call(ok)
    snap = b.snapshot()
    assert snap.window_calls == 5 and snap.window_failures == 0 and snap.failure_rate == 0.0
    fail(b, 2)
    assert b.state is CircuitState.CLOSED  # 2/5
    fail(b)
    assert b.state is CircuitState.OPEN  # 3/5


def test_a_slow_call_counts_as_a_failure(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=2, slow_call_threshold=2.0)

    def slow() -> str:
        clock.advance(2.5)
        return "late"

    assert b.call(slow) == "late"
    assert b.call(slow) == "late"
    snap = b.snapshot()
    assert snap.state is CircuitState.OPEN
    assert snap.slow_calls == 2 and snap.failures == 2
    assert "slow call" in (snap.last_failure or "")


def test_the_lock_is_not_held_during_the_guarded_call() -> None:
    b = CircuitBreaker("concurrent", BreakerConfig())
    barrier = threading.Barrier(2, timeout=10)
    results: list[int] = []

    def meet() -> None:
        results.append(barrier.wait())  # both must be inside the call at once

    threads = [threading.Thread(target=b.call, args=(meet,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(results) == [0, 1]
    assert b.snapshot().successes == 2


def test_counters_are_exact_with_many_threads() -> None:
    b = CircuitBreaker("threads", BreakerConfig(failure_threshold=10_000))

    def work() -> None:
        for i in range(500):
            try:
                b.call(boom if i % 2 else ok)
            except Boom:
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = b.snapshot()
    assert (snap.calls, snap.successes, snap.failures) == (4000, 2000, 2000)


def test_async_calls_and_rejections(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1)

    async def fetch() -> int:
        await asyncio.sleep(0)
        return 42

    async def broken() -> None:
        raise Boom("async")

    async def scenario() -> None:
        assert await b.call(fetch) == 42
        with pytest.raises(Boom):
            await b.call(broken)
        with pytest.raises(CircuitOpenError):
            await b.call(fetch)

    asyncio.run(scenario())


def test_async_calls_on_a_closed_breaker_are_all_counted(clock: FakeClock) -> None:
    """Overlapping async successes and failures through a closed in-memory breaker are each
    counted once (its fast path skips the reservation and the clock, never the counting)."""
    b = make(clock, failure_threshold=10_000)

    async def ok() -> int:
        await asyncio.sleep(0)
        return 1

    async def bad() -> None:
        await asyncio.sleep(0)
        raise Boom("async")

    async def one(i: int) -> None:
        try:
            await b.call_async(ok if i % 3 else bad)
        except Boom:
            pass

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(300)))

    asyncio.run(scenario())
    snap = b.snapshot()
    assert (snap.calls, snap.successes, snap.failures) == (300, 200, 100)
    assert snap.consecutive_failures <= 1


def test_a_plain_function_returning_a_coroutine_is_counted_when_awaited(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=1)

    async def broken() -> None:
        raise Boom("later")

    awaitable = b.call(lambda: broken())
    assert b.snapshot().calls == 0
    with pytest.raises(Boom):
        asyncio.run(awaitable)
    assert b.state is CircuitState.OPEN


def test_decorator_on_sync_and_async_functions() -> None:
    manager = CircuitBreakerManager()
    cfg = BreakerConfig(failure_threshold=2)
    calls: list[str] = []

    @circuit_breaker("deco", cfg, manager=manager)
    def flaky(x: int) -> int:
        calls.append("sync")
        if x < 0:
            raise Boom("neg")
        return x * 2

    @circuit_breaker("deco", cfg, manager=manager)
    async def aflaky(x: int) -> int:
        calls.append("async")
        return x + 1

    assert flaky(2) == 4
    assert asyncio.run(aflaky(1)) == 2
    for _ in range(2):
        with pytest.raises(Boom):
            flaky(-1)
    with pytest.raises(CircuitOpenError):
        flaky(3)
    with pytest.raises(CircuitOpenError):
        asyncio.run(aflaky(3))
    assert calls == ["sync", "async", "sync", "sync"]
    assert flaky.__name__ == "flaky"
    assert manager.get("deco") is flaky.breaker()  # type: ignore[attr-defined]


def test_listeners_see_transitions_and_rejections(clock: FakeClock) -> None:
    seen: list[BreakerEvent] = []
    rejected: list[CircuitOpenError] = []
    b = CircuitBreaker(
        "hooks",
        BreakerConfig(failure_threshold=1, recovery_timeout=5),
        clock=clock,
        on_state_change=seen.append,
        on_call_rejected=rejected.append,
    )

    @b.on_state_change
    def broken_listener(event: BreakerEvent) -> None:
        raise RuntimeError("a listener's own bug")

    fail(b)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    assert [(e.name, e.from_state, e.to_state) for e in seen] == [("hooks", "closed", "open")]
    assert seen[0].at == clock.time()
    assert [(r.name, r.retry_after) for r in rejected] == [("hooks", 5.0)]


def test_in_memory_timing_ignores_wall_clock_jumps(clock: FakeClock) -> None:
    b = make(clock)
    fail(b, 3)
    clock.set_wall(clock.time() - 86400)  # the wall clock is set back a day
    clock.advance(10)
    assert b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED


def test_admission_reports_once_and_works_as_context_manager(clock: FakeClock) -> None:
    b = make(clock, failure_threshold=2)
    adm = b.admit()
    adm.failure("exit 3")
    adm.failure("again")
    adm.success()
    assert b.snapshot().failures == 1
    assert b.snapshot().last_failure == "exit 3"
    with pytest.raises(Boom), b.admit():
        raise Boom("in a block")
    assert b.state is CircuitState.OPEN
    clock.advance(10)
    with b.admit() as trial:
        assert trial.trial
    assert b.state is CircuitState.CLOSED


def test_trip_close_and_reset(clock: FakeClock) -> None:
    b = make(clock)
    b.trip(30)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == 30
    assert b.snapshot().forced
    clock.advance(30)
    assert b.call(ok) == "ok"  # after the maintenance window: a trial, which closes it
    b.trip(None)
    clock.advance(10**6)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    assert b.snapshot().retry_after is None
    b.close()
    assert b.call(ok) == "ok"
    fail(b, 2)
    b.reset()
    snap = b.snapshot()
    assert snap.state is CircuitState.CLOSED and snap.calls == 0 and snap.failures == 0
    assert b.events()[0].reason == "reset by hand"


def test_manager_returns_one_breaker_per_name_and_reports_health() -> None:
    manager = CircuitBreakerManager()
    a = manager.get_breaker("a", BreakerConfig(failure_threshold=1))
    assert manager.get_breaker("a") is a
    manager.get_breaker("b", BreakerConfig())
    with pytest.raises(Boom):
        a.call(boom)
    status = manager.get_health_status()
    assert status["total_breakers"] == 2
    assert status["open_breakers"] == 1 and status["half_open_breakers"] == 0
    assert status["open"] == ["a"]
    stats = status["breakers"]["a"]
    assert stats["state"] == "open" and stats["failures"] == 1 and stats["failure_rate"] == 100.0
    assert {"calls", "successes", "rejections", "since"} <= set(stats)


def test_manager_takes_defaults_from_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CB_FAILURE_THRESHOLD", "2")
    monkeypatch.setenv("RELIACTL_CIRCUIT_BREAKER__BREAKERS__SPECIAL__FAILURE_THRESHOLD", "7")
    manager = CircuitBreakerManager()
    assert manager.get_breaker("plain").config.failure_threshold == 2
    assert manager.get_breaker("special").config.failure_threshold == 7
    assert not manager.get_breaker("plain").persistent


def test_invalid_configs_are_refused() -> None:
    for bad in (
        {"failure_threshold": 0},
        {"recovery_timeout": -1},
        {"failure_rate_threshold": 150},
        {"recovery_multiplier": 0.5},
        {"trial_timeout": float("inf")},
    ):
        with pytest.raises(ValueError):
            BreakerConfig(**bad)  # type: ignore[arg-type]


def test_http_config_counts_5xx_and_transport_errors_not_4xx() -> None:
    import httpx

    request = httpx.Request("GET", "http://127.0.0.1/x")

    def status_error(code: int) -> httpx.HTTPStatusError:
        response = httpx.Response(code, request=request)
        return httpx.HTTPStatusError(f"{code}", request=request, response=response)

    assert is_http_failure(status_error(503))
    assert is_http_failure(status_error(500))
    assert not is_http_failure(status_error(404))
    assert not is_http_failure(status_error(429))
    assert is_http_failure(httpx.ConnectError("refused", request=request))
    assert is_http_failure(httpx.ReadTimeout("slow", request=request))
    assert is_http_failure(ConnectionRefusedError())
    assert is_http_failure(TimeoutError())
    assert not is_http_failure(ValueError("bad json"))

    cfg = create_http_circuit_config(failure_threshold=2)
    assert cfg.failure_threshold == 2
    b = CircuitBreaker("http", cfg)
    for _ in range(3):
        with pytest.raises(httpx.HTTPStatusError):
            b.call(lambda: (_ for _ in ()).throw(status_error(404)))
    assert b.state is CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(httpx.HTTPStatusError):
            b.call(lambda: (_ for _ in ()).throw(status_error(502)))
    assert b.state is CircuitState.OPEN


def test_public_names_are_exported_lazily() -> None:
    import reliactl

    assert reliactl.circuit_manager.get_breaker is not None
    assert reliactl.CircuitBreaker is CircuitBreaker
    assert "circuit_breaker" in reliactl.__all__ and "get_persistent_breaker" in reliactl.__all__


def test_async_calls_through_one_breaker_overlap() -> None:
    b = CircuitBreaker("overlap", BreakerConfig())

    async def scenario() -> list[str]:
        first_inside = asyncio.Event()
        order: list[str] = []

        async def first() -> None:
            order.append("first in")
            first_inside.set()
            await asyncio.sleep(0.01)
            order.append("first out")

        async def second() -> None:
            await first_inside.wait()
            order.append("second in")

        await asyncio.wait_for(asyncio.gather(b.call(first), b.call(second)), 10)
        return order

    assert asyncio.run(scenario()) == ["first in", "second in", "first out"]


def test_a_breaker_instance_decorates_as_in_pybreaker(clock: FakeClock) -> None:
    """`@breaker` on a CircuitBreaker wraps the function (sync and async), never calls it."""
    b = make(clock, failure_threshold=2)
    ran = []

    @b
    def fetch(x: int) -> int:
        ran.append(x)
        if x < 0:
            raise Boom("down")
        return x * 2

    @b
    async def afetch() -> str:
        return "async ok"

    assert ran == [] and callable(fetch) and fetch.__name__ == "fetch"
    assert fetch(21) == 42 and ran == [21]
    assert asyncio.run(afetch()) == "async ok"
    for _ in range(2):
        with pytest.raises(Boom):
            fetch(-1)
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        fetch(1)
    assert ran == [21, -1, -1] and fetch.breaker() is b  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"breaker.call\(fn, \*args"):
        b(ok, 1)  # the old meaning of breaker(fn, *args): a clear message, not a call


def test_generator_functions_are_refused_like_retry_refuses_them(clock: FakeClock) -> None:
    """A generator's body runs after the call returned: the breaker refuses it (decorator,
    instance decorator, call) instead of counting its creation as a success."""
    from reliactl.retry import retry

    b = make(clock)

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    for fn, kind in ((gen, "a generator"), (agen, "an async generator")):
        for use in (b, circuit_breaker("gen-svc"), b.call, b.call_sync, retry(max_retries=1)):
            with pytest.raises(TypeError, match=f"it is {kind} function"):
                use(fn)
        with pytest.raises(TypeError, match=r"breaker\.admit"):
            b(fn)
    with pytest.raises(TypeError, match="an async generator"):
        asyncio.run(b.call_async(agen))
    assert b.snapshot().calls == 0


def test_hot_path_successes_are_counted_by_every_call_form(clock: FakeClock) -> None:
    """Once a closed in-memory breaker's whole window succeeded, successes take the lock-free
    hot path (issue 21): through call, call_sync, call_async, both decorator forms and a
    breaker instance used as a decorator they are all counted, a failure after them still
    counts and opens at the threshold, and reset forgets the hot path's counts too."""
    b = make(clock, sliding_window_size=3, failure_threshold=2)
    manager = CircuitBreakerManager()
    manager._breakers["svc"] = b
    deco = circuit_breaker("svc", manager=manager)(ok)

    async def aok() -> str:
        return "ok"

    adeco = circuit_breaker("svc", manager=manager)(aok)
    inst = b(ok)

    async def many_async() -> None:
        for _ in range(5):
            assert await b.call_async(aok) == "ok"
            assert await b.call(aok) == "ok"
            assert await adeco() == "ok"

    for _ in range(5):
        assert b.call(ok) == "ok" and b.call_sync(ok) == "ok" and deco() == "ok"
        assert inst() == "ok"
    asyncio.run(many_async())
    assert b._hot  # the window is all successes: the hot path is in use
    snap = b.snapshot()
    assert (snap.calls, snap.successes, snap.failures, snap.window_calls) == (35, 35, 0, 3)
    fail(b)
    assert not b._hot
    assert b.snapshot().consecutive_failures == 1
    assert deco() == "ok"  # a success resets the consecutive count
    fail(b, 2)
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        deco()
    snap = b.snapshot()
    assert (snap.calls, snap.successes, snap.failures, snap.rejections) == (39, 36, 3, 1)
    b.reset()
    for _ in range(5):
        deco()
    assert (b.snapshot().calls, b.snapshot().successes) == (5, 5)


def test_a_success_on_the_hot_path_never_waits_for_the_breaker_lock() -> None:
    """A success through a closed, healthy in-memory breaker counts itself without the
    breaker's lock (issue 21: below circuitbreaker per call), so a thread holding the lock
    (a transition in progress) does not hold it up; the success is counted afterwards."""
    b = CircuitBreaker("hot", BreakerConfig(sliding_window_size=2))
    b.call(ok)
    b.call(ok)
    done = threading.Event()

    def call() -> None:
        b.call(ok)
        done.set()

    with b._lock:
        worker = threading.Thread(target=call)
        worker.start()
        assert done.wait(10), "a hot-path success waited for the lock"
    worker.join(10)
    assert b.snapshot().successes == 3


@pytest.mark.stress
def test_counters_are_exact_when_hot_successes_race_failures() -> None:
    """8 threads of successes on the hot path and 2 of failures on one breaker: every call is
    counted exactly once (successes + failures == calls) and failures never get lost."""
    b = CircuitBreaker("race", BreakerConfig(failure_threshold=10**9, sliding_window_size=5))
    for _ in range(5):
        b.call(ok)

    def succeed() -> None:
        for _ in range(3000):
            b.call(ok)

    def failing() -> None:
        for i in range(600):
            try:
                b.call(boom if i % 3 == 0 else ok)
            except Boom:
                pass

    threads = [threading.Thread(target=succeed) for _ in range(8)]
    threads += [threading.Thread(target=failing) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    snap = b.snapshot()
    assert snap.failures == 400
    assert snap.calls == 5 + 8 * 3000 + 2 * 600
    assert snap.successes + snap.failures == snap.calls


def test_the_in_memory_failure_path_keeps_reason_time_and_window(clock: FakeClock) -> None:
    """A failure that opens nothing is counted on the in-memory failure path (issue 21)
    exactly as the full path counts it: reason text, wall time, window and consecutive
    count; the failure that reaches the threshold still opens the breaker with its reason."""
    b = make(clock, failure_threshold=3, sliding_window_size=4)
    for _ in range(4):
        b.call(ok)
    clock.advance(5)
    fail(b, 2)
    snap = b.snapshot()
    assert snap.last_failure == "Boom: down" and snap.last_failure_at == clock.time()
    assert (snap.consecutive_failures, snap.window_calls, snap.window_failures) == (2, 4, 2)
    assert (snap.calls, snap.failures, snap.successes) == (6, 2, 4)
    events: list[BreakerEvent] = []
    b.on_state_change(events.append)
    fail(b)
    assert b.state is CircuitState.OPEN
    assert events[0].reason == "3 consecutive failures (last: Boom: down)"


def test_a_lazily_formatted_reason_reads_as_the_exception(clock: FakeClock) -> None:
    """The in-memory failure path keeps only the exception's class and text and formats
    the reason when it is read (issue 21): the snapshot, ``get_stats`` and the event of the
    failure that opens the breaker still say "Class: text", a message-less exception says
    its class, a long one is cut to MAX_REASON, and a reason reported by hand afterwards
    (``Admission.failure``) replaces the lazy one rather than being prefixed with a class."""
    from reliactl.breaker import MAX_REASON

    b = make(clock, failure_threshold=4)
    deco = b(boom)
    with pytest.raises(Boom):
        deco()
    snap = b.snapshot()
    assert snap.last_failure == "Boom: down" and snap.last_failure_at == clock.time()
    assert b.get_stats()["last_failure"] == "Boom: down"

    def silent() -> None:
        raise Boom()

    clock.advance(1)
    with pytest.raises(Boom):
        b.call(silent)
    assert b.snapshot().last_failure == "Boom"
    assert b.snapshot().last_failure_at == clock.time()

    def loud() -> None:
        raise ValueError("x" * 5000)

    with pytest.raises(ValueError):
        b.call(loud)
    text = b.snapshot().last_failure or ""
    assert len(text) == MAX_REASON and text.startswith("ValueError: xxx")

    events: list[BreakerEvent] = []
    b.on_state_change(events.append)
    b.admit().failure("exit 3")  # the fourth failure opens it, with the text as given
    assert b.state is CircuitState.OPEN
    assert b.snapshot().last_failure == "exit 3"
    assert events[0].reason == "4 consecutive failures (last: exit 3)"


def test_the_async_failure_path_formats_the_reason_too(clock: FakeClock) -> None:
    """An awaited failure below the threshold (decorator and ``call_async``) is recorded
    with the same "Class: text" reason and wall time as a synchronous one (issue 21)."""
    b = make(clock, failure_threshold=5)

    async def aboom() -> None:
        raise Boom("async down")

    async def main() -> None:
        with pytest.raises(Boom):
            await b(aboom)()
        assert b.snapshot().last_failure == "Boom: async down"
        clock.advance(2)
        with pytest.raises(Boom):
            await b.call_async(aboom)

    asyncio.run(main())
    snap = b.snapshot()
    assert snap.last_failure == "Boom: async down" and snap.last_failure_at == clock.time()
    assert (snap.failures, snap.consecutive_failures) == (2, 2)


def test_failure_path_window_entries_are_in_order_and_bounded(clock: FakeClock) -> None:
    """The in-memory failure path appends its "1"s to the sliding window when the window is
    next read (issue 21): a snapshot, a success and an operator action all see them in call
    order, never more than the window holds, and a breaker whose window has filled with
    successes again counts successes on the hot path without losing any."""
    b = make(clock, failure_threshold=1000, sliding_window_size=4)
    for _ in range(50):  # far more failures than the window holds
        with pytest.raises(Boom):
            b.call(boom)
    snap = b.snapshot()
    assert (snap.window_calls, snap.window_failures, snap.failure_rate) == (4, 4, 100.0)
    b.call(ok)
    b.call(ok)
    fail(b)  # window now 1, 0, 0, 1 (newest last)
    b.call(ok)
    snap = b.snapshot()
    assert (snap.window_calls, snap.window_failures) == (4, 1)
    assert (snap.calls, snap.failures, snap.successes) == (54, 51, 3)
    assert snap.consecutive_failures == 0
    for _ in range(10):  # the failure leaves the window; later successes run hot
        b.call(ok)
    snap = b.snapshot()
    assert (snap.window_calls, snap.window_failures, snap.successes) == (4, 0, 13)
    assert snap.calls == snap.successes + snap.failures
    fail(b, 2)
    for _ in range(3):  # window 0, 0, 1, 1 then 0, 0, 0: the second failure is still in
        b.call(ok)
    assert (b.snapshot().window_failures, b.snapshot().consecutive_failures) == (1, 0)
    fail(b, 2)
    b.close()  # an operator action after pending failures starts the window afresh
    b.call(ok)
    snap = b.snapshot()
    assert (snap.window_calls, snap.window_failures, snap.consecutive_failures) == (1, 0, 0)
    fail(b, 3)
    b.reset()
    snap = b.snapshot()
    assert (snap.window_calls, snap.calls, snap.last_failure) == (0, 0, None)


def test_an_exception_whose_str_raises_is_still_counted_and_re_raised(clock: FakeClock) -> None:
    """A guarded call's exception whose ``__str__`` raises is counted as a failure with a
    placeholder reason, and the caller gets that exception, not one from the breaker's
    bookkeeping (issue 21: the reason text is taken once, on the failure path)."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def bad() -> None:
        raise Unprintable()

    b = make(clock, failure_threshold=2)
    with pytest.raises(Unprintable):
        b(bad)()
    assert b.snapshot().last_failure == "Unprintable: (exception text unavailable)"
    with pytest.raises(Unprintable):
        b.call(bad)
    assert b.state is CircuitState.OPEN and b.snapshot().failures == 2


def test_a_half_open_rejection_says_half_open_not_open(clock: FakeClock) -> None:
    """A rejection names the state that refused: half-open with its trial slots taken is not
    "open" (the service is being tried); an open breaker still says open. Both are the same
    CircuitOpenError with its name and retry_after, and ``state`` says which."""
    b = make(clock, half_open_max_calls=1, trial_timeout=5.0)
    fail(b, 3)
    with pytest.raises(CircuitOpenError) as opened:
        b.admit()
    assert opened.value.state == "open" and opened.value.retry_after == pytest.approx(10.0)
    assert str(opened.value) == "circuit breaker 'svc' is open; retry in 10s"
    clock.advance(10)
    assert b.admit().trial  # the one trial slot, taken
    with pytest.raises(CircuitOpenError) as taken:
        b.admit()
    assert taken.value.state == "half_open" and taken.value.name == "svc"
    assert taken.value.retry_after == pytest.approx(5.0)
    assert str(taken.value) == (
        "circuit breaker 'svc' is half-open with its trial slots taken; retry in 5s"
    )


def _refused_half_open() -> None:
    """In a worker process: a breaker whose one trial slot is taken refuses a call."""
    clock = FakeClock()
    b = make(clock, half_open_max_calls=1, trial_timeout=5.0)
    fail(b, 3)
    clock.advance(10)
    assert b.admit().trial
    b.admit()  # raises CircuitOpenError (half-open, retry in 5s)


def test_a_rejection_pickles_with_its_fields_across_a_process_pool() -> None:
    """CircuitOpenError survives pickling with its name, retry_after, state and message: a
    rejection raised in a ProcessPoolExecutor worker reaches the caller as itself (before,
    unpickling it raised TypeError and broke the pool: BrokenProcessPool). Notes added to it
    go along."""
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool, pytest.raises(CircuitOpenError) as info:
        pool.submit(_refused_half_open).result(timeout=60)
    got = info.value
    assert (got.name, got.retry_after, got.state) == ("svc", pytest.approx(5.0), "half_open")
    assert str(got) == "circuit breaker 'svc' is half-open with its trial slots taken; retry in 5s"
    err = CircuitOpenError("b", 3, "open")
    err.add_note("while calling the inventory service")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CircuitOpenError and str(back) == str(err)
    assert (back.name, back.retry_after, back.state) == ("b", 3.0, "open")
    assert back.__notes__ == ["while calling the inventory service"]
