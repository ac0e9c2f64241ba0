"""The lean Typer app (reliactl/cli/__init__.py build_app with the invoked path) that every
command outside the fast path runs on: it registers only the invoked command, or only the
invoked subcommand of a group, and must be indistinguishable from the full app for that
command: the same parameters, help, usage code, errors and exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from importtime import start_reliactl

from reliactl.cli import build_app, invoked_path


def _click(app: Any) -> Any:
    import typer.main

    return typer.main.get_command(app)


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        path = (*prefix, name)
        found.append(path)
        found.extend(_paths(sub, path))
    return found


def _find(command: Any, path: tuple[str, ...]) -> Any:
    for word in path:
        command = command.commands[word]
    return command


def _value(value: Any) -> Any:
    """A comparable stand-in: functions by qualified name, Typer's per-build records (a
    dataclass, or an object whose repr is its address) by their fields, the rest by repr."""
    import dataclasses

    if isinstance(value, type) or value is None:
        return repr(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        return (type(value).__name__, [(f.name, _value(getattr(value, f.name))) for f in fields])
    if " object at 0x" in repr(value) and hasattr(value, "__dict__"):
        return (type(value).__name__, sorted((k, _value(v)) for k, v in vars(value).items()))
    return repr(value)


def _param(param: Any) -> tuple[Any, ...]:
    """Every attribute click/Typer keeps on the parameter (its runtime handle aside)."""
    fields = sorted((k, _value(v)) for k, v in vars(param).items() if k != "_runtime_param")
    return (type(param).__name__, *fields)


def _describe(command: Any) -> tuple[Any, ...]:
    return (
        type(command).__name__,
        _value(command.callback),
        command.help,
        command.short_help,
        command.epilog,
        command.hidden,
        command.no_args_is_help,
        command.options_metavar,
        getattr(command, "usage_exit_code", None),
        repr(sorted(command.context_settings.items())),
        getattr(command, "invoke_without_command", None),
        [_param(p) for p in command.params],
    )


FULL = _click(build_app())
PATHS = _paths(FULL)


def test_every_top_level_command_has_a_registration() -> None:
    """Each command of the full app can be built lean (the registration table misses none)."""
    from reliactl.cli import COMMANDS

    assert sorted(FULL.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_lean_command_equals_the_full_apps(path: tuple[str, ...]) -> None:
    """The command built for `reliactl PATH...` alone has the same parameters (names, flags,
    types, defaults, help), help text, class and usage code as in the app with every command;
    a lean group keeps only the invoked subcommand."""
    lean = _click(build_app(invoked_path(list(path))))
    assert list(lean.commands) == [path[0]]  # `runs` alone: not `run` too
    assert _describe(_find(lean, path)) == _describe(_find(FULL, path))
    if len(path) == 2 and path[0] != "health":
        assert list(_find(lean, path[:1]).commands) == [path[1]]


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_lean_help_is_the_full_apps(path: tuple[str, ...], monkeypatch: Any) -> None:
    """`reliactl PATH... --help` prints the same text on the lean app and the full app."""
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "80")
    argv = [*path, "--help"]
    lean = CliRunner().invoke(build_app(invoked_path(argv)), argv)
    full = CliRunner().invoke(build_app(), argv)
    assert (lean.exit_code, lean.stdout) == (full.exit_code, full.stdout)
    assert lean.exit_code == 0 and "Usage:" in lean.stdout


ERRORS = [
    ["breaker", "lst"],  # a typo: "did you mean" needs the whole group
    ["breaker", "list", "--bogus"],
    ["breaker", "show"],
    ["config", "show", "--nope"],
    ["retry", "plan", "--max-retries", "x"],
    ["runs", "--limit", "x"],
    ["run", "--max-retries", "x", "--", "true"],
    ["silence", "remove"],
    ["state", "info", "extra"],
    ["alert"],
    ["cleanup", "--older-than"],
]


@pytest.mark.parametrize("argv", ERRORS, ids=" ".join)
def test_errors_and_exit_codes_equal_the_full_apps(argv: list[str], tmp_path: Path) -> None:
    """A usage error prints the same message and exits with the same code on the lean app."""
    from typer.testing import CliRunner

    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    lean = CliRunner(env=env).invoke(build_app(invoked_path(argv)), argv)
    full = CliRunner(env=env).invoke(build_app(), argv)
    assert (lean.exit_code, lean.stdout, lean.stderr) == (full.exit_code, full.stdout, full.stderr)
    assert lean.exit_code != 0


ROOT_HELP_FIRST = [
    ["--help", "run"],
    ["-h", "breaker", "list"],
    ["-c", "x.yaml", "--help", "health"],
    ["--config=x.yaml", "-h", "runs", "backup"],
]


@pytest.mark.parametrize("argv", ROOT_HELP_FIRST, ids=" ".join)
def test_root_help_before_a_command_lists_every_command(argv: list[str], monkeypatch: Any) -> None:
    """`reliactl --help run` is the root's help (the eager --help wins over the command that
    follows), and it lists every command as the full app does, not only the one named after
    it (the lean app once registered just that command and listed it alone)."""
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "80")
    lean = CliRunner().invoke(build_app(invoked_path(argv)), argv)
    full = CliRunner().invoke(build_app(), argv)
    assert (lean.exit_code, lean.stdout) == (full.exit_code, full.stdout)
    assert lean.exit_code == 0 and "  cleanup " in lean.stdout and "  state " in lean.stdout


def test_invoked_path_names_the_command_and_the_word_after_it() -> None:
    """Root options are skipped; an option or nothing after the command gives the command
    alone; an unknown command gives nothing (the full app then answers)."""
    assert invoked_path(["-c", "x.yaml", "breaker", "list", "--json"]) == ("breaker", "list")
    assert invoked_path(["--config=x", "breaker", "--help"]) == ("breaker",)
    assert invoked_path(["runs", "backup"]) == ("runs", "backup")
    assert invoked_path(["doctor"]) == ("doctor",)
    assert invoked_path(["frobnicate", "list"]) == ()
    assert invoked_path(["--help"]) == ()


# Modules a representative non-hot command must not import: other commands' modules, the
# supervised run and health machinery, and the heavy libraries (rich renders only on a
# terminal; pydantic is replaced by _fastparams; httpx, aiohttp, psutil, yaml without a file).
NOT_FOR_BREAKER_LIST = (
    "rich",
    "pydantic",
    "httpx",
    "aiohttp",
    "psutil",
    "yaml",
    "asyncio",
    "ssl",
    "reliactl.cli.run",
    "reliactl.cli.health",
    "reliactl.cli.http",
    "reliactl.cli.cleanup",
    "reliactl.cli.config",
    "reliactl.cli.retry",
    "reliactl.cli.serve",
    "reliactl.cli.doctor",
    "reliactl.runner",
    "reliactl.health",
    "reliactl.cleanup",
)


def test_breaker_list_imports_nothing_heavy(tmp_path: Path) -> None:
    """`reliactl breaker list` (no config file) on the Typer path (RELIACTL_FAST=0: the fast
    path imports no typer at all) imports typer and its own module but none of
    NOT_FOR_BREAKER_LIST (python -X importtime lists every module the process imported)."""
    env = {
        **os.environ,
        "RELIACTL_FAST": "0",
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    env.pop("RELIACTL_CONFIG", None)
    result, imported = start_reliactl(["breaker", "list"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = set(imported)
    assert {"typer", "reliactl.cli.breaker", "reliactl.state.sqlite"} <= modules
    heavy = sorted(
        m for m in modules if any(m == h or m.startswith(h + ".") for h in NOT_FOR_BREAKER_LIST)
    )
    assert heavy == []


def test_the_startup_benchmark_measures_every_command() -> None:
    """benchmarks/startup.py's second table has a row for every command path of the app
    (each group's subcommands, `health history` included), so a new command cannot go
    unmeasured; each row is timed with its RELIACTL_FAST=0 twin."""
    import importlib.util

    import typer.main

    from reliactl.cli import app

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "startup.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("_startup_bench", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    measured = set()
    for args in module.COMMANDS.values():
        words = list(args[2:] if args[:1] == ("-c",) else args)
        measured.add(" ".join(words[:2]))
        measured.add(words[0])
    paths = set()
    root = typer.main.get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.add(name)
        paths.update(f"{name} {sub}" for sub in getattr(command, "commands", {}))
    assert paths <= measured, paths - measured
