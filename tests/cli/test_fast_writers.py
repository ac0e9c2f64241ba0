"""The fast dispatcher on the last commands (issue 21 item 4, wave 2): the writers (`breaker
reset|trip|close`, `config init`, `silence add|remove`, `alert ack`, `state migrate|sync`),
`health history`, `drill` and `serve` parse as Typer does, call the function Typer registers,
and end the same way: each scenario runs on two fresh copies of one site, one through the fast
path and one with RELIACTL_FAST=0, and every step's stdout, stderr and exit code, then the
state each copy was left in (read back the same way on both), must be equal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastcheck import same_call
from importtime import start_reliactl

from reliactl.cli import _fast, _fastgen

HEAVY = ("typer", "click", "rich", "pydantic")

# argvs the fast path must answer itself, with the arguments Typer passes.
WRITER_CALLS = [
    ["breaker", "reset", "api"],
    ["breaker", "reset", "--all"],
    ["breaker", "reset"],  # the command's own check (name or --all), not the parser's
    ["breaker", "trip", "api", "--for", "30m"],
    ["breaker", "trip", "--for=1h", "--", "-odd"],
    ["-c", "x.yaml", "breaker", "close", "api"],
    ["config", "init"],
    ["config", "init", "x.yaml", "--force"],
    ["silence", "add", "disk*", "--for", "2h"],
    ["silence", "add", "--for", "2h", "job:*", "--reason", "deploy", "--start", "+1h", "--json"],
    ["silence", "remove", "abc"],
    ["alert", "ack", "bro*", "--reason", "on it"],
    ["state", "migrate", "--to", "redis://h/0", "--json"],
    ["state", "sync"],
    ["health", "history"],
    ["health", "history", "cpu", "--since", "1h", "disk", "--json"],
    ["drill", "breaker", "alerts", "--json"],
    ["serve", "--port", "9999", "-i", "5s", "--json-logs", "--host", "::1"],
]

# argvs the fast path leaves to Typer (or parses exactly as Typer does).
WRITER_OTHERS = [
    ["silence", "add", "x"],  # --for is required: Typer's error
    ["silence", "add", "--for", "1h"],  # TARGET missing
    ["state", "migrate"],  # --to is required
    ["breaker", "trip"],
    ["breaker", "close", "a", "b"],
    ["config", "init", "a", "b"],
    ["alert", "ack"],
    ["health", "--json", "history"],  # a group option before the subcommand
    ["health", "history", "--since"],
    ["health", "histor"],
    ["drill"],  # no_args_is_help
    ["serve", "--port", "x"],
    ["serve", "--bogus"],
    ["silence", "add", "x", "--for", "1h", "--help"],
]


@pytest.mark.parametrize("argv", WRITER_CALLS, ids=" ".join)
def test_writers_parse_as_typer_parses(argv: list[str]) -> None:
    """The common forms of each remaining command are answered on the fast path, with exactly
    the arguments Typer passes (required options, NAME, PATH, CHECK..., NAME...)."""
    fast = _fast.plan(argv)
    assert fast is not None and fast[0] == "call", fast
    assert same_call(_fastgen.typer_call(argv), fast)


@pytest.mark.parametrize("argv", WRITER_OTHERS, ids=" ".join)
def test_writers_fall_back_or_agree(argv: list[str]) -> None:
    """A missing required option or argument, a bad value, a group option before `history`,
    a typo: Typer's (None, nothing done), or parsed exactly as Typer does."""
    fast = _fast.plan(argv)
    if fast is None:
        return
    if fast[0] == "help":
        return  # --help wins over a missing option in click too (byte-equal test below)
    assert same_call(_fastgen.typer_call(argv), fast)


def test_health_history_is_refused_when_the_group_callback_would_do_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generator puts `health history` in the table only because `health` returns at once
    when a subcommand is invoked; a callback that did anything first is refused."""
    from reliactl.cli import health

    def health_cb(ctx: Any) -> None:  # a callback doing work before its guard
        print("side effect")
        if ctx.invoked_subcommand is not None:
            return

    class Group:
        callback = health_cb
        params: list[Any] = []

    with pytest.raises(SystemExit, match="does not open with"):
        _fastgen._check_parent(Group(), "health history")

    class Real:
        callback = health.health
        params: list[Any] = []

    _fastgen._check_parent(Real(), "health history")  # the real one passes


# ---- whole processes on two fresh copies of one site

CONFIG = """\
circuit_breaker:
  breakers:
    api:
      failure_threshold: 3
    db:
      failure_threshold: 2
