"""What importing `run`'s core loads (issue 21, item 4: start-up is paid on every cron tick).

`reliactl run -- true` imports the job engine, the runner, the lock layer, history and the
SQLite store. None of them may pull in a module only a rare branch needs: logging (the store
logs only a warning), ctypes (the runner builds prctl on `_ctypes`), subprocess, asyncio,
threads pools, the CLI libraries or the config loader. Pinned on a real interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importtime import cron_env, imported, start_reliactl

RUN_CORE = (
    "reliactl.jobs",
    "reliactl.runner",
    "reliactl.locks",
    "reliactl.history",
    "reliactl.state",
    "reliactl.state.sqlite",
)

NOT_LOADED = (
    "logging",
    "ctypes",
    "subprocess",
    "asyncio",
    "concurrent.futures",
    "multiprocessing",
    "typer",
    "click",
    "rich",
    "pydantic",
    "httpx",
    "yaml",
    "psutil",
    "redis",
    "opentelemetry",
    "resource",
    "reliactl.config",
    "reliactl.health",
    "reliactl.tracing",
)


def loaded_by(modules: tuple[str, ...]) -> set[str]:
    code = f"import sys, json; import {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout))


def test_importing_the_run_core_loads_nothing_it_does_not_need() -> None:
    """The run core's imports stay free of logging, ctypes, subprocess, asyncio, CLI and config."""
    loaded = loaded_by(RUN_CORE)
    assert set(RUN_CORE) <= loaded
    unwanted = sorted(m for m in NOT_LOADED if m in loaded)
    assert unwanted == [], f"the run core imports {unwanted}"


CORE_RECORD_MODULES = (
    "reliactl.errors",
    "reliactl.ranges",
    "reliactl.jobs",
    "reliactl.runner",
    "reliactl.locks",
    "reliactl.state.base",
    "reliactl.health.model",
    "reliactl.health.alertstate",
)

SPY = """
import dataclasses, runpy, sys
real = dataclasses._create_fn
def spy(name, *args, **kwargs):
    module = kwargs['globals'].get('__name__', '')
    print('DC', module, name, file=sys.stderr, flush=True)
    return real(name, *args, **kwargs)
dataclasses._create_fn = spy
import builtins
real_compile = builtins.compile
def compile_spy(source, filename, mode, *args, **kwargs):
    if mode == 'exec' and str(filename).startswith('<reliactl'):
        print('CC', filename, file=sys.stderr, flush=True)
    return real_compile(source, filename, mode, *args, **kwargs)
builtins.compile = compile_spy
sys.argv = ['reliactl', *sys.argv[1:]]
runpy.run_module('reliactl', run_name='__main__', alter_sys=True)
"""


def _cli_start(argv: list[str], tmp_path: Path) -> tuple[list[str], set[str]]:
    """(module of each dataclass method compiled, modules imported) for a real CLI start;
    a source reliactl generated and compiled itself shows as a ``<reliactl...>`` entry."""
    env = cron_env(tmp_path)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", SPY, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode in (0, 1, 2, 3), out.stderr[-2000:]
    compiled = [
        line.split()[1] for line in out.stderr.splitlines() if line.startswith(("DC ", "CC "))
    ]
    return compiled, set(imported(out.stderr))


@pytest.mark.parametrize("argv", [["run", "--", "true"], ["health", "--json"]], ids=" ".join)
def test_run_and_health_compile_no_core_record_methods(argv: list[str], tmp_path: Path) -> None:
    """`run -- true` and `health --json` compile no dataclass methods for the core's frozen
    records (reliactl._records builds them: 162 and 126 compilations before, ~0.5 ms each);
    only the mutable runner._AttemptState / alertstate.Snapshot (3 each) remain. The
    records' ``__init__`` are closures: nothing is compiled at the first instance either (one
    compile of every pending class's ``__init__`` cost 6-12 ms of each start); the breaker
    settings, the CLI's AppContext and the runner's attempt state compile nothing (or only
    an ``__init__``) either. Neither
    start imports uuid (and so platform), which only `silence add` needs, logging (the
    monitor logs only in `serve`'s failures) or tempfile (only `--textfile` writes one)."""
    compiled, modules = _cli_start(argv, tmp_path)
    core = [m for m in compiled if m in CORE_RECORD_MODULES]
    assert len(core) <= 3, core
    assert not [m for m in compiled if m.startswith("<reliactl")], compiled
    # BreakerSettings and CircuitBreakerConfig are records too, AppContext a plain class,
    # and runner._AttemptState compiles its __init__ only (6 + 6 + 3 + 2 methods before).
    shared = ("reliactl._settings", "reliactl.config._schema", "reliactl.cli.context")
    assert not [m for m in compiled if m in shared], compiled
    assert compiled.count("reliactl.runner") <= 1, compiled
    assert len(compiled) <= 30, compiled
    assert "reliactl.cli._fast" in modules and "dataclasses" in modules
    assert not {"uuid", "platform", "logging", "tempfile", "shutil"} & modules


