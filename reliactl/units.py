"""Durations and sizes in a short human form ("1m30s", "1.5KiB"); imports nothing.

The bottom of the ground floor: ``errors`` words its messages with it, ``durations`` (which
raises ``errors.DurationError``) re-exports both, so the two never import each other.
"""

from __future__ import annotations

import math

__all__ = ["format_duration", "format_size"]


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
