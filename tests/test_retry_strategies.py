"""Backoff strategies as pure functions of the attempt number: exact values, jitter bounds."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliactl.config import RetryConfig
from reliactl.retry import (
    DEFAULT_RETRYABLE,
    ExponentialBackoffStrategy,
    FixedDelayStrategy,
    LinearBackoffStrategy,
    make_strategy,
    plan_schedule,
    strategy_from_config,
)

# ---- exact values without jitter


def test_exponential_doubles_from_base_and_caps_at_max_delay() -> None:
    s = ExponentialBackoffStrategy(base_delay=1.0, max_delay=30.0, jitter="none")
    assert [s.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_exponential_multiplier_three() -> None:
    s = ExponentialBackoffStrategy(base_delay=0.5, max_delay=100.0, multiplier=3.0, jitter="none")
    assert [s.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 13.5]


def test_exponential_multiplier_one_is_constant() -> None:
    s = ExponentialBackoffStrategy(base_delay=2.0, max_delay=5.0, multiplier=1.0, jitter="none")
    assert {s.delay(n) for n in (1, 2, 50, 10_000)} == {2.0}


def test_linear_adds_base_each_attempt_or_the_given_increment() -> None:
    s = LinearBackoffStrategy(base_delay=2.0, max_delay=9.0)
    assert [s.delay(n) for n in range(1, 7)] == [2.0, 4.0, 6.0, 8.0, 9.0, 9.0]
    s = LinearBackoffStrategy(base_delay=1.0, increment=0.5, max_delay=9.0)
    assert [s.delay(n) for n in (1, 2, 3)] == [1.0, 1.5, 2.0]


def test_fixed_is_the_same_every_time() -> None:
    s = FixedDelayStrategy(base_delay=3.0)
    assert s.schedule(4) == [3.0, 3.0, 3.0, 3.0]
    assert s.max_delay == 3.0


def test_seed_constructor_and_attributes() -> None:
    """The seed's exact ExponentialBackoffStrategy(...) call works and keeps its settings."""
    s = ExponentialBackoffStrategy(
        base_delay=1.0,
        max_delay=30.0,
        max_retries=5,
        retryable_exceptions=(ConnectionError, TimeoutError),
    )
    assert (s.base_delay, s.max_delay, s.max_retries, s.multiplier) == (1.0, 30.0, 5, 2.0)
    assert s.jitter == "full"
    assert s.retryable_exceptions == (ConnectionError, TimeoutError)
    assert s.is_retryable(ConnectionResetError()) and not s.is_retryable(ValueError())
    assert not s.is_retryable(KeyboardInterrupt())


@pytest.mark.parametrize("attempt", [10_000, 10**9, 2**62])
@pytest.mark.parametrize(
    "strategy",
    [
        ExponentialBackoffStrategy(base_delay=1.0, max_delay=30.0, jitter="none"),
        ExponentialBackoffStrategy(base_delay=1e-9, max_delay=1e9, multiplier=1.0001),
        ExponentialBackoffStrategy(base_delay=0.1, max_delay=60.0, multiplier=1000.0),
        LinearBackoffStrategy(base_delay=1.0, max_delay=300.0, jitter="equal"),
        ExponentialBackoffStrategy(jitter="decorrelated"),
    ],
    ids=["exp", "slow-growth", "huge-multiplier", "linear", "decorrelated"],
)
def test_overflow_safe_at_huge_attempts(strategy, attempt: int) -> None:
    """No OverflowError, no inf or nan: the delay stays within max_delay."""
    d = strategy.delay(attempt)
    assert math.isfinite(d) and 0 <= d <= strategy.max_delay


def test_exponential_at_attempt_10000_is_exactly_the_cap() -> None:
    s = ExponentialBackoffStrategy(base_delay=1.0, max_delay=30.0, jitter="none")
    assert s.delay(10_000) == 30.0
    assert s.delay(1024) == 30.0  # 2**1023 * 1.0 would be finite, 2**1024 overflows


