"""Nagios threshold ranges ("80", "10:", "~:10", "10:20", "@10:20"; numbers or durations).

The ground floor under config and health: config validates thresholds with ``parse_range``
and health evaluates them, so neither has to import the other (``health.model`` re-exports
these names, where users have imported them from).
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # frozen dataclasses without compiling code at import (issue 21, see _records)
    from reliactl._records import dataclass


__all__ = ["NagiosRange", "RangeError", "parse_range"]

_NUM = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"  # \d: any script's digits, as float()
_NUM_CHARS = frozenset("0123456789+-.eE")  # every ASCII character _NUM can match


def _is_number(text: str) -> bool:
    """``re.fullmatch(_NUM, text)``, without importing ``re`` (~2-3 ms with enum of a start
    whose configuration has a check threshold) for the commonest forms: plain ASCII digits
    ("80") and ASCII text with a character _NUM never matches ("15m"). Equal to the pattern
    everywhere (tests/test_ranges.py)."""
    if text.isascii():
        if text.isdigit():
            return True
        if not _NUM_CHARS.issuperset(text):
            return False
    import re

    return re.fullmatch(_NUM, text) is not None


class RangeError(ValueError):
    """A threshold is not valid Nagios range syntax."""


def _bound(text: str, original: str) -> float:
    text = text.strip()
    if _is_number(text):
        return float(text)
    try:
        from reliactl.durations import parse_duration

        return parse_duration(text)
    except ValueError:
        raise RangeError(
            f"expected a Nagios range such as 80, 10:, ~:10, 10:20 or @10:20, got {original!r}"
        ) from None


@dataclass(frozen=True)
class NagiosRange:
    """A threshold range; ``alerts(value)`` is True when the value is outside it (or inside, @)."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False
    text: str = ""

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        return self.text


def parse_range(value: object) -> NagiosRange:
    """Parse ``10``, ``10:``, ``~:10``, ``10:20``, ``@10:20`` (numbers or durations)."""
    if isinstance(value, bool) or value is None:
        raise RangeError(f"expected a Nagios range such as 80, 10:, ~:10 or 10:20, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise RangeError(f"expected a finite threshold, got {value!r}")
        return NagiosRange(0.0, float(value), False, _fmt(float(value)))
    if not isinstance(value, str):
        raise RangeError(f"expected a Nagios range such as 80 or 10:20, got {type(value).__name__}")
    original = value
    text = value.strip()
    if not text:
        raise RangeError("expected a Nagios range such as 80, 10:, ~:10 or 10:20, got ''")
    inside = text.startswith("@")
    if inside:
        text = text[1:]
    if ":" in text:
        low, _, high = text.partition(":")
        start = -math.inf if low.strip() == "~" else (_bound(low, original) if low.strip() else 0.0)
        end = math.inf if not high.strip() else _bound(high, original)
    else:
        start, end = 0.0, _bound(text, original)
    if math.isnan(start) or math.isnan(end) or start > end:
        raise RangeError(f"range start is above its end in {original!r}")
    return NagiosRange(start, end, inside, original.strip())


def _fmt(number: float | None) -> str:
    """A number as Nagios perfdata wants it: plain decimal, no exponent, no trailing zeros."""
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        return ""
    if float(number).is_integer() and abs(number) < 1e15:
        return str(int(number))
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
