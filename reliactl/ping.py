"""Heartbeat pings: tell a monitor off the host (healthchecks.io, Cronitor, Uptime Kuma, Better
Stack) that a job started and how it ended, without ever changing the job's outcome.

Two ways to say where the pings go (``PingTargets``):

- ``url``: the healthchecks.io protocol. ``URL/start?rid=<uuid>`` when the command starts,
  ``URL?rid=..`` on success or ``URL/<exit code>?rid=..`` on failure, the tail of the output
  (``body_limit`` bytes, 10 KiB by default) POSTed as the body. A run refused before it
  started (lock busy, breaker open, health gate) is reported as ``refusal`` says: ``log``
  (``URL/log``: visible in the monitor's log, status unchanged), ``fail`` (``URL/fail``) or
  ``none`` (no ping).
- ``start`` / ``success`` / ``failure``: URL templates with the placeholders ``{name}``,
  ``{host}``, ``{exit_code}``, ``{duration_ms}``, ``{outcome}`` and ``{rid}`` (values
  URL-quoted). ``refusal: fail`` sends the failure template for a refused run; ``log`` and
  ``none`` send nothing (these services have no log-only ping).

Bounds (the promise): a ping never raises and never changes an exit code. ``Pinger.start()``
returns within ``start_wait`` (1 s) whatever the server does (down, hanging, trickling,
answering 500, DNS hanging): the request goes on in a daemon thread, so a start ping that
needs longer still arrives. ``finish()`` first waits for that start ping (so the monitor sees
start before end) until ``start_timeout`` (5 s) after it began, then sends the end ping and
returns within ``end_timeout`` (10 s) of being called. Inside those bounds each ping is
retried with the retry engine (connection errors and 5xx; not 4xx). A 3xx is not followed and
counts as not delivered (a warning naming where it points). Whatever did not finish in
time is abandoned (a daemon thread; ``run`` ends with ``os._exit``; ``close()`` stops its
retries). Each ping has one outcome, decided once, by the time ``finish()``/``refused()``
returns: its thread's result or the run giving up on it (the start ping too, if the run
stopped waiting for it), whichever comes first; so its warning line, the report and the
history agree. An answer after the run gave up is not counted (the monitor may have it).

A ping URL is a secret (the UUID is the credential): every URL this module reports, in
``PingResult``, warnings and history data, goes through ``reliactl.redact``.

Stdlib only (``http.client`` rather than httpx, whose import costs more than a whole ``run``
start); no printing: results and warnings are returned.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "PLACEHOLDERS",
    "REFUSALS",
    "OutputTail",
    "PingResult",
    "PingTargets",
    "Pinger",
    "check_template",
    "ping_url_problem",
]

DEFAULT_BODY_LIMIT = 10 * 1024
PLACEHOLDERS = ("name", "host", "exit_code", "duration_ms", "outcome", "rid")
REFUSALS = ("log", "fail", "none")
# Outcomes of a run that never started its command (reliactl.runner's names).
REFUSED_OUTCOMES = frozenset({"busy", "skipped", "gated", "breaker_open"})
START_WAIT = 1.0
START_TIMEOUT = 5.0
END_TIMEOUT = 10.0
USER_AGENT = "reliactl-ping"


def check_template(template: str) -> str | None:
    """Why ``template`` is not a usable ping URL template, or None."""
    try:
        fields = [f for _, f, _, _ in Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    for name in fields:
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            return f"unknown placeholder {{{name}}}; expected one of {allowed}"
    probe = template
    for name in PLACEHOLDERS:
        probe = probe.replace("{" + name + "}", "x")
    return ping_url_problem(probe)


def ping_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be pinged, or None: the one URL rule (``reliactl._urls``)."""
    from reliactl._urls import url_problem

    return url_problem(url)


@dataclass(frozen=True)
class PingTargets:
    """Where a job's pings go; empty strings mean "not configured"."""

    url: str = ""  # healthchecks.io protocol base URL
    start: str = ""  # templates
    success: str = ""
    failure: str = ""
    refusal: str = "log"  # log | fail | none
    body_limit: int = DEFAULT_BODY_LIMIT

    @property
    def configured(self) -> bool:
        return bool(self.url or self.start or self.success or self.failure)

    def secrets(self) -> tuple[str, ...]:
        """The URLs themselves, for redacting them out of any text."""
        return tuple(u for u in (self.url, self.start, self.success, self.failure) if u)


