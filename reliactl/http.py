"""Resilient HTTP: httpx behind a rate limiter, a circuit breaker and retries, with statistics.

Every attempt of a request goes: rate limit (wait for a token, at most ``rate_limit_wait``)
-> breaker admission (an open breaker rejects without touching the server) -> the request,
with its timeout -> the decision:

- retried: connection errors, timeouts, dropped connections, 429 and 5xx (``retry_statuses``);
  never other 4xx, never an error of our own (bad URL, unsupported scheme);
- POST, PATCH (any method that is not idempotent) are retried only when the request provably
  never left (it could not connect, or waited in vain for a pooled connection), unless
  ``retry_non_idempotent=True``;
- the wait is the server's Retry-After (seconds or an HTTP date) when it sends one, else the
  backoff strategy's delay; a wait that would pass the retry deadline ends the retries (with
  no deadline, a Retry-After above ``max_retry_after`` does).

A request that gets an answer returns the ``httpx.Response``, whatever its status (as curl and
httpx do); one that never gets an answer raises :class:`~reliactl.errors.HTTPError`. A
rejection by the rate limiter or the breaker before the first attempt raises
``RateLimitExceeded`` / ``CircuitOpenError``; after a failed attempt it ends the retries and
the last outcome stands.

Breaker accounting: transport errors and 5xx are failures; 429 counts as nothing (the service
is up, just busy); every other answer is a success.

Secrets never reach a message: URLs lose passwords and secret-looking query values, and
headers such as Authorization, Cookie, X-Api-Key or anything named like a token are shown as
"***" (``reliactl.redact`` decides what is a secret, for the whole codebase).

httpx is imported when a client is built, never by importing this module.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reliactl import chaos as _chaos
from reliactl import tracing as _tracing
from reliactl._imports import ImportScope as _ImportScope
from reliactl._imports import LazyModule as _LazyModule
from reliactl._imports import import_lock as _import_lock
from reliactl._imports import only_thread as _only_thread
from reliactl.backoff import Backoff, GiveUp, decide, not_sent_errors
from reliactl.errors import CircuitOpenError, HTTPError, HTTPStatusError, RateLimitExceeded
from reliactl.redact import (
    REDACTED,
    is_secret_name,
    redact_headers,
    redact_text,
    redact_url,
    redact_urls_in,
)

if TYPE_CHECKING:
    import httpx

    from reliactl.config import Config
    from reliactl.ratelimit import RateLimiter
    from reliactl.retry import RetryPolicy
    from reliactl.state import StateStore

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "AsyncResilientClient",
    "OpenAIWrapper",
    "ResilientClient",
    "RetryEvent",
    "is_secret_header",
    "parse_retry_after",
    "redact_headers",
    "redact_text",
    "redact_url",
]

log = logging.getLogger("reliactl.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES: frozenset[int] = frozenset({429, *range(500, 600)})
LATENCY_SAMPLES = 1000  # attempts kept for the percentiles
HEALTH_WINDOW = 100  # requests kept for the recent error rate
DEGRADED_ERROR_RATE = 0.1  # of the recent requests, failed on the service side
UNHEALTHY_ERROR_RATE = 0.5
UNHEALTHY_MIN_REQUESTS = 5  # one failed request out of two is not yet "unhealthy"
DEFAULT_TIMEOUT = 10.0


class _FromConfig:
    """The default of a setting that ``config`` gives (a sentinel, so None can mean "none")."""

    def __repr__(self) -> str:
        return "FROM_CONFIG"


FROM_CONFIG = _FromConfig()
DEFAULT_MAX_RETRY_AFTER = 120.0

# --------------------------------------------------------------------------- redaction

is_secret_header = is_secret_name  # the name this module always exported


def host_key(url: str) -> str:
    """ "host" or "host:port" of ``url`` (never its user or password); "" when it has none."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    return f"{host}:{port}" if host and port else host


class _Injected(Exception):
    """Internal: an injected answer (reliactl.chaos) stands in for the request."""


# --------------------------------------------------------------------------- Retry-After


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP date; else None.

    A date in the past means 0; a negative or unreadable value is ignored (None).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        import email.utils
        from datetime import timezone

        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


# --------------------------------------------------------------------------- collaborators


@dataclass(frozen=True)
class RetryEvent:
    """Passed to ``on_retry`` before each retry's wait."""

    method: str
    url: str  # redacted
    attempt: int  # the attempt that failed (1 = the first)
    reason: str  # "HTTP 503", "ConnectError: [Errno 111] Connection refused"
    delay: float  # seconds until the next attempt
    retry_after: bool  # whether the delay is the server's Retry-After


def _backoff_from(retry: Any, config: Config | None) -> Backoff:
    if retry is not None and not isinstance(retry, (bool, int)):
        if not callable(getattr(retry, "delay", None)):
            strategy = getattr(retry, "strategy", None)  # a reliactl.retry.RetryPolicy
            if strategy is None or not callable(getattr(strategy, "delay", None)):
                raise TypeError(
                    "retry must be a number of retries, a backoff strategy or a RetryPolicy,"
                    f" got {type(retry).__name__}"
                )
            return strategy  # type: ignore[no-any-return]
        return retry  # type: ignore[no-any-return]
    if retry is True:
        retry = None
    max_retries = None if retry is None else int(retry)
    if max_retries is not None and max_retries < 0:
        raise ValueError(f"retries must be 0 or more, got {max_retries}")
    from reliactl._strategies import strategy_from_config  # not the retry engine's module

    config = config if config is not None else _config()
    return strategy_from_config(config.retry, max_retries=max_retries)


def _backoff_sleep(seconds: float) -> None:
    """The default sync sleep between retries: ``reliactl.retry.interruptible_sleep`` (a
    signal ends it at once), imported at the first wait, so a request that needs no retry
    (every `reliactl http` that succeeds) never imports the retry engine (~2-3 ms with
    ``signal``'s enums, issue 21 item 4)."""
    from reliactl.retry import interruptible_sleep

    interruptible_sleep(seconds)


