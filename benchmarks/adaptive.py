"""What adaptive thresholds and forecasts (reliactl.health.adaptive) cost per check and round.

Prints figures; asserts nothing. A baseline folds the window into 5-minute means (7 days:
2016 buckets; 28 days with seasonal weekly: 8064, one local-time lookup each); a forecast is
Theil-Sen, quadratic in its points, so series longer than MAX_FIT_POINTS are folded first.
The cases run round by round (one call of each per round, the order rotating); each prints
median, min..max and its ratio to the 7-day baseline, after the machine's load. No peer
computes the same thing, so the ratio is to reliactl's own cheapest case.

    python benchmarks/adaptive.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import interleave_once, print_header, print_spread_table, sized

from reliactl.config import AdaptiveSettings, ForecastSettings
from reliactl.health import adaptive

DAY = 86400.0
BASE = "baseline, 7d (2016 buckets)"


def cases(now: float) -> dict[str, Callable[[], object]]:
    week = [(now - 7 * DAY + i * 300, 10.0 + i % 3) for i in range(2016)]
    month = [(now - 28 * DAY + i * 300, 10.0 + i % 3) for i in range(8064)]
    day = [(now - DAY + i * 60, 50 + i / 1440) for i in range(1440)]
    weekly = AdaptiveSettings(window=28 * DAY, seasonal="weekly", min_points=12)
    return {
        BASE: lambda: adaptive.baseline(week, now, AdaptiveSettings()),
        "baseline, 28d weekly (8064 buckets)": lambda: adaptive.baseline(month, now, weekly),
        "forecast, 6h of 1/min (360 -> 240 points)": lambda: adaptive.forecast(
            day, now, 60.0, 100.0, ForecastSettings()
        ),
        "forecast, 24h of 1/min (1440 -> 240 points)": lambda: adaptive.forecast(
            day, now, 60.0, 100.0, ForecastSettings(window=DAY)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=sized(11), help="interleaved rounds")
    args = parser.parse_args()
    print_header(f"adaptive baselines and forecasts, {args.runs} interleaved rounds")
    samples = interleave_once(cases(time.time()), rounds=args.runs)
    print_spread_table(samples, BASE, unit="ms", label="case")


if __name__ == "__main__":
    main()
