"""doctor against a Redis older than 6: a real redis-server behind a loopback proxy that
reports an old version in INFO (the only way to meet Redis 5's answer on a host with 7)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redishelpers import RedisServer

from reliactl.doctor import MIN_REDIS_MAJOR, diagnose

_LINE_TYPES = b"+-:_#,("  # one line
_SIZED_TYPES = b"$=!"  # a length, then that many bytes
_AGGREGATES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}


class _Frames:
    """Reads whole RESP2/RESP3 replies off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def frame(self, rewrite: Any) -> bytes:
        head = self.line()
        kind = head[0]
        if kind in _LINE_TYPES:
            return head + b"\r\n"
        if kind in _SIZED_TYPES:
            size = int(head[1:])
            if size < 0:
                return head + b"\r\n"
            body = rewrite(self.exact(size + 2)[:-2])
            return head[:1] + str(len(body)).encode() + b"\r\n" + body + b"\r\n"
        count = int(head[1:])
        parts = [head + b"\r\n"]
        for _ in range(max(0, count) * _AGGREGATES[kind]):
            parts.append(self.frame(rewrite))
        return b"".join(parts)


@contextlib.contextmanager
def old_version_proxy(upstream: tuple[str, int], version: str) -> Iterator[str]:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that passes every command and reply
    through unchanged, except the ``redis_version:`` line of INFO, which says ``version``."""

    def rewrite(body: bytes) -> bytes:
        lines = body.split(b"\r\n")
        for i, line in enumerate(lines):
            if line.startswith(b"redis_version:"):
                lines[i] = b"redis_version:" + version.encode()
        return b"\r\n".join(lines)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def pipe_commands(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def pipe_replies(src: socket.socket, dst: socket.socket) -> None:
        frames = _Frames(src)
        with contextlib.suppress(OSError, EOFError):
            while True:
                dst.sendall(frames.frame(rewrite))
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(upstream)
            conns.extend((client, server))
            for target, args in (
                (pipe_commands, (client, server)),
                (pipe_replies, (server, client)),
            ):
                threading.Thread(target=target, args=args, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(10)
        listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()


def _doctor(tmp_path: Path, url: str) -> dict[str, Any]:
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        f"state:\n  url: {url}\n  path: {tmp_path}/local.db\n"
        f"run:\n  lock_dir: {tmp_path}/locks\n  log_dir: {tmp_path}/logs\n"
    )
    report = diagnose(str(cfg), environ={"HOME": str(tmp_path)})
    return {"failed": report.failed, **{f.check: f for f in report.findings}}


def test_doctor_fails_a_redis_older_than_6(tmp_path: Path, redis_server: RedisServer) -> None:
    """A Redis that answers INFO with redis_version 5.0.14 (a real redis-server behind a
    proxy that changes only that line): doctor's redis check fails, names the version and
    says to upgrade to 6 or newer; the same server seen directly passes with its version."""
    host, port = "127.0.0.1", redis_server.port
    with old_version_proxy((host, port), "5.0.14") as url:
        old = _doctor(tmp_path, url)
    assert old["failed"] is True
    finding = old["redis"]
    assert finding.status == "fail", finding
    assert "Redis 5.0.14 is older than 6" in finding.message
    assert f"{MIN_REDIS_MAJOR} or newer" in finding.fix
    direct = _doctor(tmp_path, redis_server.url)["redis"]
    assert direct.status == "ok" and "Redis 5." not in direct.message, direct
