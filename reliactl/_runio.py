"""Writing a job's output to a descriptor whole: the one owner of run's relay write.

A descriptor reliactl inherits may be non-blocking (``O_NONBLOCK`` is a flag of the open
file, shared with whoever set it: a parent that made its end of the pipe non-blocking).
Then a full pipe makes ``write`` return short or fail with EAGAIN instead of waiting, and
Python's buffered streams report neither (``BufferedWriter.write`` returns None; the bytes
are gone). So run's relay writes with ``os.write`` and, when the descriptor cannot take more
yet, waits for it: a slow reader slows the job, as in a shell pipeline, as a blocking
descriptor does. A reader gone or any other failure raises.

Waiting must not stop the supervision, though: run's relay writes from its supervising loop,
and a reader that is alive but takes nothing (a hung logger, ``| (sleep 600)``) would keep
``--timeout``, ``--kill-after``, a lost lock and a forwarded SIGTERM from acting, with the
lock held for ever. So while the runner supervises a job it installs a *waiter*
(``waiting``): then a write never blocks in the kernel (a pipe, FIFO, terminal or socket is
written at most ``PIPE_BUF`` bytes at a time, and only once ``poll`` says it has room; a
non-blocking one as much as it takes), and when the descriptor has no room the waiter is
called instead: it goes on supervising and returns True once the descriptor may take more,
or False to give up (the job was stopped and the reader still took nothing). Then the file is
*abandoned*: ``Stalled`` is raised, and later writes to that file (reliactl's own last lines
on a ``2>&1`` stream) write only what fits at once, so nothing reliactl writes waits on that
reader again while the supervision lasts (afterwards, run writes nothing more to a stream it
gave up). Without a waiter (the library, or outside the supervision) a write waits with no
time limit, as a blocking descriptor does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
from collections.abc import Callable, Iterator

# The waiter of the supervision in progress (``waiting``), None outside it.
_waiter: Callable[[int], bool] | None = None
# Files whose reader took nothing until a waiter gave up: (st_dev, st_ino).
_abandoned: set[tuple[int, int]] = set()


class Stalled(OSError):
    """The descriptor's reader took nothing until the job was stopped: the rest is dropped."""

    def __init__(self) -> None:
        super().__init__(errno.EAGAIN, "its reader took nothing until the job was stopped")


@contextlib.contextmanager
def waiting(waiter: Callable[[int], bool]) -> Iterator[None]:
    """While the block runs, a write that would wait calls ``waiter(fd)`` instead: True means
    try again (the descriptor has room, or something else happened), False means give up."""
    global _waiter
    before, _waiter = _waiter, waiter
    try:
        yield
    finally:
        _waiter = before
        if before is None:  # the supervision is over: an inode may be a new pipe's next time
            _abandoned.clear()


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, through short writes and EAGAIN; raises ``OSError`` as
    ``os.write`` does otherwise (``BrokenPipeError`` for a gone reader), and ``Stalled`` when
    the waiter of the supervision gave up on the descriptor (see the module's text)."""
    waiter = _waiter
    if waiter is None:
        _write_waiting(fd, memoryview(data))
        return
    try:
        st = os.fstat(fd)
    except OSError:
        _write_waiting(fd, memoryview(data))  # the write says why
        return
    key = (st.st_dev, st.st_ino)
    if key in _abandoned:
        _write_what_fits(fd, memoryview(data))
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode):
        _write_waiting(fd, memoryview(data))  # a disk: no reader to wait for
        return
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
        _write_nonblocking(fd, memoryview(data), waiter, key)
    else:
        _write_polled(fd, memoryview(data), waiter, key)


def _write_waiting(fd: int, view: memoryview) -> None:
    """No waiter: short writes and EAGAIN waited through, with no time limit."""
    poller = None
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            poller.poll()  # POLLERR/POLLHUP/POLLNVAL end it too: the next write says why


def _write_nonblocking(
    fd: int, view: memoryview, waiter: Callable[[int], bool], key: tuple[int, int]
) -> None:
    """A non-blocking descriptor never blocks: as much as it takes, the waiter when full."""
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if not waiter(fd):
                _abandoned.add(key)
                raise Stalled() from None


def _write_polled(
    fd: int, view: memoryview, waiter: Callable[[int], bool], key: tuple[int, int]
) -> None:
    """A blocking pipe, FIFO, terminal or socket: PIPE_BUF at a time once poll says there is
    room (a write of at most PIPE_BUF to a pipe with room does not block)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        if not poller.poll(0):
            if not waiter(fd):
                _abandoned.add(key)
                raise Stalled()
            continue
        view = view[os.write(fd, view[: select.PIPE_BUF]) :]


def _write_what_fits(fd: int, view: memoryview) -> None:
    """An abandoned file: what it takes at once; the rest is dropped without a word."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view and poller.poll(0):
        try:
            view = view[os.write(fd, view[: select.PIPE_BUF]) :]
        except BlockingIOError:
            return
