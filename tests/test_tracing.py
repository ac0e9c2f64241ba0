"""OpenTelemetry tracing (reliactl.tracing): the span tree of a run and of a health round,
W3C trace context in and out, breaker events, and zero cost when no exporter is configured."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from importtime import start_reliactl
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reliactl import tracing
from reliactl.config import Config, load
from reliactl.jobs import JobSpec, run_job

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"

# Fails twice (exit 1), then succeeds; each attempt appends the TRACEPARENT it was given.
FLAKY = (
    'n=$(cat "$D/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$D/n"; '
    'echo "$TRACEPARENT" >> "$D/tp"; [ $n -ge 3 ]'
)


def clean_env(**extra: str) -> dict[str, str]:
    """reliactl's environment without any OTEL_* or trace context of the test runner."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("TRACEPARENT", "TRACESTATE")
    }
    return {**env, **extra}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    try:
        yield exporter
    finally:
        tracing.configure(None)


def flaky_spec(tmp_path: Path, **kw: Any) -> JobSpec:
    return JobSpec(
        ("sh", "-c", FLAKY),
        name="flaky",
        retry=True,
        max_retries=3,
        base_delay=0.01,
        strategy="fixed",
        jitter="none",
        retry_on=frozenset({1}),
        history=False,
        env=clean_env(D=str(tmp_path), TRACEPARENT=TRACEPARENT),
        **kw,
    )


def test_a_run_with_two_failed_attempts_is_one_span_with_three_attempt_children(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """The run span continues the TRACEPARENT it was given, has one child per attempt (exit
    codes 1, 1, 0; the failed ones ERROR with a retry event carrying the pause), and each
    attempt of the command saw the run span's own context as TRACEPARENT."""
    result = run_job(flaky_spec(tmp_path), config=Config())
    assert (result.outcome, len(result.run.attempts)) == ("success", 3)
    finished = spans.get_finished_spans()
    (run,) = [s for s in finished if s.name == "run flaky"]
    attempts = sorted((s for s in finished if s.name.startswith("attempt")), key=lambda s: s.name)
    assert len(finished) == 4
    assert format(run.context.trace_id, "032x") == PARENT_TRACE
    assert run.parent is not None and format(run.parent.span_id, "016x") == PARENT_SPAN
    assert run.attributes["reliactl.run.outcome"] == "success"
    assert run.attributes["reliactl.run.attempts"] == 3
    assert run.status.status_code is StatusCode.UNSET
    assert [a.name for a in attempts] == ["attempt 1", "attempt 2", "attempt 3"]
    assert all(a.parent is not None and a.parent.span_id == run.context.span_id for a in attempts)
    assert [a.attributes["process.exit.code"] for a in attempts] == [1, 1, 0]
    assert [a.status.status_code for a in attempts] == [
        StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET,
    ]  # fmt: skip
    retries = [[e for e in a.events if e.name == "retry"] for a in attempts]
    assert [len(r) for r in retries] == [1, 1, 0]
    assert retries[0][0].attributes["reliactl.retry.delay"] == pytest.approx(0.01)
    assert attempts[0].start_time <= attempts[0].end_time <= attempts[1].start_time
    assert run.start_time <= attempts[0].start_time and attempts[2].end_time <= run.end_time
    seen = (tmp_path / "tp").read_text().split()
    own = f"00-{PARENT_TRACE}-{run.context.span_id:016x}-01"
    assert seen == [own, own, own]


def test_breaker_decision_and_state_change_are_events_of_the_run_span(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """A failing run through a breaker whose threshold is one failure: the run span (status
    ERROR) carries the breaker's decision and its closed -> open change."""
    path = tmp_path / "c.yaml"
    path.write_text("circuit_breaker:\n  failure_threshold: 1\n  recovery_timeout: 1h\n")
    cfg = load(str(path)).config
    result = run_job(JobSpec(("false",), name="svc-job", breaker="svc"), config=cfg)
    assert result.outcome == "failure"
    (run,) = [s for s in spans.get_finished_spans() if s.name == "run svc-job"]
    assert run.status.status_code is StatusCode.ERROR
    events = {e.name: e.attributes for e in run.events}
    assert events["breaker.decision"]["reliactl.breaker.decision"] == "admitted"
    assert events["breaker.decision"]["reliactl.breaker.recorded"] == "failure"
    change = events["breaker.state_change"]
    assert (change["reliactl.breaker.from"], change["reliactl.breaker.to"]) == ("closed", "open")


def test_health_round_is_a_span_with_a_child_per_check(spans: InMemorySpanExporter) -> None:
    """A health round is one span with a child per check (name, status, value); a CRITICAL
    check and the round are ERROR."""
    from reliactl.health.monitor import HealthMonitor

    monitor = HealthMonitor(Config().health_monitor, store=None)
    monitor.register_custom_check("good", lambda: {"status": "ok", "value": 1})
    monitor.register_custom_check("bad", lambda: {"status": "critical", "value": 7})
    report = monitor.run_now(["good", "bad"])
    assert report.overall_status.value == "CRITICAL"
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "health"]
    children = {s.name: s for s in finished if s.parent is not None}
    assert set(children) == {"check good", "check bad"}
    assert all(c.parent.span_id == root.context.span_id for c in children.values())  # type: ignore[union-attr]
    assert children["check bad"].attributes["reliactl.check.value"] == 7.0
    assert children["check bad"].status.status_code is StatusCode.ERROR
    assert root.status.status_code is StatusCode.ERROR


def test_the_exporter_choice_follows_the_otel_variables() -> None:
    """Tracing is on only when OTEL_* names an exporter; OTEL_SDK_DISABLED wins; `none`
    means off."""
    assert tracing.exporters({}) == []
    assert tracing.exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}) == ["otlp"]
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []


# --------------------------------------------------------------------------- real processes


def loaded_otel(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    """The opentelemetry modules a real `reliactl ARGS` process imported (python -X importtime
    reports every import on stderr as it happens, even if the process ends with os._exit)."""
    done, imported = start_reliactl(list(args), env=env, cwd=tmp_path)
    assert "reliactl.cli" in imported, done.stderr[-2000:]
    return [name for name in imported if name.split(".")[0] == "opentelemetry"]


def test_run_and_health_import_no_opentelemetry_without_an_exporter(tmp_path: Path) -> None:
    """Without OTEL_* (or with OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true) neither
    `run` nor `health` imports opentelemetry, though the extra is installed; with an
    exporter named they do (the probe can see it), `health` too (its monitor imports
    reliactl.tracing only when an OTEL_* variable is set or a provider was configured)."""
    base = clean_env(RELIACTL_STATE__URL=f"sqlite://{tmp_path / 's.db'}")
    off = [
        base,
        {**base, "OTEL_TRACES_EXPORTER": "none"},
        {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
    ]
    for env in off:
        assert loaded_otel(tmp_path, env, "run", "true") == []
        assert loaded_otel(tmp_path, env, "health", "--check", "swap_usage") == []
    on = {**base, "OTEL_TRACES_EXPORTER": "console"}
    assert "opentelemetry.sdk.trace" in loaded_otel(tmp_path, on, "run", "true")
    # health imports reliactl.tracing only when an OTEL_* variable is set: this one traces
    assert "opentelemetry.sdk.trace" in loaded_otel(tmp_path, on, "health", "--check", "swap_usage")


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on loopback: decodes each protobuf export request."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_reliactl_run_exports_its_span_tree_over_otlp_http(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A real `reliactl run` with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a loopback receiver:
    the protobuf export holds the run span (child of the CI's TRACEPARENT) and its three
    attempt spans, exit codes 1, 1, 0, and the command saw the run span as its parent."""
    env = clean_env(
        D=str(tmp_path),
        TRACEPARENT=TRACEPARENT,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_address[1]}",
        RELIACTL_STATE__URL=f"sqlite://{tmp_path / 's.db'}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "--name", "flaky", "--retries", "3",
         "--delay", "0.01", "--jitter", "none", "--retry-on", "1", "sh", "-c", FLAKY],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with receiver.lock:
        got = list(receiver.spans)
    by_name = {s.name: s for s in got}
    assert set(by_name) == {"run flaky", "attempt 1", "attempt 2", "attempt 3"}, got
    run = by_name["run flaky"]
    assert run.trace_id.hex() == PARENT_TRACE and run.parent_span_id.hex() == PARENT_SPAN
    codes = []
    for n in (1, 2, 3):
        attempt = by_name[f"attempt {n}"]
        assert attempt.parent_span_id == run.span_id and attempt.trace_id == run.trace_id
        attrs = {a.key: a.value for a in attempt.attributes}
        codes.append(attrs["process.exit.code"].int_value)
    assert codes == [1, 1, 0]
    assert [e.name for e in by_name["attempt 1"].events] == ["retry"]
    seen = set((tmp_path / "tp").read_text().split())
    assert seen == {f"00-{PARENT_TRACE}-{run.span_id.hex()}-01"}
    assert json.dumps(done.stderr).count("Traceback") == 0


# --------------------------------------------------------------------------- library: http, retry


def _hex_trace(span: Any) -> str:
    return format(span.context.trace_id, "032x")


def seen_spans(traceparents: list[str | None]) -> list[tuple[str, str]]:
    """(trace id, parent span id) of each W3C traceparent header a server saw."""
    out = []
    for header in traceparents:
        assert header is not None
        version, trace_id, span_id, _flags = header.split("-")
        assert version == "00"
        out.append((trace_id, span_id))
    return out


def test_a_client_request_is_a_span_with_a_child_per_attempt_and_sends_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    """ResilientClient against a real local server answering 503, 503, 200: one request span
    (URL with its secret query value redacted, final status 200, 3 attempts) with three CLIENT
    attempt children (status codes 503, 503, 200; the failed ones ERROR with a retry event);
    the server saw a traceparent on every attempt naming the request's trace and the
    attempt's own span."""
    from reliactl.http import ResilientClient
    from reliactl.retry import FixedDelayStrategy
    from tests.httpserver import FlakyServer

    with FlakyServer() as server:
        server.script("/x", 503, 503, 200)
        with ResilientClient(server.url, retry=FixedDelayStrategy(0.01, max_retries=3)) as client:
            response = client.get("/x?api_key=s3cr3t-value&q=1")
        assert response.status_code == 200
        seen = [r.headers.get("traceparent") for r in server.requests]
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "HTTP GET"]
    attempts = sorted((s for s in finished if s.name == "GET"), key=lambda s: s.start_time)
    assert len(finished) == 4
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["reliactl.http.attempts"] == 3
    assert request.status.status_code is StatusCode.UNSET
    url = str(request.attributes["url.full"])
    assert "s3cr3t" not in url and url.startswith(server.url + "/x?")
    assert all(
        a.parent is not None and a.parent.span_id == request.context.span_id for a in attempts
    )
    assert all(a.kind.name == "CLIENT" and a.attributes["url.full"] == url for a in attempts)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 503, 200]
    assert [a.attributes["reliactl.attempt.number"] for a in attempts] == [1, 2, 3]
    assert [a.status.status_code for a in attempts] == [
        StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET,
    ]  # fmt: skip
    assert [[e.name for e in a.events] for a in attempts] == [["retry"], ["retry"], []]
    assert attempts[0].events[0].attributes["reliactl.retry.delay"] == pytest.approx(0.01)
    assert seen_spans(seen) == [
        (_hex_trace(request), f"{a.context.span_id:016x}") for a in attempts
    ]


def test_an_async_client_request_is_traced_alike(spans: InMemorySpanExporter) -> None:
    """AsyncResilientClient: a 503 then a 200 gives one request
    span with two attempt children, and each attempt carried its own traceparent."""
    import asyncio

    from reliactl.http import AsyncResilientClient
    from reliactl.retry import FixedDelayStrategy
    from tests.httpserver import FlakyServer

    async def go(url: str) -> int:
        async with AsyncResilientClient(
            url, retry=FixedDelayStrategy(0.01, max_retries=3)
        ) as client:
            return (await client.get("/y")).status_code

    with FlakyServer() as server:
        server.script("/y", 503, 200)
        assert asyncio.run(go(server.url)) == 200
        seen = [r.headers.get("traceparent") for r in server.requests]
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "HTTP GET"]
    attempts = sorted((s for s in finished if s.name == "GET"), key=lambda s: s.start_time)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert seen_spans(seen) == [
        (_hex_trace(request), f"{a.context.span_id:016x}") for a in attempts
    ]


