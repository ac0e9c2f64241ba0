"""serve's connection guard: slow and many clients cannot take serve's answers away.

uvicorn gives no deadline for a request head (a client that sends half a request, or
nothing, holds its connection and a descriptor for ever; its keep-alive timeout starts only
after a response) and no bound on open connections (``limit_concurrency`` closes nothing:
it answers 503 to a complete head while the open connections reach the limit, so half-sent
requests keep their descriptors and the probes themselves get the 503). So a local
user holding thousands of half-sent requests ran serve out of descriptors: /livez stopped
answering and asyncio logged the same accept() traceback thousands of times a second.

The defence, as nginx (``client_header_timeout``) and Go's ``http.Server``
(``ReadHeaderTimeout``, ``MaxHeaderBytes``) do it:

* a **head deadline**: a connection must send a complete request head within
  ``head_timeout`` of connecting, and again of its previous answer *written out* (its bytes
  handed to the kernel: a slow reader of a large answer is not cut off mid-body), which also
  bounds an idle keep-alive connection; else it is closed. A head larger than
  ``MAX_HEAD_BYTES`` gets 431 and is closed;
* a **send deadline**, as nginx's ``send_timeout``: while an answer waits in the write
  buffer, a connection that takes none of it for ``head_timeout`` is closed (a client that
  never reads would otherwise hold its descriptor and the answer's memory for ever);
* a **bound on pipelining**: at most ``PIPELINE_MAX`` requests wait behind the one being
  answered (uvicorn queued every head of each chunk it read: a client that pipelined heads
  and read slowly grew serve by GBs), and a connection's ``MAX_REQUESTS``-th request is its
  last (nginx's ``keepalive_requests``);
* a **bound on open connections** (``max_connections``, kept below the descriptor limit):
  when it is reached, a new connection drops the *oldest* connection still waiting for its
  head (an attacker's half-sent request, not a request being answered), else the oldest
  *slow reader* (open longer than ``head_timeout``, an answer waiting for it to read);
  only when every connection is busy otherwise is the new one refused. A probe sends its
  head at once, so it is the newest waiting connection and the last to be dropped: /livez
  keeps answering while an attacker holds every other slot;
* an **answer budget**: an answer larger than ``LARGE_ANSWER`` (1 MiB) is answered 503
  with Retry-After instead when the bytes waiting in the connections' write buffers (each
  pending answer's unsent part, kept until its slow reader takes it) would pass
  ``ANSWER_BUDGET`` (64 MiB): many slow readers of a large /api/history or /metrics held
  their whole answers each, memory growing with the readers (``room_for``, asked by the
  app before an answer starts); the probes' small answers always go;
* **accept errors** (EMFILE and the like), the guard's own closes and uvicorn's warnings
  (a bad request) are logged as one line at most once per ``LOG_INTERVAL``, never a line
  (or a traceback) per attempt.

It hooks uvicorn's httptools protocol (what the serve extra installs) through ``http=``:
``connection_made``, ``data_received``, ``connection_lost`` and the parser callbacks
``on_message_begin``, ``on_url``, ``on_header``, ``on_headers_complete`` and
``on_response_complete``, and the transport's flow control (``pause_writing``,
``resume_writing``), the same in every uvicorn from 0.29 (the lowest allowed) to 0.54;
tests/serve/test_guard.py drives a real serve through each path.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import resource
import socket
import struct
import sys
import termios
import time
from collections import OrderedDict
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reliactl.cli.web.stderrlog import installed

DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_HEAD_TIMEOUT = 10.0  # seconds; nginx's client_header_timeout is 60 s, a probe needs ms
MAX_HEAD_BYTES = 64 * 1024  # Go allows 1 MiB, nginx 4 x 8 KiB; serve's heads are < 1 KiB
# Pipelined requests: at most PIPELINE_MAX wait behind the one being answered (uvicorn
# parses every head of each chunk it reads and queues them all), the bytes past them are
# kept unparsed and the connection is not read meanwhile; the bytes received are parsed
# FEED_BYTES at a time, so a few dozen tiny heads more may be parsed before the stop.
PIPELINE_MAX = 16
FEED_BYTES = 2048
# Requests per connection, as nginx's keepalive_requests: the last answer says
# "connection: close" and the connection closes once it is written out.
MAX_REQUESTS = 1000
# Answers waiting for their readers: an answer larger than LARGE_ANSWER is refused (503,
# Retry-After) when it would take the bytes waiting in the connections' write buffers (the
# unsent part of each pending answer, kept in memory until its client reads it) past
# ANSWER_BUDGET; smaller answers (the probes) always go.
ANSWER_BUDGET = 64 * 1024 * 1024
LARGE_ANSWER = 1024 * 1024
ANSWER_RETRY = 5  # seconds: the refusal's Retry-After
LOG_INTERVAL = 60.0  # at most one line per kind of trouble per minute
BACKLOG = 128  # the listen queue, and so the most connections accepted in one loop turn
RESERVE = 64  # descriptors kept for the store, threads and the checks' subprocesses


def connection_bound(wanted: int, soft_limit: int | None = None) -> int:
    """``wanted`` connections, lowered so that they, one turn's accepted backlog and the
    reserve fit under the soft descriptor limit (RLIMIT_NOFILE), but not below 8 for that
    reason; never above ``wanted`` (a bound of 4 asked is 4)."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return wanted
    return min(wanted, max(8, soft_limit - BACKLOG - RESERVE))


