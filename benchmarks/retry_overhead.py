"""Per-call overhead of a retry decorator around a function that succeeds the first time.

Prints nanoseconds per call above the bare function, sync and async, for reliactl and, when
they are installed in this environment, tenacity and stamina (measured in the same run).
They are not reliactl dependencies; to compare, install them next to reliactl:

    python -m venv /tmp/bench && /tmp/bench/bin/pip install -e . tenacity stamina
    /tmp/bench/bin/python benchmarks/retry_overhead.py

Each figure is the best of several rounds (the least disturbed by other work on the host).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any


def best_ns_per_call(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def best_ns_per_await(factory: Callable[[], Awaitable[Any]], calls: int, rounds: int) -> float:
    async def loop() -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(calls):
                await factory()
            best = min(best, (time.perf_counter_ns() - start) / calls)
        return best

    return asyncio.run(loop())


def plain() -> int:
    return 1


async def aplain() -> int:
    return 1


def candidates() -> dict[str, tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]]:
    from reliactl.retry import retry

    options: dict[str, Any] = {
        "strategy": "exponential",
        "base_delay": 0.1,
        "max_delay": 1.0,
        "multiplier": 2.0,
        "jitter": "full",
        "max_retries": 3,
        "max_elapsed": None,
        "retry_on": ConnectionError,
    }
    out = {
        "reliactl": (retry(**options)(plain), retry(**options)(aplain)),
        "reliactl (10 s deadline)": (
            retry(**{**options, "max_elapsed": 10.0})(plain),
            retry(**{**options, "max_elapsed": 10.0})(aplain),
        ),
    }
    try:
        import tenacity
    except ImportError:
        pass
    else:
        kwargs: dict[str, Any] = {
            "stop": tenacity.stop_after_attempt(4),
            "wait": tenacity.wait_random_exponential(multiplier=0.1, max=1.0),
            "retry": tenacity.retry_if_exception_type(ConnectionError),
            "reraise": True,
        }
        out[f"tenacity {importlib.metadata.version('tenacity')}"] = (
            tenacity.retry(**kwargs)(plain),
            tenacity.retry(**kwargs)(aplain),
        )
    try:
        import stamina
    except ImportError:
        pass
    else:
        skw: dict[str, Any] = {"on": ConnectionError, "attempts": 4, "timeout": None}
        out[f"stamina {importlib.metadata.version('stamina')}"] = (
            stamina.retry(**skw)(plain),
            stamina.retry(**skw)(aplain),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best is kept")
    args = parser.parse_args()

    base_sync = best_ns_per_call(plain, args.calls, args.rounds)
    base_async = best_ns_per_await(aplain, args.calls, args.rounds)
    print(f"python {sys.version.split()[0]}; {args.calls} calls x {args.rounds} rounds, best round")
    print(f"bare function: sync {base_sync:.0f} ns/call, async {base_async:.0f} ns/await\n")
    rows = []
    for name, (sync_fn, async_fn) in candidates().items():
        sync_ns = best_ns_per_call(sync_fn, args.calls, args.rounds) - base_sync
        async_ns = best_ns_per_await(async_fn, args.calls, args.rounds) - base_async
        rows.append((name, sync_ns, async_ns))
    width = max(len(r[0]) for r in rows)
    print(f"{'overhead per call':<{width}}  {'sync ns':>9}  {'async ns':>9}")
    for name, sync_ns, async_ns in rows:
        print(f"{name:<{width}}  {sync_ns:>9.0f}  {async_ns:>9.0f}")
    missing = {"tenacity", "stamina"} - {r[0].split()[0] for r in rows}
    if missing:
        print(f"\n(not installed here, not measured: {', '.join(sorted(missing))})")


if __name__ == "__main__":
    main()
