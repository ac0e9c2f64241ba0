"""Per-call overhead of a retry decorator around a function that succeeds the first time.

Prints, sync and async, the overhead per call above the bare function (median and min..max
over interleaved rounds, and the ratio to reliactl's) for reliactl and its peers tenacity,
stamina and backoff, all measured in the same run, round by round (each round runs every
candidate's calls in turn, the order rotating), after a line stating the machine's load.
The peers are the `bench` extra (``pip install -e '.[bench]'``); a missing one is one line.

    python benchmarks/retry_overhead.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    interleave_awaits,
    interleave_calls,
    optional_peer,
    peer_version,
    print_header,
    print_spread_table,
    sized,
)

BARE = "bare function"


def plain() -> int:
    return 1


async def aplain() -> int:
    return 1


Pair = tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]


def candidates() -> dict[str, Pair]:
    """Each candidate configured alike: up to 3 retries on ConnectionError, exponential
    backoff from 0.1 s capped at 1 s with full jitter (the success path never sleeps)."""
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
    deadline = {**options, "max_elapsed": 10.0}
    out: dict[str, Pair] = {
        BARE: (plain, aplain),
        "reliactl": (retry(**options)(plain), retry(**options)(aplain)),
        "reliactl (10 s deadline)": (retry(**deadline)(plain), retry(**deadline)(aplain)),
    }
    tenacity = optional_peer("tenacity")
    if tenacity is not None:
        kwargs: dict[str, Any] = {
            "stop": tenacity.stop_after_attempt(4),
            "wait": tenacity.wait_random_exponential(multiplier=0.1, max=1.0),
            "retry": tenacity.retry_if_exception_type(ConnectionError),
            "reraise": True,
        }
        out[f"tenacity {peer_version('tenacity')}"] = (
            tenacity.retry(**kwargs)(plain),
            tenacity.retry(**kwargs)(aplain),
        )
    stamina = optional_peer("stamina")
    if stamina is not None:
        skw: dict[str, Any] = {"on": ConnectionError, "attempts": 4, "timeout": None}
        out[f"stamina {peer_version('stamina')}"] = (
            stamina.retry(**skw)(plain),
            stamina.retry(**skw)(aplain),
        )
    backoff = optional_peer("backoff")
    if backoff is not None:
        bkw: dict[str, Any] = {"max_tries": 4, "max_value": 1.0, "factor": 0.1}
        out[f"backoff {peer_version('backoff')}"] = (
            backoff.on_exception(backoff.expo, ConnectionError, **bkw)(plain),
            backoff.on_exception(backoff.expo, ConnectionError, **bkw)(aplain),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=sized(20_000, 50), help="calls per round")
    parser.add_argument("--rounds", type=int, default=sized(9, 2), help="interleaved rounds")
    args = parser.parse_args()
    print_header(
        f"retry decorator overhead per call, {args.calls} calls x {args.rounds} interleaved"
        " rounds (median, min..max, ratio to reliactl; the bare function's median subtracted)"
    )
    pairs = candidates()
    sync = interleave_calls({n: p[0] for n, p in pairs.items()}, args.calls, args.rounds)
    asy = interleave_awaits({n: p[1] for n, p in pairs.items()}, args.calls, args.rounds)
    for title, samples in (("sync", sync), ("async", asy)):
        bare = statistics.median(samples.pop(BARE))
        print(f"\n{title}: bare function {bare * 1e9:.0f} ns/call; overhead above it:")
        print_spread_table(samples, "reliactl", unit="ns", label=title, subtract=bare)


if __name__ == "__main__":
    main()
