"""Adaptive thresholds and forecasts: limits and trends from a check's own history.

Pure arithmetic on ``(epoch, value)`` samples (no I/O, no clock); :func:`apply` is the one
step :mod:`reliactl.health.monitor` calls after a check ran, with the samples its
RecordStore read from the state store's health history.

Adaptive thresholds (``adaptive:`` on a check)
    The history of the last ``window`` is folded into 5-minute bucket means (so the raw
    points of the last day and the 5-minute aggregates before it weigh the same). Of those
    (or, with ``seasonal: weekly``, of those in the same hour of the week, local time) the
    baseline is the median *m* and the median absolute deviation *MAD* (unscaled), taken as
    at least ``min_spread`` and 1% of |m| so a perfectly steady history does not alert on
    the smallest rise. WARNING above ``m + k*MAD``, CRITICAL above ``m + 2k*MAD`` (for
    normal noise MAD is about 0.67 sigma: k=3 warns at about 2 sigma, pages at about 4).
    Only rises alert. The fixed warn/critical still apply and the worse status wins, so the
    learnt limits are never looser than the fixed ones. With fewer than ``min_points``
    buckets the fixed thresholds alone apply and the message and JSON say so.

Forecasts (``forecast:`` on a check)
    The trend of the last ``window`` of raw history (plus the value just measured) is the
    Theil-Sen slope: the median of the slopes between every pair of points. It is chosen
    over least squares (Prometheus' predict_linear) because one spike - a big temporary
    file, a rotated log - moves a least-squares slope as much as hours of steady growth but
    leaves the median of pairwise slopes where it was (29% breakdown point). From the value
    just measured, at that slope, the seconds until the limit (``limit``, else 100 for a
    percent value, else the upper bound of critical) are predicted; within ``horizon`` the
    check is at least WARNING ("/data full in about 5h at the current rate"). A forecast
    never makes a check CRITICAL: the static threshold does that.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from reliactl.durations import format_duration
from reliactl.health.model import HealthMetric, PerfData, Status, worst
from reliactl.ranges import RangeError, _fmt, parse_range

if TYPE_CHECKING:
    from reliactl.config import AdaptiveSettings, ForecastSettings

__all__ = [
    "BUCKET",
    "Baseline",
    "Forecast",
    "apply",
    "baseline",
    "fold",
    "forecast",
    "hour_of_week",
    "mad",
    "median",
    "theil_sen",
]

Sample = tuple[float, float]  # (epoch seconds, value)

BUCKET = 300.0  # seconds: the baseline's unit of history (as state.history_bucket's default)
MAX_FIT_POINTS = 240  # Theil-Sen is O(n^2): longer series are folded to this many means
REL_SPREAD_FLOOR = 0.01  # the MAD is taken as at least 1% of |median|
FORECAST_PERF_LABEL = "seconds_until_full"


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values of an even count); NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def mad(values: Sequence[float], center: float | None = None) -> float:
    """The median absolute deviation from ``center`` (the median), unscaled."""
    if not values:
        return math.nan
    m = median(values) if center is None else center
    return median([abs(v - m) for v in values])


def fold(samples: Sequence[Sample], bucket: float) -> list[Sample]:
    """Samples folded into buckets aligned on multiples of ``bucket``: (bucket start, mean)."""
    groups: dict[float, list[float]] = {}
    for t, v in samples:
        groups.setdefault((t // bucket) * bucket, []).append(v)
    return [(start, math.fsum(vs) / len(vs)) for start, vs in sorted(groups.items())]


def hour_of_week(epoch: float, local: Callable[[float], time.struct_time] = time.localtime) -> int:
    """0 (Monday 00:00-00:59) .. 167 (Sunday 23:00-23:59) in local time."""
    tm = local(epoch)
    return tm.tm_wday * 24 + tm.tm_hour


def theil_sen(samples: Sequence[Sample]) -> tuple[float, float]:
    """(slope per second, intercept at t=0) of the Theil-Sen line through ``samples``.

    Needs two samples at different times (ValueError otherwise).
    """
    slopes = []
    for i in range(len(samples)):
        ti, vi = samples[i]
        for j in range(i + 1, len(samples)):
            tj, vj = samples[j]
            if tj != ti:
                slopes.append((vj - vi) / (tj - ti))
    if not slopes:
        raise ValueError("a trend needs two samples at different times")
    slope = median(slopes)
    intercept = median([v - slope * t for t, v in samples])
    return slope, intercept


# --------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Baseline:
    """Learnt limits, or (``ready`` False) why there are none yet."""

    ready: bool
    points: int
    min_points: int
    median: float = math.nan
    mad: float = math.nan
    spread: float = math.nan  # the MAD as used (after its floors)
    k: float = math.nan
    warn: float = math.nan  # WARNING above this
    critical: float = math.nan  # CRITICAL above this
    hour_of_week: int | None = None  # the seasonal slot the baseline is of

    def status(self, value: float) -> Status:
        if not self.ready:
            return Status.OK
        if value > self.critical:
            return Status.CRITICAL
        if value > self.warn:
            return Status.WARNING
        return Status.OK

    def describe(self) -> str:
        slot = " at this hour of the week" if self.hour_of_week is not None else ""
        if not self.ready:
            return (
                f"too little history{slot} for adaptive thresholds ({self.points}/"
                f"{self.min_points} points): fixed thresholds apply"
            )
        return (
            f"adaptive warn >{_num(self.warn)} crit >{_num(self.critical)}"
            f" (median {_num(self.median)} + {_fmt(self.k)}/{_fmt(2 * self.k)} x MAD"
            f" {_num(self.spread)} of {self.points} points{slot})"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ready": self.ready,
            "points": self.points,
            "min_points": self.min_points,
            "hour_of_week": self.hour_of_week,
        }
        if self.ready:
            out.update(
                median=self.median,
                mad=self.mad,
                spread=self.spread,
                k=self.k,
                warn_above=self.warn,
                critical_above=self.critical,
                rule="warn above median + k*MAD, critical above median + 2k*MAD",
            )
        return out


def baseline(
    samples: Sequence[Sample],
    now: float,
    spec: AdaptiveSettings,
    *,
    bucket: float = BUCKET,
    local: Callable[[float], time.struct_time] = time.localtime,
) -> Baseline:
    """The baseline of ``samples`` within ``spec.window`` before ``now`` (see the module)."""
    recent = [(t, v) for t, v in samples if now - spec.window <= t < now and math.isfinite(v)]
    folded = fold(recent, bucket)
    slot: int | None = None
    if spec.seasonal == "weekly":
        slot = hour_of_week(now, local)
        folded = [(t, v) for t, v in folded if hour_of_week(t + bucket / 2, local) == slot]
    values = [v for _, v in folded]
    if len(values) < spec.min_points:
        return Baseline(False, len(values), spec.min_points, hour_of_week=slot)
    m = median(values)
    raw_mad = mad(values, m)
    spread = max(raw_mad, spec.min_spread, REL_SPREAD_FLOOR * abs(m))
    if spread <= 0:
        spread = 1e-9  # a history of exact zeros: any rise is a change
    return Baseline(
        True,
        len(values),
        spec.min_points,
        median=m,
        mad=raw_mad,
        spread=spread,
        k=spec.k,
        warn=m + spec.k * spread,
        critical=m + 2 * spec.k * spread,
        hour_of_week=slot,
    )


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True)
class Forecast:
    """A trend and when it reaches ``limit``, or (``ready`` False) why there is none."""

    ready: bool
    points: int
    limit: float | None
    slope: float = math.nan  # value units per second
    seconds: float = math.inf  # until the limit at this slope (inf: not growing)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "points": self.points,
            "limit": self.limit,
            "slope_per_hour": self.slope * 3600 if self.ready else None,
            "seconds_until_limit": (
                self.seconds if self.ready and math.isfinite(self.seconds) else None
            ),
            "method": "theil-sen",
            "reason": self.reason or None,
        }


def forecast(
    samples: Sequence[Sample],
    now: float,
    value: float,
    limit: float | None,
    spec: ForecastSettings,
) -> Forecast:
    """When ``value`` (measured at ``now``) reaches ``limit`` at the trend of ``samples``."""
    if limit is None:
        return Forecast(False, 0, None, reason="no limit to forecast against")
    recent = [(t, v) for t, v in samples if now - spec.window <= t < now and math.isfinite(v)]
    recent.append((now, value))
    if len(recent) < spec.min_points:
        return Forecast(
            False,
            len(recent),
            limit,
            reason=f"too little history for a forecast ({len(recent)}/{spec.min_points} points)",
        )
    if len(recent) > MAX_FIT_POINTS:
        width = spec.window / MAX_FIT_POINTS
        recent = [*fold(recent[:-1], width), (now, value)]
    try:
        slope, _ = theil_sen(recent)
    except ValueError as exc:
        return Forecast(False, len(recent), limit, reason=str(exc))
    if value >= limit:
        seconds = 0.0
    elif slope <= 0:
        seconds = math.inf
    else:
        seconds = (limit - value) / slope
    return Forecast(True, len(recent), limit, slope=slope, seconds=seconds)


def forecast_limit(metric: HealthMetric, spec: ForecastSettings) -> float | None:
    """The value that counts as full: ``limit``, 100 for percent, or critical's upper bound."""
    if spec.limit is not None:
        return spec.limit
    if metric.unit == "%":
        return 100.0
    if metric.critical:
        try:
            r = parse_range(metric.critical)
        except RangeError:
            return None
        if not r.inside and math.isfinite(r.end):
            return r.end
    return None