REGEX_SPY = """
import collections, json, sys
import re, re._compiler as compiler
real = compiler.compile
made = collections.Counter()
def spy(pattern, flags=0):
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get('__name__', '').split('.')[0] == 're':
        frame = frame.f_back
    made[frame.f_globals.get('__name__') if frame else '?'] += 1
    return real(pattern, flags)
compiler.compile = spy
import reliactl.redact, reliactl.locks, reliactl.durations
import reliactl.health.checks, reliactl.health.model
print(json.dumps(made))
"""


def test_redact_and_locks_compile_their_rare_regexes_at_first_use() -> None:
    """Every `run` and `health` imports `reliactl.redact` (through the config) and `run`
    imports `reliactl.locks`: importing them compiles none of redact's 14 webhook/URL
    patterns (~1 ms; only a URL being redacted needs them) nor the locks' interpreter
    rules (only `sh -c`-style commands need them), nor `reliactl.durations` its three
    duration/size patterns (a start without a configuration file parses none), nor
    `reliactl.health.checks` its plugin perfdata patterns or `health.model` its one-line
    rule (a str.translate table, equal to the pattern it replaced, widened to C1 and the
    bidi controls, on every character up to U+3000 and the line separators), and all still
    work when used (including the ASCII-only digits rule)."""
    out = subprocess.run(
        [sys.executable, "-c", REGEX_SPY], capture_output=True, text=True, timeout=60, check=True
    )
    made = json.loads(out.stdout)
    assert made.get("reliactl.redact", 0) == 0, made
    assert made.get("reliactl.locks", 0) <= 3, made  # names, INTERPRETERS, literal chars
    assert made.get("reliactl.durations", 0) == 0, made
    assert made.get("reliactl.health.checks", 0) == 0, made
    assert made.get("reliactl.health.model", 0) == 0, made
    import re

    from reliactl.health.checks import parse_perfdata
    from reliactl.health.model import one_line

    # the pattern it replaced, and C1 and the bidi controls (units.printable's display set)
    old_rule = re.compile(
        "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
    )
    every = "".join(map(chr, range(0x3000))) + "\u2028\u2029\U0001f600"
    assert one_line(every) == old_rule.sub(" ", every)
    perf = parse_perfdata("'a b'=1.5s;2;3;0;10 c=U d=x e=-2e3KB;;;;bad")
    assert [(p.label, p.uom, p.min, p.max) for p in perf] == [
        ("a b", "s", 0.0, 10.0),
        ("c", "", None, None),
        ("e", "KB", None, None),
    ]
    from reliactl import durations, locks, redact

    assert durations.parse_duration("1h30m") == 5400.0 and durations.parse_duration("2") == 2.0
    assert durations.parse_size("2KiB") == 2048
    with pytest.raises(ValueError):
        durations.parse_duration("\u0665s")  # another script's digit: still refused (re.ASCII)

    assert redact.redact_url("https://discord.com/api/webhooks/1/tok").endswith("/1/***")
    assert locks.derive_lock_name(["sh", "-c", "echo hi"])[1] is not None


# Imported by neither start (issue 21 item 4, wave 4): dataclasses and the inspect it pulls in
# (with ast, dis, tokenize, linecache: ~7.5 ms), since reliactl._records builds every record
# of these paths without them and the config loader reads the records' own field table.
NOT_AT_START = ("dataclasses", "inspect", "ast", "dis", "tokenize", "reliactl.backoff")
# Nor, with a configuration file or without, pathlib and the urllib.parse and ipaddress it
# imports (~3-4 ms): the loader's search and defaults and the store's open path work on text
# (state.base.path_text), LoadedConfig.path makes its Path when read (wave 3, healthcfg),
# redact parses URLs lazily.
NOT_ON_PATH = ("pathlib", "urllib.parse", "ipaddress")


# What a cron user's file holds: a few breakers, checks and jobs (a cron schedule and an
# `every:`), so the schema's sections, the job schedules' validation and the YAML loader run.
TYPICAL_CONFIG = """\
circuit_breaker:
  failure_threshold: 5
  recovery_timeout: 1m
  breakers:
    openai: {{failure_threshold: 3, recovery_timeout: 2m}}
    db: {{failure_threshold: 2, slow_call_threshold: 20s}}
retry:
  max_retries: 2
health_monitor:
  system_checks: [disk]
  checks:
  - {{name: heartbeat, kind: file_age, path: {home}/heartbeat, warn: 15m, critical: 1h}}
  - {{name: truth, kind: command, command: [/bin/true]}}
jobs:
  backup: {{schedule: 30 2 * * *, grace: 1h, max_duration: 2h, max_failures: 2}}
  report: {{every: 1h}}
"""


