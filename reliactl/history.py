"""Health history: record each health run in the state store, read it back, draw it.

Every health run (``reliactl health``, ``--watch``, ``reliactl serve``'s loop) calls
:func:`record_report`: one raw point per check (status and value), a status-change event when
a check's status differs from the last recorded one, then a compaction that folds raw points
older than ``state.history_raw`` into ``state.history_bucket`` aggregates and drops what is
older than ``state.history_retention``. So the store's size is bounded by the retention, not
by how long reliactl has run.

:func:`history_document` is the one JSON document of ``reliactl health history --json`` and
serve's ``/api/history``; :func:`chart` draws one check as plain text (no colour, fits 80
columns). This module sits in the command layer (the CLI and serve import it; the core never
does) and never prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from reliactl.state.base import (
    HealthAggregate,
    HealthEvent,
    HealthPoint,
    aggregate_points,
    worst_status,
)
from reliactl.units import iso_utc, printable, with_times

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.config import StateConfig
    from reliactl.health.model import HealthReport
    from reliactl.state import StateStore

# How far back a history may be asked for: `health history --since` and serve's
# /api/history?since= (``parse_since``, the one owner of this bound).
MAX_SINCE = 366 * 86400.0

# The document's "version" (DESIGN.md section 2): 2 since its times follow "Times in JSON" (each
# point in time `X_at` ISO text with `X_at_epoch` beside it; version 1 had `t` epoch numbers,
# an aggregate's `start`, and the window as `since`/`now` text alone).
JSON_VERSION = 2
LAST_KEY = "health:history:last"  # kv record: each check's last status, unit and thresholds
STATUS_MARK = {"OK": " ", "WARNING": "w", "CRITICAL": "C", "UNKNOWN": "?"}


def parse_since(value: object) -> float:
    """How far back a history is asked for, in seconds: a positive duration of at most
    MAX_SINCE (366d), else a DurationError in ``durations.parse_bounded``'s one wording
    ("expected a positive duration of at most 366d, got '0'"): serve's
    /api/history?since=. `health history --since` checks the same bound with the same parser
    through ``_fastrt.duration_option(most=MAX_SINCE)``; tests/serve pins the two wordings
    equal."""
    from reliactl.durations import parse_bounded

    return parse_bounded(value, most=MAX_SINCE)


def _iso(epoch: float) -> str:
    return iso_utc(epoch) or "?"


def record_report(
    store: StateStore, report: HealthReport, state: StateConfig, *, now: float | None = None
) -> list[HealthEvent]:
    """Record one health run: points, status changes (returned), then compaction."""
    at = report.checked_at
    metrics = list(report.metrics.values())
    store.add_health_points(
        [HealthPoint(m.name, at, m.status.value, _finite(m.value)) for m in metrics]
    )
    changes: list[HealthEvent] = []
    clock = at if now is None else now
    # Compaction has work only once per bucket: the run that first sees a new cutoff does it.
    cutoff = ((clock - state.history_raw) // state.history_bucket) * state.history_bucket
    compact: list[bool] = []

    def step(prev: dict[str, Any] | None) -> dict[str, Any]:
        changes.clear()  # the store may call this again (Redis: a lost WATCH race)
        compact.clear()
        done = (prev or {}).get("compacted")
        if not isinstance(done, (int, float)) or done < cutoff:
            compact.append(True)
        checks = dict((prev or {}).get("checks") or {})
        for m in metrics:
            before = checks.get(m.name) or {}
            if before.get("status") != m.status.value:
                changes.append(
                    HealthEvent(
                        m.name, at, str(before.get("status") or ""), m.status.value, m.message
                    )
                )
            checks[m.name] = {
                "status": m.status.value,
                "unit": m.unit,
                "warn": m.warn,
                "critical": m.critical,
                "at": at,
            }
        return {"checks": checks, "compacted": cutoff if compact else done}

    store.update("kv", LAST_KEY, step)
    for event in changes:
        store.add_health_event(event)
    if compact:
        store.compact_health(
            clock, state.history_raw, state.history_retention, state.history_bucket
        )
    return changes


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def history_document(
    store: StateStore,
    checks: Sequence[str] | None,
    since: float,
    *,
    now: float | None = None,
    max_points: int | None = None,
) -> dict[str, Any]:
    """The history of ``checks`` (all with history when empty) since ``since`` (epoch).

    Each check has its raw points and its older aggregates, oldest first; with
    ``max_points`` a series longer than that is folded into that many buckets (the dashboard's
    sparklines). ``events`` are the status changes, newest first. Times as every JSON
    document has them (DESIGN.md section 2): each point's and event's ``at`` and each
    aggregate's ``start_at`` ISO 8601 UTC text with ``X_epoch`` beside it; the window is
    ``start_at``..``end_at``. "version" is ``JSON_VERSION`` (2).
    """
    now = time.time() if now is None else now
    last = (store.get("kv", LAST_KEY) or {}).get("checks") or {}
    names = list(checks) if checks else store.health_checks()
    out = []
    for name in names:
        points = store.health_points(name, since)
        aggregates = store.health_aggregates(name, since)
        if max_points is not None and len(points) + len(aggregates) > max_points:
            bucket = max(1.0, math.ceil((now - since) / max_points))
            folded = [HealthPoint(name, a.start, a.worst, a.max) for a in aggregates] + list(points)
            aggregates = aggregate_points(folded, bucket)
            points = []
        info = last.get(name) or {}
        out.append(
            {
                "name": name,
                "unit": info.get("unit", ""),
                "warn": info.get("warn"),
                "critical": info.get("critical"),
                "status": info.get("status"),
                "aggregates": [_aggregate_dict(a) for a in aggregates],
                "points": [
                    with_times({"at": p.at, "status": p.status, "value": p.value}, "at")
                    for p in points
                ],
            }
        )
    events: list[HealthEvent] = []
    for each in [*names] if checks else [None]:
        events += store.health_events(each, since, limit=500)
    events.sort(key=lambda e: -e.at)
    window = {"start_at": since, "end_at": now}
    return {
        "version": JSON_VERSION,
        **with_times(window, "start_at", "end_at"),
        "checks": out,
        "events": [
            with_times(
                {
                    "check": e.check,
                    "at": e.at,
                    "from": e.from_status or None,
                    "to": e.to_status,
                    "message": e.message,
                },
                "at",
            )
            for e in events
        ],
    }


def _aggregate_dict(a: HealthAggregate) -> dict[str, Any]:
    return {
        **with_times({"start_at": a.start}, "start_at"),
        "seconds": a.seconds,
        "count": a.count,
        "min": a.min,
        "max": a.max,
        "mean": a.mean,
        "worst": a.worst,
    }


# --------------------------------------------------------------------------- the chart


def _series(check: dict[str, Any]) -> list[tuple[float, float, float | None, str]]:
    """(start, end, value, status) of every aggregate and point, oldest first."""
    out: list[tuple[float, float, float | None, str]] = []
    for a in check["aggregates"]:
        start = a["start_at_epoch"]
        out.append((start, start + a["seconds"], a["max"], a["worst"]))
    for p in check["points"]:
        out.append((p["at_epoch"], p["at_epoch"], p["value"], p["status"]))
    return out


def _bounds(text: str | None) -> list[float]:
    """The finite bounds of a Nagios range worth drawing (not the implied 0 start)."""
    if not text:
        return []
    from reliactl.ranges import RangeError, parse_range

    try:
        r = parse_range(text)
    except RangeError:
        return []
    out = [r.end] if math.isfinite(r.end) else []
    if math.isfinite(r.start) and r.start != 0:
        out.append(r.start)
    return out


def _number(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


def chart(
    check: dict[str, Any], since: float, now: float, *, width: int = 80, height: int = 8
) -> str:
    """One check of a history document as plain text, ``width`` columns wide.

    Each column covers an equal slice of time and shows the slice's highest value as a bar;
    the warning (``-``) and critical (``=``) thresholds are drawn across; the line under the
    axis marks each slice's worst status (``w`` WARNING, ``C`` CRITICAL, ``?`` UNKNOWN), so
    the chart says the status without colour.
    """
    label_w = 9
    cols = max(10, width - label_w - 1)
    series = _series(check)
    unit = check.get("unit") or ""
    # stored text (a check's name, its thresholds) is C-escaped: one line, no terminal escapes
    head = printable(f"{check['name']}" + (f" ({unit})" if unit else ""))
    if check.get("status"):
        head += f"  now {printable(str(check['status']))}"
    for word, key in (("warn", "warn"), ("crit", "critical")):
        if check.get(key):
            head += f"  {word} {printable(str(check[key]))}"
    if not series:
        return f"{head}\n  no history since {_iso(since)}"
    span = max(1.0, now - since)
    values: list[float | None] = [None] * cols
    marks = [" "] * cols
    for start, end, value, status in series:
        first = int((max(start, since) - since) / span * cols)
        last = int((min(end, now) - since) / span * cols)
        for col in range(max(0, first), min(cols - 1, max(first, last)) + 1):
            if value is not None:
                current = values[col]
                values[col] = value if current is None else max(current, value)
            marks[col] = STATUS_MARK.get(worst_status((status, _status_of(marks[col]))), "?")
    warn, crit = _bounds(check.get("warn")), _bounds(check.get("critical"))
    known = [v for v in values if v is not None]
    every = known + warn + crit
    low = min([0.0, *every]) if every else 0.0
    high = max(every) if every else 1.0
    if high <= low:
        high = low + 1.0
    step = (high - low) / height
    rows = []
    for r in range(height, 0, -1):
        top, bottom = low + r * step, low + (r - 1) * step
        line = []
        for value in values:
            if value is not None and value > bottom:
                line.append("█" if value >= top or r == 1 else "▄")
            elif any(bottom < t <= top for t in crit):
                line.append("=")
            elif any(bottom < t <= top for t in warn):
                line.append("-")
            else:
                line.append(" ")
        rows.append(f"{_number(top):>{label_w}}┤" + "".join(line))
    rows.append(" " * label_w + "└" + "".join(marks))
    left, right = _clock(since, span), "now"
    gap = max(1, cols - len(left) - len(right))
    rows.append(" " * (label_w + 1) + left + " " * gap + right)
    summary = ""
    if known:
        summary = f"  min {_number(min(known))}  max {_number(max(known))}"
    return "\n".join([head + summary, *rows])


def _status_of(mark: str) -> str:
    for status, m in STATUS_MARK.items():
        if m == mark:
            return status
    return "UNKNOWN"


def _clock(epoch: float, span: float) -> str:
    fmt = "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(epoch))


def events_text(document: dict[str, Any], limit: int = 20) -> str:
    """The status changes of a history document, newest first, one per line."""
    events = document["events"]
    if not events:
        return "no status changes"
    lines = ["status changes (newest first):"]
    for e in events[:limit]:
        before = e["from"] or "(first run)"
        line = f"  {e['at']}  {e['check']}: {before} -> {e['to']}  {e['message']}"
        lines.append(printable(line[:200]))  # cut, then escaped: never half an escape
    if len(events) > limit:
        lines.append(f"  ... and {len(events) - limit} more (--json has them all)")
    return "\n".join(lines)