def test_a_streamed_request_inside_the_callers_span_is_its_child(
    spans: InMemorySpanExporter,
) -> None:
    """ResilientClient.stream inside a span of the caller's code: the request span is a child
    of the caller's span, and each streamed attempt (503, then 200) sent its own
    traceparent."""
    from reliactl.http import ResilientClient
    from reliactl.retry import FixedDelayStrategy
    from tests.httpserver import FlakyServer

    outer_tracer = tracing._provider.get_tracer("caller")
    with FlakyServer() as server:
        server.script("/s", 503, 200)
        strategy = FixedDelayStrategy(0.01, max_retries=3)
        with (
            ResilientClient(server.url, retry=strategy) as client,
            outer_tracer.start_as_current_span("caller") as outer,
            client.stream("GET", "/s") as response,
        ):
            assert response.status_code == 200
            assert response.read() == b"ok"
        seen = [r.headers.get("traceparent") for r in server.requests]
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "HTTP GET"]
    attempts = sorted((s for s in finished if s.name == "GET"), key=lambda s: s.start_time)
    assert request.parent is not None and request.parent.span_id == outer.get_span_context().span_id
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert seen_spans(seen) == [
        (_hex_trace(request), f"{a.context.span_id:016x}") for a in attempts
    ]


def test_a_request_cancelled_during_its_retry_pause_still_ends_its_span(
    spans: InMemorySpanExporter,
) -> None:
    """An async request cancelled while it waits to retry after a 503: its attempt span
    (503, retry event) and its request span (ERROR, CancelledError) are both exported."""
    import asyncio

    from reliactl.http import AsyncResilientClient
    from reliactl.retry import FixedDelayStrategy
    from tests.httpserver import FlakyServer

    async def go(url: str) -> None:
        retried = asyncio.Event()
        async with AsyncResilientClient(
            url,
            retry=FixedDelayStrategy(30, max_retries=3),
            retry_deadline=600,
            on_retry=lambda event: retried.set(),
        ) as client:
            task = asyncio.create_task(client.get("/z"))
            await asyncio.wait_for(retried.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with FlakyServer() as server:
        server.script("/z", 503)
        asyncio.run(go(server.url))
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.name == "HTTP GET"]
    (attempt,) = [s for s in finished if s.name == "GET"]
    assert attempt.attributes["http.response.status_code"] == 503
    assert [e.name for e in attempt.events] == ["retry"]
    assert request.status.status_code is StatusCode.ERROR
    assert request.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_a_breaker_rejection_and_a_transport_error_are_recorded(
    spans: InMemorySpanExporter,
) -> None:
    """A request to a closed port: the attempt span and the request span are ERROR with the
    transport error's type; the next request, refused by the now open breaker, is a request
    span with no attempt and a breaker.rejected event."""
    from reliactl.breaker import BreakerConfig, CircuitBreaker
    from reliactl.errors import CircuitOpenError, HTTPError
    from reliactl.http import ResilientClient
    from tests.httpserver import refused_url

    breaker = CircuitBreaker("otel-dead", BreakerConfig(failure_threshold=1, recovery_timeout=3600))
    with ResilientClient(refused_url(), retry=0, breaker=breaker) as client:
        with pytest.raises(HTTPError):
            client.get("/")
        with pytest.raises(CircuitOpenError):
            client.get("/")
    finished = spans.get_finished_spans()
    requests = [s for s in finished if s.name == "HTTP GET"]
    (attempt,) = [s for s in finished if s.name == "GET"]
    assert len(requests) == 2
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.attributes["error.type"] == "httpx.ConnectError"
    assert requests[0].status.status_code is StatusCode.ERROR
    assert [e.name for e in requests[1].events] == ["breaker.rejected"]
    assert requests[1].attributes["reliactl.http.attempts"] == 0
    assert requests[1].status.status_code is StatusCode.ERROR


