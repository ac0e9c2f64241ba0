"""serve's queued stderr (reliactl/cli/web/stderrlog.py) on real pipes: a reader that stalls
or is gone, lines without end, the note of dropped lines, a write from inside a write."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servehelpers import read_for

from reliactl.cli.web.stderrlog import DRAIN_WAIT, LINE_MAX, QueuedStderr

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


def started(call: Callable[[], Any]) -> Callable[[], tuple[bool, Any]]:
    """``call()`` started in a daemon thread; the returned join waits for it within BOUND
    and gives (finished, its result)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()

    def join() -> tuple[bool, Any]:
        thread.join(BOUND)
        return not thread.is_alive(), result[0] if result else None

    return join


def in_thread(call: Callable[[], Any]) -> tuple[bool, Any]:
    """``call()`` in a daemon thread joined within BOUND: (finished, its result)."""
    return started(call)()


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


def test_a_drain_long_after_one_that_succeeded_waits_again(pipe: tuple[int, int]) -> None:
    """A drain that succeeded (the reader took everything) spends nothing of the stop's
    budget, and time between drains never counts: DRAIN_WAIT + 0.5 s later, with the reader
    a moment behind (the pipe full), a new line and a drain: the drain waits for the reader,
    says True, and the line arrives. Before, the drains shared a wall-clock deadline set by
    the first drain, so the later one returned False at once and the line (serve's error
    line at exit) was lost."""
    read_end, write_end = pipe
    stream = QueuedStderr(None, fd=write_end)
    stream.write("before\n")
    finished, drained = in_thread(lambda: stream.drain(DRAIN_WAIT))
    assert finished and drained
    assert read_for(read_end, lambda d: d == b"before\n") == b"before\n"
    time.sleep(DRAIN_WAIT + 0.5)
    prefilled = fill(write_end)
    stream.write("the error line\n")
    join = started(lambda: stream.drain(DRAIN_WAIT))
    out = read_for(read_end, lambda d: d.endswith(b"the error line\n"))  # the reader reads
    finished, drained = join()
    assert finished and drained is True
    assert out[prefilled:] == b"the error line\n"


def test_after_a_timed_out_drain_a_reader_that_caught_up_is_waited_for(
    pipe: tuple[int, int],
) -> None:
    """A drain runs out of time on a reader that takes nothing (False); the reader then
    catches up (the writer finishes its batch): it is not stalled any more, so after a new
    line (the reader again a moment behind) a drain waits for it and says True, the line
    written. Before, every drain after the first deadline said False at once, although the
    docstring promised that only with nothing written since."""
    read_end, write_end = pipe
    prefilled = fill(write_end)
    stream = QueuedStderr(None, fd=write_end)
    stream.write("queued while stalled\n")
    finished, drained = in_thread(lambda: stream.drain(1.0))
    assert finished and drained is False
    out = read_for(read_end, lambda d: d.endswith(b"queued while stalled\n"))
    assert out[prefilled:] == b"queued while stalled\n"
    prefilled = fill(write_end)
    stream.write("the new line\n")
    join = started(lambda: stream.drain(DRAIN_WAIT))
    out = read_for(read_end, lambda d: d.endswith(b"the new line\n"))
    finished, drained = join()
    assert finished and drained is True
    assert out[prefilled:] == b"the new line\n"


def test_a_stalled_reader_holds_the_drains_of_a_stop_wait_in_all(pipe: tuple[int, int]) -> None:
    """A reader that takes nothing: two drains of DRAIN_WAIT each, the second started 1.5 s
    after the first while that one still waits (the event loop's shutdown and another
    thread), share the budget: both say False and both have returned before the first's
    start + DRAIN_WAIT + 1 s (separate budgets would end the second 1.5 s after the first);
    a third drain, nothing written since, returns at once."""
    _, write_end = pipe
    fill(write_end)
    stream = QueuedStderr(None, fd=write_end)
    stream.write("nobody takes this\n")
    start = time.monotonic()
    first = started(lambda: stream.drain(DRAIN_WAIT))
    time.sleep(1.5)
    second = started(lambda: stream.drain(DRAIN_WAIT))
    assert first() == (True, False)
    assert second() == (True, False)
    assert time.monotonic() - start < DRAIN_WAIT + 1.0
    third_start = time.monotonic()
    assert in_thread(lambda: stream.drain(DRAIN_WAIT)) == (True, False)
    assert time.monotonic() - third_start < 1.0


