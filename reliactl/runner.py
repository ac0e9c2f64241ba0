"""Supervised command execution: lock, retry, timeout, signals -> a frozen RunResult.

The process model (coreutils timeout(1) semantics, plus what timeout cannot promise):

    reliactl ──fork──> shim (group leader, child subreaper, ignores catchable signals)
                         └──posix_spawn──> COMMAND (same group; reliactl's dispositions,
                                            │              an empty mask)
                                            └── whatever it starts: the job, found below the shim

- The shim is a forked copy of reliactl (no new interpreter start). Without a controlling
  terminal it calls setsid; on reliactl's terminal it makes a group in reliactl's session and,
  in the foreground, hands it the terminal (tcsetpgrp), so job control works as for the bare
  command (a stopped command stops reliactl with the same signal; SIGCONT resumes both).
- The shim starts the command with posix_spawn (a vfork: nothing of the shim is copied), or
  by fork+exec when the command sets a limit on itself before exec (nice, I/O class,
  RLIMIT_CPU, joining a memory cgroup): ``_spawn_command`` / ``_exec_command``, alike.
- The shim is a child subreaper: orphans of the job are reparented to it, so every process
  of the job, whatever group or session it moved to, is a descendant of the shim
  (``job_processes``, /proc/<pid>/task/*/children). Where reliactl's cgroup v2 directory is
  writable, the command also runs in a cgroup of its own (``reliactl-<shim pid>``): SIGKILL is
  one write to cgroup.kill, and the job can be killed even if the shim was. Under
  --memory-max the command starts in a memory cgroup: v2 (memory.max) or, where v2 has no
  memory controller, a v1 memory directory of its own (``memory_limit_path``).
- It holds the read end of a "lifeline" pipe whose only writer is reliactl: when reliactl
  dies in any way, even SIGKILL, the pipe reads EOF and the shim SIGKILLs every process of the
  job. An ``L`` on the lifeline (--leave-running) makes it exit and leave them.
- The shim reports the command's raw wait status (or the errno of a failed exec) on a
  close-on-exec pipe as soon as the command exits, then reaps until no process of the job is
  left. Processes still running then are stopped like a timeout; the attempt (and the lock)
  ends only when the shim has exited.
- Timeouts and forwarded signals go to the group (killpg) and to each process of the job
  outside it, followed by SIGCONT; SIGKILL after ``kill_after`` goes to each process (and the
  cgroup), never to the shim, which must live to reap. The group is signalled only while the
  shim (its leader) has not been reaped, so its id cannot have been recycled;
  ``waitid(WNOWAIT)`` looks without reaping. Single processes are signalled through a pidfd
  after checking their start time.
- Without output processing the command inherits reliactl's stdout and stderr directly: no
  pipe, so a grandchild holding stdout can never hang reliactl. With processing (an
  ``OutputSink``), the pipes are read in one select loop and, once the command has exited,
  drained with a deadline, never waited on for EOF. A sink whose reader went away (its
  ``write`` raises ``BrokenPipeError``: reliactl's own stdout or stderr got EPIPE) makes the
  loop close its read end of that pipe, so the command gets SIGPIPE/EPIPE at its next write,
  as in a shell pipeline (``yes | ts | head -1``), and no retry follows that attempt (nor
  when the command inherits a reliactl stdout/stderr pipe whose reader is gone and died of
  SIGPIPE); any other write failure is the sink's to swallow (the job runs on).
- Signals reach the loop through ``signal.set_wakeup_fd``; a signal during a lock wait or a
  backoff sleep ends it at once. Signals ignored when reliactl started stay ignored, are not
  forwarded, and stay ignored in the command; SIGPIPE, SIGXFSZ and SIGCHLD are reset to their
  defaults and the signal mask is emptied for the command. SIGALRM means "time out now".

This module never prints: events go to an ``on_event`` callback, the command's output to the
``OutputSink`` (or straight to the inherited descriptors), and the outcome is a RunResult.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from reliactl._procfs import pid_alive, stat_fields, tree_rss, unescape_mount
from reliactl._procfs import read_bytes as _read_proc
from reliactl.durations import MAX_INTERVAL, MAX_SIZE
from reliactl.errors import (
    LockBusyError,
    ReliactlError,
    StateAuthError,
    StateConfigError,
    StateError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field, replace
    from typing import Any, NoReturn
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, field, replace

# The C module under ``signal``: the same calls, without the enum its Python wrappers make of
# every signal number they return (a full mask is 64 of them: ~0.3 ms a run in the parent,
# more in the forked shim, which pays a copy-on-write fault for what it touches).
_csignal: Any = getattr(signal, "_signal", signal)

if TYPE_CHECKING:  # protocols cost import time; only the type checker needs them
    from typing import Protocol

    from reliactl.backoff import Backoff as DelayStrategy
    from reliactl.chaos import RunChaos

    class OutputSink(Protocol):
        """Receives the command's output when reliactl processes it (timestamps, logs, chronic)."""

        def write(self, stream: int, data: bytes) -> None:
            """``stream`` is 1 (stdout) or 2 (stderr). Raises ``BrokenPipeError`` when the
            reader of that stream went away: the runner then closes the command's pipe.
            Called from the supervising loop: a write that blocks (a buffered
            ``sys.stdout`` to a reader that takes nothing) holds the timeout too; the
            CLI's sinks write through ``_runio.write_all``, which never does."""

        def end_attempt(self, attempt: int) -> None:
            """All output of this attempt has been delivered (partial lines may be flushed)."""


def _shown(command: Sequence[str]) -> str:
    """The command line as shown in events and lock files: secrets hidden (reliactl.redact)."""
    from reliactl.redact import redact_argv

    return " ".join(redact_argv(command))


FORWARDED_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# Stop signals: never handled by reliactl; the command gets the dispositions reliactl started
# with, the shim ignores them (it must keep watching the lifeline while the command is stopped).
JOB_CONTROL_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
NEVER_RETRIED = frozenset({126, 127})
DRAIN_QUIET = 0.05  # after the command exits, stop reading a pipe quiet this long
DRAIN_MAX = 1.0  # ... and stop reading altogether after this long
# While the relay waits for its reader, how often it looks whether the job's shim exited;
# and how long one wait must have lasted before a stopped job's reader is given up (a slow
# reader that still reads makes room well within it, and gets the job's last words).
RELAY_LOOK = 0.05
RELAY_GRACE = 2.0
# Forwarded signals that ask the job to stop (USR1/USR2 ask something else of it).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})

# outcomes
SUCCESS = "success"
FAILURE = "failure"
TIMEOUT = "timeout"
SIGNALLED = "signal"  # reliactl received a terminating signal and forwarded it
NOT_FOUND = "not_found"
NOT_EXECUTABLE = "not_executable"
BUSY = "busy"
SKIPPED = "skipped"
GATED = "gated"  # a pre-start gate (``reliactl run --check``) refused to start the command
# Stopped like a timeout because a limit was exceeded (issue 22), or by --watch-health.
MEMORY_LIMIT = "memory_limit"
CPU_LIMIT = "cpu_limit"
OUTPUT_LIMIT = "output_limit"
HEALTH_STOPPED = "health_stopped"
LIMIT_OUTCOMES = frozenset({MEMORY_LIMIT, CPU_LIMIT, OUTPUT_LIMIT, HEALTH_STOPPED})
# Exit codes of those outcomes: the same numbers as reliactl.cli.exitcodes (the core does not
# import it; a test keeps them equal).
LIMIT_EXIT = 121
HEALTH_STOPPED_EXIT = 122
IO_CLASSES = {"best-effort": 2, "idle": 3}  # ioprio classes (linux/ioprio.h)
LOCK_LOST = "lock_lost"  # the fleet lease could not be renewed: the job was stopped (75)
LOCK_UNAVAILABLE = "lock_unavailable"  # the fleet lock's store was unreachable: not run (75)


@dataclass(frozen=True)
class RunRetryPolicy:
    """Which failures are retried, how often and how long apart."""

    max_retries: int = 0
    strategy: DelayStrategy | None = None  # None: no pause between attempts
    retry_on: frozenset[int] | None = None  # only these exit codes (None: any non-zero)
    no_retry_on: frozenset[int] = frozenset()
    retry_on_timeout: bool = False
    # No retry starts later than this after the first attempt started (None: no limit); a
    # pause that would end past it is cut short, as `retry plan` shows (retry.max_elapsed).
    max_elapsed: float | None = None

    def retryable(self, attempt: Attempt) -> bool:
        """Whether this failed attempt may be tried again (ignoring counts and time)."""
        if attempt.exit_code == 0 or attempt.exec_error is not None:
            return False
        if attempt.limit is not None:  # the same limit would stop the next attempt too
            return False
        if attempt.timed_out:
            return self.retry_on_timeout
        code = attempt.exit_code
        if code in NEVER_RETRIED or code in self.no_retry_on:
            return False
        return self.retry_on is None or code in self.retry_on


@dataclass(frozen=True)
class GateRefusal:
    """A pre-start gate's "no": the run ends unstarted with this exit code and message."""

    exit_code: int
    message: str
    outcome: str = GATED  # or e.g. "breaker_open": what the run history records


# Called once, after the lock is taken and before the first attempt (never per retry):
# None starts the command, a GateRefusal ends the run with its outcome ("gated" by default).
Gate = Callable[[], GateRefusal | None]


@dataclass(frozen=True)
class WatchVerdict:
    """What a watch (``run --watch-health``) found: a line to log, or a reason to stop."""

    stop: bool
    message: str


# Called every ``RunOptions.watch_interval`` seconds while a command runs, in a thread of its
# own (it may take as long as health checks do): None is "all well".
Watch = Callable[[], WatchVerdict | None]


@dataclass(frozen=True)
class _ChildSetup:
    """What the command's process sets on itself before exec (limits that the kernel keeps)."""

    nice: int | None = None
    io_class: str | None = None
    cpu_time: float | None = None
    kill_after: float | None = None
    memory_max: int | None = None  # the shim makes a cgroup with memory.max, the child joins
    memory_v1: str | None = None  # reliactl's cgroup v1 memory directory (no v2 controller)


@dataclass(frozen=True)
class LockOptions:
    """How `run` takes its lock: the file, whether to wait, and for how long."""

    path: str  # host scope: the lock file
    wait: float | None = 0.0  # None: forever
    skip_if_locked: bool = False
    allow_network_fs: bool = False
    name: str = ""  # the lock name (RELIACTL_LOCK_NAME); fleet scope: the lease's name
    scope: str = "host"  # host: a flock on ``path``; fleet: a lease in the shared store
    lease: float = 30.0  # fleet: seconds; renewed every third of it while the job runs
    # fleet: opens the shared store's leases (reliactl.state.open_leases with the config)
    open_leases: Callable[[], Any] | None = None


@dataclass(frozen=True)
class RunOptions:
    """Everything one ``run`` needs; the CLI builds it from flags and configuration."""

    command: tuple[str, ...]
    name: str = ""
    timeout: float | None = None  # per attempt
    total_timeout: float | None = None  # across attempts and pauses
    kill_after: float | None = 10.0  # SIGKILL this long after the timeout signal (None: never)
    timeout_signal: int = signal.SIGTERM
    preserve_status: bool = False
    retry: RunRetryPolicy = field(default_factory=RunRetryPolicy)
    lock: LockOptions | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    # Processes the command leaves behind are stopped like a timeout, and the lock is held
    # until they are gone; True leaves them running (and releases the lock while they run).
    leave_running: bool = False
    # On reliactl's controlling terminal, the command's group becomes the foreground job.
    job_control: bool = True
    # A cgroup v2 of the job's own, where reliactl's cgroup directory is writable.
    use_cgroup: bool = True
    # Failure injection (`run --chaos`): attempts that fail, delays, a crash after a while.
    chaos: RunChaos | None = None
    # Limits of each attempt (issue 22); exceeding one stops the job like a timeout.
    memory_max: int | None = None  # bytes, the whole tree: cgroup memory.max, else polled RSS
    cpu_time: float | None = None  # seconds of CPU, per process (RLIMIT_CPU)
    nice: int | None = None  # the command's nice value, -20..19 (as systemd's Nice=)
    io_class: str | None = None  # "idle" or "best-effort" (ioprio_set)
    max_output: int | None = None  # bytes of stdout + stderr
    limit_poll: float = 0.25  # how often the tree's RSS is sampled when memory_max is set
    watch_interval: float | None = None  # how often the Runner's ``watch`` is called


