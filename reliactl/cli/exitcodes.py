"""The one table of reliactl's exit codes (DESIGN.md section 2), and errors mapped onto it."""

from __future__ import annotations


class ExitCode:
    """Exit statuses; several names share a number where commands differ in meaning.

    Plain ``int`` class attributes, not an ``enum.IntEnum``: importing ``enum`` cost ~2-3 ms
    of every start that needs nothing else of it (``cleanup``), and no caller used more than
    the number (``raise SystemExit(ExitCode.CONFIG)``, comparisons, JSON). ``codes()`` lists
    them."""

    OK = 0
    FAILURE = 1  # other commands: the answer is "no"
    WARNING = 1  # health
    CRITICAL = 2  # health
    USAGE = 2  # usage errors (cli/options.py), except health (3) and run (125)
    UNKNOWN = 3  # health
    COULDNT_CONNECT = 7  # http, as curl
    HTTP_ERROR = 22  # http --fail, as curl
    UNAVAILABLE = 69  # breaker open (EX_UNAVAILABLE)
    TEMPFAIL = 75  # lock busy/lost, rate limit deadline, health gate, Redis down (EX_TEMPFAIL)
    CONFIG = 78  # configuration invalid (EX_CONFIG)
    LIMIT = 121  # run: stopped for exceeding --memory-max, --cpu-time or --max-output
    HEALTH_STOPPED = 122  # run: stopped by --watch-health (--on-critical stop)
    TIMEOUT = 124  # run: timed out, as timeout(1)
    INTERNAL = 125  # reliactl itself failed, or bad options to run
    NOT_EXECUTABLE = 126
    NOT_FOUND = 127
    KILLED = 137  # run: had to SIGKILL after the timeout
    SIGNAL_BASE = 128  # run: 128 + N for signal N


def codes() -> dict[str, int]:
    """Every name of ``ExitCode`` and its number, in the order declared (aliases included)."""
    return {name: value for name, value in vars(ExitCode).items() if name.isupper()}


# The one source of the exit-code table: `reliactl --help` prints it (epilog), README.md and
# docs/DESIGN.md carry it as Markdown (markdown_table), and a test keeps the three equal.
# Meanings are Markdown: `code` spans lose their backticks in --help.
EXIT_CODE_TABLE: list[tuple[str, str]] = [
    ("0", "success / all checks OK"),
    ("1, 2, 3", "`health`: WARNING, CRITICAL, UNKNOWN (Nagios plugin convention)"),
    (
        "1",
        'other commands: the answer is "no" (cleanup left errors, `runs --last` failed, '
        "`doctor` found a failure, `silence remove` found no such silence, `alert ack` no open"
        " problem)",
    ),
    (
        "2",
        "usage error (a bad option or argument: one line on stderr), except under `run` (125)"
        " and `health` (3)",
    ),
    ("N", "`run`: the child's own exit code, passed through"),
    (
        "7, 22",
        "`http`: could not connect after retries / HTTP status >= 400 with `--fail` (as curl)",
    ),
    (
        "69",
        "breaker open: the service is known to be down, not tried (sysexits EX_UNAVAILABLE)",
    ),
    (
        "75",
        "temporary failure, try later: lock busy, rate limit deadline, health gate, "
        "Redis state store unreachable, fleet lock lost "
        "(sysexits EX_TEMPFAIL)",
    ),
    ("78", "configuration invalid, or Redis refused the state password (sysexits EX_CONFIG)"),
    ("121", "`run`: stopped over a limit (`--memory-max`, `--cpu-time`, `--max-output`)"),
    ("122", "`run`: stopped, health turned CRITICAL (`--watch-health`, `--on-critical stop`)"),
    ("124", "`run`: the command timed out (as coreutils `timeout`; 137 if it had to be killed)"),
    ("125", "reliactl itself failed, or bad options to `run` (as `timeout`)"),
    ("126, 127", "`run`: command not executable / not found (as `timeout`, `env`)"),
    ("128+N", "`run`: the child was killed by signal N, or reliactl was, after forwarding it"),
]


def epilog() -> str:
    """The exit-code table for --help: one paragraph per code, plain text in both help modes."""
    rows = "\n\n".join(f"{code}:  {meaning.replace('`', '')}" for code, meaning in EXIT_CODE_TABLE)
    return "Exit codes:\n\n" + rows


def markdown_table() -> str:
    """The exit-code table as README.md and docs/DESIGN.md carry it."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODE_TABLE]
    return "\n".join(["| code | meaning |", "| --- | --- |", *rows]) + "\n"


def exit_code_for(exc: BaseException) -> int:
    """The exit code that reports ``exc``."""
    from reliactl import errors

    if isinstance(
        exc,
        (errors.ConfigError, errors.ChaosError, errors.StateAuthError, errors.StateConfigError),
    ):
        return ExitCode.CONFIG
    if isinstance(exc, errors.CircuitOpenError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, (errors.LockBusyError, errors.RateLimitExceeded)):
        return ExitCode.TEMPFAIL
    if isinstance(exc, errors.StateUnavailableError):  # Redis down: try later
        return ExitCode.TEMPFAIL
    if isinstance(exc, errors.HTTPStatusError):
        return ExitCode.HTTP_ERROR
    if isinstance(exc, errors.HTTPError):
        return ExitCode.COULDNT_CONNECT
    return ExitCode.INTERNAL
