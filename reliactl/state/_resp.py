"""A small synchronous RESP2 client: exactly what the Redis state store uses (issue 21 item 4).

redis-py's own import cost ~60 ms of CPU on every start with a Redis state URL (its command
mixins, cluster client, connection module with its cache and keyspace notifications, asyncio
through its parsers), more than a whole ``run`` is allowed; this module needs only the
standard library's ``socket`` (and ``ssl`` for rediss://). It speaks RESP2 to Redis 6+
(and Valkey) and is duck-typed to the part of redis-py's ``Redis`` API that
``state/redis.py``, ``state/redislease.py`` and ``state/fleet.py`` call, with redis-py's reply
conversions for those commands (bytes replies, ``decode_responses`` off), so the store code is
the same for both and the tests run the store suites against both (the differential tests).

Behaviour the store relies on:

- Timeouts: ``socket_connect_timeout`` bounds the connection (the DNS lookup, every address
  tried, the TLS handshake and the replies to AUTH/SELECT/CLIENT SETNAME, sent in one
  write); a command or pipeline has one deadline of ``socket_timeout`` for its write and its
  whole reply (not per ``recv``: a server trickling a byte at a time fails too). So one call
  takes at most connect + operation timeout. No retries: a failed command raises.
- A connection is pooled only when it owes no reply (a count: +1 per command sent, -1 per
  reply read whole), so an interrupt between a send and its read closes it instead.
- A connection that failed in any way (timeout, reset, a reply that is not RESP) is closed
  and never reused, so no later command can read the rest of a half-read reply. An idle
  pooled connection with something to read (the server closed it, e.g. it restarted) is
  replaced before use, as redis-py does.
- Thread-safe: a pool of connections; each command or pipeline holds one while it runs.
  After ``fork`` the child never touches its parent's connections (the pool checks the pid).
- Bounds against a broken or hostile server: a reply line at most 64 KiB, a bulk string at
  most 512 MiB (Redis's own ``proto-max-bulk-len``) and read as it arrives (never allocated
  from the announced length), arrays at most 16 Mi elements and 32 levels deep; anything
  else is a ConnectionError and the connection is dropped.

Errors have redis-py's names and hierarchy (``AuthenticationError`` is a ``ConnectionError``,
``ReadOnlyError`` a ``ResponseError``, ...); ``RedisStateStore._fail`` turns them into
StateErrors.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 64 * 1024
MAX_BULK = 512 * 1024 * 1024
MAX_ARRAY = 16 * 1024 * 1024
MAX_DEPTH = 32
MAX_IDLE = 16  # idle connections kept per client
_CHUNK = 65536


# --------------------------------------------------------------------------- errors


class RedisError(Exception):
    """Every error of this client (redis-py's names and hierarchy)."""


class ConnectionError(RedisError):
    pass


class TimeoutError(RedisError):
    pass


class AuthenticationError(ConnectionError):
    pass


class BusyLoadingError(ConnectionError):
    pass


class ResponseError(RedisError):
    pass


class DataError(RedisError):
    pass


class WatchError(RedisError):
    pass


class NoScriptError(ResponseError):
    pass


class OutOfMemoryError(ResponseError):
    pass


class ExecAbortError(ResponseError):
    pass


class ReadOnlyError(ResponseError):
    pass


class NoPermissionError(ResponseError):
    pass


_BY_CODE: dict[str, type[RedisError]] = {
    "OOM": OutOfMemoryError,
    "WRONGPASS": AuthenticationError,
    "EXECABORT": ExecAbortError,
    "LOADING": BusyLoadingError,
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "NOAUTH": AuthenticationError,
    "NOPERM": NoPermissionError,
}
_BY_ERR_TEXT: dict[str, type[RedisError]] = {
    "max number of clients reached": ConnectionError,
    "invalid password": AuthenticationError,
    "AUTH <password> called without any password configured for the default user. Are you"
    " sure your configuration is correct?": AuthenticationError,
    "Client sent AUTH, but no password is set": AuthenticationError,
}


def parse_error(text: str) -> RedisError:
    """The exception for an error reply, as redis-py classifies it (code prefix removed)."""
    code = text.split(" ", maxsplit=1)[0]
    if code == "ERR":
        rest = text[4:]
        return _BY_ERR_TEXT.get(rest, ResponseError)(rest)
    if code in _BY_CODE:
        return _BY_CODE[code](text[len(code) + 1 :])
    return ResponseError(text)


# --------------------------------------------------------------------------- encoding


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise DataError("Invalid input of type: 'bool'. Convert to a bytes, string, int or float")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, memoryview):
        return value.tobytes()
    raise DataError(f"Invalid input of type: {type(value).__name__!r}")


