"""The token-bucket rate limiter: in memory, store-backed, across threads and processes."""

from __future__ import annotations

import asyncio
import base64
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reliactl.config import Config, RateLimitConfig, load
from reliactl.errors import RateLimitExceeded
from reliactl.ratelimit import Rate, RateLimiter, format_rates, limiter_for, rates_from
from reliactl.state.sqlite import open_store
from reliactl.testing import FakeClock


def fake_limiter(spec: str, clock: FakeClock, **kwargs: object) -> RateLimiter:
    return RateLimiter(
        spec,
        clock=clock.monotonic,
        wall=clock.time,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        **kwargs,  # type: ignore[arg-type]
    )


# ---- specs


def test_rates_from_accepts_spec_text_counts_and_pairs() -> None:
    assert rates_from("60/minute;1000/hour") == [Rate(60, 60.0), Rate(1000, 3600.0)]
    assert rates_from(30) == [Rate(30, 60.0)]
    assert rates_from([(5, 1.0)]) == [Rate(5, 1.0)]
    assert format_rates(rates_from("60/minute;1000/hour;7/90s")) == "60/minute;1000/hour;7/1m30s"


@pytest.mark.parametrize("bad", ["", "0/minute", "ten/minute", "5/fortnight", "-1/s"])
def test_bad_rate_specs_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        RateLimiter(bad)


# ---- in memory


def test_try_acquire_grants_the_burst_then_refuses() -> None:
    clock = FakeClock()
    limiter = fake_limiter("3/minute", clock)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_a_token_comes_back_one_period_after_it_was_taken() -> None:
    clock = FakeClock()
    limiter = fake_limiter("60/minute", clock)
    assert sum(limiter.try_acquire() for _ in range(40)) == 40
    clock.advance(30)
    assert sum(limiter.try_acquire() for _ in range(100)) == 20
    clock.advance(29.99)
    assert not limiter.try_acquire()  # not bit by bit: nothing is back before 60s
    clock.advance(0.01)
    assert sum(limiter.try_acquire() for _ in range(100)) == 40  # the first 40 are back
    clock.advance(30)
    assert sum(limiter.try_acquire() for _ in range(100)) == 20


def test_blocking_callers_get_exactly_the_rate_in_the_first_period() -> None:
    """Unlike an evenly refilled bucket (119 in the first minute), "60/minute" means 60."""
    clock = FakeClock()
    start = clock.monotonic()
    limiter = fake_limiter("60/minute", clock)
    granted_at = []
    for _ in range(100):
        limiter.acquire(timeout=120)
        granted_at.append(clock.monotonic() - start)
    assert sum(t < 60 for t in granted_at) == 60
    assert sum(t < 120 for t in granted_at) == 100


@pytest.mark.parametrize("seed", range(5))
def test_never_more_than_count_in_any_window(seed: int) -> None:
    import random

    rng = random.Random(seed)
    clock = FakeClock()
    limiter = fake_limiter("7/10s;20/minute", clock)
    granted = []
    began = clock.monotonic()
    for _ in range(2000):
        clock.advance(rng.choice([0.0, 0.01, 0.3, 1.0, 2.5]))
        weight = rng.choice([1, 1, 1, 2])
        if limiter.try_acquire(weight):
            granted.append((clock.monotonic(), weight))
    for start, _ in granted:
        assert sum(w for t, w in granted if start <= t < start + 10) <= 7
        assert sum(w for t, w in granted if start <= t < start + 60) <= 20
    minutes = (clock.monotonic() - began) / 60
    assert sum(w for _, w in granted) >= 0.8 * 20 * minutes  # and the budget is used


def test_the_log_stays_short_and_tokens_are_at_most_1_percent_late() -> None:
    clock = FakeClock()
    limiter = fake_limiter("100000/hour", clock)
    for _ in range(50000):
        assert limiter.try_acquire()
        clock.advance(0.05)
    assert len(limiter._logs[0]) <= 101
    first = clock.monotonic() - 50000 * 0.05
    clock.advance(first + 3600 - 0.01 - clock.monotonic())
    assert limiter.available()["100000/hour"] == 50000  # nothing back early
    clock.advance(36.02)  # one period and 1% after the first take
    assert limiter.available()["100000/hour"] >= 50000 + 36 / 0.05 - 1