@dataclass(frozen=True)
class Attempt:
    """One execution of the command."""

    number: int
    started_at: float  # wall-clock epoch seconds
    duration: float  # seconds (monotonic)
    exit_code: int  # as a shell reports it: 0..255, 124/137 on timeout, 128+N for signal N
    signal: int | None = None  # the signal that ended the command, if one did
    timed_out: bool = False
    killed: bool = False  # reliactl had to SIGKILL the group
    exec_error: str | None = None  # the command could not be started
    delay_after: float | None = None  # pause before the next attempt, if there was one
    escaped: int = 0  # processes outside the command's group that reliactl had to signal
    leftovers: int = 0  # processes still running after the command exited, stopped by reliactl
    left_running: int = 0  # ... and left running (--leave-running)
    injected: str | None = None  # `run --chaos`: "fail" (never started) or "kill" (crashed)
    limit: str | None = None  # memory_limit, cpu_limit, output_limit, health_stopped
    peak_rss: int | None = None  # bytes: the largest process of the job (or the polled tree)
    cpu_time: float | None = None  # seconds of CPU used by the job's processes

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": self.started_at,
            "duration": round(self.duration, 6),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "killed": self.killed,
            "exec_error": self.exec_error,
            "delay_after": self.delay_after,
            "escaped": self.escaped,
            "leftovers": self.leftovers,
            "left_running": self.left_running,
            "injected": self.injected,
            "limit": self.limit,
            "peak_rss": self.peak_rss,
            "cpu_time": None if self.cpu_time is None else round(self.cpu_time, 6),
        }


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run after all attempts: what reliactl exits with, and why."""

    name: str
    command: tuple[str, ...]
    exit_code: int
    outcome: str  # success failure timeout signal not_found not_executable busy skipped gated
    # memory_limit cpu_limit output_limit health_stopped (LIMIT_OUTCOMES)
    started_at: float
    duration: float
    attempts: tuple[Attempt, ...] = ()
    interrupted_by: int | None = None  # the signal reliactl received and forwarded
    lock_path: str | None = None
    lock_wait: float | None = None  # seconds spent waiting for the lock
    lock_holder: str | None = None  # who held it, when busy
    lock_scope: str | None = None  # host | fleet, when locked
    fencing_token: int | None = None  # fleet locks: the token the command was given
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in (SUCCESS, SKIPPED)

    @property
    def escaped(self) -> int:
        """Processes outside the command's group that had to be signalled, all attempts."""
        return sum(a.escaped for a in self.attempts)

    @property
    def leftovers(self) -> int:
        """Processes the command left running that reliactl stopped, all attempts."""
        return sum(a.leftovers for a in self.attempts)

    @property
    def peak_rss(self) -> int | None:
        """Bytes: the largest peak RSS of any attempt (None if no attempt started)."""
        known = [a.peak_rss for a in self.attempts if a.peak_rss is not None]
        return max(known) if known else None

    @property
    def cpu_time(self) -> float | None:
        """Seconds of CPU used by the job's processes, all attempts."""
        known = [a.cpu_time for a in self.attempts if a.cpu_time is not None]
        return sum(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": list(self.command),
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "duration": round(self.duration, 6),
            "attempts": [a.to_dict() for a in self.attempts],
            "interrupted_by": self.interrupted_by,
            "lock": None
            if self.lock_path is None
            else {
                "path": self.lock_path,
                "wait": self.lock_wait,
                "holder": self.lock_holder,
                "scope": self.lock_scope,
                "fencing_token": self.fencing_token,
            },
            "message": self.message,
            "processes_stopped": {"escaped": self.escaped, "leftovers": self.leftovers},
            "peak_rss": self.peak_rss,
            "cpu_time": None if self.cpu_time is None else round(self.cpu_time, 6),
        }


@dataclass(frozen=True)
class RunEvent:
    """Something reliactl reports about a run (rendered by the CLI on stderr)."""

    kind: str  # start, lock_wait, attempt_failed, retry, timeout, kill, signal, finish,
    # limit, memory_limit (which path enforces it), health (--watch-health warn), give_up
    # (no retry: total timeout or max_elapsed reached, or the output's reader went away)
    message: str
    attempt: int = 0
    exit_code: int | None = None
    delay: float | None = None


EventHandler = Callable[[RunEvent], None]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_code_of(status: int) -> tuple[int, int | None]:
    """(shell exit code, terminating signal) of a raw wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return 125, None  # stopped/continued are never reported with WEXITED


# --------------------------------------------------------------------------- signals


class _Signals:
    """Installs forwarding handlers and a wakeup pipe for the duration of a run; restores all."""

    def __init__(self) -> None:
        self.ignored: frozenset[int] = frozenset()
        self.received: list[int] = []
        self._saved: dict[int, Any] = {}
        self._wake_r = -1
        self._wake_w = -1
        self._old_wakeup = -1
        self._old_mask: set[Any] | None = None

    @property
    def wake_fd(self) -> int:
        return self._wake_r

    def __enter__(self) -> _Signals:
        import threading

        if threading.current_thread() is not threading.main_thread():
            raise ReliactlError("a supervised run must be started from the main thread")
        ignored = set()
        for sig in (*FORWARDED_SIGNALS, signal.SIGALRM, *JOB_CONTROL_SIGNALS):
            if signal.getsignal(sig) == signal.SIG_IGN:
                ignored.add(int(sig))
        self.ignored = frozenset(ignored)
        self.received = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            for sig in (*FORWARDED_SIGNALS, signal.SIGALRM, signal.SIGCHLD):
                if int(sig) in self.ignored:
                    continue
                self._saved[int(sig)] = signal.signal(sig, self._on_signal)
            self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
            # Inherited blocked SIGCHLD/forwarded signals would starve the loop (timeout bug#13535).
            wanted = {
                signal.SIGCHLD,
                *(s for s in (*FORWARDED_SIGNALS, signal.SIGALRM) if int(s) not in ignored),
            }
            self._old_mask = _csignal.pthread_sigmask(signal.SIG_UNBLOCK, wanted)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum != signal.SIGCHLD:  # SIGCHLD only wakes the loop (through the wakeup fd)
            self.received.append(signum)

    def drain(self) -> None:
        """Empty the wakeup pipe (the handlers already recorded what arrived)."""
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 512):
                pass

    def take(self) -> list[int]:
        got, self.received = self.received, []
        return got

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False at once if a forwarded signal arrives."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            with contextlib.suppress(InterruptedError):
                _readable([self._wake_r], remaining)
            self.drain()
        return False

    def __exit__(self, *exc: object) -> None:
        if self._old_mask is not None:
            _csignal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            self._old_mask = None
        if self._wake_w >= 0:
            signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


@contextlib.contextmanager
def _all_signals_blocked() -> Iterator[None]:
    old = _csignal.pthread_sigmask(signal.SIG_BLOCK, _csignal.valid_signals())
    try:
        yield
    finally:
        _csignal.pthread_sigmask(signal.SIG_SETMASK, old)


# --------------------------------------------------------------------------- child side


def _close_fds_except(keep: set[int]) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _candidates(program: str, environ: Mapping[str, str]) -> list[str]:
    """Where execvp would look for ``program``: itself if it has a slash, else along PATH."""
    if "/" in program:
        return [program]
    path = environ.get("PATH", os.defpath)
    return [os.path.join(d or ".", program) for d in path.split(os.pathsep)]


def _failed(saved: OSError | None, exc: OSError) -> tuple[OSError, bool]:
    """execvp's rule for a candidate that failed: the error to report and whether to search on.

    Not there (ENOENT, ENOTDIR, ENAMETOOLONG): search on, keeping the error seen before if
    any; EACCES/EISDIR: search on, reporting it; anything else: stop and report it.
    """
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return saved or exc, True
    if exc.errno in (errno.EACCES, errno.EISDIR):
        return exc, True
    return exc, False


def _exec_command(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, ignored: frozenset[int]
) -> tuple[int, str]:
    """exec ``argv`` as execvp does (PATH search, /bin/sh for ENOEXEC); returns only on failure."""
    environ = dict(os.environ if env is None else env)
    program = argv[0]
    if not program:  # execvp's answer (`timeout ''`, `env ''`: 127), before Python's ValueError
        return errno.ENOENT, os.strerror(errno.ENOENT)
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            return exc.errno or errno.ENOENT, f"{cwd}: {exc.strerror}"
    candidates = _candidates(program, environ)
    saved: OSError | None = None
    for candidate in candidates:
        try:
            os.execve(candidate, list(argv), environ)  # noqa: S606
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                try:
                    os.execve("/bin/sh", ["sh", candidate, *argv[1:]], environ)  # noqa: S606
                except OSError as exc2:
                    exc = exc2
            saved, search_on = _failed(saved, exc)
            if not search_on:
                break
    assert saved is not None
    return saved.errno or errno.ENOENT, saved.strerror or "cannot execute"


def _spawn_command(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, defaults: list[int]
) -> int | tuple[int, str]:
    """Start ``argv`` from the shim with posix_spawn, as ``_exec_command`` would exec it.

    glibc's posix_spawn is a vfork (CLONE_VM|CLONE_VFORK): nothing of the shim's memory is
    copied and no Python runs in the new process, where a fork of the shim copies its page
    tables and pays copy-on-write faults for every page the Python code before exec touches.
    The same PATH search, /bin/sh for ENOEXEC and errno choice as ``_exec_command``;
    ``defaults`` are the signals set back to SIG_DFL (the rest of the shim's SIG_IGN stays
    ignored, as over exec), and the signal mask is emptied. Returns the pid, or (errno, why).
    """
    environ = os.environ if env is None else env
    program = argv[0]
    if not program:  # execvp's answer (`timeout ''`, `env ''`: 127), before Python's ValueError
        return errno.ENOENT, os.strerror(errno.ENOENT)
    if cwd is not None:  # the shim's own directory: it would be the command's after a fork
        try:
            os.chdir(cwd)
        except OSError as exc:
            return exc.errno or errno.ENOENT, f"{cwd}: {exc.strerror}"
    candidates = _candidates(program, environ)
    saved: OSError | None = None
    for candidate in candidates:
        if len(candidates) > 1:
            # Each failed posix_spawn is a whole clone: skip what is not there (execve's
            # ENOENT/ENOTDIR, on which the search goes on) with one stat.
            try:
                os.stat(candidate)
            except (FileNotFoundError, NotADirectoryError) as exc:
                saved = saved or exc
                continue
            except OSError:
                pass  # execve says what it is
        try:
            return os.posix_spawn(candidate, list(argv), environ, setsigdef=defaults, setsigmask=())
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                try:
                    return os.posix_spawn(
                        "/bin/sh",
                        ["sh", candidate, *argv[1:]],
                        environ,
                        setsigdef=defaults,
                        setsigmask=(),
                    )
                except OSError as exc2:
                    exc = exc2
            saved, search_on = _failed(saved, exc)
            if not search_on:
                break
    assert saved is not None
    return saved.errno or errno.ENOENT, saved.strerror or "cannot execute"


def _shim(  # noqa: C901 - runs between fork and exec: flat, nothing to import
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: str | None,
    ignored: frozenset[int],
    report_w: int,
    life_r: int,
    out_w: int | None,
    err_w: int | None,
    tty: _Tty | None,
    cgroup: str | None,
    setup: _ChildSetup | None = None,
) -> NoReturn:
    """Forked child of reliactl: lead the job, run the command, relay its status, die with us.

    Reports on ``report_w``: ``S<status>`` when the command exits, ``T<signal>`` when it is
    stopped, ``E<errno> <why>`` when it cannot be started. Stays alive (a child subreaper
    reaping orphans) until no process of the job is left, so reliactl can find every one of
    them under it; lifeline EOF SIGKILLs them all, an ``L`` on the lifeline leaves them.
    """
    try:
        signal.set_wakeup_fd(-1)
        if tty is None:
            os.setsid()  # no terminal: a session of its own, no controlling tty to gain
        else:
            os.setpgid(0, 0)  # same session, its own group: job control still reaches it
            if tty.hand_over:
                with _tty_signals_blocked():
                    os.tcsetpgrp(tty.fd, os.getpid())
        _become_subreaper()
        # reliactl's cgroup: a job that runs past CGROUP_AFTER gets one of its own below it.
        cgroup_path = None if cgroup is None else job_cgroup(cgroup, os.getpid())
        cgroup = None  # set once the job has been moved into it
        adopt_at = time.monotonic() + CGROUP_AFTER
        join = None
        if setup is not None and setup.memory_max is not None and cgroup_path is not None:
            # A memory limit is the kernel's only if the command starts inside the cgroup: make
            # it now (the command joins it before exec, paying the move only here).
            join = _memory_cgroup(cgroup_path, setup.memory_max)
            if join is not None:
                cgroup, cgroup_path = join, None
        v1 = None  # the job's cgroup v1 memory directory: no oom.group, the shim watches it
        if join is None and setup is not None and setup.memory_v1 is not None:
            v1 = join = _memory_cgroup_v1(
                job_cgroup(setup.memory_v1, os.getpid()), setup.memory_max or 0
            )
        if out_w is not None and err_w is not None:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
        _close_fds_except({report_w, life_r})
        oom_fd = None if v1 is None else _oom_eventfd(v1)  # made after the fds are closed
        oom_told = False
        # The shim outlives every signal sent to the group (--signal may name any), so it can
        # reap the job to the end; the command gets reliactl's own dispositions back.
        inherited: dict[int, Any] = {}
        for sig in _csignal.valid_signals():
            if sig not in _SHIM_KEEPS:
                try:
                    inherited[sig] = _csignal.signal(sig, _csignal.SIG_IGN)
                except (OSError, ValueError):
                    pass
        chld_r, chld_w = os.pipe()
        os.set_blocking(chld_w, False)
        os.set_blocking(chld_r, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(chld_w)
        if setup is None:
            # No limit to set in the command's own process before exec: posix_spawn (a vfork)
            # instead of a fork of the shim (benchmarks/run_overhead.py: DESIGN.md "run's
            # process model"). Dispositions and mask as the fork path below leaves them.
            defaults = [
                number
                for number, old in inherited.items()
                if not (number in ignored or (old == signal.SIG_IGN and number not in _RESET))
            ]
            try:
                spawned = _spawn_command(argv, env, cwd, defaults)
            except ValueError as exc:  # a NUL byte in an argument or the environment
                spawned = errno.EINVAL, str(exc)
            if isinstance(spawned, tuple):
                os.write(report_w, f"E{spawned[0]} {spawned[1]}\n".encode("utf-8", "replace"))
                os._exit(0)  # no process of the job was started: nothing to reap
            pid = spawned
        else:
            pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for number, old in inherited.items():
                    keep = number in ignored or (old == signal.SIG_IGN and number not in _RESET)
                    with contextlib.suppress(OSError, ValueError):
                        signal.signal(number, signal.SIG_IGN if keep else signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (chld_r, chld_w, life_r):
                    os.close(fd)
                if oom_fd is not None:
                    os.close(oom_fd)
                _csignal.pthread_sigmask(signal.SIG_SETMASK, ())
                if setup is not None:
                    failed = _apply_setup(setup, join)
                    if failed is not None:
                        os.write(report_w, f"E{failed[0]} {failed[1]}\n".encode("utf-8", "replace"))
                        os._exit(125)
                try:
                    code, why = _exec_command(argv, env, cwd, ignored)
                except ValueError as exc:  # a NUL byte in an argument or the environment
                    code, why = errno.EINVAL, str(exc)
                os.write(report_w, f"E{code} {why}\n".encode("utf-8", "replace"))
                os._exit(127 if code in (errno.ENOENT, errno.ENOTDIR) else 126)
            except BaseException as exc:  # never "not found" (127) without a word: say what
                with contextlib.suppress(BaseException):
                    why = f"cannot set up its process: {type(exc).__name__}: {exc}"
                    os.write(report_w, f"E{errno.EINVAL} {why}\n".encode("utf-8", "replace"))
            finally:
                os._exit(125)
        _csignal.pthread_sigmask(signal.SIG_SETMASK, ())
        watched = [life_r, chld_r] if oom_fd is None else [life_r, chld_r, oom_fd]
        command_done = False
        while True:
            while True:  # reap the command and every orphan reparented to us
                try:
                    done, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
                except ChildProcessError:  # nobody left: the job is over
                    if v1 is not None:
                        if not oom_told and _oom_kills(v1):
                            os.write(report_w, b"O\n")
                        _remove_cgroup(v1, wait=1.0)
                    if cgroup is not None:
                        if join is not None and _oom_kills(cgroup):
                            os.write(report_w, b"O\n")  # the kernel enforced memory.max
                        _remove_cgroup(cgroup)
                    os._exit(0)
                if done == 0:
                    break
                if done == pid and not command_done:
                    if os.WIFSTOPPED(status):
                        os.write(report_w, f"T{os.WSTOPSIG(status)}\n".encode())
                        continue
                    os.write(report_w, f"S{status}\n".encode())
                    command_done = True
            wait = None
            if cgroup_path is not None:
                wait = adopt_at - time.monotonic()
                if wait <= 0:
                    cgroup = _adopt_into_cgroup(cgroup_path, os.getpid())
                    cgroup_path = wait = None
            if v1 is not None and not oom_told:
                # cgroup v1 has no memory.oom.group: one OOM kill must stop the whole tree, so
                # it is reported at once (reliactl stops the rest as a limit does).
                if _oom_kills(v1):
                    os.write(report_w, b"O\n")
                    oom_told = True
                elif oom_fd is None:  # no OOM notification: look again soon
                    wait = OOM_POLL if wait is None else min(wait, OOM_POLL)
            with contextlib.suppress(InterruptedError):
                ready = _readable(watched, wait)
                if life_r in ready:
                    word = os.read(life_r, 1)
                    if word == b"L":  # reliactl leaves what is left running
                        for path in (cgroup, v1):
                            if path is not None:
                                _remove_cgroup(path, keep_members=True)
                        os._exit(0)
                    if not word:  # reliactl is gone: so is everything it ran
                        watched.remove(life_r)
                        for path in (cgroup, v1):
                            if path is not None:
                                _kill_cgroup(path)
                        signal_job(os.getpid(), signal.SIGKILL, group=os.getpid())
                if chld_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(chld_r, 512)
                if oom_fd is not None and oom_fd in ready:
                    with contextlib.suppress(OSError):
                        os.read(oom_fd, 8)
                    # the notification comes as the kernel picks a victim; its count follows
                    deadline_oom = time.monotonic() + 0.2
                    while not _oom_kills(v1 or "") and time.monotonic() < deadline_oom:
                        time.sleep(0.005)
    except BaseException:
        os._exit(125)
    os._exit(125)


def _apply_setup(setup: _ChildSetup, join: str | None) -> tuple[int, str] | None:
    """In the command's process before exec: nice, I/O class, RLIMIT_CPU, the memory cgroup.
    Returns (errno, why) when a limit cannot be applied (the command is then not run)."""
    if join is not None:  # "0" moves the writer; best effort: the parent polls RSS anyway
        _write_file(os.path.join(join, "cgroup.procs"), b"0")
    try:
        if setup.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, setup.nice)
    except OSError as exc:
        return exc.errno or errno.EPERM, f"cannot set --nice {setup.nice}: {exc.strerror}"
    if setup.io_class is not None:
        err = _ioprio_set(IO_CLASSES[setup.io_class])
        if err:
            return err, f"cannot set --io-class {setup.io_class}: {os.strerror(err)}"
    if setup.cpu_time is not None:
        import resource  # a C module, already imported by the parent (prepare_limits)

        soft = max(1, int(setup.cpu_time + 0.999))
        hard = (
            resource.RLIM_INFINITY
            if setup.kill_after is None
            else soft + max(1, int(setup.kill_after + 0.999))
        )
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        except (OSError, ValueError, OverflowError) as exc:  # a library caller's huge value
            return errno.EPERM, f"cannot set --cpu-time: {exc}"
    return None


# ioprio_set(2) has no libc wrapper: syscall(2) with the number of this architecture.
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314, "ppc64le": 273}
_syscall: list[Any] = []


def prepare_limits(setup: _ChildSetup) -> None:
    """Load what the command's process needs before the fork (imports cost more after it)."""
    if setup.cpu_time is not None:
        import resource  # noqa: F401

    if setup.io_class is not None and not _syscall:
        try:
            import ctypes

            _syscall.append(ctypes.CDLL(None, use_errno=True).syscall)
        except (OSError, AttributeError):
            _syscall.append(None)