def pack(args: Sequence[Any]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode(arg)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


# --------------------------------------------------------------------------- one connection


class Connection:
    """One socket to Redis; closed (never reused) after any failure."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.pid = os.getpid()
        self.timeout: float | None = params.get("socket_timeout")
        self._buf = bytearray()
        self._pos = 0
        self._deadline = 0.0
        self.broken = False
        # Replies the server still owes this connection: +1 per command sent (counted before
        # its first byte goes out), -1 per reply read whole. The pool closes, never keeps, a
        # connection that owes one: an exception of any kind (a Ctrl-C, a signal handler that
        # raises) between a send and its read would otherwise hand that reply to the next
        # command on the connection.
        self.pending = 0
        connect_timeout = params.get("socket_connect_timeout")
        deadline = None if connect_timeout is None else time.monotonic() + connect_timeout
        self.sock = self._open(params, deadline)
        try:
            self._handshake(params, deadline)
        except BaseException:
            self.close()
            raise

    # ---- connecting

    @staticmethod
    def _remaining(deadline: float | None, doing: str = "connecting to server") -> float | None:
        """Seconds left before ``deadline`` (None: no deadline); TimeoutError when none are."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"Timeout {doing}")
        return left

    def _open(self, params: Mapping[str, Any], deadline: float | None) -> socket.socket:
        path = params.get("unix_socket_path")
        context = _tls_context(params.get("ssl_ca_certs")) if params.get("ssl") else None
        try:
            if path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self._remaining(deadline))
                    sock.connect(path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = self._connect_tcp(params, deadline)
            if context is not None:
                sock = self._wrap_tls(sock, context, params, deadline)
        except builtins.TimeoutError:  # the socket's (ours shadows the name)
            raise TimeoutError("Timeout connecting to server") from None
        except OSError as exc:
            where = path or f"{params.get('host')}:{params.get('port')}"
            raise ConnectionError(f"Error connecting to {where}: {_oserror(exc)}") from None
        except UnicodeError:  # a host name IDNA cannot encode (a label over 63 characters)
            raise ConnectionError(f"invalid host name {params.get('host')!r}") from None
        return sock

    def _connect_tcp(self, params: Mapping[str, Any], deadline: float | None) -> socket.socket:
        host, port = params.get("host") or "localhost", int(params.get("port") or 6379)
        error: OSError | None = None
        for family, kind, proto, _name, address in _resolve(host, port, deadline):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self._remaining(deadline))
                sock.connect(address)
                return sock
            except BaseException as exc:  # also our TimeoutError (the deadline passed)
                sock.close()
                if not isinstance(exc, OSError) or isinstance(exc, builtins.TimeoutError):
                    raise
                error = exc
        raise error or OSError("no address")

    @staticmethod
    def _wrap_tls(
        sock: socket.socket, context: Any, params: Mapping[str, Any], deadline: float | None
    ) -> socket.socket:
        try:
            sock.settimeout(Connection._remaining(deadline))
            wrapped: socket.socket = context.wrap_socket(sock, server_hostname=params.get("host"))
        except BaseException:
            sock.close()
            raise
        return wrapped

    def _handshake(self, params: Mapping[str, Any], deadline: float | None) -> None:
        """AUTH, SELECT and CLIENT SETNAME in one write, their replies in one round trip."""
        commands: list[tuple[Any, ...]] = []
        username, password = params.get("username"), params.get("password")
        if username:
            commands.append(("AUTH", username, password or ""))
        elif password:
            commands.append(("AUTH", password))
        if params.get("client_name"):
            commands.append(("CLIENT", "SETNAME", params["client_name"]))
        if int(params.get("db") or 0):
            commands.append(("SELECT", int(params["db"])))
        if not commands:
            return
        self.send(commands, deadline)
        first: RedisError | None = None
        for _ in commands:
            try:
                reply = self.read(deadline)
            except RedisError:
                if first is None:
                    raise
                break  # e.g. "max number of clients reached", then the server closed: say that
            if isinstance(reply, RedisError) and first is None:
                first = reply
        if first is not None:
            if isinstance(first, ResponseError) and "AUTH" in str(first).upper():
                first = AuthenticationError(str(first))
            raise first

    # ---- I/O

    def _fail(self, exc: RedisError) -> RedisError:
        self.broken = True
        self.close()
        return exc

    def deadline(self) -> float | None:
        """The deadline of one command or pipeline: ``socket_timeout`` bounds its write and
        its whole reply together (one call, one deadline)."""
        return None if self.timeout is None else time.monotonic() + self.timeout

    def send(self, commands: Sequence[Sequence[Any]], deadline: float | None = None) -> None:
        data = b"".join(pack(c) for c in commands)
        if deadline is None:
            deadline = self.deadline()
        self.pending += len(commands)
        try:
            self.sock.settimeout(self._remaining(deadline, "reading from socket"))
            self.sock.sendall(data)
        except (builtins.TimeoutError, TimeoutError):
            raise self._fail(TimeoutError("Timeout writing to socket")) from None
        except OSError as exc:
            raise self._fail(
                ConnectionError(f"Error while writing to socket: {_oserror(exc)}")
            ) from None
        except BaseException:
            self.broken = True  # e.g. KeyboardInterrupt mid-write: half a command was sent
            self.close()
            raise

    def read(self, deadline: float | None = None) -> Any:
        """One reply; an error reply is returned (not raised) as its exception."""
        if deadline is None:
            deadline = self.deadline()
        self._deadline = deadline if deadline is not None else float("inf")
        try:
            reply = self._reply(0)
            self.pending -= 1
            return reply
        except (builtins.TimeoutError, TimeoutError):
            raise self._fail(TimeoutError("Timeout reading from socket")) from None
        except ConnectionError as exc:
            raise self._fail(exc) from None
        except OSError as exc:
            raise self._fail(
                ConnectionError(f"Error while reading from socket: {_oserror(exc)}")
            ) from None
        except BaseException:
            self.broken = True  # e.g. KeyboardInterrupt mid-reply: the rest is unread
            self.close()
            raise

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Timeout reading from socket")
        self.sock.settimeout(None if left == float("inf") else left)
        chunk = self.sock.recv(_CHUNK)
        if not chunk:
            raise ConnectionError("Connection closed by server.")
        self._buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end - self._pos > MAX_LINE:
                raise ConnectionError("Protocol error: a reply line longer than 64 KiB")
            if end >= 0:
                line = bytes(self._buf[self._pos : end])
                self._pos = end + 2
                return line
            if len(self._buf) - self._pos > MAX_LINE:
                raise ConnectionError("Protocol error: a reply line longer than 64 KiB")
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self._buf) - self._pos < size + 2:
            self._fill()
        data = bytes(self._buf[self._pos : self._pos + size])
        if self._buf[self._pos + size : self._pos + size + 2] != b"\r\n":
            raise ConnectionError("Protocol error: a bulk string without its CRLF")
        self._pos += size + 2
        return data

    def _reply(self, depth: int) -> Any:
        line = self._line()
        if not line:
            raise ConnectionError("Protocol error: an empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return parse_error(rest.decode("utf-8", "replace"))
        if kind == b":":
            return _number(rest)
        if kind == b"$":
            size = _number(rest)
            if size == -1:
                return None
            if size < 0 or size > MAX_BULK:
                raise ConnectionError(f"Protocol error: bulk length {size}")
            return self._exact(size)
        if kind == b"*":
            count = _number(rest)
            if count == -1:
                return None
            if count < 0 or count > MAX_ARRAY:
                raise ConnectionError(f"Protocol error: array length {count}")
            if depth >= MAX_DEPTH:
                raise ConnectionError("Protocol error: arrays nested too deep")
            return [self._reply(depth + 1) for _ in range(count)]
        raise ConnectionError(f"Protocol error: unexpected reply {line[:40]!r}")

    def readable(self) -> bool:
        """Whether the server sent something (or closed) while this connection was idle."""
        if self._pos < len(self._buf):
            return True
        import select

        try:
            poller = select.poll()  # not select(): a descriptor above 1023 is fine
            poller.register(self.sock, select.POLLIN | select.POLLPRI)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _number(text: bytes) -> int:
    """An integer reply or a length: exactly ``-?[0-9]{1,19}`` (``int()`` alone would also
    take spaces, ``+`` and underscores)."""
    digits = text[1:] if text[:1] == b"-" else text
    if not 0 < len(digits) <= 19 or not digits.isdigit():  # bytes.isdigit: ASCII only
        raise ConnectionError(f"Protocol error: not a number {text[:40]!r}")
    return int(text)


_TLS_CONTEXTS: dict[Any, Any] = {}


def _tls_context(cafile: str | None) -> Any:
    """redis-py's defaults for what the store passes: certificates required and the host
    name checked, against ``ssl_ca_certs`` or else the system's default verify paths. Built
    before connecting: a CA file that is missing or holds no certificate is named.

    Built once per CA file as it is (path, inode, size, mtime): the store's opening checks
    the file with this context and every connection then reuses it (parsing a 220 KB bundle
    takes ~18 ms); a replaced or rewritten file is parsed again."""
    import ssl

    try:
        key: Any = None
        if cafile:
            st = os.stat(cafile)
            key = (cafile, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        context = _TLS_CONTEXTS.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=cafile or None)
            _TLS_CONTEXTS.clear()  # one store per process: keep only the newest
            _TLS_CONTEXTS[key] = context
        return context
    except OSError as exc:  # also ssl.SSLError
        raise ConnectionError(f"cannot use the TLS CA file {cafile}: {_oserror(exc)}") from None


def _resolve(host: str, port: int, deadline: float | None) -> list[Any]:
    """``getaddrinfo`` within the connect deadline. A literal address needs no lookup; a
    name is looked up in a daemon thread joined with the time left (the C resolver has no
    timeout of ours: a hung DNS server would hold the call for its own 5 s x attempts)."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    if deadline is None:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    out: dict[str, Any] = {}

    def lookup() -> None:
        try:
            out["addresses"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    thread = threading.Thread(target=lookup, name="reliactl-resolve", daemon=True)
    thread.start()
    thread.join(Connection._remaining(deadline))
    if thread.is_alive():
        raise TimeoutError(f"Timeout resolving {host}")
    if "error" in out:
        raise out["error"]
    addresses: list[Any] = out["addresses"]
    return addresses


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _raise(reply: Any) -> Any:
    if isinstance(reply, RedisError):
        raise reply
    return reply


# --------------------------------------------------------------------------- pool


class ConnectionPool:
    """Idle connections for one client; the child of a fork starts with none."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def get(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                for conn in self._idle:
                    conn.close()  # closes this process's copy only (no shutdown)
                self._idle = []
                self._pid = os.getpid()
            while self._idle:
                conn = self._idle.pop()
                if conn.readable():  # closed by the server (restart, timeout) or stray data
                    conn.close()
                    continue
                return conn
        return Connection(self.params)

    def release(self, conn: Connection) -> None:
        if conn.broken or conn.pending or conn.pid != os.getpid():
            conn.close()
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE and self._pid == conn.pid:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# --------------------------------------------------------------------------- replies


def _ok(reply: Any) -> bool | None:
    return True if reply == b"OK" else None


def _pairs(reply: Any) -> dict[Any, Any]:
    items = list(reply or [])
    return dict(zip(items[::2], items[1::2], strict=False))


def _stream(reply: Any) -> list[tuple[Any, Any]] | None:
    if reply is None:
        return None
    return [(r[0], _pairs(r[1])) if r is not None else (None, None) for r in reply]


def _info_value(value: str) -> Any:
    if "," not in value and "=" not in value:
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    if "=" not in value:
        return [_info_value(v) for v in value.split(",") if v]
    sub: dict[str, Any] = {}
    for item in value.split(","):
        if not item:
            continue
        if "=" in item:
            k, v = item.rsplit("=", 1)
            sub[k] = _info_value(v)
        else:
            sub[item] = True
    return sub


def parse_info(reply: Any) -> dict[str, Any]:
    """INFO's text as redis-py's dict (numbers converted, ``a=1,b=2`` values as dicts)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    info: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            if key == "cmdstat_host":
                key, value = line.rsplit(":", 1)
            if key == "module":
                info.setdefault("modules", []).append(_info_value(value))
            else:
                info[key] = _info_value(value)
        else:
            info.setdefault("__raw__", []).append(line)
    return info


def _config(reply: Any) -> dict[Any, Any]:
    items = [i.decode("utf-8", "replace") if isinstance(i, bytes) else i for i in reply or []]
    return _pairs(items) if items else {}


# --------------------------------------------------------------------------- commands


class Commands:
    """The commands the store uses, built on ``execute_command`` (a client or a pipeline)."""

    def execute_command(self, *args: Any, parse: Any = None) -> Any:
        raise NotImplementedError

    def ping(self) -> Any:
        return self.execute_command("PING", parse=lambda r: r == b"PONG")

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVAL: the script's text every time, so always one round trip (a Script's EVALSHA
        takes two after a SCRIPT FLUSH or a restart: NOSCRIPT, then EVAL)."""
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def get(self, name: Any) -> Any:
        return self.execute_command("GET", name)

    def set(self, name: Any, value: Any, *, nx: bool = False, px: int | None = None) -> Any:
        args: list[Any] = ["SET", name, value]
        if px is not None:
            args += ["PX", px]
        if nx:
            args.append("NX")
        return self.execute_command(*args, parse=_ok)

    def delete(self, *names: Any) -> Any:
        return self.execute_command("DEL", *names)

    def exists(self, *names: Any) -> Any:
        return self.execute_command("EXISTS", *names)

    def mget(self, keys: Sequence[Any]) -> Any:
        return self.execute_command("MGET", *keys)

    def xadd(
        self, name: Any, fields: Mapping[Any, Any], *, maxlen: int | None = None,
        approximate: bool = True,
    ) -> Any:  # fmt: skip
        args: list[Any] = ["XADD", name]
        if maxlen is not None:
            args += ["MAXLEN", "~", maxlen] if approximate else ["MAXLEN", maxlen]
        args.append("*")
        for pair in fields.items():
            args.extend(pair)
        return self.execute_command(*args)

    def xrange(self, name: Any, min: Any = "-", max: Any = "+", count: int | None = None) -> Any:
        args: list[Any] = ["XRANGE", name, min, max]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args, parse=_stream)

    def xrevrange(
        self,
        name: Any,
        max: Any = "+",
        min: Any = "-",
        count: int | None = None,
    ) -> Any:
        args: list[Any] = ["XREVRANGE", name, max, min]
        if count is not None:
            args += ["COUNT", count]
        return self.execute_command(*args, parse=_stream)

    def xdel(self, name: Any, *ids: Any) -> Any:
        return self.execute_command("XDEL", name, *ids)

    def xtrim(self, name: Any, maxlen: int, approximate: bool = True) -> Any:
        args: list[Any] = ["XTRIM", name, "MAXLEN"]
        if approximate:
            args.append("~")
        return self.execute_command(*args, maxlen)

    def xlen(self, name: Any) -> Any:
        return self.execute_command("XLEN", name)

    def zadd(self, name: Any, mapping: Mapping[Any, Any]) -> Any:
        args: list[Any] = ["ZADD", name]
        for member, score in mapping.items():
            args += [score, member]
        return self.execute_command(*args)

    def zcard(self, name: Any) -> Any:
        return self.execute_command("ZCARD", name)

    def zrange(self, name: Any, start: int, end: int) -> Any:
        return self.execute_command("ZRANGE", name, start, end)

    def zrevrange(self, name: Any, start: int, end: int) -> Any:
        return self.execute_command("ZREVRANGE", name, start, end)

    def zrangebyscore(self, name: Any, min: Any, max: Any) -> Any:
        return self.execute_command("ZRANGEBYSCORE", name, min, max)

    def zremrangebyscore(self, name: Any, min: Any, max: Any) -> Any:
        return self.execute_command("ZREMRANGEBYSCORE", name, min, max)

    def zrem(self, name: Any, *values: Any) -> Any:
        return self.execute_command("ZREM", name, *values)

    def hdel(self, name: Any, *keys: Any) -> Any:
        return self.execute_command("HDEL", name, *keys)

    def hmget(self, name: Any, keys: Sequence[Any]) -> Any:
        return self.execute_command("HMGET", name, *keys)

    def rpush(self, name: Any, *values: Any) -> Any:
        return self.execute_command("RPUSH", name, *values)

    def lrange(self, name: Any, start: int, end: int) -> Any:
        return self.execute_command("LRANGE", name, start, end)

    def lrem(self, name: Any, count: int, value: Any) -> Any:
        return self.execute_command("LREM", name, count, value)

    def sadd(self, name: Any, *values: Any) -> Any:
        return self.execute_command("SADD", name, *values)

    def srem(self, name: Any, *values: Any) -> Any:
        return self.execute_command("SREM", name, *values)

    def smembers(self, name: Any) -> Any:
        return self.execute_command("SMEMBERS", name, parse=lambda r: set(r or []))

    def info(self, section: str | None = None) -> Any:
        args = ["INFO"] if section is None else ["INFO", section]
        return self.execute_command(*args, parse=parse_info)

    def config_get(self, pattern: str = "*") -> Any:
        return self.execute_command("CONFIG", "GET", pattern, parse=_config)


