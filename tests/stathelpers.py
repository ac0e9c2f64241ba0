"""Small statistics for distribution tests (scipy is not a dependency)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    xs, ys = sorted(a), sorted(b)
    gap = 0.0
    for value in sorted(set(xs) | set(ys)):
        fa = bisect.bisect_right(xs, value) / len(xs)
        fb = bisect.bisect_right(ys, value) / len(ys)
        gap = max(gap, abs(fa - fb))
    return gap


def ks_critical(n: int, m: int, alpha: float = 1e-6) -> float:
    """The statistic above which two samples differ at level ``alpha`` (asymptotic form)."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))
