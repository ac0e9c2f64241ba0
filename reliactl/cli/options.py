"""The CLI's one vocabulary: options every command shares, and the one usage-error path.

Each setting has one flag name everywhere, the name of its configuration key (``retry.
max_retries`` is ``--max-retries``), and each short flag means one thing across the CLI:

  -c  --config (root)        -C  --check NAME (health)    -d  --data (http, as curl)
  -f  --fail (http, as curl) -H  --header (http)           -i  --interval (health)
  -k  --kill-after (run)     -l  --list (cleanup)          -n  how many: --limit, --count
  -q  --quiet                -s  --signal (run)            -v  --verbose (http)
  -w  --watch (health)       -h  --help

Old spellings that scripts may hold (``health -d``/``-f``, ``cleanup -n``, ``breaker show
--transitions``, ``http --retries``) keep working as hidden aliases: they are absent from
--help and completions, and documented in docs/DESIGN.md section 2.

A usage error (unknown option, missing or bad value, a command's own check of its flags) is
one line on stderr, ``reliactl: error: ...``, never Click's four-line block or rich's red box,
and exits with the command's usage code: 3 for ``health`` (Nagios UNKNOWN), 125 for ``run``
(as timeout(1)), 2 elsewhere, the root included.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from reliactl.backoff import JITTERS, STRATEGIES
from reliactl.cli.exitcodes import ExitCode

# ---- the usage-error path


class UsageCommand(TyperCommand):
    """A command whose parser errors exit with its usage code (``usage_exit_code``)."""

    usage_exit_code: int = ExitCode.USAGE

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from typer._click.exceptions import UsageError

        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            exc.exit_code = self.usage_exit_code
            raise


def _one_line(exc: Any) -> typer.Exit:
    """Report a Click usage error as one line and return the Exit carrying its code."""
    from reliactl.cli.output import error

    message = " ".join(str(exc.format_message()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    code = exc.exit_code
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
        # A group's own options (health is a group since `health history`) carry no
        # parse_args hook of ours: the nearest command that names a usage code decides.
        walk = ctx
        while walk is not None:
            named = getattr(walk.command, "usage_exit_code", None)
            if named is not None:
                code = int(named)
                break
            walk = walk.parent
    error(message)
    return typer.Exit(code)


class RootGroup(TyperGroup):
    """The root command: every usage error below it, its own included, becomes one line.

    Typer would print Click's block (usage, hint, blank, error) or, on a terminal, a rich
    panel. Catching the error where the root parses its own arguments (make_context) and
    where it hands over to a subcommand (invoke) covers every command; a bare command group
    given no arguments still prints its help.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _one_line(exc) from None


def _current_usage_code() -> int:
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    while ctx is not None:
        code = getattr(ctx.command, "usage_exit_code", None)
        if code is not None:
            return int(code)
        ctx = ctx.parent
    return ExitCode.USAGE


def usage(message: str) -> typer.Exit:
    """A command's own check of its flags failed: one line, and the command's usage code.

    Use as ``raise usage("--limit: expected ...")``.
    """
    from reliactl.cli.output import error

    error(message)
    return typer.Exit(_current_usage_code())


def fail_usage(message: str) -> NoReturn:
    """``usage()`` for helpers typed as not returning."""
    raise usage(message)


# ---- help without Python types