def _config() -> Config:
    from reliactl.config import get_reliability_config

    return get_reliability_config()


def _breaker_from(
    breaker: Any, config: Config | None, store: StateStore | None, clock: Any = None
) -> Any:
    if breaker is None or breaker is False:
        return None
    if isinstance(breaker, str):
        from reliactl.breaker import circuit_manager, get_persistent_breaker

        if store is not None:
            return get_persistent_breaker(
                breaker, config if config is not None else _config(), store, clock=clock
            )
        return circuit_manager.get_breaker(breaker)
    if not callable(getattr(breaker, "admit", None)):
        raise TypeError(f"breaker must be a name or have admit(), got {type(breaker).__name__}")
    return breaker


def _breaker_state(breaker: Any) -> str | None:
    if breaker is None:
        return None
    state = getattr(breaker, "state", None)
    if callable(state):
        state = state()
    return None if state is None else str(getattr(state, "value", state))


# --------------------------------------------------------------------------- statistics


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


class _Stats:
    """Counters of one client; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.successes = 0
        self.failures = 0
        self.attempts = 0
        self.retries = 0
        self.rejected_by_breaker = 0
        self.rate_limited = 0
        self.rate_limit_waits = 0
        self.rate_limit_wait_seconds = 0.0
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.recent: deque[bool] = deque(maxlen=HEALTH_WINDOW)  # True: the service failed

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            ordered = sorted(self.latencies)
            requests = self.requests
            done = self.successes + self.failures
            return {
                "requests": requests,
                "successes": self.successes,
                "failures": self.failures,
                "attempts": self.attempts,
                "retries": self.retries,
                "rejected_by_breaker": self.rejected_by_breaker,
                "rate_limited": self.rate_limited,
                "rate_limit_waits": self.rate_limit_waits,
                "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 6),
                "success_rate": self.successes / done if done else 1.0,
                "latency_p50": _percentile(ordered, 50),
                "latency_p95": _percentile(ordered, 95),
                "latency_p99": _percentile(ordered, 99),
            }


# --------------------------------------------------------------------------- the shared core


class _Call:
    """One logical request across its attempts."""

    __slots__ = (
        "_url",
        "attempt",
        "deadline",
        "last",
        "method",
        "previous_delay",
        "sent",
        "trace",
    )

    def __init__(self, method: str, url: Callable[[], str], deadline: float | None) -> None:
        self.method = method
        self._url = url
        self.deadline = deadline
        self.attempt = 0
        self.previous_delay: float | None = None
        self.last: Any = None  # the last httpx.Response or exception
        self.sent = False  # whether any attempt may have reached the server
        self.trace: _tracing.RequestTrace | None = None  # its spans, when tracing is on

    @property
    def url(self) -> str:
        """The full URL, redacted: computed only when a message needs it."""
        return redact_url(self._url())


class _Core:
    """Everything the sync and async clients share: settings, decisions, statistics."""

    def __init__(
        self,
        *,
        httpx_module: Any,
        breaker: Any,
        retry: Any,
        rate_limit: RateLimiter | str | int | None,
        rate_limit_key: str | None,
        rate_limit_wait: float | _FromConfig | None,
        base_url: str,
        retry_non_idempotent: bool,
        retry_statuses: Iterable[int],
        retry_deadline: float | None,
        max_retry_after: float,
        store: StateStore | None,
        config: Config | None,
        clock: Callable[[], float],
        wall: Callable[[], float],
        sleep: Callable[[float], None] | None,
        async_sleep: Callable[[float], Awaitable[None]] | None,
        on_retry: Callable[[RetryEvent], None] | None,
    ) -> None:
        self.httpx = httpx_module
        self.backoff = _backoff_from(retry, config)
        if retry_deadline is None:
            if retry is None or isinstance(retry, (bool, int)):
                retry_deadline = (config if config is not None else _config()).retry.max_elapsed
            elif not callable(getattr(retry, "delay", None)):
                retry_deadline = getattr(retry, "max_elapsed", None)  # a RetryPolicy's
        self.retry_deadline = retry_deadline
        self.breaker = _breaker_from(breaker, config, store)
        self.limiter: RateLimiter | None = None
        if rate_limit is not None:  # reliactl.ratelimit (and asyncio) only for a limited client
            from reliactl.ratelimit import RateLimiter

            if isinstance(rate_limit, (str, int)) and not isinstance(rate_limit, bool):
                key = rate_limit_key or host_key(base_url) or "http"
                rate_limit = RateLimiter(
                    rate_limit,
                    key=key,
                    store=store,
                    clock=clock,
                    wall=wall,
                    sleep=sleep,
                    **({} if async_sleep is None else {"async_sleep": async_sleep}),
                )
            self.limiter = rate_limit if isinstance(rate_limit, RateLimiter) else None
        if isinstance(rate_limit_wait, _FromConfig):
            rate_limit_wait = (config if config is not None else _config()).rate_limit.max_wait
        self.rate_limit_wait = rate_limit_wait
        self.retry_non_idempotent = retry_non_idempotent
        self.retry_statuses = frozenset(retry_statuses)
        self.max_retry_after = max_retry_after
        self.clock = clock
        self.wall = wall
        self.on_retry = on_retry
        self.stats = _Stats()
        breaker_name = getattr(self.breaker, "name", None)
        self.chaos_name = breaker_name or host_key(base_url) or "http"
        h = httpx_module
        # Errors that prove the request never left: safe to retry for any method.
        self.not_sent = not_sent_errors(h)
        # Errors worth retrying for idempotent methods (the request may have been sent).
        self.transient = (h.TimeoutException, h.NetworkError, h.RemoteProtocolError)

    # ---- failure injection (reliactl.chaos; never reached unless chaos is on)

    def chaos_fault(self, method: str, url: str) -> tuple[float, Any]:
        """(delay to add, then None to send as usual, or the response or error to use)."""
        delay, fault = _chaos.http_fault(self.chaos_name)
        if fault is None or (isinstance(fault, BaseException) and not isinstance(fault, OSError)):
            return delay, fault
        h = self.httpx
        request = h.Request(method, url)
        if isinstance(fault, int):
            return delay, h.Response(fault, request=request, text="chaos: injected status\n")
        kind = h.ReadTimeout if isinstance(fault, TimeoutError) else h.ConnectError
        injected = type(f"Injected{kind.__name__}", (kind, _chaos.InjectedFault), {})
        return delay, injected(str(fault), request=request)

    # ---- before an attempt

    def start(self, method: str, url: Callable[[], str]) -> _Call:
        with self.stats.lock:
            self.stats.requests += 1
        deadline = None if self.retry_deadline is None else self.clock() + self.retry_deadline
        call = _Call(method, url, deadline)
        if _tracing.ACTIVE:
            call.trace = _tracing.start_request(method, call.url, self.chaos_name)
        return call

    def rate_timeout(self, call: _Call) -> float | None:
        wait = self.rate_limit_wait
        if call.deadline is not None:
            left = max(0.0, call.deadline - self.clock())
            wait = left if wait is None else min(wait, left)
        return wait

    def attempt_deadline(self, call: _Call, seconds: float | None) -> tuple[float, float] | None:
        """(time.monotonic() deadline, its length) of the next attempt, or None for none.

        An attempt ends ``seconds`` after it starts (its timeout, the whole answer included)
        and never after the retry deadline."""
        now = time.monotonic()
        best = None if seconds is None else (now + seconds, seconds)
        if call.deadline is not None and self.retry_deadline is not None:
            at = now + max(0.0, call.deadline - self.clock())
            if best is None or at < best[0]:
                best = (at, self.retry_deadline)
        return best

    def note_rate_wait(self, call: _Call, waited: float) -> None:
        if waited > 0:
            with self.stats.lock:
                self.stats.rate_limit_waits += 1
                self.stats.rate_limit_wait_seconds += waited
            if call.trace is not None:
                call.trace.rate_wait(waited)

    def begin_attempt(self, call: _Call) -> dict[str, str] | None:
        """Count the attempt; the headers carrying its trace context (None: not traced)."""
        call.attempt += 1
        return None if call.trace is None else call.trace.attempt(call.attempt)

    def abandon(self, call: _Call, exc: BaseException) -> None:
        """The request ends by ``exc`` escaping the attempt loop (an interrupted sleep)."""
        if call.trace is not None:
            call.trace.end(None, exc, _describe(exc), call.attempt)

    def admit(self) -> Any:
        return None if self.breaker is None else self.breaker.admit()

    def rejected(self, call: _Call, exc: RateLimitExceeded | CircuitOpenError) -> Any:
        """A rejection before an attempt: raise it, or end the retries with the last outcome."""
        with self.stats.lock:
            if isinstance(exc, CircuitOpenError):
                self.stats.rejected_by_breaker += 1
            else:
                self.stats.rate_limited += 1
        if call.trace is not None:
            kind = "breaker" if isinstance(exc, CircuitOpenError) else "ratelimit"
            call.trace.rejected(kind, redact_urls_in(str(exc)))
            if call.last is None:
                call.trace.end(None, exc, redact_urls_in(str(exc)), call.attempt)
        if call.last is None:
            self._finish_stats(success=False, service_failed=isinstance(exc, CircuitOpenError))
            raise exc
        return self.finish(call)

    # ---- after an attempt

    def record_attempt(self, call: _Call, admission: Any, outcome: Any, latency: float) -> None:
        call.last = outcome
        with self.stats.lock:
            self.stats.attempts += 1
            if call.attempt > 1:
                self.stats.retries += 1
            self.stats.latencies.append(latency)
        if isinstance(outcome, BaseException):
            call.sent = call.sent or not isinstance(outcome, self.not_sent)
            if admission is not None:
                if isinstance(outcome, Exception) and isinstance(outcome, self.transient):
                    admission.failure(_describe(outcome))
                else:
                    getattr(admission, "ignore", admission.success)()
            return
        call.sent = True
        if admission is not None:
            status = outcome.status_code
            if status >= 500:
                admission.failure(f"HTTP {status}")
            elif status == 429:
                getattr(admission, "ignore", admission.success)()
            else:
                admission.success()

    def next_delay(self, call: _Call) -> float | None:
        """Seconds to wait before the next attempt, or None to stop here."""
        delay = self._next_delay(call)
        if call.trace is not None:
            outcome = call.last
            if isinstance(outcome, BaseException):
                why = redact_urls_in(_describe(outcome))
                call.trace.attempt_done(None, outcome, why, delay)
            else:
                call.trace.attempt_done(outcome.status_code, None, "", delay)
        return delay

    def _next_delay(self, call: _Call) -> float | None:
        outcome = call.last
        idempotent = call.method in IDEMPOTENT_METHODS or self.retry_non_idempotent
        retry_after: float | None = None
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                return None  # KeyboardInterrupt, CancelledError: never retried
            if isinstance(outcome, self.not_sent):
                pass
            elif not (idempotent and isinstance(outcome, self.transient)):
                return None
            reason = _describe(outcome)
        else:
            if outcome.status_code not in self.retry_statuses or not idempotent:
                return None
            retry_after = parse_retry_after(outcome.headers.get("retry-after"), self.wall())
            reason = f"HTTP {outcome.status_code}"
        decision = decide(
            self.backoff,
            call.attempt,
            previous=call.previous_delay,
            retry_after=retry_after,
            retry_after_limit=self.max_retry_after if call.deadline is None else None,
            now=self.clock() if call.deadline is not None else 0.0,
            deadline=call.deadline,
            at_deadline="stop",
        )
        if decision is GiveUp.RETRY_AFTER:
            log.warning(
                "%s %s: %s asks to retry after %.0fs, more than %.0fs: giving up",
                call.method,
                call.url,
                reason,
                retry_after,
                self.max_retry_after,
            )
        if isinstance(decision, GiveUp):
            return None
        delay = decision.delay
        call.previous_delay = delay
        event = RetryEvent(
            call.method, call.url, call.attempt, reason, delay, retry_after is not None
        )
        log.info("%s %s: %s; retry %d in %.2fs", call.method, call.url, reason, call.attempt, delay)
        if self.on_retry is not None:
            self.on_retry(event)
        return delay

    def finish(self, call: _Call) -> Any:
        """The last outcome: a response is returned, an exception becomes HTTPError."""
        outcome = call.last
        if call.trace is not None:
            if isinstance(outcome, BaseException):
                why = redact_urls_in(_describe(outcome))
                call.trace.end(None, outcome, why, call.attempt)
            else:
                call.trace.end(outcome.status_code, None, "", call.attempt)
        if isinstance(outcome, BaseException):
            # Only a transport failure says anything about the service; a cancelled call or
            # an error of our own (bad arguments) does not.
            service = isinstance(outcome, self.transient)  # not_sent errors are among them
            self._finish_stats(success=False, service_failed=service)
            if isinstance(outcome, self.httpx.HTTPError):
                why = _describe(outcome)
            elif isinstance(outcome, UnicodeError):
                # The host's IDNA encoding (httpx's URL.host, or the stdlib codec under
                # getaddrinfo): a bad URL, which httpx passes up untranslated.
                why = f"the host name is not valid: {_describe(outcome)}"
            else:
                raise outcome
            tries = f" after {call.attempt} attempts" if call.attempt > 1 else ""
            raise HTTPError(
                f"{call.method} {call.url}: {why}{tries}",
                method=call.method,
                url=call.url,
                attempts=call.attempt,
                sent=call.sent,
            ) from outcome
        status = outcome.status_code
        self._finish_stats(success=status < 400, service_failed=status >= 500 or status == 429)
        return outcome

    def _finish_stats(self, *, success: bool, service_failed: bool) -> None:
        with self.stats.lock:
            if success:
                self.stats.successes += 1
            else:
                self.stats.failures += 1
            self.stats.recent.append(service_failed)

    # ---- reports

    def get_stats(self) -> dict[str, Any]:
        stats = self.stats.snapshot()
        stats["breaker"] = getattr(self.breaker, "name", None)
        stats["breaker_state"] = _breaker_state(self.breaker)
        stats["rate_limit"] = self.limiter.spec if self.limiter is not None else None
        return stats

    def health(self) -> dict[str, Any]:
        stats = self.get_stats()
        with self.stats.lock:
            recent = list(self.stats.recent)
        failed = sum(recent)
        rate = failed / len(recent) if recent else 0.0
        state = stats["breaker_state"]
        reasons = []
        status = "healthy"
        if state == "open":
            status = "unhealthy"
            reasons.append(f"breaker {stats['breaker']!r} is open")
        elif state == "half_open":
            status = "degraded"
            reasons.append(f"breaker {stats['breaker']!r} is half-open")
        if failed:
            if rate >= UNHEALTHY_ERROR_RATE and len(recent) >= UNHEALTHY_MIN_REQUESTS:
                status = "unhealthy"
            elif rate >= DEGRADED_ERROR_RATE and status == "healthy":
                status = "degraded"
            reasons.append(f"{failed} of the last {len(recent)} requests failed")
        return {
            "status": status,
            "reasons": reasons,
            "breaker": stats["breaker"],
            "breaker_state": state,
            "recent_requests": len(recent),
            "recent_failures": failed,
            "recent_error_rate": rate,
            "stats": stats,
        }


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        text = {"ReadTimeout": "timed out waiting for the answer"}.get(type(exc).__name__, "")
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _with_headers(kwargs: dict[str, Any], extra: dict[str, str] | None) -> dict[str, Any]:
    """``kwargs`` of a request with ``extra`` headers (the trace context) added, if any."""
    if not extra:
        return kwargs
    httpx = import_httpx()

    headers = httpx.Headers(kwargs.get("headers"))
    headers.update(extra)
    return {**kwargs, "headers": headers}


def _timeout(httpx_module: Any, timeout: Any) -> Any:
    if isinstance(timeout, httpx_module.Timeout) or timeout is None:
        return timeout
    return httpx_module.Timeout(float(timeout))


def _attempt_seconds(timeout: Any) -> float | None:
    """The whole-attempt deadline a ``timeout`` argument sets (a number; not an httpx.Timeout)."""
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return None


# --------------------------------------------------------------------------- deadlines
#
# httpx's timeouts bound each socket operation, not a request: a server that sends one byte
# a second never trips a 3 s read timeout. The sync client therefore runs every attempt under
# a deadline held in a context variable, and wraps httpcore's network backend so that each
# connect, read and write waits at most until that deadline (and fails once it has passed).
# The async clients of reliactl bound their awaits with asyncio instead.

_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar(
    "reliactl_http_deadline", default=None
)
_WRITE_CHUNK = 64 * 1024


def deadline_message(seconds: float) -> str:
    """The error text of an attempt cut off at its deadline."""
    from reliactl.durations import format_duration

    return f"no complete answer within the {format_duration(seconds)} deadline"


def _bounded(timeout: float | None, exc_type: type[Exception]) -> float | None:
    box = _DEADLINE.get()
    if box is None:
        return timeout
    at, seconds = box
    left = at - time.monotonic()
    if left <= 0:
        raise exc_type(deadline_message(seconds))
    return left if timeout is None else min(timeout, left)


def _passed(exc_type: type[Exception]) -> None:
    """Raise ``exc_type`` with the deadline message when the deadline has passed."""
    box = _DEADLINE.get()
    if box is not None and time.monotonic() >= box[0]:
        raise exc_type(deadline_message(box[1])) from None


class _DeadlineStream:
    """An httpcore network stream whose every operation ends by the attempt's deadline."""

    def __init__(self, inner: Any, httpcore: Any) -> None:
        self._inner = inner
        self._httpcore = httpcore

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        exc = self._httpcore.ReadTimeout
        try:
            return self._inner.read(max_bytes, _bounded(timeout, exc))  # type: ignore[no-any-return]
        except exc:
            _passed(exc)
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        exc = self._httpcore.WriteTimeout
        view = memoryview(buffer)
        try:
            for start in range(0, len(view), _WRITE_CHUNK):  # re-bounded between chunks
                self._inner.write(
                    view[start : start + _WRITE_CHUNK].tobytes(), _bounded(timeout, exc)
                )
        except exc:
            _passed(exc)
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        exc = self._httpcore.ConnectTimeout
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, exc))
        except exc:
            _passed(exc)
            raise
        return _DeadlineStream(inner, self._httpcore)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend:
    """httpcore's sync network backend with the attempt deadline applied to every stream."""

    def __init__(self, inner: Any, httpcore: Any) -> None:
        self._inner = inner
        self._httpcore = httpcore

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        exc = self._httpcore.ConnectTimeout
        try:
            inner = self._inner.connect_tcp(
                host, port, _bounded(timeout, exc), local_address, socket_options
            )
        except exc:
            _passed(exc)
            raise
        return _DeadlineStream(inner, self._httpcore)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> Any:
        exc = self._httpcore.ConnectTimeout
        try:
            inner = self._inner.connect_unix_socket(path, _bounded(timeout, exc), socket_options)
        except exc:
            _passed(exc)
            raise
        return _DeadlineStream(inner, self._httpcore)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _install_deadlines(client: Any) -> bool:
    """Wrap the network backend of each of ``client``'s httpcore pools; False if one was not.

    A transport without an httpcore pool (httpx.MockTransport, a user's own) does no socket
    I/O of its own and is left alone.
    """
    import httpcore

    ok = True
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None:
            continue
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            ok = False
        elif not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend, httpcore)
    if not ok:
        log.warning("httpx internals changed: request deadlines bound each read only")
    return ok


