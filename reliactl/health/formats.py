"""Text forms of a HealthReport that other programs read: Nagios plugin output, Prometheus.

Pure functions returning strings (the CLI prints them; a library user may serve them).
"""

from __future__ import annotations

import math

from reliactl.health.model import HealthReport, PerfData, Status, _fmt

PROM_PREFIX = "reliactl_health"


def nagios(report: HealthReport) -> str:
    """One line: ``STATUS: message | 'label'=value[UOM];warn;crit;min;max ...``."""
    problems = sorted(report.problems, key=lambda m: -m.status.severity)
    if problems:
        text = "; ".join(f"{m.name} {m.status.value}: {m.message}" for m in problems)
        ok = len(report.metrics) - len(problems)
        if ok:
            text += f"; {ok} other check{'s' if ok != 1 else ''} OK"
    elif not report.metrics:
        text = "no checks configured"
    else:
        count = len(report.metrics)
        text = f"{count} check{'s' if count != 1 else ''} OK"
    text = text.replace("|", "/").replace("\n", " ")
    perf = " ".join(p.nagios() for m in report.metrics.values() for p in m.perfdata)
    line = f"{report.overall_status.value}: {text}"
    return f"{line} | {perf}" if perf else line


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _unit(p: PerfData) -> str:
    return {"%": "percent", "s": "seconds", "ms": "milliseconds", "B": "bytes"}.get(p.uom, p.uom)


def prometheus(report: HealthReport) -> str:
    """Prometheus text exposition: a status gauge per check, a value gauge per perfdata."""
    lines = [
        f"# HELP {PROM_PREFIX}_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        f"# TYPE {PROM_PREFIX}_status gauge",
    ]
    for m in report.metrics.values():
        lines.append(
            f'{PROM_PREFIX}_status{{check="{_label_value(m.name)}",kind="{_label_value(m.kind)}"}}'
            f" {m.status.code}"
        )
    lines += [
        f"# HELP {PROM_PREFIX}_value Each performance datum of each check, in its unit.",
        f"# TYPE {PROM_PREFIX}_value gauge",
    ]
    for m in report.metrics.values():
        for p in m.perfdata:
            lines.append(
                f'{PROM_PREFIX}_value{{check="{_label_value(m.name)}",'
                f'metric="{_label_value(p.label)}",unit="{_label_value(_unit(p))}"}}'
                f" {_prom_number(p.value)}"
            )
    lines += [
        f"# HELP {PROM_PREFIX}_check_duration_seconds How long each check took.",
        f"# TYPE {PROM_PREFIX}_check_duration_seconds gauge",
    ]
    for m in report.metrics.values():
        lines.append(
            f'{PROM_PREFIX}_check_duration_seconds{{check="{_label_value(m.name)}"}}'
            f" {_prom_number(round(m.duration, 6))}"
        )
    lines += [
        f"# HELP {PROM_PREFIX}_overall_status Worst status of all checks (as the exit code).",
        f"# TYPE {PROM_PREFIX}_overall_status gauge",
        f"{PROM_PREFIX}_overall_status {report.overall_status.code}",
        f"# HELP {PROM_PREFIX}_last_run_timestamp_seconds When the checks ran (epoch).",
        f"# TYPE {PROM_PREFIX}_last_run_timestamp_seconds gauge",
        f"{PROM_PREFIX}_last_run_timestamp_seconds {_prom_number(round(report.checked_at, 3))}",
    ]
    return "\n".join(lines) + "\n"


def status_word(status: Status) -> str:
    return status.value


__all__ = ["_fmt", "nagios", "prometheus"]
