from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from reliactl.cli import output
from reliactl.cli.exitcodes import EXIT_CODE_TABLE, ExitCode, exit_code_for
from reliactl.errors import (
    CircuitOpenError,
    ConfigError,
    LockBusyError,
    RateLimitExceeded,
    StateError,
)


def test_plain_table_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    output.table(["name", "state"], [["api", "open"], ["database", "closed"]])
    out = capsys.readouterr().out
    assert out.splitlines() == ["name      state", "api       open", "database  closed"]
    assert "\x1b[" not in out


def test_rich_table_on_a_terminal_has_no_color_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = Tty()
    monkeypatch.setattr(sys, "stdout", fake)
    monkeypatch.setenv("NO_COLOR", "1")
    output.table(["name"], [["api"]], styles=[["red"]])
    assert "api" in fake.getvalue() and "\x1b[31m" not in fake.getvalue()


def test_json_document_has_version_first(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit_json({"answer": 42})
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["version", "answer"] and doc["version"] == output.JSON_VERSION


def test_messages_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("boom")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "reliactl: error: boom\n"


def test_utc_stamp_is_iso8601_utc() -> None:
    assert output.utc_stamp(0.25) == "1970-01-01T00:00:00.250Z"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError([]), 78),
        (CircuitOpenError("api", 3), 69),
        (LockBusyError("busy"), 75),
        (RateLimitExceeded("slow down"), 75),
        (StateError("broken"), 125),
    ],
)
def test_errors_map_to_the_documented_exit_codes(exc: Exception, code: int) -> None:
    assert exit_code_for(exc) == code


def test_exit_code_table_matches_the_enum() -> None:
    documented = " ".join(code for code, _ in EXIT_CODE_TABLE)
    for member in (ExitCode.CONFIG, ExitCode.TEMPFAIL, ExitCode.UNAVAILABLE, ExitCode.TIMEOUT):
        assert str(int(member)) in documented


def test_help_is_plain_text_when_piped() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "Usage:" in result.stdout and "╭" not in result.stdout
    assert "78:  configuration invalid" in result.stdout


def test_the_fast_indented_json_is_json_dumps_character_for_character() -> None:
    """emit_json's own encoder (the standard one falls back to pure Python with indent: ~35 ms
    of a 500-check `health --json`, issue 21) writes exactly what json.dumps(indent=2,
    default=str) writes: escapes, non-ASCII, NaN and infinities, empty and nested
    containers, tuples, non-string keys, enums, and values only str() can show."""
    import enum
    import math
    from pathlib import Path

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str, enum.Enum):
        OK = "OK"

    document = {
        "version": 1,
        "text": 'quote " backslash \\ tab \t newline \n nul \x00 é 🚀 \u2028',
        "numbers": [0, -1, 2**70, 1.5, 1e-05, 1e300, -0.0, math.nan, math.inf, -math.inf],
        "flags": [True, False, None],
        "empty": {"list": [], "dict": {}, "tuple": (), "string": ""},
        "nested": [[[]], [{}], {"a": [{"b": {"c": [1, (2, 3)]}}]}],
        7: "int key",
        2.5: "float key",
        True: "bool key",
        None: "none key",
        "enums": [Level.HIGH, Name.OK],
        "path": Path("/tmp/x"),
        "set": {3},
        "bytes": b"raw",
    }
    expected = json.dumps(document, indent=2, default=str)
    assert output.dumps_indented(document) == expected
    assert output.dumps_indented([]) == "[]" and output.dumps_indented("x") == '"x"'
    with pytest.raises(TypeError):
        output.dumps_indented({(1, 2): "tuple key"})


def test_a_health_document_is_written_as_json_dumps_writes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real health report's --json document (checks, perfdata, times) is byte-identical to
    the standard library's indented output (tests of the format pin that text)."""
    from reliactl.cli.health import health_document
    from reliactl.health.model import HealthMetric, HealthReport, PerfData, Status

    metrics = {
        f"web{i}": HealthMetric(
            name=f"web{i}",
            status=Status.OK if i % 3 else Status.CRITICAL,
            value=0.2 + i / 1000,
            unit="s",
            message=f"HTTP 200 in {200 + i}ms",
            perfdata=(PerfData(f"web{i}:time", 0.2 + i / 1000, "s", "1", "3"),),
            duration=0.25,
            details={"status_code": 200, "nan": float("nan")},
        )
        for i in range(50)
    }
    report = HealthReport(
        overall_status=Status.CRITICAL, metrics=metrics, checked_at=1796052789.25, duration=0.5
    )
    document = health_document(report, [], (), {})
    output.emit_json(document)
    expected = json.dumps({"version": output.JSON_VERSION, **document}, indent=2, default=str)
    assert capsys.readouterr().out == expected + "\n"


def test_a_big_terminal_table_is_laid_out_plainly_with_colors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, a table of more than RICH_MAX_ROWS rows (500 health checks took rich
    0.6-2.5 s, issue 21) is the plain aligned layout, its styled cells in ANSI colors and the
    columns aligned as without them; NO_COLOR drops the colors; a small one is still rich's."""
    import re

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    rows = [[f"web{i}", "OK" if i % 2 else "CRITICAL", "HTTP 200"] for i in range(201)]
    styles = [[None, "green" if i % 2 else "bold red", None] for i in range(201)]
    monkeypatch.delenv("NO_COLOR", raising=False)
    fake = Tty()
    monkeypatch.setattr(sys, "stdout", fake)
    output.table(["CHECK", "STATUS", "MESSAGE"], rows, styles=styles)
    text = fake.getvalue()
    assert "\x1b[1;31mCRITICAL\x1b[0m" in text and "\x1b[32mOK\x1b[0m" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain == output.plain_table(["CHECK", "STATUS", "MESSAGE"], rows) + "\n"
    assert plain.splitlines()[2] == "web1    OK        HTTP 200"
    monkeypatch.setenv("NO_COLOR", "1")
    fake = Tty()
    monkeypatch.setattr(sys, "stdout", fake)
    output.table(["CHECK", "STATUS", "MESSAGE"], rows, styles=styles)
    assert fake.getvalue() == plain
    fake = Tty()
    monkeypatch.setattr(sys, "stdout", fake)
    output.table(["CHECK", "STATUS", "MESSAGE"], rows[:3], styles=styles[:3])
    assert "┃" in fake.getvalue() or "│" in fake.getvalue()  # rich's box