def test_a_finalizers_text_survives_a_write_that_raised(pipe: tuple[int, int]) -> None:
    """A finalizer writes from inside a write (its text set aside), then the outer write
    raises (a KeyboardInterrupt or MemoryError inside it): the finalizer's line still goes
    out on its own, with no later write or drain to pick it up. Before, the set-aside text
    was taken only when the write ended normally: it stayed behind, the writer not woken."""
    read_end, write_end = pipe
    stream = QueuedStderr(None, fd=write_end)

    class Finalized:
        def __del__(self) -> None:
            stream.write("from a finalizer\n")

    class Interrupted(Exception):
        pass

    held: list[Finalized] = [Finalized()]

    class Raising(str):
        def __radd__(self, other: str) -> str:
            held.clear()  # the finalizer writes here, inside the write
            raise Interrupted

    def write() -> str:
        try:
            stream.write(Raising("the outer line\n"))
        except Interrupted:
            return "raised"
        return "returned"

    assert in_thread(write) == (True, "raised")
    out = read_for(read_end, lambda d: b"from a finalizer\n" in d, bound=10.0)
    assert out == b"from a finalizer\n", out


def test_a_handler_holding_the_stream_writes_to_the_original_after_the_exit(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At exit the queue is drained and ``sys.stderr`` is the original stream again; a log
    handler made while serve ran (uvicorn's) still holds the queued stream, and what it
    writes then goes straight to the original stream, not into a queue whose writer the
    exit is about to freeze (before, those lines were lost)."""
    read_end, write_end = pipe
    original_read, original_write = os.pipe()
    original = open(original_write, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    try:
        stream = QueuedStderr(original, fd=write_end)
        monkeypatch.setattr(sys, "stderr", stream)
        handler = logging.StreamHandler(stream)
        record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "late line", None, None)
        stream.close_at_exit()
        assert sys.stderr is original
        handler.emit(record)
        out = read_for(original_read, lambda d: d.endswith(b"late line\n"), bound=10.0)
        assert out == b"late line\n"
        assert read_for(read_end, lambda d: bool(d), bound=0.5) == b""
    finally:
        original.close()
        os.close(original_read)


def test_the_exit_never_hangs_on_a_lock_a_frozen_writer_holds(tmp_path: Path) -> None:
    """During the interpreter's finalization daemon threads are frozen, perhaps one inside
    the stream's lock (the writer thread is). A Python process whose ``sys.stderr`` is the
    queued stream, with a daemon thread holding its lock from an ``atexit`` hook on, still
    exits: the flush that finalization makes (and its close) return at once instead of
    waiting for the lock. Before, the process hung at exit for good."""
    script = tmp_path / "frozen.py"
    script.write_text(
        textwrap.dedent(
            """
            import atexit, sys, threading, time
            from reliactl.cli.web.stderrlog import QueuedStderr

            stream = QueuedStderr(sys.stderr)
            sys.stderr = stream

            def wedge():
                held = threading.Event()

                def hold():
                    with stream._cond:
                        held.set()
                        time.sleep(3600)

                threading.Thread(target=hold, daemon=True).start()
                held.wait()

            atexit.register(wedge)
            print("exiting", flush=True)
            """
        ),
        encoding="utf-8",
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, timeout=BOUND, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung at exit on the stream's lock")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"exiting\n"
