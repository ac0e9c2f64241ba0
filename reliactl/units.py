"""Durations and sizes in a short human form ("1m30s", "1.5KiB"), and foreign text as one safe
line (``printable`` for display, ``cescape`` where a listing must be reversible), and a point
in time as JSON shows it (``iso_utc``, ``with_times``); imports nothing but ``time``.

The bottom of the ground floor: ``errors`` words its messages with it, ``durations`` (which
raises ``errors.DurationError``) re-exports both, so the two never import each other.
"""

from __future__ import annotations

import math
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "cescape",
    "format_duration",
    "format_seconds_short",
    "format_size",
    "format_size_short",
    "iso_utc",
    "printable",
    "with_times",
]


def iso_utc(epoch: float | None) -> str | None:
    """A point in time as JSON and tables show it: ISO 8601 UTC to the second, e.g.
    2026-11-28T23:57:52Z (None stays None). DESIGN.md section 2, "Times in JSON".

    Floored to the second, never rounded up into the next one (1.999 is 00:00:01, -0.5 is
    23:59:59 the day before), as ``date -d @1.999`` shows it. An instant ISO 8601 cannot
    write (NaN, infinity, past time_t, a year outside 0001..9999) is None: the caller's
    ``X_at_epoch`` still has the number, and a bad record never stops a listing."""
    if epoch is None:
        return None
    try:
        t = time.gmtime(epoch)
    except (OverflowError, OSError, ValueError):  # past time_t: a record an old bug wrote
        return None  # (silence add --start +1e20); `X_at_epoch` still has the number
    if not 1 <= t.tm_year <= 9999:  # strftime would write "31690708-07-05..." or "1-01-01..."
        return None
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
    )


def with_times(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``document`` with each epoch field in ``keys`` as ISO 8601 UTC text, and the number
    kept beside it as ``<key>_epoch`` (for scripts that compute with it)."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        if key in keys:
            out[key] = iso_utc(value)
            out[f"{key}_epoch"] = value
        else:
            out[key] = value
    return out


def format_duration(seconds: float) -> str:
    """A short human form: 0.25 -> "250ms", 90 -> "1m30s", 93784 -> "1d2h3m4s"."""
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        ms = round(seconds * 1000)
        return f"{ms}ms" if ms < 1000 else "1s"
    if seconds < 60:
        text = f"{seconds:.1f}".rstrip("0").rstrip(".")
        return f"{text}s"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(size: float) -> str:
    """A short human form in binary units: 1536 -> "1.5KiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_size_short(size: float) -> str:
    """At most five characters, binary units as ``ls -sh`` and top write them: 900 -> "900B",
    13631488 -> "13M", 1572864 -> "1.5M" (a table column of peak RSS)."""
    value = float(size)
    if not math.isfinite(value) or value < 0:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if unit == "B" and value < 1024:
            return f"{int(value)}B"
        if unit != "B":
            if value < 9.95:
                return f"{_half_up(value, 1):.1f}{unit}"
            whole = int(_half_up(value))
            if whole < 1024 or unit == "T":
                return f"{whole}{unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_seconds_short(seconds: float) -> str:
    """CPU seconds as a table column: 0.0213 -> "0.02s", 12.34 -> "12.3s", 90 -> "1m30s"."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 9.995:
        return f"{_half_up(seconds, 2):.2f}s"
    if seconds < 59.95:
        return f"{_half_up(seconds, 1):.1f}s"
    return format_duration(_half_up(seconds))


def _half_up(value: float, digits: int = 0) -> float:
    """``value`` rounded to ``digits`` decimals, a tie away from zero (for ``value >= 0``).

    The dashboard writes the same cells in JavaScript (``toFixed``, ``Math.round``), which
    round a tie up, where Python's ``round`` and ``format`` round it to even: a peak RSS of
    exactly 20.5 MiB read "20M" in ``runs`` and "21M" on the dashboard.
    """
    scale = 10.0**digits
    return math.floor(value * scale + 0.5) / scale


# What display escapes (DESIGN.md section 2), a fixed set so that output never depends on the
# Python version's Unicode tables: Cc (C0, DEL, C1), Zl and Zp (U+2028/9), the bidi controls,
# and surrogates (a byte that was not UTF-8, carried as a ``surrogateescape`` code point, or
# any other lone surrogate). Everything else is kept: ZWJ and ZWNJ (emoji sequences, Persian
# and Indic text), other format characters, private use, unassigned, emoji.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f"}
_NAMED["\r"] = "\\r"
_DISPLAY: dict[int, str] = {}  # code point -> its escape, as a str.translate table (built once)
_REVERSIBLE: dict[int, str] = {}  # the same and a backslash doubled


def _escape_table() -> dict[int, str]:
    if not _DISPLAY:
        for point in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *_BIDI):
            char = chr(point)
            _DISPLAY[point] = _NAMED.get(char) or _hex(char.encode("utf-8"))
        for point in range(0xD800, 0xE000):  # surrogates: their own byte, else their bytes
            low = 0xDC80 <= point <= 0xDCFF
            raw = bytes([point - 0xDC00]) if low else chr(point).encode("utf-8", "surrogatepass")
            _DISPLAY[point] = _hex(raw)
        _REVERSIBLE.update(_DISPLAY)
        _REVERSIBLE[ord("\\")] = "\\\\"
    return _DISPLAY


def _hex(raw: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in raw)


def printable(text: str) -> str:
    r"""``text`` (a command line, a name, a check's message, a path: any stored or foreign text)
    as one line that is safe on a terminal, for display: unchanged unless it holds a character
    that needs escaping, which is written as ``\n``, ``\t``, ``\r`` (``\a``, ``\b``, ``\v``,
    ``\f``) or ``\xHH`` for each of its UTF-8 bytes (an undecodable byte as itself). Escaped:
    C0, DEL, C1, U+2028/9 and the bidi controls, and lone surrogates (bytes that were not
    UTF-8); kept: all other text, emoji sequences (ZWJ), ZWNJ and backslashes as they are, so
    ``C:\backup`` and ``^\d+$`` copy and paste. Not reversible (``\x1b`` may be four typed
    characters): a listing that promises reversibility uses ``cescape``. The one owner of the
    display rule (DESIGN.md section 2): tables, text renderers, stderr lines, Nagios."""
    if text.isprintable():  # nothing to escape (all escaped characters are not printable)
        return text
    return text.translate(_escape_table())


def cescape(text: str) -> str:
    r"""``text`` C-escaped as systemd's ``cescape``, reversibly: as ``printable`` and a
    backslash doubled (``\\``). Read the escapes as bytes, then the bytes as the text, to get
    the original back. Only for a listing that promises that (cleanup's ``-l``/``--dry-run``
    paths and its path warnings, DESIGN.md section 7); everything else shows ``printable``."""
    if text.isprintable() and "\\" not in text:
        return text
    _escape_table()
    return text.translate(_REVERSIBLE)