def _ioprio_set(io_class: int) -> int:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level) on ourself; 0 or an errno."""
    number = _IOPRIO_SET.get(os.uname().machine)
    function = _syscall[0] if _syscall else None
    if number is None or function is None:
        return errno.ENOSYS
    level = 4 if io_class == IO_CLASSES["best-effort"] else 0
    import ctypes

    if function(number, 1, 0, (io_class << 13) | level) != 0:
        return ctypes.get_errno() or errno.EINVAL
    return 0


_SHIM_KEEPS = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD})
# Python ignores these itself; the command gets them at their defaults, as from a shell.
_RESET = frozenset({int(signal.SIGPIPE), int(signal.SIGXFSZ)})


@dataclass(frozen=True)
class _Tty:
    """reliactl's controlling terminal on stdin, and where reliactl stands on it."""

    fd: int
    foreground: bool  # reliactl's group is the terminal's foreground group
    alone: bool  # ... and reliactl is alone in it (not in a pipeline, script or subshell)

    @property
    def hand_over(self) -> bool:
        """Give the command the terminal at once: only when that takes it from nobody else."""
        return self.foreground and self.alone


def _controlling_tty() -> _Tty | None:
    """stdin, when it is reliactl's controlling terminal (tcgetpgrp fails on any other tty)."""
    try:
        if not os.isatty(0):
            return None
        group = os.getpgrp()
        return _Tty(0, os.tcgetpgrp(0) == group, _alone_in_group(group))
    except OSError:
        return None


def _alone_in_group(group: int) -> bool:
    """Whether no other process shares reliactl's process group. A script or subshell leads
    the group when reliactl does not; the other commands of a pipeline are its siblings."""
    me = os.getpid()
    if group != me:
        return False
    parent = os.getppid()
    siblings = _children(parent)
    if siblings is None:
        siblings = _children_by_scan().get(parent, [])
    for pid in siblings:
        stat = _stat(pid) if pid != me else None
        if stat is not None and stat[2] == group and stat[0] not in ("Z", "X"):
            return False
    return True


@contextlib.contextmanager
def _tty_signals_blocked() -> Iterator[None]:
    """tcsetpgrp from a background group raises SIGTTOU unless it is blocked (as shells do)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU, signal.SIGTTIN})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------- cgroup v2

_cgroup_base_cache: list[str | None] = []


def cgroup_base() -> str | None:
    """reliactl's own cgroup v2 directory when it can hold a job cgroup (writable), else None.

    Found from /proc/self/cgroup ("0::<path>") and the cgroup2 mount in /proc/self/mountinfo;
    a read-only /sys/fs/cgroup (most containers) or a cgroup v1-only host gives None.
    """
    if _cgroup_base_cache:
        return _cgroup_base_cache[0]
    own = _read_proc("/proc/self/cgroup") or b""
    path = next((ln[3:] for ln in own.splitlines() if ln.startswith(b"0::")), None)
    base = _own_cgroup_dir(path, b"cgroup2", None, "cgroup.procs")
    _cgroup_base_cache.append(base)
    return base


def _own_cgroup_dir(
    path: bytes | None, fstype: bytes, option: bytes | None, marker: str
) -> str | None:
    """Our cgroup ``path`` (from /proc/self/cgroup) under the mount of ``fstype`` (with the
    mount option ``option``, for a v1 controller) in /proc/self/mountinfo, when that directory
    is writable and holds ``marker``; else None."""
    if path is None:
        return None
    rel = path.decode("utf-8", "surrogateescape")
    for line in (_read_proc("/proc/self/mountinfo") or b"").splitlines():
        fields = line.split()
        if b"-" not in fields:
            continue
        dash = fields.index(b"-")
        if fields[dash + 1 : dash + 2] != [fstype]:
            continue
        if option is not None and (
            len(fields) < dash + 4 or option not in fields[dash + 3].split(b",")
        ):
            continue
        root, mount = _unescape(fields[3]), _unescape(fields[4])
        if rel != root and not rel.startswith(root.rstrip("/") + "/"):
            continue
        candidate = os.path.join(mount, rel[len(root) :].lstrip("/"))
        if os.access(candidate, os.W_OK) and os.path.exists(os.path.join(candidate, marker)):
            return os.path.normpath(candidate)
    return None


def _unescape(field_: bytes) -> str:
    return unescape_mount(field_.decode("utf-8", "surrogateescape"))


def job_cgroup(base: str, shim_pid: int) -> str:
    return os.path.join(base, f"reliactl-{shim_pid}")


# A job is moved into a cgroup of its own only once it has run this long. Moving a process
# between cgroups waits for an RCU grace period (measured 10-20 ms here, cgroup2 without
# favordynmods): paid before exec, every cron tick would pay it. Done later by the shim, it
# runs beside the command, and short jobs never pay it; until then the subreaper alone
# contains the job (it always does while the shim lives).
CGROUP_AFTER = 0.1


def _adopt_into_cgroup(path: str, shim: int) -> str | None:
    """Create the job's cgroup and move every process of the job into it (their children
    follow by themselves); walked again until the job's processes are all in it."""
    if not _make_cgroup(path):
        return None
    _sweep_cgroups(os.path.dirname(path))
    procs = os.path.join(path, "cgroup.procs")
    own = _own_cgroup(shim)
    if own is None:
        return path
    job = own.rstrip(b"/") + b"/" + os.path.basename(path).encode()
    for _ in range(20):
        outside = [p for p in job_processes(shim) if not _cgroup_within(p.pid, job)]
        if not outside:
            break
        for proc in outside:
            _write_file(procs, str(proc.pid).encode())
    return path


