from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliactl.durations import format_duration, format_size, parse_duration, parse_size
from reliactl.errors import DurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1.5h", 5400),
        (" 2m 30s ", 150),
        ("45", 45),
        (12, 12),
        (0.25, 0.25),
        ("1w", 604800),
    ],
)
def test_parse_duration_accepts_units_and_plain_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", "lots", "5x", "m5", "-3s", "1h-5m", "nan", "inf", True, None, [1]]
)
def test_parse_duration_rejects_what_it_does_not_understand(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [("500MB", 500_000_000), ("2GiB", 2 * 1024**3), ("10k", 10_000), ("123", 123), (42, 42)],
)
def test_parse_size_decimal_and_binary_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "2XB", "-1MB", "MB", True])
def test_parse_size_rejects_garbage(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_size(bad)


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_format_duration_round_trips_within_a_second(seconds: float) -> None:
    back = parse_duration(format_duration(seconds))
    assert math.isclose(back, seconds, abs_tol=0.5 if seconds >= 1 else 0.001)


def test_format_size_uses_binary_units() -> None:
    assert format_size(1536) == "1.5KiB"
    assert format_size(12) == "12B"


def test_short_forms_for_table_columns() -> None:
    """The `runs` table's RSS and CPU cells stay at most five characters: binary units as
    ls -sh writes them (13M, 1.5G) and CPU seconds to the hundredth below 10 s (0.02s)."""
    from reliactl.units import format_seconds_short, format_size_short

    cases = {0: "0B", 900: "900B", 1536: "1.5K", 13 * 2**20: "13M", 1023.9 * 2**20: "1.0G"}
    for size, text in {**cases, 1.5 * 2**30: "1.5G", 10 * 2**10 - 1: "10K"}.items():
        assert format_size_short(size) == text
    assert format_size_short(-1) == format_size_short(math.nan) == "-"
    seconds = {0.0213: "0.02s", 0.004: "0.00s", 12.34: "12.3s", 90: "1m30s"}
    for value, text in seconds.items():
        assert format_seconds_short(value) == text
    assert all(len(format_size_short(2**n)) <= 5 for n in range(50))
    assert format_seconds_short(math.inf) == "-"


def test_short_forms_round_a_tie_up_as_the_dashboard_does() -> None:
    """A value exactly halfway (RSS in KiB, CPU in microseconds make them common) is rounded
    up, as the dashboard's JavaScript does: `runs` and the page show the same cell."""
    from reliactl.units import format_seconds_short, format_size_short

    assert format_size_short(20.5 * 2**20) == "21M"
    assert format_size_short(1.25 * 2**20) == "1.3M"
    assert format_seconds_short(0.125) == "0.13s"
    assert format_seconds_short(12.25) == "12.3s"
    assert format_seconds_short(90.5) == "1m31s"


def _by_patterns(text: str) -> float | None:
    """What the patterns make of ``text`` (parse_duration's general path), None if nothing."""
    from reliactl import durations

    if durations._pattern(durations._NUMBER).fullmatch(text):
        return float(text)
    try:
        return durations._parse_compound(text, text)
    except DurationError:
        return None


@given(st.text(alphabet="0123456789smhdwinecSMHDWE.+- _\u0665", max_size=7))
def test_the_simple_duration_reader_agrees_with_the_patterns(text: str) -> None:
    """_simple_duration (digits alone or with one unit, read without compiling the patterns:
    issue 21 item 4) answers only where the patterns do, with the same seconds."""
    from reliactl.durations import _simple_duration

    simple = _simple_duration(text)
    if simple is not None:
        assert simple == _by_patterns(text), text


@pytest.mark.parametrize("text", ["30", "30s", "15m", "2H", "1h", "500ms", "7d", "2w", "5min"])
def test_common_durations_are_read_without_the_patterns(text: str) -> None:
    """The forms a typical configuration file holds are read without compiling a pattern,
    to the same seconds as the patterns (a fresh interpreter compiles none)."""
    import subprocess
    import sys

    from reliactl.durations import _simple_duration

    assert _simple_duration(text) == _by_patterns(text) is not None
    code = f"import reliactl.durations as d; print(d.parse_duration({text!r}), len(d._COMPILED))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, compiled = out.stdout.split()
    assert float(seconds) == _by_patterns(text) and compiled == "0"
