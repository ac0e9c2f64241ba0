"""One CLI vocabulary (issue 15 item 4): one meaning per short flag, one usage-error line with
the command's usage code, help without Python types, one table-header style, one JSON time form.

Usage errors run as real processes (the console script's path through main()), and once on a
pseudo-terminal, where Typer used to draw a rich panel.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SCRIPT = str(Path(sys.executable).parent / "reliactl")  # the console script, as users run it
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def reliactl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        input=input,
        env=dict(os.environ),
        timeout=60,
    )


def _tree() -> list[tuple[str, Any]]:
    """Every command of the app as (path, click command), the root first."""
    import typer.main

    from reliactl.cli import app

    out: list[tuple[str, Any]] = []

    def visit(command: Any, path: str) -> None:
        out.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            visit(sub, f"{path} {name}".strip())

    visit(typer.main.get_command(app), "")
    return out


COMMANDS = [path for path, _ in _tree()]
LEAVES = [path for path, cmd in _tree() if not getattr(cmd, "commands", None)]


# ---- short flags


def test_each_visible_short_flag_means_one_setting_across_the_cli() -> None:
    """-n once meant --dry-run, --count, --limit and --transitions; -d and -f two things each.
    Now a visible short flag names one long option (one setting) wherever it appears."""
    meaning: dict[str, set[str]] = {}
    for path, command in _tree():
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            shorts = [o for o in param.opts + param.secondary_opts if not o.startswith("--")]
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            for short in shorts:
                meaning.setdefault(short, set()).add(longs[0] if longs else f"{path}:{short}")
    shared_meaning = {"-n": {"--limit", "--count"}}  # both are "how many (N)", as head/top -n
    for short, longs in meaning.items():
        allowed = shared_meaning.get(short)
        assert len(longs) == 1 or longs == allowed, (short, sorted(longs))
    assert meaning["-d"] == {"--data"} and meaning["-f"] == {"--fail"}


def test_the_same_setting_has_the_config_keys_flag_name() -> None:
    """Retries after the first attempt are --max-retries (retry.max_retries) in http as in
    `retry plan`; a listing's length is --limit in `runs` and `breaker show`."""
    options = {
        path: {o for p in cmd.params if not p.hidden for o in p.opts} for path, cmd in _tree()
    }
    assert "--max-retries" in options["http"] and "--retries" not in options["http"]
    assert "--max-retries" in options["retry plan"]
    assert "--limit" in options["runs"] and "--limit" in options["breaker show"]
    assert "--transitions" not in options["breaker show"]


def test_old_spellings_still_work_and_are_not_in_help(tmp_path: Path) -> None:
    """Scripts holding `cleanup -n`, `health -f nagios`, `health -d`, `breaker show
    --transitions` or `http --retries` keep working; --help no longer shows them."""
    old = tmp_path / "data"
    old.mkdir()
    stale = old / "stale.log"
    stale.write_text("x")
    os.utime(stale, (time.time() - 10 * 86400,) * 2)
    result = reliactl("cleanup", "-n", "--age-by", "mtime", "--older-than", "1d", str(old))
    assert result.returncode == 0, result.stderr
    assert str(stale) in result.stdout and stale.exists()  # listed, not removed

    nagios = reliactl("health", "-f", "nagios", "--check", "file_handles", "--no-alerts")
    assert nagios.stdout.startswith(("OK", "WARNING", "CRITICAL", "UNKNOWN")), nagios.stdout
    detailed = reliactl("health", "-d", "--check", "file_handles", "--no-alerts")
    assert "perfdata:" in detailed.stdout

    bad = reliactl("http", "GET", "http://127.0.0.1:9/", "--retries", "-1")
    assert bad.returncode == 2 and "expected 0 to 10000" in bad.stderr

    for args, gone in (
        (("cleanup", "--help"), " -n"),
        (("health", "--help"), " -d,"),
        (("health", "--help"), " -f,"),
        (("http", "--help"), "--retries "),
        (("breaker", "show", "--help"), "--transitions"),
    ):
        text = reliactl(*args).stdout
        assert gone not in text, (args, gone)


