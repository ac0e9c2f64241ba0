"""What tracing costs the library's hot paths (issue 20): a ResilientClient GET (no network:
httpx.MockTransport) and a RetryPolicy-decorated call that succeeds at once.

Off (no OTEL_* variable, no provider configured) the hooks are one test of
``reliactl.tracing.ACTIVE``; on (an SDK TracerProvider with a no-op exporter behind a
SimpleSpanProcessor) a GET makes a request span and an attempt span and sends a traceparent.
Each figure is the best of several rounds, in microseconds per call. To compare with the code
before the hooks, run it with ``PYTHONPATH`` pointing at an older checkout's tree.

    python benchmarks/tracing_overhead.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from reliactl import tracing
from reliactl.http import ResilientClient
from reliactl.retry import RetryPolicy


def best_us(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best / 1000


def measure(calls: int, rounds: int) -> dict[str, float]:
    client = ResilientClient(
        "http://bench",
        retry=3,
        timeout=10,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok")),
    )

    @RetryPolicy(strategy="fixed", max_retries=3, base_delay=0.01, jitter="none")
    def work() -> int:
        return 1

    try:
        return {
            "ResilientClient GET": best_us(lambda: client.get("/"), calls, rounds),
            "retry-decorated call": best_us(work, calls * 20, rounds),
        }
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    assert not tracing.exporters(os.environ), "unset OTEL_* to measure tracing off"
    off = measure(args.calls, args.rounds)
    on: dict[str, float] = {}
    if hasattr(tracing, "ACTIVE"):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SpanExporter()))
        tracing.configure(provider)
        try:
            on = measure(args.calls, args.rounds)
        finally:
            tracing.configure(None)
    print(f"{'us per call (best of ' + str(args.rounds) + ')':<34} {'off':>8} {'on':>8}")
    for name, value in off.items():
        traced = f"{on[name]:8.2f}" if name in on else "       -"
        print(f"{name:<34} {value:8.2f} {traced}")


if __name__ == "__main__":
    main()
