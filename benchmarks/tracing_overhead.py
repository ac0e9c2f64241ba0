"""What tracing costs the library's hot paths (issue 20): a ResilientClient GET (no network:
httpx.MockTransport) and a RetryPolicy-decorated call that succeeds at once.

Off (no OTEL_* variable, no provider configured) the hooks are one test of
``reliactl.tracing.ACTIVE``; on (an SDK TracerProvider with a no-op exporter behind a
SimpleSpanProcessor) a GET makes a request span and an attempt span and sends a traceparent.
Off and on are interleaved round by round (the provider switched between batches, untimed);
printed per path: microseconds per call, median and min..max, and the ratio to tracing off,
after the machine's load. To compare with the code before the hooks, run it with
``PYTHONPATH`` pointing at an older checkout's tree.

    python benchmarks/tracing_overhead.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import httpx

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleave_calls, print_header, print_spread_table, sized

from reliactl import tracing
from reliactl.http import ResilientClient
from reliactl.retry import RetryPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=sized(2000, 20), help="GETs per round")
    parser.add_argument("--rounds", type=int, default=sized(7, 2), help="interleaved rounds")
    args = parser.parse_args()
    if tracing.exporters(os.environ):
        sys.exit("unset the OTEL_* variables to measure tracing off")
    print_header(f"tracing off and on, {args.calls} GETs x {args.rounds} interleaved rounds")
    client = ResilientClient(
        "http://bench",
        retry=3,
        timeout=10,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok")),
    )

    @RetryPolicy(strategy="fixed", max_retries=3, base_delay=0.01, jitter="none")
    def work() -> int:
        return 1

    switch: dict[str, Callable[[], object]] = {"tracing off": lambda: tracing.configure(None)}
    if hasattr(tracing, "ACTIVE"):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SpanExporter()))
        switch["tracing on"] = lambda: tracing.configure(provider)
    paths: dict[str, tuple[Callable[[], object], int]] = {
        "ResilientClient GET": (lambda: client.get("/"), args.calls),
        "retry-decorated call": (work, args.calls * 20),
    }
    try:
        for path, (fn, calls) in paths.items():
            samples = interleave_calls(dict.fromkeys(switch, fn), calls, args.rounds, before=switch)
            print()
            print_spread_table(samples, "tracing off", unit="us", label=path)
    finally:
        tracing.configure(None)
        client.close()


if __name__ == "__main__":
    main()
