"""The fast dispatcher on the read-only commands (issue 21 item 4): `config show|validate`,
`breaker list|show`, `retry plan`, `cleanup`, `doctor`, `http` and `runs` parse as Typer does, call
the very function Typer registers, and end the same way (output, exit code, errors, --help
byte for byte) with and without RELIACTL_FAST=0, without importing typer, click, rich or
pydantic."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastcheck import same_call
from httpserver import FlakyServer
from importtime import start_reliactl

from reliactl.cli import _fast, _fastgen

HEAVY = ("typer", "click", "rich", "pydantic")

# argvs the fast path must answer itself, with the arguments Typer passes.
FAST_CALLS = [
    ["config", "show"],
    ["config", "show", "--json", "--no-sources"],
    ["config", "show", "--no-sources", "--sources"],
    ["-c", "x.yaml", "config", "validate", "f.yaml", "--json"],
    ["config", "validate", "--no-env", "f.yaml"],
    ["config", "validate", "--", "-odd.yaml"],
    ["config", "validate", "-"],
    ["breaker", "list"],
    ["breaker", "list", "--json", "--fail-on-open"],
    ["breaker", "show", "api"],
    ["breaker", "show", "--json", "api", "-n", "3"],
    ["breaker", "show", "api", "--transitions", "5", "--limit=2"],
    ["breaker", "show", "--limit", "-1", "--", "-odd"],
    ["retry", "plan"],
    [
        *("retry", "plan", "--strategy", "fixed", "--base-delay", "1s", "--max-retries", "3"),
        *("--multiplier", "2.5", "--seed", "7", "--json", "--jitter", "full"),
        *("--max-elapsed", "none", "--max-delay", "1m"),
    ],
    ["cleanup"],
    ["cleanup", "--older-than", "7d", "/tmp/a", "/tmp/b", "--dry-run", "-l", "--json"],
    ["cleanup", "-n", "--state", "--stale-locks", "-q", "--age-by", "ctime"],
    [
        "cleanup",
        "/x",
        "--max-size",
        "1G",
        "--include",
        "*.log",
        "--exclude",
        "*.gz",
        "--include",
        "b",
    ],
    ["cleanup", "--force-root", "--older-than=1d", "--", "-dir"],
    ["doctor"],
    ["-c", "r.yaml", "doctor", "--json"],
    ["http", "GET", "http://h/"],
    [
        *("http", "-H", "A: b", "-H", "C: d", "POST", "http://h/", "-d", "x", "--json-body"),
        *("--breaker", "b", "--max-retries", "2", "--rate", "5/second", "--rate-key", "k"),
        *("--rate-wait", "1s", "--timeout", "3s", "-f", "-v"),
    ],
    ["http", "--retries", "1", "GET", "--", "http://h/"],
    ["jobs"],
    ["jobs", "nightly", "--json"],
    ["state", "info", "--json"],
    ["alert", "list"],
    ["silence", "list", "--json"],
    ["runs"],
    ["runs", "nightly", "--last"],
    ["runs", "--json", "-n", "5", "nightly"],
]
# argvs the fast path may leave to Typer; if it answers, it must agree with Typer.
OTHER_ARGVS = [
    ["config"],
    ["config", "show", "extra"],
    ["config", "validate", "a", "b"],
    ["config", "show", "--sources=1"],
    ["config", "init"],
    ["config", "--help", "show"],
    ["breaker"],
    ["breaker", "show"],
    ["breaker", "show", "--limit", "x", "a"],
    ["breaker", "show", "-n3", "a"],
    ["breaker", "show", "--limit", "5.0", "a"],
    ["breaker", "list", "--sources"],
    ["breaker", "reset", "a"],
    ["breaker", "lis"],
    ["retry", "plan", "--seed", "1_000"],
    ["retry", "plan", "--multiplier", "x"],
    ["retry", "plan", "--seed"],
    ["cleanup", "-ln"],
    ["cleanup", "--older-than"],
    ["http"],
    ["http", "GET"],
    ["http", "GET", "http://h/", "extra"],
    ["http", "-H"],
    ["doctor", "x"],
    ["doctor", "--json=yes"],
    ["jobs", "a", "b"],
    ["state", "migrate"],
    ["silence", "add", "x"],
    ["alert", "ack", "x"],
    ["runs", "a", "b"],
    ["runs", "--limit"],
    ["runs", "--last=1"],
]


@pytest.mark.parametrize("argv", FAST_CALLS, ids=" ".join)
def test_fast_parse_equals_typers(argv: list[str]) -> None:
    """The common forms of each read-only command are answered on the fast path, with exactly
    the arguments (options, NAME/FILE/PATH.../METHOD URL, --config) Typer passes."""
    fast = _fast.plan(argv)
    assert fast is not None and fast[0] == "call", fast
    assert same_call(_fastgen.typer_call(argv), fast)


@pytest.mark.parametrize("argv", OTHER_ARGVS, ids=lambda a: " ".join(a))
def test_fast_parse_agrees_with_typer_or_falls_back(argv: list[str]) -> None:
    """Missing or extra arguments, bad values, other subcommands, group help: either Typer's
    (None, nothing done) or parsed exactly as Typer does."""
    fast = _fast.plan(argv)
    if fast is None:
        return
    assert fast[0] == "call", fast
    assert same_call(_fastgen.typer_call(argv), fast)


# ---- whole processes, with and without the fast path

CONFIG = """\
circuit_breaker:
  breakers:
    api:
      failure_threshold: 3
    db:
      failure_threshold: 2
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A working directory with a configuration naming two breakers (one tripped by hand),
    a run of a job that succeeded and one that failed, a directory with an old file, and a
    real HTTP server; the environment to run in."""
    work = tmp_path_factory.mktemp("fastcmds")
    home = work / "home"
    home.mkdir()
    (work / "reliactl.yaml").write_text(CONFIG)
    old = work / "junk"
    old.mkdir()
    (old / "a.log").write_text("x")
    os.utime(old / "a.log", (1, 1))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RELIACTL_") and k not in ("COLUMNS", "TYPER_USE_RICH")
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        NO_COLOR="1",
    )
    with FlakyServer() as server:
        server.script("/missing", *[404] * 20)
        env["TEST_URL"] = server.url
        subprocess.run(
            [sys.executable, "-m", "reliactl", "breaker", "trip", "api"],
            env={**env, "RELIACTL_FAST": "0"},
            cwd=work,
            check=True,
            capture_output=True,
            timeout=120,
        )
        for name, command in (("nightly", "true"), ("broken", "false")):
            subprocess.run(
                [sys.executable, "-m", "reliactl", "run", "--name", name, "--", command],
                env=env,
                cwd=work,
                capture_output=True,
                timeout=120,
            )
        yield work, env


def _both(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[Any, Any]:
    argv = [a.replace("$URL", env["TEST_URL"]) for a in argv]
    cmd = [sys.executable, "-m", "reliactl", *argv]
    fast = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, timeout=120)
    slow = subprocess.run(
        cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=cwd, timeout=120
    )
    return fast, slow


def _unstamped(out: bytes) -> bytes:
    """What changes from one call to the next on either path: a breaker never used reports
    "changed_at": now, `state info` the store's round-trip latency, `doctor` the clock, `jobs` the
    age of a run (every point in time and age is masked)."""
    out = re.sub(rb'"changed_at(_epoch)?": [^,\n]*', b"<now>", out)
    out = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"<stamp>", out)
    out = re.sub(rb'"(\w+_age|running_for)": [0-9.]+', rb'"\1": <age>', out)
    out = re.sub(rb"\b\d+(\.\d+)?[smhd] ago\b", b"<age> ago", out)
    return re.sub(rb"(latency\S*\s+)[0-9.]+", rb"\1<N>", out)


def _strip(err: bytes) -> bytes:
    err = re.sub(rb"\S*T\d\d:\d\d:\d\d\S*Z ", b"", err)
    return re.sub(rb"\d+(\.\d+)?m?s\b", b"N", err)


PROCESS_ARGVS = [
    ["config", "show"],
    ["config", "show", "--json", "--no-sources"],
    ["config", "validate"],
    ["config", "validate", "--json", "nonexistent.yaml"],
    ["breaker", "list"],
    ["breaker", "list", "--json", "--fail-on-open"],  # 69: api is open
    ["breaker", "show", "api"],
    ["breaker", "show", "apx"],  # unknown: one line, exit 2, "did you mean"
    ["breaker", "show", "--bogus", "api"],  # Typer's parser error, after falling back
    ["retry", "plan", "--seed", "3", "--jitter", "full"],
    ["retry", "plan", "--strategy", "fib"],
    ["retry", "plan", "--seed", "x"],
    ["cleanup", "--older-than", "1d", "junk", "--dry-run", "--list"],
    ["cleanup", "--older-than", "soon", "junk"],
    ["doctor", "--json"],
    ["http", "GET", "$URL/"],
    ["http", "-f", "GET", "$URL/missing"],  # 22, as curl --fail
    ["http", "GET", "ftp://x/"],
    ["http"],  # no arguments: Typer prints the help (no_args_is_help)
    ["-c", "/nonexistent/r.yaml", "breaker", "list"],  # 78
    ["jobs", "--json"],
    ["jobs", "nope"],  # unknown: one line, exit 2
    ["state", "info"],
    ["alert", "list", "--json"],
    ["silence", "list"],
    ["runs"],
    ["runs", "--json", "nightly"],
    ["runs", "nightly", "--last"],
    ["runs", "broken", "--last"],  # 1: the newest run failed
    ["runs", "never", "--last"],  # 1, with a message: no run recorded
    ["runs", "--limit", "0"],  # 2: out of range, one line
]


@pytest.mark.parametrize("argv", PROCESS_ARGVS, ids=" ".join)
def test_processes_end_the_same_with_and_without_the_fast_path(
    argv: list[str], site: tuple[Path, dict[str, str]]
) -> None:
    """stdout, stderr (timestamps and durations aside) and the exit code of each command,
    its errors included, are the same on the fast path and with RELIACTL_FAST=0."""
    work, env = site
    fast, slow = _both(argv, env, work)
    assert (fast.returncode, _unstamped(fast.stdout), _strip(fast.stderr)) == (
        slow.returncode,
        _unstamped(slow.stdout),
        _strip(slow.stderr),
    )


HELP_PATHS = [path.split() for path in _fastgen.FAST if path not in ("run", "health")]


@pytest.mark.parametrize("path", HELP_PATHS, ids=" ".join)
def test_help_is_byte_equal_to_typers(path: list[str], site: tuple[Path, dict[str, str]]) -> None:
    """Each command's --help (and -h after options) from the fast path is Typer's, byte for
    byte; the console script's program name too for one of them."""
    work, env = site
    fast, slow = _both([*path, "--help"], env, work)
    assert slow.returncode == 0 and slow.stdout.startswith(b"Usage: ")
    assert (fast.returncode, fast.stdout, fast.stderr) == (0, slow.stdout, slow.stderr)
    script = shutil.which("reliactl", path=os.path.dirname(sys.executable))
    if script and path == ["breaker", "show"]:
        cmd = [script, *path, "--json", "-h"]
        fast = subprocess.run(cmd, capture_output=True, env=env, cwd=work, timeout=120)
        slow = subprocess.run(
            cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=work, timeout=120
        )
        assert slow.stdout.startswith(b"Usage: reliactl breaker show")
        assert (fast.returncode, fast.stdout) == (0, slow.stdout)


