"""serve's queued stderr (reliactl/cli/web/stderrlog.py) on real pipes: a reader that stalls
or is gone, lines without end, the note of dropped lines, a write from inside a write."""

from __future__ import annotations

import fcntl
import os
import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reliactl.cli.web.stderrlog import LINE_MAX, QueuedStderr

BOUND = 30.0  # seconds: generous, detects a hang only


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe (read end, write end); both closed at the end if still open."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        try:
            os.close(fd)
        except OSError:
            pass


def fill(fd: int) -> int:
    """The pipe behind ``fd`` filled until it takes no more (its reader stalls); the bytes."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    written = 0
    try:
        while True:
            written += os.write(fd, b"F" * 4096)
    except BlockingIOError:
        pass
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return written


def read_for(fd: int, enough: Callable[[bytes], bool]) -> bytes:
    """What the pipe gives until ``enough`` of it (or its end, or BOUND seconds)."""
    data = b""
    deadline = time.monotonic() + BOUND
    while not enough(data) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            piece = os.read(fd, 1 << 20)
            if not piece:
                break
            data += piece
    return data


def in_thread(call: Callable[[], Any]) -> tuple[bool, Any]:
    """``call()`` in a daemon thread joined within BOUND: (finished, its result)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(BOUND)
    return not thread.is_alive(), result[0] if result else None


def test_a_write_from_inside_a_write_completes(pipe: tuple[int, int]) -> None:
    """An object whose finalizer writes to the stream is released in the middle of a write
    (a str subclass's ``__radd__`` drops the last reference while the write holds the
    stream's lock; a garbage collection run there does the same with a "Task was destroyed
    but it is pending!"): the write and the finalizer's both complete, and both lines come
    out, the outer one first. Before, the finalizer's write waited for the lock its own
    thread held: serve's event loop froze for good."""
    read_end, write_end = pipe
    stream = QueuedStderr(None, fd=write_end)

    class Finalized:
        def __del__(self) -> None:
            stream.write("from a finalizer\n")

    held: list[Finalized] = [Finalized()]

    class Releasing(str):
        def __radd__(self, other: str) -> str:
            held.clear()  # the finalizer runs here, inside the write
            return str(other) + str(self)

    finished, _ = in_thread(lambda: stream.write(Releasing("the outer line\n")))
    assert finished, "a write from inside a write never returned"
    assert not held
    finished, drained = in_thread(lambda: stream.drain(BOUND))
    assert finished and drained
    out = read_for(read_end, lambda d: b"from a finalizer\n" in d)
    assert out == b"the outer line\nfrom a finalizer\n", out


def test_a_drain_with_a_stalled_reader_returns_in_time(pipe: tuple[int, int]) -> None:
    """stderr's reader takes nothing (the pipe is full): a drain waits its time and says
    False, and a later drain of the same stop (serve's shutdown, its ``finally`` and the
    exit each drain) returns at once instead of waiting its own time again, so a stop
    waits at most DRAIN_WAIT in all; once the reader takes the pipe, everything queued
    comes out, in order."""
    read_end, write_end = pipe
    prefilled = fill(write_end)
    stream = QueuedStderr(None, fd=write_end)
    for n in range(100):
        stream.write(f"line {n}\n")
    finished, drained = in_thread(lambda: stream.drain(0.5))
    assert finished and drained is False
    finished, drained = in_thread(lambda: stream.drain(600.0))
    assert finished, "a second drain waited again for a reader that took nothing"
    assert drained is False
    out = read_for(read_end, lambda d: d.endswith(b"line 99\n"))
    assert out[prefilled:] == b"".join(f"line {n}\n".encode() for n in range(100))


def test_a_reader_gone_neither_crashes_nor_spins(pipe: tuple[int, int]) -> None:
    """stderr's reader is gone (EPIPE on every write): writes return, the queue is taken
    (the lines are lost, as print's would be) so a drain says True at once, and the writer
    thread lives on, idle (the queue empty and nothing being written: it waits for lines,
    it does not retry), taking later lines the same way."""
    read_end, write_end = pipe
    os.close(read_end)
    stream = QueuedStderr(None, fd=write_end)
    for n in range(1000):
        stream.write(f"nobody reads line {n}\n")
    finished, drained = in_thread(lambda: stream.drain(BOUND))
    assert finished and drained
    assert stream._thread.is_alive()
    assert not stream._busy and not stream._queue
    stream.write("one more\n")
    finished, drained = in_thread(lambda: stream.drain(BOUND))
    assert finished and drained
    assert stream._thread.is_alive()


def test_a_line_without_end(pipe: tuple[int, int]) -> None:
    """A line not yet ended waits for its end (it is one line with what follows), a flush
    sends it on its way as it is, a drain ends it; a line longer than LINE_MAX without an
    end goes out without waiting for one (it is not kept in memory for ever)."""
    read_end, write_end = pipe
    stream = QueuedStderr(None, fd=write_end)
    stream.write("half ")
    stream.write("and half\n")
    assert read_for(read_end, lambda d: d.endswith(b"\n")) == b"half and half\n"
    stream.write("x" * (LINE_MAX + 1))
    out = read_for(read_end, lambda d: len(d) > LINE_MAX)
    assert out == b"x" * (LINE_MAX + 1) + b"\n"
    stream.write("flushed")
    stream.flush()
    assert read_for(read_end, lambda d: d == b"flushed") == b"flushed"
    stream.write(" then ended\nno end")
    finished, drained = in_thread(lambda: stream.drain(BOUND))
    assert finished and drained
    assert read_for(read_end, lambda d: d.endswith(b"no end\n")) == b" then ended\nno end\n"


def test_the_dropped_lines_note_comes_where_they_were_left_out(pipe: tuple[int, int]) -> None:
    """A queue of 1,000 bytes and a reader that takes nothing: 50 lines of 100 bytes are
    written, the first ones kept, the rest dropped and counted; once the reader takes the
    pipe, the kept lines come out in order, then "reliactl serve: N log lines dropped:
    stderr not read" with N the lines left out, then the lines written after (the queue,
    drained, takes them again)."""
    read_end, write_end = pipe
    prefilled = fill(write_end)
    stream = QueuedStderr(None, fd=write_end, limit=1000)
    for n in range(50):
        stream.write(f"kept {n:02d} ".ljust(99, ".") + "\n")
    assert 0 < stream.dropped < 50
    dropped = stream.dropped
    # The reader takes the pipe: the kept lines, then the note, once the queue drained.
    out = read_for(read_end, lambda d: b"stderr not read\n" in d)
    stream.write("written after\n")
    finished, drained = in_thread(lambda: stream.drain(BOUND))
    assert finished and drained
    out += read_for(read_end, lambda d: d.endswith(b"written after\n"))
    lines = out[prefilled:].decode().splitlines()
    assert stream.dropped == dropped
    kept = 50 - dropped
    assert [line[:7] for line in lines[:kept]] == [f"kept {n:02d}" for n in range(kept)]
    assert re.fullmatch(r"reliactl serve: (\d+) log lines dropped: stderr not read", lines[kept])
    assert lines[kept] == f"reliactl serve: {dropped} log lines dropped: stderr not read"
    assert lines[kept + 1 :] == ["written after"]
