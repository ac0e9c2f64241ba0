"""Text forms of a HealthReport that other programs read: Nagios plugin output, Prometheus.

Pure functions returning strings (the CLI prints them; a library user may serve them).
"""

from __future__ import annotations

import math
import re

from reliactl.health.model import HealthReport, PerfData, one_line
from reliactl.ranges import _fmt

PROM_PREFIX = "reliactl_health"


def nagios(report: HealthReport) -> str:
    """One line: ``STATUS: message | 'label'=value[UOM];warn;crit;min;max ...``.

    The status text never holds a line break or ``|``, so it is always the first line and
    the perfdata starts at the only ``|``; each datum follows the plugin guidelines
    (PerfData.nagios).
    """
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
    text = one_line(text).replace("|", "/")
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


# A perfdata UOM -> (family suffix, factor to the base unit). Prometheus wants base units:
# seconds, bytes, ratios 0-1 (https://prometheus.io/docs/practices/naming/).
_BASE_UNITS: dict[str, tuple[str, float]] = {
    "": ("", 1.0),
    "%": ("_ratio", 0.01),
    "s": ("_seconds", 1.0),
    "ms": ("_seconds", 1e-3),
    "us": ("_seconds", 1e-6),
    "B": ("_bytes", 1.0),
    "KB": ("_bytes", 1024.0),
    "MB": ("_bytes", 1024.0**2),
    "GB": ("_bytes", 1024.0**3),
    "TB": ("_bytes", 1024.0**4),
}
_FAMILY_HELP = {
    "": "Each unitless performance datum of each check.",
    "_ratio": "Each performance datum given in percent, as a ratio 0-1.",
    "_seconds": "Each performance datum that is a time, in seconds.",
    "_bytes": "Each performance datum that is a size, in bytes.",
}


def _family(p: PerfData) -> tuple[str, float, str]:
    """(metric name, factor to its base unit, TYPE) of one perfdata value."""
    if p.uom == "c":  # the guidelines' continuous counter
        return f"{PROM_PREFIX}_counter_total", 1.0, "counter"
    known = _BASE_UNITS.get(p.uom)
    if known is not None:
        return f"{PROM_PREFIX}_value{known[0]}", known[1], "gauge"
    # A unit Prometheus has no base for gets a family of its own: never mixed with others.
    suffix = re.sub(r"[^A-Za-z0-9_]", "_", p.uom)
    return f"{PROM_PREFIX}_value_in_{suffix}", 1.0, "gauge"


def prometheus(report: HealthReport) -> str:
    """Prometheus text exposition: a status gauge per check, a family per base unit of perfdata.

    Perfdata values are converted to base units (percent to a ratio, ms and us to seconds,
    KB..TB to bytes) and named with the unit's suffix (``reliactl_health_value_seconds``);
    a plugin's counters (UOM ``c``) are ``reliactl_health_counter_total``. A label a plugin
    repeats gives one series (the first), never two identical ones.
    """
    lines = [
        f"# HELP {PROM_PREFIX}_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        f"# TYPE {PROM_PREFIX}_status gauge",
    ]
    for m in report.metrics.values():
        lines.append(
            f'{PROM_PREFIX}_status{{check="{_label_value(m.name)}",kind="{_label_value(m.kind)}"}}'
            f" {m.status.code}"
        )
    families: dict[str, tuple[str, list[str]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for m in report.metrics.values():
        for p in m.perfdata:
            name, factor, kind = _family(p)
            key = (name, m.name, p.label)
            if key in seen:
                continue
            seen.add(key)
            value = p.value * factor if math.isfinite(p.value) else p.value
            families.setdefault(name, (kind, []))[1].append(
                f'{name}{{check="{_label_value(m.name)}",metric="{_label_value(p.label)}"}}'
                f" {_prom_number(value)}"
            )
    for name in sorted(families):
        kind, samples = families[name]
        unit = name.removeprefix(f"{PROM_PREFIX}_value")
        if kind == "counter":
            text = "Each counter (UOM c) of each check."
        else:
            text = _FAMILY_HELP.get(unit, f"Each performance datum in {unit[4:]!r}, as given.")
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples]
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


__all__ = ["_fmt", "nagios", "prometheus"]
