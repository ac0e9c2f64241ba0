"""Forms of a HealthReport that other programs read: Nagios plugin output, Prometheus, and
the Discord embed of the seed bot's ``/health`` command.

Pure functions returning strings or dicts (the CLI prints them; a library user may serve them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from reliactl.health.model import HealthMetric, HealthReport, PerfData
from reliactl.ranges import _fmt
from reliactl.units import printable

PROM_PREFIX = "reliactl_health"


def nagios(report: HealthReport) -> str:
    """One line: ``STATUS: message | 'label'=value[UOM];warn;crit;min;max ...``.

    The status text never holds a line break, a control character or ``|`` (a check's text is
    C-escaped, ``units.printable``; ``|`` becomes ``/``), so it is always the first line and
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
    # a check's name and message are foreign text: C-escaped (a newline is the two characters
    # \n), so the status stays the first line and the perfdata starts at the only "|"
    text = printable(text).replace("|", "/")
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


# Discord's embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
DISCORD_LIMITS = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "total": 6000,  # title + description + field names and values + footer text
}
RESOURCE_KINDS = ("cpu", "memory", "swap", "disk", "file_handles", "process")
_SUMMARY_ROOM = 300  # characters kept free for the "and N more checks" field


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis; never empty (Discord refuses)."""
    text = text.strip() or "-"
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _discord_value(m: HealthMetric) -> str:
    if m.value is None:
        return "-"
    if m.unit == "%":
        return f"{m.value:.1f}%"
    if m.unit == "s":
        return f"{m.value * 1000:.0f}ms" if m.value < 1 else f"{m.value:.2f}s"
    return f"{m.value:g}{m.unit}"


def discord_embed(
    report: HealthReport,
    *,
    detailed: bool = False,
    breakers: Sequence[Any] | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """The embed the seed bot's ``/health [detailed:True]`` showed, as Discord's JSON dict.

    Colour by the overall status (the Discord alert sink's colours), a field per check (worst
    first, status in words and emoji, not colour alone), and with ``detailed`` each check's
    thresholds and time plus a field of circuit breakers (``breakers``: BreakerSnapshot-like
    objects with name, state, consecutive_failures) and one of resource figures (the system
    checks' values). Always within Discord's limits (DISCORD_LIMITS): long texts are cut
    with an ellipsis, and checks beyond 25 fields or 6000 characters are summarised in a
    last "and N more" field. Send it as ``{"embeds": [embed]}`` (a webhook) or
    ``discord.Embed.from_dict(embed)`` (a bot).
    """
    from reliactl.health.alerts import COLORS, EMOJI

    limits = DISCORD_LIMITS
    status = report.overall_status
    metrics = sorted(report.metrics.values(), key=lambda m: (-m.status.severity, m.name))
    counts: dict[str, int] = {}
    for m in metrics:
        counts[m.status.value] = counts.get(m.status.value, 0) + 1
    ok = counts.get("OK", 0)
    bad = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if s != "OK")
    title = _clip(f"{EMOJI[status]} System health: {status.value}", limits["title"])
    if metrics:
        summary = f"{ok} of {len(metrics)} checks OK" + (f" ({bad})" if bad else "")
    else:
        summary = "no checks configured"
    description = _clip(summary, limits["description"])
    # foreign text (names, messages, the host) is shown by the display rule (units.printable):
    # Discord and the terminal that prints it get no raw control, C1 or bidi character
    footer = _clip("reliactl health" + (f" · {printable(host)}" if host else ""), limits["footer"])

    extra: list[dict[str, Any]] = []
    if detailed:
        if breakers is not None:
            lines = [
                f"{printable(b.name)}: {b.state.value.replace('_', '-')}"
                + (f" ({b.consecutive_failures} failures)" if b.consecutive_failures else "")
                for b in sorted(breakers, key=lambda b: (b.state.value == "closed", b.name))
            ]
            value = "\n".join(lines) if lines else "none"
            extra.append({"name": "Circuit breakers", "value": value, "inline": False})
        resources = [
            f"{printable(m.name)}: {_discord_value(m)}" for m in metrics if m.kind in RESOURCE_KINDS
        ]
        if resources:
            value = "\n".join(sorted(resources))
            extra.append({"name": "Resources", "value": value, "inline": False})
    for f in extra:
        f["name"] = _clip(f["name"], limits["field_name"])
        f["value"] = _clip(f["value"], min(limits["field_value"], 700))

    budget = limits["total"] - len(title) - len(description) - len(footer)
    budget -= sum(len(f["name"]) + len(f["value"]) for f in extra)
    slots = limits["fields"] - len(extra)
    fields: list[dict[str, Any]] = []
    for index, m in enumerate(metrics):
        left = len(metrics) - index
        room = budget - (_SUMMARY_ROOM if left > 1 else 0)
        emoji, word = EMOJI[m.status], m.status.value  # the status survives a long name
        short = _clip(printable(m.name), limits["field_name"] - len(emoji) - len(word) - 3)
        name = f"{emoji} {short}: {word}"
        message = printable(m.message)
        text = f"{_discord_value(m)} · {message}" if m.value is not None else message
        if detailed:
            limits_text = " · ".join(
                t for t in (m.warn and f"warn {m.warn}", m.critical and f"crit {m.critical}") if t
            )
            text += f"\n{limits_text + ' · ' if limits_text else ''}took {m.duration * 1000:.0f}ms"
        value = _clip(text, min(limits["field_value"], room - len(name)))
        full = len(fields) >= slots - (1 if left > 1 else 0)
        if full or room - len(name) < 40:
            rest = metrics[index:]
            names = ", ".join(printable(r.name) for r in rest)
            word = "check" if len(rest) == 1 else "checks"
            fields.append(
                {
                    "name": f"…and {len(rest)} more {word}",
                    "value": _clip(names, _SUMMARY_ROOM - 40),
                    "inline": False,
                }
            )
            break
        fields.append({"name": name, "value": value, "inline": not detailed})
        budget -= len(name) + len(value)
    return {
        "title": title,
        "description": description,
        "color": COLORS[status],
        "fields": fields + extra,
        "timestamp": _iso_utc(report.checked_at),
        "footer": {"text": footer},
    }


def _iso_utc(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


__all__ = ["DISCORD_LIMITS", "_fmt", "discord_embed", "nagios", "prometheus"]