@dataclass(frozen=True)
class PingResult:
    """One ping as it went: which event, where (redacted), and whether the monitor got it."""

    event: str  # start | success | failure | log | fail
    url: str  # redacted
    ok: bool
    status: int | None = None
    attempts: int = 0
    error: str | None = None  # redacted
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "duration": round(self.duration, 6),
        }

    def warning(self) -> str:
        return f"ping {self.event} to {self.url} failed: {self.error}"


class OutputTail:
    """An output sink (``reliactl.runner.OutputSink``) keeping the last ``limit`` bytes of
    stdout and stderr, interleaved as they came, and passing everything on to ``inner`` (by
    default straight to reliactl's own fd 1 and 2, best effort: a stream that fails to take a
    write is dropped, and the job goes on; one whose reader went away, EPIPE, raises
    ``BrokenPipeError`` so the runner closes the command's pipe, as a shell pipeline would)."""

    def __init__(self, limit: int = DEFAULT_BODY_LIMIT, inner: Any = None) -> None:
        self.limit = max(0, int(limit))
        self.inner = inner
        self._buf = bytearray()
        self._dropped: set[int] = set()
        self._gone: set[int] = set()  # dropped because the reader went away (EPIPE)

    def _pass_on(self, stream: int, data: bytes) -> None:
        from reliactl._runio import write_all

        if stream not in self._dropped:
            try:
                write_all(stream, data)  # whole, on a non-blocking descriptor too
            except BrokenPipeError:
                self._dropped.add(stream)
                self._gone.add(stream)
            except OSError:
                self._dropped.add(stream)
        if stream in self._gone:
            raise BrokenPipeError(32, "Broken pipe")  # EPIPE: the reader went away

    def write(self, stream: int, data: bytes) -> None:
        if self.limit:  # first: the tail keeps what the job wrote even if passing it on fails
            self._buf += data[-self.limit :]
            if len(self._buf) > self.limit:
                del self._buf[: len(self._buf) - self.limit]
        if self.inner is not None:
            self.inner.write(stream, data)
        else:
            self._pass_on(stream, data)

    def end_attempt(self, attempt: int) -> None:
        if self.inner is not None:
            self.inner.end_attempt(attempt)

    def tail(self) -> bytes:
        return bytes(self._buf)


class _Retryable(Exception):
    """A 5xx answer: worth another attempt."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Cancelled(Exception):
    """``Pinger.close()`` was called: no further attempt (the run is over)."""


class _Redirected(Exception):
    """A 3xx answer: the ping was not delivered (not followed: a redirected POST loses its
    body, and a monitor never redirects a valid ping URL; an http->https proxy does). Raised
    by ``http_send`` with the ``Location``; a custom sender may return the status instead."""

    def __init__(self, status: int, location: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.location = location

    def describe(self, url: str) -> str:
        """What the warning says: the status and where it points (redacted like the ping URL,
        ``url`` resolving a relative Location), so the operator fixes the configured URL."""
        where = ""
        if self.location:
            from urllib.parse import urljoin

            where = f" to {_shown(urljoin(url, self.location))}"
        return (
            f"redirected (HTTP {self.status}){where}, not followed: the monitor did not get"
            " the ping; configure the URL it redirects to"
        )


Sender = Callable[[str, str, bytes, float], int]


_KEEP_IN_TARGET = "/?#[]@!$&'()*+,;=:%~"


def http_send(method: str, url: str, body: bytes, timeout: float) -> int:
    """One HTTP request with stdlib ``http.client``; the status code (the body is not read
    beyond 64 KiB), ``_Redirected`` for a 3xx (never followed). ``timeout`` bounds each socket
    operation; the caller bounds the whole."""
    import http.client

    parts = urlsplit(url)
    conn_cls: Any = (
        http.client.HTTPSConnection
        if parts.scheme.lower() == "https"
        else http.client.HTTPConnection
    )
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout)
    # http.client sends the target as ASCII: a non-ASCII or space character is percent-encoded
    # as a browser and httpx do (RFC 3986 2.5); what is already encoded or reserved is kept.
    target = quote(urlunsplit(("", "", parts.path or "/", parts.query, "")), safe=_KEEP_IN_TARGET)
    try:
        headers = {"User-Agent": USER_AGENT, "Connection": "close"}
        if method == "POST":
            headers["Content-Type"] = "text/plain; charset=utf-8"
        conn.request(method, target, body=body if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)
        if 300 <= response.status < 400:
            raise _Redirected(int(response.status), response.getheader("Location"))
        return int(response.status)
    finally:
        conn.close()


@dataclass
class _Flight:
    """One ping in its thread: the caller waits on ``done`` at most its bound.

    Its outcome is decided once (``settle``): by the thread's own result, or by the caller
    giving up on it (abandoned), whichever comes first. The two meet at the same deadline
    (the thread's bound is the caller's wait), and the run reads the result more than once
    (the warning line, then the history row and ``--json-report``): decided once, they all
    say the same, and an answer that comes after the run gave up changes nothing."""

    event: str
    url: str
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    result: PingResult | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def settle(self, result: PingResult) -> PingResult:
        """The flight's outcome: ``result`` if none was decided yet, else the one that was."""
        with self._lock:
            if self.result is None:
                self.result = result
            return self.result


