"""`reliactl run` (locked, retrying, time-limited execution) and `reliactl runs` (history).

This module parses flags, renders events and output, records history and exits; the engine is
``reliactl.runner``. Options stop at the first word that is not an option, so the command and
its arguments pass through untouched (``--`` is optional). Bad options exit 125, as timeout(1).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from reliactl.cli.exitcodes import ExitCode
from reliactl.hostname import hostname

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.health.model import HealthReport
    from reliactl.runner import Gate, GateRefusal, RunEvent, RunOptions, RunResult

STDOUT, STDERR = 1, 2

# Set by reliactl.cli.main() (a real process, not an in-process test runner): `run` then ends
# with os._exit after flushing and closing everything it opened, which skips ~30 ms of
# interpreter teardown that cron would pay every minute for nothing.
FAST_EXIT = False


class RunCommand(TyperCommand):
    """A command whose usage errors exit 125 (timeout(1)'s "reliactl itself failed")."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from typer._click.exceptions import UsageError

        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            exc.exit_code = ExitCode.INTERNAL
            raise


RUN_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": False}


def _usage(message: str) -> typer.Exit:
    from reliactl.cli.output import error

    error(message)
    return typer.Exit(ExitCode.INTERNAL)


def _duration(flag: str, text: str | None, *, forever: bool = False) -> float | None:
    """Seconds from a flag value; None if unset (or "forever" where allowed)."""
    if text is None:
        return None
    if forever and text.strip().lower() in ("forever", "inf", "infinity"):
        return None
    from reliactl.durations import parse_duration
    from reliactl.errors import DurationError

    try:
        return parse_duration(text)
    except DurationError as exc:
        raise _usage(f"{flag}: {exc}") from None


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
        if self.log_fd is not None:
            tag = b"[out] " if stream == STDOUT else b"[err] "
            _write_fd(self.log_fd, self._stamped(data, self._log_line_start, stream, tag))
        if self.timestamps:
            data = self._stamped(data, self._line_start, stream, b"")
        self._emit(stream, data)

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
        """One of reliactl's own lines (always stamped) to stderr, and to the log."""
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
_log_for_note: list[int] = []


def _write(stream: int, data: bytes) -> None:
    if stream in _broken:
        return
    target = sys.stdout if stream == STDOUT else sys.stderr
    try:
        try:
            buffer = target.buffer
        except AttributeError:  # a text-only stream (tests)
            target.write(data.decode("utf-8", "replace"))
            target.flush()
            return
        buffer.write(data)
        buffer.flush()
    except (OSError, ValueError) as exc:
        # The job must run on, and its exit code pass through: drop what cannot be written.
        _stream_broken(stream, exc)


def _stream_broken(stream: int, exc: BaseException) -> None:
    from reliactl.cli.output import stream_failed, utc_stamp

    first = not _broken
    _broken.add(stream)
    stream_failed("stdout" if stream == STDOUT else "stderr")
    if not first:
        return
    name = "stdout" if stream == STDOUT else "stderr"
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    note = f"cannot write to {name} ({why}); what would go there is dropped; the job runs on\n"
    if stream == STDOUT:
        _write(STDERR, f"{utc_stamp()} reliactl: {note}".encode())
    for fd in _log_for_note:
        _write_fd(fd, f"{utc_stamp()} [reliactl] {note}".encode())


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        pass


def _open_log(path: str) -> int:
    # O_NONBLOCK: a FIFO at the path must be refused at once, not block the job forever.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    from reliactl.trust import not_regular

    refused = not_regular(path)
    if refused is not None:
        raise _usage(f"--log-file: {refused}")
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        reason = "it is a symbolic link" if exc.errno == 40 else exc.strerror
        raise _usage(f"--log-file: cannot open {path}: {reason}") from None
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in after the check
        os.close(fd)
        raise _usage(f"--log-file: {path} is not a regular file; refused")
    return fd


def _write_json_report(path: str, result: RunResult | None, extra: dict[str, Any]) -> None:
    from reliactl.cli.output import JSON_VERSION, warn

    doc = {"version": JSON_VERSION, **(result.to_dict() if result else {}), **extra}
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        warn(f"--json-report: cannot write {path}: {exc.strerror}")
        try:
            os.unlink(tmp)
        except OSError:
            pass


# --------------------------------------------------------------------------- retry strategy


def _strategy(
    config: Config,
    *,
    backoff: str | None,
    delay: float | None,
    max_delay: float | None,
    jitter: str | None,
    max_retries: int,
) -> Any:
    """The retry engine's strategy: the retry.* settings with the flags over them."""
    from reliactl.retry import strategy_from_config

    try:
        return strategy_from_config(
            config.retry,
            strategy=backoff,
            base_delay=delay,
            max_delay=max_delay,
            jitter=jitter,
            max_retries=max_retries,
        )
    except (TypeError, ValueError) as exc:
        raise _usage(f"retry policy: {exc}") from None


# --------------------------------------------------------------------------- run


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        cls=RunCommand,
        context_settings=RUN_CONTEXT,
        options_metavar="[OPTIONS] [--]",
        no_args_is_help=False,
    )(run)
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
            "run.kill_after); exit 137.",
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
            help="Retry failures with the configured policy (retry.* settings).",
            rich_help_panel="Retries",
        ),
    ] = False,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            metavar="N",
            help="Retries after the first attempt (implies --retry).",
            rich_help_panel="Retries",
        ),
    ] = None,
    backoff: Annotated[
        str | None,
        typer.Option(
            "--backoff",
            metavar="exponential|linear|fixed",
            help="Backoff strategy between attempts.",
            rich_help_panel="Retries",
        ),
    ] = None,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay",
            metavar="DURATION",
            help="Base of the backoff. With jitter (retry.jitter, full by default) it is the "
            "upper bound of the first pause, drawn from 0..DURATION (equal: DURATION/2..DURATION; "
            "decorrelated: DURATION..3xDURATION); without jitter it is the first pause.",
            rich_help_panel="Retries",
        ),
    ] = None,
    max_delay: Annotated[
        str | None,
        typer.Option(
            "--max-delay",
            metavar="DURATION",
            help="No pause is longer than this.",
            rich_help_panel="Retries",
        ),
    ] = None,
    jitter: Annotated[
        str | None,
        typer.Option(
            "--jitter",
            metavar="none|full|equal|decorrelated",
            help="Randomise pauses so many hosts do not retry in step.",
            rich_help_panel="Retries",
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
            help="Append all output and reliactl's lines, timestamped, to PATH (created 0600).",
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
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            "--require-healthy",
            help="Run the configured health checks (health_monitor) once, under the lock, "
            "before the first attempt: CRITICAL does not start the command (exit 75, outcome "
            "gated, not counted by --breaker); WARNING or UNKNOWN starts it with a warning. "
            "The gate sends no alerts: alerting is `reliactl health`'s job.",
            rich_help_panel="Health gate",
        ),
    ] = False,
) -> None:
    """Run COMMAND supervised: lock, retries, time limits, signal forwarding, history.

    Options stop at the first word that is not an option (`--` is optional). Exit status: the
    command's own; 124 timed out (137 if it had to be killed); 125 reliactl failed or bad
    options; 126/127 cannot run / not found; 128+N killed by (or reliactl received) signal N;
    69 not run: the --breaker is open; 75 lock busy, or health CRITICAL with --check; 0 with
    --skip-if-locked when busy.
    """
    from reliactl.cli.context import app_context
    from reliactl.cli.output import error, report_error
    from reliactl.errors import ConfigError, LockError, ReliactlError
    from reliactl.runner import GateRefusal, LockOptions, Runner, RunOptions, RunRetryPolicy

    # --- flags first: a bad flag never runs the command, whatever the configuration
    timeout_s = _duration("--timeout", timeout)
    total_s = _duration("--total-timeout", total_timeout)
    kill_after_s = _duration("--kill-after", kill_after)
    wait_s = _duration("--lock-wait", lock_wait, forever=True) if lock_wait is not None else 0.0
    timeout_sig = _signal_number(signal_)
    backoff_v = _choice("--backoff", backoff, ("exponential", "linear", "fixed"))
    jitter_v = _choice("--jitter", jitter, ("none", "full", "equal", "decorrelated"))
    delay_s = _duration("--delay", delay)
    max_delay_s = _duration("--max-delay", max_delay)
    retry_codes = _codes("--retry-on", retry_on)
    no_retry_codes = _codes("--no-retry-on", no_retry_on)
    if retries is not None and retries < 0:
        raise _usage(f"--retries: expected a number >= 0, got {retries}")
    if json_report:
        from reliactl.trust import not_regular

        refused = not_regular(json_report)
        if refused is not None:
            raise _usage(f"--json-report: {refused}")
    if timeout_s == 0:
        timeout_s = None  # timeout(1): a duration of 0 disables the timeout
    if total_s == 0:
        total_s = None

    app_ctx = app_context(ctx)
    try:
        config = app_ctx.loaded().config
    except ConfigError as exc:
        raise typer.Exit(report_error(exc)) from None

    lock_opts = None
    ambiguous: str | None = None
    want_lock = lock or lock_name is not None or skip_if_locked or lock_wait is not None
    try:
        if want_lock:
            from reliactl import locks

            if lock_name is not None:  # "" too: an empty name is refused, never replaced
                lname = locks.check_name(lock_name)
            else:
                lname, ambiguous = locks.derive_lock_name(command)
            lock_opts = LockOptions(
                path=os.path.join(config.run.lock_dir, lname + ".lock"),
                wait=wait_s,
                skip_if_locked=skip_if_locked,
                allow_network_fs=lock_on_nfs,
            )
            job_name = name or lname
        else:
            from reliactl import locks

            # The same default name as with --lock, so a job's history is one list either way.
            job_name = name or locks.lock_name_for(command)
    except LockError as exc:
        raise _usage(str(exc)) from None

    retrying = retry or retries is not None
    max_retries = (retries if retries is not None else config.retry.max_retries) if retrying else 0
    policy = RunRetryPolicy(
        max_retries=max_retries,
        strategy=_strategy(
            config,
            backoff=backoff_v,
            delay=delay_s,
            max_delay=max_delay_s,
            jitter=jitter_v,
            max_retries=max_retries,
        )
        if retrying
        else None,
        retry_on=retry_codes,
        no_retry_on=no_retry_codes or frozenset(),
        retry_on_timeout=retry_on_timeout,
    )
    options = RunOptions(
        command=tuple(command),
        name=job_name,
        timeout=timeout_s if timeout is not None else config.run.timeout,
        total_timeout=total_s,
        # as timeout(1): --kill-after 0 means never SIGKILL
        kill_after=(kill_after_s or None) if kill_after_s is not None else config.run.kill_after,
        timeout_signal=timeout_sig,
        preserve_status=preserve_status,
        leave_running=leave_running,
        retry=policy,
        lock=lock_opts,
    )

    log_fd = _open_log(log_file) if log_file else None
    if log_fd is not None:
        _log_for_note.append(log_fd)
    out = RunOutput(timestamps=timestamps, log_fd=log_fd, quiet_success=quiet_success)
    processing = timestamps or log_fd is not None or quiet_success

    def on_event(event: RunEvent) -> None:
        out.message(event.message)

    if ambiguous is not None:
        out.message(f"warning: lock name {lname!r} may be ambiguous: {ambiguous}; use --lock-name")

    # --- history: a broken state store never stops the job (it is reported, once)
    store = None
    run_id = None
    if not no_history or breaker or check:
        try:
            store = app_ctx.store()
        except ReliactlError as exc:
            lost = [
                *(["run history"] if not no_history else []),
                *(["--breaker"] if breaker else []),
            ]
            what = " and ".join(lost) + " disabled" if lost else "health state kept in memory"
            if lost and check:
                what += ", health state kept in memory"
            out.message(f"warning: state store unusable, {what}: {exc}")
    # --- health gate: built (and its configuration checked, exit 78) before anything runs;
    # it runs inside the runner, under the lock, before the first attempt.
    health_gate: Gate | None = None
    gate_seen: dict[str, HealthReport] = {}
    if check:
        health_gate = _health_gate(config, store, out, gate_seen)
    started_at = __import__("time").time()
    # Arguments that are not UTF-8 (surrogate escapes) are shown, stored and logged escaped.
    shown = _printable(" ".join(command))
    job_name = _printable(job_name)

    # --- breaker gate, under the lock (a tick that finds the lock busy never touches the
    # breaker: it must not take a half-open trial slot nor count a rejection), before --check.
    admission: Any = None
    breaker_info: dict[str, Any] | None = None
    breaker_gate: Gate | None = None
    if breaker and store is not None:
        breaker_store = store

        def breaker_gate() -> GateRefusal | None:
            nonlocal admission, breaker_info
            from reliactl.breaker import get_persistent_breaker
            from reliactl.errors import CircuitOpenError

            try:
                gate = get_persistent_breaker(breaker, config, breaker_store)
                admission = gate.admit(trial_timeout=_trial_timeout(options))
            except CircuitOpenError as exc:
                breaker_info = {
                    "name": breaker,
                    "decision": "rejected",
                    "retry_after": exc.retry_after,
                }
                return GateRefusal(ExitCode.UNAVAILABLE, str(exc), outcome="breaker_open")
            except (ReliactlError, ValueError) as exc:
                out.message(f"warning: breaker {breaker!r} unusable, running without it: {exc}")
                return None
            breaker_info = {"name": breaker, "decision": "admitted", "trial": admission.trial}
            return None

    run_gate = _chain_gates(breaker_gate, health_gate)
    if store is not None and not no_history:
        from reliactl.state.base import RunRecord

        try:
            run_id = store.add_run(
                RunRecord(
                    name=job_name,
                    command=shown,
                    started_at=started_at,
                    data={"pid": os.getpid(), "host": hostname()},
                )
            )
        except ReliactlError as exc:
            out.message(f"warning: run history disabled: {exc}")
            store = None

    try:
        result = Runner(
            options, on_event=on_event, output=out if processing else None, gate=run_gate
        ).run()
    except LockError as exc:
        if admission is not None:
            admission.ignore()
        out.replay()
        error(str(exc))
        _finish_history(store, run_id, job_name, shown, started_at, None, "error", str(exc))
        raise typer.Exit(ExitCode.INTERNAL) from None
    except ReliactlError as exc:
        if admission is not None:
            admission.ignore()
        out.replay()
        _finish_history(store, run_id, job_name, shown, started_at, None, "error", str(exc))
        raise typer.Exit(report_error(exc)) from None
    if admission is not None:
        breaker_info = _report_to_breaker(admission, result, breaker_info or {})

    if result.outcome != "skipped":
        out.message(_summary(result))
    if not result.succeeded:
        out.replay()
    _finish_history(store, run_id, job_name, shown, started_at, result, result.outcome, None)
    if json_report:
        extra: dict[str, Any] = {"breaker": breaker_info}
        if check:
            report = gate_seen.get("report")
            extra["health"] = report.to_dict() if report is not None else None
        _write_json_report(json_report, result, extra)
    if log_fd is not None:
        os.close(log_fd)
    _exit(result.exit_code, store, result.interrupted_by)