@pytest.mark.parametrize(
    "argv",
    [
        ["config", "show"],
        ["config", "validate"],
        ["breaker", "list"],
        ["breaker", "show", "api"],
        ["retry", "plan"],
        ["cleanup", "--older-than", "1d", "junk", "--dry-run"],
        ["doctor"],
        ["http", "GET", "$URL/"],
        ["jobs"],
        ["state", "info"],
        ["alert", "list"],
        ["silence", "list"],
        ["runs"],
    ],
    ids=" ".join,
)
def test_read_only_commands_import_no_typer_click_rich_or_pydantic(
    argv: list[str], site: tuple[Path, dict[str, str]]
) -> None:
    """Each covered command starts without typer, click, rich or pydantic (python -X
    importtime lists every module the process imported)."""
    work, env = site
    argv = [a.replace("$URL", env["TEST_URL"]) for a in argv]
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result, modules = start_reliactl(argv, env=env, cwd=work)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "reliactl.cli._fast" in modules
    path = " ".join(argv[:2]) if " ".join(argv[:2]) in _fastgen.FAST else argv[0]
    assert _fastgen.FAST[path][0] in modules  # the command's own module (`runs`: cli.run)
    # httpx imports its own CLI (click, rich) when they are installed: the core's import, not
    # the CLI layer's (reliactl/http.py; a user install has no click)
    heavy = ("typer", "pydantic") if argv[0] == "http" else HEAVY
    assert [m for m in modules if m.split(".")[0] in heavy] == []


