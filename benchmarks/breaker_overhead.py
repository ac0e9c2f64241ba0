"""Per-call overhead of a circuit breaker around a trivial function, and of a persisted one.

Prints, in one run on this machine: the in-memory reliactl breaker (``breaker.call`` and the
``@circuit_breaker`` decorator), sync and async, next to pybreaker, circuitbreaker and
aiobreaker when they are installed (they are peers, not dependencies: ``pip install
pybreaker circuitbreaker aiobreaker limits`` in your venv to compare), then the median
per-call cost of a breaker persisted in a real SQLite state store (one read plus one atomic
read-modify-write per call), closed and open (a rejection), and of a shared rate-limiter
acquire, each next to the raw SQLite floor: the same read and read-modify-write of a small
JSON record with the store's pragmas, done directly with sqlite3 (and ``limits``' in-memory
moving window for the limiter).

    python benchmarks/breaker_overhead.py [--calls N]

Goals (issue #4): in-memory overhead below pybreaker's; persisted call under 200 us median.
Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reliactl.breaker import BreakerConfig, CircuitBreaker, CircuitBreakerManager, circuit_breaker
from reliactl.errors import CircuitOpenError
from reliactl.ratelimit import RateLimiter
from reliactl.state.sqlite import open_store


def trivial() -> int:
    return 1


def best_per_call_ns(
    candidates: list[tuple[str, Callable[[], Any]]], calls: int, repeat: int = 9
) -> dict[str, float]:
    """Best-of-``repeat`` mean nanoseconds per call of each candidate (timeit-style loops).

    The candidates take turns in every repeat, so a noisy moment on a shared machine hurts
    one sample of each rather than every sample of one.
    """
    best = {label: float("inf") for label, _ in candidates}
    for _ in range(repeat):
        for label, fn in candidates:
            start = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            best[label] = min(best[label], (time.perf_counter_ns() - start) / calls)
    return best


def median_ns(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median and 99th percentile nanoseconds of single calls timed one by one."""
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="in-memory calls per repeat")
    parser.add_argument("--persisted-calls", type=int, default=3000)
    args = parser.parse_args()
    n = args.calls

    candidates: list[tuple[str, Callable[[], Any]]] = [("trivial function alone", trivial)]

    breaker = CircuitBreaker("bench", BreakerConfig(failure_threshold=5))
    candidates.append(("reliactl breaker.call(fn)", lambda: breaker.call(trivial)))
    candidates.append(("reliactl breaker.call_sync(fn)", lambda: breaker.call_sync(trivial)))
    decorated = circuit_breaker("bench-deco", BreakerConfig(), manager=CircuitBreakerManager())(
        trivial
    )
    candidates.append(("reliactl @circuit_breaker", decorated))

    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
        candidates.append(("pybreaker breaker.call(fn)", lambda: pb.call(trivial)))
        candidates.append(("pybreaker @breaker", pb(trivial)))
    except ImportError:
        print("pybreaker not installed (pip install pybreaker to compare)")
    try:
        import circuitbreaker

        cb_decorated = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(trivial)
        candidates.append(("circuitbreaker @circuit", cb_decorated))
    except ImportError:
        print("circuitbreaker not installed (pip install circuitbreaker to compare)")

    best = best_per_call_ns(candidates, n)
    base = best.pop("trivial function alone")
    print(f"Python {sys.version.split()[0]}; trivial function alone: {base:.0f} ns/call")
    print(f"{'in memory, around a trivial function':40} {'ns/call':>9} {'overhead':>9}")
    for label, ns in best.items():
        print(f"{label:40} {ns:9.0f} {ns - base:9.0f}")
    print()
    async_overheads(n)

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "state.db")
        persisted = CircuitBreaker("bench-persisted", BreakerConfig(), store=store)
        for _ in range(200):  # warm up: the record exists, pages are cached
            persisted.call(trivial)
        med, p99 = median_ns(lambda: persisted.call(trivial), args.persisted_calls)
        print()
        print("persisted in SQLite (WAL), one process, closed breaker, success:")
        print(f"  median {med / 1000:.1f} us/call, p99 {p99 / 1000:.1f} us/call")
        persisted.trip(None)

        def rejected() -> None:
            try:
                persisted.call(trivial)
            except CircuitOpenError:
                pass

        med, p99 = median_ns(rejected, args.persisted_calls)
        print("persisted, open breaker, rejected call (counts the rejection):")
        print(f"  median {med / 1000:.1f} us/call, p99 {p99 / 1000:.1f} us/call")
        floor = raw_sqlite_floor(Path(tmp) / "floor.db", args.persisted_calls)
        print(f"raw SQLite floor (1 read + 1 read-modify-write): median {floor / 1000:.1f} us")
        # A wall clock stepped 0.7 s a call keeps ~85 entries (one per 0.6 s grain) in the log.
        steps = iter(range(10**9))
        limiter = RateLimiter(
            "1000/m", key="bench", store=store, wall=lambda: time.time() + next(steps) * 0.7
        )
        for _ in range(200):
            limiter.try_acquire()
        med, p99 = median_ns(limiter.try_acquire, args.persisted_calls)
        print("shared rate limiter (SQLite, 1000/m), try_acquire with ~85 log entries:")
        print(f"  median {med / 1000:.1f} us/call, p99 {p99 / 1000:.1f} us/call")
        store.close()
    try:
        import limits

        window = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
        item = limits.parse("1000000/minute")
        med, _ = median_ns(lambda: window.hit(item, "bench"), args.persisted_calls)
        print(f"limits MovingWindowRateLimiter in memory: median {med / 1000:.1f} us/call")
    except ImportError:
        print("limits not installed (pip install limits to compare)")