def _health_gate(config: Config, store: Any, out: RunOutput, seen: dict[str, HealthReport]) -> Gate:
    """The --check gate: every configured health check, once; CRITICAL refuses (exit 75).

    The checks share the state store with `reliactl health` (debounce streaks, the CPU
    sample), so a debounced check counts the gate's observations too. No alert is sent.
    """
    from reliactl.cli.output import error
    from reliactl.errors import ReliactlError
    from reliactl.health.model import Status
    from reliactl.health.monitor import HealthMonitor
    from reliactl.runner import GateRefusal

    monitor = HealthMonitor(config.health_monitor, store=store, full_config=config)
    try:
        monitor.checks()  # a setup that validation let through still fails here, not later
    except (ReliactlError, ValueError) as exc:
        error(f"--check: invalid health configuration: {_one_line(str(exc))}")
        raise typer.Exit(ExitCode.CONFIG) from None

    def gate() -> GateRefusal | None:
        try:
            report = monitor.run_now()
        except Exception as exc:  # the checking itself broke: health is unknown, not critical
            out.message(f"warning: health checks could not run ({_one_line(str(exc))}); starting")
            return None
        seen["report"] = report
        status = report.overall_status
        if status is Status.OK:
            return None
        if status is Status.CRITICAL:
            bad = [m for m in report.metrics.values() if m.status is Status.CRITICAL]
            return GateRefusal(ExitCode.TEMPFAIL, f"health is CRITICAL: {_named(bad)}")
        what = _named(report.problems) if report.metrics else "no health checks are enabled"
        out.message(f"warning: health is {status.value}: {what}; starting anyway")
        return None

    return gate


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _named(metrics: list[Any]) -> str:
    return "; ".join(f"{m.name} ({_one_line(m.message, 200)})" for m in metrics)