@pytest.mark.parametrize("with_file", [True, False], ids=["config file", "no config file"])
@pytest.mark.parametrize("argv", [["run", "--", "true"], ["health", "--json"]], ids=" ".join)
def test_run_and_health_starts_import_neither_dataclasses_nor_inspect(
    argv: list[str], with_file: bool, tmp_path: Path
) -> None:
    """A real `reliactl run -- true` / `health --json` (python -X importtime -m reliactl, as
    cron starts it, with an environment override and, in one case, a typical configuration
    file with breakers, checks and jobs, so the YAML and env paths of the loader and the job
    schedules' validation run too) imports none of dataclasses, inspect, ast, dis or
    tokenize, nor reliactl.backoff (the schema and `run`'s flags read the strategy and jitter
    names from reliactl._settings), nor pathlib, urllib.parse or ipaddress (with a file too),
    and still works (run exits 0; health exits with its status, 0-3). PyYAML is imported only
    by the first start with the file: not by the second (the kept parse) nor for the
    environment value; nor cronsim or zoneinfo at the second start (the kept verdict, and for
    `health` the cron job's expected runs kept in its record). Nor typing (~3 ms, issue 21
    wave 5: every module of these paths names its annotation-only types under
    TYPE_CHECKING), except through cronsim, which imports it itself, at the first start
    with the file; nor reliactl.tracing, with no OTEL_* variable set."""
    if with_file:
        (tmp_path / "reliactl.yaml").write_text(TYPICAL_CONFIG.format(home=tmp_path))
        (tmp_path / "heartbeat").write_text("")
    env = {**cron_env(tmp_path), "RELIACTL_RUN__TIMEOUT": "30s"}
    for start in ("first", "second"):
        out, started = start_reliactl(argv, env=env, cwd=tmp_path)
        assert out.returncode in ((0,) if argv[0] == "run" else (0, 1, 2, 3)), out.stderr[-2000:]
        modules = set(started)
        assert "reliactl.config._loading" in modules and "reliactl.state.sqlite" in modules
        unwanted = set(NOT_AT_START) | set(NOT_ON_PATH)
        assert not unwanted & modules, sorted(unwanted & modules)
        # PyYAML only to parse the file the first time: the second start reads the kept parse
        # (config/_cache.py), and the env value "30s" is read without it (_plain_scalar).
        parsed = with_file and start == "first"
        assert ("yaml" in modules) == parsed, (start, with_file)
        assert ("typing" in modules) == ("cronsim" in modules), (start, with_file)
        # no OTEL_* variable: tracing cannot be on, its module is not imported (run and health)
        assert "reliactl.tracing" not in modules, start
        if with_file:
            # the cron expression is validated by cronsim at the first start only (its verdict
            # is kept with the parse); `health` evaluates the schedule at the first start and
            # keeps the expected runs in the job's record (schedule.job_status), so neither
            # start imports cronsim or zoneinfo again (~5 ms with calendar, locale, sysconfig)
            assert ("cronsim" in modules) == parsed, (start, with_file)
            assert ("zoneinfo" in modules) == (parsed and argv[0] == "health"), start