# --------------------------------------------------------------------------- start-up
#
# Issue 21: `reliactl http GET http://...` spent most of its start in what it never uses.
# httpcore imports trio when it is installed (~75 ms) and anyio (~2 ms), touching them only
# while running under trio or asyncio; httpx imports its command-line client (click, rich,
# pygments) when they are installed; and every httpx client loads a CA bundle when it is
# made (~35-40 ms), even when no https URL is ever requested. ``import_httpx`` and
# ``_tls_kwargs`` defer all three without changing what happens when they are used.

_SKIPPED_AT_IMPORT = ("trio", "anyio", "httpx._main")
# The finder, the deferred module and the lock live in reliactl/_imports.py (one owner: the
# Redis state store trims redis-py the same way).
#
# Imported by httpx/httpcore (and the stdlib modules they import) at module top, run by no
# plain request: certifi (httpcore's default context; httpx's create_ssl_context imports it
# for every client but reads it only for verify=True, which reliactl's clients never pass:
# DeferredTLSContext asks for it at the first TLS connection), idna (httpx encodes only a
# non-ASCII host name with it), mimetypes (a multipart file's content type); and, under
# urllib.request/http.client/tempfile/calendar/socket, what only their functions use:
# email.parser (http.client's own header parsing; with it email.feedparser), email.header,
# email.errors, email.quoprimime, email.base64mime (encoding mail headers), locale
# (calendar's locale-aware classes), selectors (socket.sendfile), shutil (tempfile's
# functions; with it bz2 and lzma). Deferred for the command line's own process only
# (``import_httpx(defer_unused=True)``): see DESIGN.md "`http GET`: what is left".
_DEFERRED_FOR_CLI = (
    "certifi",
    "idna",
    "mimetypes",
    "email.parser",
    "email.header",
    "email.errors",
    "email.quoprimime",
    "email.base64mime",
    "locale",
    "selectors",
    "shutil",
)