def test_every_rate_of_a_spec_must_allow_the_request() -> None:
    """ "2/second;3/minute": the second bucket stops the third second's requests."""
    clock = FakeClock()
    limiter = fake_limiter("2/second;3/minute", clock)
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    clock.advance(1)
    assert [limiter.try_acquire() for _ in range(2)] == [True, False]
    assert limiter.available() == {"2/second": 1.0, "3/minute": 0.0}


def test_a_refused_request_takes_no_token_from_any_bucket() -> None:
    clock = FakeClock()
    limiter = fake_limiter("1/second;10/minute", clock)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.available()["10/minute"] == pytest.approx(9.0)


def test_weight_takes_several_tokens_and_impossible_weights_are_refused() -> None:
    clock = FakeClock()
    limiter = fake_limiter("10/minute", clock)
    assert limiter.try_acquire(weight=7)
    assert not limiter.try_acquire(weight=4)
    assert limiter.try_acquire(weight=3)
    with pytest.raises(ValueError, match="can never be granted"):
        limiter.try_acquire(weight=11)
    with pytest.raises(ValueError):
        limiter.acquire(weight=0)


def test_acquire_waits_exactly_until_the_token_is_there() -> None:
    clock = FakeClock()
    limiter = fake_limiter("2/second", clock)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 0.0
    waited = limiter.acquire(timeout=5)
    assert waited == pytest.approx(1.0, abs=0.01)
    assert len(clock.sleeps) == 1 and clock.sleeps[0] == pytest.approx(1.0, abs=0.01)


def test_acquire_raises_at_once_when_the_wait_passes_the_deadline() -> None:
    clock = FakeClock()
    limiter = fake_limiter("1/minute", clock)
    limiter.acquire()
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(timeout=10)
    assert info.value.retry_after == pytest.approx(60.0)
    assert clock.sleeps == []  # no pointless wait for a token that cannot come in time
    assert "1/minute" in str(info.value)


def test_acquire_without_timeout_waits_as_long_as_needed() -> None:
    clock = FakeClock()
    limiter = fake_limiter("1/hour", clock)
    limiter.acquire()
    assert limiter.acquire() == pytest.approx(3600.0, abs=0.01)


def test_acquire_async_waits_with_the_async_sleep() -> None:
    clock = FakeClock()
    limiter = fake_limiter("1/second", clock)

    async def main() -> list[float]:
        return [await limiter.acquire_async(timeout=2) for _ in range(3)]

    waits = asyncio.run(main())
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(1.0, abs=0.01) and waits[2] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(RateLimitExceeded):
        asyncio.run(limiter.acquire_async(timeout=0.5))


