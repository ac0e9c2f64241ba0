"""Stored and foreign text never reaches a terminal raw, and JSON is always valid UTF-8.

A command run as ``sh -c $'true\\n/etc/passwd\\e[2J'``, a check whose plugin prints an
escape sequence, a check named ``[red]x[/red]``: the listings (`runs`, `jobs`, `health`
plain, rich and Nagios, `history`, `breaker show`, stderr messages) show them C-escaped
(``units.cescape``, as systemd's cescape) and literally, never as a second line, a cleared
screen or rich markup. A name or argv word that is not UTF-8 is written in ``--json`` as its
cescape (``\\xff``), never as a lone ``\\udcff`` that Go's and serde_json's parsers reject.
Real subprocesses of the CLI, as an operator runs it (DESIGN.md section 2).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_runs_table import _in_terminal

from reliactl.cli.output import dumps_indented, strict_json
from reliactl.units import cescape

HOSTILE_SH = "true\n/etc/passwd\x1b[2J"
HOSTILE_SH_SHOWN = "true\\n/etc/passwd\\x1b[2J"
# A raw control a terminal obeys: C0 but tab and newline, DEL, C1 (8-bit CSI), separators.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _cli(*args: str | bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """reliactl ARGS as a real process, stdout and stderr as bytes (nothing decoded for us)."""
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,  # generous: detects a hang only
        cwd=cwd,
    )


def _safe(output: bytes) -> str:
    """``output`` decoded as strict UTF-8, asserted free of raw control characters."""
    text = output.decode("utf-8")
    assert not RAW_CONTROL.search(text), text
    return text


def test_runs_and_jobs_show_a_hostile_command_escaped_on_one_line(tmp_path: Path) -> None:
    """The reported case: a job run as ``sh -c $'true\\n/etc/passwd\\e[2J'`` is listed by
    `runs` as one row (no line "/etc/passwd", no ESC, the command recognisable as
    ``true\\n/etc/passwd\\x1b[2J``), in the plain table and in rich's terminal table; `jobs`
    shows it too without a raw control. The old table printed the command raw."""
    done = _cli("run", "--name", "evil\x1b]0;t\x07job", "--", "sh", "-c", HOSTILE_SH, cwd=tmp_path)
    assert done.returncode == 127, done.stderr  # sh: "/etc/passwd\e[2J": not found
    ours = [line for line in done.stderr.split(b"\n") if b" reliactl: " in line]
    assert ours and _safe(b"\n".join(ours))  # the job's own stderr is passed through as is
    plain = _safe(_cli("runs", cwd=tmp_path).stdout)
    lines = plain.splitlines()
    assert len(lines) == 2, lines  # the header and the one run
    assert "/etc/passwd" not in lines and HOSTILE_SH_SHOWN in lines[1]
    assert "evil\\x1b]0;t\\ajob" in lines[1]
    terminal = _in_terminal("runs", columns=200)  # rich's own SGR codes are stripped
    assert "\x1b" not in terminal and "\x07" not in terminal
    assert HOSTILE_SH_SHOWN in terminal and "/etc/passwd" not in terminal.splitlines()
    jobs = _cli("jobs", cwd=tmp_path)
    assert "evil\\x1b]0;t\\ajob" in _safe(jobs.stdout) + _safe(jobs.stderr)


# Check names are validated (letters, digits, _ . -); a plugin's output is foreign text.
MARKUP = "[red]x[/red] [link=https://example.invalid]y[/link] :warning:"
# (a plugin's first line is its message: \r, \n and \u2028 end it before anyone shows it)
MESSAGE = f"CRIT {MARKUP} \x1b[2J\x1b]0;title\x07 \x9b31m done"
SHOWN_MESSAGE = f"CRIT {MARKUP} \\x1b[2J\\x1b]0;title\\a \\xc2\\x9b31m done"


def _hostile_checks(tmp_path: Path) -> None:
    plugin = f"import sys; print({MESSAGE!r}); sys.exit(2)"
    (tmp_path / "reliactl.yaml").write_text(
        "health_monitor:\n"
        "  system_checks: []\n"
        "  checks:\n"
        "    - name: plugin\n"
        "      kind: command\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(plugin)}]\n"
    )


def test_health_plain_nagios_rich_and_history_escape_a_plugins_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command check whose plugin prints rich markup, ESC, BEL and the C1 CSI: `health`
    (plain), `health --format nagios` (one line: status and the message, then perfdata),
    `health` on a terminal (rich) and `history` show the message C-escaped and the markup
    literally (no colour, no hyperlink, no emoji)."""
    _hostile_checks(tmp_path)
    plain = _cli("health", cwd=tmp_path)
    assert plain.returncode == 2, plain.stderr
    text = _safe(plain.stdout)
    assert SHOWN_MESSAGE in text
    nagios = _safe(_cli("health", "--format", "nagios", cwd=tmp_path).stdout)
    assert nagios.count("\n") == 1 and nagios.startswith("CRITICAL: ") and SHOWN_MESSAGE in nagios
    monkeypatch.chdir(tmp_path)  # the terminal run reads the same ./reliactl.yaml
    rich = _in_terminal("health", columns=300)
    assert "\x1b]8;" not in rich and "⚠" not in rich  # no OSC 8 hyperlink, no emoji
    assert SHOWN_MESSAGE in rich.replace("\n", "")
    history = _cli("health", "history", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert SHOWN_MESSAGE in _safe(history.stdout)


def test_stderr_messages_escape_foreign_names(tmp_path: Path) -> None:
    """A breaker named with a newline and ESC (valid UTF-8, so accepted): what `breaker
    trip`/`show`/`reset` say about it, on stdout and stderr, is one escaped line each."""
    name = "api\nfake line\x1b[2J"
    for args in (["trip", name], ["show", name], ["reset", name]):
        done = _cli("breaker", *args, cwd=tmp_path)
        out, err = _safe(done.stdout), _safe(done.stderr)
        assert "api\\nfake line\\x1b[2J" in out + err, (args, out, err)
        assert not any(line.startswith("fake line") for line in (out + err).splitlines())


def _no_surrogate(text: str) -> None:
    """``text`` is strict UTF-8 JSON: no raw lone surrogate, and none escaped either (a
    ``\\udcff`` without its pair parses to one, which re-encoding as UTF-8 refuses)."""
    text.encode("utf-8")
    json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")


def test_json_of_non_utf8_argv_and_file_names_is_strict_utf8(tmp_path: Path) -> None:
    """`runs --json` of a command with a non-UTF-8 argv word, `cleanup --json` of a non-UTF-8
    file name: strict UTF-8, json.loads accepts it, no lone surrogate (escaped or raw), and
    the byte shows as ``\\xff``, the plain listing's escape."""
    done = _cli("run", "--", "true", b"arg-\xff", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = _cli("runs", "--json", cwd=tmp_path).stdout.decode("utf-8")
    _no_surrogate(runs)
    [record] = json.loads(runs)["runs"]
    assert "arg-\\xff" in record["command"]
    # the record holds the text `arg-\xff`: the table shows that text C-escaped
    assert "arg-\\\\xff" in _safe(_cli("runs", cwd=tmp_path).stdout)
    root = tmp_path / "root"
    root.mkdir()
    name = os.path.join(os.fsencode(root), b"old-\xfe")
    with open(name, "wb"):
        pass
    os.utime(name, (1_000_000, 1_000_000))
    listed = _cli(
        "cleanup",
        "-n",
        "--json",
        "--age-by",
        "mtime",
        "--older-than",
        "1d",
        str(root),
        cwd=tmp_path,
    ).stdout.decode("utf-8")
    _no_surrogate(listed)
    [doc] = json.loads(listed)["roots"]
    assert doc["removed"] == [f"{root}/old-\\xfe"]


@pytest.mark.parametrize(
    "document",
    [
        {"path": "/t/\udcff", "keys": {"k\udc80": ["\udcfe\\x", 1, 2.5, True, None]}},
        {"emoji": "😀 é", "fine": "a\\ud800"},  # a valid pair and a literal backslash stay
        {"lone": "\ud800", "path": Path("/p/\udcff")},  # not an escaped byte; via default=str
    ],
    ids=["escaped-bytes", "valid-text", "lone-and-default"],
)
def test_strict_json_is_valid_utf8_and_escapes_only_invalid_text(document: Any) -> None:
    """``strict_json`` (every JSON writer's owner): both the indented and the one-line form
    parse and encode as UTF-8; a string holding undecodable bytes becomes its cescape; any
    other string is unchanged (a document without one is written exactly as before)."""
    for dumps in (dumps_indented, lambda d: json.dumps(d, default=str, separators=(",", ":"))):
        text = strict_json(document, dumps)
        _no_surrogate(text)
        parsed = json.loads(text)
        for key, value in document.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    value = cescape(value)
                assert parsed[key] == value
    if "emoji" in document:
        assert strict_json(document, dumps_indented) == dumps_indented(document)
    if "keys" in document:
        assert json.loads(strict_json(document, dumps_indented))["keys"] == {
            "k\\x80": ["\\xfe\\\\x", 1, 2.5, True, None]
        }
    if "lone" in document:
        assert json.loads(strict_json(document, dumps_indented))["path"] == "/p/\\xff"


def test_cescape_takes_any_lone_surrogate() -> None:
    """A lone surrogate that is no escaped byte (``\\ud800``, from a library's text) is its
    UTF-8-ish bytes, not a crash (the old cescape raised UnicodeEncodeError)."""
    assert cescape("a\ud800b") == "a\\xed\\xa0\\x80b"
    assert cescape("\udcff") == "\\xff"


def test_config_show_quotes_a_hostile_key(tmp_path: Path) -> None:
    """A request header named with ESC and a newline (a mapping key `config show` used to
    print raw, so the file could draw a fake line into the effective configuration): shown
    as a quoted YAML string, on its line, with its value and source."""
    (tmp_path / "reliactl.yaml").write_text(
        "health_monitor:\n"
        "  system_checks: []\n"
        "  checks:\n"
        "    - name: web\n"
        "      kind: http\n"
        "      url: http://127.0.0.1:1/\n"
        "      headers:\n"
        '        "X-Evil\\e[2J\\nfake: 1": "v\\e]0;t\\a"\n'
    )
    shown = _safe(_cli("config", "show", cwd=tmp_path).stdout)
    [line] = [line for line in shown.splitlines() if "X-Evil" in line]
    assert line.strip().startswith('"X-Evil\\u001b[2J\\nfake: 1": ')
    assert not any(line.strip().startswith("fake") for line in shown.splitlines())
