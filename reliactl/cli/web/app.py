"""The Starlette application of `reliactl serve`.

Reads are open; writes (breaker reset/trip) need the token in the ``Authorization: Bearer``
header, never a cookie, so another site cannot make a browser send it (CSRF-safe: a custom
header forces a CORS preflight, which this server never grants). Without a configured token
every write is refused. One access-log line per request goes to stderr (query strings
redacted); every document is scrubbed of URL passwords and webhook tokens (core.Service).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reliactl.cli.web.core import NOTES_MAX_AGE, REQUEST_STORE_WAIT, Service
from reliactl.cli.web.metrics import ReliactlCollector, exposition
from reliactl.errors import StateBusyError, StateError, StateUnavailableError
from reliactl.redact import redact_url, redact_urls_in
from reliactl.state.base import bounded_waits
from reliactl.units import printable

if TYPE_CHECKING:
    from reliactl.cli.web.guard import Guard

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
METRICS_MAX_AGE = 1.0  # seconds a /metrics body is shared by the scrapes that follow
PROBE_NOTES_WAIT = 0.5  # seconds /healthz waits for a new round's notes (then: the last known)
T = TypeVar("T")


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A background read's outcome is not awaited by anyone: its error is only noted."""
    if not task.cancelled() and task.exception() is not None:
        with contextlib.suppress(OSError, ValueError):
            print(f"reliactl serve: reading the notes failed: {task.exception()}", file=sys.stderr)


def _json_body(doc: dict[str, Any], version: int | None = None) -> bytes:
    """A document as the CLI's --json prints it (emit_json): "version" first (the document's
    own, else ``version``, else 1)."""
    from reliactl.cli.output import JSON_VERSION, strict_json

    body = strict_json(
        {"version": JSON_VERSION if version is None else version, **doc},
        lambda d: json.dumps(d, indent=2, allow_nan=False, default=str),
    )
    return (body + "\n").encode()


def _json(doc: dict[str, Any], status: int = 200, version: int | None = None) -> Response:
    return _raw_json(_json_body(doc, version), status)


def _endpoint_version(path: str) -> int | None:
    """The "version" of the document an endpoint answers, which its error bodies (a bad
    parameter, a busy store) say too, so a client reads one version per endpoint; None: the
    default (1). /healthz and /api/health are `health --json`, /api/history `health history
    --json`, /api/runs and /api/breakers `runs --json` and `breaker list --json`."""
    if path in ("/healthz", "/api/health"):
        from reliactl.cli.health import JSON_VERSION as HEALTH_VERSION

        return HEALTH_VERSION
    if path == "/api/history":
        from reliactl.history import JSON_VERSION as HISTORY_VERSION

        return HISTORY_VERSION
    if path in ("/api/runs", "/api/breakers"):
        from reliactl.cli.output import TIMES_JSON_VERSION

        return TIMES_JSON_VERSION
    return None


def _raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json", headers=SECURITY_HEADERS)


def _content_length(message: dict[str, Any]) -> int:
    """The content-length an ASGI response start declares (0 without one)."""
    for name, value in message.get("headers", ()):
        if bytes(name).lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


