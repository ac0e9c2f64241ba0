"""How long the Nagios perfdata parser takes on ordinary and hostile plugin output.

Prints figures; asserts nothing. Issue #13: an apostrophe and 40 KB after ``|`` took 21 s
(quadratic, holding the GIL); the parser must be linear in what it reads, so every hostile
shape's ratio to ordinary items of the same size should stay near 1x. The shapes run round
by round (one parse of each per round, the order rotating): median, min..max and the ratio
to "ordinary items", after the machine's load.

    python benchmarks/perfdata.py [--size BYTES] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleave_once, print_header, print_spread_table, sized

from reliactl.health.checks import parse_perfdata

BASE = "ordinary items"


def shapes(size: int) -> dict[str, str]:
    """Perfdata text of about ``size`` characters, ordinary and hostile."""
    item = "'disk /var'=42.5%;80;90;0;100 time=0.0013s;0.5;2;0 "
    return {
        BASE: (item * (size // len(item) + 1))[:size],
        "apostrophe then text": "'" + "a" * size,
        "one long word": "a" * size,
        "quoted, no '='": "'x' " * (size // 4),
        "many '=' signs": "a=" * (size // 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=sized(40_000, 2_000))
    parser.add_argument("--runs", type=int, default=sized(5), help="interleaved rounds")
    args = parser.parse_args()
    print_header(f"parse_perfdata on {args.size} characters, {args.runs} interleaved rounds")
    texts = shapes(args.size)
    samples = interleave_once(
        {name: (lambda text=text: parse_perfdata(text)) for name, text in texts.items()},
        rounds=args.runs,
    )
    print_spread_table(samples, BASE, unit="ms", label="shape")


if __name__ == "__main__":
    main()
