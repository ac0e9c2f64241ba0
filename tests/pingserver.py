"""A real HTTP server on 127.0.0.1 that records pings, for the ping and job tests.

``mode`` decides how it answers: "ok" (200), "500", "404", "301" (to
https://monitor.example + the same path, as an http->https proxy does), "hang" (reads the
request, then says nothing for 60 s or until the server is closed), "trickle" (one byte of
the answer a second), "hold" (answers 200 once ``release`` is set, or after 60 s), "drop"
(reads the request and closes the connection, no answer). Every request is recorded as
(method, path with query, body) when it arrives.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Ping:
    method: str
    target: str
    body: bytes
    at: float

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def rid(self) -> str | None:
        return parse_qs(urlsplit(self.target).query).get("rid", [None])[0]


class PingServer:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.pings: list[Ping] = []
        self.stop = threading.Event()
        self.release = threading.Event()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server_self.pings.append(Ping(self.command, self.path, body, time.monotonic()))
                mode = server_self.mode
                if mode == "hang":
                    server_self.stop.wait(60)
                    return
                if mode == "drop":
                    self.close_connection = True
                    return
                if mode == "hold":
                    server_self.release.wait(60)
                status = {"500": 500, "404": 404, "301": 301}.get(mode, 200)
                moved = f"Location: https://monitor.example{self.path}\r\n" if status == 301 else ""
                answer = (
                    f"HTTP/1.1 {status} X\r\n{moved}Content-Length: 2\r\n"
                    "Connection: close\r\n\r\nOK"
                ).encode()
                if mode == "trickle":
                    for byte in answer:
                        if server_self.stop.wait(1.0):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                self.wfile.write(answer)
                self.close_connection = True

            do_GET = _handle
            do_POST = _handle
            do_HEAD = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> PingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