def _sweep_cgroups(base: str) -> None:
    """Remove empty job cgroups whose shim is gone (it was killed before it could): rmdir
    refuses a cgroup that still has processes, so only leftovers of dead runs go."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix("reliactl-")
        if name.startswith("reliactl-") and pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(base, name))


def _own_cgroup(pid: int) -> bytes | None:
    data = _read_proc(f"/proc/{pid}/cgroup") or b""
    return next((ln[3:] for ln in data.splitlines() if ln.startswith(b"0::")), None)


def _cgroup_within(pid: int, job: bytes) -> bool:
    """Whether ``pid`` is in the job's cgroup or below it (a nested reliactl's, say)."""
    where = _own_cgroup(pid)
    return where is None or where == job or where.startswith(job + b"/")


def _make_cgroup(path: str) -> bool:
    try:
        os.mkdir(path)
        return True
    except FileExistsError:  # left by a shim that was killed: reuse it if it is empty
        return not (_read_proc(os.path.join(path, "cgroup.procs")) or b"").strip()
    except OSError:
        return False


def _write_file(path: str, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _cgroup_members(path: str) -> list[int]:
    data = _read_proc(os.path.join(path, "cgroup.procs")) or b""
    return [int(word) for word in data.split()]


def _kill_cgroup(path: str) -> None:
    """SIGKILL every process in the cgroup at once (cgroup.kill, Linux 5.14), else one by one."""
    if _write_file(os.path.join(path, "cgroup.kill"), b"1"):
        return
    for _ in range(100):
        members = _cgroup_members(path)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def memory_cgroup_support(base: str | None = None) -> str | None:
    """None when a job cgroup here can carry memory.max; else why not (one line).

    The memory controller must be enabled for reliactl's cgroup's children
    (``memory`` in its cgroup.subtree_control); a hybrid host whose memory controller is
    bound to cgroup v1 (many containers) has none on the v2 hierarchy.
    """
    if base is None:
        base = cgroup_base()
    if base is None:
        return "reliactl's cgroup v2 directory is not writable (or there is no cgroup v2)"
    enabled = _read_proc(os.path.join(base, "cgroup.subtree_control")) or b""
    if b"memory" not in enabled.split():
        return f"the memory controller is not enabled below {base}"
    return None


def _memory_limit(memory_max: int) -> bytes:
    """memory.max / memory.limit_in_bytes text for ``memory_max`` bytes: at most MAX_SIZE,
    which the kernel reads as no limit (it clamps to its page counter); a larger number
    (a library caller's: the CLI and the configuration refuse it) would wrap in its 64-bit
    parser and stop the job at once as out of memory."""
    return str(min(max(memory_max, 0), MAX_SIZE)).encode()


def _memory_cgroup(path: str, memory_max: int) -> str | None:
    """The job's cgroup made with memory.max (and the whole group killed on OOM), or None."""
    if memory_cgroup_support(os.path.dirname(path)) is not None or not _make_cgroup(path):
        return None
    _sweep_cgroups(os.path.dirname(path))
    if not _write_file(os.path.join(path, "memory.max"), _memory_limit(memory_max)):
        _remove_cgroup(path)
        return None
    _write_file(os.path.join(path, "memory.swap.max"), b"0")  # swapping is not staying within
    _write_file(os.path.join(path, "memory.oom.group"), b"1")  # one OOM kill takes the tree
    return path


def _oom_kills(path: str) -> int:
    """How many processes the kernel OOM-killed in the cgroup: the ``oom_kill`` line of
    memory.events (v2) or of memory.oom_control (v1, Linux 4.13)."""
    for name in ("memory.events", "memory.oom_control"):
        data = _read_proc(os.path.join(path, name))
        if data is None:
            continue
        for line in data.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill" and value.strip().isdigit():
                return int(value)
    return 0


# --------------------------------------------------------------------------- cgroup v1 memory

_v1_base_cache: list[str | None] = []
OOM_POLL = 0.05  # how often the shim reads a v1 cgroup's OOM count without a notification


def memory_cgroup_v1_base() -> str | None:
    """reliactl's own cgroup v1 memory directory when it can hold a job cgroup, else None.

    Used when cgroup v2 has no memory controller (a hybrid host, most containers): found from
    the ``N:...memory...:<path>`` line of /proc/self/cgroup and the ``cgroup`` mount whose
    options name ``memory`` in /proc/self/mountinfo; it must be writable and have
    memory.limit_in_bytes.
    """
    if _v1_base_cache:
        return _v1_base_cache[0]
    path = None
    for line in (_read_proc("/proc/self/cgroup") or b"").splitlines():
        parts = line.split(b":", 2)
        if len(parts) == 3 and b"memory" in parts[1].split(b","):
            path = parts[2]
    base = _own_cgroup_dir(path, b"cgroup", b"memory", "memory.limit_in_bytes")
    _v1_base_cache.append(base)
    return base


def memory_limit_path(use_cgroup: bool = True) -> tuple[str, str | None]:
    """Which path enforces --memory-max here: ``("v2", None)``, ``("v1", None)`` or
    ``("polling", why)`` (why neither cgroup path can be used, one line)."""
    if not use_cgroup:
        return "polling", "cgroups not used for this run"
    why = memory_cgroup_support()
    if why is None:
        return "v2", None
    if memory_cgroup_v1_base() is not None:
        return "v1", None
    return "polling", f"{why}, and no writable cgroup v1 memory directory"


def _memory_cgroup_v1(path: str, memory_max: int) -> str | None:
    """The job's cgroup v1 memory directory with memory.limit_in_bytes (and memsw), or None.

    A directory left under this name by a killed run of the same pid is removed first: its
    OOM count would be taken for this run's."""
    with contextlib.suppress(OSError):
        os.rmdir(path)
    if not _make_cgroup(path):
        return None
    _sweep_cgroups(os.path.dirname(path))
    limit = _memory_limit(memory_max)
    if not _write_file(os.path.join(path, "memory.limit_in_bytes"), limit):
        _remove_cgroup(path)
        return None
    # memory+swap at the same limit: swapping is not staying within (absent without swap
    # accounting; must follow limit_in_bytes, which it may never be below)
    _write_file(os.path.join(path, "memory.memsw.limit_in_bytes"), limit)
    return path


def _oom_eventfd(path: str) -> int | None:
    """An eventfd the kernel signals when the v1 cgroup is out of memory (cgroup.event_control
    on memory.oom_control), or None (polled instead)."""
    try:
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
    except (OSError, AttributeError):
        return None
    try:
        ofd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(efd)
        return None
    try:
        if _write_file(os.path.join(path, "cgroup.event_control"), f"{efd} {ofd}".encode()):
            return efd
        os.close(efd)
        return None
    finally:
        os.close(ofd)


def _job_rss(shim: int) -> int:
    """Bytes resident in the job's processes (--memory-max's fallback): the shim's
    descendants, its child before the command's exec (a copy of reliactl) left out."""
    return (tree_rss(shim, include_root=False, skip_unexeced=True) or (0, 0))[0]


def _remove_cgroup(path: str, *, keep_members: bool = False, wait: float = 0.0) -> None:
    """rmdir the job's cgroup; with ``keep_members``, first move what runs back to the parent."""
    if keep_members:
        parent = os.path.join(os.path.dirname(path), "cgroup.procs")
        for pid in _cgroup_members(path):
            _write_file(parent, str(pid).encode())
    deadline = time.monotonic() + wait
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)


_prctl: list[Any] = []


def prepare_subreaper() -> None:
    """Build the prctl function in reliactl, before forking: in the forked shim the same work
    costs several times more (copy-on-write faults on a fresh library load).

    Python has no prctl. ``ctypes`` costs 5-8 ms to import (its Python module builds dozens of
    classes); the C module under it, ``_ctypes``, with one function-pointer class, costs
    ~0.9 ms, once per process. ctypes is the fallback.
    """
    if _prctl:
        return
    function: Any = None
    try:
        import _ctypes

        lib: Any = _ctypes
        base_int: Any = lib._SimpleCData
        base_fn: Any = lib.CFuncPtr

        class _Int(base_int):  # type: ignore[misc]
            _type_ = "i"

        class _Function(base_fn):  # type: ignore[misc]
            _flags_ = lib.FUNCFLAG_CDECL | lib.FUNCFLAG_USE_ERRNO
            _restype_ = _Int

        class _Libc:
            _handle = lib.dlopen(None, lib.RTLD_LOCAL)

        function = _Function(("prctl", _Libc()))
    except Exception:  # a private module may change: the public one follows
        try:
            import ctypes

            function = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            function = None
    _prctl.append(function)


