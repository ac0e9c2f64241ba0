"""What adaptive thresholds and forecasts (reliactl.health.adaptive) cost per check and round.

Prints figures; asserts nothing. A baseline folds the window into 5-minute means (7 days:
2016 buckets; 28 days with seasonal weekly: 8064, one local-time lookup each); a forecast is
Theil-Sen, quadratic in its points, so series longer than MAX_FIT_POINTS are folded first.

    python benchmarks/adaptive.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from reliactl.config import AdaptiveSettings, ForecastSettings
from reliactl.health import adaptive

DAY = 86400.0


def cases(now: float) -> dict[str, Callable[[], object]]:
    week = [(now - 7 * DAY + i * 300, 10.0 + i % 3) for i in range(2016)]
    month = [(now - 28 * DAY + i * 300, 10.0 + i % 3) for i in range(8064)]
    day = [(now - DAY + i * 60, 50 + i / 1440) for i in range(1440)]
    weekly = AdaptiveSettings(window=28 * DAY, seasonal="weekly", min_points=12)
    return {
        "baseline, 7d (2016 buckets)": lambda: adaptive.baseline(week, now, AdaptiveSettings()),
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
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    now = time.time()
    print(f"median of {args.runs} runs")
    for name, fn in cases(now).items():
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        print(f"  {name:<46} {statistics.median(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