def _exit(code: int, store: Any, died_by: int | None = None) -> None:
    """Exit with ``code``; a real process ended by signal ``died_by`` dies by it instead.

    As timeout(1) does: after cleanup reliactl re-raises the signal with its default action
    (core dumps off), so a shell loop stops at the first Ctrl-C as with the bare command;
    the shell still sees 128+N.
    """
    if not FAST_EXIT:
        raise typer.Exit(code)
    try:
        if store is not None:
            store.close()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe, a store that fails to close: exit the slow, safe way
        raise typer.Exit(code) from None
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


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _trial_timeout(options: RunOptions) -> float | None:
    """How long a half-open trial may take: the run's own bound, when it has one."""
    if options.total_timeout is not None:
        return float(options.total_timeout)
    if options.timeout is not None:
        return float(options.timeout) * (options.retry.max_retries + 1)
    return None


def _chain_gates(*gates: Gate | None) -> Gate | None:
    """One gate that asks each in turn and stops at the first refusal."""
    present = [g for g in gates if g is not None]
    if not present:
        return None

    def chained() -> GateRefusal | None:
        for gate in present:
            refusal = gate()
            if refusal is not None:
                return refusal
        return None

    return chained


def _report_to_breaker(admission: Any, result: RunResult, info: dict[str, Any]) -> dict[str, Any]:
    """The run's outcome, after all retries, is one call of the breaker."""
    from reliactl.errors import ReliactlError

    try:
        if result.outcome == "success":
            admission.success()
            recorded = "success"
        elif result.outcome in ("failure", "timeout", "not_found", "not_executable"):
            admission.failure(
                f"exit {result.exit_code}" + (" (timeout)" if result.outcome == "timeout" else "")
            )
            recorded = "failure"
        else:  # interrupted, lock busy, skipped or gated: the service was not tried
            admission.ignore()
            recorded = "ignored"
    except ReliactlError:
        recorded = "not recorded"
    return {**info, "recorded": recorded}