def _become_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans of the job are reparented to us, not to init."""
    prepare_subreaper()
    function = _prctl[0]
    if function is None:
        return False
    try:
        return bool(function(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except Exception:
        return False


# --------------------------------------------------------------------------- the job's processes


@dataclass(frozen=True)
class JobProcess:
    """A live process of the job: (pid, start time) names it even if the pid is reused."""

    pid: int
    pgid: int
    start: int  # start time, clock ticks after boot (/proc/<pid>/stat field 22)

    def command_line(self) -> str:
        """Its command line as ps shows it (or its name in brackets), at most 120 characters."""
        raw = _read_proc(f"/proc/{self.pid}/cmdline")
        if raw:
            text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace")
        else:
            stat = _read_proc(f"/proc/{self.pid}/stat") or b""
            name = stat.partition(b"(")[2].rpartition(b")")[0]
            text = "[" + name.decode("utf-8", "replace") + "]"
        return text if len(text) <= 120 else text[:117] + "..."


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of ``pid`` from /proc/<pid>/stat, None if it is gone."""
    fields = stat_fields(pid)
    if not fields:
        return None
    try:
        return fields[0], int(fields[1]), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _children(pid: int) -> list[int] | None:
    """Children of ``pid`` from /proc/<pid>/task/*/children; None if the kernel lacks them."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        data = _read_proc(f"/proc/{pid}/task/{tid}/children")
        if data is None:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None  # CONFIG_PROC_CHILDREN is off: the caller scans /proc instead
        found.extend(int(word) for word in data.split())
    return found


def _children_by_scan() -> dict[int, list[int]]:
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parents.setdefault(stat[1], []).append(int(name))
    return parents


def job_processes(root: int) -> list[JobProcess]:
    """Every live (not zombie) descendant of ``root``, found through its children, recursively.

    With ``root`` a child subreaper, that is every process the job started and that is still
    running, whatever group or session it moved to and however often it forked.
    """
    found: list[JobProcess] = []
    seen = {root}
    stack = [root]
    scanned: dict[int, list[int]] | None = None
    while stack:
        parent = stack.pop()
        kids = _children(parent) if scanned is None else scanned.get(parent, [])
        if kids is None:
            scanned = _children_by_scan()
            kids = scanned.get(parent, [])
        for kid in kids:
            if kid in seen:
                continue
            seen.add(kid)
            stat = _stat(kid)
            if stat is None or stat[0] in ("Z", "X"):
                continue
            stack.append(kid)
            found.append(JobProcess(kid, stat[2], stat[3]))
    return found


def _send(proc: JobProcess, sig: int) -> bool:
    """Signal exactly this process: through a pidfd, after checking the pid was not reused."""
    pidfd = -1
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        pass  # no pidfds here: the start-time check below still narrows the race to a moment
    try:
        stat = _stat(proc.pid)
        if stat is None or stat[3] != proc.start:
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(proc.pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def signal_job(root: int, sig: int, *, group: int) -> list[JobProcess]:
    """Send ``sig`` to every process under ``root`` that a killpg(``group``) does not reach.

    SIGKILL goes to every process found. The tree is walked again until a walk finds no
    process not yet signalled (a process can fork while it is being killed); processes that
    were stopped get SIGCONT after a catchable signal. Returns the processes signalled.
    """
    done: set[tuple[int, int]] = set()
    hit: list[JobProcess] = []
    for _ in range(100):  # bounded: a fork bomb outrunning SIGKILL is the cgroup's job
        fresh = [
            p
            for p in job_processes(root)
            if (p.pid, p.start) not in done and (sig == signal.SIGKILL or p.pgid != group)
        ]
        if not fresh:
            break
        for proc in fresh:
            done.add((proc.pid, proc.start))
            if _send(proc, sig):
                hit.append(proc)
    if sig not in (signal.SIGKILL, signal.SIGCONT):
        for proc in hit:
            _send(proc, signal.SIGCONT)
    return hit


# --------------------------------------------------------------------------- a check's programs


class Contained:
    """A program reliactl runs for a health check (a Nagios plugin) or a command alert sink,
    contained as ``run`` contains a job: under a shim of its own (session leader, child
    subreaper, lifeline): the C one, ``reliactl/_containshim`` started with posix_spawn
    (``contain_shim``), else a fork of reliactl running ``_shim`` (DESIGN.md section 7), so that

    - when its time is up, it and every descendant die, also ones that called setsid or
      double-forked (orphans are reparented to the shim, which SIGKILLs every process under
      it when its lifeline closes);
    - when reliactl dies in any way, even SIGKILL, they die too (the lifeline reads EOF);
    - when the program exits on its own, what it left running is killed once the output is
      quiet (``DRAIN_QUIET``), unless ``leave_running`` (command alert sinks: ``sendmail``'s
      background delivery, ``notify.sh &``): then reliactl stops reading at its exit, writes
      ``L`` on the lifeline (the shim exits and leaves them, as ``run --leave-running``) and
      they run on, reparented away from the shim.

    Safe to start from any thread: the shim never relies on PR_SET_PDEATHSIG (which fires
    when the forking *thread* exits), only on the lifeline, which closes when the process
    does. Usage: ``Contained(argv, stdin).communicate(timeout, limit)``; ``kill()`` from a
    signal handler SIGKILLs every process of it at once.
    """

    def __init__(
        self, argv: Sequence[str], stdin: bytes | None = None, *, leave_running: bool = False
    ) -> None:
        opened: list[int] = []
        try:
            report_r, report_w = _pipe(opened)
            life_r, life_w = _pipe(opened)
            out_r, out_w = _pipe(opened)
            if stdin is not None:
                in_r, in_w = _pipe(opened)
            else:
                in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
                opened.append(in_r)
            shim = contain_shim()
            pid = None
            if shim is not None:
                pid = _spawn_contain_shim(shim, argv, (in_r, out_w, report_w, life_r))
            self.shim = "c" if pid is not None else "python"  # which one runs it
            if pid is None:
                pid = self._fork_shim(argv, in_r, out_w, report_w, life_r)
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        for fd in (report_w, life_r, out_w, in_r):
            os.close(fd)
        os.set_blocking(out_r, False)
        os.set_blocking(report_r, False)
        self.pid = pid
        self._report_r, self._life_w, self._out_r, self._in_w = report_r, life_w, out_r, in_w
        self._stdin = stdin or b""
        self._sent = 0
        self._reaped = False  # set before the shim is reaped: kill() then leaves its pid alone
        self._report = b""
        self._code: int | None = None
        self._failed: str | None = None
        self.leave_running = leave_running
        self._killed = False  # kill() was called: nothing is left running
        self._shim_gone = False  # its report or output ended: the shim has exited

    @staticmethod
    def _fork_shim(argv: Sequence[str], in_r: int, out_w: int, report_w: int, life_r: int) -> int:
        """The fallback: fork reliactl and run ``_shim`` in the child."""
        prepare_subreaper()
        import gc as _gc  # built in: no file to read

        with _all_signals_blocked():
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns here
                try:
                    _gc.disable()  # a collection would walk (and copy) reliactl's whole heap
                    os.dup2(in_r, 0)
                except BaseException:
                    os._exit(125)
                _shim(argv, None, None, frozenset(), report_w, life_r, out_w, out_w, None, None)
        return pid

    def kill(self) -> None:
        """SIGKILL every process of the program now (the shim reaps them and exits)."""
        self._killed = True
        if not self._reaped:
            signal_job(self.pid, signal.SIGKILL, group=self.pid)

    def communicate(self, timeout: float, limit: int) -> tuple[int | None, bytes]:
        """(exit code, negative for a signal, or None when ``timeout`` passed first; the first
        ``limit`` bytes of its stdout and stderr). Returns once the program has exited and its
        output ended (or, with descendants still holding it, was quiet for ``DRAIN_QUIET``), or
        at ``timeout``; either way no process of it is left running, except with
        ``leave_running``: then it returns as soon as the program has exited (with what it
        wrote until then) and what it started runs on. Raises OSError (its
        FileNotFoundError, PermissionError) when the program cannot be started."""
        try:
            code, failed, output = self._collect(timeout, limit)
        finally:
            self._end()
        if failed is not None:
            number, _, why = failed.partition(" ")
            raise OSError(int(number) if number.isdigit() else errno.EIO, why)
        return code, output

    def _collect(self, timeout: float, limit: int) -> tuple[int | None, str | None, bytes]:
        now = time.monotonic()
        deadline = now + timeout
        quiet_at = drain_end = None  # once the program exited: stop at quiet or at DRAIN_MAX
        out = bytearray()
        poller = select.poll()
        poller.register(self._out_r, select.POLLIN)
        poller.register(self._report_r, select.POLLIN)
        if self._in_w >= 0:
            os.set_blocking(self._in_w, False)
            poller.register(self._in_w, select.POLLOUT)
        while True:
            end = deadline if quiet_at is None else min(deadline, quiet_at)
            if now >= end or self._failed is not None:
                break
            events = poller.poll(max(1, int((end - now) * 1000 + 0.999)))
            now = time.monotonic()
            for fd, _ in events:
                if fd == self._in_w:
                    if self._feed():
                        poller.unregister(fd)
                    continue
                if fd == self._report_r:
                    if not self._read_report():  # EOF: the shim has exited
                        self._shim_gone = True
                        poller.unregister(fd)
                    if self._code is not None and drain_end is None:
                        quiet_at, drain_end = self._drain_window(now)
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:  # every writer is gone: the shim too, so its report is whole
                    self._shim_gone = True
                    self._read_report()
                    return self._code, self._failed, bytes(out[:limit])
                if len(out) < limit:
                    out += data
                if drain_end is not None:
                    quiet_at = min(now + DRAIN_QUIET, drain_end)
        with contextlib.suppress(OSError):  # what it wrote before it exited is in the pipe
            while len(out) < limit and (data := os.read(self._out_r, 65536)):
                out += data
        return self._code, self._failed, bytes(out[:limit])

    def _drain_window(self, now: float) -> tuple[float, float]:
        """(stop at quiet, stop at the latest) once the program has exited; with
        ``leave_running``, now: all it wrote is in the pipe, and what it left running may
        hold the pipe for ever, so take what is there and go."""
        if self.leave_running:
            return now, now
        return now + DRAIN_QUIET, now + DRAIN_MAX

    def _feed(self) -> bool:
        """Write more of its stdin; True once all is written (or it closed its end) and our
        end is closed."""
        try:
            chunk = self._stdin[self._sent : self._sent + 65536]
            self._sent += _write_no_sigpipe(self._in_w, chunk)
        except BlockingIOError:
            return False
        except OSError:  # EPIPE: it did not read it all; its exit status tells
            self._sent = len(self._stdin)
        if self._sent < len(self._stdin):
            return False
        os.close(self._in_w)
        self._in_w = -1
        return True

    def _read_report(self) -> bool:
        """Take the shim's report lines (``S<wait status>``, ``E<errno> <why>``) from its pipe;
        False at EOF (the shim has exited)."""
        data = _read_all(self._report_r)
        self._report += data
        while b"\n" in self._report:
            line, _, self._report = self._report.partition(b"\n")
            if line[:1] == b"S" and self._code is None:
                self._code = os.waitstatus_to_exitcode(int(line[1:]))
            elif line[:1] == b"E":
                self._failed = line[1:].decode("utf-8", "replace")
        return bool(data)

    def _end(self) -> None:
        """Close the lifeline (the shim SIGKILLs whatever is left and exits) and reap the shim,
        within a bound: if it has not exited after ``CONTAINED_REAP`` seconds, it and the
        processes under it are killed from here. With ``leave_running``, a program that exited
        on its own (within its timeout, not killed) first gets ``L`` written on the lifeline:
        the shim exits leaving what it started (EOF alone still means "kill them all")."""
        if self.leave_running and self._code is not None and not (self._killed or self._shim_gone):
            with contextlib.suppress(OSError):  # a shim exiting by itself has no reader
                _write_no_sigpipe(self._life_w, b"L")
        for fd in (self._life_w, self._out_r, self._report_r, self._in_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._life_w = self._out_r = self._report_r = self._in_w = -1
        self._reaped = True  # from here on the shim kills them all; its pid may be reaped
        pid = self.pid
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            if not _exited_within(pid, CONTAINED_REAP):
                signal_job(pid, signal.SIGKILL, group=pid)  # stuck, or racing a fork bomb
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


CONTAINED_REAP = 2.0  # how long a Contained's shim may take to kill what is left and exit
CONTAIN_SHIM_ENV = "RELIACTL_CONTAIN_SHIM"  # 0/false/no/off: fork the Python shim instead
_SHIM_MARK = b"RELIACTL_CONTAINSHIM_SHA256="
_contain_shim_path: list[str | None] = []  # found once per process


def contain_shim() -> str | None:
    """The C contain shim (``reliactl/_containshim``, built by hatch_build.py from
    ``_containshim.c``), or None: not built (no compiler), built from other source than the
    .c next to it (a checkout updated without reinstalling), or turned off by the operator
    (``RELIACTL_CONTAIN_SHIM=0``). ``_shim`` forked from reliactl is the fallback."""
    from reliactl._switches import switched_off

    if switched_off(CONTAIN_SHIM_ENV):
        return None
    if not _contain_shim_path:
        _contain_shim_path.append(_find_contain_shim())
    return _contain_shim_path[0]


def _find_contain_shim(here: str | None = None) -> str | None:
    """``here``/_containshim (``here``: this package) if it is an executable built from the
    ``_containshim.c`` beside it (a build says the sha256 of its source), else None."""
    here = here or os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "_containshim")
    try:
        with open(path, "rb") as fh:
            built = fh.read()
        if not os.access(path, os.X_OK):
            return None
    except OSError:
        return None
    at = built.find(_SHIM_MARK)
    if at < 0:
        return None
    digest = built[at + len(_SHIM_MARK) : at + len(_SHIM_MARK) + 64].decode("ascii", "replace")
    from reliactl._switches import built_from_source

    return path if built_from_source(os.path.join(here, "_containshim.c"), digest) else None


_SHIM_FDS = 5  # the C shim's fds: 0 stdin, 1 and 2 output, 3 report, 4 lifeline


def _spawn_contain_shim(
    shim: str, argv: Sequence[str], fds: tuple[int, int, int, int]
) -> int | None:
    """Start the C shim with posix_spawn (a vfork: no copy of reliactl, no Python in the new
    process) on ``fds`` (stdin, output, report, lifeline), every signal blocked until it has
    set itself up; None when it cannot start (the caller forks the Python shim)."""
    dups: list[int] = []
    try:
        sources = []
        for fd in fds:  # a source among the targets 0-4 would be overwritten before its dup2
            if fd < _SHIM_FDS:
                import fcntl  # built in

                dups.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _SHIM_FDS))
            sources.append(dups[-1] if fd < _SHIM_FDS else fd)
        stdin, out, report, life = sources
        actions = [
            (os.POSIX_SPAWN_DUP2, stdin, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, out, 2),
            (os.POSIX_SPAWN_DUP2, report, 3),
            (os.POSIX_SPAWN_DUP2, life, 4),
        ]
        return os.posix_spawn(
            shim,
            [shim, *argv],
            os.environ,
            file_actions=actions,
            setsigmask=_csignal.valid_signals(),
        )
    except (OSError, ValueError):  # a NUL byte: the Python shim reports it as _shim does
        return None
    finally:
        for fd in dups:
            os.close(fd)


def _write_no_sigpipe(fd: int, data: bytes) -> int:
    """``os.write`` to the pipe ``fd`` of a contained program or its shim (its stdin, the
    lifeline), which may have exited: EPIPE raises ``BrokenPipeError`` without a SIGPIPE even
    where its disposition is the default (a library caller's choice; the CLI ignores it):
    blocked in this thread around the write, and one it raised taken off again before the
    mask comes back."""
    pipe = {signal.SIGPIPE}
    old = _csignal.pthread_sigmask(signal.SIG_BLOCK, pipe)
    try:
        return os.write(fd, data)
    except BrokenPipeError:
        if signal.SIGPIPE not in old:
            with contextlib.suppress(OSError):
                _csignal.sigtimedwait(pipe, 0)
        raise
    finally:
        _csignal.pthread_sigmask(signal.SIG_SETMASK, old)


def _exited_within(pid: int, timeout: float) -> bool:
    """Whether our child ``pid`` exits within ``timeout`` seconds (not reaped: still ours)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):  # no pidfds (Linux < 5.3): look a few times
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.01)
        return False
    try:
        return bool(_readable([pidfd], timeout))
    finally:
        os.close(pidfd)


# --------------------------------------------------------------------------- parent side


@dataclass(frozen=False, repr=False, eq=False)  # mutable; nothing compares or prints an
# attempt's state (identity equality and hash, as before)
class _AttemptState:
    pid: int
    report_r: int
    life_w: int
    pipes: dict[int, int]  # read fd -> stream (1/2)
    tty: _Tty | None = None
    handed: bool = False  # the command's group has (or had) the terminal
    cgroup: str | None = None  # the job's own cgroup v2, if the machine allows one
    memory_v1: str | None = None  # the job's cgroup v1 memory directory (the v1 path)
    timed_out: bool = False
    lock_lost: bool = False  # the fleet lease was lost: the job is being stopped
    killed: bool = False
    kill_at: float | None = None
    deadline: float | None = None  # the attempt's time limit (monotonic), the loop's to move
    stop_forwarded: bool = False  # a signal asking the job to stop was forwarded to it
    report: bytearray = field(default_factory=bytearray)
    parsed: int = 0  # how much of the report has been acted on
    command_status: int | None = None  # set when the shim reports that the command exited
    sent: set[int] = field(default_factory=set)  # signals sent to the job
    escaped: set[tuple[int, int]] = field(default_factory=set)  # signalled outside the group
    leftovers: set[tuple[int, int]] = field(default_factory=set)  # alive after the command
    left_running: int = 0
    limit: str | None = None  # the limit (or watch) that stopped the command
    limit_message: str | None = None
    sample_at: float | None = None  # next RSS sample (memory_max)
    peak_tree: int = 0  # largest sampled RSS of the whole tree
    output_bytes: int = 0
    usage: Any = None  # the shim's resource usage (os.wait4), its reaped descendants included
    watcher: _Watcher | None = None


