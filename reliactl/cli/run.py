"""`reliactl run` (locked, retrying, time-limited execution) and `reliactl runs` (history).

This module parses flags into a ``reliactl.jobs.JobSpec``, renders events and output, and
exits; the job's rules (lock naming, gates, history) are ``reliactl.jobs``'s, the supervision
``reliactl.runner``'s. Options stop at the first word that is not an option, so the command and
its arguments pass through untouched (``--`` is optional). Bad options exit 125, as timeout(1).
"""

from __future__ import annotations

import errno
import json
import os
import sys

from reliactl._settings import JITTERS, STRATEGIES, max_retries_error
from reliactl.cli.exitcodes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import (
        JsonOption,
        base_delay_option,
        hidden,
        jitter_option,
        limit_option,
        max_delay_option,
        max_elapsed_option,
        max_retries_option,
        strategy_option,
    )
    from reliactl.runner import RunEvent, RunResult

STDOUT, STDERR = 1, 2

# Set by reliactl.cli.main() (a real process, not an in-process test runner): `run` then ends
# with os._exit after flushing and closing everything it opened, which skips ~30 ms of
# interpreter teardown that cron would pay every minute for nothing.
FAST_EXIT = False
# How long that exit waits for the state store's connection, which another thread (a health
# check abandoned at its timeout) may hold through its own bounded wait on a locked store.
CLOSE_WAIT = 1.0


RUN_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": False}


def _usage(message: str) -> SystemExit:
    from reliactl.cli._fastrt import usage_exit

    return usage_exit(message, ExitCode.INTERNAL)  # one line, exit 125 (as timeout(1))


def _duration(
    flag: str,
    text: str | None,
    *,
    forever: bool = False,
    interval: bool = False,
    positive: bool = False,
) -> float | None:
    """Seconds from a flag value (``_fastrt.duration_option``, with run's usage code); None
    if unset (or "forever" where allowed); at most 7d for an ``interval`` (a period between
    two looks); 0 allowed unless ``positive``."""
    if text is None:
        return None
    if forever and text.strip().lower() in ("forever", "inf", "infinity"):
        return None
    from reliactl.cli._fastrt import duration_option
    from reliactl.durations import MAX_INTERVAL

    most = MAX_INTERVAL if interval else None
    return duration_option(flag, text, code=ExitCode.INTERNAL, zero=not positive, most=most)


def _choice(flag: str, text: str | None, choices: tuple[str, ...]) -> str | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value not in choices:
        raise _usage(f"{flag}: expected one of {', '.join(choices)}, got {text!r}")
    return value


def _signal_number(text: str) -> int:
    import signal

    raw = text.strip().upper()
    if raw in ("0", "SIG0", "EXIT"):
        raise _usage(
            "--signal: 0 is not a signal (kill -0 only checks that a process exists), so it "
            "could not stop the command; use e.g. TERM, INT, HUP or KILL"
        )
    if raw.isdigit():
        number = int(raw)
        if number in {int(s) for s in signal.valid_signals()} and number != 0:
            return number
    else:
        name = raw if raw.startswith("SIG") else "SIG" + raw
        sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if sig is not None:
            return int(sig)
    raise _usage(f"--signal: unknown signal {text!r} (use a name like TERM or a number)")


def _codes(flag: str, text: str | None) -> frozenset[int] | None:
    if text is None:
        return None
    from reliactl.runner import parse_codes

    try:
        return parse_codes(text)
    except ValueError as exc:
        raise _usage(f"{flag}: {exc}") from None


# --------------------------------------------------------------------------- output


class RunOutput:
    """Where the command's output and reliactl's own lines go: terminal, log file, or a buffer.

    ``--timestamps`` stamps each line of the command's output; ``--log-file`` appends every
    line, stamped and tagged with its stream; ``--quiet-success`` holds everything back and
    replays it only if the run finally fails (chronic).
    """

    def __init__(
        self, *, timestamps: bool = False, log_fd: int | None = None, quiet_success: bool = False
    ) -> None:
        self.timestamps = timestamps
        self.log_fd = log_fd
        self.quiet = quiet_success
        self.held: list[tuple[int, bytes]] = []
        self.held_bytes = 0
        self.dropped = 0
        self._line_start = {STDOUT: True, STDERR: True}
        self._log_line_start = {STDOUT: True, STDERR: True}

    @staticmethod
    def _stamp() -> bytes:
        from reliactl.cli.output import utc_stamp

        return utc_stamp().encode() + b" "

    def _stamped(self, data: bytes, starts: dict[int, bool], stream: int, tag: bytes) -> bytes:
        out = bytearray()
        stamp = self._stamp() + tag
        for piece in data.splitlines(keepends=True):
            if starts[stream]:
                out += stamp
            out += piece
            starts[stream] = piece.endswith(b"\n")
        return bytes(out)

    def _emit(self, stream: int, data: bytes) -> None:
        if self.quiet:
            self.held.append((stream, data))
            self.held_bytes += len(data)
            while self.held_bytes > 64 * 1024 * 1024 and len(self.held) > 1:
                _, old = self.held.pop(0)  # bounded: keep the newest 64 MiB
                self.held_bytes -= len(old)
                self.dropped += len(old)
            return
        _write(stream, data)

    def write(self, stream: int, data: bytes) -> None:
        """The command's output on ``stream``; ``BrokenPipeError`` once the reader of
        reliactl's own ``stream`` went away (the runner then closes the command's pipe, so
        it gets SIGPIPE as in ``yes | ts | head -1``). Other write failures only drop."""
        if stream in _reader_gone:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        if self.log_fd is not None:
            tag = b"[out] " if stream == STDOUT else b"[err] "
            _write_fd(self.log_fd, self._stamped(data, self._log_line_start, stream, tag))
        if self.timestamps:
            data = self._stamped(data, self._line_start, stream, b"")
        self._emit(stream, data)
        if stream in _reader_gone:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    def end_attempt(self, attempt: int) -> None:
        # A last line without newline: end it so the next attempt's stamps start a line.
        for stream in (STDOUT, STDERR):
            if not self._line_start[stream]:
                self._emit(stream, b"\n")
                self._line_start[stream] = True
            if self.log_fd is not None and not self._log_line_start[stream]:
                _write_fd(self.log_fd, b"\n")
                self._log_line_start[stream] = True

    def message(self, text: str) -> None:
        """One of reliactl's own lines (always stamped) to stderr, and to the log; C-escaped
        (``printable``) when it is not printable as a whole, as ``output._say``: it may quote a
        lock's holder or a command."""
        from reliactl.units import printable

        text = printable(text)
        line = self._stamp() + b"reliactl: " + text.encode("utf-8", "replace") + b"\n"
        if self.log_fd is not None:
            _write_fd(
                self.log_fd,
                self._stamp() + b"[reliactl] " + text.encode("utf-8", "replace") + b"\n",
            )
        self._emit(STDERR, line)

    def replay(self) -> None:
        """The run failed: show what --quiet-success held back."""
        if self.dropped:
            _write(STDERR, f"reliactl: ({self.dropped} earlier bytes of output dropped)\n".encode())
        for stream, data in self.held:
            _write(stream, data)
        self.held.clear()