def test_threads_sharing_a_limiter_never_get_more_than_the_budget() -> None:
    clock = FakeClock()
    limiter = fake_limiter("100/hour", clock)
    granted: list[int] = []

    def worker() -> None:
        granted.append(sum(limiter.try_acquire() for _ in range(50)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


# ---- store-backed


def test_limiters_on_one_store_and_key_share_one_budget(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store_a, open_store(tmp_path / "state.db") as store_b:
        a = fake_limiter("5/minute", clock, key="api", store=store_a)
        b = fake_limiter("5/minute", clock, key="api", store=store_b)
        other = fake_limiter("5/minute", clock, key="other", store=store_b)
        assert sum(a.try_acquire() for _ in range(3)) == 3
        assert sum(b.try_acquire() for _ in range(5)) == 2
        assert sum(other.try_acquire() for _ in range(5)) == 5
        record = store_a.get("rate", "api")
        assert record is not None and sum(t for _, t in _stored_entries(record, "5/60")) == 5


def test_a_limiter_reuses_the_log_it_wrote_only_while_the_store_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: a shared acquire whose stored log is still the text this limiter wrote last
    reuses the log it encoded (no base64 decode and check); as soon as another process (a
    limiter on another connection) wrote, the stored text is decoded, so the budget stays
    exactly shared: five tokens between two limiters taking turns, then both refused."""
    from reliactl import ratelimit

    loads: list[object] = []
    real_load = ratelimit._Log.load
    monkeypatch.setattr(
        ratelimit._Log, "load", classmethod(lambda cls, raw: loads.append(raw) or real_load(raw))
    )
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store_a, open_store(tmp_path / "state.db") as store_b:
        a = fake_limiter("5/minute", clock, key="api", store=store_a)
        b = fake_limiter("5/minute", clock, key="api", store=store_b)
        assert a.try_acquire() and a.try_acquire()
        assert loads == []  # the first finds no record, the second its own log
        assert b.try_acquire() and len(loads) == 1
        assert a.try_acquire() and len(loads) == 2
        clock.advance(1)
        assert b.try_acquire() and len(loads) == 3
        assert not a.try_acquire() and not b.try_acquire()
        record = store_a.get("rate", "api")
        assert record is not None and sum(t for _, t in _stored_entries(record, "5/60")) == 5


def test_a_first_format_record_is_read_and_rewritten_in_the_current_one(tmp_path: Path) -> None:
    """A budget stored by an older reliactl (lists of float seconds under "log") still counts:
    its tokens are taken into account, and the next write uses the current format (3)."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    with open_store(tmp_path / "state.db") as store:
        store.update(
            "rate",
            "k",
            lambda _: {"spec": "3/60", "at": now - 1, "log": {"3/60": [[now - 5, now - 2, 2.0]]}},
        )
        limiter = fake_limiter("3/minute", clock, key="k", store=store)
        assert limiter.try_acquire() and not limiter.try_acquire()
        record = store.get("rate", "k")
        assert record is not None and record["v"] == 3 and "log" not in record
        assert _stored_entries(record, "3/60") == [
            (pytest.approx(now - 2, abs=1e-5), 2),
            (pytest.approx(now, abs=1e-5), 1),
        ]


def test_a_second_format_record_is_read_and_rewritten_in_the_current_one(tmp_path: Path) -> None:
    """A format-2 record (base64 float64 triples) still counts, entry by entry (a token comes
    back a period after its own take), and the next write is format 3."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    log = _encoded(now - 50, now - 50, 1, now - 10, now - 10, 2)
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 2, "at": now, "logs": {"4/60": log}})
        limiter = fake_limiter("4/minute", clock, key="k", store=store)
        assert limiter.try_acquire() and not limiter.try_acquire()
        record = store.get("rate", "k")
        assert record is not None and record["v"] == 3
        assert [t for _, t in _stored_entries(record, "4/60")] == [1, 2, 1]
        assert limiter.acquire(timeout=30) == pytest.approx(10.0, abs=0.01)


def test_a_second_format_log_with_long_dead_entries_keeps_its_live_ones(tmp_path: Path) -> None:
    """Entries of a format-2 log from days ago (never pruned: no take since) are dropped on
    the upgrade without losing the live ones beside them."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    log = _encoded(now - 864000, now - 864000, 1, now - 10, now - 10, 1)
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 2, "at": now - 10, "logs": {"2/60": log}})
        limiter = fake_limiter("2/minute", clock, key="k", store=store)
        assert limiter.try_acquire() and not limiter.try_acquire()
        assert limiter.acquire(timeout=60) == pytest.approx(50.0, abs=0.01)


def _stored_entries(record: dict[str, object], name: str) -> list[tuple[float, float]]:
    """A bucket's stored log (format 3), decoded independently of reliactl: (last take,
    tokens) per entry."""
    logs = record["logs"]
    assert isinstance(logs, dict)
    data = base64.b64decode(logs[name])
    code, base, _first, unit = struct.unpack_from("<cddd", data)
    size = {b"B": 1, b"H": 2, b"I": 4, b"d": 8}[code]
    count = (len(data) - 25) // (4 + size)
    offsets = struct.unpack_from(f"<{count}I", data, 25)
    fmt = {b"B": "B", b"H": "H", b"I": "I", b"d": "d"}[code]
    tokens = struct.unpack_from(f"<{count}{fmt}", data, 25 + 4 * count)
    return [(base + o * unit, t) for o, t in zip(offsets, tokens, strict=True)]


def _encoded(*values: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}d", *values)).decode()


@pytest.mark.parametrize(
    "log",
    [
        ["a", "list"],
        "not base64!",
        base64.b64encode(b"12345").decode(),  # not whole float64 triples
        _encoded(1.0, 2.0, 0.0),  # no tokens
        _encoded(1.0, 2.0, float("nan")),
        _encoded(1.0, float("inf"), 1.0),
    ],
)
def test_a_malformed_stored_log_is_dropped_not_trusted(tmp_path: Path, log: object) -> None:
    """Anything but whole triples of finite numbers with positive tokens is ignored: the
    budget errs generous, never raises."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 2, "at": 0, "logs": {"1/60": log}})
        assert fake_limiter("1/minute", clock, key="k", store=store).try_acquire()


def test_an_unsorted_stored_log_is_sorted_before_use(tmp_path: Path) -> None:
    """Entries written out of order (by hand, or a future writer) are sorted by their last
    take, so tokens come back in the right order."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    log = _encoded(now - 10, now - 10, 1, now - 50, now - 50, 1)
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 2, "at": now, "logs": {"2/60": log}})
        limiter = fake_limiter("2/minute", clock, key="k", store=store)
        assert limiter.acquire(timeout=30) == pytest.approx(10.0, abs=0.01)


