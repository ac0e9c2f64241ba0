"""What a command needs at run time from the CLI, without typer: shared by both dispatchers.

The fast dispatcher (``reliactl.cli._fast``) and the Typer app call the same command functions
(``reliactl.cli.run.run``, ``reliactl.cli.health.health``). Those functions therefore end and
fail without typer: they exit with ``SystemExit`` (what ``typer.Exit`` becomes in Click's
standalone mode anyway), report a flag of theirs that is wrong with ``usage_exit``, and read
the invocation's ``AppContext`` through a context that is either Click's or ``FastContext``.
The guard around a command (never a traceback, a closed pipe exits quietly) lives here too, so
both dispatchers end a command the same way.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, NoReturn


class FastContext:
    """The part of a Click context a command function reads: the root's ``obj`` (an
    ``AppContext``), ``find_root()`` and ``invoked_subcommand`` (always None: the fast path
    dispatches no subcommand)."""

    invoked_subcommand: str | None = None

    def __init__(self, obj: Any, command_path: str) -> None:
        self.obj = obj
        self.command_path = command_path
        self.parent: FastContext | None = None

    def find_root(self) -> FastContext:
        return self


def usage_exit(message: str, code: int) -> SystemExit:
    """A command's own check of its flags failed: one line on stderr, and its usage code.

    Use as ``raise usage_exit("--timeout: ...", ExitCode.INTERNAL)``; the same line and code
    as ``reliactl.cli.options.usage`` prints and returns under Typer.
    """
    from reliactl.cli.output import error

    error(message)
    return SystemExit(code)


def usage(message: str) -> SystemExit:
    """``usage_exit`` with the usage code of every command but `run` and `health`: 2.

    For the typer-free command modules (``raise usage("--limit: ...")``); the same line and
    code as ``reliactl.cli.options.usage`` under the root.
    """
    from reliactl.cli.exitcodes import ExitCode

    return usage_exit(message, ExitCode.USAGE)


def require_text(
    what: str,
    value: str,
    *,
    empty: bool = False,
    url: bool = False,
    secret: bool = False,
    code: int | None = None,
) -> str:
    """``value``, a name, ID or URL from the command line, if it can be used; else a usage
    error (one line, exit 2, or ``code``: `run`'s is 125): not UTF-8 (Python keeps argv's
    undecodable bytes as surrogates, which no store, request or message can encode) or,
    unless ``empty``, empty or only whitespace (`--name ' '` is as much a slip as `--name ''`:
    it named a breaker or a job's history ' '). A name with text is used exactly as given,
    spaces around it included: a breaker or run history an older version stored under ' api'
    stays addressable. A ``url`` is shown with its password and keys as ***
    (``reliactl.redact``); a ``secret`` one (a ping URL: its path is the credential) as its
    scheme and host alone, as every ping message shows it.

    The one owner of this check for the commands that name things (`http`, `breaker`,
    `silence`, `run`), returning the value: ``url = require_text("URL", url, url=True)``.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        from reliactl.units import printable

        shown = printable(value)  # one line: an undecodable byte as \xff, a control as \n
        if url:
            from reliactl.redact import redact_url

            shown = redact_url(shown, path=not secret)
        raise _usage_or(code, f"{what}: expected UTF-8 text, got '{shown}'") from None
    if not empty and not value:
        raise _usage_or(code, f"{what}: expected a non-empty value")
    if not empty and not value.strip():
        from reliactl.units import printable

        raise _usage_or(code, f"{what}: expected a non-empty value, got '{printable(value)}'")
    return value


def duration_option(
    flag: str, text: str, *, code: int | None = None, zero: bool = False, most: float | None = None
) -> float:
    """``text``, a duration flag's value, as seconds: above 0 (or 0 too, if ``zero``) and at
    most ``most`` (default: the 100-year bound of every duration); else a usage error (one
    line, exit 2, or ``code``) in the one wording, ``durations.parse_bounded``'s:
    "--for: expected a positive duration, got '0'". The one owner of a duration flag's check
    for every command, on both dispatchers: ``seconds = duration_option("--older-than", v)``.
    """
    from reliactl.durations import MAX_DURATION, parse_bounded
    from reliactl.errors import DurationError

    try:
        return parse_bounded(text, most=MAX_DURATION if most is None else most, zero=zero)
    except DurationError as exc:
        raise _usage_or(code, f"{flag}: {exc}") from None


def retry_delays(
    base_delay: str | None,
    max_delay: str | None,
    *,
    code: int | None = None,
    base_flag: str = "--base-delay",
) -> tuple[float | None, float | None]:
    """--base-delay and --max-delay of `run` and `retry plan` as seconds (None: not given, the
    configuration's): a duration, 0 included (retry at once, as retry.base_delay and the
    library's strategies allow), and --max-delay not below --base-delay when both are given;
    else a usage error (one line, exit 2, or ``code``). The one check of both flags, so a
    schedule `retry plan` shows is the one `run` takes (``base_flag``: `run`'s old --delay).
    """
    base = (
        None if base_delay is None else duration_option(base_flag, base_delay, code=code, zero=True)
    )
    cap = (
        None
        if max_delay is None
        else duration_option("--max-delay", max_delay, code=code, zero=True)
    )
    if base is not None and cap is not None and cap < base:
        from reliactl.durations import format_duration

        raise _usage_or(
            code,
            f"--max-delay ({format_duration(cap)}) must not be less than {base_flag} "
            f"({format_duration(base)})",
        )
    return base, cap


def max_elapsed(text: str, *, code: int | None = None) -> float | None:
    """--max-elapsed of `run` and `retry plan`, given: seconds, a positive duration, or None
    for "none" (or "off": no limit); else a usage error in ``duration_option``'s one wording
    ("--max-elapsed: expected a positive duration, got '0'"). The one check of the flag."""
    if text.strip().lower() in ("none", "off"):
        return None
    return duration_option("--max-elapsed", text, code=code)


def _usage_or(code: int | None, message: str) -> SystemExit:
    return usage(message) if code is None else usage_exit(message, code)


def typer_names(namespace: dict[str, Any], *names: str, **aliases: str) -> None:
    """Give a typer-free command module's (string) annotations the names Typer evaluates when
    it registers the module's commands: ``typer``, ``Annotated`` and ``Any`` (the module names
    them for the type checker only, so its fast start imports no typing) and the shared
    options of ``reliactl.cli.options`` (``names``, and ``alias=name`` for a module's own
    spelling). The one owner of this injection: every command module calls it.

    Called by the module's registration function, which Typer's app alone runs: the fast
    dispatcher calls the command functions without ever evaluating their annotations.
    """
    from typing import Annotated, Any  # Typer imports typing anyway; the fast path needs none

    import typer

    from reliactl.cli import options

    namespace.update({name: getattr(options, name) for name in names}, typer=typer)
    namespace.update(Annotated=Annotated, Any=Any)
    namespace.update({alias: getattr(options, name) for alias, name in aliases.items()})


def ensure_std_fds() -> None:
    """Reopen a closed stdin, stdout or stderr on /dev/null (as daemons and sudo do).

    Otherwise the next file reliactl opens (a lock, the state database) becomes fd 1 or 2,
    and the command's output, inherited through it, is written into that file.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            opened = os.open(os.devnull, os.O_RDWR)
        except OSError:
            return
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        os.set_inheritable(fd, True)  # os.open makes it close-on-exec: the command needs it
        if getattr(sys, name, None) is None:
            mode = "r" if fd == 0 else "w"
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def guarded(command: Callable[[], Any]) -> None:
    """Run a dispatched command: never a traceback for a known error or a closed pipe."""
    from reliactl.cli.exitcodes import ExitCode

    try:
        command()
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
        if isinstance(exc, OSError) and _output_failed(exc):
            stdout_failed(exc)
        if os.environ.get("RELIACTL_DEBUG"):
            _print_traceback(exc)
            error(f"internal error: {type(exc).__name__}: {exc}")
        else:
            hint = "set RELIACTL_DEBUG=1 for a traceback"
            error(f"internal error: {type(exc).__name__}: {exc} ({hint})")
        sys.exit(ExitCode.INTERNAL)


_WRITE_ERRORS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO))


def _output_failed(exc: OSError) -> bool:
    """Whether the OSError a command ended with was its output's: stdout still holds what it
    could not write, or (click writes help through a stream of its own, which drops what it
    could not write) a write error that names no file, as a failed write to stdout does."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return True
    return exc.errno in _WRITE_ERRORS and exc.filename is None


def stdout_failed(exc: OSError) -> NoReturn:
    """stdout cannot be written (/dev/full, an I/O error; a closed pipe is BrokenPipeError's
    quiet exit instead): one line on stderr and exit 125, whatever was being printed (help,
    --version, a command's answer), never a traceback or the interpreter's exit 120."""
    from reliactl.cli.exitcodes import ExitCode
    from reliactl.cli.output import error, stream_failed

    stream_failed("stdout")
    error(f"cannot write to stdout: {exc.strerror or exc}")
    sys.exit(ExitCode.INTERNAL)


def _dispatch_dirs() -> tuple[str, ...]:
    """Where the frames of the dispatch itself live: typer (and its click), click, and
    reliactl's own dispatchers and parsers."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    files = [
        os.path.join(package, "__main__.py"),
        *(os.path.join(here, name) for name in ("__init__.py", "_fast.py", "_fastrt.py")),
        os.path.join(here, "options.py"),
    ]
    for name in ("typer", "click"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            files.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(files)


def _print_traceback(exc: BaseException) -> None:
    """The traceback RELIACTL_DEBUG asks for, the same on both dispatchers: Python's own
    format, without the frames of the dispatch (typer/click's parser and invoke, or the fast
    path's), which differ between them and say nothing about the failure."""
    import traceback

    dispatch = _dispatch_dirs()
    report = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    current: traceback.TracebackException | None = report
    while current is not None and id(current) not in seen:  # causes and contexts too
        seen.add(id(current))
        kept = [frame for frame in current.stack if not frame.filename.startswith(dispatch)]
        current.stack = traceback.StackSummary.from_list(kept)
        current = current.__cause__ or current.__context__
    try:
        sys.stderr.write("".join(report.format()))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