def raw_sqlite_floor(db: Path, calls: int) -> float:
    """Median ns of what a persisted call cannot avoid: a read, then an atomic RMW."""
    import json
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE r (kind TEXT, key TEXT, data TEXT, at REAL, PRIMARY KEY (kind, key))"
    )
    conn.execute("INSERT INTO r VALUES ('breaker', 'b', '{\"n\": 0}', 0)")

    def one() -> None:
        json.loads(
            conn.execute("SELECT data FROM r WHERE kind='breaker' AND key='b'").fetchone()[0]
        )
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT data FROM r WHERE kind='breaker' AND key='b'").fetchone()
        new = {"n": json.loads(row[0])["n"] + 1}
        conn.execute(
            "UPDATE r SET data = ?, at = ? WHERE kind='breaker' AND key='b'",
            (json.dumps(new), time.time()),
        )
        conn.execute("COMMIT")

    med, _ = median_ns(one, calls)
    conn.close()
    return med


def async_overheads(n: int) -> None:
    """Best-of-9 mean ns per awaited call of each async breaker, run in one event loop."""
    import asyncio

    async def atrivial() -> int:
        return 1

    candidates: list[tuple[str, Callable[[], Any]]] = [("await trivial() alone", atrivial)]
    breaker = CircuitBreaker("abench", BreakerConfig(failure_threshold=5))
    candidates.append(
        ("reliactl await breaker.call_async(fn)", lambda: breaker.call_async(atrivial))
    )
    deco = circuit_breaker("abench-deco", BreakerConfig(), manager=CircuitBreakerManager())(
        atrivial
    )
    candidates.append(("reliactl async @circuit_breaker", deco))
    try:
        import circuitbreaker

        candidates.append(
            (
                "circuitbreaker async @circuit",
                circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(atrivial),
            )
        )
    except ImportError:
        print("circuitbreaker not installed")
    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5)
        candidates.append(("aiobreaker await call_async(fn)", lambda: ab.call_async(atrivial)))
    except ImportError:
        print("aiobreaker not installed (pip install aiobreaker to compare)")

    async def run() -> dict[str, float]:
        best = {label: float("inf") for label, _ in candidates}
        for _ in range(9):
            for label, make in candidates:
                start = time.perf_counter_ns()
                for _ in range(n):
                    await make()
                best[label] = min(best[label], (time.perf_counter_ns() - start) / n)
        return best

    best = asyncio.run(run())
    base = best.pop("await trivial() alone")
    print(f"{'async, around a trivial coroutine':40} {'ns/call':>9} {'overhead':>9}")
    for label, ns in best.items():
        print(f"{label:40} {ns:9.0f} {ns - base:9.0f}")


if __name__ == "__main__":
    main()