def test_run_check_is_require_healthy_and_check_is_a_hidden_alias(tmp_path: Path) -> None:
    """`run --require-healthy` is the health gate; the old `run --check` still gates (a
    CRITICAL plugin check refuses with 75 under both spellings) and --help shows only the new
    name, so `--check NAME` means one thing across the CLI: health's check selector."""
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        "    - name: down\n      kind: command\n      command: ['sh', '-c', 'exit 2']\n"
    )
    cfg.chmod(0o600)
    for flag in ("--require-healthy", "--check"):
        result = reliactl("--config", str(cfg), "run", "--no-history", flag, "--", "true")
        assert result.returncode == 75, (flag, result.stderr)
        assert "health is CRITICAL" in result.stderr
    text = reliactl("run", "--help").stdout
    assert "--require-healthy" in text and "--check" not in text


# ---- usage errors: one line, the command's code


def _usage_code(path: str) -> int:
    return {"health": 3, "health history": 3, "run": 125}.get(path, 2)


@pytest.mark.parametrize("path", COMMANDS)
def test_an_unknown_option_is_one_line_and_the_commands_usage_code(path: str) -> None:
    """`reliactl X --bogus` (and the root's own `reliactl --bogus health`) prints one line on
    stderr and exits 3 under health, 125 under run, 2 elsewhere: no Click usage block."""
    args = [*path.split(), "--bogus"] if path else ["--bogus", "health"]
    result = reliactl(*args)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reliactl: error: No such option: --bogus"), lines
    assert result.returncode == _usage_code(path), result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("frobnicate",), 2, "No such command 'frobnicate'"),
        (("breaker", "show"), 2, "Missing argument 'NAME'"),
        (("runs", "--limit", "x"), 2, "'x' is not a valid integer"),
        (("runs", "--limit", "0"), 2, "--limit: expected a number from 1"),
        (("health", "--count", "x"), 3, "'x' is not a valid integer"),
        (("health", "--format", "xml"), 3, "--format: expected one of"),
        (("run", "--timeout", "soon", "true"), 125, "--timeout:"),
        (("breaker", "trip", "x", "--for", "soon"), 2, "--for:"),
        (("retry", "plan", "--strategy", "random"), 2, "--strategy: expected one of"),
        (("cleanup", "/tmp"), 2, "--older-than is required"),
        (("http", "GET"), 2, "Missing argument 'URL'"),
        (("config", "show", "extra"), 2, "unexpected extra argument"),
    ],
)
def test_every_kind_of_usage_error_is_one_line(args: tuple[str, ...], code: int, text: str) -> None:
    """Parser errors (missing argument, bad number, unknown command, extra argument) and each
    command's own check of its flags share one path: one line, the command's usage code."""
    result = reliactl(*args)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reliactl: error: ") and text in lines[0], lines
    assert result.returncode == code


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run reliactl with stdin, stdout and stderr on a fresh pty: (exit code, output)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [SCRIPT, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the last writer closed the pty
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=30)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("args", "code"),
    [(("health", "--bogus"), 3), (("--bogus", "health"), 2), (("run", "--bogus", "true"), 125)],
)
def test_on_a_terminal_a_usage_error_is_still_one_line_without_a_box(
    args: tuple[str, ...], code: int
) -> None:
    """On a TTY Typer drew a rich panel (box-drawing characters, several lines); now the
    terminal gets the same single line as a pipe."""
    exit_code, output = _on_a_terminal(*args)
    lines = [line for line in output.replace("\r", "").splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("reliactl: error: No such option: --bogus"), output
    assert not re.search("[\u2500-\u257f]", output), output  # no box drawing
    assert exit_code == code


def test_a_command_group_without_a_subcommand_still_shows_its_help() -> None:
    """`reliactl breaker` is not an error to report in one line: it prints the group's help."""
    result = reliactl("breaker")
    assert "Commands" in result.stdout + result.stderr
    assert "list" in result.stdout + result.stderr


# ---- help text


@pytest.mark.parametrize("path", COMMANDS)
def test_help_names_values_without_python_types(path: str) -> None:
    """Help showed `COMMAND <list[str]>`, `NAME <str>`, `-n, --limit <int>` and `{NAME}`:
    now every value is a word an operator reads (NAME, N, DURATION, PATH...)."""
    result = reliactl(*path.split(), "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert not re.search(r"<(str|int|float|bool|list\[[a-z]+\])>", text), text
    assert not re.search(r"\{[A-Za-z_]+\}", text), text
    usage = text.splitlines()[0]
    assert not re.search(r"\[[a-z_]+\]", usage), usage  # [name] -> [NAME]


def test_help_of_run_and_runs_shows_plain_metavars() -> None:
    """The two worst offenders read as a manual page would."""
    run = reliactl("run", "--help").stdout
    assert run.splitlines()[0] == "Usage: reliactl run [OPTIONS] [--] COMMAND..."
    assert "COMMAND...  " in run or "COMMAND... " in run
    runs = reliactl("runs", "--help").stdout
    assert runs.splitlines()[0] == "Usage: reliactl runs [OPTIONS] [NAME]"
    assert "-n, --limit N" in runs


@pytest.mark.parametrize("path", ["runs", "health", "run", "breaker show"])
def test_terminal_help_names_no_python_types(path: str) -> None:
    """On a terminal rich renders help from the same parameters: `--json <bool>` and
    `NAME <str>` are gone there too."""
    code, output = _on_a_terminal(*path.split(), "--help")
    assert code == 0, output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert not re.search(r"<(str|int|float|bool|list\[[a-z]+\])>", plain), plain


# ---- tables and JSON


def test_table_headers_are_upper_case_everywhere() -> None:
    """`runs` and `retry plan` printed lower-case headers while breaker, health and cleanup
    printed upper case: one style now."""
    assert reliactl("run", "--name", "job", "true").returncode == 0
    header = reliactl("runs").stdout.splitlines()[0].split()
    assert header == [
        *("ID", "NAME", "HOST", "STARTED", "TOOK", "TRIES", "EXIT", "OUTCOME", "RSS", "CPU"),
        "COMMAND",
    ]
    plan = reliactl("retry", "plan", "--jitter", "none").stdout.splitlines()[1].split()
    assert plan == ["ATTEMPT", "DELAY", "CUMULATIVE"]


def _times(doc: dict[str, Any], key: str) -> None:
    """``key`` is ISO 8601 UTC text and ``key_epoch`` the same instant in seconds."""
    epoch = doc[f"{key}_epoch"]
    assert isinstance(epoch, (int, float))
    assert ISO.match(doc[key]), doc[key]
    assert doc[key] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def test_json_times_are_iso_utc_with_epoch_beside_them() -> None:
    """`runs`, `breaker list/show` and `health` name a point in time `<x>_at` (ISO 8601 UTC)
    and give `<x>_at_epoch` for arithmetic; documents whose fields changed meaning say
    version 2."""
    assert reliactl("run", "--name", "job", "--breaker", "svc", "false").returncode == 1
    runs = json.loads(reliactl("runs", "--json").stdout)
    assert runs["version"] == 2
    _times(runs["runs"][0], "started_at")
    _times(runs["runs"][0], "ended_at")

    listed = json.loads(reliactl("breaker", "list", "--json").stdout)
    assert listed["version"] == 2
    (breaker,) = listed["breakers"]
    _times(breaker, "changed_at")
    _times(breaker, "last_failure_at")
    assert breaker["opened_at"] is None and breaker["opened_at_epoch"] is None
    assert "since" not in breaker

    reliactl("breaker", "trip", "svc")
    shown = json.loads(reliactl("breaker", "show", "svc", "--json", "-n", "1").stdout)
    assert shown["version"] == 2
    _times(shown["breaker"], "opened_at")
    (transition,) = shown["transitions"]
    _times(transition, "at")

    health = json.loads(
        reliactl("health", "--json", "--check", "file_handles", "--no-alerts").stdout
    )
    assert health["version"] == 2  # 2: its checks' details' times (tests/cli/test_json_times.py)
    assert abs(health["checked_at_epoch"] - time.time()) < 600
    assert ISO.match(health["checked_at"])
