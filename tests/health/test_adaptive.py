"""Adaptive thresholds and forecasts (reliactl.health.adaptive) on synthetic histories whose
answers are known by hand: steady, daily/weekly cycle, step change, noisy, fast fill."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import pytest

from reliactl.config import AdaptiveSettings, ForecastSettings
from reliactl.health import adaptive
from reliactl.health.model import HealthMetric, Status

# 2025-07-28 00:00 UTC, a Monday: hour_of_week(MONDAY, gmtime) == 0.
MONDAY = 345600.0 + 2900 * 604800.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY


def every_bucket(now: float, window: float, value: Callable[[int, float], float]) -> list:
    """One sample per 5-minute bucket of the window before ``now``: (t, value(i, t))."""
    count = int(window // adaptive.BUCKET)
    start = now - count * adaptive.BUCKET
    return [
        (start + i * adaptive.BUCKET, value(i, start + i * adaptive.BUCKET)) for i in range(count)
    ]


def metric(
    value: float, *, status: Status = Status.OK, unit: str = "", **kw: object
) -> HealthMetric:
    return HealthMetric("queue", status, value, f"value {value}", unit=unit, **kw)  # type: ignore[arg-type]


def test_week_slots_are_monday_based() -> None:
    """hour_of_week counts from Monday 00:00 (0) to Sunday 23:00 (167)."""
    assert adaptive.hour_of_week(MONDAY, time.gmtime) == 0
    assert adaptive.hour_of_week(MONDAY + 10 * HOUR + 59 * 60, time.gmtime) == 10
    assert adaptive.hour_of_week(MONDAY - 1, time.gmtime) == 167


def test_alternating_steady_history_gives_median_plus_k_and_2k_mads() -> None:
    """9/11 alternating over 7 days: median 10, MAD 1, so k=3 warns above 13 and pages
    above 16 (the documented k / 2k rule)."""
    now = MONDAY + 3 * DAY
    samples = every_bucket(now, WEEK, lambda i, t: 9.0 if i % 2 else 11.0)
    base = adaptive.baseline(samples, now, AdaptiveSettings())
    assert base.ready and base.points == 2016
    assert (base.median, base.mad, base.warn, base.critical) == (10.0, 1.0, 13.0, 16.0)
    assert [base.status(v) for v in (13.0, 13.5, 16.0, 16.5)] == [
        Status.OK, Status.WARNING, Status.WARNING, Status.CRITICAL,
    ]  # fmt: skip


def test_perfectly_steady_history_uses_the_spread_floor() -> None:
    """A constant 50 has MAD 0: the spread is 1% of the median (0.5), or min_spread when
    larger, so the smallest rise does not page."""
    now = MONDAY + DAY
    samples = every_bucket(now, WEEK, lambda i, t: 50.0)
    base = adaptive.baseline(samples, now, AdaptiveSettings())
    assert (base.mad, base.spread, base.warn, base.critical) == (0.0, 0.5, 51.5, 53.0)
    wide = adaptive.baseline(samples, now, AdaptiveSettings(min_spread=2.0))
    assert (wide.warn, wide.critical) == (56.0, 62.0)


def test_step_change_is_flagged_then_learnt() -> None:
    """6 days at 19/21 then 1 day at 39/41: median 21, MAD 2, the new level is CRITICAL
    (above 33). After 4 days at the new level (of 7) the median is 39 and it is OK."""
    now = MONDAY + 2 * DAY

    def step(days_high: int):
        return lambda i, t: (40.0 if t >= now - days_high * DAY else 20.0) + (1 if i % 2 else -1)

    early = adaptive.baseline(every_bucket(now, WEEK, step(1)), now, AdaptiveSettings())
    assert (early.median, early.mad, early.warn, early.critical) == (21.0, 2.0, 27.0, 33.0)
    assert early.status(40.0) is Status.CRITICAL
    late = adaptive.baseline(every_bucket(now, WEEK, step(4)), now, AdaptiveSettings())
    assert (late.median, late.mad, late.warn, late.critical) == (39.0, 2.0, 45.0, 51.0)
    assert late.status(40.0) is Status.OK


def business(t: float) -> float:
    """100 on weekdays 09:00-16:59 UTC, 10 otherwise, +-1 alternating by bucket."""
    tm = time.gmtime(t)
    busy = tm.tm_wday < 5 and 9 <= tm.tm_hour < 17
    wobble = 1.0 if int(t // adaptive.BUCKET) % 2 else -1.0
    return (100.0 if busy else 10.0) + wobble


def test_weekly_seasonal_baseline_follows_the_hour_of_the_week() -> None:
    """Four weeks of a business-hours cycle: with seasonal: weekly, 101 on Monday 10:xx is
    normal (that hour's median is 100) while 50 at Monday 03:xx is CRITICAL (that hour's
    median is 10, MAD 1); one baseline for all hours would page on every busy morning."""
    spec = AdaptiveSettings(window=28 * DAY, min_points=12, seasonal="weekly")
    busy_now = MONDAY + 4 * WEEK + 10 * HOUR + 30 * 60
    samples = every_bucket(busy_now, 28 * DAY, lambda i, t: business(t))
    base = adaptive.baseline(samples, busy_now, spec, local=time.gmtime)
    assert base.hour_of_week == 10 and base.points == 48
    assert (base.median, base.spread) == (100.0, 1.0)  # MAD 1 == 1% of 100
    assert base.status(101.0) is Status.OK
    flat = adaptive.baseline(samples, busy_now, AdaptiveSettings(window=28 * DAY))
    assert flat.status(101.0) is Status.CRITICAL
    night_now = MONDAY + 4 * WEEK + 3 * HOUR + 30 * 60
    samples = every_bucket(night_now, 28 * DAY, lambda i, t: business(t))
    night = adaptive.baseline(samples, night_now, spec, local=time.gmtime)
    assert (night.hour_of_week, night.median, night.warn, night.critical) == (3, 10.0, 13.0, 16.0)
    assert night.status(50.0) is Status.CRITICAL


def test_daily_cycle_without_seasonality_has_a_wide_band() -> None:
    """A sine 50 +- 20 over a day: median 50 and MAD 20*sin(pi/4) ~ 14.14, so k=3 warns above
    ~92.4: a daily peak (70) never warns."""
    now = MONDAY + DAY
    samples = every_bucket(now, WEEK, lambda i, t: 50 + 20 * math.sin(2 * math.pi * t / DAY))
    base = adaptive.baseline(samples, now, AdaptiveSettings())
    assert base.median == pytest.approx(50.0, abs=1e-6)
    assert base.mad == pytest.approx(20 * math.sin(math.pi / 4), rel=0.01)
    assert base.warn == pytest.approx(50 + 3 * 14.142, rel=0.01)
    assert base.status(70.0) is Status.OK


def test_noisy_history_with_outliers_keeps_a_robust_baseline() -> None:
    """Gaussian noise (50, sd 5) with 3% wild spikes to 1000: the median and MAD barely move
    (MAD ~ 0.674 sd = 3.4), where mean + 3 sd would be far above every real value."""
    rng = random.Random(20)
    now = MONDAY + DAY
    samples = every_bucket(
        now, WEEK, lambda i, t: 1000.0 if rng.random() < 0.03 else rng.gauss(50, 5)
    )
    base = adaptive.baseline(samples, now, AdaptiveSettings())
    assert base.median == pytest.approx(50.0, abs=0.8)
    assert base.mad == pytest.approx(3.4, abs=0.4)
    assert 58 < base.warn < 64 and 68 < base.critical < 77
    values = [v for _, v in samples]
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert mean + 3 * sd > 500  # what a mean/sd band would have learnt


def test_too_little_history_keeps_the_fixed_thresholds_and_says_so() -> None:
    """40 of 100 points: not ready; the metric keeps its fixed status, the message and the
    JSON say the fixed thresholds applied and why."""
    now = MONDAY + DAY
    samples = every_bucket(now, 40 * adaptive.BUCKET, lambda i, t: 10.0)
    out = adaptive.apply(
        metric(95.0, warn="~:50", critical="~:90", status=Status.CRITICAL),
        samples, now, AdaptiveSettings(), None,
    )  # fmt: skip
    assert out.status is Status.CRITICAL
    assert "too little history for adaptive thresholds (40/100 points)" in out.message
    threshold = out.details["threshold"]
    assert threshold["applied"] == "fixed" and threshold["decided_by"] == "fixed"
    assert threshold["adaptive"] == {
        "ready": False, "points": 40, "min_points": 100, "hour_of_week": None,
    }  # fmt: skip


def test_adaptive_never_looser_than_fixed_and_says_which_decided() -> None:
    """A history around 200 learns limits far above the fixed critical 90: a value of 95 is
    still CRITICAL, decided by the fixed threshold; a history around 10 makes 30 CRITICAL
    although the fixed thresholds call it OK, decided by the adaptive one."""
    now = MONDAY + DAY
    high = every_bucket(now, WEEK, lambda i, t: 200.0 + (5 if i % 2 else -5))
    out = adaptive.apply(
        metric(95.0, warn="~:50", critical="~:90", status=Status.CRITICAL),
        high, now, AdaptiveSettings(), None,
    )  # fmt: skip
    assert out.status is Status.CRITICAL
    assert out.details["threshold"]["decided_by"] == "fixed"
    low = every_bucket(now, WEEK, lambda i, t: 10.0 + (1 if i % 2 else -1))
    out = adaptive.apply(
        metric(30.0, warn="~:50", critical="~:90"), low, now, AdaptiveSettings(), None
    )
    assert out.status is Status.CRITICAL
    threshold = out.details["threshold"]
    assert threshold["applied"] == "adaptive+fixed" and threshold["decided_by"] == "adaptive"
    assert threshold["adaptive"]["warn_above"] == 13.0
    assert threshold["adaptive"]["critical_above"] == 16.0
    assert "adaptive warn >13 crit >16 (median 10 + 3/6 x MAD 1 of 2016 points)" in out.message
    labels = {p.label: p.value for p in out.perfdata}
    assert labels == {"queue:adaptive_warn": 13.0, "queue:adaptive_critical": 16.0}


# --------------------------------------------------------------------------- forecasts


def filling(now: float, start: float, per_hour: float, span: float, step: float = 60.0) -> list:
    """A value rising ``per_hour`` per hour, one point every ``step`` s over ``span`` s,
    reaching ``start + per_hour * span / 3600`` at ``now`` (the point at ``now`` excluded)."""
    count = int(span // step)
    end = start + per_hour * span / HOUR
    return [
        (now - (count - i) * step, end - per_hour * (count - i) * step / HOUR) for i in range(count)
    ]


def test_fast_fill_warns_with_the_time_until_full() -> None:
    """A disk at 70% rising 6%/h for 2 h is full (100%) in 5 h: below its static warn (80)
    it is already WARNING "/data full in about 5h", and perfdata says 18000 s."""
    now = MONDAY + DAY
    samples = filling(now, 58.0, 6.0, 2 * HOUR)
    disk = HealthMetric(
        "data", Status.OK, 70.0, "/data: 70.0% used", unit="%", kind="disk",
        warn="80", critical="90", details={"path": "/data"},
    )  # fmt: skip
    out = adaptive.apply(disk, samples, now, None, ForecastSettings(horizon=DAY))
    assert out.status is Status.WARNING
    assert "/data full in about 5h at the current rate" in out.message
    (perf,) = [p for p in out.perfdata if p.label == "data:seconds_until_full"]
    assert perf.value == pytest.approx(18000.0, rel=1e-6) and perf.uom == "s"
    assert out.details["forecast"]["slope_per_hour"] == pytest.approx(6.0)
    later = adaptive.apply(disk, samples, now, None, ForecastSettings(horizon=4 * HOUR))
    assert later.status is Status.OK  # 5 h is beyond a 4 h horizon


def test_steady_value_is_never_full() -> None:
    """A flat 40% has no growth: OK, seconds until full infinite (+Inf in Prometheus)."""
    now = MONDAY + DAY
    samples = [(now - i * 60.0, 40.0) for i in range(1, 120)]
    out = adaptive.apply(metric(40.0, unit="%"), samples, now, None, ForecastSettings(horizon=DAY))
    assert out.status is Status.OK
    (perf,) = out.perfdata
    assert perf.value == math.inf
    assert out.details["forecast"]["seconds_until_limit"] is None


def test_noisy_fill_with_a_spike_keeps_the_theil_sen_slope() -> None:
    """1%/h growth with +-0.3 jitter and a +30 spike over the first 40 minutes of the 6 h window:
    Theil-Sen stays within 10% of 1%/h, where least squares even turns negative."""
    rng = random.Random(5)
    now = MONDAY + DAY
    samples = []
    for i in range(360):  # 6 h, one a minute
        t = now - (360 - i) * 60.0
        v = 50.0 + (t - now) / HOUR + rng.uniform(-0.3, 0.3) + (30.0 if i < 40 else 0.0)
        samples.append((t, v))
    slope, _ = adaptive.theil_sen(samples)
    assert slope * HOUR == pytest.approx(1.0, rel=0.1)
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    ls = sum((t - mt) * (v - mv) for t, v in samples) / sum((t - mt) ** 2 for t, _ in samples)
    assert ls * HOUR < 0
    fc = adaptive.forecast(samples, now, 50.0, 100.0, ForecastSettings())
    assert fc.ready and fc.seconds / HOUR == pytest.approx(50.0, rel=0.1)


def test_forecast_needs_history_and_a_limit() -> None:
    """Too few points, or no limit (not percent, no critical bound), give no forecast and
    say why; a critical upper bound is the limit of a non-percent value."""
    now = MONDAY + DAY
    few = [(now - 60.0, 1.0), (now - 30.0, 2.0)]
    out = adaptive.apply(metric(3.0, unit="%"), few, now, None, ForecastSettings())
    assert out.status is Status.OK
    assert "too little history for a forecast (3/10 points)" in out.message
    out = adaptive.apply(metric(3.0), few, now, None, ForecastSettings(min_points=3))
    assert "no limit to forecast against" in out.message
    rising = [(now - (60 - i) * 60.0, float(i)) for i in range(60)]  # 1 per minute
    out = adaptive.apply(
        metric(60.0, critical="~:120"), rising, now, None, ForecastSettings(horizon=2 * HOUR)
    )
    assert out.status is Status.WARNING
    assert "queue at its limit in about 1h at the current rate" in out.message
    assert out.details["forecast"]["limit"] == 120.0


def test_long_series_are_folded_before_the_quadratic_fit() -> None:
    """A day of one point every 10 s (8640 points) is folded to at most MAX_FIT_POINTS
    bucket means and still gives the exact slope."""
    now = MONDAY + DAY
    samples = [(now - i * 10.0, 80.0 - i * 10.0 / HOUR) for i in range(1, 8641)]
    fc = adaptive.forecast(samples, now, 80.0, 100.0, ForecastSettings(window=DAY))
    assert fc.ready and fc.points <= adaptive.MAX_FIT_POINTS + 1
    assert fc.seconds == pytest.approx(20 * HOUR, rel=1e-3)


# --------------------------------------------------------------------------- end to end


def test_health_uses_the_history_in_a_real_sqlite_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`reliactl health` reads a week of history from the SQLite state store (raw points of
    the last day, 5-minute aggregates before): a queue that used to hold 9-11 items is
    CRITICAL at 20 though its fixed thresholds (50/90) call it OK, and the JSON says the
    adaptive threshold decided; a disk-like value rising 6%/h is WARNING "full in about 5h"
    and the Prometheus textfile exposes the seconds until full."""
    import json
    import os
    import subprocess
    import sys

    from reliactl.state import open_sqlite_store
    from reliactl.state.base import HealthPoint

    db = tmp_path / "state.db"
    now = time.time()
    store = open_sqlite_store(db, max_rows=10_000, warn=lambda _: None)
    queue = every_bucket(now, WEEK, lambda i, t: 9.0 + i % 3)  # 9, 10, 11: median 10, MAD 1
    fill = filling(now, 58.0, 6.0, 2 * HOUR)
    store.add_health_points(
        [HealthPoint("queue", t, "OK", v) for t, v in queue]
        + [HealthPoint("fill", t, "OK", v) for t, v in fill]
    )
    store.compact_health(now, DAY, 30 * DAY, adaptive.BUCKET)
    assert store.health_aggregates("queue", now - WEEK)  # the old history is aggregated
    store.close()
    (tmp_path / "probes.py").write_text(
        "def queue():\n    return {'value': 20.0}\n"
        "def fill():\n    return {'value': 70.0, 'unit': '%'}\n",
        encoding="utf-8",
    )
    config = tmp_path / "reliactl.yaml"
    config.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        "    - {name: queue, kind: python, target: 'probes:queue', warn: '50', critical: '90',\n"
        "       adaptive: {window: 7d, k: 3, min_points: 100}}\n"
        "    - {name: fill, kind: python, target: 'probes:fill', warn: '80', critical: '90',\n"
        "       forecast: 24h}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__URL": f"sqlite://{db}",
        "PYTHONPATH": str(tmp_path),
    }

    def health(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reliactl", "health", *args],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip

    shown = health("--json")
    assert shown.returncode == 2, shown.stderr
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    q = checks["queue"]
    assert q["status"] == "CRITICAL"
    assert q["details"]["threshold"]["decided_by"] == "adaptive"
    assert q["details"]["threshold"]["adaptive"]["median"] == 10.0
    assert q["details"]["threshold"]["adaptive"]["critical_above"] == 16.0
    assert "adaptive warn >13 crit >16" in q["message"]
    f = checks["fill"]
    assert f["status"] == "WARNING"
    assert "fill at its limit in about 5h at the current rate" in f["message"]
    seconds = f["details"]["forecast"]["seconds_until_limit"]
    assert seconds == pytest.approx(18000, rel=0.02)
    prom = health("--format", "prometheus", "--check", "fill")
    assert prom.returncode == 1, prom.stderr
    (line,) = [ln for ln in prom.stdout.splitlines() if "fill:seconds_until_full" in ln]
    assert line.startswith(
        'reliactl_health_value_seconds{check="fill",metric="fill:seconds_until_full"}'
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(18000, rel=0.02)


def test_config_takes_a_forecast_horizon_and_names_bad_settings_by_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`forecast: 24h` is the horizon with the other defaults; bad adaptive/forecast
    settings are each one problem with file:line, never a traceback."""
    from reliactl.config import load
    from reliactl.errors import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text(
        "health_monitor:\n  checks:\n"
        "    - name: d\n      kind: disk\n      path: /\n      forecast: 24h\n"
        "      adaptive: {seasonal: weekly, window: 28d}\n",
        encoding="utf-8",
    )
    (check,) = load(good, use_env=False).config.health_monitor.checks
    assert check.forecast == ForecastSettings(horizon=DAY)
    assert check.adaptive == AdaptiveSettings(seasonal="weekly", window=28 * DAY)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "health_monitor:\n  checks:\n"
        "    - name: d\n      kind: disk\n      path: /\n"
        "      adaptive: {k: 0, seasonal: monthly, min_point: 5}\n"
        "      forecast:\n        horizon: soon\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load(bad, use_env=False)
    text = str(caught.value)
    assert f"{bad}:6: health_monitor.checks[0].adaptive.k: expected a positive" in text
    assert "adaptive.seasonal: expected one of none, weekly, got 'monthly'" in text
    assert "adaptive.min_point: unknown key (did you mean 'min_points'?)" in text
    assert f"{bad}:8: health_monitor.checks[0].forecast.horizon: expected a duration" in text


def test_builtin_disk_checks_take_disk_forecast_and_the_starter_leaves_it_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`health_monitor.disk_forecast: 12h` gives every built-in disk check that forecast (the
    others none); the starter configuration (`config init`) keeps it unset (null, not `{}`,
    which would turn it on)."""
    from reliactl.config import example_yaml, load
    from reliactl.health.checks import system_checks

    path = tmp_path / "c.yaml"
    path.write_text(
        "health_monitor:\n  disk_forecast: 12h\n  disk_paths: [/]\n  system_checks: [disk, swap]\n",
        encoding="utf-8",
    )
    cfg = load(path, use_env=False).config.health_monitor
    checks = {c.name: c for c in system_checks(cfg)}
    assert checks["disk_usage:/"].forecast == ForecastSettings(horizon=12 * HOUR)
    assert checks["swap_usage"].forecast is None
    starter = tmp_path / "starter.yaml"
    starter.write_text(example_yaml(starter=True), encoding="utf-8")
    assert load(starter, use_env=False).config.health_monitor.disk_forecast is None