class Pinger:
    """Sends one run's pings: ``start()`` when the command starts, then exactly one of
    ``finish(...)`` (the command ran) or ``refused(...)`` (it never started)."""

    def __init__(
        self,
        targets: PingTargets,
        *,
        name: str,
        host: str | None = None,
        rid: str | None = None,
        send: Sender | None = None,
        clock: Callable[[], float] = time.monotonic,
        start_wait: float = START_WAIT,
        start_timeout: float = START_TIMEOUT,
        end_timeout: float = END_TIMEOUT,
        max_retries: int = 2,
    ) -> None:
        if host is None:
            from reliactl.hostname import hostname

            host = hostname()
        self.targets = targets
        self.name = name
        self.host = host
        self.rid = rid or str(uuid.uuid4())
        self._send = send or http_send
        self._clock = clock
        self.start_wait = start_wait
        self.start_timeout = start_timeout
        self.end_timeout = end_timeout
        self.max_retries = max_retries
        self._start: _Flight | None = None
        self._flights: list[_Flight] = []
        self._cancel = threading.Event()

    # ---- public

    def start(self) -> PingResult | None:
        """Send the start ping; returns within ``start_wait`` (None if it is still going)."""
        if self.targets.url:
            url = self._hc_url("start")
        elif self.targets.start:
            url = self._expand(self.targets.start, exit_code="", duration=0.0, outcome="start")
        else:
            return None
        self._start = self._launch("start", "GET", url, b"", self.start_timeout)
        self._start.done.wait(self.start_wait)
        return self._start.result

    def finish(
        self, *, exit_code: int, outcome: str, duration: float, output: bytes = b""
    ) -> PingResult | None:
        """Send the end ping of a command that ran (``outcome`` "success" or a failure)."""
        success = outcome == "success" and exit_code == 0
        body = output[-self.targets.body_limit :] if self.targets.body_limit else b""
        if self.targets.url:
            url = self._hc_url("" if success else str(max(0, min(255, exit_code))))
        else:
            template = self.targets.success if success else self.targets.failure
            if not template:
                self._wait_start_only()
                return None
            url = self._expand(
                template, exit_code=str(exit_code), duration=duration, outcome=outcome
            )
        return self._end("success" if success else "failure", url, body)

    def refused(self, *, outcome: str, exit_code: int, message: str = "") -> PingResult | None:
        """Report a run refused before its command started (lock busy, breaker, gate)."""
        mode = self.targets.refusal
        if mode == "none":
            return None
        body = f"reliactl: {self.name} did not start: {outcome}: {message}".encode()
        if self.targets.url:
            return self._end(mode, self._hc_url(mode), body[-self.targets.body_limit :])
        if mode == "fail" and self.targets.failure:
            url = self._expand(
                self.targets.failure, exit_code=str(exit_code), duration=0.0, outcome=outcome
            )
            return self._end("fail", url, body)
        return None

    def on_event(self, event: Any) -> None:
        """A ``reliactl.runner`` event handler: the "start" event (once, after the lock and
        the gates, before the first attempt) sends the start ping."""
        if getattr(event, "kind", None) == "start" and self._start is None:
            self.start()

    def report(self, result: Any, output: bytes = b"") -> PingResult | None:
        """The end ping for a ``reliactl.runner.RunResult``: ``refused`` for a run that never
        started its command, ``finish`` otherwise. A ``JobResult`` (the RunResult in ``.run``)
        is taken too."""
        result = getattr(result, "run", result)
        if result.outcome in REFUSED_OUTCOMES:
            return self.refused(
                outcome=result.outcome, exit_code=result.exit_code, message=result.message or ""
            )
        return self.finish(
            exit_code=result.exit_code,
            outcome=result.outcome,
            duration=result.duration,
            output=output,
        )

    @property
    def results(self) -> list[PingResult]:
        """Every ping, in the order they were sent, one result each. Reading decides nothing:
        ``finish()``/``refused()`` (or ``close()``) decided every ping they waited for, so
        ``warnings()``, ``history()`` and a later call agree; a ping read before that (still
        in flight) is shown as such and stays undecided."""
        return [flight.result or self._pending(flight) for flight in self._flights]

    def warnings(self) -> list[str]:
        """One line per ping that did not reach the monitor (URLs redacted)."""
        return [r.warning() for r in self.results if not r.ok]

    def history(self) -> list[dict[str, Any]]:
        """What the run's history records about its pings."""
        return [r.to_dict() for r in self.results]

    def close(self) -> None:
        """Stop retrying pings still in flight (their threads send nothing more, and end
        when the request they are in ends), and give up on any still undecided."""
        self._cancel.set()
        for flight in self._flights:
            self._late(flight)

    # ---- internals

    def _wait_start_only(self) -> None:
        if self._start is not None:
            self._start.done.wait(self._remaining(self._start, self.start_timeout))
            self._late(self._start)  # the run stops waiting for it: decided now

    def _end(self, event: str, url: str, body: bytes) -> PingResult:
        called = self._clock()
        if self._start is not None:  # start before end, as the monitor expects
            self._start.done.wait(
                min(self._remaining(self._start, self.start_timeout), self.end_timeout)
            )
        left = max(0.0, self.end_timeout - (self._clock() - called))
        if left > 0:
            flight = self._launch(event, "POST", url, body, left)
            flight.done.wait(left)
            result = self._late(flight)
        else:  # its whole bound went on waiting for the start ping: never sent, 0 attempts
            result = self._not_sent(event, url)
        if self._start is not None:  # the run stops waiting for it too: decided now, not
            self._late(self._start)  # when read (its thread may end another way by then)
        return result

    def _remaining(self, flight: _Flight, bound: float) -> float:
        return max(0.0, bound - (self._clock() - flight.started))

    def _late(self, flight: _Flight) -> PingResult:
        """Give up on ``flight`` (its outcome from now on, unless its thread decided first).
        It may have been delivered and answered late: the monitor may have it."""
        if flight.result is not None:
            return flight.result
        waited = self._clock() - flight.started
        return flight.settle(
            PingResult(
                flight.event,
                _shown(flight.url),
                ok=False,
                error=f"no answer within {waited:.1f}s (abandoned; the monitor may have it)",
                duration=waited,
            )
        )

    def _not_sent(self, event: str, url: str) -> PingResult:
        flight = _Flight(event, url, self._clock())
        self._flights.append(flight)
        flight.done.set()
        return flight.settle(
            PingResult(
                event,
                _shown(url),
                ok=False,
                error=f"not sent: no time left of its {self.end_timeout:.1f}s bound",
            )
        )

    def _pending(self, flight: _Flight) -> PingResult:
        """``flight`` as it is while the run still waits for it (nothing decided)."""
        waited = self._clock() - flight.started
        return PingResult(
            flight.event,
            _shown(flight.url),
            ok=False,
            error=f"no answer yet after {waited:.1f}s (in flight)",
            duration=waited,
        )

    def _hc_url(self, suffix: str) -> str:
        parts = urlsplit(self.targets.url)
        path = parts.path.rstrip("/")
        if suffix:
            path = f"{path}/{suffix}"
        query = "&".join(q for q in (parts.query, f"rid={self.rid}") if q)
        return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))

    def _expand(self, template: str, *, exit_code: str, duration: float, outcome: str) -> str:
        values = {
            "name": self.name,
            "host": self.host,
            "exit_code": exit_code,
            "duration_ms": str(round(duration * 1000)),
            "outcome": outcome,
            "rid": self.rid,
        }
        return template.format_map({k: quote(v, safe="") for k, v in values.items()})

    def _launch(self, event: str, method: str, url: str, body: bytes, bound: float) -> _Flight:
        flight = _Flight(event, url, self._clock())
        self._flights.append(flight)
        thread = threading.Thread(
            target=self._fly,
            args=(flight, method, body, bound),
            name=f"reliactl-ping-{event}-{self.rid}",  # the rid: this pinger's threads
            daemon=True,
        )
        thread.start()
        return flight

    def _fly(self, flight: _Flight, method: str, body: bytes, bound: float) -> None:
        from reliactl.retry import RetryPolicy

        attempts = 0
        status: int | None = None

        def once() -> int:
            nonlocal attempts, status
            if self._cancel.is_set():  # close(): its backoff skipped, nothing more is sent
                raise _Cancelled
            left = bound - (self._clock() - flight.started)
            if left <= 0:
                raise TimeoutError("deadline passed")
            attempts += 1  # counted when sent: a bound spent before any is "not sent"
            status = self._send(method, flight.url, body, left)
            if status >= 500 or status == 429:
                raise _Retryable(status)
            return status

        policy = RetryPolicy(
            strategy="exponential",
            max_retries=self.max_retries,
            base_delay=0.2,
            max_delay=1.0,
            multiplier=2.0,
            jitter="full",
            max_elapsed=bound,
            retry_on=(OSError, _Retryable, TimeoutError),
            reraise=True,
            sleep=self._cancel.wait,
            clock=self._clock,
        )
        error: str | None = None
        try:
            final = policy.call(once)
            if final >= 400:
                error = f"HTTP {final}"
            elif final >= 300:  # a custom sender's redirect: not delivered either
                error = _Redirected(final).describe(flight.url)
        except _Redirected as exc:  # final, not retried: the same answer would come again
            status = exc.status
            error = exc.describe(flight.url)
        except _Retryable as exc:
            error = f"HTTP {exc.status} after {attempts} attempt(s)"
        except _Cancelled:
            error = f"stopped by the run's end after {attempts} attempt(s)"
        except TimeoutError as exc:
            error = (
                f"{_describe(exc)} after {attempts} attempt(s)"
                if attempts
                else f"not sent: no time left of its {bound:.1f}s bound"
            )
        except Exception as exc:  # a ping must never raise into the run
            error = f"{_describe(exc)} after {attempts} attempt(s)"
        from reliactl.redact import scrub

        flight.settle(  # no-op if the run already gave up on it: that stays its outcome
            PingResult(
                flight.event,
                _shown(flight.url),
                ok=error is None,
                status=status,
                attempts=attempts,
                error=scrub(error, flight.url) if error else None,
                duration=self._clock() - flight.started,
            )
        )
        flight.done.set()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {text}"


