"""Nagios and Prometheus text of a report, checked by their own parsers' rules."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reliactl.health.formats import nagios, prometheus
from reliactl.health.model import HealthMetric, HealthReport, PerfData, Status
from reliactl.health.monitor import HealthMonitor


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
    values = {s.labels["metric"]: s.value for s in families["reliactl_health_value"].samples}
    assert values == {"m": 0.25, "free": 1e12}
    assert families["reliactl_health_overall_status"].samples[0].value == 3


def test_no_checks_at_all_is_unknown_not_ok() -> None:
    from reliactl.config import HealthMonitorConfig

    report = HealthMonitor(HealthMonitorConfig(system_checks=[]), store=None).run_now()
    assert report.overall_status is Status.UNKNOWN and report.exit_code == 3
    assert nagios(report) == "UNKNOWN: no checks configured"