class _ChaosCrash:
    """`run --chaos kill-after=D`: SIGKILL to the command's whole tree D after it started."""

    def __init__(self, shim: int, after: float) -> None:
        import threading

        self.shim = shim
        self.fired = False
        self._timer = threading.Timer(after, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        signal_job(self.shim, signal.SIGKILL, group=self.shim)

    @classmethod
    def start(cls, shim: int, chaos: RunChaos | None) -> _ChaosCrash | None:
        if chaos is None or chaos.kill_after is None:
            return None
        return cls(shim, chaos.kill_after)

    @staticmethod
    def stop(crash: _ChaosCrash | None) -> None:
        if crash is not None:
            crash._timer.cancel()

    @staticmethod
    def mark(attempt: Attempt, crash: _ChaosCrash | None) -> Attempt:
        """The attempt, marked injected when the crash it rehearses happened."""
        if crash is None or not crash.fired:
            return attempt
        return replace(attempt, injected="kill")


class Runner:
    """Runs one command under the given options; ``run()`` returns the RunResult."""

    def __init__(
        self,
        options: RunOptions,
        *,
        on_event: EventHandler | None = None,
        output: OutputSink | None = None,
        gate: Gate | None = None,
        watch: Watch | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not options.command:
            raise ReliactlError("no command given")
        self.options = options
        self.on_event = on_event or (lambda event: None)
        if output is None and options.max_output is not None:
            output = _PassThrough()  # counting the output needs it to come through reliactl
        self.output = output
        self.gate = gate
        self.watch = watch
        self.monotonic = monotonic
        self.now = now
        self._signals = _Signals()
        self._lock: Any = None  # the lock held during run() (locks.HeldLock or FleetLock)
        self._lock_lost: str | None = None  # why the fleet lock was lost, once it was
        self._env: Mapping[str, str] | None = options.env  # plus RELIACTL_LOCK_NAME etc.

    # ---- the whole run

    def run(self) -> RunResult:  # noqa: C901 - the attempt loop; its decisions move to the retry core
        opts = self.options
        self._signals_seen = None
        started_wall = self.now()
        started = self.monotonic()
        name = opts.name or os.path.basename(opts.command[0])
        attempts: list[Attempt] = []
        lock: Any = None
        lock_wait: float | None = None
        self._lock = None
        self._lock_lost = None
        self._env = opts.env
        self._gone = None
        if self.output is not None:  # a file an earlier run gave up may be a new pipe now
            from reliactl._runio import forget

            forget()

        def stopped_by(sig: int) -> RunResult:
            if sig == signal.SIGALRM:  # as timeout(1): SIGALRM means "time out now"
                return result(124, TIMEOUT, message="SIGALRM received: timed out")
            return result(128 + sig, SIGNALLED, interrupted_by=sig)

        def result(code: int, outcome: str, **extra: Any) -> RunResult:
            return RunResult(
                name=name,
                command=tuple(opts.command),
                exit_code=code,
                outcome=outcome,
                started_at=started_wall,
                duration=self.monotonic() - started,
                attempts=tuple(attempts),
                lock_path=(lock.where if lock is not None else opts.lock.path)
                if opts.lock
                else None,
                lock_wait=lock_wait,
                lock_scope=opts.lock.scope if opts.lock else None,
                fencing_token=getattr(lock, "fencing_token", None),
                **extra,
            )

        def lock_lost() -> RunResult:
            return result(75, LOCK_LOST, message=self._lock_lost)

        with self._signals as sigs:
            try:
                if opts.lock is not None:
                    try:
                        lock = self._take_lock(opts.lock)
                        lock_wait = lock.attempt.waited
                        self._lock = lock
                        if opts.env is not None or lock.env:
                            env = dict(os.environ if opts.env is None else opts.env)
                            env.update(lock.env)
                            self._env = env
                    except StateError as exc:
                        # Redis away or refusing (full, a key of another type, a permission):
                        # not run, and the run ends as such (it exited 125 with its history
                        # row left "running"); a refused user or password is configuration.
                        lock_wait = self.monotonic() - started
                        config = isinstance(exc, (StateAuthError, StateConfigError))
                        return result(
                            78 if config else 75,
                            LOCK_UNAVAILABLE,
                            message=f"fleet lock {opts.lock.name}: {exc}",
                        )
                    except LockBusyError as exc:
                        lock_wait = self.monotonic() - started
                        got = sigs.take()
                        if got:
                            return stopped_by(got[0])
                        if opts.lock.skip_if_locked:
                            return result(0, SKIPPED, lock_holder=exc.holder, message=str(exc))
                        return result(75, BUSY, lock_holder=exc.holder, message=str(exc))
                if self.gate is not None:
                    # Under the lock, so overlapping runs never both run the gate's checks.
                    refusal = self.gate()
                    got = sigs.take()
                    if got:  # a signal while the gate ran: stop, do not start
                        return stopped_by(got[0])
                    if refusal is not None:
                        return result(refusal.exit_code, refusal.outcome, message=refusal.message)
                if self._renew_lock():  # the gate may have taken a while
                    return lock_lost()
                total_deadline = (
                    None if opts.total_timeout is None else started + opts.total_timeout
                )
                previous_delay: float | None = None  # none yet: the first retry is jittered too
                number = 0
                self.on_event(
                    RunEvent(
                        "start",
                        f"starting {_shown(opts.command)!r}"
                        + (f" ({lock.label})" if lock is not None else ""),
                    )
                )
                first_started = self.monotonic()  # retry.max_elapsed counts from here
                while True:
                    number += 1
                    pending = sigs.take()
                    if pending:
                        return stopped_by(pending[0])
                    if self._renew_lock():
                        return lock_lost()
                    self._gone = None  # what the relay met is told per attempt
                    attempt = self._attempt(number, total_deadline)
                    attempts.append(attempt)
                    sig = self._interrupted()
                    if sig is not None:
                        return result(128 + sig, SIGNALLED, interrupted_by=sig)
                    if self._lost():
                        return lock_lost()
                    if attempt.limit is not None:  # never retried: it would happen again
                        return result(attempt.exit_code, attempt.limit, message=self._why)
                    if attempt.exit_code == 0 and not attempt.timed_out:
                        return result(0, SUCCESS)
                    if attempt.exec_error is not None:
                        outcome = NOT_FOUND if attempt.exit_code == 127 else NOT_EXECUTABLE
                        return result(attempt.exit_code, outcome, message=attempt.exec_error)
                    final = TIMEOUT if attempt.timed_out else FAILURE
                    # Imported once an attempt failed: a run that succeeds never pays for it.
                    from reliactl.backoff import GiveUp, decide

                    decision = decide(
                        opts.retry.strategy,
                        number,
                        previous=previous_delay,
                        retryable=opts.retry.retryable(attempt),
                        max_retries=opts.retry.max_retries,
                        now=self.monotonic() if total_deadline is not None else 0.0,
                        deadline=total_deadline,
                        at_deadline="stop",
                    )
                    if decision is GiveUp.DEADLINE:
                        self.on_event(
                            RunEvent(
                                "give_up",
                                f"no time left for another attempt within the total timeout "
                                f"of {opts.total_timeout}s",
                                attempt=number,
                                exit_code=attempt.exit_code,
                            )
                        )
                    if isinstance(decision, GiveUp):
                        return result(attempt.exit_code, final)
                    gone = self._gone_reader(attempt)
                    if gone is not None:  # this attempt died of it: so would the next one
                        why = f"not retrying: {gone}'s reader went away (broken pipe)"
                        self.on_event(
                            RunEvent("give_up", why, attempt=number, exit_code=attempt.exit_code)
                        )
                        return result(attempt.exit_code, final, message=why)
                    delay = decision.delay
                    capped = self._within_max_elapsed(delay, first_started, attempt)
                    if capped is None:
                        return result(attempt.exit_code, final)
                    delay = capped
                    previous_delay = delay
                    attempts[-1] = _with_delay(attempt, delay)
                    self.on_event(
                        RunEvent(
                            "retry",
                            f"attempt {number} failed with exit code {attempt.exit_code}"
                            + (" (timed out)" if attempt.timed_out else "")
                            + (f" (injected: {attempt.injected})" if attempt.injected else "")
                            + f"; retry {number} of {opts.retry.max_retries} in {_fmt(delay)}",
                            attempt=number,
                            exit_code=attempt.exit_code,
                            delay=delay,
                        )
                    )
                    slept = self._sleep_renewing(delay)
                    if self._lost():
                        return lock_lost()
                    if not slept:
                        sig = sigs.take()[0]
                        if sig == signal.SIGALRM:
                            return stopped_by(sig)
                        self.on_event(
                            RunEvent(
                                "signal",
                                f"received {signal_name(sig)} while waiting to retry; not retrying",
                                attempt=number,
                            )
                        )
                        return result(128 + sig, SIGNALLED, interrupted_by=sig)
            finally:
                if lock is not None:
                    lock.release()

    _signals_seen: int | None = None
    _why: str | None = None  # what the last limit said
    _gone: int | None = None  # the stream (1/2) whose reader went away, as the sink said
    _relay_waiting = False  # _relay_wait is running (a line it writes must not wait again)

    def _gone_reader(self, attempt: Attempt) -> str | None:
        """ "stdout"/"stderr" when this attempt met that stream's reader gone, so a retry
        would too, as the next command of a shell pipeline would not be run either. With
        the output relayed: the sink said so (``BrokenPipeError``) for this attempt's output.
        With reliactl's own descriptors inherited: the attempt died of SIGPIPE (or, as a
        shell reports a child's SIGPIPE, exited 141) and that descriptor is a pipe without a
        reader (poll's POLLERR). A reader gone while the job never wrote to it is not why it
        failed: that attempt is retried as any other."""
        if self._gone is not None:
            return "stdout" if self._gone == 1 else "stderr"
        if self.output is None and _died_of_sigpipe(attempt):
            for fd, name in ((1, "stdout"), (2, "stderr")):
                if _pipe_without_reader(fd):
                    return name
        return None

    def _within_max_elapsed(
        self, delay: float, first_started: float, attempt: Attempt
    ) -> float | None:
        """The pause before the next retry, cut at retry.max_elapsed (counted from the first
        attempt's start); None, after a give_up event, when no retry may start any more."""
        limit = self.options.retry.max_elapsed
        if limit is None:
            return delay
        remaining = limit - (self.monotonic() - first_started)
        if remaining > 0:
            return min(delay, remaining)
        self.on_event(
            RunEvent(
                "give_up",
                f"max_elapsed {_fmt(limit)} reached; not retrying",
                attempt=attempt.number,
                exit_code=attempt.exit_code,
            )
        )
        return None

    def _interrupted(self) -> int | None:
        """The first signal forwarded during the last attempt, if any."""
        return self._signals_seen

    def _lock_sleep(self, seconds: float) -> bool:
        return self._signals.sleep(seconds)

    # ---- the lock (host: a flock; fleet: a lease the loop renews, see locks.FleetLock)

    def _take_lock(self, lock: LockOptions) -> Any:
        from reliactl import locks

        if lock.scope != "fleet":
            return locks.acquire(
                lock.path,
                wait=lock.wait,
                command=_shown(self.options.command),
                allow_network_fs=lock.allow_network_fs,
                sleep=self._lock_sleep,
                monotonic=self.monotonic,
                now=self.now,
            )
        if lock.open_leases is None:
            raise ReliactlError("a fleet lock needs the shared store's leases (open_leases)")
        return locks.acquire_fleet(
            lock.name,
            lock.open_leases,
            seconds=lock.lease,
            wait=lock.wait,
            command=_shown(self.options.command),
            sleep=self._lock_sleep,
            monotonic=self.monotonic,
            now=self.now,
        )

    def _lost(self) -> bool:
        """Has the lock been lost? (a method: the attempt and sleep change it under run())"""
        return self._lock_lost is not None

    def _renew_lock(self, *, force: bool = True) -> bool:
        """Renew the lock when due (``force``: now, if it renews at all); True once it is lost
        (``_lock_lost`` then says why, and a ``lock_lost`` event has been sent)."""
        lock = self._lock
        if self._lock_lost is not None:
            return True
        if lock is None or lock.renew_at is None:
            return False
        if not force and self.monotonic() < lock.renew_at:
            return False
        why = lock.renew()
        if why is None:
            return False
        self._lock_lost = why
        self.on_event(RunEvent("lock_lost", f"lock lost: {why}"))
        return True

    def _sleep_renewing(self, seconds: float) -> bool:
        """sigs.sleep, renewing the lock when due; False when a signal arrived or the lock was
        lost (``_lock_lost`` tells which)."""
        end = self.monotonic() + seconds
        while True:
            remaining = end - self.monotonic()
            if remaining <= 0:
                return True
            renew_at = None if self._lock is None else self._lock.renew_at
            step = (
                remaining
                if renew_at is None
                else max(0.0, min(remaining, renew_at - self.monotonic()))
            )
            if not self._signals.sleep(step):
                return False
            if self._renew_lock(force=False):
                return False

    # ---- one attempt

    def _attempt(self, number: int, total_deadline: float | None) -> Attempt:
        opts = self.options
        sigs = self._signals
        started_wall = self.now()
        started = self.monotonic()
        deadline = None if opts.timeout is None else started + opts.timeout
        if total_deadline is not None:
            deadline = total_deadline if deadline is None else min(deadline, total_deadline)
        injected = self._chaos_before(number, started_wall, started)
        if injected is not None:
            return injected
        tty = _controlling_tty() if opts.job_control else None
        cgroups = cgroup_base() if opts.use_cgroup else None
        setup = self._setup(number)

        opened: list[int] = []
        try:
            report_r, report_w = _pipe(opened)
            life_r, life_w = _pipe(opened)
            pipes: dict[int, int] = {}
            out_w = err_w = None
            if self.output is not None:
                out_r, out_w = _pipe(opened)
                err_r, err_w = _pipe(opened)
                pipes = {out_r: 1, err_r: 2}
            _flush_std()
            prepare_subreaper()
            with _all_signals_blocked():
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child never returns here
                    _shim(
                        opts.command,
                        self._env,
                        opts.cwd,
                        sigs.ignored,
                        report_w,
                        life_r,
                        out_w,
                        err_w,
                        tty,
                        cgroups,
                        setup,
                    )
            if tty is not None:
                # As shells do: both sides set the group, so a signal sent at once finds it.
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)
        except OSError as exc:  # out of fds or processes: reliactl's own failure (125)
            for fd in opened:
                os.close(fd)
            raise ReliactlError(f"cannot start {opts.command[0]!r}: {exc.strerror}") from None
        for child_end in (report_w, life_r, out_w, err_w):
            if child_end is not None:
                os.close(child_end)
        for fd in pipes:
            os.set_blocking(fd, False)
        os.set_blocking(report_r, False)
        state = _AttemptState(
            pid=pid,
            report_r=report_r,
            life_w=life_w,
            pipes=pipes,
            tty=tty,
            handed=tty is not None and tty.hand_over,
            cgroup=None if cgroups is None else job_cgroup(cgroups, pid),
            memory_v1=None
            if setup is None or setup.memory_v1 is None
            else job_cgroup(setup.memory_v1, pid),
        )
        crash = _ChaosCrash.start(pid, opts.chaos)
        self._start_watching(state)
        try:
            status = self._supervise(state, number, deadline)
            state.report += _read_all(report_r)
        finally:
            _ChaosCrash.stop(crash)
            if state.watcher is not None:
                state.watcher.close()
            for fd in (*state.pipes, report_r, life_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if tty is not None:
                _take_terminal_back(tty, pid)
            if self.output is not None:
                self.output.end_attempt(number)
        duration = self.monotonic() - started
        attempt = self._attempt_result(state, number, started_wall, duration, status)
        return _ChaosCrash.mark(attempt, crash)

    def _chaos_before(self, number: int, started_wall: float, started: float) -> Attempt | None:
        """`run --chaos`: the added delay, then an injected failure (the command not started)."""
        chaos = self.options.chaos
        if chaos is None:
            return None
        if chaos.delay and not self._signals.sleep(chaos.delay):
            return None  # a signal arrived: the attempt loop handles it
        if not chaos.attempt_fails():
            return None
        duration = self.monotonic() - started
        return Attempt(number, started_wall, duration, chaos.exit, injected="fail")

    def _attempt_result(
        self,
        state: _AttemptState,
        number: int,
        started_wall: float,
        duration: float,
        status: int,
    ) -> Attempt:
        command_status: int | None = None
        exec_error: str | None = None
        oom = False
        for line in bytes(state.report).splitlines():
            if line.startswith(b"S"):
                command_status = int(line[1:])
            elif line == b"O":
                oom = True
            elif line.startswith(b"E"):
                err, _, why = line[1:].decode("utf-8", "replace").partition(" ")
                exec_error = f"cannot run {self.options.command[0]!r}: {why}"
                exit_code = 127 if int(err) in (errno.ENOENT, errno.ENOTDIR) else 126
                return Attempt(number, started_wall, duration, exit_code, exec_error=exec_error)
        if command_status is not None:
            code, sig = exit_code_of(command_status)
        else:  # the shim itself was killed (our SIGKILL, or someone else's)
            code, sig = exit_code_of(status)
        escaped, leftovers = len(state.escaped), len(state.leftovers)
        usage = state.usage
        peak = cpu = None
        if usage is not None:
            # ru_maxrss (KiB) is the largest process's peak, its pre-exec copy of reliactl's
            # shim included: a floor of a few MiB; the polled tree total when that is larger.
            peak = max(int(usage.ru_maxrss) * 1024, state.peak_tree)
            cpu = float(usage.ru_utime + usage.ru_stime)
        opts = self.options
        if state.limit is None and sig is not None and not state.timed_out:
            self._limit_after_exit(state, sig, oom=oom, cpu=cpu, number=number)
        if state.limit is not None:
            self._why = state.limit_message
            shown = code
            if not opts.preserve_status:
                shown = HEALTH_STOPPED_EXIT if state.limit == HEALTH_STOPPED else LIMIT_EXIT
            return Attempt(
                number,
                started_wall,
                duration,
                shown,
                sig,
                killed=state.killed,
                escaped=escaped,
                leftovers=leftovers,
                limit=state.limit,
                peak_rss=peak,
                cpu_time=cpu,
            )
        if state.timed_out:
            shown = code if self.options.preserve_status else (137 if state.killed else 124)
            return Attempt(
                number,
                started_wall,
                duration,
                shown,
                sig,
                timed_out=True,
                killed=state.killed,
                escaped=escaped,
                leftovers=leftovers,
                peak_rss=peak,
                cpu_time=cpu,
            )
        if (
            sig is not None
            and state.tty is not None
            and state.handed
            and sig in (signal.SIGINT, signal.SIGQUIT)
            and sig not in state.sent
        ):
            # Ctrl-C / Ctrl-\ at the terminal went to the command's foreground group only: the
            # user interrupted the run, as if reliactl had received the signal itself.
            if self._signals_seen is None:
                self._signals_seen = sig
            if not state.tty.alone:  # the script or pipeline around reliactl gets it too
                with contextlib.suppress(OSError):
                    os.killpg(0, sig)
        return Attempt(
            number,
            started_wall,
            duration,
            code,
            sig,
            killed=state.killed,
            escaped=escaped,
            leftovers=leftovers,
            left_running=state.left_running,
            peak_rss=peak,
            cpu_time=cpu,
        )

    def _limit_after_exit(
        self, state: _AttemptState, sig: int, *, oom: bool, cpu: float | None, number: int
    ) -> None:
        """The kernel enforced a limit (an OOM kill in the job's cgroup, RLIMIT_CPU): name it."""
        opts = self.options
        if oom and opts.memory_max is not None:
            self._limit_hit(state, MEMORY_LIMIT, self._oom_message(state), number)
        elif opts.cpu_time is not None and (
            sig == signal.SIGXCPU
            or (sig == signal.SIGKILL and sig not in state.sent and (cpu or 0) >= opts.cpu_time)
        ):
            self._limit_hit(
                state,
                CPU_LIMIT,
                f"a process of the job used more than --cpu-time "
                f"{_fmt(opts.cpu_time)} of CPU ({signal_name(sig)} from the kernel)",
                number,
            )

    def _supervise(self, state: _AttemptState, number: int, deadline: float | None) -> int:
        """Wait for the shim while handling output, signals and deadlines; returns its status.

        With a sink, the relay writes from this loop; a write whose reader has no room calls
        ``_relay_wait`` (through ``_runio.waiting``), which goes on supervising meanwhile."""
        state.deadline = deadline
        if self.output is None:
            return self._supervise_loop(state, number)
        from reliactl._runio import waiting

        with waiting(lambda fd: self._relay_wait(state, number, fd)):
            return self._supervise_loop(state, number)

    def _supervise_loop(self, state: _AttemptState, number: int) -> int:
        while True:
            self._take_signals(state, number)  # 1. signals received by reliactl
            status = self._shim_ended(state)  # 2. has the shim exited?
            if status is not None:
                return status
            self._check_deadlines(state, number)  # 3. deadlines, limits, the lock
            # 4. wait for output, a report, a signal or the next deadline
            ready = self._woken(state, number, self._next_wake(state), [*state.pipes])
            if self.output is not None:
                for fd in [fd for fd in ready if fd in state.pipes]:
                    self._read_pipe(state, fd)

    def _relay_wait(self, state: _AttemptState, number: int, fd: int) -> bool:
        """The relay's reader has no room on ``fd``: supervise (signals, reports, deadlines)
        until it has (True), or give up (False) once the job was stopped (timeout, limit, lock
        lost, a signal forwarded) and then killed, past its SIGKILL time, or gone: the reader
        then gets no more of the output, and run ends as it would have. The job's pipes are
        not read meanwhile, so a job that writes waits for the reader, as in a pipeline."""
        if self._relay_waiting:  # never: _runio does not wait within a wait
            return False
        self._relay_waiting = True
        since = self.monotonic()
        try:
            while True:
                self._take_signals(state, number)
                self._check_deadlines(state, number)
                stopped = (
                    state.timed_out
                    or state.limit is not None
                    or state.lock_lost
                    or state.stop_forwarded
                )
                if (
                    stopped
                    and self.monotonic() - since >= RELAY_GRACE
                    and (
                        state.killed
                        or (state.kill_at is not None and self.monotonic() >= state.kill_at)
                        or self._shim_exited(state.pid) is not None
                    )
                ):
                    return False
                wake = self._next_wake(state)
                wake = RELAY_LOOK if wake is None else min(wake, RELAY_LOOK)
                if fd in self._woken(state, number, wake, [], writable=fd):
                    return True
        finally:
            self._relay_waiting = False

    def _take_signals(self, state: _AttemptState, number: int) -> None:
        """Signals received by reliactl: forward to the job (SIGALRM: time out now)."""
        opts = self.options
        for sig in self._signals.take():
            if sig == signal.SIGALRM:
                if state.command_status is None:
                    state.deadline = self.monotonic()
                continue
            if self._signals_seen is None:
                self._signals_seen = sig
                self.on_event(
                    RunEvent(
                        "signal",
                        f"received {signal_name(sig)}; forwarding it to the command's group",
                        attempt=number,
                    )
                )
            self._signal_group(state, sig)
            state.stop_forwarded |= sig in STOP_SIGNALS
            if state.kill_at is None and opts.kill_after is not None:
                state.kill_at = self.monotonic() + opts.kill_after

    def _shim_ended(self, state: _AttemptState) -> int | None:
        """The shim's status once it exited (looked at without reaping first: its pid stays
        ours while the rest is read), else None."""
        exited = self._shim_exited(state.pid)
        if exited is None:
            return None
        if exited and not state.killed:
            # The shim was killed from outside (OOM killer, kill -9 of its pid): its
            # group would run on unsupervised. Not reaped yet, so the id is still ours;
            # processes outside the group are found through the job's cgroup.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGKILL)
            if state.cgroup is not None:
                _kill_cgroup(state.cgroup)
        if state.pipes:
            self._drain(state)
        try:
            _, status, state.usage = os.wait4(state.pid, 0)
        except ChildProcessError:  # reaped behind our back: nothing to report
            status = 125 << 8
        if state.cgroup is not None and os.path.isdir(state.cgroup):
            # The shim removes it; if the shim was killed, its members are too.
            if exited:
                _kill_cgroup(state.cgroup)
            _remove_cgroup(state.cgroup, wait=1.0)
        if state.memory_v1 is not None and os.path.isdir(state.memory_v1):
            if exited:
                _kill_cgroup(state.memory_v1)
            _remove_cgroup(state.memory_v1, wait=1.0)
        return status

    def _check_deadlines(self, state: _AttemptState, number: int) -> None:
        """The lock's renewal, the limits' samples, the watch's verdicts, the time limit (the
        command's: it ends when the command exits) and the SIGKILL after it."""
        opts = self.options
        if not state.lock_lost and self._renew_lock(force=False):
            # As on timeout: the timeout signal to the whole job, SIGKILL after kill_after.
            state.lock_lost = True
            self._stop_like_timeout(
                state, "lock_lost", f"attempt {number}: the lock is lost", number
            )
        now = self.monotonic()
        if state.sample_at is not None and now >= state.sample_at:
            if state.limit is None and state.command_status is None and not state.timed_out:
                self._sample_memory(state, number)
                state.sample_at = now + opts.limit_poll
            else:
                state.sample_at = None
        if state.watcher is not None:
            for verdict in state.watcher.take():
                if verdict.stop and state.command_status is None:
                    self._limit_hit(state, HEALTH_STOPPED, verdict.message, number)
                elif not verdict.stop:
                    self.on_event(RunEvent("health", verdict.message, attempt=number))
        deadline = state.deadline
        if (
            deadline is not None
            and not state.timed_out
            and state.limit is None
            and state.command_status is None
            and now >= deadline
        ):
            state.timed_out = True
            self._stop_like_timeout(state, "timeout", f"attempt {number} timed out", number)
        if state.kill_at is not None and now >= state.kill_at and not state.killed:
            state.killed = True
            left = job_processes(state.pid)
            if state.command_status is not None:
                state.leftovers.update((p.pid, p.start) for p in left)
            self.on_event(
                RunEvent(
                    "kill",
                    f"still running: {_named(left)}; sending SIGKILL"
                    if left
                    else "the command's group is still running; sending SIGKILL",
                    attempt=number,
                )
            )
            self._signal_group(state, signal.SIGKILL)

    def _next_wake(self, state: _AttemptState) -> float | None:
        """Seconds until the next deadline the loop acts on (None: none)."""
        deadline = state.deadline
        waits = [t for t in (deadline, state.kill_at, state.sample_at) if t is not None]
        if (
            state.timed_out or state.limit is not None or state.command_status is not None
        ) and deadline in waits:
            waits.remove(deadline)  # it acts no more (a past one would spin the loop)
        if state.killed and state.kill_at in waits:
            waits.remove(state.kill_at)
        renew_at = None if self._lock is None else self._lock.renew_at
        if renew_at is not None:
            waits.append(renew_at)
        return max(0.0, min(waits) - self.monotonic()) if waits else None

    def _woken(
        self,
        state: _AttemptState,
        number: int,
        timeout: float | None,
        readable: list[int],
        writable: int | None = None,
    ) -> list[int]:
        """Wait up to ``timeout`` for a signal, a report, the watch, one of ``readable`` or
        ``writable`` having room; handles the first three, returns the fds that are ready."""
        sigs = self._signals
        watched = [sigs.wake_fd, *readable]
        if state.report_r >= 0:
            watched.append(state.report_r)
        if state.watcher is not None:
            watched.append(state.watcher.wake_r)
        try:
            ready = _ready(watched, timeout, writable)
        except InterruptedError:
            ready = []
        if sigs.wake_fd in ready:
            sigs.drain()
        if state.watcher is not None and state.watcher.wake_r in ready:
            state.watcher.drain()
        if state.report_r in ready:
            self._read_report(state, number)
        return ready

    def _read_report(self, state: _AttemptState, number: int) -> None:
        """The shim's reports: the command stopped (T) or exited (S) while the shim lives on."""
        try:
            data = os.read(state.report_r, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # EOF: the shim is exiting; step 2 reaps it
            state.report_r = -1
            return
        state.report += data
        while (end := state.report.find(b"\n", state.parsed)) >= 0:
            line = bytes(state.report[state.parsed : end])
            state.parsed = end + 1
            if line.startswith(b"T"):
                self._command_stopped(state, int(line[1:]))
            elif line.startswith(b"S") and state.command_status is None:
                state.command_status = int(line[1:])
                self._command_exited(state, number)
            elif line == b"O" and state.command_status is None and not state.timed_out:
                # cgroup v1: the kernel OOM-killed a process of the job while the command
                # runs; without memory.oom.group the rest of the tree is stopped here.
                self._limit_hit(state, MEMORY_LIMIT, self._oom_message(state), number)

    def _command_exited(self, state: _AttemptState, number: int) -> None:
        """The command exited; processes it started may still run. Stop them (or leave them)."""
        opts = self.options
        if state.sent and not opts.leave_running:
            return  # already being stopped (timeout, forwarded signal): SIGKILL names survivors
        left = job_processes(state.pid)
        if not left:
            return  # the shim exits by itself in a moment
        if opts.leave_running:
            state.left_running = len(left)
            self.on_event(
                RunEvent(
                    "leftovers",
                    f"warning: the command exited but {_count(left)} it started still run: "
                    f"{_named(left)}; leaving them (--leave-running): the lock is released "
                    "while they run",
                    attempt=number,
                )
            )
            with contextlib.suppress(OSError):
                os.write(state.life_w, b"L")
            return
        state.leftovers.update((p.pid, p.start) for p in left)
        how = signal_name(opts.timeout_signal)
        if opts.kill_after is not None:
            how += f", then SIGKILL after {_fmt(opts.kill_after)}"
        self.on_event(
            RunEvent(
                "leftovers",
                f"warning: the command exited but {_count(left)} it started still run: "
                f"{_named(left)}; stopping them ({how})",
                attempt=number,
            )
        )
        if opts.timeout_signal not in state.sent:
            self._signal_group(state, opts.timeout_signal)
        if state.kill_at is None and opts.kill_after is not None:
            state.kill_at = self.monotonic() + opts.kill_after

    def _command_stopped(self, state: _AttemptState, sig: int) -> None:
        """On a terminal, a stopped command stops reliactl too, so the shell sees the job stop;
        when the shell continues reliactl (fg, bg), it continues the command."""
        tty = state.tty
        if tty is None or sig not in (*JOB_CONTROL_SIGNALS, signal.SIGSTOP):
            return
        if sig in (signal.SIGTTIN, signal.SIGTTOU) and not state.handed and _in_foreground(tty):
            # reliactl's group (a script, a pipeline) has the terminal and the command wants
            # it (a password prompt): hand it over now rather than stop everything.
            with contextlib.suppress(OSError), _tty_signals_blocked():
                os.tcsetpgrp(tty.fd, state.pid)
                state.handed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGCONT)
            return
        had_terminal = state.handed
        _take_terminal_back(tty, state.pid)
        if int(sig) in self._signals.ignored:
            sig = signal.SIGSTOP
        old = signal.signal(sig, signal.SIG_DFL) if sig != signal.SIGSTOP else None
        try:
            unblocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            # The whole group stops, as the terminal would have stopped it: alone, that is
            # reliactl; in a script or pipeline, the shell sees its whole job stop.
            os.killpg(0, sig)  # stops here until the shell sends SIGCONT
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        finally:
            if old is not None:
                signal.signal(sig, old)
        if had_terminal and _in_foreground(tty):  # fg: the command gets the terminal back
            with contextlib.suppress(OSError), _tty_signals_blocked():
                os.tcsetpgrp(tty.fd, state.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, signal.SIGCONT)

    def _read_pipe(self, state: _AttemptState, fd: int) -> bool:
        """Read what is there; False (and forget the fd) on EOF."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            del state.pipes[fd]
            os.close(fd)
            return False
        assert self.output is not None
        limit = self.options.max_output
        if limit is not None:
            room = max(0, limit - state.output_bytes)
            state.output_bytes += len(data)
            if state.output_bytes > limit:
                data = data[:room]  # nothing past the limit is passed on
                if state.limit is None and state.command_status is None:
                    self._limit_hit(
                        state,
                        OUTPUT_LIMIT,
                        f"the command wrote more than --max-output {_size(limit)}",
                        0,
                    )
            if not data:
                return True
        try:
            self.output.write(state.pipes[fd], data)
        except BrokenPipeError:
            # Whoever read this stream went away: close our end, so the command's next write
            # gets SIGPIPE/EPIPE as it would in a shell pipeline, instead of running on (and
            # no retry follows: Runner._gone_reader).
            self._gone = state.pipes[fd]
            del state.pipes[fd]
            os.close(fd)
            return False
        return True

    def _limit_hit(self, state: _AttemptState, outcome: str, message: str, number: int) -> None:
        """A limit was exceeded: stop the job as a timeout does (signal, then SIGKILL)."""
        if state.limit is not None:
            return
        state.limit, state.limit_message = outcome, message
        if state.command_status is not None or state.timed_out:
            # already over (an OOM kill or RLIMIT_CPU found after the fact)
            self.on_event(RunEvent("limit", message, attempt=number))
            return
        self._stop_like_timeout(state, "limit", message, number)

    def _stop_like_timeout(self, state: _AttemptState, kind: str, why: str, number: int) -> None:
        """Stop the job as a timeout does (a timeout, a lost lock, a limit): say why, send the
        timeout signal to the whole job, and SIGKILL it ``kill_after`` later."""
        opts = self.options
        self.on_event(
            RunEvent(
                kind,
                f"{why}; sending {signal_name(opts.timeout_signal)} to the command's group",
                attempt=number,
            )
        )
        self._signal_group(state, opts.timeout_signal)
        if opts.timeout_signal == signal.SIGKILL:
            state.killed = True
        if opts.kill_after is not None and state.kill_at is None:
            state.kill_at = self.monotonic() + opts.kill_after

    def _sample_memory(self, state: _AttemptState, number: int) -> None:
        """--memory-max: the tree's RSS (the fallback, and the peak), and the cgroup's OOM kills."""
        limit = self.options.memory_max
        assert limit is not None
        rss = _job_rss(state.pid)
        state.peak_tree = max(state.peak_tree, rss)
        if rss > limit:
            self._limit_hit(
                state,
                MEMORY_LIMIT,
                f"the job's processes use {_size(rss)} resident, more than --memory-max "
                f"{_size(limit)}",
                number,
            )
        elif (state.memory_v1 is not None and _oom_kills(state.memory_v1)) or (
            state.cgroup is not None and _oom_kills(state.cgroup)
        ):
            self._limit_hit(state, MEMORY_LIMIT, self._oom_message(state), number)

    def _oom_message(self, state: _AttemptState) -> str:
        limit = self.options.memory_max
        assert limit is not None
        where = "cgroup v1" if state.memory_v1 is not None else "cgroup v2"
        return (
            f"the job used more than --memory-max {_size(limit)} "
            f"(the kernel's OOM killer in its {where})"
        )

    def _start_watching(self, state: _AttemptState) -> None:
        """The limits and the watch polled while this attempt runs (none: nothing runs)."""
        opts = self.options
        if opts.memory_max is not None:
            state.sample_at = self.monotonic()
        if self.watch is not None and opts.watch_interval is not None:
            state.watcher = _Watcher(self.watch, opts.watch_interval)

    def _setup(self, number: int) -> _ChildSetup | None:
        """The limits the command's process sets on itself, loaded before the fork."""
        setup = _setup_of(self.options)
        if setup is not None:
            prepare_limits(setup)
            if self.options.memory_max is not None:
                path, why = memory_limit_path(self.options.use_cgroup)
                if path == "v1":
                    setup = replace(setup, memory_v1=memory_cgroup_v1_base())
                if number == 1:
                    self._memory_event(path, why)
        return setup

    def _memory_event(self, path: str, why: str | None) -> None:
        """Say once which path enforces --memory-max on this machine, by its name: "cgroup v2",
        "cgroup v1" or "polling"."""
        limit = self.options.memory_max
        assert limit is not None
        every = _fmt(self.options.limit_poll)
        how = {
            "v2": "by the job's cgroup v2 (memory.max, memory.oom.group)",
            "v1": "by the job's cgroup v1 (memory.limit_in_bytes; an OOM kill stops the tree)",
        }.get(path)
        how = (
            f"by polling the job's RSS every {every} ({why})"
            if how is None
            else f"{how}, and its RSS polled every {every}"
        )
        self.on_event(RunEvent("memory_limit", f"--memory-max {_size(limit)} enforced {how}"))

    def _drain(self, state: _AttemptState) -> None:
        """The command exited: read what is left, but never wait for EOF a grandchild holds."""
        hard = self.monotonic() + DRAIN_MAX
        while state.pipes:
            remaining = hard - self.monotonic()
            if remaining <= 0:
                break
            try:
                ready = _readable(list(state.pipes), min(DRAIN_QUIET, remaining))
            except InterruptedError:
                continue
            if not ready:
                break
            for fd in ready:
                self._read_pipe(state, fd)

    def _signal_group(self, state: _AttemptState, sig: int) -> None:
        """``sig`` to the command's group and to every process of the job outside it."""
        # The shim (group leader, a subreaper) is not reaped yet, so state.pid is still this
        # group's id, and every process of the job is still below it.
        if state.pid <= 1:  # never kill(-1) or our own group (coreutils#82)
            return
        state.sent.add(sig)
        if sig == signal.SIGKILL and state.cgroup is not None:
            _kill_cgroup(state.cgroup)  # all at once: no fork can race it
        if sig != signal.SIGKILL:  # SIGKILL goes to each process: the shim must live to reap
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, sig)
                if sig != signal.SIGCONT:
                    os.killpg(state.pid, signal.SIGCONT)
        for proc in signal_job(state.pid, sig, group=state.pid):
            if proc.pgid != state.pid and (proc.pid, proc.start) not in state.leftovers:
                state.escaped.add((proc.pid, proc.start))

    @staticmethod
    def _shim_exited(pid: int) -> bool | None:
        """None while the shim runs; else whether a signal killed it. Never reaps it."""
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        if info is None:
            return None
        return info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)