class Redis(Commands):
    """The client: redis-py's keyword names for what the store passes (see the module doc)."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        unix_socket_path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        socket_timeout: float | None = None,
        socket_connect_timeout: float | None = None,
        client_name: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
    ) -> None:
        self.connection_pool = ConnectionPool(
            {
                "host": host,
                "port": port,
                "unix_socket_path": unix_socket_path,
                "db": db,
                "username": username,
                "password": password,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_connect_timeout,
                "client_name": client_name,
                "ssl": ssl,
                "ssl_ca_certs": ssl_ca_certs,
            }
        )

    def execute_command(self, *args: Any, parse: Any = None) -> Any:
        pool = self.connection_pool
        conn = pool.get()
        try:
            deadline = conn.deadline()
            conn.send([args], deadline)
            reply = _raise(conn.read(deadline))
        finally:
            pool.release(conn)
        return parse(reply) if parse is not None else reply

    def scan_iter(self, match: Any = None, count: int | None = None) -> Iterator[Any]:
        cursor: Any = b"0"
        while True:
            args: list[Any] = ["SCAN", cursor]
            if match is not None:
                args += ["MATCH", match]
            if count is not None:
                args += ["COUNT", count]
            cursor, keys = self.execute_command(*args)
            yield from keys
            if cursor == b"0":
                return

    def hscan_iter(self, name: Any, match: Any = None, count: int | None = None) -> Iterator[Any]:
        cursor: Any = b"0"
        while True:
            args: list[Any] = ["HSCAN", name, cursor]
            if match is not None:
                args += ["MATCH", match]
            if count is not None:
                args += ["COUNT", count]
            cursor, flat = self.execute_command(*args)
            yield from zip(flat[::2], flat[1::2], strict=False)
            if cursor == b"0":
                return

    def register_script(self, script: str) -> Script:
        return Script(self, script)

    def pipeline(self, transaction: bool = True) -> Pipeline:
        return Pipeline(self.connection_pool, transaction)

    def close(self) -> None:
        self.connection_pool.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sha1_hex(data: bytes) -> str:
    """SHA-1 (what EVALSHA names a script by) from CPython's built-in ``_sha1`` when it has
    one: ``hashlib`` loads OpenSSL's ``_hashlib`` first (~3.5 ms of a Redis start)."""
    try:
        from _sha1 import sha1  # type: ignore[import-not-found]
    except ImportError:  # an interpreter without it
        import hashlib

        return hashlib.sha1(data, usedforsecurity=False).hexdigest()
    return str(sha1(data).hexdigest())