def _v3(code: bytes, base: float, unit: float, offsets: list[int], tokens: list[float]) -> str:
    """A format-3 bucket log built by hand."""
    fmt = code.decode()
    body = struct.pack(f"<{len(offsets)}I", *offsets) + struct.pack(f"<{len(tokens)}{fmt}", *tokens)
    return base64.b64encode(struct.pack("<cddd", code, base, base, unit) + body).decode()


@pytest.mark.parametrize(
    "log",
    [
        "not base64!",
        base64.b64encode(b"B" + bytes(9)).decode(),  # a header cut short
        _v3(b"x", 1_700_000_000.0, 60 / 2**24, [0], []),  # no such token type
        _v3(b"B", float("nan"), 60 / 2**24, [0], [1]),
        _v3(b"B", 1_700_000_000.0, 0.0, [0], [1]),  # no unit of time
        _v3(b"d", 1_700_000_000.0, 60 / 2**24, [0], [-1.0]),  # negative tokens
        _v3(b"d", 1_700_000_000.0, 60 / 2**24, [0], [float("inf")]),
        _v3(b"B", 1_700_000_000.0, 60 / 2**24, [0], [1])[:-4] + "AAAA",  # not whole entries
    ],
)
def test_a_malformed_format_3_log_is_dropped_not_trusted(tmp_path: Path, log: str) -> None:
    """A format-3 log that is not base64, has an unknown token type, a non-finite time, no
    unit, non-positive or infinite float tokens, or bytes that are not whole entries is
    ignored: the budget errs generous, never raises."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 3, "at": clock.time(), "logs": {"1/60": log}})
        assert fake_limiter("1/minute", clock, key="k", store=store).try_acquire()


@pytest.mark.parametrize("version", [2, 3])
def test_a_log_stamped_far_in_the_future_is_damaged_not_a_block(
    tmp_path: Path, version: int
) -> None:
    """A stored log (format 2 or 3) whose takes are finite but impossible, later than now
    by more than the period plus a clock's skew (a "base" ten days ahead), is damaged: it is
    dropped as a malformed one is and the key admits, instead of being refused for ten days;
    a take stamped a few seconds ahead (another host's clock a little fast) still counts."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    unit = 60 / 2**24

    def log(at: float) -> str:
        return _encoded(at, at, 1) if version == 2 else _v3(b"B", at, unit, [0], [1])

    with open_store(tmp_path / "state.db") as store:
        far = {"v": version, "at": now, "logs": {"1/60": log(now + 10 * 86400)}}
        store.update("rate", "far", lambda _: far)
        assert fake_limiter("1/minute", clock, key="far", store=store).try_acquire()
        near = {"v": version, "at": now, "logs": {"1/60": log(now + 2)}}
        store.update("rate", "near", lambda _: near)
        limiter = fake_limiter("1/minute", clock, key="near", store=store)
        assert not limiter.try_acquire()
        assert limiter.acquire(timeout=70) == pytest.approx(62.0, abs=0.01)


def test_an_unsorted_format_3_log_is_sorted_before_use(tmp_path: Path) -> None:
    """Format-3 entries out of order are sorted by their last take before use."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    now = clock.time()
    unit = 60 / 2**24
    log = _v3(b"B", now - 60, unit, [round(50 / unit), round(10 / unit)], [1, 1])
    with open_store(tmp_path / "state.db") as store:
        store.update("rate", "k", lambda _: {"v": 3, "at": now, "logs": {"2/60": log}})
        limiter = fake_limiter("2/minute", clock, key="k", store=store)
        assert limiter.acquire(timeout=30) == pytest.approx(10.0, abs=0.01)


def test_a_stored_take_is_never_earlier_than_the_real_one(tmp_path: Path) -> None:
    """Stored times are rounded to 1/2**24 of the period, always up: a token may come back
    that much late, never early."""
    clock = FakeClock(wall_start=1_700_000_000.123456789)
    taken = []
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("1000/hour", clock, key="k", store=store)
        for step in (0.0, 37.4142, 50.5, 1234.56789, 99.999):  # each past the 36 s grain
            clock.advance(step)
            assert limiter.try_acquire()
            taken.append(clock.time())
        record = store.get("rate", "k")
    assert record is not None
    stored = [last for last, _ in _stored_entries(record, "1000/3600")]
    assert len(stored) == len(taken)
    for real, last in zip(taken, stored, strict=True):
        assert real <= last <= real + 3600 / 2**24 + 1e-6


def test_a_busy_stored_log_stays_small_enough_for_one_database_page(tmp_path: Path) -> None:
    """~100 live entries (the most a bucket keeps) make a record of well under 1,000 bytes,
    so SQLite keeps it in its B-tree page: format 2 took ~2,800 bytes and an overflow page."""
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("1000/minute", clock, key="k", store=store)
        for _ in range(150):
            assert limiter.try_acquire()
            clock.advance(0.61)
        record = store.get("rate", "k")
        assert record is not None and len(_stored_entries(record, "1000/60")) >= 95
        (size,) = store.conn.execute(
            "SELECT length(CAST(data AS BLOB)) FROM records WHERE kind = 'rate'"
        ).fetchone()
    assert size < 1000


def test_fractional_and_large_weights_are_counted_exactly(tmp_path: Path) -> None:
    """Token counts are stored in the narrowest exact type and widened as needed (whole
    counts past 255 and 65,535, then fractions): the budget never drifts."""
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("100000/hour", clock, key="k", store=store)
        assert limiter.try_acquire(200) and limiter.try_acquire(200)  # one entry of 400
        assert limiter.available()["100000/hour"] == 99600
        assert limiter.try_acquire(70000)
        assert limiter.available()["100000/hour"] == 29600
        assert limiter.try_acquire(0.25) and limiter.try_acquire(0.5)
        assert limiter.available()["100000/hour"] == 29599.25
        assert not limiter.try_acquire(29600)
        clock.advance(3600)
        assert limiter.available()["100000/hour"] == 100000


def test_a_stored_log_busy_for_hundreds_of_periods_keeps_exact_decisions(tmp_path: Path) -> None:
    """A log that never empties outgrows its 2**32 offsets after 256 periods and is rebased:
    the shared limiter keeps deciding exactly as the in-memory one on the same clock."""
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        shared = fake_limiter("5/second", clock, key="k", store=store)
        memory = fake_limiter("5/second", clock)
        bases = set()
        for _ in range(1000):  # 370 s of one try every 0.37 s: never an empty log
            clock.advance(0.37)
            assert shared.try_acquire(2) == memory.try_acquire(2)
            record = store.get("rate", "k")
            assert record is not None
            logs = record["logs"]
            assert isinstance(logs, dict)
            bases.add(struct.unpack_from("<cddd", base64.b64decode(logs["5/1"]))[1])
    assert len(bases) > 1  # rebased at least once


def test_a_stored_budget_outlives_the_process_that_spent_it(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        assert sum(fake_limiter("4/hour", clock, key="k", store=store).try_acquire() for _ in "xy")
    with open_store(tmp_path / "state.db") as store:
        later = fake_limiter("4/hour", clock, key="k", store=store)
        assert sum(later.try_acquire() for _ in range(10)) == 2


def test_a_wall_clock_stepping_back_is_no_time_not_forever(tmp_path: Path) -> None:
    clock = FakeClock(wall_start=1_700_000_000.0)
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("1/second", clock, key="k", store=store)
        assert limiter.try_acquire()
        clock.set_wall(1_600_000_000.0)  # NTP step back by years
        assert not limiter.try_acquire()  # no refill for negative time...
        clock.advance(1.0)
        assert limiter.try_acquire()  # ...and refilling resumes from the new clock at once


def test_acquire_against_the_store_waits_for_the_shared_refill(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("2/second", clock, key="k", store=store)
        limiter.acquire()
        limiter.acquire()
        assert limiter.acquire(timeout=2) == pytest.approx(1.0, abs=0.01)
        assert limiter.acquire(timeout=0) == 0.0  # the first two came back together
        with pytest.raises(RateLimitExceeded):
            limiter.acquire(timeout=0.5)


def test_changed_rates_keep_the_buckets_they_share(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        old = fake_limiter("3/minute", clock, key="k", store=store)
        assert sum(old.try_acquire() for _ in range(3)) == 3
        new = fake_limiter("3/minute;100/hour", clock, key="k", store=store)
        assert not new.try_acquire()  # the 3/minute bucket is still empty
        clock.advance(60)
        assert new.try_acquire()
        assert new.available()["100/hour"] == pytest.approx(99.0)


def test_reset_fills_the_buckets_again(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_store(tmp_path / "state.db") as store:
        limiter = fake_limiter("1/hour", clock, key="k", store=store)
        assert limiter.try_acquire() and not limiter.try_acquire()
        limiter.reset()
        assert store.get("rate", "k") is None
        assert limiter.try_acquire()


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from reliactl.ratelimit import RateLimiter
    from reliactl.state.sqlite import open_store

    path, go, frozen = sys.argv[1], sys.argv[2], sys.argv[3] == "frozen"
    store = open_store(path)
    kwargs = {"wall": lambda: 1_700_000_000.0} if frozen else {}
    limiter = RateLimiter("60/minute", key="shared", store=store, **kwargs)
    while not os.path.exists(go):
        time.sleep(0.001)
    started = time.time()
    granted = sum(limiter.try_acquire() for _ in range(100))
    print(granted, started, time.time())
    """
)


