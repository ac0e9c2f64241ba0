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
lock held for ever. So while the runner supervises a job it installs a *waiter* for its
thread (``waiting``). Then a write does not block in the kernel: a pipe, FIFO or terminal is
written through a private non-blocking open file of its own (``/proc/self/fd/N``; the
shared one keeps its flags, others use it too), as much as it takes; a socket, or a pipe or
terminal that cannot be reopened (another user's; a pseudo-terminal's master side, which
would open a new terminal), a piece at a time once ``poll`` says it has room (``PIPE_BUF``
for a pipe or socket; 256 bytes for a terminal, whose ``poll`` promises less: the one case
left that can still block, a terminal that is another user's and paused, in cooked mode); a
non-blocking descriptor as much as it takes. When the descriptor has
no room the waiter is called instead: it goes on supervising and returns True once the
descriptor may take more, or False to give up. A line written *while* the waiter runs (an
event of the supervision) is written at once if it fits whole, else kept and written after
the write that waits; it never waits itself, nor gives anything up.

Given up, the file is *abandoned* (``Stalled`` is raised) until ``forget`` (the start of the
next run): every later write to it, from any stream sharing it (``2>&1``) and after the
supervision too, writes only what fits at once and raises ``Stalled``, so its caller drops
that stream with its note and nothing reliactl writes waits on that reader again. Without a
waiter and with nothing abandoned, a write waits with no time limit, as a blocking
descriptor does (the library's sinks, and ``write_all`` outside a run).
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import fcntl
import os
import select
import stat
from collections.abc import Callable, Iterator

# The waiter of the supervision in progress and the thread it belongs to (``waiting``).
_waiter: Callable[[int], bool] | None = None
_waiter_thread: int | None = None
_waited = False  # a write is waiting (calling the waiter): another write is a nested one
# Nested writes that did not fit at once, in order: (fd, its file, data).
_pending: list[tuple[int, tuple[int, int] | None, bytes]] = []
# Files whose reader took nothing until a waiter gave up: (st_dev, st_ino).
_abandoned: set[tuple[int, int]] = set()
# The private non-blocking open files of the supervision in progress: fd -> (file, private fd).
_private: dict[int, tuple[tuple[int, int], int]] = {}
TTY_PIECE = 256  # a terminal's poll says "room" with less than PIPE_BUF of it
# A full descriptor is first waited for this long (ms) before the waiter is called: a reader
# that keeps up makes room within it, and the supervision's own wait costs far more per call.
QUICK_MS = 10


class Stalled(OSError):
    """The descriptor's reader took nothing until the job was stopped: the rest is dropped."""

    def __init__(self) -> None:
        super().__init__(errno.EAGAIN, "its reader took nothing until the job was stopped")


@contextlib.contextmanager
def waiting(waiter: Callable[[int], bool]) -> Iterator[None]:
    """While the block runs, a write from this thread that would wait calls ``waiter(fd)``
    instead: True means try again (the descriptor has room, or something else happened),
    False means give the file up."""
    global _waiter, _waiter_thread
    before = _waiter, _waiter_thread
    _waiter, _waiter_thread = waiter, _thread.get_ident()
    try:
        yield
    finally:
        _waiter, _waiter_thread = before
        if before[0] is None:
            _close_private()


def forget() -> None:
    """A new run: no file is abandoned (an inode may be a new pipe's)."""
    _abandoned.clear()
    _close_private()


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, through short writes and EAGAIN; raises ``OSError`` as
    ``os.write`` does otherwise (``BrokenPipeError`` for a gone reader), and ``Stalled`` for
    a file given up (see the module's text)."""
    global _waited
    view = memoryview(data)
    if _abandoned and _key(fd) in _abandoned:
        _write_what_fits(fd, view)
        raise Stalled()
    waiter = _waiter if _waiter_thread == _thread.get_ident() else None
    if waiter is None:
        _write_waiting(fd, view)
        return
    if _waited:  # written while another write waits: never wait, never give up
        key = _key(fd)
        if any(kept == key for _, kept, _ in _pending) or not _write_whole_at_once(fd, view):
            _pending.append((fd, key, bytes(view)))  # behind what is kept for that file
        return
    _waited = True
    try:
        _write_supervised(fd, view, waiter)
    finally:
        _waited = False
        _write_pending()


def _key(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _write_supervised(fd: int, view: memoryview, waiter: Callable[[int], bool]) -> None:
    try:
        st = os.fstat(fd)
    except OSError:
        _write_waiting(fd, view)  # the write says why
        return
    key = (st.st_dev, st.st_ino)
    if _no_reader(st, fd):
        _write_waiting(fd, view)  # a disk, /dev/null: no reader to wait for
        return
    target = _nonblocking(fd, st)
    if target is not None:
        _write_waiting(target, view, waiter, key)
    else:
        _write_polled(fd, view, waiter, key, _piece(fd))


def _no_reader(st: os.stat_result, fd: int) -> bool:
    """A regular file, a block device or a character device that is not a terminal."""
    mode = st.st_mode
    return stat.S_ISREG(mode) or stat.S_ISBLK(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd))


def _piece(fd: int) -> int:
    return TTY_PIECE if os.isatty(fd) else select.PIPE_BUF


def _nonblocking(fd: int, st: os.stat_result) -> int | None:
    """A descriptor of ``fd``'s file that never blocks: ``fd`` itself if non-blocking, else
    a private open file of its pipe, FIFO or terminal (kept for the supervision); None for a
    socket, or one not ours to open."""
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
        return fd
    if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        return None
    key = (st.st_dev, st.st_ino)
    known = _private.get(fd)
    if known is not None:
        if known[0] == key:
            return None if known[1] < 0 else known[1]
        _forget_private(fd)
    private = -1
    if not (stat.S_ISCHR(st.st_mode) and _pty_master(st)):
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        # Fails for another user's pipe or terminal, a FIFO without reader (ENXIO):
        # remembered, not tried again at every write.
        with contextlib.suppress(OSError):
            private = os.open(f"/proc/self/fd/{fd}", flags)
    _private[fd] = (key, private)
    return None if private < 0 else private


def _pty_master(st: os.stat_result) -> bool:
    """A pseudo-terminal's master side: reopening /dev/ptmx (5:2) or a BSD-style master
    (major 2) makes a new terminal instead of another open file of this one."""
    return st.st_rdev == os.makedev(5, 2) or os.major(st.st_rdev) == 2


def _forget_private(fd: int) -> None:
    private = _private.pop(fd)[1]
    if private >= 0:
        os.close(private)


def _close_private() -> None:
    while _private:
        _forget_private(next(iter(_private)))


def _write_waiting(
    fd: int,
    view: memoryview,
    waiter: Callable[[int], bool] | None = None,
    key: tuple[int, int] | None = None,
) -> None:
    """As much as ``fd`` takes at a time, through short writes; when it is full (EAGAIN), a
    ``poll`` for room: with no waiter for as long as it takes, else ``QUICK_MS`` and then
    the waiter (its False gives ``key``'s file up)."""
    poller = None
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            if waiter is None:
                poller.poll()  # POLLERR/POLLHUP/POLLNVAL end it too: the next write says why
            elif not poller.poll(QUICK_MS) and not waiter(fd):
                assert key is not None
                _abandoned.add(key)
                raise Stalled() from None


def _write_polled(
    fd: int, view: memoryview, waiter: Callable[[int], bool], key: tuple[int, int], piece: int
) -> None:
    """A blocking descriptor: ``piece`` bytes at a time once poll says there is room."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        if not poller.poll(0) and not poller.poll(QUICK_MS):
            if not waiter(fd):
                _abandoned.add(key)
                raise Stalled()
            continue
        view = view[os.write(fd, view[:piece]) :]


def _write_whole_at_once(fd: int, view: memoryview) -> bool:
    """Write ``view`` now if it fits whole without waiting; False, with nothing written,
    if it does not."""
    try:
        st = os.fstat(fd)
    except OSError:
        return True  # nothing to write to: as a failed write, dropped
    if _no_reader(st, fd):
        _write_waiting(fd, view)
        return True
    target = _nonblocking(fd, st)
    if target is None:
        if len(view) > _piece(fd) or not _room(fd):
            return False
        target = fd
    try:
        written = os.write(target, view)
    except BlockingIOError:
        return False
    except OSError:
        return True  # dropped: the stream's next write says why
    if written < len(view):  # the rest after the waiting write, in order
        _pending.append((fd, (st.st_dev, st.st_ino), bytes(view[written:])))
    return True


def _room(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


def _write_pending() -> None:
    """The lines written while a write waited, in order; a failure shows at that stream's
    next write (a gone reader, a file given up)."""
    while _pending:
        fd, _, data = _pending.pop(0)
        with contextlib.suppress(OSError):
            write_all(fd, data)


def _write_what_fits(fd: int, view: memoryview) -> None:
    """An abandoned file: what it takes at once; the rest is dropped."""
    try:
        target = _nonblocking(fd, os.fstat(fd))
        if target is not None:
            with contextlib.suppress(BlockingIOError):
                while view:
                    view = view[os.write(target, view) :]
            return
        piece = _piece(fd)
        while view and _room(fd):
            view = view[os.write(fd, view[:piece]) :]
    except OSError:
        pass
    finally:
        if _waiter is None:  # after the supervision: nothing keeps them
            _close_private()
