"""OpenTelemetry tracing of runs and health checks (the optional extra ``reliactl[otel]``).

Off, and free, unless an exporter is configured by the standard environment variables
(``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins) or a library user
handed a TracerProvider to :func:`configure`. Until then this module imports nothing but
the standard library, and ``run``/``health`` never import opentelemetry
(tests/test_tracing.py checks ``sys.modules`` of a real ``reliactl run``).

What is traced:

- ``run NAME``: one span per job (``jobs.PreparedJob.run``), continuing the trace of
  ``TRACEPARENT``/``TRACESTATE`` in reliactl's environment (a CI pipeline's), and handing the
  command its own context as ``TRACEPARENT`` (W3C trace context), so the command's spans are
  its children. A child span per attempt (exit code, signal, timeout; status ERROR when it
  failed) with a ``retry`` event carrying the pause before the next attempt; the breaker's
  decision and state changes are events of the run span.
- ``health``: one span per round with a child span per check (status, value, kind).
- ``ResilientClient`` / ``AsyncResilientClient`` (library): a span per request (kind
  CLIENT) with a child span per attempt (method, URL redacted by ``reliactl.redact``, status
  code; a ``retry`` event with the pause; rate-limit waits and breaker or rate-limit
  rejections as events of the request span). Each attempt sends its own context as the W3C
  ``traceparent`` header, so the server's spans are children of the attempt that reached it.
- ``reliactl.retry`` (RetryPolicy calls and decorated functions, sync and async): a span per
  call that was retried, from its first attempt, with a ``retry`` event per retry (attempt,
  delay, exception type).

The library hooks (http, retry) pay one module-attribute test, :data:`ACTIVE`, when tracing
is off, as ``chaos.ACTIVE``: it is read from OTEL_* once, when this module is imported, and
set by :func:`configure`. Their spans are exported by the provider's BatchSpanProcessor (the
SDK flushes it at interpreter exit), never flushed per request.

Attempt and check spans are recorded when their outcome is known, with the times they
really started and ended: nothing traced runs between fork and exec, and the attempt loop
is not touched. Spans go out through a BatchSpanProcessor flushed at the end of each run or
round (a dead collector costs at most ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s, there; the run's
exit code never depends on it). Exporters: ``otlp`` (OTLP over HTTP/protobuf, the exporter
reading its own ``OTEL_EXPORTER_OTLP_*`` variables) and ``console`` (to stderr).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.health.model import HealthReport
    from reliactl.runner import RunResult
    from reliactl.state.base import BreakerEvent

__all__ = [
    "ACTIVE",
    "RequestTrace",
    "RetryTrace",
    "RunTrace",
    "configure",
    "enabled",
    "record_health",
    "start_request",
    "start_retry",
    "start_run",
]


class _LazyLog:
    """The module's logger, imported at its first message (`run` and `health` start without
    the logging package when tracing is off)."""

    def warning(self, message: str, *args: Any) -> None:
        import logging

        logging.getLogger("reliactl.tracing").warning(message, *args)


log = _LazyLog()

TRACER_NAME = "reliactl"
_provider: Any = None  # configure()'s, or the one built from the environment
_configured = False  # configure() was called (the environment is then not consulted)
_missing_warned = False
_tracer_cache: tuple[Any, Any] | None = None  # (provider, its tracer): one per provider


def configure(provider: Any) -> None:
    """Trace with ``provider`` (an opentelemetry TracerProvider); None: back to the environment.

    For a library user who set up OpenTelemetry already, and for tests (the SDK's
    InMemorySpanExporter)."""
    global _provider, _configured, ACTIVE
    _provider = provider
    _configured = provider is not None
    ACTIVE = _configured or bool(exporters())


def exporters(environ: Mapping[str, str] | None = None) -> list[str]:
    """The trace exporters the environment asks for (empty: tracing is off)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [e.strip() for e in named.split(",") if e.strip() and e.strip() != "none"]
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ["otlp"]
    return []


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether spans are recorded: a configured provider, or an exporter named by OTEL_*
    with the ``otel`` extra installed (a missing extra is warned about once)."""
    global _missing_warned
    if _configured:
        return True
    if not exporters(environ):
        return False
    import importlib.util

    try:
        found = importlib.util.find_spec("opentelemetry.sdk") is not None
    except (ImportError, ValueError):
        found = False
    if not found and not _missing_warned:
        _missing_warned = True
        log.warning(
            "OTEL_* asks for traces but reliactl[otel] is not installed: tracing is off"
            " (pip install 'reliactl[otel]')"
        )
    return found


# Whether the library hooks (http, retry) try to trace at all: OTEL_* names an exporter, or
# configure() was given a provider. A True here is confirmed by enabled() (the extra may be
# missing), which sets it back to False.
ACTIVE = bool(exporters())


def _library_enabled() -> bool:
    global ACTIVE
    if enabled():
        return True
    ACTIVE = False
    return False


def _tracer() -> Any:
    """The tracer, building the provider from the environment the first time."""
    global _provider, _tracer_cache
    if _provider is None:
        _provider = _provider_from_env()
    cached = _tracer_cache
    if cached is None or cached[0] is not _provider:
        cached = _tracer_cache = (_provider, _provider.get_tracer(TRACER_NAME))
    return cached[1]


def _provider_from_env() -> Any:
    import sys

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "reliactl"}))
    for name in exporters():
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        else:
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console): ignored", name)
    return provider


def _flush() -> None:
    flush = getattr(_provider, "force_flush", None)
    if callable(flush):
        try:
            flush()
        except Exception as exc:  # an exporter's failure never changes a run's outcome
            log.warning("exporting traces failed: %s", exc)


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _ns(epoch: float) -> int:
    return int(epoch * 1e9)


# --------------------------------------------------------------------------- runs


class RunTrace:
    """The span of one run; made by :func:`start_run` only when tracing is on."""

    def __init__(self, name: str, command: Sequence[str], environ: Mapping[str, str]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        carrier = {}
        if environ.get("TRACEPARENT"):
            carrier["traceparent"] = environ["TRACEPARENT"]
            if environ.get("TRACESTATE"):
                carrier["tracestate"] = environ["TRACESTATE"]
        parent = self._propagator.extract(carrier)
        self.span = _tracer().start_span(
            f"run {name}",
            context=parent,
            kind=trace.SpanKind.INTERNAL,
            attributes={
                "reliactl.job.name": name,
                "process.executable.name": os.path.basename(command[0]) if command else "",
            },
        )
        self._context = trace.set_span_in_context(self.span)

    def child_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """The command's environment (``env``, else reliactl's) with this span's context as
        TRACEPARENT (and TRACESTATE, when the trace has one)."""
        out = dict(os.environ if env is None else env)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._context)
        out.pop("TRACESTATE", None)
        out["TRACEPARENT"] = carrier["traceparent"]
        if carrier.get("tracestate"):
            out["TRACESTATE"] = carrier["tracestate"]
        return out

    @property
    def traceparent(self) -> str:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._context)
        return carrier["traceparent"]

    def breaker_event(self, event: BreakerEvent) -> None:
        """A breaker state change (a CircuitBreaker.on_state_change listener)."""
        self.span.add_event(
            "breaker.state_change",
            {
                "reliactl.breaker.name": event.name,
                "reliactl.breaker.from": event.from_state,
                "reliactl.breaker.to": event.to_state,
                "reliactl.breaker.reason": event.reason,
            },
            timestamp=_ns(event.at),
        )

    def finish(
        self, result: RunResult | None, breaker: Mapping[str, Any] | None, error: str = ""
    ) -> None:
        """End the run span: an attempt span per attempt, the outcome, then export."""
        trace = self._trace
        try:
            if breaker:
                self.span.add_event(
                    "breaker.decision",
                    {f"reliactl.breaker.{k}": str(v) for k, v in breaker.items() if v is not None},
                )
            if result is not None:
                self._attempts(result)
                self.span.set_attribute("reliactl.run.outcome", result.outcome)
                self.span.set_attribute("process.exit.code", result.exit_code)
                self.span.set_attribute("reliactl.run.attempts", len(result.attempts))
                if not result.succeeded:
                    self.span.set_status(trace.Status(trace.StatusCode.ERROR, result.outcome))
            else:
                self.span.set_attribute("reliactl.run.outcome", "error")
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, error or "error"))
        finally:
            self.span.end()
            _flush()

    def _attempts(self, result: RunResult) -> None:
        trace = self._trace
        tracer = _tracer()
        for attempt in result.attempts:
            end = attempt.started_at + attempt.duration
            attributes: dict[str, Any] = {
                "reliactl.attempt.number": attempt.number,
                "process.exit.code": attempt.exit_code,
                "reliactl.attempt.timed_out": attempt.timed_out,
                "reliactl.attempt.killed": attempt.killed,
            }
            if attempt.signal is not None:
                attributes["reliactl.attempt.signal"] = _signal_name(attempt.signal)
            if attempt.exec_error:
                attributes["reliactl.attempt.exec_error"] = attempt.exec_error
            span = tracer.start_span(
                f"attempt {attempt.number}",
                context=self._context,
                start_time=_ns(attempt.started_at),
                attributes=attributes,
            )
            failed = attempt.exit_code != 0 or attempt.timed_out
            if failed:
                why = "timed out" if attempt.timed_out else f"exit {attempt.exit_code}"
                span.set_status(trace.Status(trace.StatusCode.ERROR, why))
            if attempt.delay_after is not None:
                span.add_event(
                    "retry",
                    {"reliactl.retry.delay": attempt.delay_after},
                    timestamp=_ns(end),
                )
            span.end(end_time=_ns(end))


def start_run(
    name: str, command: Sequence[str], env: Mapping[str, str] | None = None
) -> RunTrace | None:
    """The trace of a run starting now, or None when tracing is off (nothing imported).

    ``env`` is the command's environment (None: reliactl's), where TRACEPARENT is read."""
    if not enabled():
        return None
    try:
        return RunTrace(name, command, os.environ if env is None else env)
    except Exception as exc:  # a broken tracing setup never stops a job
        log.warning("tracing disabled for this run: %s", exc)
        return None


# --------------------------------------------------------------------------- health


def record_health(report: HealthReport) -> None:
    """A ``health`` span for the round with a child span per check (when tracing is on)."""
    if not enabled():
        return
    try:
        from opentelemetry import trace

        tracer = _tracer()
        start = report.checked_at
        root = tracer.start_span(
            "health",
            start_time=_ns(start),
            attributes={
                "reliactl.health.status": report.overall_status.value,
                "reliactl.health.checks": len(report.metrics),
            },
        )
        context = trace.set_span_in_context(root)
        for metric in report.metrics.values():
            attributes: dict[str, Any] = {
                "reliactl.check.name": metric.name,
                "reliactl.check.kind": metric.kind,
                "reliactl.check.status": metric.status.value,
            }
            if metric.value is not None:
                attributes["reliactl.check.value"] = float(metric.value)
            span = tracer.start_span(
                f"check {metric.name}",
                context=context,
                start_time=_ns(start),
                attributes=attributes,
            )
            if metric.status.value in ("CRITICAL", "UNKNOWN"):
                span.set_status(trace.Status(trace.StatusCode.ERROR, metric.message[:200]))
            span.end(end_time=_ns(start + metric.duration))
        if report.overall_status.value in ("CRITICAL", "UNKNOWN"):
            root.set_status(trace.Status(trace.StatusCode.ERROR, report.overall_status.value))
        root.end(end_time=_ns(start + report.duration))
    except Exception as exc:
        log.warning("tracing the health round failed: %s", exc)
    finally:
        _flush()


# --------------------------------------------------------------------------- library hooks


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


class RequestTrace:
    """The span of one ResilientClient request, and of its attempts; made by
    :func:`start_request` only when tracing is on. The URL and messages it is handed are
    already redacted (this module does not know what a secret is)."""

    def __init__(self, method: str, url: str, client: str) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = _tracer()
        self._method = method
        self._url = url
        self._attempt: Any = None
        self._ended = False
        self.span = self._tracer.start_span(
            f"HTTP {method}",
            kind=trace.SpanKind.INTERNAL,
            attributes={
                "http.request.method": method,
                "url.full": url,
                "reliactl.http.client": client,
            },
        )
        self._context = trace.set_span_in_context(self.span)

    def rate_wait(self, seconds: float) -> None:
        """The rate limiter held the next attempt back ``seconds``."""
        self.span.add_event("ratelimit.wait", {"reliactl.ratelimit.waited": seconds})

    def rejected(self, kind: str, message: str) -> None:
        """``kind`` (``breaker`` or ``ratelimit``) refused the next attempt."""
        self.span.add_event(f"{kind}.rejected", {"reliactl.reason": message[:500]})

    def attempt(self, number: int) -> dict[str, str]:
        """Start attempt ``number``'s span; the headers (traceparent) that carry it."""
        attributes: dict[str, Any] = {
            "http.request.method": self._method,
            "url.full": self._url,
            "reliactl.attempt.number": number,
        }
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        self._attempt = self._tracer.start_span(
            self._method,
            context=self._context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(self._attempt))
        return carrier

    def _outcome(
        self, span: Any, status: int | None, error: BaseException | None, why: str
    ) -> None:
        trace = self._trace
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_attribute("error.type", str(status))
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {status}"))
        elif error is not None:
            span.set_attribute("error.type", _type_name(error))
            span.set_status(trace.Status(trace.StatusCode.ERROR, why[:500]))

    def attempt_done(
        self, status: int | None, error: BaseException | None, why: str, delay: float | None
    ) -> None:
        """End the attempt's span: its answer's ``status`` or its ``error`` (described by the
        redacted ``why``), and the pause before the next attempt (None: no retry)."""
        span, self._attempt = self._attempt, None
        if span is None:
            return
        self._outcome(span, status, error, why)
        if delay is not None:
            span.add_event("retry", {"reliactl.retry.delay": delay})
        span.end()

    def end(self, status: int | None, error: BaseException | None, why: str, attempts: int) -> None:
        """End the request's span (once; later calls do nothing) with its last outcome."""
        if self._ended:
            return
        self._ended = True
        self.attempt_done(None, error, why, None)
        self.span.set_attribute("reliactl.http.attempts", attempts)
        self._outcome(self.span, status, error, why)
        self.span.end()