def _httpx_main(*args: Any, **kwargs: Any) -> Any:
    """httpx's command-line client, imported when called (``httpx.main``)."""
    import importlib

    return importlib.import_module("httpx._main").main(*args, **kwargs)


def import_httpx(*, defer_unused: bool = False) -> Any:
    """``import httpx`` (and httpcore) as reliactl needs them: without trio, anyio and httpx's
    own CLI until they are used (see above).

    When reliactl is the first to import httpx, those imports are refused to this thread only
    and for the length of that import; httpcore's module-level ``trio`` and ``anyio`` then
    stand for the modules and import them on first use (only ever by an async client, under
    a running trio or asyncio), and ``httpx.main`` imports httpx's CLI when called. Nothing
    else in httpx or httpcore imports them at import time (httpcore's anyio and trio network
    backends import their own when first used), so every caller in the process sees httpx
    behave as before. A process that imported httpx already gets it as it is.

    ``defer_unused`` (the command line's own process only): the modules of
    ``_DEFERRED_FOR_CLI`` that this import is the first to import are deferred
    (``reliactl._imports.DeferredModule``): their code runs at the first read of one of their
    attributes (an https connection, a non-ASCII host name, a multipart file ...), not at
    import.
    """
    module = sys.modules.get("httpx")
    if module is not None:
        return module
    with _import_lock:
        module = sys.modules.get("httpx")
        if module is not None:
            return module
        defer = _DEFERRED_FOR_CLI if defer_unused and _only_thread() else ()
        with _ImportScope(skip=_SKIPPED_AT_IMPORT, defer=defer) as finder:
            import httpcore  # noqa: F401 - httpx imports it when a client is made: now, here
            import httpx
        sync = sys.modules.get("httpcore._synchronization")
        for name in ("trio", "anyio"):
            if name in finder.skipped and sync is not None and getattr(sync, name, 0) is None:
                setattr(sync, name, _LazyModule(name, sync))
        if "httpx._main" in finder.skipped:
            httpx.main = _httpx_main  # type: ignore[assignment]
        return httpx


