"""A real redis-server for tests: a free loopback port, a private directory, no persistence."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oracle_client(**settings: object) -> object:
    """redis-py's client for the store's settings (the differential tests' oracle): what the
    store built before it had its own client, no retries and no health checks."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(**settings, retry=Retry(NoBackoff(), 0), health_check_interval=0)  # type: ignore[arg-type]


class RedisServer:
    """One redis-server process; ``url`` points at it. Stopped (and reaped) by ``stop``."""

    def __init__(
        self, directory: Path, *extra: str, password: str | None = None, port: int | None = None
    ) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed (.ci/run installs it)"
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.socket = str(directory / "redis.sock")
        args = [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--unixsocket",
            self.socket,
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(directory / "redis.log"),
            "--maxclients",
            "1000",
            *extra,
        ]
        if password is not None:
            args += ["--requirepass", password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=10
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited: {log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 30 s")

    def kill(self) -> None:
        """SIGKILL: the server vanishes with everything it held."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop_signal(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont_signal(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _pump(
    src: socket.socket,
    dst: socket.socket,
    before: Callable[[bytes], object] = lambda data: None,
    after: Callable[[bytes], object] = lambda data: None,
    rewrite: Callable[[bytes], bytes] = lambda data: data,
) -> None:
    """Copy what ``src`` sends to ``dst`` until either side closes or fails, calling
    ``before`` and ``after`` around each chunk's forwarding and sending what ``rewrite``
    makes of it (nothing when empty: held back or dropped); the one pump loop of the
    proxies in tests/state. Then close both."""
    try:
        while data := src.recv(65536):
            before(data)
            if out := rewrite(data):
                dst.sendall(out)
            after(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            s.close()


class RedisProxy:
    """A TCP proxy on loopback in front of the redis-server on ``port``: each connection it
    accepts gets a connection of its own to Redis, and ``_pumps(client, upstream)`` starts
    the two pumps between them (``_pump`` both ways, ``_request`` called before each chunk
    of requests is forwarded, unless a subclass says otherwise). ``close`` stops it and
    closes every connection. The one accept loop of the proxies in tests/state."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=30)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._pumps(client, upstream)

    def _pumps(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=_pump, args=(client, upstream, self._request), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def _request(self, data: bytes) -> None:
        """Called with each chunk of requests before it is forwarded (may raise OSError:
        that connection is cut)."""

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()


class LateReplyProxy(RedisProxy):
    """A ``RedisProxy`` that holds back, for ``delay`` seconds, the reply to each of the
    first ``times`` requests containing one of ``triggers``: the request reaches Redis at
    once and runs, its reply comes late (a congested or flapping network). ``held`` counts
    the replies held back."""

    def __init__(self, port: int, triggers: list[bytes], delay: float, times: int = 1) -> None:
        self.triggers = triggers
        self.delay = delay
        self.times = times
        self.held = 0
        super().__init__(port)

    def _pumps(self, client: socket.socket, upstream: socket.socket) -> None:
        hold = threading.Event()
        threading.Thread(target=self._up, args=(client, upstream, hold), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client, hold), daemon=True).start()

    def _claim(self) -> bool:
        with self._lock:
            if self.times <= 0:
                return False
            self.times -= 1
            return True

    def _up(self, src: socket.socket, dst: socket.socket, hold: threading.Event) -> None:
        def request(data: bytes) -> None:
            if any(t in data for t in self.triggers) and self._claim():
                hold.set()  # before Redis can answer

        _pump(src, dst, before=request)

    def _down(self, src: socket.socket, dst: socket.socket, hold: threading.Event) -> None:
        def reply(data: bytes) -> None:
            if hold.is_set():
                hold.clear()
                with self._lock:
                    self.held += 1
                time.sleep(self.delay)

        _pump(src, dst, before=reply)


class LateRequestProxy(LateReplyProxy):
    """A ``LateReplyProxy`` that holds back the requests themselves: each of the first
    ``times`` requests containing one of ``triggers`` reaches Redis ``delay`` seconds late
    (after its caller timed out and went on), and runs then. ``held`` counts the requests
    held back, ``forwarded`` those sent on to Redis after their delay."""

    def __init__(self, port: int, triggers: list[bytes], delay: float, times: int = 1) -> None:
        self.forwarded = 0
        super().__init__(port, triggers, delay, times)

    def _up(self, src: socket.socket, dst: socket.socket, hold: threading.Event) -> None:
        late = False

        def before(data: bytes) -> None:
            nonlocal late
            late = any(t in data for t in self.triggers) and self._claim()
            if late:
                with self._lock:
                    self.held += 1
                time.sleep(self.delay)

        def after(data: bytes) -> None:
            if late:
                with self._lock:
                    self.forwarded += 1

        _pump(src, dst, before=before, after=after)