# Streams reliactl could not write (full disk, closed, reader gone): their output is dropped
# from then on, and one note says so (on the other stream and in the log, best effort).
_broken: set[int] = set()
# Those of them whose reader went away (EPIPE): the command's pipe for it is closed too.
_reader_gone: set[int] = set()
_log_for_note: list[int] = []


def _write(stream: int, data: bytes) -> None:
    if stream in _broken:
        return
    target = sys.stdout if stream == STDOUT else sys.stderr
    try:
        try:
            fd = target.fileno()
        except (AttributeError, OSError, ValueError):  # not a descriptor (tests)
            _write_stream(target, data)
            return
        # What went through the stream before goes first; then os.write, whole: a buffered
        # write to a non-blocking descriptor that is full drops bytes without a word.
        target.flush()
        from reliactl._runio import write_all

        write_all(fd, data)
    except (OSError, ValueError) as exc:
        # The job must run on, and its exit code pass through: drop what cannot be written.
        # A reader gone (EPIPE) is not a failure to write but the end of the pipeline:
        # RunOutput.write then has the runner close the command's pipe for this stream.
        if isinstance(exc, BrokenPipeError):
            _reader_gone.add(stream)
        _stream_broken(stream, exc)


def _write_stream(target: Any, data: bytes) -> None:
    """A stream without a descriptor (a test's): through its buffer, or as text."""
    try:
        buffer = target.buffer
    except AttributeError:
        target.write(data.decode("utf-8", "replace"))
        target.flush()
        return
    buffer.write(data)
    buffer.flush()


def _stream_broken(stream: int, exc: BaseException) -> None:
    from reliactl.cli.output import stream_failed, utc_stamp

    first = not _broken
    _broken.add(stream)
    stream_failed("stdout" if stream == STDOUT else "stderr")
    if not first:
        return
    name = "stdout" if stream == STDOUT else "stderr"
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    from reliactl._runio import Stalled

    if isinstance(exc, BrokenPipeError):
        note = f"{name} was closed by its reader ({why}); the command's {name} is closed too\n"
    elif isinstance(exc, Stalled):
        note = f"{name}: {why}; the rest of its output is dropped\n"
    else:
        note = f"cannot write to {name} ({why}); what would go there is dropped; the job runs on\n"
    if stream == STDOUT:
        _write(STDERR, f"{utc_stamp()} reliactl: {note}".encode())
    for fd in _log_for_note:
        _write_fd(fd, f"{utc_stamp()} [reliactl] {note}".encode())


def _write_fd(fd: int, data: bytes) -> None:
    from reliactl._runio import write_all

    try:
        write_all(fd, data)
    except OSError:
        pass


def _open_log(path: str) -> int:
    # O_NONBLOCK: a FIFO at the path must be refused at once, not block the job forever.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    from reliactl.trust import not_own, not_regular

    refused = not_regular(path)
    if refused is not None:
        raise _usage(f"--log-file: {refused}")
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        try:  # fs.protected_regular refuses another user's file in a sticky directory: say so
            not_ours = not_own(os.lstat(path))
        except OSError:
            not_ours = None
        if not_ours is not None:
            raise _log_not_own(path, not_ours) from None
        reason = "it is a symbolic link" if exc.errno == 40 else exc.strerror
        raise _usage(f"--log-file: cannot open {path}: {reason}") from None
    import stat

    st = os.fstat(fd)  # the file opened, not whatever the path names by now
    if not stat.S_ISREG(st.st_mode):  # swapped in after the check
        os.close(fd)
        raise _usage(f"--log-file: {path} is not a regular file; refused")
    not_ours = not_own(st)
    if not_ours is not None and _shared_directory(path):
        os.close(fd)
        raise _log_not_own(path, not_ours + " in a directory others can write")
    return fd


def _shared_directory(path: str) -> bool:
    """Is ``path``'s directory writable by others (/tmp, a shared drop)? There another user's
    file may have been put to catch what the job prints; in a directory that is not, a file
    of another user is one the caller chose (root's cron appending to a service's own log in
    /var/log/app). Unknown: treated as shared."""
    import stat

    try:
        mode = os.stat(os.path.dirname(os.path.abspath(path))).st_mode
    except OSError:
        return True
    return bool(mode & stat.S_IWOTH)


def _log_not_own(path: str, reason: str) -> SystemExit:
    """An existing --log-file of another user: the job's output (secrets included) would be
    appended where that user reads it. Refused before the job starts (exit 125)."""
    return _usage(
        f"--log-file: refusing {path}: it is {reason}; the job's output would go into another"
        " user's file (remove it, or log to a file of your own)"
    )


# The report's form (DESIGN.md section 2: a field changing meaning bumps it). Version 2 shows
# times as the other JSON documents do (ISO 8601 UTC text in `started_at`, the epoch number in
# `started_at_epoch`); version 1 had the number alone. Version 3: `health` (with `--check`) is
# `health --json` version 2, a `job` check's details times ISO text with `X_epoch` beside (were
# epoch numbers), a `process` check's `processes[].create_time` now `started_at` and
# `started_at_epoch`.
REPORT_VERSION = 3