def test_delay_is_pure() -> None:
    """The same attempt gives the same delay; nothing is counted or slept."""
    s = ExponentialBackoffStrategy(jitter="none")
    assert [s.delay(3) for _ in range(3)] == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("attempt", [0, -1, 1.5, True, "2"])
def test_attempt_must_be_a_positive_integer(attempt: object) -> None:
    with pytest.raises(ValueError, match="attempt"):
        ExponentialBackoffStrategy().delay(attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_delay": -1}, "base_delay"),
        ({"base_delay": math.nan}, "base_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"base_delay": 5, "max_delay": 1}, "must not be less"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"jitter": "lots"}, "jitter"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ExponentialBackoffStrategy(**kwargs)  # type: ignore[arg-type]


def test_retryable_exceptions_must_be_exception_types() -> None:
    with pytest.raises(TypeError):
        ExponentialBackoffStrategy(retryable_exceptions=("ConnectionError",))  # type: ignore[arg-type]


# ---- jitter: bounds and distribution


delays = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
attempts = st.integers(min_value=1, max_value=20_000)
seeds = st.integers(min_value=0, max_value=2**32)


@settings(max_examples=300, deadline=None)
@given(base=delays, extra=delays, attempt=attempts, seed=seeds)
def test_full_jitter_is_between_zero_and_the_capped_delay(
    base: float, extra: float, attempt: int, seed: int
) -> None:
    s = ExponentialBackoffStrategy(
        base_delay=base, max_delay=base + extra, jitter="full", rng=random.Random(seed)
    )
    plain = ExponentialBackoffStrategy(base_delay=base, max_delay=base + extra, jitter="none")
    d = s.delay(attempt)
    assert 0.0 <= d <= plain.delay(attempt) <= s.max_delay


@settings(max_examples=300, deadline=None)
@given(base=delays, extra=delays, attempt=attempts, seed=seeds)
def test_equal_jitter_is_between_half_and_the_whole_delay(
    base: float, extra: float, attempt: int, seed: int
) -> None:
    s = LinearBackoffStrategy(
        base_delay=base, max_delay=base + extra, jitter="equal", rng=random.Random(seed)
    )
    capped = s.base(attempt)
    assert capped / 2 <= s.delay(attempt) <= capped


@settings(max_examples=300, deadline=None)
@given(
    base=delays,
    extra=delays,
    attempt=attempts,
    seed=seeds,
    previous=st.one_of(st.none(), delays, st.just(math.nan), st.just(math.inf)),
)
def test_decorrelated_jitter_stays_between_base_and_cap(
    base: float, extra: float, attempt: int, seed: int, previous: float | None
) -> None:
    s = ExponentialBackoffStrategy(
        base_delay=base, max_delay=base + extra, jitter="decorrelated", rng=random.Random(seed)
    )
    """Within [base, cap] and at most 3x the previous delay (a previous under base counts as
    base: the formula's sleep never starts below it)."""
    d = s.delay(attempt, previous)
    low, high = s.bounds(attempt, previous)
    assert base <= low <= d <= high <= s.max_delay
    if previous is not None and math.isfinite(previous):
        assert d <= max(base, previous) * 3


@settings(max_examples=100, deadline=None)
@given(seed=seeds, jitter=st.sampled_from(["none", "full", "equal", "decorrelated"]))
def test_a_seeded_rng_makes_jitter_reproducible(seed: int, jitter: str) -> None:
    a = ExponentialBackoffStrategy(jitter=jitter, max_retries=8, rng=random.Random(seed))
    b = ExponentialBackoffStrategy(jitter=jitter, max_retries=8, rng=random.Random(seed))
    assert a.schedule() == b.schedule()


def test_full_jitter_is_spread_uniformly() -> None:
    s = ExponentialBackoffStrategy(base_delay=8.0, max_delay=8.0, jitter="full")
    s.rng = random.Random(1)
    sample = [s.delay(1) for _ in range(4000)]
    assert 3.7 < statistics.mean(sample) < 4.3  # uniform(0, 8): mean 4
    assert min(sample) < 0.1 and max(sample) > 7.9
    assert sum(d < 4.0 for d in sample) == pytest.approx(2000, abs=150)


def test_equal_jitter_mean_is_three_quarters() -> None:
    s = FixedDelayStrategy(base_delay=4.0, jitter="equal", rng=random.Random(2))
    sample = [s.delay(1) for _ in range(4000)]
    assert 2.9 < statistics.mean(sample) < 3.1 and min(sample) >= 2.0


def test_decorrelated_jitter_chains_on_the_previous_delay() -> None:
    s = ExponentialBackoffStrategy(
        base_delay=1.0, max_delay=1000.0, jitter="decorrelated", rng=random.Random(3)
    )
    sample = [s.delay(5, previous_delay=10.0) for _ in range(2000)]
    assert min(sample) >= 1.0 and max(sample) <= 30.0
    assert 14.0 < statistics.mean(sample) < 17.0  # uniform(1, 30): mean 15.5


def test_unseeded_jitter_varies() -> None:
    s = ExponentialBackoffStrategy(base_delay=1.0, max_delay=1.0, jitter="full")
    assert len({s.delay(1) for _ in range(20)}) > 1


# ---- building strategies


def test_make_strategy_by_name() -> None:
    common = {"base_delay": 1.0, "max_delay": 10.0, "max_retries": 4, "jitter": "none"}
    exp = make_strategy("exponential", multiplier=3.0, **common)
    lin = make_strategy("linear", **common)
    fix = make_strategy("fixed", **common)
    assert isinstance(exp, ExponentialBackoffStrategy) and exp.schedule() == [1, 3, 9, 10]
    assert isinstance(lin, LinearBackoffStrategy) and lin.schedule() == [1, 2, 3, 4]
    assert isinstance(fix, FixedDelayStrategy) and fix.schedule() == [1, 1, 1, 1]
    assert exp.retryable_exceptions == DEFAULT_RETRYABLE
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("random", **common)


def test_strategy_from_config_with_overrides() -> None:
    section = RetryConfig(max_retries=4, base_delay=0.5, max_delay=4.0, jitter="none")
    s = strategy_from_config(section)
    assert isinstance(s, ExponentialBackoffStrategy)
    assert s.schedule() == [0.5, 1.0, 2.0, 4.0]
    s = strategy_from_config(section, strategy="linear", max_retries=2, jitter=None)
    assert isinstance(s, LinearBackoffStrategy) and s.schedule() == [0.5, 1.0]


def test_strategy_from_config_keeps_base_and_cap_in_order() -> None:
    """Overriding only one of base_delay/max_delay past the other moves the other along."""
    s = strategy_from_config(RetryConfig(max_delay=30.0, jitter="none"), base_delay=60.0)
    assert s.delay(1) == 60.0 and s.max_delay == 60.0
    s = strategy_from_config(RetryConfig(base_delay=2.0, jitter="none"), max_delay=0.5)
    assert s.delay(1) == 0.5 and s.base_delay == 0.5
    with pytest.raises(ValueError):
        strategy_from_config(RetryConfig(), base_delay=60.0, max_delay=30.0)


def test_strategy_from_config_rejects_unknown_overrides() -> None:
    with pytest.raises(TypeError, match="max_retry"):
        strategy_from_config(RetryConfig(), max_retry=3)


# ---- plans


def test_plan_without_deadline_sums_the_delays() -> None:
    s = ExponentialBackoffStrategy(max_retries=5, jitter="none")
    p = plan_schedule(s)
    assert [r.delay for r in p.rows] == [1, 2, 4, 8, 16]
    assert [r.cumulative for r in p.rows] == [1, 3, 7, 15, 31]
    assert p.attempts == 6 and p.total_delay == 31


def test_plan_cuts_the_last_delay_at_the_deadline() -> None:
    s = ExponentialBackoffStrategy(max_retries=10, jitter="none")
    p = plan_schedule(s, max_elapsed=10.0)
    assert [r.delay for r in p.rows] == [1, 2, 4, 3]
    assert [r.cut for r in p.rows] == [False, False, False, True]
    assert p.total_delay == 10.0 and p.attempts == 5


def test_plan_with_zero_retries_is_one_attempt() -> None:
    p = plan_schedule(FixedDelayStrategy(max_retries=0))
    assert p.rows == () and p.attempts == 1 and p.total_delay == 0.0


def _formula_chains(base: float, cap: float, retries: int, n: int, seed: int) -> list[list[float]]:
    """AWS's decorrelated jitter, written out: sleep = min(cap, uniform(base, sleep * 3))."""
    rng = random.Random(seed)
    chains = []
    for _ in range(n):
        sleep, chain = base, []
        for _ in range(retries):
            sleep = min(cap, rng.uniform(base, sleep * 3))
            chain.append(sleep)
        chains.append(chain)
    return chains


@pytest.mark.parametrize(("base", "cap"), [(1.0, 10.0), (0.5, 2.0), (1.0, 1000.0)])
def test_decorrelated_jitter_has_the_published_distribution(base: float, cap: float) -> None:
    """Each retry's delays match samples of min(cap, uniform(base, previous * 3)) (KS test)."""
    from stathelpers import ks_critical, ks_statistic

    n, retries = 4000, 6
    strategy = ExponentialBackoffStrategy(
        base_delay=base,
        max_delay=cap,
        max_retries=retries,
        jitter="decorrelated",
        rng=random.Random(1),
    )
    ours = [strategy.schedule() for _ in range(n)]
    formula = _formula_chains(base, cap, retries, n, seed=2)
    for index in range(retries):
        gap = ks_statistic([c[index] for c in ours], [c[index] for c in formula])
        assert gap < ks_critical(n, n), (index + 1, gap)
    at_cap = sum(1 for chain in ours for d in chain if d == cap) / (n * retries)
    expected = sum(1 for chain in formula for d in chain if d == cap) / (n * retries)
    assert abs(at_cap - expected) < 0.03, "the cap applies to the draw: a share is exactly cap"


def test_decorrelated_first_retry_is_jittered_when_the_caller_has_no_previous_delay() -> None:
    """A previous delay of 0 (or none) counts as base: retry 1 is uniform(base, 3 * base)."""
    strategy = ExponentialBackoffStrategy(
        base_delay=1.0, max_delay=30.0, jitter="decorrelated", rng=random.Random(3)
    )
    for previous in (None, 0.0):
        firsts = [strategy.delay(1, previous) for _ in range(500)]
        assert min(firsts) >= 1.0 and max(firsts) <= 3.0
        assert len(set(firsts)) > 400 and max(firsts) > 2.5 and min(firsts) < 1.5


def test_public_strategies_are_named_by_reliactl_retry_in_pickles_and_reprs() -> None:
    """The strategies live in the private reliactl._strategies (so `http` need not import the
    retry engine) but stay reliactl.retry's public objects: a pickle names reliactl.retry
    (an older reliactl, where they were defined there, can load it), it loads back equal,
    and UNSET keeps its identity through a pickle."""
    import pickle

    from reliactl import retry

    for strategy in (
        retry.ExponentialBackoffStrategy(base_delay=1.0, max_delay=10.0),
        retry.LinearBackoffStrategy(base_delay=1.0),
        retry.FixedDelayStrategy(base_delay=2.0),
    ):
        data = pickle.dumps(strategy)
        assert b"reliactl.retry" in data and b"_strategies" not in data
        assert type(pickle.loads(data)) is type(strategy)
        assert type(strategy).__module__ == "reliactl.retry"
    assert pickle.loads(pickle.dumps(retry.UNSET)) is retry.UNSET
    assert (
        retry.make_strategy.__module__ == retry.strategy_from_config.__module__ == "reliactl.retry"
    )
