"""A real HTTP server on 127.0.0.1 that counts requests (for health checks and alert sinks)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is expected, not news


class CountingServer:
    """Answers every request with ``status``/``body`` after ``delay`` seconds; records them."""

    def __init__(self, status: int = 200, body: bytes = b"ok", delay: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.delay = delay
        self.headers: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    doc = json.loads(raw) if raw else None
                except ValueError:
                    doc = raw.decode("utf-8", "replace")
                with owner._lock:
                    owner.requests.append({"method": self.command, "path": self.path, "json": doc})
                if owner.delay:
                    time.sleep(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.body)))
                self.send_header("Content-Type", "text/plain")
                for name, value in owner.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(owner.body)

            do_GET = do_POST = do_HEAD = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def posted(self) -> list[Any]:
        with self._lock:
            return [r["json"] for r in self.requests if r["method"] == "POST"]
