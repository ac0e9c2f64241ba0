"""Statuses, Nagios ranges and perfdata: the arithmetic every check relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliactl.health.model import (
    NagiosRange,
    PerfData,
    RangeError,
    Status,
    evaluate,
    parse_range,
    worst,
)

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("text", "inside_values", "alert_values"),
    [
        ("10", [0, 5, 10], [-0.1, 10.1, 1e9]),
        ("10:", [10, 11, 1e9], [9.9, 0, -5]),
        ("~:10", [-1e9, 0, 10], [10.01, 11]),
        ("10:20", [10, 15, 20], [9.99, 20.01]),
        ("@10:20", [9.99, 20.01, -3], [10, 15, 20]),
        ("1m:", [60, 61], [59]),
        ("~:1h", [3600], [3601]),
    ],
)
def test_range_syntax_matches_monitoring_plugins(
    text: str, inside_values: list[float], alert_values: list[float]
) -> None:
    rng = parse_range(text)
    assert not any(rng.alerts(v) for v in inside_values)
    assert all(rng.alerts(v) for v in alert_values)
    assert str(rng) == text


@given(finite, finite, finite)
def test_a_range_and_its_inverse_never_agree(a: float, b: float, value: float) -> None:
    low, high = sorted((a, b))
    normal = parse_range(f"{low!r}:{high!r}")
    inverted = parse_range(f"@{low!r}:{high!r}")
    assert normal.alerts(value) != inverted.alerts(value)
    assert normal.alerts(value) == (value < low or value > high)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), finite)
def test_a_plain_number_means_zero_to_it(limit: float, value: float) -> None:
    assert parse_range(limit).alerts(value) == (value < 0 or value > limit)
    assert parse_range(repr(limit)).alerts(value) == (value < 0 or value > limit)


@given(finite, finite)
def test_tilde_and_open_ends(bound: float, value: float) -> None:
    assert parse_range(f"~:{bound!r}").alerts(value) == (value > bound)
    assert parse_range(f"{bound!r}:").alerts(value) == (value < bound)


@pytest.mark.parametrize("bad", ["", "abc", "20:10", "@", "1:2:3", "10x", None, True, math.inf])
def test_bad_ranges_are_errors(bad: object) -> None:
    with pytest.raises(RangeError):
        parse_range(bad)


def test_evaluate_prefers_critical() -> None:
    w, c = parse_range(80), parse_range(90)
    assert evaluate(50, w, c) is Status.OK
    assert evaluate(85, w, c) is Status.WARNING
    assert evaluate(95, w, c) is Status.CRITICAL
    assert evaluate(95, None, None) is Status.OK


def test_worst_orders_critical_over_warning_over_unknown() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.WARNING]) is Status.WARNING
    assert worst([Status.UNKNOWN, Status.CRITICAL, Status.WARNING]) is Status.CRITICAL
    assert [s.code for s in Status] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("healthy", Status.OK),
        ("OK", Status.OK),
        ("Warning", Status.WARNING),
        ("degraded", Status.WARNING),
        ("CRITICAL", Status.CRITICAL),
        ("unhealthy", Status.CRITICAL),
        ("unknown", Status.UNKNOWN),
        (2, Status.CRITICAL),
        ("bogus", None),
        (True, None),
    ],
)
def test_status_words(word: object, status: Status | None) -> None:
    assert Status.from_word(word) is status


def test_status_prints_as_its_word() -> None:
    assert f"{Status.WARNING}" == "WARNING"


def test_perfdata_format() -> None:
    assert PerfData("cpu", 12.5, "%", "80", "95", 0, 100).nagios() == "'cpu'=12.5%;80;95;0;100"
    assert PerfData("it's", 3, "").nagios() == "'it''s'=3"
    assert PerfData("free", 1e12, "B", "", "", 0).nagios() == "'free'=1000000000000B;;;0"
    assert PerfData("t", 0.000123, "s").nagios() == "'t'=0.000123s"


def test_range_dataclass_default_is_never_negative() -> None:
    assert NagiosRange().alerts(-1) and not NagiosRange().alerts(0)