def start_request(method: str, url: str, client: str) -> RequestTrace | None:
    """The trace of an HTTP request starting now, or None when tracing is off."""
    if not _library_enabled():
        return None
    try:
        return RequestTrace(method, url, client)
    except Exception as exc:  # a broken tracing setup never fails a request
        log.warning("tracing disabled for this request: %s", exc)
        return None


class RetryTrace:
    """The span of one call that ``reliactl.retry`` retried; made by :func:`start_retry`."""

    def __init__(self, name: str, began_ns: int | None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.span = _tracer().start_span(
            f"retry {name}", start_time=began_ns or None, attributes={"reliactl.retry.name": name}
        )

    def retry(self, attempt: int, delay: float, error: BaseException | None) -> None:
        """Attempt ``attempt`` failed (``error``, or None: its result asked for a retry); the
        next one follows after ``delay`` seconds."""
        self.span.add_event(
            "retry",
            {
                "reliactl.retry.attempt": attempt,
                "reliactl.retry.delay": delay,
                "exception.type": "" if error is None else _type_name(error),
            },
        )

    def end(self, attempts: int, error: BaseException | None, reason: str | None) -> None:
        """The call ended after ``attempts`` attempts: returned (``error`` None) or raised."""
        trace = self._trace
        self.span.set_attribute("reliactl.retry.attempts", attempts)
        if error is not None:
            self.span.set_attribute("error.type", _type_name(error))
            if reason:
                self.span.set_attribute("reliactl.retry.gave_up", reason)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, reason or _type_name(error)))
        self.span.end()


def start_retry(name: str, began_ns: int | None) -> RetryTrace | None:
    """The trace of a call being retried (its first attempt began at ``began_ns``, epoch
    nanoseconds), or None when tracing is off."""
    if not _library_enabled():
        return None
    try:
        return RetryTrace(name, began_ns)
    except Exception as exc:
        log.warning("tracing disabled for this retried call: %s", exc)
        return None
