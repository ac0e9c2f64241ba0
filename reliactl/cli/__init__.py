"""The reliactl command line: the only package that imports typer or rich.

Each command group lives in its own module and imports what it needs inside its commands, so
`reliactl --version` or `reliactl config show` never pay for psutil, httpx or pydantic.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated


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


_import_typer_plain_unless_terminal()

from reliactl.cli import _fastparams  # noqa: E402

_fastparams.install()

import typer  # noqa: E402

from reliactl._version import __version__  # noqa: E402
from reliactl.cli import breaker as breaker_cmd  # noqa: E402
from reliactl.cli import config as config_cmd  # noqa: E402
from reliactl.cli import doctor as doctor_cmd  # noqa: E402
from reliactl.cli import health as health_cmd  # noqa: E402
from reliactl.cli import http as http_cmd  # noqa: E402
from reliactl.cli import retry as retry_cmd  # noqa: E402
from reliactl.cli import run as run_cmd  # noqa: E402
from reliactl.cli.context import AppContext  # noqa: E402
from reliactl.cli.exitcodes import ExitCode, epilog  # noqa: E402

app = typer.Typer(
    name="reliactl",
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


def _print_version(value: bool) -> None:
    if value:
        print(f"reliactl {__version__}")
        raise typer.Exit(0)


@app.callback()
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
    ctx.obj = AppContext(config_path=config)


app.add_typer(config_cmd.app, name="config")
app.command("doctor")(doctor_cmd.doctor)
app.command("health")(health_cmd.health)
app.add_typer(breaker_cmd.app, name="breaker")
app.command("http", no_args_is_help=True)(http_cmd.http)
app.add_typer(retry_cmd.app, name="retry")
run_cmd.register(app)


def main() -> None:
    """Console entry point: never a traceback for a known error or a closed pipe."""
    run_cmd.FAST_EXIT = True  # a real process: `run` may skip interpreter teardown
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(ExitCode.SIGNAL_BASE + 2)
    except BrokenPipeError:
        # stdout went away (e.g. `| head`): exit quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(ExitCode.SIGNAL_BASE + 13)
    except Exception as exc:
        from reliactl.cli.output import error, report_error
        from reliactl.errors import ReliactlError

        if isinstance(exc, ReliactlError):
            sys.exit(report_error(exc))
        if os.environ.get("RELIACTL_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (set RELIACTL_DEBUG=1 for a traceback)")
        sys.exit(ExitCode.INTERNAL)
