"""The fast dispatcher (reliactl/cli/_fast.py): the same parse, the same function, the same help
and errors as the Typer app, without importing typer, click, rich or pydantic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from importtime import start_reliactl

from reliactl.cli import _fast, _fastgen

HEAVY = ("typer", "click", "rich", "pydantic")

# argvs the fast path must answer itself (not fall back): the common cron and monitoring forms.
FAST_CALLS = [
    ["run", "--", "true"],
    ["run", "true"],
    ["run", "--lock", "--timeout", "5m", "--", "sh", "-c", "echo hi"],
    ["run", "--lock-name", "backup", "--skip-if-locked", "/usr/bin/backup", "--full"],
    ["run", "--timeout=30s", "-k", "5s", "-s", "KILL", "--", "sleep", "1"],
    ["run", "--max-retries", "3", "--multiplier", "2.5", "--retry-on", "1,75", "--", "x"],
    ["run", "--nice", "-5", "--", "x"],  # a negative number is a value, not an option
    ["run", "--name", "n", "--name", "m", "--", "x"],  # the last one wins, as in click
    ["run", "--", "cmd", "--", "--lock"],  # only the first -- ends the options
    ["run", "-", "x"],
    ["run", "--quiet-success", "--timestamps", "--log-file", "/tmp/l", "--no-history", "x"],
    ["-c", "/etc/r.yaml", "run", "--", "true"],
    ["--config=/etc/r.yaml", "run", "--", "true"],
    ["--config", "a", "-c", "b", "run", "x"],
    ["health"],
    ["health", "--json"],
    ["health", "--format", "nagios", "-C", "disk_usage", "--check", "memory"],
    ["health", "-q", "--no-alerts", "--no-remediate"],
    ["health", "--watch", "--interval", "1s", "--count", "2"],
    ["health", "--count", "+7", "-w"],
    ["health", "-d", "-f", "json"],
    ["-c", "x.yaml", "health", "--detailed"],
    # review: options after the command belong to it, empty and odd values are values
    ["run", "--", "cmd", "--timeout", "5"],
    ["run", "cmd", "-x", "--lock"],
    ["run", "cmd", "--", "y"],
    ["run", "--name", "", "--timeout=", "x"],
    ["run", "--nice=-5", "--multiplier", "-1.5", "--", "x"],
    ["run", "--log-file", "-", "-s", "-9", "x"],
    ["run", "--name", "caf\udce9", "--", "x\udcff"],  # non-UTF-8 argv bytes (surrogates)
    ["run", "--lock", "--", ""],
    ["-c", "", "run", "x"],
    ["health", "-C", "", "--check=b", "-C", "--json"],
    ["health", "-f", "json", "--format", "nagios", "--json", "--json"],
]
# argvs the fast path may answer or leave to Typer; if it answers, it must agree.
OTHER_ARGVS = [
    ["run"],
    ["run", "--lock"],
    ["run", "--bogus", "--", "true"],
    ["run", "--lock=yes", "--", "true"],
    ["run", "--timeout"],
    ["run", "--timeout", "--lock", "x"],
    ["run", "--max-retries", "three", "--", "x"],
    ["run", "--max-retries", "1_000", "--", "x"],
    ["run", "--multiplier", "nan", "--", "x"],
    ["run", "-k5", "--", "x"],
    ["run", "-ks", "x"],
    ["run", "--retries", "2", "x"],
    ["health", "history"],
    ["health", "--json", "history", "--limit", "3"],
    ["health", "--count", "x"],
    ["health", "--count", "٣"],
    ["health", "--bogus"],
    ["health", "--", "x"],
    ["health", "extra"],
    ["health", "--json=1"],
    ["-c"],
    ["-c", "--help"],
    ["--config=", "run", "x"],
    ["--help", "run"],
    ["run", "--name", "--help", "x"],
    ["--bogus", "run", "x"],
    ["config", "show"],
    ["runs"],
    [],
    ["-q", "health"],  # a command's option before the command
    ["--json", "health"],
    ["--", "run", "x"],
    ["-c=x", "run", "x"],
    ["run", "--loc", "x"],  # no prefix matching in click
    ["run", "--nice", "1e1", "x"],
    ["health", "-"],
]


def _same(typer: tuple[str, Any], fast: tuple[str, Any]) -> bool:
    """Equal calls (command, --config, kwargs); NaN equals NaN (``--multiplier nan``)."""

    def canon(call: tuple[str, Any]) -> str:
        kind, (command, config, kwargs) = call
        return repr((kind, command, config, sorted(kwargs.items())))

    return typer[0] == "call" and canon(typer) == canon(fast)


def test_the_committed_table_is_what_the_typer_app_generates() -> None:
    """The fast path cannot drift from Typer: a change to an option, a default or a help text
    of run, health or the root without regenerating reliactl/cli/_table.py fails here."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl.cli._fastgen", "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    from reliactl.cli import _table

    words = {name.split()[0] for name in _table.COMMANDS} | set(_table.ROOT_HELP)
    words.update(h for spec in _table.COMMANDS.values() for h in spec["help"])
    assert words == _fast._HOT  # the quick pre-test knows every hot word