class Script:
    """A Lua script run by EVALSHA; when the server says NOSCRIPT (a restart, SCRIPT FLUSH),
    by EVAL with its text, which also caches it for the next EVALSHA: one more round trip,
    where redis-py's SCRIPT LOAD then EVALSHA makes two."""

    def __init__(self, client: Redis, script: str) -> None:
        self.client = client
        self.script = script
        self.sha = _sha1_hex(script.encode("utf-8"))

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return self.client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:  # EVALSHA ran nothing: running the text is safe
            return self.client.execute_command("EVAL", self.script, len(keys), *keys, *args)


class Pipeline(Commands):
    """redis-py's pipeline as the store uses it: ``watch`` runs commands at once on the held
    connection until ``multi``; ``execute`` sends the queue (in MULTI/EXEC when
    ``transaction``) in one write; a nil EXEC is a WatchError. Resets itself after execute."""

    def __init__(self, pool: ConnectionPool, transaction: bool) -> None:
        self._pool = pool
        self.transaction = transaction
        self._conn: Connection | None = None
        self._queue: list[tuple[tuple[Any, ...], Any]] = []
        self.watching = False
        self.explicit_transaction = False

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def __len__(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        conn, self._conn = self._conn, None
        self._queue = []
        self.explicit_transaction = False
        if conn is not None:
            if self.watching and not conn.broken and not conn.pending:
                try:
                    deadline = conn.deadline()
                    conn.send([("UNWATCH",)], deadline)
                    _raise(conn.read(deadline))
                except RedisError:
                    conn.broken = True
                    conn.close()
            self._pool.release(conn)
        self.watching = False

    def _immediate(self, args: tuple[Any, ...], parse: Any) -> Any:
        if self._conn is None:
            self._conn = self._pool.get()
        conn = self._conn
        try:
            deadline = conn.deadline()
            conn.send([args], deadline)
            reply = _raise(conn.read(deadline))
        except (ConnectionError, TimeoutError):
            self._conn = None
            self.watching = False
            self._pool.release(conn)
            raise
        return parse(reply) if parse is not None else reply

    def execute_command(self, *args: Any, parse: Any = None) -> Any:
        if (self.watching or args[0] == "WATCH") and not self.explicit_transaction:
            return self._immediate(args, parse)
        self._queue.append((args, parse))
        return self

    def watch(self, *names: Any) -> Any:
        if self.explicit_transaction:
            raise RedisError("Cannot issue a WATCH after a MULTI")
        result = self.execute_command("WATCH", *names, parse=_ok)
        self.watching = True
        return result

    def unwatch(self) -> Any:
        result = self.execute_command("UNWATCH", parse=_ok) if self.watching else True
        self.watching = False
        return result

    def multi(self) -> None:
        if self.explicit_transaction:
            raise RedisError("Cannot issue nested calls to MULTI")
        if self._queue:
            raise RedisError("Commands without an initial WATCH have already been issued")
        self.explicit_transaction = True

    def execute(self) -> list[Any]:
        queue = self._queue
        if not queue and not self.watching:
            return []
        conn = self._conn or self._pool.get()
        self._conn = conn
        try:
            if self.transaction or self.explicit_transaction:
                done: list[Any] = self._transaction(conn, queue)
                return done
            deadline = conn.deadline()
            conn.send([args for args, _parse in queue], deadline)
            replies = [conn.read(deadline) for _ in queue]
            for reply in replies:
                _raise(reply)
            return [p(r) if p is not None else r for (_a, p), r in zip(queue, replies, strict=True)]
        finally:
            self.reset()

    def _transaction(self, conn: Connection, queue: list[tuple[tuple[Any, ...], Any]]) -> Any:
        deadline = conn.deadline()
        conn.send([("MULTI",), *(args for args, _parse in queue), ("EXEC",)], deadline)
        errors: list[RedisError] = []
        for reply in [conn.read(deadline) for _ in range(len(queue) + 1)]:
            if isinstance(reply, RedisError):
                errors.append(reply)
        replies = conn.read(deadline)
        self.watching = False  # EXEC (or its failure) ended the WATCH
        if isinstance(replies, ExecAbortError) and errors:
            raise errors[0]
        _raise(replies)
        if replies is None:
            raise WatchError("Watched variable changed.")
        if len(replies) != len(queue):
            conn.broken = True
            raise ResponseError("Wrong number of response items from pipeline execution")
        for reply in replies:
            _raise(reply)
        return [p(r) if p is not None else r for (_a, p), r in zip(queue, replies, strict=True)]