def _shown(url: str) -> str:
    from reliactl.redact import redact_url

    return redact_url(url, path=False)


def _environment_url(env: Mapping[str, str]) -> str:
    """``RELIACTL_PING_URL`` ("" if unset); ValueError naming the variable if it is not UTF-8
    (the environment's undecodable bytes, carried as surrogates, which no request can send:
    every ping failed with a UnicodeEncodeError warning), as `run --ping` refuses such a URL.
    The URL is shown as every ping URL is, a secret as a whole."""
    url = env.get("RELIACTL_PING_URL", "")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        from reliactl.units import printable

        raise ValueError(
            f"RELIACTL_PING_URL: expected UTF-8 text, got '{_shown(printable(url))}'"
        ) from None
    return url


def targets_from(
    settings: Any = None,
    *,
    url: str | None = None,
    start: str | None = None,
    success: str | None = None,
    failure: str | None = None,
    refusal: str | None = None,
    body_limit: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> PingTargets:
    """Where a run's pings go: flags (the keyword arguments) over the job's ``ping``
    settings (``config.JobPingSettings`` or a mapping) over ``RELIACTL_PING_URL`` in the
    environment, which is used only when nothing else names a target.

    Raises ValueError with a one-line message for an unusable URL or template (``run``
    reports it as a usage error before the job starts); the message never shows the URL's
    credential.
    """
    import os

    env = os.environ if environ is None else environ

    def setting(key: str) -> Any:
        if isinstance(settings, Mapping):
            return settings.get(key)
        return getattr(settings, key, None)

    given = {"url": url, "start": start, "success": success, "failure": failure}
    chosen = {key: value if value else (setting(key) or "") for key, value in given.items()}
    if not any(chosen.values()):
        chosen["url"] = _environment_url(env)
    for key, value in chosen.items():
        if value:
            problem = ping_url_problem(value) if key == "url" else check_template(value)
            if problem:
                raise ValueError(f"ping {key} {_shown(value)}: {problem}")
    mode = refusal or setting("refusal") or "log"
    if mode not in REFUSALS:
        raise ValueError(f"ping refusal: expected one of {', '.join(REFUSALS)}, got {mode!r}")
    limit = body_limit if body_limit is not None else setting("body_limit")
    return PingTargets(
        refusal=mode,
        body_limit=DEFAULT_BODY_LIMIT if limit is None else max(0, int(limit)),
        **chosen,
    )