@pytest.mark.parametrize("argv", FAST_CALLS, ids=" ".join)
def test_fast_parse_equals_typers_for_common_argvs(argv: list[str]) -> None:
    """For the common forms the fast path answers itself, and passes the command function
    exactly the arguments (and --config) Typer passes."""
    fast = _fast.plan(argv)
    assert fast is not None and fast[0] == "call", fast
    assert _same(_fastgen.typer_call(argv), fast)


@pytest.mark.parametrize("argv", OTHER_ARGVS, ids=lambda a: " ".join(a) or "(none)")
def test_fast_parse_agrees_with_typer_or_falls_back(argv: list[str]) -> None:
    """Invalid, rare or unknown forms: the fast path either leaves them to Typer (None, having
    done nothing) or parses them exactly as Typer does."""
    fast = _fast.plan(argv)
    if fast is None:
        return
    assert fast[0] == "call"
    assert _same(_fastgen.typer_call(argv), fast)


def test_the_fast_path_calls_the_very_functions_typer_registers() -> None:
    """No second implementation: the table names the functions the Typer app registers for
    every fast command (`run`, the `health` callback, `cleanup`, `breaker list`, ...)."""
    import importlib

    from typer.main import get_command_name

    from reliactl.cli import _table, build_app

    app = build_app()
    registered: dict[str, Any] = {}
    for info in app.registered_commands:
        assert info.callback is not None
        registered[info.name or get_command_name(info.callback.__name__)] = info.callback
    for group in app.registered_groups:
        sub = group.typer_instance
        assert sub is not None
        if sub.registered_callback is not None and sub.registered_callback.callback:
            registered[str(group.name)] = sub.registered_callback.callback
        for info in sub.registered_commands:
            assert info.callback is not None
            name = info.name or get_command_name(info.callback.__name__)
            registered[f"{group.name} {name}"] = info.callback
    assert len(_table.COMMANDS) >= 10
    for name, spec in _table.COMMANDS.items():
        module, function = spec["function"]
        assert getattr(importlib.import_module(module), function) is registered[name], name


def test_completion_requests_and_the_off_switch_go_to_typer(monkeypatch: Any) -> None:
    """A shell's completion request (_RELIACTL_COMPLETE) and RELIACTL_FAST=0 are Typer's."""
    assert _fast.plan(["run", "--", "true"]) is not None
    monkeypatch.setenv("_RELIACTL_COMPLETE", "bash_complete")
    assert _fast.plan(["run", "--", "true"]) is None
    monkeypatch.delenv("_RELIACTL_COMPLETE")
    monkeypatch.setenv("RELIACTL_FAST", "0")
    assert _fast.plan(["run", "--", "true"]) is None


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "TYPER_USE_RICH", "RELIACTL_FAST", "RELIACTL_CONFIG")
    }
    env.update(HOME=str(home), XDG_STATE_HOME=str(home), XDG_CONFIG_HOME=str(home), **extra)
    return env


def _both(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[Any, Any]:
    fast = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, timeout=120)
    slow = subprocess.run(
        cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=cwd, timeout=120
    )
    return fast, slow


HELP_ARGVS = [
    ["--help"],
    ["-h"],
    ["run", "--help"],
    ["-c", "x.yaml", "run", "--lock", "-h"],
    ["health", "--help"],
    ["health", "--json", "-h"],
]


