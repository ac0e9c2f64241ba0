"""Nagios and Prometheus text of a report, checked by their own parsers' rules."""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reliactl.config import CheckSpec
from reliactl.health import checks
from reliactl.health.formats import nagios, prometheus
from reliactl.health.model import HealthMetric, HealthReport, PerfData, Status, perf_range
from reliactl.health.monitor import HealthMonitor, RecordStore, run_checks


def make(*metrics: HealthMetric) -> HealthReport:
    from reliactl.health.model import worst

    return HealthReport(worst(m.status for m in metrics), {m.name: m for m in metrics}, 1e9, 0.1)


def test_nagios_lists_problems_worst_first_and_never_a_stray_pipe() -> None:
    report = make(
        HealthMetric("a", Status.WARNING, 1, "slow | very", perfdata=(PerfData("a", 1, "s"),)),
        HealthMetric("b", Status.CRITICAL, 2, "down"),
        HealthMetric("c", Status.OK, 3, "fine"),
    )
    line = nagios(report)
    assert line == "CRITICAL: b CRITICAL: down; a WARNING: slow / very; 1 other check OK | 'a'=1s"
    assert "\n" not in line


def test_prometheus_escapes_labels_and_parses() -> None:
    odd = 'we"ird\\name\nx'
    report = make(
        HealthMetric(odd, Status.UNKNOWN, None, "?", perfdata=(PerfData("m", 0.25, "%"),)),
        HealthMetric("ok", Status.OK, 1e12, "big", perfdata=(PerfData("free", 1e12, "B"),)),
    )
    families = {f.name: f for f in text_string_to_metric_families(prometheus(report))}
    status = {s.labels["check"]: s.value for s in families["reliactl_health_status"].samples}
    assert status == {odd: 3.0, "ok": 0.0}
    ratios = families["reliactl_health_value_ratio"].samples
    assert [(s.labels["metric"], s.value) for s in ratios] == [("m", 0.0025)]
    sizes = families["reliactl_health_value_bytes"].samples
    assert [(s.labels["metric"], s.value) for s in sizes] == [("free", 1e12)]
    assert families["reliactl_health_overall_status"].samples[0].value == 3


def test_no_checks_at_all_is_unknown_not_ok() -> None:
    from reliactl.config import HealthMonitorConfig

    report = HealthMonitor(HealthMonitorConfig(system_checks=[]), store=None).run_now()
    assert report.overall_status is Status.UNKNOWN and report.exit_code == 3
    assert nagios(report) == "UNKNOWN: no checks configured"


# The plugin guidelines' perfdata grammar, strictly: a quoted label with '' for a quote and
# no '=' (Monitoring::Plugin::Performance refuses one), a number or U, a UOM, then ranges of
# plain numbers.
_RANGE = r"@?(?:~|[-+]?[\d.]+)?(?::(?:[-+]?[\d.]+)?)?"
STRICT_PERF = re.compile(
    rf"'(?:[^'=\n]|'')+'=(?:U|[-+]?[\d.]+[a-zA-Z%]*)"
    rf"(?:;{_RANGE}(?:;{_RANGE}(?:;(?:[-+]?[\d.]+)?(?:;(?:[-+]?[\d.]+)?)?)?)?)?"
)
HOSTILE = ['we"ird\\name', "new\nline", "cr\rhere", "eq=uals", "it's", "pi|pe", "sep\u2028x"]


def test_perfdata_thresholds_are_numbers_in_the_values_own_unit() -> None:
    """warn/crit of a time value are ranges of plain numbers in its UOM, never "500ms;2s"."""
    assert PerfData("db:time", 0.0013, "s", "500ms", "2s", 0).nagios() == (
        "'db:time'=0.0013s;0.5;2;0"
    )
    assert PerfData("t", 12, "ms", "1s:", "@10s:1m").nagios() == "'t'=12ms;1000:;@10000:60000"
    assert perf_range("~:10", "") == "~:10" and perf_range("10:20", "%") == "10:20"
    assert perf_range("not a range", "s") == ""


def test_perfdata_labels_are_sanitised_and_unknown_values_are_u() -> None:
    """Labels lose line breaks, = and |; a quote is doubled; NaN and Inf are U."""
    for label in HOSTILE:
        for value in (1.5, math.nan, math.inf, -math.inf):
            item = PerfData(label, value, "s", "1", "2", 0).nagios()
            assert STRICT_PERF.fullmatch(item), item
            assert len(item.splitlines()) == 1
    assert PerfData("x", math.nan, "s").nagios() == "'x'=U"
    assert PerfData("x", math.inf, "%").to_dict()["value"] is None


def test_a_plugins_u_value_is_kept_as_unknown_end_to_end() -> None:
    """A command plugin printing `x=U` gives a perfdata item `'c:x'=U`, not nothing."""
    code = "print('OK - no figure yet | x=U;1;2 y=3s')"
    spec = CheckSpec(name="c", kind="command", command=[sys.executable, "-c", code])
    check = checks.command_check(spec, 10.0)
    report = asyncio.run(run_checks([check], RecordStore()))
    line = nagios(report)
    assert line == "OK: 1 check OK | 'c:x'=U;1;2 'c:y'=3s", line
    assert report.metrics["c"].value is None


