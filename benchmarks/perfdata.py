"""How long the Nagios perfdata parser takes on ordinary and hostile plugin output.

Prints figures; asserts nothing. Issue #13: an apostrophe and 40 KB after ``|`` took 21 s
(quadratic, holding the GIL); the parser must be linear in what it reads.

    python benchmarks/perfdata.py [--size BYTES] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from reliactl.health.checks import parse_perfdata


def shapes(size: int) -> dict[str, str]:
    """Perfdata text of about ``size`` characters, ordinary and hostile."""
    item = "'disk /var'=42.5%;80;90;0;100 time=0.0013s;0.5;2;0 "
    return {
        "ordinary items": (item * (size // len(item) + 1))[:size],
        "apostrophe then text": "'" + "a" * size,
        "one long word": "a" * size,
        "quoted, no '='": "'x' " * (size // 4),
        "many '=' signs": "a=" * (size // 2),
    }


def best_of(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) if runs > 1 else statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, text in shapes(args.size).items():
        seconds = best_of(lambda text=text: parse_perfdata(text), args.runs)
        print(f"{name:24} {len(text):>7} chars  {seconds * 1000:10.2f} ms")


if __name__ == "__main__":
    main()
