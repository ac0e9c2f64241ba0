"""The values health checks produce: statuses, Nagios ranges, perfdata, metrics and reports.

Pure data and arithmetic, no I/O and no heavy imports: the CLI, the config validator and the
library all share it.

Nagios range syntax (monitoring-plugins' "THRESHOLDS AND RANGES")::

    10        alert if value < 0 or > 10          (outside 0..10)
    10:       alert if value < 10                 (outside 10..inf)
    ~:10      alert if value > 10                 (outside -inf..10)
    10:20     alert if value < 10 or > 20         (outside 10..20)
    @10:20    alert if 10 <= value <= 20          (inside 10..20)

A bound may also be a duration ("90s", "10m"), read as seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import Enum

from reliactl.ranges import NagiosRange, RangeError, _fmt, _is_number, parse_range

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, field

    # The records' string annotations name Any: at run time it stands for object (any value),
    # so typing.get_type_hints and pydantic resolve them without this module importing typing.
    Any = object


class Status(str, Enum):
    """A check's state; ``code`` is the Nagios exit code, ``severity`` orders "worst"."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def code(self) -> int:
        return _CODES[self]

    @property
    def severity(self) -> int:
        """OK < UNKNOWN < WARNING < CRITICAL (monitoring-plugins' max_state_alt)."""
        return _SEVERITY[self]

    @property
    def is_ok(self) -> bool:
        return self is Status.OK

    @classmethod
    def from_word(cls, word: object) -> Status | None:
        """A status from a word as custom checks return it ("healthy", "warning", 2, ...)."""
        if isinstance(word, Status):
            return word
        if isinstance(word, bool):
            return None
        if isinstance(word, int):
            return _BY_CODE.get(word)
        if not isinstance(word, str):
            return None
        return _WORDS.get(word.strip().lower())