def _on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    """Run reliactl with stdout and stderr on a 100-column pseudo-terminal: its exit code and
    every byte it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "reliactl", *argv],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return process.wait(timeout=120), b"".join(chunks)
    finally:
        os.close(master)


@pytest.mark.parametrize(
    "argv",
    [["breaker", "list"], ["retry", "plan", "--seed", "1", "--jitter", "full"], ["doctor"]],
    ids=" ".join,
)
def test_terminal_output_is_byte_equal_on_both_paths(
    argv: list[str], site: tuple[Path, dict[str, str]]
) -> None:
    """On a terminal (rich tables, colour) the fast path renders exactly what the Typer path
    renders: both call the same rendering code, which imports rich only there."""
    work, env = site
    env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    fast = _on_a_terminal(argv, env, work)
    slow = _on_a_terminal(argv, {**env, "RELIACTL_FAST": "0"}, work)
    assert (fast[0], _unstamped(fast[1])) == (slow[0], _unstamped(slow[1]))
    if argv[0] != "doctor":
        assert b"\xe2\x94" in fast[1] or b"\xe2\x95" in fast[1]  # rich's box drawing


@pytest.mark.parametrize("value", ["0", "false", "FALSE", " No ", "off", "Off"])
def test_the_off_switch_accepts_the_usual_false_spellings(value: str, monkeypatch: Any) -> None:
    """RELIACTL_FAST=0, false, no or off (any case, blanks around) turn the fast path off."""
    monkeypatch.setenv("RELIACTL_FAST", value)
    assert _fast.plan(["breaker", "list"]) is None
    assert _fast.plan(["run", "--", "true"]) is None


@pytest.mark.parametrize("value", ["1", "", "yes", "on", "true", "00", "fast"])
def test_other_values_of_the_off_switch_leave_the_fast_path_on(
    value: str, monkeypatch: Any
) -> None:
    """Anything but a false spelling (unset, empty, 1, yes, ...) leaves the fast path on."""
    monkeypatch.setenv("RELIACTL_FAST", value)
    assert _fast.plan(["breaker", "list"]) is not None


def test_the_off_switch_spelled_off_reaches_typer_in_a_real_process(
    site: tuple[Path, dict[str, str]],
) -> None:
    """`RELIACTL_FAST=Off reliactl config show` runs the Typer app (it imports typer)."""
    work, env = site
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reliactl", "config", "show"],
        capture_output=True,
        text=True,
        env={**env, "RELIACTL_FAST": "Off"},
        cwd=work,
        timeout=120,
    )
    assert result.returncode == 0
    assert any(line.endswith("| typer") for line in result.stderr.splitlines())


NUMBERS = ["7", " 7 ", "+7", "-0", "007", "5.0", "5.5", "1e3", "nan", "inf", "0x10", "1_000"]
NUMBERS += ["\u0663", "7\u0663", "", " ", "7 7", "--7", "\uff17"]


@pytest.mark.parametrize("text", NUMBERS, ids=repr)
@pytest.mark.parametrize("target", [int, float], ids=["INT", "FLOAT"])
def test_numbers_convert_as_clicks_types_but_ascii_without_underscores(
    target: type, text: str
) -> None:
    """Integer and float options convert as click's INT and FLOAT do (``int(text)``,
    ``float(text)``: `5.0` is not an integer, `1e3` is a float), on both paths (the fast path
    and Typer's coercion share ``_fastparams._convert_one``), except two refusals DESIGN's
    bad-input table promises: other scripts' digits (U+0663) and `_` separators (`1_000`)."""
    from reliactl.cli._fastparams import _convert_one

    try:
        clicks: Any = target(text)
    except ValueError:
        clicks = ValueError
    try:
        ours: Any = _convert_one(target, text)
    except ValueError:
        ours = ValueError
    if not text.strip().isascii() or "_" in text:
        assert ours is ValueError
    elif clicks is not ValueError and clicks != clicks:  # nan
        assert ours != ours
    else:
        assert ours == clicks


@pytest.mark.parametrize("value", ["5.0", "1_000", "\u0663"])
def test_bad_integers_are_the_same_usage_error_on_both_paths(
    value: str, site: tuple[Path, dict[str, str]]
) -> None:
    """`retry plan --seed 5.0` (or 1_000, or U+0663) is one line and exit 2, alike on the fast
    path (which leaves the bad value to Typer) and with RELIACTL_FAST=0."""
    work, env = site
    fast, slow = _both(["retry", "plan", "--seed", value], env, work)
    assert slow.returncode == 2 and slow.stderr.startswith(b"reliactl: error: ")
    assert (fast.returncode, fast.stdout, fast.stderr) == (2, b"", slow.stderr)


FAILING = """\
import sys
import reliactl.config


def broken(*args, **kwargs):
    raise RuntimeError("boom") from KeyError("cause")


reliactl.config.to_plain = broken
sys.argv = ["reliactl", "config", "show"]
from reliactl.__main__ import main

main()
"""


@pytest.mark.parametrize("debug", ["1", ""], ids=["RELIACTL_DEBUG=1", "no debug"])
def test_an_internal_error_reads_the_same_on_both_paths(
    debug: str, site: tuple[Path, dict[str, str]]
) -> None:
    """A bug (an exception that is no ReliactlError) exits 125 with one line; with
    RELIACTL_DEBUG=1 the line follows Python's traceback, byte-equal on the fast path and the
    Typer path: the frames of the dispatch (typer, click, the fast path) are left out, the
    command's frames and the exception chain are kept."""
    work, env = site
    env = {**env, "RELIACTL_DEBUG": debug}
    cmd = [sys.executable, "-c", FAILING]
    fast = subprocess.run(cmd, capture_output=True, env=env, cwd=work, timeout=120)
    slow = subprocess.run(
        cmd, capture_output=True, env={**env, "RELIACTL_FAST": "0"}, cwd=work, timeout=120
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (125, b"", slow.stderr)
    last = b"reliactl: error: internal error: RuntimeError: boom"
    if not debug:
        assert fast.stderr == last + b" (set RELIACTL_DEBUG=1 for a traceback)\n"
        return
    assert fast.stderr.endswith(b"RuntimeError: boom\n" + last + b"\n")
    assert b"KeyError: 'cause'" in fast.stderr and b"in show\n" in fast.stderr
    for hidden in (b"typer", b"click", b"_fast.py", b"__main__.py"):
        assert hidden not in fast.stderr
