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
end ``drain(deadline)`` waits at most that long for the queue to be written: a stop never
hangs on a stalled reader. Every writer of serve goes through it: the access log, the
guard's and the rounds' lines, uvicorn's and Python's logging (whose handlers take
``sys.stderr`` when serve builds them, after ``install``) and warnings.
"""

from __future__ import annotations

import collections
import io
import sys
import threading
import time
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
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0  # bytes in _queue
        self._busy = False  # the thread is writing what it took from the queue
        self._partial = ""  # the start of a line not yet ended
        self._full = False  # dropping: the queue was full and has not drained to half yet
        self._unsaid = 0  # dropped lines the next note counts
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
        with self._cond:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            if len(self._partial) > LINE_MAX:  # a line without end: cut, not kept for ever
                lines.append(self._partial)
                self._partial = ""
            for line in lines:
                self._put((line + "\n").encode(self._encoding, self._errors))
        return len(text)

    def flush(self) -> None:
        """Nothing waits here: the lines are written by the thread (``drain`` waits)."""

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
            with self._cond:
                while not self._queue:
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
            with self._cond:
                self._queued -= len(batch)  # counted until written: the batch is held till then
                if self._full and self._queued <= self._limit // 2:
                    self._full = False  # drained again: the note, after the lines kept before
                    self._note()

    def drain(self, wait: float = DRAIN_WAIT) -> bool:
        """Wait at most ``wait`` seconds for every queued line (a line not yet ended and the
        note of lines dropped included) to be written; False if stderr's reader did not
        take them in time."""
        with self._cond:
            if self._partial:
                self._put((self._partial + "\n").encode(self._encoding, self._errors))
                self._partial = ""
            self._note()
            end = time.monotonic() + wait
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def install() -> QueuedStderr:
    """``sys.stderr`` becomes a ``QueuedStderr`` writing to descriptor 2 (what it was is
    flushed first); returns it."""
    original = sys.stderr
    if isinstance(original, QueuedStderr):
        return original
    try:
        original.flush()
    except (AttributeError, OSError, ValueError):
        pass
    queued = QueuedStderr(original)
    sys.stderr = queued
    return queued


def installed() -> QueuedStderr | None:
    """serve's queued stderr, if installed."""
    return sys.stderr if isinstance(sys.stderr, QueuedStderr) else None