_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
_BY_CODE = {code: status for status, code in _CODES.items()}
_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}
_WORDS = {
    "ok": Status.OK,
    "healthy": Status.OK,
    "good": Status.OK,
    "up": Status.OK,
    "pass": Status.OK,
    "passed": Status.OK,
    "warning": Status.WARNING,
    "warn": Status.WARNING,
    "degraded": Status.WARNING,
    "critical": Status.CRITICAL,
    "crit": Status.CRITICAL,
    "unhealthy": Status.CRITICAL,
    "error": Status.CRITICAL,
    "fail": Status.CRITICAL,
    "failed": Status.CRITICAL,
    "down": Status.CRITICAL,
    "unknown": Status.UNKNOWN,
}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (OK for none)."""
    result = Status.OK
    for status in statuses:
        if status.severity > result.severity:
            result = status
    return result


# --------------------------------------------------------------------------- ranges

# Range parsing lives below config and health, in reliactl.ranges (re-exported here).


def evaluate(value: float, warn: NagiosRange | None, critical: NagiosRange | None) -> Status:
    """CRITICAL if ``critical`` alerts, else WARNING if ``warn`` alerts, else OK."""
    if critical is not None and critical.alerts(value):
        return Status.CRITICAL
    if warn is not None and warn.alerts(value):
        return Status.WARNING
    return Status.OK


# --------------------------------------------------------------------------- results


_TIME_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}  # seconds -> the UOM of a time value
# Every character str.splitlines() breaks a line at, and the other control characters, as a
# str.translate table (a pattern compiled at import cost every `health` start ~0.3 ms).
# C1 (8-bit CSI) and the bidi controls too, as units.printable escapes them for display.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_NOT_ONE_LINE = dict.fromkeys((*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *_BIDI), " ")


def one_line(text: str) -> str:
    """``text`` with every line break and control character a space: one line of plugin output."""
    return text.translate(_NOT_ONE_LINE)


def perf_range(text: str, uom: str = "") -> str:
    """A threshold as perfdata wants it: a Nagios range of plain numbers in the value's UOM.

    A duration bound is converted to the value's time unit (``500ms`` for a value in ``s``
    is ``0.5``); numbers are kept as they are. Text that is not a range gives ``""`` (an
    empty field), never something a perfdata parser would choke on.
    """
    text = text.strip()
    if not text:
        return ""
    try:
        parsed = parse_range(text)
    except RangeError:
        return ""
    scale = _TIME_SCALE.get(uom, 1.0)

    def bound(part: str, default: float) -> float:
        part = part.strip()
        if part == "~":
            return -math.inf
        if not part:
            return default
        if _is_number(part):
            return float(part)
        from reliactl.durations import parse_duration

        return parse_duration(part) * scale

    body = text[1:] if parsed.inside else text
    if ":" in body:
        low, _, high = body.partition(":")
        start, end = bound(low, 0.0), bound(high, math.inf)
    else:
        start, end = 0.0, bound(body, math.inf)
    if start == 0 and math.isfinite(end):
        out = _fmt(end)
    else:
        low_text = "~" if start == -math.inf else _fmt(start)
        out = f"{low_text}:{_fmt(end) if math.isfinite(end) else ''}"
    return f"@{out}" if parsed.inside else out


@dataclass(frozen=True)
class PerfData:
    """One performance datum: ``'label'=value[UOM];warn;crit;min;max``.

    ``value`` NaN means unknown (a plugin's ``U``); ``warn``/``crit`` are Nagios ranges,
    numbers or durations.
    """

    label: str
    value: float
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | None = None
    max: float | None = None

    def nagios(self) -> str:
        """The datum per the plugin guidelines: a quoted label without ``=`` or line breaks
        (``'`` doubled), ``U`` for a value that is not a finite number, thresholds in the
        value's own unit."""
        label = one_line(self.label).replace("=", "_").replace("|", "/").replace("'", "''")
        known = math.isfinite(self.value)
        fields = [
            f"'{label}'={_fmt(self.value)}{self.uom}" if known else f"'{label}'=U",
            perf_range(self.warn, self.uom),
            perf_range(self.crit, self.uom),
            _fmt(self.min),
            _fmt(self.max),
        ]
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()
        return ";".join(fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value if math.isfinite(self.value) else None,
            "uom": self.uom,
            "warn": self.warn or None,
            "crit": self.crit or None,
            "min": self.min,
            "max": self.max,
        }


@dataclass(frozen=True)
class HealthMetric:
    """The result of one check. ``value`` is in ``unit`` ("%", "s", "B", "MB" or "")."""

    name: str
    status: Status
    value: float | None
    message: str
    unit: str = ""
    kind: str = "custom"
    warn: str | None = None
    critical: str | None = None
    perfdata: tuple[PerfData, ...] = ()
    duration: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status.value,
            "code": self.status.code,
            "value": self.value,
            "unit": self.unit,
            "message": self.message,
            "warn": self.warn,
            "critical": self.critical,
            "perfdata": [p.to_dict() for p in self.perfdata],
            "duration": round(self.duration, 6),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class HealthReport:
    """All checks of one run. ``overall_status`` is the worst; ``exit_code`` its Nagios code."""

    overall_status: Status
    metrics: Mapping[str, HealthMetric]
    checked_at: float
    duration: float

    @property
    def exit_code(self) -> int:
        return self.overall_status.code

    @property
    def problems(self) -> list[HealthMetric]:
        return [m for m in self.metrics.values() if not m.status.is_ok]

    def to_dict(self) -> dict[str, Any]:
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.checked_at))
        counts = {s.value: 0 for s in Status}
        for metric in self.metrics.values():
            counts[metric.status.value] += 1
        return {
            "status": self.overall_status.value,
            "exit_code": self.exit_code,
            "checked_at": stamp,
            "duration": round(self.duration, 6),
            "counts": counts,
            "checks": [m.to_dict() for m in self.metrics.values()],
        }
