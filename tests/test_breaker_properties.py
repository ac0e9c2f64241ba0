"""Random sequences of calls, held trials and time: both backends agree and keep the invariants."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliactl.breaker import Admission, BreakerConfig, CircuitBreaker, CircuitState
from reliactl.errors import CircuitOpenError
from reliactl.state.sqlite import open_store
from reliactl.testing import FakeClock

CFG = BreakerConfig(
    failure_threshold=3,
    recovery_timeout=10.0,
    half_open_max_calls=2,
    success_threshold=2,
    failure_rate_threshold=60,
    sliding_window_size=5,
    minimum_calls=4,
    recovery_multiplier=2.0,
    max_recovery_timeout=40.0,
    trial_timeout=25.0,
)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("ok"), st.just(0)),
        st.tuples(st.just("fail"), st.just(0)),
        st.tuples(st.just("hold"), st.just(0)),
        st.tuples(st.just("release_ok"), st.integers(0, 3)),
        st.tuples(st.just("release_fail"), st.integers(0, 3)),
        st.tuples(st.just("advance"), st.sampled_from([1, 5, 10, 26, 45])),
    ),
    max_size=40,
)


class Boom(Exception):
    pass


def _raise() -> None:
    raise Boom


def step(b: CircuitBreaker, held: list[Admission], op: str, arg: int) -> str:
    try:
        if op == "ok":
            b.call(lambda: None)
        elif op == "fail":
            try:
                b.call(_raise)
            except Boom:
                return "failed"
        elif op == "hold":
            held.append(b.admit())
        elif op in ("release_ok", "release_fail") and held:
            adm = held.pop(arg % len(held))
            if op == "release_ok":
                adm.success()
            else:
                adm.failure("held call failed")
        return "done"
    except CircuitOpenError as exc:
        return f"rejected {exc.retry_after:.3f}"


def view(b: CircuitBreaker) -> tuple[object, ...]:
    s = b.snapshot()
    return (
        s.state,
        s.consecutive_failures,
        s.calls,
        s.successes,
        s.failures,
        s.rejections,
        s.window_calls,
        s.window_failures,
        s.open_for,
        None if s.retry_after is None else round(s.retry_after, 6),
        s.trials_in_flight,
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(OPS)
def test_in_memory_and_persisted_breakers_agree(ops: list[tuple[str, int]]) -> None:
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "state.db")
        memory = CircuitBreaker("p", CFG, clock=clock)
        persisted = CircuitBreaker("p", CFG, store=store, clock=clock)
        held_m: list[Admission] = []
        held_p: list[Admission] = []
        for op, arg in ops:
            if op == "advance":
                clock.advance(arg)
                continue
            assert step(memory, held_m, op, arg) == step(persisted, held_p, op, arg), op
            assert view(memory) == view(persisted), op
            snap = memory.snapshot()
            # invariants
            assert snap.calls == snap.successes + snap.failures
            assert snap.trials_in_flight <= CFG.half_open_max_calls
            assert snap.window_calls <= CFG.sliding_window_size
            if snap.state is CircuitState.OPEN:
                assert snap.open_for is not None
                assert CFG.recovery_timeout <= snap.open_for <= 40.0
                assert snap.retry_after is not None and snap.retry_after <= snap.open_for
        assert [(e.from_state, e.to_state, e.reason) for e in memory.events(1000)] == [
            (e.from_state, e.to_state, e.reason) for e in persisted.events(1000)
        ]
        store.close()