async def _answers_busy(send: Any) -> None:
    """The 503 given instead of a large answer while the answer budget is held (guard.py:
    slow readers' answers wait in memory); the client may try again after Retry-After."""
    from reliactl.cli.web.guard import ANSWER_RETRY

    body = _json_body({"error": "serve is busy sending large answers to slow clients; try again"})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(ANSWER_RETRY).encode()),
        *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def access_log(request: Request, status: int, started: float, json_logs: bool) -> None:
    # The request target as sent (raw_path: Starlette's URL drops a decoded CR, LF or TAB).
    # Bytes that are not UTF-8: kept (as \xHH) in the text line, U+FFFD in the JSON one.
    errors = "replace" if json_logs else "surrogateescape"
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = bytes(raw).decode("utf-8", errors)
    query = request.scope.get("query_string") or b""
    if query:
        path += "?" + bytes(query).decode("utf-8", errors)
    # Secret-named parameters first, then any webhook or URL password hidden in a value. The
    # text line escapes controls (ESC, BEL, CR, bidi overrides...) and bytes that are not
    # UTF-8 C-style (units.printable, the display rule), so a request cannot write to the operator's
    # terminal; the JSON line's own escapes do that there.
    path = redact_urls_in(unquote(redact_url(path), errors=errors))
    client = request.client.host if request.client else "-"
    took = (time.monotonic() - started) * 1000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if json_logs:
        line = json.dumps(
            {
                "at": stamp,
                "client": client,
                "method": request.method,
                "path": path,
                "status": status,
                "ms": round(took, 1),
            }
        )
    else:
        line = f"{stamp} {client} {request.method} {printable(path)} {status} {took:.1f}ms"
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def build_app(  # noqa: C901 - one closure per route, kept beside the app they share
    service: Service,
    *,
    json_logs: bool = False,
    loop_rounds: bool = True,
    guard: Guard | None = None,
) -> Any:
    """The ASGI app: Starlette's routes inside the access log (``guard``: the connection
    guard whose closes /metrics counts)."""
    collector = ReliactlCollector(service, guard)
    stop = asyncio.Event()

    async def in_thread(fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread whose store operations wait at most
        REQUEST_STORE_WAIT in all (also behind another thread's) on a store another process
        holds locked, then raise StateError (503): not 30 s a statement, which queued the
        requests behind one another, the rounds and serve's stop behind them."""

        def bounded() -> T:
            with bounded_waits(service.store, REQUEST_STORE_WAIT):
                return fn(*args)

        return await asyncio.to_thread(bounded)

    async def store_busy(request: Request, exc: Exception) -> Response:
        """A store error as an answer that names no path (anyone may GET /metrics): busy
        or out of reach is 503 with Retry-After; anything else (closed while serve stops,
        unwritable) is 500, no "try again"."""
        version = _endpoint_version(request.url.path)
        if isinstance(exc, (StateBusyError, StateUnavailableError)):
            response = _json({"error": "state store busy; try again"}, 503, version)
            response.headers["Retry-After"] = "5"
            return response
        return _json({"error": "state store error"}, 500, version)

    def authorized(request: Request) -> Response | None:
        if not service.token:
            return _json({"error": "read-only: serve has no token (--token-file)"}, 403)
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), service.token.encode()
        ):
            return _json({"error": "a valid token is needed (Authorization: Bearer ...)"}, 401)
        return None

    async def index(request: Request) -> Response:
        return await static_file(request, "index.html")

    async def static(request: Request) -> Response:
        return await static_file(request, request.path_params["name"])

    async def static_file(request: Request, name: str) -> Response:
        if name not in STATIC:
            return _json({"error": "not found"}, 404)
        body = resources.files("reliactl.cli.web").joinpath("static").joinpath(name).read_bytes()
        return Response(body, media_type=STATIC[name], headers=SECURITY_HEADERS)

    # The probes never wait on the store: /healthz answers from the last round's report, which
    # the round publishes in memory before it writes anything, and the notes (silences,
    # acknowledgements, flapping) last read. Those are read again behind the answer, one read
    # at a time, once older than NOTES_MAX_AGE; for a new round's report a probe waits for
    # them at most PROBE_NOTES_WAIT, then answers with the last known ones. A round older than
    # service.stale_after is 503 (core.Service.health). /livez reads memory only.
    healthz_cache: list[Any] = [None, None, 503, b""]  # [report, notes, status, body]
    notes_task: list[asyncio.Future[Any] | None] = [None]

    def refresh_notes(report: Any) -> asyncio.Future[Any]:
        task = notes_task[0]
        if task is None or task.done():
            task = asyncio.ensure_future(in_thread(service.check_notes, report))
            task.add_done_callback(_retrieved)
            notes_task[0] = task
        return task

    async def probe_notes(report: Any) -> dict[str, Any]:
        last = service.last_notes()
        if last is not None and last[1] is report and 0 <= time.time() - last[0] < NOTES_MAX_AGE:
            return last[2]
        task = refresh_notes(report)
        if last is None or last[1] is not report:  # a new round: its notes, if they come soon
            await asyncio.wait({task}, timeout=PROBE_NOTES_WAIT)
            last = service.last_notes()
        return {} if last is None else last[2]

    async def healthz(request: Request) -> Response:
        check = request.query_params.get("check")
        report = service.report
        notes = {} if report is None else await probe_notes(report)
        if check is not None:
            status, doc = service.health(check, notes, report)
            return _json(doc, status)
        age = service.round_age()
        if age is not None and age > service.stale_after:  # its message counts the seconds
            status, doc = service.health(None, notes, report)
            return _json(doc, status)
        if report is None or healthz_cache[0] is not report or healthz_cache[1] is not notes:
            status, doc = service.health(None, notes, report)
            healthz_cache[:] = [report, notes, status, _json_body(doc)]
        return _raw_json(healthz_cache[3], healthz_cache[2])

    async def livez(request: Request) -> Response:
        age = service.round_age()
        last = None if age is None else round(age, 3)
        return _json({"status": "alive", "rounds": service.rounds, "last_round_age": last})

    # One exposition at a time, shared by the scrapes that arrive while it is built and for
    # METRICS_MAX_AGE after: a burst of scrapers reads the store once, not once each.
    metrics_lock = asyncio.Lock()
    metrics_cache: list[Any] = [-1.0, b""]  # [monotonic time built, body]

    async def metrics(request: Request) -> Response:
        asked = time.monotonic()
        async with metrics_lock:
            built, body = metrics_cache
            if not built >= asked - METRICS_MAX_AGE:
                body = await in_thread(exposition, collector)
                metrics_cache[:] = [time.monotonic(), body]
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def api_health(request: Request) -> Response:
        _status, doc = await in_thread(service.health, request.query_params.get("check"))
        return _json(doc, 200 if "error" not in doc else 404)

    async def api_breakers(request: Request) -> Response:
        return _json(await in_thread(service.breakers))

    async def api_runs(request: Request) -> Response:
        try:
            limit = max(1, min(1000, int(request.query_params.get("limit", "20"))))
        except ValueError:
            return _json({"error": "limit: expected a number"}, 400, _endpoint_version("/api/runs"))
        return _json(await in_thread(service.runs, limit))

    async def api_jobs(request: Request) -> Response:
        return _json(await in_thread(service.jobs))

    async def api_history(request: Request) -> Response:
        from reliactl.errors import DurationError
        from reliactl.history import parse_since

        try:  # `health history --since`'s one check and wording (history.parse_since)
            since = parse_since(request.query_params.get("since", "24h"))
        except DurationError as exc:
            return _json({"error": f"since: {exc}"}, 400, _endpoint_version("/api/history"))
        points = request.query_params.get("max_points")
        try:
            max_points = max(2, min(10_000, int(points))) if points else None
        except ValueError:
            error = f"max_points: expected a number, got {points!r}"
            return _json({"error": error}, 400, _endpoint_version("/api/history"))
        checks = request.query_params.getlist("check") or None
        doc = await in_thread(service.history, checks, since, max_points)
        return _json(doc)

    async def breaker_action(request: Request) -> Response:
        refused = authorized(request)
        if refused is not None:
            return refused
        name, action = request.path_params["name"], request.path_params["action"]
        status, doc = await in_thread(service.breaker_action, name, action)
        return _json(doc, status)

    async def loop() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(service.round)
            except Exception as exc:  # a round never kills serve
                print(
                    f"reliactl serve: check round failed: {printable(str(exc))}",
                    file=sys.stderr,
                    flush=True,
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), service.interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(loop()) if loop_rounds else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task  # finishes the round in progress
            service.store.close()
            print(
                "reliactl serve: stopped (the round in progress finished, the store is closed)",
                file=sys.stderr,
                flush=True,
            )

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/healthz", healthz),
        Route("/livez", livez),
        Route("/metrics", metrics),
        Route("/api/health", api_health),
        Route("/api/breakers", api_breakers),
        Route("/api/runs", api_runs),
        Route("/api/jobs", api_jobs),
        Route("/api/history", api_history),
        Route("/api/breakers/{name}/{action}", breaker_action, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={StateError: store_busy})

    async def logged(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.monotonic()
        status = [500]
        refused = [False]
        # A HEAD answer's content-length is its GET's, but no body follows: never refused.
        budgeted = guard is not None and scope.get("method") != "HEAD"

        async def send_wrapper(message: Any) -> None:
            if refused[0]:
                return  # the answer refused: the 503 went instead
            if message["type"] == "http.response.start":
                if budgeted and guard is not None and not guard.room_for(_content_length(message)):
                    refused[0] = True
                    status[0] = 503
                    await _answers_busy(send)
                    return
                status[0] = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            access_log(Request(scope), status[0], started, json_logs)

    return _Logged(app, logged)


class _Logged:
    """The app wrapped in the access log (lifespan passes through)."""

    def __init__(self, app: Starlette, handler: Any) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handler(scope, receive, send)
