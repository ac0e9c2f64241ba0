"""Durations and sizes in a short human form ("1m30s", "1.5KiB"), and foreign text as one safe
printable line (``cescape``); imports nothing.

The bottom of the ground floor: ``errors`` words its messages with it, ``durations`` (which
raises ``errors.DurationError``) re-exports both, so the two never import each other.
"""

from __future__ import annotations

import math

__all__ = [
    "cescape",
    "format_duration",
    "format_seconds_short",
    "format_size",
    "format_size_short",
]


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


_C_ESCAPES = {"\\": "\\\\", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v"}
_C_ESCAPES.update({"\f": "\\f", "\r": "\\r"})


def cescape(text: str) -> str:
    r"""``text`` (a path, a command line, a check's message: any stored or foreign text) as one
    safe line: unchanged unless it needs escaping, else C-style as systemd's ``cescape``:
    ``\\`` for a backslash, ``\n``, ``\t``, ``\r`` (and ``\a``, ``\b``, ``\v``, ``\f``)
    for those controls, and ``\xHH`` for each UTF-8 byte of any other character that is not
    printable (controls such as ESC, DEL and C1, line and paragraph separators, bidi and
    other format characters, a byte that was not UTF-8, i.e. a ``surrogateescape`` code
    point, which is its own byte). Printable non-ASCII text stays as it is. Reversible (read
    the escapes as bytes, then the bytes as the text), and the text can never start a second
    line or send a terminal escape sequence. The one owner (DESIGN.md section 2): every
    human-readable renderer, and ``--json`` for text that is not valid Unicode."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        if char in _C_ESCAPES:
            out.append(_C_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            try:
                raw = char.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
                raw = char.encode("utf-8", "surrogatepass")
            out.extend(f"\\x{b:02x}" for b in raw)
    return "".join(out)
