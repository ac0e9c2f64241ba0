"""Parse and format durations ("500ms", "30s", "5m", "1h30m", "7d") and sizes ("500MB", "2GiB").

A bare number is seconds (durations) or bytes (sizes). Parsing is strict: a string that is
not entirely understood is an error, never a silent zero.
"""

from __future__ import annotations

import math

from reliactl.errors import DurationError
from reliactl.units import format_duration, format_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import re

__all__ = [
    "MAX_DURATION",
    "MAX_INTERVAL",
    "MAX_SIZE",
    "format_duration",
    "format_size",
    "parse_bounded",
    "parse_duration",
    "parse_interval",
    "parse_size",
]

# The largest values anything reliactl reads accepts, whatever their spelling (a number, "1e20",
# "9223372036854775807s", "99999999999999999999999TB"): past them a value overflows what it is
# handed to (a thread's wait and time_t, RLIMIT_CPU, a cgroup's 64-bit memory limit) or means
# "forever" without saying so. DESIGN.md section 2 documents them.
MAX_DURATION = 36500 * 86400.0  # 100 years: far below threading.TIMEOUT_MAX (~292 years)
MAX_INTERVAL = 7 * 86400.0  # a period between two looks (health --interval, --watch-health)
MAX_SIZE = 2**63 - 1  # bytes: below 8EiB, what a signed 64-bit count (and the kernel) holds

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
# re.ASCII: \d must not match other scripts' digits (U+0665 is not 5 here, whatever float() says).
# Compiled at the first string parsed, not at import (every start imports this module; one
# without a configuration file parses no duration): _pattern() caches them.
_DURATION_PART = r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|sec|min|s|m|h|d|w)"
_NUMBER = r"[+]?(\d+(?:\.\d*)?|\.\d+)(e[+-]?\d+)?"

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)"
_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(source: str) -> re.Pattern[str]:
    """``source`` compiled with IGNORECASE | ASCII, once per process. ``re`` itself is imported
    here too (~2-3 ms with enum): `cleanup --older-than 1d` reads its duration without it."""
    compiled = _COMPILED.get(source)
    if compiled is None:
        import re

        compiled = _COMPILED[source] = re.compile(source, re.IGNORECASE | re.ASCII)
    return compiled


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number, or a string like "500ms", "30s", "5m", "1h30m", "7d".

    Raises DurationError for anything else, including negative, infinite and NaN values.
    """
    seconds = _seconds(value)
    if seconds > MAX_DURATION:
        raise DurationError(f"expected a duration of at most 36500d (100 years), got {value!r}")
    return seconds


def _seconds(value: object) -> float:
    """``parse_duration`` without its 100-year bound (``parse_bounded`` words its own)."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration such as 30s, 5m or 1h30m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise DurationError("expected a duration such as 30s, 5m or 1h30m, got ''")
        simple = _simple_duration(text)
        if simple is not None:
            seconds = simple
        elif _pattern(_NUMBER).fullmatch(text):
            seconds = float(text)
        else:
            seconds = _parse_compound(text, value)
    else:
        raise DurationError(
            f"expected a duration such as 30s, 5m or 1h30m, got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"expected a non-negative finite duration, got {value!r}")
    return seconds


def parse_bounded(value: object, *, most: float = MAX_DURATION, zero: bool = False) -> float:
    """``parse_duration`` of a value with a range: above 0 (or 0 too, if ``zero``) and at
    most ``most``. The one wording of a duration out of its range, for every flag and key:
    "expected a positive duration of at most 7d, got '8d'" ("a duration" if 0 is allowed,
    no "of at most" under the 100-year bound every duration has)."""
    # Under a tighter bound than 100 years, the flag's own wording past 100 years too.
    seconds = parse_duration(value) if most >= MAX_DURATION else _seconds(value)
    if seconds > most or (seconds == 0 and not zero):
        kind = "a duration" if zero else "a positive duration"
        bound = f" of at most {format_duration(most)}" if most < MAX_DURATION else ""
        raise DurationError(f"expected {kind}{bound}, got {value!r}")
    return seconds


def parse_interval(value: object) -> float:
    """``parse_duration`` for a period between two looks at something (a watch, a probe, a
    chaos kill): at most MAX_INTERVAL (7d), which a sleeping thread can always wait."""
    return parse_bounded(value, most=MAX_INTERVAL, zero=True)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _simple_duration(text: str) -> float | None:
    """Seconds of the commonest forms, ASCII digits alone or followed by one unit ("30",
    "30s", "15m", "2H"), read without the patterns (compiling them is ~0.25 ms of a start
    whose configuration names a duration, issue 21 item 4); None for anything else, which
    the patterns read. Equal to them wherever it answers (tests/test_durations.py)."""
    digits = text.rstrip(_LETTERS)
    if not (digits.isascii() and digits.isdigit()):
        return None
    unit = text[len(digits) :]
    if not unit:
        return float(digits)
    factor = _DURATION_UNITS.get(unit.lower())
    return None if factor is None else float(digits) * factor


def _parse_compound(text: str, original: str) -> float:
    pos = 0
    total = 0.0
    compact = text.replace(" ", "")
    for match in _pattern(_DURATION_PART).finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(compact) or pos == 0:
        raise DurationError(f"expected a duration such as 30s, 5m or 1h30m, got {original!r}")
    return total


def parse_size(value: object) -> int:
    """Bytes in ``value``: a number, or a string like "500MB", "2GiB", "10k"; below 8EiB
    (MAX_SIZE), however it is spelled."""
    if isinstance(value, bool):
        raise DurationError(f"expected a size such as 500MB or 2GiB, got {value!r}")
    exact: int | None = None  # whole numbers are read exactly: 2**63 - 1 is a valid size
    if isinstance(value, int):
        exact, size = value, 0.0
    elif isinstance(value, float):
        size = value
    elif isinstance(value, str):
        match = _pattern(_SIZE).fullmatch(value.strip())
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _SIZE_UNITS:
            raise DurationError(f"expected a size such as 500MB or 2GiB, got {value!r}")
        number = match.group(1)
        if number.isdigit() and len(number) <= 40:  # longer: past any bound (and int()'s)
            exact, size = int(number) * _SIZE_UNITS[unit], 0.0
        else:
            size = float(number) * _SIZE_UNITS[unit]
    else:
        raise DurationError(f"expected a size such as 500MB or 2GiB, got {type(value).__name__}")
    if exact is None:
        if math.isnan(size) or size < 0:
            raise DurationError(f"expected a non-negative size, got {value!r}")
        exact = int(size) if size <= MAX_SIZE else MAX_SIZE + 1
    if exact < 0:
        raise DurationError(f"expected a non-negative size, got {value!r}")
    if exact > MAX_SIZE:
        raise DurationError(f"expected a size below 2^63 bytes (8388608TiB), got {value!r}")
    return exact
