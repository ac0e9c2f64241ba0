"""Per-call overhead of a circuit breaker around a trivial function, and of a persisted one.

Prints, in one run on this machine: the in-memory reliactl breaker (``breaker.call`` and the
``@circuit_breaker`` decorator) next to pybreaker and circuitbreaker when they are installed
(they are not dependencies: ``pip install pybreaker circuitbreaker`` to compare), then the
median per-call cost of a breaker persisted in a real SQLite state store (one read plus one
atomic read-modify-write per call), closed and open (a rejection).

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
        store.close()


if __name__ == "__main__":
    main()