@pytest.mark.parametrize("argv", HELP_ARGVS, ids=" ".join)
def test_help_is_byte_equal_to_typers(argv: list[str], tmp_path: Path) -> None:
    """--help from the fast path is Typer's help, byte for byte, for `python -m reliactl` and
    the console script (the program name differs), off a terminal; at another width (COLUMNS)
    it is Typer's too (the fast path leaves it to Typer)."""
    script = shutil.which("reliactl", path=os.path.dirname(sys.executable))
    starts = [[sys.executable, "-m", "reliactl"]] + ([[script]] if script else [])
    for start in starts:
        fast, slow = _both([*start, *argv], _env(tmp_path), tmp_path)
        assert slow.returncode == 0 and slow.stdout.startswith(b"Usage: ")
        assert (fast.returncode, fast.stdout, fast.stderr) == (0, slow.stdout, slow.stderr)
    fast, slow = _both([*starts[0], *argv], _env(tmp_path, COLUMNS="60"), tmp_path)
    assert (fast.returncode, fast.stdout) == (0, slow.stdout)


ERROR_ARGVS = [
    ["run", "--timeout", "soon", "--", "true"],  # the command's own check, on the fast path
    ["run", "--nice", "40", "--", "true"],
    ["run", "--bogus", "--", "true"],  # Typer's parser error, after falling back
    ["run"],
    ["health", "--format", "xml"],
    ["health", "--count", "0", "--watch"],
    ["health", "--count", "x"],
    ["-c", "/nonexistent/r.yaml", "health"],
]


@pytest.mark.parametrize("argv", ERROR_ARGVS, ids=" ".join)
def test_errors_look_the_same_on_both_paths(argv: list[str], tmp_path: Path) -> None:
    """A bad flag or configuration gives the same one line and exit code (125 under run, 3
    under health, 78 for the configuration) with and without the fast path."""
    fast, slow = _both([sys.executable, "-m", "reliactl", *argv], _env(tmp_path), tmp_path)
    assert slow.returncode not in (0, 1)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )


@pytest.mark.parametrize(
    "argv",
    [["run", "--", "true"], ["health", "--json"], ["--help"], ["run", "--help"]],
    ids=" ".join,
)
def test_hot_commands_import_no_typer_click_rich_or_pydantic(
    argv: list[str], tmp_path: Path
) -> None:
    """`run -- true`, `health --json` and --help start without typer, click, rich or
    pydantic (python -X importtime lists every module the process imported)."""
    result, modules = start_reliactl(argv, env=_env(tmp_path), cwd=tmp_path)
    assert result.returncode in (0, 1, 2, 3), result.stderr[-2000:]
    assert "reliactl.cli._fast" in modules
    if argv[-1] in ("true", "--json"):
        assert f"reliactl.cli.{argv[0]}" in modules  # the Typer app's own command module
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_a_run_ends_the_same_on_both_paths(tmp_path: Path) -> None:
    """`run` on the fast path passes the command's output and exit code through and prints
    reliactl's own lines as the Typer path does (timestamps and durations aside)."""
    import re

    argv = ["run", "--name", "same", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]
    fast, slow = _both([sys.executable, "-m", "reliactl", *argv], _env(tmp_path), tmp_path)

    def lines(err: bytes) -> list[str]:
        text = re.sub(r"\S*T\d\d:\d\d:\d\d\S*Z ", "", err.decode())
        return [re.sub(r"\d+(\.\d+)?m?s\b", "N", line) for line in text.splitlines()]

    assert fast.returncode == slow.returncode == 3
    assert fast.stdout == slow.stdout == b"out\n"
    assert lines(fast.stderr) == lines(slow.stderr)
    assert lines(fast.stderr)[-1] == "reliactl: failed in N (exit 3)"