_tls_class: Any = None


def _deferred_tls_class() -> Any:
    """``ssl.SSLContext`` subclass whose CA bundle is loaded at the first TLS connection."""
    global _tls_class
    if _tls_class is not None:
        return _tls_class
    import ssl

    class DeferredTLSContext(ssl.SSLContext):
        """The TLS context of a client made without ``verify``: exactly httpx's default
        (``httpx.create_ssl_context(True, trust_env=...)``: certifi's bundle, or
        ``SSL_CERT_FILE``/``SSL_CERT_DIR`` with trust_env), built when the first TLS
        connection is wrapped rather than when the client is made. Every connection is
        wrapped by that real context. Fails closed: this object itself verifies
        (CERT_REQUIRED, hostnames checked) against no CA at all, so a path that bypassed the
        two wrap methods would refuse every certificate, never accept one."""

        _real: ssl.SSLContext | None
        _trust_env: bool
        _alpn: list[str] | None
        _lock: threading.Lock

        def __new__(cls, trust_env: bool) -> DeferredTLSContext:
            self = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
            self._real = None
            self._trust_env = trust_env
            self._alpn = None
            self._lock = threading.Lock()
            return self

        def __init__(self, trust_env: bool) -> None:
            pass

        def real(self) -> ssl.SSLContext:
            """The verifying context, loaded now if it was not yet."""
            with self._lock:
                if self._real is None:
                    from httpx import create_ssl_context

                    real = create_ssl_context(verify=True, trust_env=self._trust_env)
                    if self._alpn is not None:
                        real.set_alpn_protocols(self._alpn)
                    self._real = real
                return self._real

        def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
            protocols = list(alpn_protocols)
            with self._lock:
                self._alpn = protocols
                real = self._real
            super().set_alpn_protocols(protocols)
            if real is not None:
                real.set_alpn_protocols(protocols)

        def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
            return self.real().wrap_socket(*args, **kwargs)

        def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
            return self.real().wrap_bio(*args, **kwargs)

    _tls_class = DeferredTLSContext
    return _tls_class


