"""The reliactl command line: the only package that imports typer or rich.

Each command group lives in its own module and imports what it needs inside its commands, so
`reliactl --version` or `reliactl config show` never pay for psutil, httpx or pydantic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from reliactl._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated

    import typer


def _import_typer_plain_unless_terminal() -> None:
    """Typer renders help and usage errors with rich (~50 ms to import) unless TYPER_USE_RICH=0.

    When stdout is not a terminal (cron, pipes, CI) reliactl asks for plain text, which is
    also what a log or grep wants. The variable is set only while typer reads it at import,
    so it never leaks into a child's environment.
    """
    if "typer" in sys.modules or "TYPER_USE_RICH" in os.environ:
        return
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        return
    os.environ["TYPER_USE_RICH"] = "0"
    try:
        import typer  # noqa: F401
    finally:
        del os.environ["TYPER_USE_RICH"]


def _prepare_typer() -> None:
    """Import typer (plain off a terminal), patch it once, and give this module's (string)
    annotations the names Typer evaluates at registration.

    Importing ``reliactl.cli`` imports no typer: the fast dispatcher (``reliactl.cli._fast``)
    runs `run`, `health` and `--help` without it; everything else builds the app here.
    """
    if "typer" in globals():
        return
    _import_typer_plain_unless_terminal()
    from reliactl.cli import _fastparams

    _fastparams.install()
    import typer

    from reliactl.cli.options import install_plain_metavars

    install_plain_metavars()
    from typing import Annotated  # Typer imports typing anyway; the fast path needs none

    globals().update(typer=typer, Annotated=Annotated)


def _print_version(value: bool) -> None:
    if value:
        print(f"reliactl {__version__}")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="Configuration file (default: $RELIACTL_CONFIG, ./reliactl.yaml, "
            "$XDG_CONFIG_HOME/reliactl/config.yaml, /etc/reliactl/config.yaml).",
        ),
    ] = None,
) -> None:
    """reliactl: operations toolkit for cron jobs, scripts and services."""
    from reliactl.cli.context import AppContext

    ctx.obj = AppContext(config_path=config)


# ---- command registration, one function per module, imported only when needed
#
# Each takes the app and the invoked path: () to register everything (help, completions,
# tests), (command,) or (command, subcommand) to register only what is about to run. Typer
# evaluates every registered function's annotations and builds its click parameters at each
# start, so `breaker list` builds `list` alone, not the group's other four commands, and
# `runs` skips `run`'s forty options. tests/cli/test_lazy_app.py checks that every command of
# a lean app equals the same command of the full app (parameters, help, usage code).


def _only(group: typer.Typer, path: tuple[str, ...]) -> typer.Typer:
    """``group`` with only the subcommand ``path[1]`` registered, when it names exactly one of
    its commands; otherwise ``group`` itself (``--help``, a typo's "no such command" and its
    suggestion need every sibling)."""
    if len(path) < 2 or group.registered_groups:
        return group
    import copy

    from typer.main import get_command_name

    kept = [
        info
        for info in group.registered_commands
        if info.callback is not None
        and (info.name or get_command_name(info.callback.__name__)) == path[1]
    ]
    if len(kept) != 1:
        return group
    lean = copy.copy(group)
    lean.registered_commands = kept
    return lean


def _cleanup(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import cleanup

    cleanup.typer_names()
    app.command("cleanup")(cleanup.cleanup)


def _config(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import config

    app.add_typer(_only(config.build(), path), name="config")


def _doctor(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import doctor

    doctor.typer_names()
    app.command("doctor")(doctor.doctor)


def _drill(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import drill

    drill.typer_names()
    app.command("drill", no_args_is_help=True)(drill.drill)


def _health(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import health

    health.register(app)  # health and health history (a group whose callback is `health`)


def _alert(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import alert

    app.add_typer(_only(alert.build(), path), name="alert")


def _silence(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import silence

    app.add_typer(_only(silence.build(), path), name="silence")


def _breaker(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import breaker

    app.add_typer(_only(breaker.build(), path), name="breaker")


def _http(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import http

    http.typer_names()
    app.command("http", no_args_is_help=True)(http.http)


def _jobs(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import jobs

    jobs.typer_names()
    app.command("jobs")(jobs.jobs)


def _retry(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import retry

    app.add_typer(_only(retry.build(), path), name="retry")


def _serve(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import serve

    serve.typer_names()
    app.command("serve")(serve.serve)


def _state(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import state

    app.add_typer(_only(state.build(), path), name="state")


def _run(app: typer.Typer, path: tuple[str, ...]) -> None:
    from reliactl.cli import run

    run.register(app, path[0] if path else None)  # run and runs, or the one invoked


# Top-level command name -> the function that registers it (and its siblings, for run/runs).
COMMANDS: dict[str, Callable[[typer.Typer, tuple[str, ...]], None]] = {
    "alert": _alert,
    "breaker": _breaker,
    "cleanup": _cleanup,
    "config": _config,
    "doctor": _doctor,
    "drill": _drill,
    "health": _health,
    "http": _http,
    "jobs": _jobs,
    "retry": _retry,
    "run": _run,
    "runs": _run,
    "serve": _serve,
    "silence": _silence,
    "state": _state,
}


def build_app(only: str | tuple[str, ...] | None = None) -> typer.Typer:
    """The Typer app with every command, or only the one about to run.

    ``only``: a top-level command name, or the invoked path (``invoked_path``): (command,)
    or (command, subcommand). Typer inspects every registered command's parameters at each
    start; building just the invoked command keeps `reliactl breaker list` and friends from
    paying for all the others.
    """
    _prepare_typer()
    from reliactl.cli.exitcodes import epilog
    from reliactl.cli.options import RootGroup

    path: tuple[str, ...] = (only,) if isinstance(only, str) else (only or ())
    new = typer.Typer(
        name="reliactl",
        cls=RootGroup,
        help="Keep scripts, cron jobs and services alive: health checks, circuit breakers, "
        "retries, locked and time-limited runs, safe cleanup and resilient HTTP.",
        epilog=epilog(),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        pretty_exceptions_short=True,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    new.callback()(root)
    done: set[Callable[[typer.Typer, tuple[str, ...]], None]] = set()
    for name, register in COMMANDS.items():
        if (not path or name == path[0]) and register not in done:
            done.add(register)
            register(new, path)
    return new


def invoked_path(args: list[str]) -> tuple[str, ...]:
    """The invoked top-level command and the word after it, skipping root options: () for
    none or an unknown command, (command,) or (command, word). ``word`` is whatever follows
    the command when it is not an option; the registration keeps a group whole unless it
    names one of the group's commands. A root --help before the command gives () too: the root's
    help, which lists every command, is what runs."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("--config", "-c"):
            index += 2
            continue
        if arg in ("-h", "--help"):
            return ()  # the root's eager help wins over what follows: it lists every command
        if arg.startswith("-"):
            index += 1
            continue
        if arg not in COMMANDS:
            return ()
        following = args[index + 1] if index + 1 < len(args) else ""
        if following and not following.startswith("-"):
            return (arg, following)
        return (arg,)
    return ()


def invoked_command(args: list[str]) -> str | None:
    """The top-level command named in ``args`` (skipping root options), if it is a known one."""
    path = invoked_path(args)
    return path[0] if path else None


_full_app: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    """``reliactl.cli.app``: the full app (tests, completions), built on first use."""
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(f"module 'reliactl.cli' has no attribute {name!r}")


def main() -> None:
    """Console entry point: never a traceback for a known error or a closed pipe."""
    from reliactl.cli import _fastrt

    _fastrt.ensure_std_fds()
    application = build_app(invoked_path(sys.argv[1:]))
    if "reliactl.cli.run" in sys.modules:
        from reliactl.cli import run as run_module

        run_module.FAST_EXIT = True  # a real process: `run` may skip interpreter teardown
    _fastrt.guarded(application)