def hostile_report(tmp_path: Path) -> HealthReport:
    """Real checks with hostile names, on real directories with hostile names."""
    metrics: list[HealthMetric] = []
    for index, name in enumerate(HOSTILE):
        where = tmp_path / f"d{index}-{name.replace('/', '_')}"
        os.makedirs(where, exist_ok=True)
        disk = checks.disk_check(str(where), 80, 90, name=f"disk {name}")
        metrics.append(asyncio.run(run_checks([disk], RecordStore())).metrics[f"disk {name}"])
    perf = (
        PerfData("lat", 12.0, "ms", "1s", "2s"),
        PerfData("lat", 13.0, "ms"),  # the plugin repeated a label
        PerfData("pct", 50.0, "%"),
        PerfData("mem", 2.0, "MB"),
        PerfData("small", 3.0, "KB"),
        PerfData("t", 1.5, "s"),
        PerfData("us", 250.0, "us"),
        PerfData("n", 7.0),
        PerfData("gone", math.nan, "s"),
        PerfData("hits", 1234.0, "c"),
        PerfData("hits", 1234.0, "c"),
        PerfData("odd", 4.0, "dBm"),
    )
    for name in HOSTILE:
        metrics.append(HealthMetric(name, Status.WARNING, 1.0, f"bad {name}", perfdata=perf))
    from reliactl.health.model import worst

    return HealthReport(worst(m.status for m in metrics), {m.name: m for m in metrics}, 1e9, 0.1)


def test_prometheus_exposition_of_hostile_names_parses_in_base_units(tmp_path: Path) -> None:
    """prometheus_client parses it; base units with suffixes; one unit a family; no duplicates."""
    text = prometheus(hostile_report(tmp_path))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "reliactl_health_status",
        "reliactl_health_value",
        "reliactl_health_value_ratio",
        "reliactl_health_value_seconds",
        "reliactl_health_value_bytes",
        "reliactl_health_counter",  # the parser names a counter family without _total
        "reliactl_health_value_in_dBm",
        "reliactl_health_check_duration_seconds",
        "reliactl_health_overall_status",
        "reliactl_health_last_run_timestamp_seconds",
    }
    assert set(families) >= expected, sorted(families)
    series = [
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in families.values()
        for sample in family.samples
    ]
    assert len(series) == len(set(series)), "a duplicate series"
    checks_seen = {s.labels["check"] for s in families["reliactl_health_status"].samples}
    assert set(HOSTILE) <= checks_seen and {f"disk {n}" for n in HOSTILE} <= checks_seen
    for name in HOSTILE:

        def value(family: str, metric: str, check: str = name) -> float:
            (found,) = [
                s.value
                for f in families.values()
                for s in f.samples
                if s.name == family and s.labels == {"check": check, "metric": metric}
            ]
            return float(found)

        assert value("reliactl_health_value_seconds", "lat") == pytest.approx(0.012)
        assert value("reliactl_health_value_seconds", "us") == pytest.approx(0.00025)
        assert value("reliactl_health_value_seconds", "t") == 1.5
        assert math.isnan(value("reliactl_health_value_seconds", "gone"))
        assert value("reliactl_health_value_ratio", "pct") == 0.5
        assert value("reliactl_health_value_bytes", "mem") == 2 * 1024**2
        assert value("reliactl_health_value_bytes", "small") == 3 * 1024
        assert value("reliactl_health_counter_total", "hits") == 1234
        assert value("reliactl_health_value", "n") == 7
        assert value("reliactl_health_value_in_dBm", "odd") == 4
    for index, name in enumerate(HOSTILE):
        where = f"{tmp_path}/d{index}-{name}"
        (used,) = [
            s
            for s in families["reliactl_health_value_ratio"].samples
            if s.labels == {"check": f"disk {name}", "metric": f"disk_used:{where}"}
        ]
        assert 0 <= used.value <= 1
    for family in families.values():
        if family.name.startswith("reliactl_health_value_ratio"):
            assert all(0 <= s.value <= 1 or math.isnan(s.value) for s in family.samples)
    counter = [f for f in families.values() if f.type == "counter"]
    assert [s.name for f in counter for s in f.samples] == ["reliactl_health_counter_total"] * len(
        HOSTILE
    )


def test_nagios_output_of_hostile_names_is_one_line_of_valid_perfdata(tmp_path: Path) -> None:
    """The status line is the first and only line; each perfdata item is guideline syntax."""
    line = nagios(hostile_report(tmp_path))
    assert len(line.splitlines()) == 1 and line.startswith("WARNING: ")
    status_text, bar, perf = line.partition(" | ")
    assert bar and "|" not in status_text and "\n" not in line
    items = re.findall(r"'(?:[^']|'')*'=\S*", perf)
    assert len(items) == len(HOSTILE) * 12 + len(HOSTILE) * 3
    assert all(STRICT_PERF.fullmatch(item) for item in items), [
        item for item in items if not STRICT_PERF.fullmatch(item)
    ]
