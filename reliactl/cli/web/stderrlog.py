"""serve's stderr: a line written never waits for the reader of stderr.

serve writes a line per request (the access log) and its own notes to stderr; a reader that
stops reading (``2>&1 | (sleep 600)``, a paused ``less``, a stuck journald) fills the pipe
(64 KiB) and a plain ``print`` then blocks the event loop: /healthz and /livez stopped
answering, so a liveness probe depended on a log reader. So once serve starts, ``sys.stderr``
is a ``QueuedStderr``: a write only appends the complete lines to a queue bounded by
``QUEUE_BYTES`` (under a lock no write to the descriptor ever holds) and returns; one daemon
thread writes the queue to descriptor 2 with ``_runio.write_all`` (the one owner of writing
a descriptor whole: short writes, and EAGAIN of a descriptor another process made
non-blocking, waited for with ``poll``), so only that thread waits on a stalled reader. A
line that finds the queue full is dropped and counted (``dropped``, on /metrics as
``reliactl_serve_log_lines_dropped_total``); the queue then takes lines again once it has
drained to half, starting with one line ``reliactl serve: N log lines dropped: stderr not
read``, which is written where the lines were left out (also when no line follows). At the
end ``drain(wait)`` waits at most that long for the queue to be written, the stop's drains
sharing that budget of time spent on a reader that takes nothing: a stop never hangs on a
stalled reader. Every writer of serve goes through it: the access log, the
guard's and the rounds' lines, uvicorn's and Python's logging (whose handlers take
``sys.stderr`` when serve builds them, after ``install``) and warnings.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import io
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from reliactl._runio import write_all

QUEUE_BYTES = 1024 * 1024  # lines waiting for stderr's reader, at most (~10,000 access lines)
LINE_MAX = 64 * 1024  # characters: a longer line not yet ended goes out as it is
DRAIN_WAIT = 2.0  # seconds serve's stop waits for the queue to be written


class QueuedStderr(io.TextIOBase):
    """A text stream whose lines go to ``fd`` through a bounded queue and a writer thread."""

    def __init__(self, original: Any, fd: int = 2, limit: int = QUEUE_BYTES) -> None:
        super().__init__()
        self._original = original
        self._fd = fd
        self._limit = limit
        self._encoding: str = getattr(original, "encoding", None) or "utf-8"
        self._errors: str = getattr(original, "errors", None) or "backslashreplace"
        self._cond = threading.Condition(threading.RLock())
        # A thread inside a section under the lock (its write, the writer's turn, a drain):
        # a write it makes from there (a finalizer run by the garbage collector, a warning)
        # only appends its text to _nested, which the section takes before it ends.
        self._inside: set[int] = set()  # the threads in a section now
        self._nested: collections.deque[str] = collections.deque()
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0  # bytes in _queue
        self._busy = False  # the thread is writing what it took from the queue
        self._partial = ""  # the start of a line not yet ended
        self._full = False  # dropping: the queue was full and has not drained to half yet
        self._unsaid = 0  # dropped lines the next note counts
        # Time the drains spent waiting while the reader took nothing: the budget they share
        # (``wait`` in all), whole again once the reader takes a batch (it is not stalled).
        self._waited = 0.0
        self._batches = 0  # batches the writer finished (written or lost): the reader's progress
        self._stalled = False  # a drain ran out of time and nothing was written since
        self._closed = False  # sys.stderr is the original again: writes go straight to it
        self.dropped = 0  # dropped lines since serve started
        self._thread = threading.Thread(target=self._run, name="reliactl-stderr", daemon=True)
        self._thread.start()

    # ---- the stream's side (any thread; never waits for the descriptor)
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self._errors

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        try:
            return bool(self._original.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def write(self, text: str) -> int:
        if self._closed:  # restored at exit: a handler still holding this stream
            self._original.write(text)
            return len(text)
        if sys.is_finalizing():  # the writer is frozen (maybe inside a section): lost, no hang
            return len(text)
        if threading.get_ident() in self._inside:  # from inside a section: no lock taken
            self._nested.append(text)
            return len(text)
        with self._section():
            if not self._restored():  # (restored while this write waited for the lock)
                self._take(text)
                return len(text)
        self._original.write(text)
        return len(text)

    def flush(self) -> None:
        """What was written goes on its way, a line not yet ended included (as it is); nothing
        waits for the descriptor here (``drain`` does)."""
        if self._closed:
            self._original.flush()
            return
        if sys.is_finalizing():  # the frozen writer may hold the lock for ever
            return
        if threading.get_ident() in self._inside:
            return  # from inside a section (a finalizer's print): its end takes the text
        with self._section():
            if self._partial:
                self._put(self._partial.encode(self._encoding, self._errors))
                self._partial = ""

    def _restored(self) -> bool:
        """``sys.stderr`` is the original again (``close_at_exit``): write straight to it."""
        return self._closed

    @contextlib.contextmanager
    def _section(self) -> Iterator[None]:
        """The lock held; a write from this thread meanwhile is taken at the end."""
        me = threading.get_ident()
        with self._cond:
            if me in self._inside:  # a section within a section (drain from a finalizer)
                yield
                return
            self._inside.add(me)
            try:
                yield
            finally:  # also when the body raised (KeyboardInterrupt inside _take)
                try:
                    while self._nested:
                        self._take(self._nested.popleft())
                finally:
                    self._inside.discard(me)
                    if self._nested:  # taking them raised: the writer takes the rest
                        self._cond.notify_all()

    def _take(self, text: str) -> None:
        """``text``'s complete lines into the queue; its end kept for the next (lock held)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if len(self._partial) > LINE_MAX:  # a line without end: cut, not kept for ever
            lines.append(self._partial)
            self._partial = ""
        for line in lines:
            self._put((line + "\n").encode(self._encoding, self._errors))

    def _put(self, data: bytes) -> None:
        """One line into the queue, or dropped and counted (the lock is held)."""
        if self._full and self._queued <= self._limit // 2:
            self._full = False
        if not self._full and self._queued + len(data) > self._limit:
            self._full = True
        if self._full:
            self.dropped += 1
            self._unsaid += 1
            return
        self._note()
        self._queue.append(data)
        self._queued += len(data)
        self._cond.notify()

    def _note(self) -> None:
        """The count of the lines left out since the last note, where they were left out."""
        if self._unsaid:
            note = f"reliactl serve: {self._unsaid} log lines dropped: stderr not read\n"
            self._unsaid = 0
            self._queue.append(note.encode())
            self._queued += len(note)
            self._cond.notify()

    # ---- the writer thread
    def _run(self) -> None:
        while True:
            with self._section():
                while not self._queue:
                    if self._nested:  # a finalizer's write the section ending took not
                        self._take(self._nested.popleft())
                        continue
                    self._busy = False
                    self._cond.notify_all()  # drain() waits for this
                    self._cond.wait()
                batch = b"".join(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                write_all(self._fd, batch)
            except OSError:
                pass  # the reader is gone or stderr is closed: the lines are lost, as print's
            with self._section():
                self._queued -= len(batch)  # counted until written: the batch is held till then
                if self._full and self._queued <= self._limit // 2:
                    self._full = False  # drained again: the note, after the lines kept before
                    self._note()
                # The reader took the batch: it is not stalled, a drain may wait again.
                self._batches += 1
                self._waited = 0.0
                self._stalled = False
                self._cond.notify_all()  # a drain counts this as progress

    def drain(self, wait: float = DRAIN_WAIT) -> bool:
        """Wait for every queued line (a line not yet ended and the note of lines dropped
        included) to be written; False if stderr's reader did not take them in time. One
        drain waits at most ``wait``; what the drains share is the time they spent waiting
        while the reader took nothing: ``wait`` in all, whole again once the reader takes a
        batch (it is not stalled then), so a stop waits at most ``wait`` for a reader that
        takes nothing however many drains it makes. A drain after one that ran out of time,
        with nothing written since, returns at once; time between drains never counts."""
        with self._section():
            while self._nested:
                self._take(self._nested.popleft())
            if self._partial:
                self._put((self._partial + "\n").encode(self._encoding, self._errors))
                self._partial = ""
            self._note()
            end = time.monotonic() + wait
            while self._queue or self._busy or self._nested:
                if self._nested:
                    self._take(self._nested.popleft())
                    continue
                now = time.monotonic()
                left = min(end - now, wait - self._waited)
                if left <= 0 or self._stalled:
                    self._stalled = True
                    self._cond.notify_all()  # another drain waiting gives up too
                    return False
                batches = self._batches
                self._cond.wait(left)
                if self._batches == batches:  # the reader took nothing meanwhile
                    self._waited += time.monotonic() - now
            return True

    def close_at_exit(self) -> None:
        """At the interpreter's exit (``atexit``, after the last error line was written and
        before the daemon writer is frozen): drain, and if every line went out, ``sys.stderr``
        is the original stream again for what finalization still writes, and so are the
        writes of whoever still holds this stream (uvicorn's log handlers): no line goes into
        a queue nobody drains any more."""
        with self._section():  # no write queued between the drain and the switch
            if self.drain() and sys.stderr is self:
                self._closed = True
                sys.stderr = self._original


def install() -> QueuedStderr:
    """``sys.stderr`` becomes a ``QueuedStderr`` writing to descriptor 2 (what it was is
    flushed first); returns it. At exit its queue is drained (within the stop's budget):
    the error line of a command that failed is written after serve's own drain."""
    original = sys.stderr
    if isinstance(original, QueuedStderr):
        return original
    try:
        original.flush()
    except (AttributeError, OSError, ValueError):
        pass
    queued = QueuedStderr(original)
    sys.stderr = queued
    atexit.register(queued.close_at_exit)
    return queued


def installed() -> QueuedStderr | None:
    """serve's queued stderr, if installed."""
    return sys.stderr if isinstance(sys.stderr, QueuedStderr) else None