def _patch_run_option(monkeypatch: Any, option: str, attribute: str, value: Any) -> None:
    """Make the click command Typer builds for `run` carry ``attribute=value`` on ``option``."""
    import typer.main

    original = typer.main.get_command

    def patched(app: Any) -> Any:
        command = original(app)
        run = getattr(command, "commands", {}).get("run")
        for param in run.params if run is not None else []:
            if option in param.opts:
                setattr(param, attribute, value)
        return command

    monkeypatch.setattr(typer.main, "get_command", patched)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("envvar", "RELIACTL_RUN_TIMEOUT"),  # Typer would read it when --timeout is absent
        ("default", lambda: "5m"),  # computed at each call, not once at generation
    ],
    ids=["envvar", "callable default"],
)
def test_the_generator_refuses_what_the_table_cannot_carry(
    attribute: str, value: Any, monkeypatch: Any
) -> None:
    """An option of run or health whose value Typer takes from somewhere other than argv (an
    environment variable, a default computed at each call) cannot be answered from defaults
    recorded once: the fast path would silently ignore the variable or freeze the default.
    The generator refuses such a table, naming the option, instead of writing one that the
    drift test would then accept."""
    _patch_run_option(monkeypatch, "--timeout", attribute, value)
    with pytest.raises(SystemExit, match="--timeout"):
        _fastgen.collect()


# (label, argv after the program, extra environment, shell redirections): forms a crontab, a
# pipe or an odd locale produce; each runs with and without the fast path.
PROCESS_CASES = [
    ("non-UTF-8 argv", [b"run", b"--", b"printf", b"%s|", b"\xff\xfe", b"caf\xe9"], {}, ""),
    ("options after --", ["run", "--", "printf", "%s|", "--timeout", "5", "-x"], {}, ""),
    ("stdout closed", ["run", "--", "sh", "-c", "echo lost; echo kept >&2"], {}, ">&-"),
    ("stdin closed", ["run", "--", "sh", "-c", "cat; echo rc=$?"], {}, "<&-"),
    ("all closed", ["health", "--json"], {}, ">&- 2>&- <&-"),
    ("help, C locale", ["run", "--help"], {"LC_ALL": "C", "LANG": "C"}, ""),
    ("help, ascii stdout", ["health", "-h"], {"PYTHONIOENCODING": "ascii"}, ""),
    ("help, colour asked", ["--help"], {"FORCE_COLOR": "1", "TERM": "xterm-256color"}, ""),
    ("help, stdout closed", ["--help"], {}, ">&-"),
    ("root help first", ["--help", "run"], {}, ""),
    ("missing config", ["run", "true"], {"RELIACTL_CONFIG": "/nonexistent/r.yaml"}, ""),
]


@pytest.mark.parametrize(
    ("argv", "extra", "redirect"),
    [case[1:] for case in PROCESS_CASES],
    ids=[case[0] for case in PROCESS_CASES],
)
def test_processes_end_the_same_with_and_without_the_fast_path(
    argv: list[Any], extra: dict[str, str], redirect: str, tmp_path: Path
) -> None:
    """Non-UTF-8 argv bytes reach the child untouched, options after the command are the
    child's, closed stdin/stdout/stderr (cron, daemons) and the locale or colour variables
    change nothing: stdout, stderr (timestamps and durations aside) and the exit code are
    the same with the fast path and with RELIACTL_FAST=0."""
    import re
    import shlex

    words = [a if isinstance(a, bytes) else a.encode() for a in argv]
    line = b" ".join(shlex.quote(w.decode("latin-1")).encode("latin-1") for w in words)
    script = b'exec "$0" -m reliactl ' + line + b" " + redirect.encode()
    cmd = [b"sh", b"-c", script, sys.executable.encode()]
    fast, slow = _both(cmd, _env(tmp_path, **extra), tmp_path)  # type: ignore[arg-type]

    def strip(err: bytes) -> bytes:
        err = re.sub(rb"\S*T\d\d:\d\d:\d\d\S*Z ", b"", err)
        return re.sub(rb"\d+(\.\d+)?m?s\b", b"N", err)

    assert (fast.returncode, fast.stdout, strip(fast.stderr)) == (
        slow.returncode,
        slow.stdout,
        strip(slow.stderr),
    )
    expected = {b"\xfe": b"\xff\xfe|caf\xe9|", b"-x": b"--timeout|5|-x|", b"$?": b"rc=0\n"}
    for marker, stdout in expected.items():
        if any(marker in word for word in words):
            assert fast.stdout == stdout