class Guard:
    """The connections of one serve: who waits for a head since when, the bound, the log."""

    def __init__(self, max_connections: int, head_timeout: float) -> None:
        """``max_connections`` as asked: lowered by ``connection_bound``."""
        self.max_connections = connection_bound(max_connections)
        self.head_timeout = head_timeout
        self.open: set[GuardedProtocol] = set()
        # The connections waiting for a head, oldest first (insertion = start of the wait).
        self.waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()
        # Closes by reason (/metrics: reliactl_serve_connections_closed_total{reason}).
        self.counts = {
            "timed_out": 0,
            "too_large": 0,
            "dropped": 0,
            "reader": 0,
            "refused": 0,
            "stalled": 0,
        }
        self.answers_refused = 0  # large answers refused at ANSWER_BUDGET (/metrics)
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def buffered(self) -> int:
        """Bytes of answers written to the connections and not yet handed to the kernel:
        what pending answers keep in memory (any thread: a snapshot of the connections)."""
        return sum(conn.unsent() for conn in list(self.open))

    def room_for(self, size: int) -> bool:
        """An answer of ``size`` bytes may be sent now: it is at most LARGE_ANSWER, or it
        keeps the bytes waiting in write buffers within ANSWER_BUDGET, or nothing waits (an
        answer larger than the budget itself goes when it is the only one). Else it is
        counted and logged (once per LOG_INTERVAL), and the caller answers 503 instead."""
        if size <= LARGE_ANSWER:
            return True
        waiting = self.buffered()
        if waiting == 0 or waiting + size <= ANSWER_BUDGET:
            return True
        self.answers_refused += 1
        self.answers_line()
        return False

    def answers_line(self) -> None:
        self.log(
            "answers",
            f"refused {self.answers_refused} answers over {LARGE_ANSWER // 1024 // 1024} MiB"
            f" (503, Retry-After): the answers waiting for their readers would have held"
            f" more than {ANSWER_BUDGET // 1024 // 1024} MiB, since serve started",
            say_skipped=False,  # the total says it
        )

    def log(self, kind: str, line: str, *, say_skipped: bool = True) -> None:
        """``line`` on stderr unless a line of ``kind`` went out less than LOG_INTERVAL ago
        (those are counted and, with ``say_skipped``, the count said on the next line of
        that kind)."""
        now = time.monotonic()
        last = self._logged.get(kind)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        self._logged[kind] = now
        skipped = self._unlogged.pop(kind, 0)
        if skipped and say_skipped:
            line += f" ({skipped} more since the last such line)"
        try:
            print(f"reliactl serve: {line}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def flush(self) -> None:
        """At the end: the totals, if closes happened since the last line said them."""
        if self._unlogged.get("guard"):
            self._logged.pop("guard", None)
            self.closed_line()
        if self._unlogged.get("answers"):
            self._logged.pop("answers", None)
            self.answers_line()

    def closed(self, kind: str) -> None:
        self.counts[kind] += 1
        self.closed_line()

    def closed_line(self) -> None:
        c = self.counts
        self.log(
            "guard",
            f"closed slow or surplus connections: {c['timed_out']} sent no complete request"
            f" head within {self.head_timeout:g}s, {c['too_large']} sent a head over"
            f" {MAX_HEAD_BYTES // 1024} KiB, {c['stalled']} read none of their answer for"
            f" {self.head_timeout:g}s, {c['dropped']} dropped (oldest waiting first),"
            f" {c['reader']} slow readers dropped (oldest first)"
            f" and {c['refused']} refused at the bound of {self.max_connections} open"
            " connections, since serve started",
            say_skipped=False,  # the totals say it
        )

    def admit(self, conn: GuardedProtocol) -> bool:
        """Room for ``conn``: drop the oldest connection waiting for a head when the bound is
        reached, else the oldest slow reader; False (refuse ``conn``) when every open
        connection is busy answering and none is a slow reader."""
        while len(self.open) >= self.max_connections:
            if self.waiting:
                next(iter(self.waiting)).drop()
                self.closed("dropped")
                continue
            reader = self.slow_reader()
            if reader is None:
                self.closed("refused")
                return False
            reader.drop()
            self.closed("reader")
        self.open.add(conn)
        return True

    def slow_reader(self) -> GuardedProtocol | None:
        """The oldest connection open longer than ``head_timeout`` whose answer waits for
        the client to read it (its send deadline runs): a steady reader of little at a
        time keeps its connection for as long as its answers last, so at the bound it
        gives way to a new connection (a probe) rather than have that refused."""
        old = time.monotonic() - self.head_timeout
        readers = [conn for conn in self.open if conn.sending() and conn.opened < old]
        return min(readers, key=lambda conn: conn.opened, default=None)

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: accept() failures (out of descriptors or memory,
        which asyncio reports once per pending connection, each with a traceback) become one
        line per LOG_INTERVAL; anything else goes to asyncio's default handler."""
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            why = getattr(exc, "strerror", None) or str(exc)
            self.log(
                "accept",
                f"cannot accept connections: {why} ({len(self.open)} open, the bound is"
                f" {self.max_connections}); retrying",
            )
            return
        loop.default_exception_handler(context)


HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


async def _head_too_large(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app that answers a complete head over MAX_HEAD_BYTES, instead of serve's."""
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class OncePerInterval(logging.Filter):
    """uvicorn's own log lines (``Invalid HTTP request received.``, one per bad request that
    anyone can send) at most once per message per LOG_INTERVAL, the next one saying how many
    were left out."""

    def __init__(self) -> None:
        super().__init__()
        self._logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_INTERVAL:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return False
        self._logged[key] = now
        skipped = self._unlogged.pop(key, 0)
        if skipped:
            record.msg = f"{record.msg} ({skipped} more since the last such line)"
        return True


class CountingTransport:
    """The connection's transport, counting the bytes written to it: the send deadline
    measures what the client took (written minus still queued), which a newly written
    answer does not change, where the bytes queued jump up with each pipelined answer."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a Guard (set on the subclass by ``protocol_class``)."""

    guard: Guard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        # The send deadline: its timer, and the bytes the client had taken when it was set.
        self._send_deadline: asyncio.TimerHandle | None = None
        self._counted: CountingTransport | None = None
        self._taken = 0
        self._flushing = False  # an answer is complete and waits in the write buffer
        self._unparsed = bytearray()  # received, held back while the pipeline is full
        self.opened = time.monotonic()
        self._requests = 0  # complete heads on this connection

    # The wait for a head: from connecting, and from each answer written out, to the next
    # complete head.
    def _start_wait(self) -> None:
        self._stop_wait()
        self.guard.waiting[self] = None
        self._deadline = self.loop.call_later(self.guard.head_timeout, self._head_late)

    def _stop_wait(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_late(self) -> None:
        self._deadline = None
        if self in self.guard.waiting:
            self.guard.closed("timed_out")
            self.drop()

    def drop(self) -> None:
        """Close now, whatever is buffered (the client sent no complete request, or reads
        none of its answer)."""
        self._stop_wait()
        self._stop_send_watch()
        self.guard.open.discard(self)
        if self.transport is not None:
            self.transport.abort()  # also when closing: close() waits for the buffer

    # The send deadline: while the write buffer holds an answer, each head_timeout the client
    # must have taken more of what was written (nginx's send_timeout, between two
    # successful writes, not for the whole answer: a slow but steady reader gets any size,
    # though at the bound of connections it gives way to a new one: Guard.slow_reader).
    def _taken_now(self) -> int:
        """The bytes written to the connection that the client took so far: written minus
        still queued (a pipelined answer written meanwhile adds to both)."""
        written = self._counted.written if self._counted is not None else 0
        return written - self._queued()

    def _queued(self) -> int:
        """The answer's bytes not yet taken by the client: the transport's write buffer and
        the socket's send queue (the kernel's share, often MBs: a slow reader empties that
        long before the buffer moves; 0 where the platform does not say, as on non-Linux)."""
        queued = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
                queued += struct.unpack("i", raw)[0]
            except (OSError, ValueError):
                pass
        return queued

    def _watch_send(self) -> None:
        if self._send_deadline is None:
            self._taken = self._taken_now()
            self._send_deadline = self.loop.call_later(self.guard.head_timeout, self._send_check)

    def unsent(self) -> int:
        """The bytes waiting in this connection's write buffer (0 once it is closed)."""
        transport = self.transport
        return 0 if transport is None else int(transport.get_write_buffer_size())

    def sending(self) -> bool:
        """An answer waits for the client to take it (the send deadline runs)."""
        return self._send_deadline is not None

    def _stop_send_watch(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_check(self) -> None:
        self._send_deadline = None
        if self.transport.get_write_buffer_size() == 0:
            return  # written out: resume_writing went on (or a close finished)
        if self._taken_now() > self._taken:
            self._watch_send()  # progress: another period
            return
        self.guard.closed("stalled")
        self.drop()

    def _answered(self) -> None:
        """An answer is complete: the wait for the next head starts once it is written out
        (at once when it already is); until then the send deadline runs."""
        unsent = self.transport.get_write_buffer_size()
        if unsent == 0:
            self._flushing = False
            self._stop_send_watch()
            if not self.transport.is_closing():
                self._start_wait()
            return
        self._flushing = True
        self._watch_send()
        # Told (resume_writing) when the buffer is empty, not only below the low-water mark.
        self.transport.set_write_buffer_limits(high=0, low=0)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_send()  # an answer (or a pipelined one) the client does not read yet

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.transport.get_write_buffer_size() == 0:
            self._stop_send_watch()
        if self._flushing and self.transport.get_write_buffer_size() == 0:
            self._flushing = False
            self.transport.set_write_buffer_limits()  # asyncio's defaults again
            if self.cycle is None or self.cycle.response_complete:  # nothing in flight
                self._answered()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._counted = CountingTransport(transport)
        super().connection_made(cast(asyncio.Transport, self._counted))
        if not self.guard.admit(self):
            transport.abort()
            return
        self._start_wait()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_wait()
        self._stop_send_watch()
        self.guard.open.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unparsed += data
        self._parse()

    def _full(self) -> bool:
        """No more heads are parsed for now: PIPELINE_MAX wait, or MAX_REQUESTS came."""
        return len(self.pipeline) >= PIPELINE_MAX or self._requests >= MAX_REQUESTS

    def _parse(self) -> None:
        """The bytes received, parsed FEED_BYTES at a time until the pipeline is full; the
        rest waits, unread, for its answers to be written (on_response_complete)."""
        while self._unparsed and not self._full():
            piece = bytes(self._unparsed[:FEED_BYTES])
            del self._unparsed[:FEED_BYTES]
            super().data_received(piece)
            if self._head_bytes > MAX_HEAD_BYTES and self in self.guard.waiting:
                self.guard.closed("too_large")  # and still coming: do not wait for its end
                self._stop_wait()
                if not self.transport.is_closing():
                    self.transport.write(HEAD_TOO_LARGE)
                    self.transport.close()
            if self.transport.is_closing():
                self._unparsed.clear()
                return
        if self._unparsed:
            self.flow.pause_reading()  # on_response_complete parses on (uvicorn resumes)
        if self._requests >= MAX_REQUESTS:
            self._unparsed.clear()  # never answered: the connection closes after the last

    # The head's parts are counted (not the bytes received, which may hold a body too); past
    # MAX_HEAD_BYTES they are no longer kept, and a complete head gets 431 from uvicorn.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes <= MAX_HEAD_BYTES:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes <= MAX_HEAD_BYTES:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_wait()
        self._requests += 1
        if self._head_bytes <= MAX_HEAD_BYTES:
            super().on_headers_complete()
            if self._requests >= MAX_REQUESTS and self.cycle is not None:
                self.cycle.keep_alive = False  # the last: "connection: close", then closed
            return
        self.guard.closed("too_large")
        app, self.app, self.url = self.app, _head_too_large, b"/"
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._unparsed and not self.transport.is_closing():
            self._parse()  # a pipelined request went on: room for the next heads
        if self.cycle is None or self.cycle.response_complete:  # nothing more in flight
            self._answered()  # closing too (connection: close): the send deadline holds


def protocol_class(guard: Guard) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``), bound to ``guard``."""
    return type("GuardedHttpToolsProtocol", (GuardedProtocol,), {"guard": guard})


def guarded_server(app: Any, host: str, port: int, guard: Guard) -> uvicorn.Server:
    """uvicorn's server for ``app`` under ``guard`` (whose exception handler is the loop's)."""

    class GuardedServer(uvicorn.Server):
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().set_exception_handler(guard.exception_handler)
            await super().serve(sockets)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            try:
                await super().shutdown(sockets)
            finally:  # here: serve() ends by re-raising TERM, which kills the process
                guard.flush()
                queued = installed()
                if queued is not None:  # the last lines, unless stderr's reader stalls
                    queued.drain()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(guard),
        ws="none",
        backlog=BACKLOG,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    logging.getLogger("uvicorn.error").addFilter(OncePerInterval())  # after Config's set-up
    return GuardedServer(config)
