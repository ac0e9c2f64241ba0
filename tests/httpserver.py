"""The one test HTTP server: real, on 127.0.0.1, failing on demand (tests and benchmarks).

Stdlib only. Script what a path answers, in order (``server.script("/x", 503, 503, 200)`` or
``Reply`` objects with headers, a body, a delay, a dropped connection, a body trickled one
byte at a time, or a huge generated body); once a script is
used up the path answers ``default``. Every request is recorded (method, path, headers,
body), so tests can count what the server really saw.

``https_server(ca)`` serves ``200 ok`` over TLS with a certificate a trustme CA signed.
``CountingServer`` answers every request alike (status, body, headers and delay settable
while it runs), for health checks and alert sinks. ``SilentServer`` reads every request
and never answers, counting connections. ``python tests/httpserver.py`` serves
``200 ok`` until killed and prints its URL: the benchmark runs it in its own process so
client and server do not share one GIL.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow server)
    drop: bool = False  # read the request, then close the connection without answering
    trickle: float = 0.0  # send the answer one byte at a time, this many seconds apart
    trickle_headers: bool = True  # the status line and headers trickle too (False: body only)
    size: int = 0  # instead of ``body``, send this many filler bytes (a huge answer)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            return self.body.encode(), headers
        return self.body, headers


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FlakyServer:
    """Serve on 127.0.0.1 (a free port) from a daemon thread; use as a context manager."""

    def __init__(self, default: Reply | int = 200) -> None:  # noqa: C901 - the handler class closes over its server
        self.default = default if isinstance(default, Reply) else Reply(default)
        self.requests: list[Seen] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
            wbufsize = -1  # and buffered, so they usually leave as one segment

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                reply = owner._next(path, seen)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                data, headers = reply.encoded()
                length = reply.size or len(data)
                if reply.trickle and reply.trickle_headers:
                    self._trickle(reply, data, headers)
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    if reply.size:
                        chunk = b"x" * 65536
                        for start in range(0, length, len(chunk)):
                            self.wfile.write(chunk[: length - start])
                    elif reply.trickle:
                        self.wfile.flush()
                        for index in range(len(data)):
                            self.wfile.write(data[index : index + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _trickle(self, reply: Reply, data: bytes, headers: dict[str, str]) -> None:
                """The whole answer, status line first, one byte every ``reply.trickle`` s."""
                lines = [f"HTTP/1.1 {reply.status} {self.responses[reply.status][0]}"]
                lines += [f"{name}: {value}" for name, value in headers.items()]
                lines += [f"Content-Length: {len(data)}", "", ""]
                raw = "\r\n".join(lines).encode("latin-1") + data
                self.close_connection = True
                try:
                    for index in range(len(raw)):
                        self.wfile.write(raw[index : index + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)  # a client that gave up is not

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _next(self, path: str, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            queue = self._scripts.get(path)
            if queue:
                return queue.popleft()
            return self.default

    def script(self, path: str, *replies: Reply | int) -> None:
        """Answer the next requests to ``path`` with ``replies`` in order, then ``default``."""
        with self._lock:
            queue = self._scripts.setdefault(path, deque())
            queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def posted(self, path: str | None = None) -> list[Any]:
        """The JSON bodies POSTed (to ``path``), in order; a body that is not JSON as text."""
        with self._lock:
            seen = [r for r in self.requests if r.method == "POST"]
        out: list[Any] = []
        for request in seen:
            if path is None or request.path == path:
                try:
                    out.append(request.json())
                except ValueError:
                    out.append(request.body.decode("utf-8", "replace"))
        return out

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received, to ``path`` (query ignored) and/or with ``method``."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path.split("?", 1)[0] == path)
                and (method is None or r.method == method)
            )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FlakyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CountingServer(FlakyServer):
    """Answers every request with ``status``/``body``/``headers`` after ``delay`` seconds
    (change them while it runs); ``count`` is how many requests arrived."""

    def __init__(self, status: int = 200, body: bytes = b"ok", delay: float = 0.0) -> None:
        self.status, self.body, self.delay = status, body, delay
        self.headers: dict[str, str] = {}
        super().__init__()

    def _next(self, path: str, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
        headers = {"Content-Type": "text/plain", **self.headers}
        return Reply(self.status, self.body, headers, delay=self.delay)

    @property  # type: ignore[override]
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


@contextlib.contextmanager
def https_server(ca: Any) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose certificate ``ca`` (a throwaway trustme CA) signed."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class SilentServer:
    """Accepts every connection and reads what is sent, but never answers (a receiver that
    got the request and is slow, or stuck): ``connections`` counts the connections made and
    ``requests`` the request lines read, so a test sees whether a client sent twice."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.requests: list[str] = []
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                if not data:
                    with self._lock:
                        self.requests.append(chunk.split(b"\r\n", 1)[0].decode("latin-1"))
                data += chunk

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def main() -> None:
    """Serve until killed; print the URL on the first line of stdout."""
    server = FlakyServer()
    server.requests = _Discard()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        sys.exit(0)


class _Discard(list[Seen]):
    """A request log that keeps nothing (a long benchmark would otherwise grow it)."""

    def append(self, item: Seen) -> None:
        pass


if __name__ == "__main__":
    main()