def test_rate_limit_waits_and_rejections_are_events_of_the_request_span(
    spans: InMemorySpanExporter,
) -> None:
    """A request held back by the rate limiter has a ratelimit.wait event (the seconds it
    waited); one the limiter refuses has a ratelimit.rejected event, no attempt, and ERROR
    (a fake clock: no real waiting)."""
    from reliactl.errors import RateLimitExceeded
    from reliactl.http import ResilientClient
    from reliactl.testing import FakeClock
    from tests.httpserver import FlakyServer

    clock = FakeClock()
    fake = {"clock": clock.monotonic, "wall": clock.time, "sleep": clock.sleep, "retry": 0}
    with FlakyServer() as server:
        with ResilientClient(server.url, rate_limit="2/second", **fake) as client:
            for _ in range(3):
                client.get("/w")
        with ResilientClient(server.url, rate_limit="1/minute", rate_limit_wait=5, **fake) as c:
            c.get("/r")
            with pytest.raises(RateLimitExceeded):
                c.get("/r")
    requests = [s for s in spans.get_finished_spans() if s.name == "HTTP GET"]
    events = [[(e.name, dict(e.attributes or {})) for e in s.events] for s in requests]
    assert [[name for name, _ in e] for e in events] == [
        [], [], ["ratelimit.wait"], [], ["ratelimit.rejected"],
    ]  # fmt: skip
    assert events[2][0][1]["reliactl.ratelimit.waited"] > 0
    assert requests[4].status.status_code is StatusCode.ERROR
    assert requests[4].attributes["reliactl.http.attempts"] == 0