health_monitor:
  system_checks: []
  checks:
    - name: broken
      kind: command
      command: [{python}, -c, "raise SystemExit(2)"]
"""

# scenario -> steps (argv; "$ID" is the last step's stdout, stripped)
SCENARIOS: dict[str, list[list[str]]] = {
    "breaker": [
        ["breaker", "trip", "api", "--for", "5m"],
        ["breaker", "trip", "db"],
        ["breaker", "close", "api"],
        ["breaker", "trip", "api"],
        ["breaker", "reset", "db"],
        ["breaker", "reset"],  # 2: name one or --all
        ["breaker", "reset", "api", "--all"],  # 2
        ["breaker", "trip", "apx"],  # 2: unknown, with the known ones
        ["breaker", "trip", "api", "--for", "-1s"],  # 2
        ["breaker", "close", "nope"],
        ["breaker", "trip"],  # Typer's: a missing NAME
    ],
    "breaker reset --all": [
        ["breaker", "trip", "api"],
        ["breaker", "trip", "db", "--for", "1h"],
        ["breaker", "reset", "--all"],
    ],
    "config init": [
        ["config", "init"],
        ["config", "init"],  # 1: exists
        ["config", "init", "--force"],
        ["config", "init", "other.yaml"],
        ["config", "init", "/nonexistent/dir/x.yaml"],  # cannot write
        ["config", "init", "a", "b"],  # Typer's usage error
    ],
    "silence and alert": [
        ["health", "--json"],  # 2: `broken` is CRITICAL, an open problem, a history point
        ["silence", "add", "disk*", "--for", "2h", "--reason", "maintenance"],
        ["silence", "remove", "$ID"],
        ["silence", "remove", "$ID"],  # 1: gone
        ["silence", "add", "job:*", "--for", "1h", "--start", "+1h", "--json"],
        ["silence", "add", "x", "--for", "soon"],  # 2
        ["silence", "add", "x"],  # Typer's: --for missing
        ["alert", "ack", "nothing*"],  # 1
        ["alert", "ack", "bro*", "--reason", "on it"],
        ["alert", "ack", "bro*"],
    ],
    "state": [
        ["state", "sync"],
        ["state", "sync", "--json"],
        ["state", "migrate", "--to", "redis://127.0.0.1:1/0"],  # 75: nobody there
        ["state", "migrate", "--to", "http://x/"],  # a bad URL
        ["state", "migrate"],  # Typer's: --to missing
    ],
    "health history": [
        ["health", "history"],
        ["health", "--json"],
        ["health", "history", "--json", "--since", "1h"],
        ["health", "history", "broken"],
        ["health", "history", "nope"],  # 3: no history for it
        ["health", "history", "--since", "0"],  # 3
        ["health", "history", "--since", "soon"],  # 3
        ["health", "history", "--bogus"],  # Typer's, exit 3 under health
    ],
    "drill and serve": [
        ["drill", "nope"],  # 2
        ["drill"],  # the help (no_args_is_help)
        ["serve", "--port", "0"],  # 2
        ["serve", "--host", "10.0.0.1"],  # 2: no token
        ["serve", "--interval", "0s"],  # 2
        ["serve", "--token-file", "/nonexistent/token"],  # 78
    ],
}

# read back after each scenario, the same way (RELIACTL_FAST=0) on both copies
STATE_READS = [
    ["breaker", "list", "--json"],
    ["breaker", "show", "api", "--json"],
    ["breaker", "show", "db", "--json"],
    ["silence", "list", "--json"],
    ["alert", "list", "--json"],
    ["health", "history", "--json"],
]


def _site(root: Path, name: str) -> tuple[Path, dict[str, str]]:
    work = root / name
    (work / "home").mkdir(parents=True)
    (work / "reliactl.yaml").write_text(CONFIG.format(python=sys.executable))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RELIACTL_") and k not in ("COLUMNS", "TYPER_USE_RICH")
    }
    env.update(
        HOME=str(work / "home"),
        XDG_STATE_HOME=str(work / "home" / "state"),
        XDG_CONFIG_HOME=str(work / "home" / "config"),
        NO_COLOR="1",
    )
    return work, env


def _masked(out: bytes, work: Path) -> bytes:
    """Points in time, ages, latencies, silence IDs and the site's own path differ between
    the two copies; everything else must not."""
    out = out.replace(str(work).encode(), b"<site>")
    out = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", b"<stamp>", out)
    out = re.sub(rb"\b\d\d:\d\d\b", b"<hh:mm>", out)  # a plot's time axis (a minute may turn)
    out = re.sub(rb"\b1\d{9}\.\d+\b", b"<epoch>", out)
    out = re.sub(rb'"(retry_after|open_for_left|duration|\w+_ms|\w+_age)": [0-9.e-]+', b"<n>", out)
    # Silence IDs (10 hex digits), and whole-second epochs with them: an ID that happens to
    # be all decimal and start with 1 was an "<epoch>" on one side only (a 1-in-1000 flake).
    out = re.sub(rb"\b[0-9a-f]{10}\b", b"<id>", out)
    out = re.sub(rb"\b\d+(\.\d+)?[smhd] ago\b", b"<age> ago", out)
    out = re.sub(rb"\d+(\.\d+)?m?s\b", b"N", out)
    return re.sub(rb"drill-[\w.]+-\d+", b"drill-<host>-<pid>", out)


def _play(steps: list[list[str]], work: Path, env: dict[str, str]) -> list[Any]:
    seen = []
    last = ""
    for step in steps:
        argv = [last if a == "$ID" else a for a in step]
        result = subprocess.run(
            [sys.executable, "-m", "reliactl", *argv],
            capture_output=True,
            env=env,
            cwd=work,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        last = result.stdout.decode().strip()
        seen.append(
            (step, result.returncode, _masked(result.stdout, work), _masked(result.stderr, work))
        )
    return seen


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_writers_end_the_same_and_leave_the_same_state(scenario: str, tmp_path: Path) -> None:
    """Each step (output, errors, exit code) and the state left behind (breakers, silences,
    problems, health history, the files written) are the same through the fast path and
    through Typer (RELIACTL_FAST=0), each on its own fresh copy of the site."""
    fast_site, fast_env = _site(tmp_path, "fast")
    slow_site, slow_env = _site(tmp_path, "slow")
    slow_env["RELIACTL_FAST"] = "0"
    fast = _play(SCENARIOS[scenario], fast_site, fast_env)
    slow = _play(SCENARIOS[scenario], slow_site, slow_env)
    for one, other in zip(fast, slow, strict=True):
        assert one == other
    reads_fast = _play(STATE_READS, fast_site, {**fast_env, "RELIACTL_FAST": "0"})
    reads_slow = _play(STATE_READS, slow_site, slow_env)
    assert reads_fast == reads_slow
    files = sorted(p.name for p in fast_site.iterdir() if p.suffix == ".yaml")
    assert files == sorted(p.name for p in slow_site.iterdir() if p.suffix == ".yaml")
    for name in files:
        assert (fast_site / name).read_bytes() == (slow_site / name).read_bytes()
        assert (fast_site / name).stat().st_mode == (slow_site / name).stat().st_mode


def test_a_drill_runs_the_same_on_both_paths(tmp_path: Path) -> None:
    """`drill breaker --json` (a real drill: trips a breaker, `run --breaker` refused with 69,
    recovery) reports the same steps and exit code on both paths."""
    fast_site, fast_env = _site(tmp_path, "fast")
    slow_site, slow_env = _site(tmp_path, "slow")
    slow_env["RELIACTL_FAST"] = "0"
    argv = [["drill", "breaker"]]
    fast = _play(argv, fast_site, fast_env)
    slow = _play(argv, slow_site, slow_env)
    assert fast[0][1] == 0, fast
    assert fast == slow


@pytest.mark.parametrize(
    "argv",
    [
        ["breaker", "trip", "api"],
        ["breaker", "reset", "--all"],
        ["breaker", "close", "api"],
        ["config", "init", "new.yaml"],
        ["silence", "add", "x", "--for", "1h"],
        ["silence", "remove", "nope"],
        ["alert", "ack", "nope"],
        ["state", "sync"],
        ["state", "migrate", "--to", "redis://127.0.0.1:1/0"],
        ["health", "history"],
        ["drill", "nope"],
        ["serve", "--port", "0"],
    ],
    ids=" ".join,
)
def test_the_remaining_commands_import_no_typer_click_rich_or_pydantic(
    argv: list[str], tmp_path: Path
) -> None:
    """Each command starts without typer, click, rich or pydantic (python -X importtime)."""
    work, env = _site(tmp_path, "site")
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _, modules = start_reliactl(argv, env=env, cwd=work)
    assert "reliactl.cli._fast" in modules
    path = " ".join(argv[:2]) if " ".join(argv[:2]) in _fastgen.FAST else argv[0]
    assert _fastgen.FAST[path][0] in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_serve_starts_and_stops_the_same_on_the_fast_path(tmp_path: Path) -> None:
    """`serve` through the fast path (no typer imported) listens, answers /livez and stops on
    TERM with the exit code and last lines of the Typer path."""
    import socket
    import time
    import urllib.request

    outcomes = []
    for fast in (True, False):
        work, env = _site(tmp_path, f"serve-{fast}")
        if not fast:
            env["RELIACTL_FAST"] = "0"
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "reliactl", "serve", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
        )
        try:
            deadline = time.monotonic() + 90
            body = b""
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as r:
                        body = r.read()
                        break
                except OSError:
                    time.sleep(0.2)
            process.terminate()
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        lines = err.decode().splitlines()
        typer_seen = any(line.endswith("| typer") for line in lines)
        said = [line.replace(f":{port}/", ":PORT/") for line in lines if "import time:" not in line]
        # how many health rounds finished before /livez answered is a race on either path
        body = re.sub(rb'"rounds": \d+', b'"rounds": N', body)
        body = re.sub(rb'"last_round_age": (?:[\d.e-]+|null)', b'"last_round_age": A', body)
        outcomes.append((body, process.returncode, out, _masked("\n".join(said).encode(), work)))
        assert typer_seen is not fast
    assert outcomes[0][0] != b""
    assert outcomes[0] == outcomes[1]


def test_health_history_help_is_byte_equal(tmp_path: Path) -> None:
    """`health history --help` from the fast path is Typer's, byte for byte (the help of
    every table command is checked in test_fast_commands; this one also for `-h`)."""
    work, env = _site(tmp_path, "site")
    cmd = [sys.executable, "-m", "reliactl", "health", "history", "-h"]
    fast = subprocess.run(cmd, capture_output=True, env=env, cwd=work, timeout=120)
    slow = subprocess.run(
        cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=work, timeout=120
    )
    assert slow.returncode == 0 and slow.stdout.startswith(b"Usage: python -m reliactl health")
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, slow.stdout, slow.stderr)


@pytest.mark.parametrize("group", _fastgen.GROUPS)
def test_a_groups_help_is_byte_equal_and_typer_free(group: str, tmp_path: Path) -> None:
    """`GROUP --help` (and `-h`) is answered from the table, Typer's text byte for byte,
    without importing typer; `GROUP --help extra` and a bare `GROUP` stay Typer's."""
    work, env = _site(tmp_path, "site")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for flag in ("--help", "-h"):
        cmd = [sys.executable, "-X", "importtime", "-m", "reliactl", group, flag]
        fast = subprocess.run(cmd, capture_output=True, env=env, cwd=work, timeout=120)
        slow = subprocess.run(
            cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=work, timeout=120
        )
        assert slow.returncode == 0 and slow.stdout.startswith(b"Usage: python -m reliactl ")
        assert (fast.returncode, fast.stdout) == (0, slow.stdout)
        assert not re.search(rb"\| (typer|click|rich)\n", fast.stderr)
    assert _fast.plan([group]) is None
    assert _fast.plan([group, "--help", "x"]) is None