def _race(tmp_path: Path, mode: str, processes: int = 4) -> tuple[int, float]:
    """Start ``processes`` workers, release them at once; total granted and wall span."""
    go = tmp_path / "go"
    db = tmp_path / "state.db"
    open_store(db).close()  # create the schema before the race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), str(go), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    time.sleep(0.3)  # let them all reach the starting line
    go.write_text("")
    total, first, last = 0, float("inf"), 0.0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        granted, started, ended = out.split()
        total += int(granted)
        first, last = min(first, float(started)), max(last, float(ended))
    return total, last - first


def test_four_processes_share_one_budget_of_exactly_60(tmp_path: Path) -> None:
    """4 processes x 100 requests against "60/minute" get exactly 60 between them.

    The wall clock of the workers is frozen, so no token refills during the race and the
    assertion is exact; the race itself (4 processes on one SQLite file) is real.
    """
    total, _ = _race(tmp_path, "frozen")
    assert total == 60


@pytest.mark.stress
def test_four_processes_on_the_real_clock_never_exceed_the_budget(tmp_path: Path) -> None:
    total, span = _race(tmp_path, "real")
    assert span < 60
    assert total == 60  # tokens come back only a minute after they were taken


# ---- defaults from config


def test_openai_limiter_follows_rate_limit_openai_rpm() -> None:
    config = load(environ={"RATE_LIMIT_OPENAI_RPM": "42"}, search=False).config
    limiter = limiter_for("openai", config)
    assert limiter.rates == [Rate(42, 60.0)]


def test_named_limits_come_from_config_and_unknown_names_are_errors() -> None:
    config = Config(rate_limit=RateLimitConfig(limits={"api": "10/second;100/minute"}))
    assert limiter_for("api", config).spec == "10/second;100/minute"
    assert limiter_for("x", config, rates="5/minute").spec == "5/minute"
    with pytest.raises(ValueError, match="no rate limit named 'nope'"):
        limiter_for("nope", config)


def test_repr_names_the_spec_and_key() -> None:
    assert repr(RateLimiter("5/minute", key="k")) == "RateLimiter('5/minute', key='k')"