def _record_refusal(
    store: Any, name: str, command: str, started_at: float, outcome: str, message: str
) -> None:
    from reliactl.errors import ReliactlError
    from reliactl.state.base import RunRecord

    try:
        store.add_run(
            RunRecord(
                name=name,
                command=command,
                started_at=started_at,
                ended_at=started_at,
                exit_code=ExitCode.UNAVAILABLE,
                outcome=outcome,
                data={"message": message},
            )
        )
    except ReliactlError:
        pass


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
    if result.outcome in ("busy", "gated", "breaker_open"):
        return f"not run: {result.message} (exit {result.exit_code})"
    if result.outcome == "signal":
        sig = signal_name(result.interrupted_by or 0)
        return f"stopped by {sig} in {took}{after} (exit {result.exit_code}){_stopped(result)}"
    if result.outcome in ("not_found", "not_executable"):
        return f"{result.message} (exit {result.exit_code})"
    if result.outcome == "timeout":
        last = result.attempts[-1] if result.attempts else None
        how = "killed with SIGKILL" if last and last.killed else "timed out"
        return f"{how} after {took}{after} (exit {result.exit_code}){_stopped(result)}"
    final = result.attempts[-1] if result.attempts else None
    why = f" by {signal_name(final.signal)}" if final and final.signal else ""
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