def test_a_retried_function_is_a_span_with_a_retry_event_per_retry(
    spans: InMemorySpanExporter,
) -> None:
    """A RetryPolicy-decorated function failing twice (ConnectionError, TimeoutError) then
    returning: one span "retry NAME" with two retry events (attempt, delay, exception type);
    a call that succeeds at once makes no span; an async call that gives up is ERROR."""
    import asyncio

    from reliactl.retry import RetryPolicy

    failures = [ConnectionError("a"), TimeoutError("b")]

    @RetryPolicy(strategy="fixed", base_delay=0.01, max_retries=3, jitter="none", name="fetch")
    def fetch() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert fetch() == "ok"
    assert fetch() == "ok"  # first time lucky: no retry, no span

    @RetryPolicy(
        strategy="fixed", base_delay=0.01, max_retries=1, jitter="none", name="afetch", reraise=True
    )
    async def afetch() -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(afetch())
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {"retry fetch", "retry afetch"}
    span = finished["retry fetch"]
    events = [dict(e.attributes or {}) for e in span.events if e.name == "retry"]
    assert [e["reliactl.retry.attempt"] for e in events] == [1, 2]
    assert [e["exception.type"] for e in events] == ["ConnectionError", "TimeoutError"]
    assert events[0]["reliactl.retry.delay"] == pytest.approx(0.01)
    assert span.attributes["reliactl.retry.attempts"] == 3
    assert span.status.status_code is StatusCode.UNSET
    assert span.start_time < span.events[0].timestamp
    failed = finished["retry afetch"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["reliactl.retry.attempts"] == 2
    assert failed.attributes["error.type"] == "ConnectionError"


def test_library_calls_import_and_record_nothing_when_tracing_is_off(tmp_path: Path) -> None:
    """Without OTEL_* a real process making a retried ResilientClient request and a retried
    function call imports no opentelemetry (reliactl.tracing.ACTIVE stays False); with
    OTEL_TRACES_EXPORTER=console the same program prints its spans."""
    program = (
        "import sys\n"
        "from reliactl import tracing\n"
        "from reliactl.http import ResilientClient\n"
        "from reliactl.retry import FixedDelayStrategy as F, RetryPolicy\n"
        "from tests.httpserver import FlakyServer\n"
        "n = []\n"
        "@RetryPolicy(strategy=F(0.01, max_retries=2), name='f')\n"
        "def f():\n"
        "    n.append(1)\n"
        "    if len(n) < 2: raise ConnectionError('x')\n"
        "with FlakyServer() as s:\n"
        "    s.script('/x', 503, 200)\n"
        "    with ResilientClient(s.url, retry=F(0.01, max_retries=2)) as c:\n"
        "        assert c.get('/x').status_code == 200\n"
        "    assert 'traceparent' not in s.requests[0].headers\n"
        "f()\n"
        "print(tracing.ACTIVE, sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    off = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
        env=clean_env(PYTHONPATH=root), cwd=root, check=False,
    )  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == "False []"
    on_program = program.replace("    assert 'traceparent' not", "    assert 'traceparent'")
    on = subprocess.run(
        [sys.executable, "-c", on_program], capture_output=True, text=True, timeout=120,
        env=clean_env(PYTHONPATH=root, OTEL_TRACES_EXPORTER="console"), cwd=root, check=False,
    )  # fmt: skip
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("True [")
    for name in ('"HTTP GET"', '"retry f"'):
        assert name in on.stderr, on.stderr[-2000:]