def _write_json_report(path: str, result: RunResult | None, extra: dict[str, Any]) -> None:
    from reliactl.cli.output import strict_json, warn, with_times

    found: dict[str, Any] = {}
    if result is not None:
        found = with_times(result.to_dict(), "started_at")
        found["attempts"] = [with_times(a, "started_at") for a in found["attempts"]]
    doc = {"version": REPORT_VERSION, **found, **extra}
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(strict_json(doc, lambda d: json.dumps(d, indent=2, default=str)) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        warn(f"--json-report: cannot write {path}: {exc.strerror}")
        try:
            os.unlink(tmp)
        except OSError:
            pass


# --------------------------------------------------------------------------- run


def _typer_names() -> type:
    """Give this module's (string) annotations the names Typer evaluates when it registers
    `run` and `runs`, and return `run`'s command class (usage errors exit 125, timeout(1)'s
    "reliactl itself failed").

    The module itself imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``run()`` directly, so ``run()`` ends with ``SystemExit`` rather than ``typer.Exit``.
    """
    from reliactl.cli import _fastrt, options

    _fastrt.typer_names(
        globals(),
        "JsonOption",
        "base_delay_option",
        "hidden",
        "jitter_option",
        "limit_option",
        "max_delay_option",
        "max_elapsed_option",
        "max_retries_option",
        "strategy_option",
    )

    class RunCommand(options.UsageCommand):
        """`run`: usage errors exit 125, as timeout(1)."""

        usage_exit_code = ExitCode.INTERNAL

    return RunCommand


def register(app: typer.Typer, only: str | None = None) -> None:
    """`run` and `runs`; ``only`` one of them (the one about to be invoked: Typer inspects
    every registered function's ~40 parameters at each start, so `runs` skips run's)."""
    command_class = _typer_names()  # also gives the annotations their names
    if only in (None, "run"):
        app.command(
            "run",
            cls=command_class,
            context_settings=RUN_CONTEXT,
            options_metavar="[OPTIONS] [--]",
            no_args_is_help=False,
        )(run)
    if only in (None, "runs"):
        app.command("runs")(runs)


def run(
    ctx: typer.Context,
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="COMMAND",
            help="The command and its arguments, passed through untouched.",
            show_default=False,
        ),
    ],
    lock: Annotated[
        bool,
        typer.Option(
            "--lock",
            help="Hold an exclusive lock while running, named after the command's real path (the"
            " script's, behind sh/python/env), e.g. srv-app-backup_run.lock.",
            rich_help_panel="Lock",
        ),
    ] = False,
    lock_name: Annotated[
        str | None,
        typer.Option(
            "--lock-name",
            metavar="NAME",
            help="Name the lock (file run.lock_dir/NAME.lock); implies --lock.",
            rich_help_panel="Lock",
        ),
    ] = None,
    lock_wait: Annotated[
        str | None,
        typer.Option(
            "--lock-wait",
            metavar="DURATION|forever",
            help="Wait this long for a busy lock (default 0: exit 75 at once).",
            rich_help_panel="Lock",
        ),
    ] = None,
    skip_if_locked: Annotated[
        bool,
        typer.Option(
            "--skip-if-locked",
            help="A busy lock is a quiet exit 0 (for cron); implies --lock.",
            rich_help_panel="Lock",
        ),
    ] = False,
    lock_on_nfs: Annotated[
        bool,
        typer.Option(
            "--lock-on-nfs",
            help="Allow a lock directory on NFS/CIFS/sshfs (flock there may not be exclusive).",
            rich_help_panel="Lock",
        ),
    ] = False,
    lock_scope: Annotated[
        str | None,
        typer.Option(
            "--lock-scope",
            metavar="host|fleet",
            help="host: a lock file on this host; fleet: one holder across every host, a lease"
            " in the Redis state.url renewed while the job runs (lost: the job is stopped, exit"
            " 75; Redis unreachable: not run, exit 75); the command gets RELIACTL_LOCK_NAME and"
            " RELIACTL_FENCING_TOKEN. Implies --lock (default: the job's lock_scope, else"
            " run.lock_scope).",
            rich_help_panel="Lock",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Time limit of each attempt (default run.timeout); exit 124 when reached.",
            rich_help_panel="Time limits",
        ),
    ] = None,
    total_timeout: Annotated[
        str | None,
        typer.Option(
            "--total-timeout",
            metavar="DURATION",
            help="Time limit across all attempts and pauses.",
            rich_help_panel="Time limits",
        ),
    ] = None,
    kill_after: Annotated[
        str | None,
        typer.Option(
            "--kill-after",
            "-k",
            metavar="DURATION",
            help="SIGKILL the group this long after the timeout signal (default "
            "run.kill_after; 0: never, as timeout -k 0); exit 137.",
            rich_help_panel="Time limits",
        ),
    ] = None,
    signal_: Annotated[
        str,
        typer.Option(
            "--signal",
            "-s",
            metavar="SIG",
            help="Signal sent to the group on timeout.",
            rich_help_panel="Time limits",
        ),
    ] = "TERM",
    preserve_status: Annotated[
        bool,
        typer.Option(
            "--preserve-status",
            help="On timeout, exit with the command's own status instead of 124.",
            rich_help_panel="Time limits",
        ),
    ] = False,
    leave_running: Annotated[
        bool,
        typer.Option(
            "--leave-running",
            help="Leave processes the command started running after it exits (default: stop "
            "them like a timeout, holding the lock until they are gone). The lock is then "
            "released while they run.",
            rich_help_panel="Time limits",
        ),
    ] = False,
    retry: Annotated[
        bool,
        typer.Option(
            "--retry",
            help="Retry failures with the configured policy (retry.* settings); not an attempt "
            "that died of a broken pipe (its stdout or stderr reader gone).",
            rich_help_panel="Retries",
        ),
    ] = False,
    max_retries: Annotated[
        int | None,
        max_retries_option(
            help="Retries after the first attempt (implies --retry) [default: retry.max_retries].",
            panel="Retries",
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option("--retries", metavar="N", hidden=True, help="Old name of --max-retries."),
    ] = None,
    strategy: Annotated[
        str | None,
        strategy_option(
            help="Backoff strategy between attempts [default: retry.strategy].",
            panel="Retries",
        ),
    ] = None,
    backoff: Annotated[
        str | None,
        typer.Option("--backoff", metavar="NAME", hidden=True, help="Old name of --strategy."),
    ] = None,
    delay: Annotated[
        str | None,
        typer.Option("--delay", metavar="DURATION", hidden=True, help="Old name of --base-delay."),
    ] = None,
    base_delay: Annotated[
        str | None,
        base_delay_option(
            help="Base of the backoff. With jitter (retry.jitter, full by default) it is the "
            "upper bound of the first pause, drawn from 0..DURATION (equal: DURATION/2..DURATION; "
            "decorrelated: DURATION..3xDURATION); without jitter it is the first pause.",
            panel="Retries",
        ),
    ] = None,
    max_delay: Annotated[
        str | None,
        max_delay_option(
            help="No pause is longer than this.",
            panel="Retries",
        ),
    ] = None,
    jitter: Annotated[
        str | None,
        jitter_option(
            help="Randomise pauses so many hosts do not retry in step.",
            panel="Retries",
        ),
    ] = None,
    multiplier: Annotated[
        float | None,
        typer.Option(
            "--multiplier",
            metavar="X",
            help="Growth factor of exponential backoff, >= 1 [default: retry.multiplier].",
            rich_help_panel="Retries",
        ),
    ] = None,
    max_elapsed: Annotated[
        str | None,
        max_elapsed_option(
            help="Start no retry later than this after the first attempt started; a pause "
            "that would end past it is cut short (none: no limit) [default: "
            "retry.max_elapsed].",
            panel="Retries",
        ),
    ] = None,
    retry_on: Annotated[
        str | None,
        typer.Option(
            "--retry-on",
            metavar="CODES",
            help="Retry only these exit codes, e.g. 1,3,64-78 (never 126/127).",
            rich_help_panel="Retries",
        ),
    ] = None,
    no_retry_on: Annotated[
        str | None,
        typer.Option(
            "--no-retry-on",
            metavar="CODES",
            help="Never retry these exit codes.",
            rich_help_panel="Retries",
        ),
    ] = None,
    retry_on_timeout: Annotated[
        bool,
        typer.Option(
            "--retry-on-timeout",
            help="Retry an attempt that timed out too.",
            rich_help_panel="Retries",
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Name of this job in the history (default: --lock-name, else a name derived from"
            " the command's path, the same with or without --lock).",
            rich_help_panel="History and output",
        ),
    ] = None,
    timestamps: Annotated[
        bool,
        typer.Option(
            "--timestamps",
            help="Prefix each line of the command's output with an ISO-8601 UTC time.",
            rich_help_panel="History and output",
        ),
    ] = False,
    log_file: Annotated[
        str | None,
        typer.Option(
            "--log-file",
            metavar="PATH",
            help="Append all output and reliactl's lines, timestamped, to PATH (created 0600;"
            " in a directory others can write, an existing PATH must be your own file).",
            rich_help_panel="History and output",
        ),
    ] = None,
    quiet_success: Annotated[
        bool,
        typer.Option(
            "--quiet-success",
            help="Print output only if the run finally fails (chronic, for cron mail).",
            rich_help_panel="History and output",
        ),
    ] = False,
    json_report: Annotated[
        str | None,
        typer.Option(
            "--json-report",
            metavar="FILE",
            help="Write the run's result (attempts, codes, lock wait, health) as JSON to FILE.",
            rich_help_panel="History and output",
        ),
    ] = None,
    breaker: Annotated[
        str | None,
        typer.Option(
            "--breaker",
            metavar="NAME",
            help="Do not run while circuit breaker NAME is open (exit 69); record the "
            "outcome in it.",
            rich_help_panel="Breaker",
        ),
    ] = None,
    no_history: Annotated[
        bool,
        typer.Option(
            "--no-history",
            help="Do not record this run in the state store.",
            rich_help_panel="History and output",
        ),
    ] = False,
    job_name: Annotated[
        str | None,
        typer.Option(
            "--job",
            metavar="JOB",
            help="Run as job JOB of the configuration's jobs: section: its name in the history"
            " (unless --name), its ping, breaker and alert settings (flags win).",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    ping: Annotated[
        str | None,
        typer.Option(
            "--ping",
            metavar="URL",
            help="healthchecks.io check URL: URL/start when the command starts, then URL or"
            " URL/<exit code> with the output's tail (default: the job's ping.url, else"
            " $RELIACTL_PING_URL). Bounded: delays the start by at most 1s and the exit by"
            " at most 10s; never changes the exit code; a failed ping is a warning.",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    ping_start: Annotated[
        str | None,
        typer.Option(
            "--ping-start",
            metavar="URL",
            help="URL template pinged when the command starts (placeholders in braces: name,"
            " host, rid).",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    ping_success: Annotated[
        str | None,
        typer.Option(
            "--ping-success",
            metavar="URL",
            help="URL template pinged on success (placeholders in braces: name, host,"
            " exit_code, duration_ms, outcome, rid).",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    ping_failure: Annotated[
        str | None,
        typer.Option(
            "--ping-failure",
            metavar="URL",
            help="URL template pinged on failure (same placeholders).",
            rich_help_panel="Monitoring",
        ),
    ] = None,
    alert: Annotated[
        bool,
        typer.Option(
            "--alert",
            help="A run that finally fails alerts the health_monitor.alerts sinks (exit code,"
            " output tail; once per cooldown; one recovery message on the next success).",
            rich_help_panel="Monitoring",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--require-healthy",
            help="Run the configured health checks (health_monitor) once, under the lock, "
            "before the first attempt: CRITICAL does not start the command (exit 75, outcome "
            "gated, not counted by --breaker); WARNING or UNKNOWN starts it with a warning. "
            "The gate sends no alerts: alerting is `reliactl health`'s job.",
            rich_help_panel="Health gate",
        ),
    ] = False,
    check_alias: Annotated[bool, hidden("--check")] = False,
    chaos: Annotated[
        str | None,
        typer.Option(
            "--chaos",
            metavar="SPEC",
            help="Rehearse failures: fail=RATE (attempts fail without starting the command), "
            "exit=CODE (their exit code, default 1), delay=DURATION (before each attempt), "
            "kill-after=DURATION (SIGKILL the command's tree, a crash), e.g. fail=0.5,exit=75. "
            "Injected outcomes are marked in the run's history.",
            rich_help_panel="Rehearsal",
        ),
    ] = None,
    watch_health: Annotated[
        str | None,
        typer.Option(
            "--watch-health",
            metavar="DURATION",
            help="While the command runs, run the configured health checks (those of "
            "--require-healthy) every DURATION; on CRITICAL see --on-critical.",
            rich_help_panel="Health gate",
        ),
    ] = None,
    on_critical: Annotated[
        str,
        typer.Option(
            "--on-critical",
            metavar="warn|stop",
            help="What --watch-health does when health turns CRITICAL: warn (log it, once "
            "each time) or stop (stop the job like a timeout; exit 122, outcome "
            "health_stopped).",
            rich_help_panel="Health gate",
        ),
    ] = "warn",
    memory_max: Annotated[
        str | None,
        typer.Option(
            "--memory-max",
            metavar="SIZE",
            help="Memory limit of the job's whole process tree, e.g. 2GiB: enforced by the "
            "kernel in a cgroup of the job's own (v2 memory.max, else a v1 memory controller) "
            "where the machine allows it, and its RSS polled every 0.25s in any case; exceeding "
            "it stops the job like a timeout (exit 121, outcome memory_limit) [default: "
            "run.memory_max].",
            rich_help_panel="Limits",
        ),
    ] = None,
    cpu_time: Annotated[
        str | None,
        typer.Option(
            "--cpu-time",
            metavar="DURATION",
            help="CPU time limit of each process of the job (RLIMIT_CPU: SIGXCPU, then SIGKILL "
            "after --kill-after); exit 121, outcome cpu_limit [default: run.cpu_time].",
            rich_help_panel="Limits",
        ),
    ] = None,
    nice: Annotated[
        int | None,
        typer.Option(
            "--nice",
            metavar="N",
            help="Run the command at nice value N, -20..19 (as systemd's Nice=) [default: "
            "run.nice].",
            rich_help_panel="Limits",
        ),
    ] = None,
    io_class: Annotated[
        str | None,
        typer.Option(
            "--io-class",
            metavar="idle|best-effort",
            help="I/O scheduling class of the command (ioprio_set, as ionice -c) [default: "
            "run.io_class].",
            rich_help_panel="Limits",
        ),
    ] = None,
    max_output: Annotated[
        str | None,
        typer.Option(
            "--max-output",
            metavar="SIZE",
            help="Stop a job whose stdout + stderr exceed SIZE, e.g. 100MB (nothing past it is "
            "passed on); exit 121, outcome output_limit [default: run.max_output].",
            rich_help_panel="Limits",
        ),
    ] = None,
) -> None:
    """Run COMMAND supervised: lock, retries, time limits, signal forwarding, history.

    Options stop at the first word that is not an option (`--` is optional). Exit status: the
    command's own; 124 timed out (137 if it had to be killed); 125 reliactl failed or bad
    options; 126/127 cannot run / not found; 128+N killed by (or reliactl received) signal N;
    69 not run: the --breaker is open; 75 lock busy, fleet lock lost or its store unreachable,
    or health CRITICAL with --require-healthy; 121 stopped by a limit (--memory-max,
    --cpu-time, --max-output); 122 stopped by --watch-health; 0 with --skip-if-locked when
    busy.
    """
    from reliactl.cli.context import app_context
    from reliactl.cli.output import error, report_error, warn
    from reliactl.errors import ConfigError, GateSetupError, JobSpecError, LockError, ReliactlError
    from reliactl.jobs import FROM_CONFIG, JobSpec, StoreWarnings

    # --- flags first: a bad flag never runs the command, whatever the configuration
    timeout_s = _duration("--timeout", timeout)
    total_s = _duration("--total-timeout", total_timeout)
    kill_after_s = _duration("--kill-after", kill_after)
    wait_s = _duration("--lock-wait", lock_wait, forever=True) if lock_wait is not None else 0.0
    scope = _choice("--lock-scope", lock_scope, ("host", "fleet"))
    timeout_sig = _signal_number(signal_)
    retry_settings = _retry_settings(
        strategy=_alias("--strategy", strategy, "--backoff", backoff),
        base_delay=_alias("--base-delay", base_delay, "--delay", delay),
        max_retries=_alias("--max-retries", max_retries, "--retries", retries),
        max_delay=max_delay,
        multiplier=multiplier,
        jitter=jitter,
        max_elapsed=max_elapsed,
    )
    retry_codes = _codes("--retry-on", retry_on)
    no_retry_codes = _codes("--no-retry-on", no_retry_on)
    limits = _limit_flags(memory_max, cpu_time, nice, io_class, max_output)
    watching = _watch_flags(watch_health, on_critical)
    if json_report:
        _check_report_path(json_report)
    run_chaos = _chaos_spec(chaos)
    _check_names(
        {"--name": name, "--breaker": breaker, "--lock-name": lock_name, "--job": job_name},
        urls={
            "--ping": ping,
            "--ping-start": ping_start,
            "--ping-success": ping_success,
            "--ping-failure": ping_failure,
        },
    )

    app_ctx = app_context(ctx)
    try:
        config = app_ctx.loaded().config
    except ConfigError as exc:
        raise SystemExit(report_error(exc)) from None
    from reliactl.cli import _jobwatch

    opened: list[Any] = []
    store_warnings = StoreWarnings(warn)  # a fleet-locked run holds them (one line)

    def open_store() -> Any:
        store = app_ctx.store(warn=store_warnings)
        opened.append(store)
        return store

    try:  # a bad --job or ping URL is a usage error, as a bad flag
        name, breaker, watch = _jobwatch.resolve(
            config,
            job_name,
            name=name,
            breaker=breaker,
            open_store=open_store,
            lock_scope=scope,
            ping=ping,
            ping_start=ping_start,
            ping_success=ping_success,
            ping_failure=ping_failure,
            alert=alert,
        )
        spec = JobSpec(
            command=tuple(command),
            name=name,
            lock=lock or lock_wait is not None,
            lock_name=lock_name,
            lock_wait=wait_s,
            skip_if_locked=skip_if_locked,
            lock_on_nfs=lock_on_nfs,
            lock_scope=scope or _job_lock_scope(config, job_name),
            # timeout(1): a duration of 0 disables the timeout, and --kill-after 0 never SIGKILLs
            timeout=FROM_CONFIG if timeout_s is None else (timeout_s or None),
            total_timeout=total_s or None,
            kill_after=FROM_CONFIG if kill_after_s is None else (kill_after_s or None),
            timeout_signal=timeout_sig,
            preserve_status=preserve_status,
            leave_running=leave_running,
            chaos=run_chaos,
            retry=retry,
            **retry_settings,
            retry_on=retry_codes,
            no_retry_on=no_retry_codes or frozenset(),
            retry_on_timeout=retry_on_timeout,
            breaker=breaker,
            check=check or check_alias,
            history=not no_history,
            hooks=_jobwatch.hooks(watch),
            **_job_limits(config, job_name, limits),
            **watching,
        )
        job = _prepared(spec, config)
    except (JobSpecError, ValueError) as exc:
        raise _usage(str(exc)) from None
    _jobwatch.named(watch, job.name)

    log_fd = _open_log(log_file) if log_file else None
    if log_fd is not None:
        _log_for_note.append(log_fd)
    out = RunOutput(timestamps=timestamps, log_fd=log_fd, quiet_success=quiet_success)
    processing = timestamps or log_fd is not None or quiet_success
    sink = _output_sink(_jobwatch.output(watch, out), out, processing, job.options.max_output)

    def on_event(event: RunEvent) -> None:
        out.message(event.message)

    try:
        done = job.run(
            store=open_store, on_event=on_event, output=sink, store_warnings=store_warnings
        )
    except GateSetupError as exc:
        flag = "--require-healthy" if (check or check_alias) else "--watch-health"
        error(f"{flag}: {exc}")
        raise SystemExit(ExitCode.CONFIG) from None
    except LockError as exc:
        out.replay()
        error(str(exc))
        raise SystemExit(ExitCode.INTERNAL) from None
    except ReliactlError as exc:
        out.replay()
        raise SystemExit(report_error(exc)) from None
    result = done.run
    watched = _jobwatch.report(watch, out.message, opened[0] if opened else None, done.run_id)
    if result.outcome != "skipped":
        out.message(_summary(result))
    if not result.succeeded:
        out.replay()
    if json_report:
        extra: dict[str, Any] = {"breaker": done.breaker}
        extra.update(watched)  # pings and alerts, URLs redacted
        if check or check_alias:  # the gate's report, as `health --json` shows one
            from reliactl.cli.health import health_document

            gate = done.health
            extra["health"] = None if gate is None else health_document(gate, [])
        _write_json_report(json_report, result, extra)
    if log_fd is not None:
        os.close(log_fd)
    _exit(result.exit_code, opened[0] if opened else None, result.interrupted_by)


def _output_sink(sink: Any, out: RunOutput, processing: bool, max_output: int | None) -> Any:
    """The runner's sink: every path copying the job's output (processing, --max-output's
    counting, a ping's or alert's tail: ``sink``, wrapping ``out``) ends in ``out``, the one
    owner of the note a failed write gets (reader gone, full disk). None when nothing needs
    the output: the job writes to reliactl's stdout/stderr itself."""
    if sink is out and not processing and max_output is None:
        return None
    return sink


def _size(flag: str, text: str | None) -> int | None:
    """Bytes from a flag value (500MB, 2GiB); None if unset; a usage error if bad or <= 0."""
    if text is None:
        return None
    from reliactl.durations import parse_size
    from reliactl.errors import DurationError

    try:
        size = parse_size(text)
    except DurationError as exc:
        raise _usage(f"{flag}: {exc}") from None
    if size <= 0:
        raise _usage(f"{flag}: expected a size above 0, got {text!r}")
    return size


def _limit_flags(
    memory_max: str | None,
    cpu_time: str | None,
    nice: int | None,
    io_class: str | None,
    max_output: str | None,
) -> dict[str, Any]:
    """The limit flags given, as JobSpec fields (the rest come from the configuration)."""
    cpu = _duration("--cpu-time", cpu_time, positive=True)
    if nice is not None and not -20 <= nice <= 19:
        raise _usage(f"--nice: expected a number from -20 to 19, got {nice}")
    given = {
        "memory_max": _size("--memory-max", memory_max),
        "cpu_time": cpu,
        "nice": nice,
        "io_class": _choice("--io-class", io_class, ("idle", "best-effort")),
        "max_output": _size("--max-output", max_output),
    }
    return {key: value for key, value in given.items() if value is not None}


def _watch_flags(watch_health: str | None, on_critical: str) -> dict[str, Any]:
    """--watch-health and --on-critical as JobSpec fields."""
    seconds = _duration("--watch-health", watch_health, interval=True, positive=True)
    critical = _choice("--on-critical", on_critical, ("warn", "stop")) or "warn"
    return {"watch_health": seconds, "on_critical": critical}


def _job_limits(config: Any, job_name: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Flags win over the --job's own limits, which win over run.* (JobSpec's FROM_CONFIG)."""
    job = config.jobs.get(job_name) if job_name else None
    limits = dict(flags)
    if job is not None:
        for key in ("memory_max", "cpu_time", "nice", "io_class", "max_output"):
            if key not in limits and getattr(job, key) is not None:
                limits[key] = getattr(job, key)
    return limits


def _job_lock_scope(config: Any, job: str | None) -> str | None:
    """The lock_scope of --job's entry (which implies a lock), None without one."""
    from reliactl.cli import _jobwatch

    settings = _jobwatch.job_settings(config, job)
    return (settings.lock_scope or None) if settings is not None else None


def _alias(flag: str, value: Any, old_flag: str, old_value: Any) -> tuple[str, Any]:
    """A setting given by its name or by its old (hidden) spelling; both at once is an error."""
    if old_value is None:
        return flag, value
    if value is not None:
        raise _usage(f"{flag} and {old_flag} (its old name) both given; use {flag}")
    return old_flag, old_value


def _retry_settings(
    *,
    strategy: tuple[str, str | None],
    base_delay: tuple[str, str | None],
    max_retries: tuple[str, int | None],
    max_delay: str | None,
    multiplier: float | None,
    jitter: str | None,
    max_elapsed: str | None,
) -> dict[str, Any]:
    """The retry flags (each as (the flag used, its value) where an old name exists) as
    JobSpec fields; a bad value is a usage error."""
    retries_flag, retries = max_retries
    if retries is not None and max_retries_error(retries):
        raise _usage(f"{retries_flag}: {max_retries_error(retries)}")
    if multiplier is not None and not (multiplier >= 1 and multiplier != float("inf")):
        raise _usage(f"--multiplier: expected a finite number >= 1, got {multiplier:g}")
    from reliactl.cli._fastrt import retry_delays

    # `retry plan`'s check of the delays too: a previewed schedule is the one run takes.
    base, cap = retry_delays(
        base_delay[1], max_delay, code=ExitCode.INTERNAL, base_flag=base_delay[0]
    )
    return {
        "strategy": _choice(*strategy, STRATEGIES),
        "jitter": _choice("--jitter", jitter, JITTERS),
        "base_delay": base,
        "max_delay": cap,
        "max_elapsed": _max_elapsed(max_elapsed),
        "max_retries": retries,
        "multiplier": multiplier,
    }


def _chaos_spec(text: str | None) -> Any:
    """--chaos SPEC as a RunChaos; a bad one is a usage error. Announced on stderr once
    ``prepare_job`` accepted it (a production-marked store refuses it, exit 78)."""
    if text is None:
        return None
    from reliactl.chaos import parse_run_spec
    from reliactl.errors import ChaosError

    try:
        return parse_run_spec(text)
    except ChaosError as exc:
        raise _usage(str(exc)) from None


def _check_names(names: dict[str, str | None], urls: dict[str, str | None]) -> None:
    """A name or ping URL that is not UTF-8 (argv's undecodable bytes), or an empty name, is
    a usage error before anything runs (`require_text`, the rule of every command that names
    things): it used to run the job without the breaker it named, or without its pings, and
    an empty --breaker/--name ran the job as if the flag were not given."""
    from reliactl.cli._fastrt import require_text

    for flag, value in [*names.items(), *urls.items()]:
        if value is not None:
            url = flag in urls
            require_text(flag, value, empty=url, url=url, secret=url, code=ExitCode.INTERNAL)


def _prepared(spec: Any, config: Any) -> Any:
    """``prepare_job(spec, config)``; --chaos refused on a production-marked store exits 78
    with the one line chaos.rules gets there, an accepted one is announced on stderr."""
    from reliactl.cli.output import report_error, warn
    from reliactl.errors import ChaosError
    from reliactl.jobs import prepare_job

    try:
        job = prepare_job(spec, config)
    except ChaosError as exc:
        raise SystemExit(report_error(exc)) from None
    if spec.chaos is not None:  # a rehearsal is never silent
        warn(f"CHAOS ON: injecting failures into this run ({spec.chaos.describe()})")
    return job


def _check_report_path(path: str) -> None:
    from reliactl.trust import not_regular

    refused = not_regular(path)
    if refused is not None:
        raise _usage(f"--json-report: {refused}")


def _max_elapsed(text: str | None) -> Any:
    """--max-elapsed: seconds, None for 'none', or the configuration's retry.max_elapsed
    (``_fastrt.max_elapsed``, `retry plan`'s check and wording too)."""
    from reliactl.cli._fastrt import max_elapsed
    from reliactl.jobs import FROM_CONFIG

    if text is None:
        return FROM_CONFIG
    return max_elapsed(text, code=ExitCode.INTERNAL)


def _exit(code: int, store: Any, died_by: int | None = None) -> None:
    """Exit with ``code``; a real process ended by signal ``died_by`` dies by it instead.

    As timeout(1) does: after cleanup reliactl re-raises the signal with its default action
    (core dumps off), so a shell loop stops at the first Ctrl-C as with the bare command;
    the shell still sees 128+N.
    """
    if not FAST_EXIT:
        raise SystemExit(code)
    try:
        if store is not None:
            from reliactl.state.base import bounded_waits

            # an abandoned health check's thread may still hold the connection (busy on a
            # locked store): not waited for past CLOSE_WAIT, the exit closes the file anyway
            with bounded_waits(store, CLOSE_WAIT):
                store.close()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe, a store that fails to close: exit the slow, safe way
        raise SystemExit(code) from None
    if died_by is not None and code == 128 + died_by:
        _die_by(died_by)
    os._exit(code)


def _die_by(sig: int) -> None:
    import resource
    import signal

    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
    except (OSError, ValueError):
        pass  # then exit(128+N), which the shell reads the same way


def _summary(result: RunResult) -> str:
    from reliactl.durations import format_duration
    from reliactl.runner import signal_name

    took = format_duration(result.duration)
    tries = len(result.attempts)
    after = f" after {tries} attempt{'s' if tries != 1 else ''}" if tries > 1 else ""
    if result.outcome == "success":
        return f"succeeded in {took}{after}{_stopped(result)}"
    if result.outcome == "skipped":
        return f"skipped: {result.message}"
    if result.outcome in ("busy", "gated", "breaker_open", "lock_unavailable"):
        return f"not run: {result.message} (exit {result.exit_code})"
    if result.outcome == "lock_lost":
        return f"stopped in {took}{after}: {result.message} (exit {result.exit_code})"
    if result.outcome == "signal":
        sig = signal_name(result.interrupted_by or 0)
        return f"stopped by {sig} in {took}{after} (exit {result.exit_code}){_stopped(result)}"
    if result.outcome in ("not_found", "not_executable"):
        return f"{result.message} (exit {result.exit_code})"
    if result.outcome in ("memory_limit", "cpu_limit", "output_limit", "health_stopped"):
        return f"stopped after {took}{after}: {result.message} (exit {result.exit_code})" + (
            _stopped(result)
        )
    if result.outcome == "timeout":
        last = result.attempts[-1] if result.attempts else None
        how = "killed with SIGKILL" if last and last.killed else "timed out"
        return f"{how} after {took}{after} (exit {result.exit_code}){_stopped(result)}"
    final = result.attempts[-1] if result.attempts else None
    why = f" by {signal_name(final.signal)}" if final and final.signal else ""
    if final is not None and final.injected:
        why += f" (injected: {final.injected})"
    return f"failed{why} in {took}{after} (exit {result.exit_code}){_stopped(result)}"


def _stopped(result: RunResult) -> str:
    """ "; stopped 2 processes left running by the command" (what containment had to do)."""
    parts = []
    if result.leftovers:
        many = "es" if result.leftovers != 1 else ""
        parts.append(f"stopped {result.leftovers} process{many} the command left running")
    if result.escaped:
        many = "es" if result.escaped != 1 else ""
        parts.append(f"signalled {result.escaped} process{many} that had left its group")
    return "".join("; " + part for part in parts)


# --------------------------------------------------------------------------- runs

MAX_LIMIT = 1_000_000


def run_to_dict(record: Any) -> dict[str, Any]:
    """One run as `runs --json` (and serve's /api/runs) show it."""
    from reliactl.cli.output import with_times
    from reliactl.jobs import record_outcome

    doc = {
        "id": record.id,
        "name": record.name,
        "command": record.command,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration": None
        if record.ended_at is None
        else max(0.0, record.ended_at - record.started_at),
        "attempts": record.attempts,
        "exit_code": record.exit_code,
        "outcome": record_outcome(record),
        "host": _text_or_none(record.data.get("host")),
        "delayed": bool(record.data.get("delayed")),
    }
    injected = [a.get("injected") for a in record.data.get("attempts", ()) if isinstance(a, dict)]
    if any(injected):  # `run --chaos`: which attempts were rehearsed failures (fail / kill)
        doc["injected"] = injected
    data = record.data if isinstance(record.data, dict) else {}
    doc["peak_rss"] = data.get("peak_rss")  # bytes (None: not measured, or an older run)
    doc["cpu_time"] = data.get("cpu_time")  # seconds of CPU of the job's processes
    return with_times(doc, "started_at", "ended_at")


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _shown_outcome(record: Any) -> str:
    """OUTCOME of the runs table: "(delayed)" when it reached the shared store late."""
    from reliactl.jobs import record_outcome

    delayed = " (delayed)" if record.data.get("delayed") else ""
    return record_outcome(record) + delayed


def _runs_table(records: list[Any]) -> None:
    """The `runs` table: peak RSS and CPU time short ("13M", "0.02s"; "-" when not measured).
    On a terminal it fits 80 columns: STARTED without the year and seconds ("11-30 13:51Z";
    in full in --json and in the plain table), HOST only when a run came from another host,
    TRIES only when a run retried, and COMMAND gives way (cut with an ellipsis)."""
    import time

    from reliactl.cli.output import is_tty, iso_utc, table
    from reliactl.hostname import hostname
    from reliactl.units import format_duration, format_seconds_short, format_size_short

    def number(value: Any) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None

    tty = is_tty()
    rows = []
    for r in records:
        data = r.data if isinstance(r.data, dict) else {}
        rss, cpu = number(data.get("peak_rss")), number(data.get("cpu_time"))
        rows.append(
            {
                "ID": r.id,
                "NAME": r.name,
                "HOST": _text_or_none(data.get("host")) or "-",
                "STARTED": time.strftime("%m-%d %H:%MZ", time.gmtime(r.started_at))
                if tty
                else iso_utc(r.started_at),
                "TOOK": "-"
                if r.ended_at is None
                else format_duration(max(0.0, r.ended_at - r.started_at)),
                "TRIES": r.attempts,
                "EXIT": r.exit_code,
                "OUTCOME": _shown_outcome(r),
                "RSS": "-" if rss is None else format_size_short(rss),
                "CPU": "-" if cpu is None else format_seconds_short(cpu),
                "COMMAND": r.command,
            }
        )
    columns = list(rows[0])
    if tty:
        here = hostname()
        if all(row["HOST"] in (here, "-") for row in rows):
            columns.remove("HOST")
        if all(r.attempts in (0, 1, None) for r in records):
            columns.remove("TRIES")
    table(columns, [[row[c] for c in columns] for row in rows], elastic=("NAME", "COMMAND"))


def runs_document(records: list[Any]) -> dict[str, Any]:
    """The JSON document of `runs --json` (and serve's /api/runs)."""
    from reliactl.cli.output import TIMES_JSON_VERSION

    return {"version": TIMES_JSON_VERSION, "runs": [run_to_dict(r) for r in records]}


def runs(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Only runs of this job (its --name or lock name)."),
    ] = None,
    json_out: JsonOption = False,
    last: Annotated[
        bool,
        typer.Option(
            "--last",
            help="Only the newest run, and exit 0 if it succeeded, 1 if not (for monitoring).",
        ),
    ] = False,
    limit: Annotated[int, limit_option("How many runs to list.")] = 20,
) -> None:
    """Recent `reliactl run` invocations, newest first.

    `reliactl runs backup --last` exits 0 when the newest run of "backup" succeeded, 1 when
    it failed or is still running, and 1 (with a message) when there is none.
    """

    from reliactl.cli._fastrt import usage
    from reliactl.cli.context import app_context
    from reliactl.cli.output import (
        TIMES_JSON_VERSION,
        emit_json,
        error,
        info,
        printable,
        report_error,
    )
    from reliactl.errors import ReliactlError
    from reliactl.jobs import LAST_LOOKBACK, newest_decisive, stored_text

    if not 1 <= limit <= MAX_LIMIT:  # SQLite's LIMIT overflows past 2**63
        raise usage(f"--limit: expected a number from 1 to {MAX_LIMIT}, got {limit}")
    try:
        store = app_context(ctx).store()
        key = None if name is None else stored_text(name)  # as the history records it
        records = store.runs(key, limit=limit if not last else max(limit, LAST_LOOKBACK))
    except ReliactlError as exc:
        raise SystemExit(report_error(exc)) from None
    last_ok = False
    if last:
        # The newest run that says how the job is doing (ticks that found it busy do not).
        decisive = newest_decisive(records)
        last_ok = decisive is not None and decisive.outcome == "success"
        records = [decisive] if decisive is not None else records[:1]

    if json_out:
        emit_json(runs_document(records), version=TIMES_JSON_VERSION)
    elif records:
        _runs_table(records)
    elif not last:
        info("no runs recorded" + (f" for '{printable(name)}'" if name else ""))
    if last:
        if not records:
            error("no runs recorded" + (f" for '{printable(name)}'" if name else ""))
            raise SystemExit(ExitCode.FAILURE)
        raise SystemExit(ExitCode.OK if last_ok else ExitCode.FAILURE)
