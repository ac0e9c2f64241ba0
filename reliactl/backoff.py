"""The one retry decision: after a failed attempt, the pause before the next one or why not.

``decide()`` is a pure function (no sleep, no clock read, no side effect): every retry loop in
reliactl asks it, so the rules are written once and ``reliactl.testing.zero_backoff()`` reaches
them all: ``RetryPolicy`` (``reliactl.retry``), the HTTP clients (``reliactl.http``) and
``run``'s loop (``reliactl.runner``). Its answer is a ``Retry`` (the delay to sleep and the
strategy's own delay) or a ``GiveUp`` reason.

The rules, in order:

1. an outcome that is not retryable ends the call (``GiveUp.NOT_RETRYABLE``);
2. attempt ``n`` failed: no retry when ``n > max_retries`` (``GiveUp.ATTEMPTS``);
3. the strategy's delay for retry ``n`` (decorrelated jitter chains on ``previous``);
4. a server's or an exception's ``retry_after`` replaces it, capped by ``retry_after_cap``;
   above ``retry_after_limit`` the call ends instead (``GiveUp.RETRY_AFTER``);
5. under ``zero_backoff()`` the delay is 0 (and retries may be capped);
6. a deadline: ``"cut"`` shortens the pause to end at the deadline and gives up once it has
   passed; ``"stop"`` gives up when the pause would reach it (``GiveUp.DEADLINE``).

A retry budget (``RetryBudget``) is the caller's: taking tokens is a side effect, done only
after ``decide()`` said retry; running out is ``GiveUp.BUDGET``.
"""

from __future__ import annotations

import math
from enum import Enum

# The names of the backoff strategies and jitters: the strategies themselves live in
# reliactl.retry, the configuration schema and `run`'s flags accept exactly these names. Defined
# in the ground-level reliactl._settings so that the schema and `run`'s start need not import
# this module (its enum, NamedTuple and Protocol classes: ~2 ms of every start, issue 21).
from reliactl._settings import JITTERS, STRATEGIES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Protocol
else:  # without typing (~3 ms of a `retry plan` or `breaker` start, issue 21): the type
    # checker reads Backoff as a typing.Protocol; at run time it is a plain base class
    from reliactl._records import NamedTuple

    Protocol = object

__all__ = [
    "JITTERS",
    "STRATEGIES",
    "Backoff",
    "GiveUp",
    "Retry",
    "decide",
    "never_sent",
    "not_sent_errors",
]

# Set by reliactl.testing.zero_backoff(): every delay becomes 0, retries optionally capped.
_ZERO_BACKOFF = False
_TEST_MAX_RETRIES: int | None = None


class Backoff(Protocol):
    """A backoff strategy (``reliactl.retry``'s strategies are ones): never sleeps."""

    max_retries: int

    def delay(self, attempt: int, previous_delay: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1 = before the first retry)."""


class GiveUp(str, Enum):
    """Why a retry loop stops (the values are ``RetryError.reason``'s)."""

    NOT_RETRYABLE = "no"
    ATTEMPTS = "attempts"
    DEADLINE = "deadline"
    BUDGET = "budget"
    RETRY_AFTER = "retry_after"  # the server asks for a longer wait than allowed


class Retry(NamedTuple):
    """Retry after ``delay`` seconds; ``computed`` is the strategy's own delay for it."""

    delay: float
    computed: float


def decide(
    backoff: Backoff | None,
    attempt: int,
    *,
    previous: float | None = None,
    retryable: bool = True,
    max_retries: int | None = None,
    retry_after: float | None = None,
    retry_after_cap: float | None = None,
    retry_after_limit: float | None = None,
    now: float = 0.0,
    deadline: float | None = None,
    at_deadline: str = "cut",
) -> Retry | GiveUp:
    """Attempt ``attempt`` (1 = the first) failed: the next pause, or why to give up.

    ``backoff`` None means no pause (and ``max_retries`` must be given); ``max_retries``
    overrides the strategy's. ``now`` and ``deadline`` are on the same clock. See the module
    docstring for the order of the rules.
    """
    if not retryable:
        return GiveUp.NOT_RETRYABLE
    limit = max_retries if max_retries is not None else (backoff.max_retries if backoff else 0)
    if _TEST_MAX_RETRIES is not None and limit > _TEST_MAX_RETRIES:
        limit = _TEST_MAX_RETRIES
    if attempt > limit:
        return GiveUp.ATTEMPTS
    computed = 0.0 if backoff is None else max(0.0, float(backoff.delay(attempt, previous)))
    delay = computed
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        if retry_after_limit is not None and retry_after > retry_after_limit:
            return GiveUp.RETRY_AFTER
        delay = retry_after if retry_after_cap is None else min(retry_after, retry_after_cap)
    if _ZERO_BACKOFF:
        delay = 0.0
    if deadline is not None:
        remaining = deadline - now
        if at_deadline == "cut":
            if remaining <= 0:
                return GiveUp.DEADLINE
            delay = min(delay, remaining)
        elif delay >= remaining:
            return GiveUp.DEADLINE
    return Retry(delay, computed)


def not_sent_errors(httpx_module: object) -> tuple[type[BaseException], ...]:
    """The httpx errors that prove a request never left: it could not connect (refused, no
    route, DNS, the TLS handshake, the connect timeout) or waited in vain for a pooled
    connection. Every other error may come after the server read the request."""
    h: Any = httpx_module
    return (h.ConnectError, h.ConnectTimeout, h.PoolTimeout)


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` proves its request never left (``not_sent_errors``).

    The one rule by which a request that is not idempotent (a POST) may be sent again: the
    HTTP clients (``reliactl.http``, unless ``retry_non_idempotent``) and the alert sinks
    (``reliactl.health.channels.post_json``) ask it, so a server that read the request and
    was slow to answer never gets it twice from one call.
    """
    import sys

    httpx = sys.modules.get("httpx")  # an httpx error means httpx is imported
    return httpx is not None and isinstance(exc, not_sent_errors(httpx))
