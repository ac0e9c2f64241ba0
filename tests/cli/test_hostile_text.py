"""Stored and foreign text never reaches a terminal raw, and JSON is always valid UTF-8.

A command run as ``sh -c $'true\\n/etc/passwd\\e[2J'``, a check whose plugin prints an
escape sequence, a check named ``[red]x[/red]``: the listings (`runs`, `jobs`, `health`
plain, rich and Nagios, `history`, `breaker show`, stderr messages) show them escaped
(``units.printable``: controls, C1, separators and bidi controls as ``\\n``, ``\\xHH``;
backslashes, emoji sequences and other text as they are) and literally, never as a second
line, a cleared screen or rich markup. A string that is not valid Unicode is written in
``--json`` as the array of its bytes, never as a lone ``\\udcff`` that Go's and
serde_json's parsers reject. Real subprocesses of the CLI, as an operator runs it
(DESIGN.md section 2).
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
from httpserver import FlakyServer, Reply
from test_runs_table import _in_terminal

from reliactl.cli.output import _lone_surrogate_escape, dumps_indented, strict_json
from reliactl.units import cescape, printable

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
    file name: strict UTF-8, json.loads accepts it, no lone surrogate (escaped or raw). The
    run history stores the word as it always did (the text ``\\udcff``, so a job's history
    does not split across the upgrade), and `runs` shows that text once, not re-escaped
    (``\\\\udcff``); the file name is the array of its bytes."""
    done = _cli("run", "--", "true", b"arg-\xff", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = _cli("runs", "--json", cwd=tmp_path).stdout.decode("utf-8")
    _no_surrogate(runs)
    [record] = json.loads(runs)["runs"]
    assert record["command"] == "true arg-\\udcff"  # the stored form of every release
    table = _safe(_cli("runs", cwd=tmp_path).stdout)
    assert "true arg-\\udcff" in table and "\\\\" not in table
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
    assert doc["removed"] == [list(name)]


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
    parse and encode as UTF-8; a string holding undecodable bytes becomes the array of its
    bytes (journald's rule), a key that does (it cannot be an array) its cescape; any other
    string is unchanged (a document without one is written exactly as before)."""
    for dumps in (dumps_indented, lambda d: json.dumps(d, default=str, separators=(",", ":"))):
        text = strict_json(document, dumps)
        _no_surrogate(text)
        parsed = json.loads(text)
        for key, value in document.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    value = list(
                        value.encode(
                            "utf-8", "surrogateescape" if key != "lone" else "surrogatepass"
                        )
                    )
                assert parsed[key] == value
    if "emoji" in document:
        assert strict_json(document, dumps_indented) == dumps_indented(document)
    if "keys" in document:
        assert json.loads(strict_json(document, dumps_indented))["keys"] == {
            "k\\x80": [[0xFE, 0x5C, 0x78], 1, 2.5, True, None]
        }
    if "lone" in document:
        assert json.loads(strict_json(document, dumps_indented))["path"] == list(b"/p/\xff")


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        ('"\\ud83d\\ude00"', False),  # an emoji: a pair
        ('"a\\ud83d\\ude00b\\ud83d\\ude00"', False),
        ('"\\udcff"', True),  # a low one alone
        ('"\\ud83d"', True),  # a high one at the end
        ('"\\ud83dx\\ude00"', True),  # a high one, something else, a low one
        ('"\\\\udcff"', False),  # an escaped backslash, then the letters "udcff"
        ('"\\\\\\udcff"', True),  # an escaped backslash, then a real lone escape
        ('"\\\\\\\\udcff"', False),
    ],
)
def test_only_a_lone_surrogate_escape_takes_the_slow_path(text: str, lone: bool) -> None:
    """The check behind strict_json's fast path: an emoji (``\\ud83d\\ude00``, a surrogate
    pair) or a literal ``\\udcff`` text (a stored argv word) is no lone surrogate; only an
    unpaired one is. Before, any ``\\ud`` re-encoded the whole document (a 20k-run
    `runs --json` with one emoji took ~5x as long)."""
    assert json.loads(text) is not None
    assert _lone_surrogate_escape(text) is lone


def test_strict_json_writes_a_document_with_an_emoji_once() -> None:
    """A document holding an emoji (and the text ``\\udcff``) is written by one call of
    ``dumps``, unchanged; one with a lone surrogate by two (the second with the byte array)."""
    calls: list[Any] = []

    def dumps(doc: Any) -> str:
        calls.append(doc)
        return json.dumps(doc)

    doc = {"runs": [{"command": "echo 😀 \\udcff", "name": "j"}] * 3}
    assert strict_json(doc, dumps) == json.dumps(doc) and len(calls) == 1
    assert json.loads(strict_json({"x": "\udcff"}, dumps)) == {"x": [255]} and len(calls) == 3


def test_cescape_takes_any_lone_surrogate() -> None:
    """A lone surrogate that is no escaped byte (``\\ud800``, from a library's text) is its
    UTF-8-ish bytes, not a crash (the old cescape raised UnicodeEncodeError)."""
    for escape in (cescape, printable):
        assert escape("a\ud800b") == "a\\xed\\xa0\\x80b"
        assert escape("\udcff") == "\\xff"


KEPT = [
    "👩\u200d💻",  # an emoji ZWJ sequence
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with a ZWNJ
    "क्\u200dष",  # Devanagari with a ZWJ
    "🫨",  # Unicode 15: str.isprintable() of Python 3.11 says no
    "\ue000",  # private use
    "\U000e0001",  # a deprecated format character (Cf)
    "\u0378",  # unassigned
    "\u00ad soft hyphen, \u2060 word joiner, \ufeff BOM",
    "C:\\backup ^\\d+$ grep '\\d'",  # backslashes: printable keeps them
]
ESCAPED = {
    "\x00": "\\x00",
    "\n": "\\n",
    "\x1b": "\\x1b",
    "\x7f": "\\x7f",
    "\x85": "\\xc2\\x85",
    "\x9b": "\\xc2\\x9b",
    "\u2028": "\\xe2\\x80\\xa8",
    "\u2029": "\\xe2\\x80\\xa9",
    "\u061c": "\\xd8\\x9c",
    "\u200e": "\\xe2\\x80\\x8e",
    "\u200f": "\\xe2\\x80\\x8f",
    **{chr(c): "".join(f"\\x{b:02x}" for b in chr(c).encode()) for c in range(0x202A, 0x202F)},
    **{chr(c): "".join(f"\\x{b:02x}" for b in chr(c).encode()) for c in range(0x2066, 0x206A)},
}


@pytest.mark.parametrize("text", KEPT)
def test_display_keeps_valid_text_and_backslashes(text: str) -> None:
    """The display rule (``printable``) keeps everything but controls, separators, bidi
    controls and lone surrogates, whatever this Python's Unicode tables say: emoji ZWJ
    sequences, ZWNJ, other format characters, private use, unassigned code points, and
    backslashes as they are (``C:\\backup`` copies and pastes). ``cescape`` (cleanup's
    reversible listing) keeps the same and doubles only the backslashes."""
    assert printable(text) == text
    assert cescape(text) == text.replace("\\", "\\\\")


@pytest.mark.parametrize("char", list(ESCAPED))
def test_display_escapes_controls_separators_and_bidi(char: str) -> None:
    """Each character that can start a line, move the cursor or reorder text (C0, DEL, C1,
    U+2028/9, the bidi controls) is escaped, as the named escape or its UTF-8 bytes."""
    assert printable(f"a{char}b") == f"a{ESCAPED[char]}b"
    assert cescape(f"a{char}\\") == f"a{ESCAPED[char]}\\\\"


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


RAW_DISPLAY = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _plugin_check(tmp_path: Path, plugin: str) -> None:
    """./reliactl.yaml with one command check "plugin": ``python -c PLUGIN``."""
    command = f"[{json.dumps(sys.executable)}, -c, {json.dumps(plugin)}]"
    (tmp_path / "reliactl.yaml").write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n    - name: plugin\n"
        f"      kind: command\n      command: {command}\n"
    )


def test_perfdata_labels_are_clean_in_every_format(tmp_path: Path) -> None:
    """A plugin printing ``CRIT C:\\backup ^\\d+$ | 'lab\\x9b31mel\\u202e'=5;1;2
    'l2\\x1b[2J'=4``: the labels are escaped once, at parse time, so `health --format
    nagios`, `health --detailed` and `--format prometheus` (serve's /metrics writes the same)
    carry no raw C1, bidi control or ESC; the message's backslashes are kept as they are in
    the Nagios line (notification text unchanged). Before, the perfdata went out raw."""
    plugin = (
        'import sys; sys.stdout.write("CRIT C:\\\\backup ^\\\\d+$ | '
        "'lab\\x9b31mel\\u202e'=5;1;2 'l2\\x1b[2J'=4\\n\"); sys.exit(2)"
    )
    _plugin_check(tmp_path, plugin)
    label = "plugin:lab\\xc2\\x9b31mel\\xe2\\x80\\xae"
    nagios = _cli("health", "--format", "nagios", cwd=tmp_path)
    assert nagios.returncode == 2, nagios.stderr
    line = nagios.stdout.decode("utf-8")
    assert not RAW_DISPLAY.search(line), line
    assert "CRIT C:\\backup ^\\d+$" in line
    assert f"'{label}'=5;1;2" in line and "'plugin:l2\\x1b[2J'=4" in line
    for args in (["--detailed"], ["--format", "prometheus"], ["--json"]):
        out = _cli("health", *args, cwd=tmp_path).stdout.decode("utf-8")
        assert not RAW_DISPLAY.search(out), (args, out)
        assert "\\u001b" not in out and "\\u009b" not in out and "\\u202e" not in out, args
    prom = _cli("health", "--format", "prometheus", cwd=tmp_path).stdout.decode("utf-8")
    assert label.replace("\\", "\\\\") in prom  # a Prometheus label value doubles "\\"


def test_parse_perfdata_escapes_a_label_once() -> None:
    """The library's parser (every output's source): a label's controls and bidi characters
    are escaped (``printable``), other text and backslashes kept."""
    from reliactl.health.checks import parse_perfdata

    [one, two] = parse_perfdata("'a\x9b\u202e\x1b b'=1 'C:\\d 👩\u200d💻'=2", "p:")
    assert one.label == "p:a\\xc2\\x9b\\xe2\\x80\\xae\\x1b b"
    assert two.label == "p:C:\\d 👩\u200d💻"


def test_discord_embed_and_history_events_follow_the_display_rule(tmp_path: Path) -> None:
    """`health --format discord` (sent to Discord and printed, ``ensure_ascii=False``) shows
    a plugin's C1 CSI and RLO escaped, never raw; `history`'s event lines are cut before
    escaping, so a long hostile message never ends in half an escape (``...\\x1``)."""
    plugin = "import sys; print('bad \\x9b31m \\u202eevil ' + '\\x1b' * 80); sys.exit(2)"
    _plugin_check(tmp_path, plugin)
    done = _cli("health", "--format", "discord", cwd=tmp_path)
    text = done.stdout.decode("utf-8")
    assert not RAW_DISPLAY.search(text), text
    [field] = json.loads(text)["fields"]
    assert field["value"].startswith("bad \\xc2\\x9b31m \\xe2\\x80\\xaeevil \\x1b")
    from reliactl.history import events_text

    message = "x" * 100 + "\x1b" * 100
    event = {"at": "2026-01-01T00:00:00Z", "check": "c", "from": None, "to": "CRITICAL"}
    [_, line] = events_text({"events": [{**event, "message": message}]}).splitlines()
    assert line.endswith("\\x1b") and re.fullmatch(r".*x(\\x1b)+", line), line
    assert line == printable(f"  {event['at']}  c: (first run) -> CRITICAL  {message}"[:200])


def test_http_verbose_shows_a_wire_byte_as_itself(tmp_path: Path) -> None:
    """`http -v` of a response whose header holds the byte 0x9b (not UTF-8) and ESC: shown
    as ``\\x9b`` and ``\\x1b``, the bytes on the wire; the old latin-1 reading showed the
    0x9b as U+009B, ``\\xc2\\x9b``, a byte that never was there."""
    with FlakyServer() as server:
        server.script("/h", Reply(headers={"X-Evil": "a\x9bb\x1b[2J"}))
        done = _cli("http", "get", server.url + "/h", "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    err = _safe(done.stderr)
    assert "< X-Evil: a\\x9bb\\x1b[2J" in err and "\\xc2" not in err


def test_runs_filters_by_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """`runs $'a\\xffb'` lists the runs of the job named so (the history records the name
    as ``a\\udcffb``, as ever), and ``--last`` judges them: no internal error (it was
    "internal error: UnicodeEncodeError"); an unknown such name says so on one line. `run`
    now refuses such a name, so the run is one an older version recorded (the same row)."""
    import os
    import time

    from reliactl.state.base import RunRecord
    from reliactl.state.sqlite import open_store

    assert _cli("run", "--name", b"a\xffb", "--", "true", cwd=tmp_path).returncode == 125
    store = open_store(Path(os.environ["XDG_STATE_HOME"]) / "reliactl" / "state.db")
    now = time.time()
    store.add_run(
        RunRecord(
            "a\\udcffb", "true", now, ended_at=now, attempts=1, exit_code=0, outcome="success"
        )
    )
    store.close()
    listed = _cli("runs", b"a\xffb", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(_safe(listed.stdout).splitlines()) == 2  # the header and the run
    assert _cli("runs", "--last", b"a\xffb", cwd=tmp_path).returncode == 0
    doc = json.loads(_cli("runs", "--json", b"a\xffb", cwd=tmp_path).stdout)
    assert [r["name"] for r in doc["runs"]] == ["a\\udcffb"]
    other = _cli("runs", "--last", b"a\xfeb", cwd=tmp_path)
    assert other.returncode == 1 and _safe(other.stderr).count("\n") == 1
    assert "a\\xfeb" in other.stderr.decode()


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
def test_jobs_finds_a_job_whose_name_is_not_utf8(fast: str, tmp_path: Path) -> None:
    """`jobs $'a\\xffb'` shows the job named so and its runs (the history records the name as
    ``a\\udcffb``, `jobs.stored_text`; the lookup compared the raw argv word and said "no job
    named"), on both dispatchers, in the table and --json; an unknown such name is one line
    showing the byte as ``\\xfe`` (exit 2). The run is one an older version recorded (`run`
    now refuses such a name), in the real SQLite store."""
    import time

    from reliactl.state.base import RunRecord
    from reliactl.state.sqlite import open_store

    store = open_store(Path(os.environ["XDG_STATE_HOME"]) / "reliactl" / "state.db")
    now = time.time()
    for name in ("a\\udcffb", "other"):
        store.add_run(
            RunRecord(name, "true", now, ended_at=now, attempts=1, exit_code=0, outcome="success")
        )
    store.close()
    env = {**os.environ, "RELIACTL_FAST": fast}

    def jobs(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "reliactl", "jobs", *args],
            capture_output=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )

    listed = jobs(b"a\xffb")
    assert listed.returncode == 0, listed.stderr
    shown = _safe(listed.stdout)
    assert "a\\udcffb (not declared)" in shown and "other" not in shown, shown
    assert re.search(r"^1 +\S+ +0 +success", shown, re.MULTILINE), shown  # its recent run
    doc = json.loads(jobs("--json", b"a\xffb").stdout)
    assert [j["name"] for j in doc["jobs"]] == ["a\\udcffb"] and len(doc["runs"]) == 1
    unknown = jobs(b"a\xfeb")
    assert unknown.returncode == 2 and _safe(unknown.stderr).count("\n") == 1
    assert "no job named 'a\\xfeb'" in unknown.stderr.decode()