class _PassThrough:
    """The output sink of a run that only counts its output (--max-output): straight through.
    A reader gone (EPIPE) is passed on as ``BrokenPipeError``; other failures drop the data."""

    def write(self, stream: int, data: bytes) -> None:
        from reliactl._runio import write_all

        try:
            write_all(stream, data)  # whole, on a non-blocking descriptor too
        except BrokenPipeError:
            raise
        except OSError:
            pass

    def end_attempt(self, attempt: int) -> None:
        pass


class _Watcher:
    """Calls a Watch every ``interval`` seconds in a daemon thread while one attempt runs;
    verdicts wait in a list, and a byte on ``wake_r`` wakes the supervising loop."""

    def __init__(self, watch: Watch, interval: float) -> None:
        import threading

        self.watch = watch
        self.interval = min(interval, MAX_INTERVAL)  # a library caller's 1e20: every 7d, no
        self.wake_r, self._wake_w = os.pipe()  # OverflowError killing the thread
        os.set_blocking(self.wake_r, False)
        self._verdicts: list[WatchVerdict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reliactl-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    verdict = self.watch()
                except Exception as exc:  # a broken watch is a line in the log, never the end
                    verdict = WatchVerdict(False, f"warning: watch failed: {exc}")
                if verdict is None or self._stop.is_set():
                    continue
                with self._lock:
                    self._verdicts.append(verdict)
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"!")
        finally:
            os.close(self._wake_w)  # the thread owns the write end: never a reused fd

    def take(self) -> list[WatchVerdict]:
        with self._lock:
            taken, self._verdicts = self._verdicts, []
        return taken

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.wake_r, 512)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(0.2)  # a check still running finishes on its own
        os.close(self.wake_r)