def deferred_tls_context(trust_env: bool = True) -> Any:
    """httpx's default verifying TLS context, its CA bundle loaded on first use."""
    return _deferred_tls_class()(trust_env)


def _tls_kwargs(client_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``client_kwargs`` with a deferred default TLS context when the caller chose none.

    A caller's ``verify`` (False, a path or a context) or ``cert`` is passed on untouched.
    """
    if "verify" in client_kwargs or client_kwargs.get("cert") is not None:
        return client_kwargs
    trust_env = bool(client_kwargs.get("trust_env", True))
    return {**client_kwargs, "verify": deferred_tls_context(trust_env)}


# --------------------------------------------------------------------------- the clients


class _ClientBase:
    _core: _Core

    def get_stats(self) -> dict[str, Any]:
        """requests, successes, failures, attempts, retries, rejected_by_breaker,
        rate_limited, rate_limit_waits (+ _seconds), success_rate (1.0 before any request),
        latency_p50/p95/p99 (seconds per attempt, last 1000), breaker, breaker_state."""
        return self._core.get_stats()

    def health(self) -> dict[str, Any]:
        """status: unhealthy (breaker open, or half of the last 100 requests, and at least 5,
        failed on the service side), degraded (breaker half-open, or 10% of them failed),
        else healthy; with the numbers behind it ("service side": no answer, 429 or 5xx)."""
        return self._core.health()

    async def get_health_status(self) -> dict[str, Any]:
        """``health()``, awaitable (the seed's API)."""
        return self._core.health()

    @property
    def breaker(self) -> Any:
        return self._core.breaker

    @property
    def limiter(self) -> RateLimiter | None:
        return self._core.limiter


def _core_kwargs(
    httpx_module: Any,
    base_url: str,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    return {"httpx_module": httpx_module, "base_url": base_url, **kwargs}


class ResilientClient(_ClientBase):
    """A synchronous httpx client with rate limiting, a breaker, retries and statistics.

    ``breaker``: a CircuitBreaker, or a name (``circuit_manager.get_breaker(name)``, or the
    persistent breaker of that name when ``store`` is given). ``retry``: a backoff strategy
    (``reliactl.retry``), a ``RetryPolicy`` (its strategy and max_elapsed), a number of
    retries, or None for ``config.retry``. ``rate_limit``:
    a RateLimiter or a spec ("60/minute;1000/hour"), keyed by ``rate_limit_key`` (default:
    the base URL's host) and shared through ``store`` when given. ``timeout``: seconds per
    attempt (or an httpx.Timeout). Other keyword arguments go to ``httpx.Client``.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        breaker: Any = None,
        retry: Backoff | RetryPolicy | int | bool | None = None,
        rate_limit: RateLimiter | str | int | None = None,
        rate_limit_key: str | None = None,
        rate_limit_wait: float | _FromConfig | None = FROM_CONFIG,
        timeout: Any = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        retry_non_idempotent: bool = False,
        retry_statuses: Iterable[int] = RETRY_STATUSES,
        retry_deadline: float | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        store: StateStore | None = None,
        config: Config | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        **client_kwargs: Any,
    ) -> None:
        hx = import_httpx()
        self._core = _Core(
            **_core_kwargs(
                hx,
                base_url,
                {
                    "breaker": breaker,
                    "retry": retry,
                    "rate_limit": rate_limit,
                    "rate_limit_key": rate_limit_key,
                    "rate_limit_wait": rate_limit_wait,
                    "retry_non_idempotent": retry_non_idempotent,
                    "retry_statuses": retry_statuses,
                    "retry_deadline": retry_deadline,
                    "max_retry_after": max_retry_after,
                    "store": store,
                    "config": config,
                    "clock": clock,
                    "wall": wall,
                    "sleep": sleep,
                    "async_sleep": None,  # the limiter's default, asyncio.sleep
                    "on_retry": on_retry,
                },
            )
        )
        self._sleep = _backoff_sleep if sleep is None else sleep
        self._client: httpx.Client = hx.Client(
            base_url=base_url,
            timeout=_timeout(hx, timeout),
            headers=headers,
            **_tls_kwargs(client_kwargs),
        )
        self._attempt_timeout = _attempt_seconds(timeout)
        _install_deadlines(self._client)

    def __repr__(self) -> str:
        return f"ResilientClient({redact_url(self._client.base_url)!r})"

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with the protections above; keyword arguments as ``httpx.Client.request``.

        Each attempt, connecting, sending and reading the whole answer, ends by its deadline:
        ``timeout`` (when a number) after it starts, and never after the retry deadline."""
        seconds = self._seconds(kwargs)
        response, token = self._attempts(
            method,
            url,
            seconds,
            lambda extra: self._client.request(method, url, **_with_headers(kwargs, extra)),
        )
        _DEADLINE.reset(token)
        return response

    @contextlib.contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """``request`` without reading the answer's body: for large answers.

        Yields the last attempt's response (retries happen before, on its status and headers
        only); read it with ``iter_bytes()`` inside the ``with`` block, where the attempt's
        deadline still bounds every read. The response is closed on leaving the block.
        """
        seconds = self._seconds(kwargs)
        send_kwargs = {k: kwargs.pop(k) for k in ("auth", "follow_redirects") if k in kwargs}

        def send(extra: dict[str, str] | None) -> httpx.Response:
            request = self._client.build_request(method, url, **kwargs)
            if extra:
                request.headers.update(extra)
            return self._client.send(request, stream=True, **send_kwargs)

        response, token = self._attempts(method, url, seconds, send)
        try:
            yield response
        finally:
            try:
                response.close()
            finally:
                _DEADLINE.reset(token)

    def _chaos_send(
        self,
        core: _Core,
        method: str,
        url: str,
        send: Callable[[dict[str, str] | None], httpx.Response],
        extra: dict[str, str] | None,
    ) -> httpx.Response:
        delay, fault = core.chaos_fault(method, str(self._client.base_url.join(url)))
        if delay:
            self._sleep(delay)
        if isinstance(fault, BaseException):
            raise fault
        return send(extra) if fault is None else fault

    def _seconds(self, kwargs: dict[str, Any]) -> float | None:
        if "timeout" in kwargs:
            return _attempt_seconds(kwargs["timeout"])
        return self._attempt_timeout

    def _attempts(
        self,
        method: str,
        url: str,
        seconds: float | None,
        send: Callable[[dict[str, str] | None], httpx.Response],
    ) -> tuple[httpx.Response, Token[tuple[float, float] | None]]:
        """The final response, with the deadline of its attempt still set (reset ``token``).

        ``send(headers)`` makes one attempt, adding ``headers`` (the trace context) if any."""
        core = self._core
        method = method.upper()
        call = core.start(method, lambda: str(self._client.base_url.join(url)))
        try:
            return self._loop(core, call, method, url, seconds, send)
        except BaseException as exc:
            core.abandon(call, exc)
            raise

    def _loop(
        self,
        core: _Core,
        call: _Call,
        method: str,
        url: str,
        seconds: float | None,
        send: Callable[[dict[str, str] | None], httpx.Response],
    ) -> tuple[httpx.Response, Token[tuple[float, float] | None]]:
        limiter = core.limiter
        perf = time.perf_counter
        while True:
            try:
                if limiter is not None:
                    core.note_rate_wait(call, limiter.acquire(timeout=core.rate_timeout(call)))
                admission = core.admit()
            except (RateLimitExceeded, CircuitOpenError) as exc:
                return core.rejected(call, exc), _DEADLINE.set(_DEADLINE.get())
            extra = core.begin_attempt(call)
            started = perf()
            token = _DEADLINE.set(core.attempt_deadline(call, seconds))
            try:
                if _chaos.ACTIVE:
                    outcome: Any = self._chaos_send(core, method, url, send, extra)
                else:
                    outcome = send(extra)
            except BaseException as exc:
                outcome = exc
            try:
                core.record_attempt(call, admission, outcome, perf() - started)
                delay = core.next_delay(call)
                if delay is None:
                    return core.finish(call), token
            except BaseException:
                _DEADLINE.reset(token)
                raise
            _DEADLINE.reset(token)
            if not isinstance(outcome, BaseException):
                outcome.close()
            self._sleep(delay)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ResilientClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncResilientClient(_ClientBase):
    """``ResilientClient`` for asyncio, on ``httpx.AsyncClient``; ``sleep`` is awaited."""

    def __init__(
        self,
        base_url: str = "",
        *,
        breaker: Any = None,
        retry: Backoff | RetryPolicy | int | bool | None = None,
        rate_limit: RateLimiter | str | int | None = None,
        rate_limit_key: str | None = None,
        rate_limit_wait: float | _FromConfig | None = FROM_CONFIG,
        timeout: Any = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        retry_non_idempotent: bool = False,
        retry_statuses: Iterable[int] = RETRY_STATUSES,
        retry_deadline: float | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        store: StateStore | None = None,
        config: Config | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        **client_kwargs: Any,
    ) -> None:
        hx = import_httpx()
        self._core = _Core(
            **_core_kwargs(
                hx,
                base_url,
                {
                    "breaker": breaker,
                    "retry": retry,
                    "rate_limit": rate_limit,
                    "rate_limit_key": rate_limit_key,
                    "rate_limit_wait": rate_limit_wait,
                    "retry_non_idempotent": retry_non_idempotent,
                    "retry_statuses": retry_statuses,
                    "retry_deadline": retry_deadline,
                    "max_retry_after": max_retry_after,
                    "store": store,
                    "config": config,
                    "clock": clock,
                    "wall": wall,
                    "sleep": None,
                    "async_sleep": sleep,
                    "on_retry": on_retry,
                },
            )
        )
        if sleep is None:
            import asyncio

            sleep = asyncio.sleep
        self._sleep = sleep
        self._client: httpx.AsyncClient = hx.AsyncClient(
            base_url=base_url,
            timeout=_timeout(hx, timeout),
            headers=headers,
            **_tls_kwargs(client_kwargs),
        )
        self._attempt_timeout = _attempt_seconds(timeout)

    def __repr__(self) -> str:
        return f"AsyncResilientClient({redact_url(self._client.base_url)!r})"

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with the protections above; keyword arguments as ``httpx.AsyncClient.request``.

        Each attempt, the whole answer included, ends by its deadline (as ``ResilientClient``)."""
        seconds = _attempt_seconds(kwargs["timeout"]) if "timeout" in kwargs else None
        if "timeout" not in kwargs:
            seconds = self._attempt_timeout
        core = self._core
        method = method.upper()
        call = core.start(method, lambda: str(self._client.base_url.join(url)))
        try:
            return await self._loop(core, call, method, url, seconds, kwargs)
        except BaseException as exc:
            core.abandon(call, exc)
            raise

    async def _loop(
        self,
        core: _Core,
        call: _Call,
        method: str,
        url: str,
        seconds: float | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        import asyncio

        limiter = core.limiter
        perf = time.perf_counter
        while True:
            try:
                if limiter is not None:
                    core.note_rate_wait(
                        call, await limiter.acquire_async(timeout=core.rate_timeout(call))
                    )
                admission = core.admit()
            except (RateLimitExceeded, CircuitOpenError) as exc:
                return core.rejected(call, exc)  # type: ignore[no-any-return]
            extra = core.begin_attempt(call)
            started = perf()
            box = core.attempt_deadline(call, seconds)
            try:
                if _chaos.ACTIVE:
                    pause, fault = core.chaos_fault(method, str(self._client.base_url.join(url)))
                    if pause:
                        await self._sleep(pause)
                    if isinstance(fault, BaseException):
                        raise fault
                    if fault is not None:
                        outcome: Any = fault
                        raise _Injected
                sending = self._client.request(method, url, **_with_headers(kwargs, extra))
                if box is None:
                    outcome = await sending
                else:
                    outcome = await asyncio.wait_for(sending, max(0.0, box[0] - time.monotonic()))
            except _Injected:
                pass
            except asyncio.TimeoutError:
                outcome = core.httpx.ReadTimeout(deadline_message(box[1] if box else 0.0))
            except BaseException as exc:
                outcome = exc
            core.record_attempt(call, admission, outcome, perf() - started)
            delay = core.next_delay(call)
            if delay is None:
                return core.finish(call)  # type: ignore[no-any-return]
            if not isinstance(outcome, BaseException):
                await outcome.aclose()
            await self._sleep(delay)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("OPTIONS", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncResilientClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- the OpenAI preset

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIWrapper:
    """The seed's OpenAI wrapper: an AsyncResilientClient preset for the OpenAI API.

    ``OpenAIWrapper(api_key=..., enable_circuit_breaker=True, rate_limit_requests_per_minute=60)``
    talks to ``base_url`` (default ``$OPENAI_BASE_URL`` or the OpenAI API) with bearer auth,
    through the breaker "openai", a limiter keyed "openai" (default per-minute rate from
    ``rate_limit.openai_requests_per_minute`` / RATE_LIMIT_OPENAI_RPM), and retries. Like
    OpenAI's own SDK it retries POSTs on 429 and 5xx (``retry_non_idempotent=True``).

    The API key is never logged, never in a repr and never in an error message.
    """

    def __init__(
        self,
        api_key: str | None = None,
        enable_circuit_breaker: bool = True,
        rate_limit_requests_per_minute: int | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        model: str = "gpt-4o-mini",
        breaker_name: str = "openai",
        config: Config | None = None,
        store: StateStore | None = None,
        **client_kwargs: Any,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise ValueError("OpenAIWrapper needs an API key: pass api_key= or set OPENAI_API_KEY")
        self.__key = key
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip(
            "/"
        )
        config = config if config is not None else _config()
        rpm = rate_limit_requests_per_minute or config.rate_limit.openai_requests_per_minute
        client_kwargs.setdefault("retry_non_idempotent", True)
        client_kwargs.setdefault("rate_limit_key", "openai")
        self.client = AsyncResilientClient(
            self.base_url + "/",
            breaker=breaker_name if enable_circuit_breaker else None,
            rate_limit=f"{rpm}/minute",
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
            config=config,
            store=store,
            **client_kwargs,
        )

    def __repr__(self) -> str:
        return f"OpenAIWrapper(base_url={redact_url(self.base_url)!r}, api_key={REDACTED!r})"

    def _scrub(self, text: str) -> str:
        return redact_text(text, [self.__key])

    async def post(self, path: str, json: Any) -> Any:
        """POST ``json`` to ``path`` (relative to the base URL); the decoded JSON answer.

        Raises HTTPStatusError for a status >= 400 (with the API's error message, scrubbed),
        HTTPError when no answer came, CircuitOpenError / RateLimitExceeded when not sent.
        """
        try:
            response = await self.client.post(path.lstrip("/"), json=json)
        except HTTPError as exc:
            raise HTTPError(
                self._scrub(str(exc)),
                method=exc.method,
                url=exc.url,
                attempts=exc.attempts,
                sent=exc.sent,
            ) from None
        if response.status_code >= 400:
            detail = _api_error(response)
            raise HTTPStatusError(
                self._scrub(f"OpenAI API {path}: HTTP {response.status_code}{detail}"),
                status_code=response.status_code,
                method="POST",
                url=redact_url(response.request.url),
            )
        try:
            return response.json()
        except ValueError:
            raise HTTPError(
                f"OpenAI API {path}: the answer is not JSON", method="POST", url=path
            ) from None

    async def chat_completion(
        self, messages: list[dict[str, Any]], model: str | None = None, **params: Any
    ) -> Any:
        """POST /chat/completions with ``messages`` and ``params``; the decoded answer."""
        body = {"model": model or self.model, "messages": messages, **params}
        return await self.post("/chat/completions", body)

    def get_stats(self) -> dict[str, Any]:
        return self.client.get_stats()

    async def get_health_status(self) -> dict[str, Any]:
        return await self.client.get_health_status()

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> OpenAIWrapper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _api_error(response: Any) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    error = doc.get("error") if isinstance(doc, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f": {str(message)[:300]}" if message else ""
