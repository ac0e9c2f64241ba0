"""Every error reliactl raises on purpose.

The tree::

    ReliactlError                       base: anything reliactl reports as a clean message
    +-- ConfigError                     invalid configuration; .problems lists each one
    +-- StateError                      the state store cannot be opened or written
    |   +-- StateUnavailableError       a shared store (Redis) is unreachable or did not answer
    |   +-- StateAuthError              a shared store refused the credentials (a setup error)
    |   +-- StateConfigError            a file the store's settings name is unusable
    +-- DurationError (ValueError)      "30s", "5m", "500MB" could not be parsed
    +-- RetryError                      gave up retrying; .attempts, .reason, __cause__ = last error
    +-- CircuitOpenError                a breaker rejected the call; .name, .retry_after, .state
    +-- LockError                       a lock could not be taken safely (symlink, NFS)
    |   +-- LockBusyError               the lock is held by someone else; .holder
    +-- RateLimitExceeded               no token before the deadline; .retry_after
    +-- HTTPError                       an HTTP request got no answer, after its retries
    |   +-- HTTPStatusError             it got an error status (>= 400) where one was not wanted
    +-- HealthError                     no such health check or alert sink; a bad monitoring setup
    +-- UnsafeRootError                 cleanup refused a root (/, $HOME, a symlink, '..', empty)
    +-- JobSpecError (ValueError)       a job cannot run as specified (lock name, retry policy)
    +-- GateSetupError                  a job's gate cannot be built (invalid health checks)
    +-- ChaosError                      a failure-injection rule is bad, or injection is refused

The core raises these and never prints; ``reliactl/cli`` turns each into one line on stderr
and an exit code (``reliactl/cli/exitcodes.py`` holds the one mapping).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any
else:  # frozen dataclasses without compiling code at import (issue 21, see _records)
    from reliactl._records import dataclass


class ReliactlError(Exception):
    """Base class: an error reliactl can explain in one message, never a traceback."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration: where it is and what is wrong."""

    source: str  # a file name, "environment" or "flags"
    line: int | None  # 1-based line in the file, when known
    path: str  # dotted key path, e.g. "retry.max_delay"
    message: str  # "expected a positive number, got 'lots'"
    variable: str | None = None  # the environment variable, when the problem came from one

    def __str__(self) -> str:
        if self.variable is not None:
            where = f"environment {self.variable}"
        elif self.line is not None:
            where = f"{self.source}:{self.line}"
        else:
            where = self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ReliactlError):
    """The configuration is invalid; ``problems`` holds every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(ReliactlError):
    """The state store cannot be used (unwritable directory, a symlink or FIFO at its path)."""


class StateBusyError(StateError):
    """The state store is locked by another process or thread (SQLite's "database is locked")
    past the wait allowed: try again."""


class StateUnavailableError(StateError):
    """A shared state store (Redis) cannot be reached or did not answer in time: try later."""


class StateAuthError(StateError):
    """A shared state store (Redis) refused the user or password: fix the configuration."""


class StateConfigError(StateError):
    """A file the shared store's settings name (``state.password_file``, ``state.tls_ca_file``)
    is missing, unreadable, not a regular file, holds no usable content, or could be replaced
    by others (state/redis.py's rules): the configuration is wrong (exit 78 where the store
    is required; ``run`` and ``health`` warn and go on without it), not Redis."""


class DurationError(ReliactlError, ValueError):
    """A duration or size string could not be parsed."""


class RetryError(ReliactlError):
    """Retrying gave up; the last exception is ``__cause__``.

    ``reason`` is "attempts" (no retries left), "deadline" (max_elapsed reached) or "budget"
    (the retry budget is exhausted); ``last_result`` is the last result when a result
    predicate asked for the retries.
    """

    def __init__(
        self,
        message: str,
        attempts: int,
        *,
        reason: str = "attempts",
        last_result: object = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.reason = reason
        self.last_result = last_result


class CircuitOpenError(ReliactlError):
    """A circuit breaker rejected the call without trying it: it is open, or half-open with
    every trial slot taken by calls still going on. ``state`` says which (``"open"`` or
    ``"half_open"``, CircuitState's values) and the message names it."""

    def __init__(self, name: str, retry_after: float, state: str = "open") -> None:
        self.name = name
        from reliactl.units import format_duration

        self.retry_after = max(0.0, retry_after)
        self.state = state
        half_open = state == "half_open"
        what = "is half-open with its trial slots taken" if half_open else "is open"
        super().__init__(
            f"circuit breaker '{name}' {what}; retry in {format_duration(self.retry_after)}"
        )

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float, str], dict[str, Any]]:
        # Exception pickling calls cls(*self.args), args being the one message: rebuild it from
        # its fields instead (an error raised in a worker process, multiprocessing's results).
        return type(self), (self.name, self.retry_after, self.state), dict(self.__dict__)


class LockError(ReliactlError):
    """A lock could not be taken safely."""


class LockBusyError(LockError):
    """The lock is held by another process; ``holder`` describes it when known."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class RateLimitExceeded(ReliactlError):
    """No rate-limit token could be had before the deadline."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HTTPError(ReliactlError):
    """An HTTP request failed without a usable answer (refused, timed out, dropped).

    ``method`` and ``url`` (secrets redacted), ``attempts`` made; ``sent`` is False only when
    the request provably never reached the server (it could not connect). The httpx error is
    ``__cause__``.
    """

    def __init__(
        self, message: str, *, method: str = "", url: str = "", attempts: int = 1, sent: bool = True
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.attempts = attempts
        self.sent = sent


class HTTPStatusError(HTTPError):
    """The server answered with an error status (>= 400) where a success was needed."""

    def __init__(
        self, message: str, *, status_code: int, method: str = "", url: str = "", attempts: int = 1
    ) -> None:
        super().__init__(message, method=method, url=url, attempts=attempts, sent=True)
        self.status_code = status_code


class HealthError(ReliactlError):
    """A health check or alert sink that does not exist, or a bad monitoring request."""


class UnsafeRootError(ReliactlError):
    """A cleanup root was refused: empty, a symlink, not a directory, '..', or dangerous."""


class JobSpecError(ReliactlError, ValueError):
    """A job cannot be run as specified: an invalid lock name or an impossible retry policy."""


class GateSetupError(ReliactlError):
    """A job's pre-start gate cannot be built from the configuration (invalid health checks)."""


class ChaosError(ReliactlError):
    """A chaos rule cannot be parsed, or injection is refused (a production-marked store)."""
