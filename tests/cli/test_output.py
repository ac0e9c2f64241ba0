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