# --------------------------------------------------------------------------- the monitor's step


def apply(
    metric: HealthMetric,
    samples: Sequence[Sample],
    now: float,
    adaptive: AdaptiveSettings | None,
    trend: ForecastSettings | None,
    *,
    local: Callable[[float], time.struct_time] = time.localtime,
) -> HealthMetric:
    """``metric`` judged also by its learnt limits and its forecast (worse status wins).

    ``details["threshold"]`` says which thresholds applied and how they were derived;
    ``details["forecast"]`` the trend. A metric without a finite value is returned as is.
    """
    value = metric.value
    if value is None or not math.isfinite(value) or metric.status is Status.UNKNOWN:
        return metric
    status: Status = metric.status
    notes: list[str] = []
    details = dict(metric.details)
    perf = list(metric.perfdata)
    if adaptive is not None:
        base = baseline(samples, now, adaptive, local=local)
        learnt = base.status(value)
        if not base.ready:
            applied = "fixed"
            decided = "fixed" if not metric.status.is_ok else None
        else:
            applied = "adaptive+fixed"
            decided = None
            if learnt.severity > metric.status.severity:
                decided = "adaptive"
            elif not metric.status.is_ok:
                decided = "fixed"
            perf += [
                PerfData(f"{metric.name}:adaptive_warn", base.warn, metric.unit),
                PerfData(f"{metric.name}:adaptive_critical", base.critical, metric.unit),
            ]
        details["threshold"] = {
            "applied": applied,
            "decided_by": decided,
            "fixed": {"warn": metric.warn, "critical": metric.critical},
            "adaptive": base.to_dict(),
        }
        status = worst([status, learnt])
        notes.append(base.describe())
    if trend is not None:
        limit = forecast_limit(metric, trend)
        fc = forecast(samples, now, value, limit, trend)
        details["forecast"] = {**fc.to_dict(), "horizon": trend.horizon}
        if fc.ready:
            perf.append(PerfData(f"{metric.name}:{FORECAST_PERF_LABEL}", fc.seconds, "s"))
            if fc.seconds <= trend.horizon:
                status = worst([status, Status.WARNING])
                notes.append(
                    f"{_subject(metric)} in about {_about(fc.seconds)} at the current rate"
                )
        else:
            notes.append(fc.reason)
    return replace(
        metric,
        status=status,
        message="; ".join([metric.message, *notes]),
        perfdata=tuple(perf),
        details=details,
    )


def _subject(metric: HealthMetric) -> str:
    path = metric.details.get("path")
    if metric.kind == "disk" and isinstance(path, str):
        return f"{path} full"
    return f"{metric.name} at its limit"


def _about(seconds: float) -> str:
    """A rounded duration: 5h, 40m, 2d (never "4h59m13s" for a prediction)."""
    if seconds <= 0:
        return "0s (now)"
    for unit in (86400.0, 3600.0, 60.0):
        if seconds >= unit:
            return format_duration(round(seconds / unit) * unit)
    return format_duration(round(seconds))


def _num(value: float) -> str:
    return f"{value:.4g}"