def _finish_history(
    store: Any,
    run_id: int | None,
    name: str,
    command: str,
    started_at: float,
    result: RunResult | None,
    outcome: str,
    message: str | None,
) -> None:
    if store is None or run_id is None:
        return
    import time

    from reliactl.errors import ReliactlError
    from reliactl.state.base import RunRecord

    data: dict[str, Any] = {"message": message} if message else {}
    if result is not None:
        data = {
            "attempts": [a.to_dict() for a in result.attempts],
            "lock_wait": result.lock_wait,
            "interrupted_by": result.interrupted_by,
            "message": result.message,
            "pid": os.getpid(),
            "host": hostname(),
        }
    record = RunRecord(
        name=name,
        command=command,
        started_at=started_at,
        ended_at=time.time(),
        attempts=len(result.attempts) if result else 0,
        exit_code=result.exit_code if result else ExitCode.INTERNAL,
        outcome=outcome,
        data=data,
    )
    try:
        store.finish_run(run_id, record)
    except ReliactlError:
        pass


# --------------------------------------------------------------------------- runs

MAX_LIMIT = 1_000_000


def _outcome(record: Any) -> str:
    """A "running" record whose reliactl (on this host) is gone was killed: say "lost"."""
    if record.outcome != "running":
        return str(record.outcome)
    data = record.data if isinstance(record.data, dict) else {}
    pid, host = data.get("pid"), data.get("host")
    if isinstance(pid, int) and pid > 0 and host == hostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "lost"
        except PermissionError:
            pass
    return "running"