def install_plain_metavars() -> None:
    """Help and usage lines name values as operators read them: ``NAME``, ``[NAME]``,
    ``PATH...``, never Typer 0.29's ``NAME <str>``, ``COMMAND <list[str]>`` or ``{NAME}``.

    Options get an explicit metavar each (a test walks the app); arguments are patched here,
    as Typer offers no per-argument hook.
    """
    from typer.core import TyperArgument, TyperOption

    if getattr(TyperArgument, "_reliactl_plain", False):
        return
    option_type = TyperOption.display_type_rich

    def option_display_type(self: Any, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value: rich help showed `--json <bool>`
        return option_type(self, ctx)

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None

    def many(self: Any) -> str:  # once: a metavar "NAME..." read "NAME......"
        return "..." if self.nargs != 1 and not str(self.display_name_raw).endswith("...") else ""

    def usage_display_name(self: Any) -> str:
        name = str(self.display_name_raw)
        if not self.required:
            name = f"[{name}]"
        return name + many(self)

    def rich_display_name(self: Any) -> str:
        return str(self.display_name_raw) + many(self)

    TyperOption.display_type_rich = option_display_type  # type: ignore[method-assign]
    TyperArgument.display_type_rich = display_type_rich  # type: ignore[method-assign]
    TyperArgument._rich_display_name = rich_display_name  # type: ignore[method-assign]
    TyperArgument._usage_display_name = usage_display_name  # type: ignore[method-assign]
    TyperArgument._reliactl_plain = True  # type: ignore[attr-defined]


# ---- options shared by every command that has the setting

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
BreakerNameArg = Annotated[str, typer.Argument(help="The breaker's name.", metavar="NAME")]


def quiet_option(help: str = "Print nothing but problems; the exit code tells.") -> Any:
    """``--quiet``/``-q``: say less (each command says what is left)."""
    return typer.Option("--quiet", "-q", help=help)


def limit_option(help: str) -> Any:
    """``--limit``/``-n N``: how many entries a listing shows (as head -n)."""
    return typer.Option("--limit", "-n", metavar="N", help=help)


def hidden(*spellings: str, metavar: str | None = None) -> Any:
    """An old spelling kept for scripts: it works, but --help and completions omit it."""
    return typer.Option(*spellings, hidden=True, metavar=metavar)


# Retry settings: flag = config key of the `retry` section. Each flag is declared once here (its
# name, metavar and choices); a command may word its help and pick its help panel. Their values
# are checked once, typer-free for `run`'s fast path: ``_fastrt.retry_delays`` (--base-delay,
# --max-delay) and ``_fastrt.max_elapsed`` (--max-elapsed), for `run` and `retry plan` alike.
def strategy_option(
    help: str = "Backoff strategy [default: retry.strategy]", panel: str | None = None
) -> Any:
    return typer.Option(
        "--strategy", metavar="|".join(STRATEGIES), help=help, rich_help_panel=panel
    )


def base_delay_option(
    help: str = "First delay, e.g. 500ms [default: retry.base_delay]", panel: str | None = None
) -> Any:
    return typer.Option("--base-delay", metavar="DURATION", help=help, rich_help_panel=panel)


def max_delay_option(
    help: str = "No delay is longer [default: retry.max_delay]", panel: str | None = None
) -> Any:
    return typer.Option("--max-delay", metavar="DURATION", help=help, rich_help_panel=panel)


def max_elapsed_option(
    help: str = "Give up after this much time in all (none: no limit) [default: retry.max_elapsed]",
    panel: str | None = None,
) -> Any:
    """--max-elapsed of `run` and `retry plan`: DURATION|none, read by ``_fastrt.max_elapsed``."""
    return typer.Option("--max-elapsed", metavar="DURATION|none", help=help, rich_help_panel=panel)


def max_retries_option(
    help: str = "Retries after the first attempt [default: retry.max_retries]",
    panel: str | None = None,
) -> Any:
    return typer.Option("--max-retries", metavar="N", help=help, rich_help_panel=panel)


def jitter_option(
    help: str = "Randomise delays so many hosts do not retry in step [default: retry.jitter]",
    panel: str | None = None,
) -> Any:
    return typer.Option("--jitter", metavar="|".join(JITTERS), help=help, rich_help_panel=panel)


StrategyOption = Annotated[str | None, strategy_option()]
BaseDelayOption = Annotated[str | None, base_delay_option()]
MaxDelayOption = Annotated[str | None, max_delay_option()]
MaxElapsedOption = Annotated[str | None, max_elapsed_option()]
MaxRetriesOption = Annotated[int | None, max_retries_option()]
JitterOption = Annotated[str | None, jitter_option()]