def _setup_of(opts: RunOptions) -> _ChildSetup | None:
    if (opts.nice, opts.io_class, opts.cpu_time, opts.memory_max) == (None, None, None, None):
        return None
    return _ChildSetup(
        nice=opts.nice,
        io_class=opts.io_class,
        cpu_time=opts.cpu_time,
        kill_after=opts.kill_after,
        memory_max=opts.memory_max,
    )


def _size(size: int) -> str:
    from reliactl.units import format_size

    return format_size(size)


def _named(procs: Sequence[JobProcess]) -> str:
    """ "123 (sleep 60), 456 (sh -c ...)": pid and command line of the first ten."""
    names = ", ".join(f"{p.pid} ({p.command_line()})" for p in procs[:10])
    if len(procs) > 10:
        names += f" and {len(procs) - 10} more"
    return names


def _count(procs: Sequence[JobProcess]) -> str:
    return f"{len(procs)} process{'es' if len(procs) != 1 else ''}"


def _in_foreground(tty: _Tty) -> bool:
    try:
        return os.tcgetpgrp(tty.fd) == os.getpgrp()
    except OSError:
        return False


def _take_terminal_back(tty: _Tty, job: int) -> None:
    """Give the terminal back to reliactl's group if the job's group still has it."""
    with contextlib.suppress(OSError):
        if os.tcgetpgrp(tty.fd) == job:
            with _tty_signals_blocked():
                os.tcsetpgrp(tty.fd, os.getpgrp())


def run_command(
    options: RunOptions,
    *,
    on_event: EventHandler | None = None,
    output: OutputSink | None = None,
    gate: Gate | None = None,
) -> RunResult:
    """Run ``options.command`` supervised (lock, retries, timeouts, signals); never prints.

    ``gate`` (optional) is called once under the lock before the first attempt; a
    GateRefusal it returns ends the run unstarted (outcome "gated").
    """
    return Runner(options, on_event=on_event, output=output, gate=gate).run()


def _with_delay(attempt: Attempt, delay: float) -> Attempt:

    return replace(attempt, delay_after=delay)


def _fmt(seconds: float) -> str:
    from reliactl.durations import format_duration

    return format_duration(seconds)


def _readable(fds: Sequence[int], timeout: float | None) -> list[int]:
    """The fds ready to read (or at EOF/error) within ``timeout`` seconds (None: no limit)."""
    return _ready(fds, timeout)


def _ready(fds: Sequence[int], timeout: float | None, writable: int | None = None) -> list[int]:
    """The fds ready to read (or at EOF/error), and ``writable`` if it has room (or an error),
    within ``timeout`` seconds (None: no limit).

    poll(), not select(): select fails on descriptors above 1024, which a process started
    by a busy service may well be handed.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLPRI)
    if writable is not None:
        poller.register(writable, select.POLLOUT)
    wait_ms = None if timeout is None else min(2**31 - 1, max(0, int(timeout * 1000 + 0.999)))
    return [fd for fd, _ in poller.poll(wait_ms)]


def _died_of_sigpipe(attempt: Attempt) -> bool:
    """Whether the attempt ended by SIGPIPE: the command was killed by it, or exited 141 as a
    shell does when the child it waited for was (`sh -c 'gen | filter'`)."""
    if attempt.timed_out:
        return False  # reliactl's own signal ended it (a --timeout-signal PIPE too)
    return attempt.signal == signal.SIGPIPE or attempt.exit_code == 128 + signal.SIGPIPE


def _pipe_without_reader(fd: int) -> bool:
    """Whether ``fd`` is a pipe (FIFO) whose read end is closed everywhere: Linux's pipe_poll
    reports POLLERR to a writer then. Looks without writing (a write would raise SIGPIPE)."""
    import stat

    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
    except OSError:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(OSError):
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _pipe(opened: list[int]) -> tuple[int, int]:
    r, w = os.pipe()
    opened.extend((r, w))
    return r, w


def _flush_std() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def parse_codes(text: str) -> frozenset[int]:
    """Exit codes from "1,3,64-78" (lists and inclusive ranges, 0..255)."""
    codes: set[int] = set()
    for part in text.split(","):
        item = part.strip()
        if not item:
            raise ValueError(f"empty item in exit code list {text!r}")
        low, sep, high = item.partition("-")
        try:
            lo = int(low)
            hi = int(high) if sep else lo
        except ValueError:
            raise ValueError(f"expected exit codes like 1,3,64-78, got {text!r}") from None
        if not (0 <= lo <= 255 and 0 <= hi <= 255) or lo > hi:
            raise ValueError(f"exit code range {item!r} must be within 0-255, low to high")
        codes.update(range(lo, hi + 1))
    return frozenset(codes)