def test_importing_reliactl_imports_neither_typing_nor_a_submodule() -> None:
    """`import reliactl` (every CLI start, and a library user's) loads only the package, its
    version and the configuration-source hook: not typing (~5 ms; `--help` and `--version`
    need none of it), not collections.abc; the public names still resolve on first use."""
    loaded = loaded_by(("reliactl",))
    ours = sorted(m for m in loaded if m.startswith("reliactl"))
    assert ours == ["reliactl", "reliactl._configsource", "reliactl._version"], ours
    assert "typing" not in loaded
    code = (
        "import reliactl, sys; "
        "print(reliactl.parse_duration('1m'), 'reliactl.durations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["60.0", "True"]


def test_health_round_imports_no_codec_fnmatch_or_tracing(tmp_path: Path) -> None:
    """A real `health --json` with the default system checks (issue 21, item 4) reports the
    system's file handles from /proc/sys/fs/file-nr read as bytes, so no "ascii" codec is
    looked up and imported, and the alert state imports fnmatch only to match a silence or
    an acknowledgement: neither `encodings.ascii` nor `fnmatch` is imported by the round, nor
    `reliactl.tracing` when no OTEL_* variable asks for traces (tests/test_tracing.py pins the
    spans of a round when one does), nor `resource` while the soft RLIMIT_NOFILE is enough
    (read with sysconf; the check still reports it)."""
    env = cron_env(tmp_path)
    out, started = start_reliactl(["health", "--json"], env=env, cwd=tmp_path)
    assert out.returncode in (0, 1, 2, 3), out.stderr[-2000:]
    modules = set(started)
    # no alert record in the store: the alert state is not even imported (sixth session; with
    # a silence it is: tests/test_health_start_imports.py)
    assert not {"encodings.ascii", "fnmatch", "reliactl.tracing", "resource"} & modules
    assert "reliactl.health.alertstate" not in modules
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    metric = checks["file_handles"]
    if os.path.exists("/proc/sys/fs/file-nr"):
        assert "system " in metric["message"], metric


@pytest.mark.parametrize(
    "argv", [["--help"], ["health", "--help"], ["run", "--help"]], ids=" ".join
)
def test_help_imports_no_typing(argv: list[str], tmp_path: Path) -> None:
    """`reliactl --help` and the run/health help pages (the fast dispatcher's table,
    reliactl/cli/_table.py, names its annotations' types for the type checker only)
    import no typing (issue 21, wave 5) and still print their usage."""
    out, started = start_reliactl(argv, env=cron_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage:" in out.stdout
    assert "typing" not in started


# The typer-free commands but `run`, `health`, `http` (httpx imports typing), `serve`
# (starlette), `state migrate` (redis) and `cleanup` (its public records' annotations name
# Literal, so reliactl.cleanup imports it): each is answered by the fast dispatcher, and none
# of their modules imports typing at run time (issue 21 item 4: ~3.6 ms self, ~9 ms with
# what it pulls in, of a start). `drill alerts` imports asyncio, which imports typing.
NO_TYPING_COMMANDS = [
    ["config", "show"],
    ["config", "validate"],
    ["config", "init", "{home}/starter.yaml"],
    ["breaker", "list"],
    ["breaker", "show", "api"],
    ["breaker", "reset", "api"],
    ["breaker", "trip", "api"],
    ["breaker", "close", "api"],
    ["retry", "plan"],
    ["doctor"],
    ["jobs"],
    ["state", "info"],
    ["state", "sync"],
    ["alert", "list"],
    ["alert", "ack", "nosuchcheck"],
    ["silence", "list"],
    ["silence", "add", "disk", "--for", "1h"],
    ["silence", "remove", "disk"],
    ["runs"],
    ["health", "history"],
    ["drill", "disk"],
    ["drill", "job-missed"],
    ["drill", "breaker"],
]


@pytest.mark.parametrize("argv", NO_TYPING_COMMANDS, ids=" ".join)
def test_fast_commands_import_no_typing(argv: list[str], tmp_path: Path) -> None:
    """A real start of each typer-free command (python -X importtime -m reliactl, as cron
    starts it, no configuration file) imports no typing (issue 21 item 4) and ends without
    a traceback; the command modules name Annotated/Any for the type checker only
    (reliactl/cli/_fastrt.typer_names gives them to Typer at registration)."""
    (tmp_path / "old").mkdir()
    argv = [arg.format(home=tmp_path) for arg in argv]
    out, started = start_reliactl(argv, env=cron_env(tmp_path), cwd=tmp_path)
    assert out.returncode in (0, 1, 2), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert "reliactl.cli._fast" in started and "typer" not in started
    assert "typing" not in started, argv


def test_config_show_with_a_config_file_imports_typing_only_through_cronsim(
    tmp_path: Path,
) -> None:
    """`reliactl config show` with a typical configuration file (jobs with a cron schedule)
    imports typing only through cronsim, which validates the schedule at the first start; the
    second start reads the kept parse and imports neither (issue 21)."""
    (tmp_path / "reliactl.yaml").write_text(TYPICAL_CONFIG.format(home=tmp_path))
    argv = ["config", "show"]
    for start in ("first", "second"):
        out, started = start_reliactl(argv, env=cron_env(tmp_path), cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        assert ("cronsim" in started) == (start == "first"), start
        assert ("typing" in started) == ("cronsim" in started), start


def test_the_command_cores_import_no_typing_and_keep_their_public_aliases() -> None:
    """Importing the cores of breaker, retry, chaos, backoff, doctor, drill and the state
    operations loads no typing (issue 21), and ``reliactl.cleanup.AgeBy``, public, is still
    ``Literal["newest", "mtime", "atime", "ctime"]``, also through ``from reliactl.cleanup
    import *``."""
    cores = (
        "reliactl.breaker",
        "reliactl.retry",
        "reliactl.chaos",
        "reliactl.backoff",
        "reliactl.doctor",
        "reliactl.drill",
        "reliactl.state.ops",
        "reliactl.state.fleet",
    )
    assert "typing" not in loaded_by(cores)
    code = (
        "from reliactl.cleanup import *; import typing; "
        "print(AgeBy == typing.Literal['newest', 'mtime', 'atime', 'ctime'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True"]