def run_to_dict(record: Any) -> dict[str, Any]:
    """One run as `runs --json` (and serve's /api/runs) show it."""
    return {
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
        "outcome": _outcome(record),
    }


def runs(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Only runs of this job (its --name or lock name).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    last: Annotated[
        bool,
        typer.Option(
            "--last",
            help="Only the newest run, and exit 0 if it succeeded, 1 if not (for monitoring).",
        ),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs to list.")] = 20,
) -> None:
    """Recent `reliactl run` invocations, newest first.

    `reliactl runs backup --last` exits 0 when the newest run of "backup" succeeded, 1 when
    it failed or is still running, and 1 (with a message) when there is none.
    """
    import time

    from reliactl.cli.context import app_context
    from reliactl.cli.output import emit_json, error, report_error, table
    from reliactl.durations import format_duration
    from reliactl.errors import ReliactlError

    if not 1 <= limit <= MAX_LIMIT:  # SQLite's LIMIT overflows past 2**63
        error(f"--limit: expected a number from 1 to {MAX_LIMIT}, got {limit}")
        raise typer.Exit(ExitCode.USAGE)
    try:
        store = app_context(ctx).store()
        records = store.runs(name, limit=limit if not last else max(limit, 200))
    except ReliactlError as exc:
        raise typer.Exit(report_error(exc)) from None
    last_ok = False
    if last:
        # A tick that found the lock busy (skipped or busy) says nothing about the job: look
        # past it to the newest run that started (or was refused), else a hung job whose
        # ticks keep skipping would look healthy forever.
        decisive = [r for r in records if r.outcome not in ("skipped", "busy")]
        last_ok = bool(decisive) and decisive[0].outcome == "success"
        records = (decisive or records)[:1]

    if json_out:
        emit_json({"runs": [run_to_dict(r) for r in records]})
    elif records:
        rows = []
        for r in records:
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.started_at))
            took = (
                "-" if r.ended_at is None else format_duration(max(0.0, r.ended_at - r.started_at))
            )
            rows.append(
                [r.id, r.name, started, took, r.attempts, r.exit_code, _outcome(r), r.command]
            )
        table(["id", "name", "started", "took", "tries", "exit", "outcome", "command"], rows)
    elif not last:
        print("no runs recorded" + (f" for {name!r}" if name else ""), file=sys.stderr)
    if last:
        if not records:
            error("no runs recorded" + (f" for {name!r}" if name else ""))
            raise typer.Exit(ExitCode.FAILURE)
        raise typer.Exit(ExitCode.OK if last_ok else ExitCode.FAILURE)
