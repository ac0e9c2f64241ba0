"""`_runio.write_all`: run's relay writes whole to a non-blocking descriptor.

On a full non-blocking pipe `write` returns short or fails with EAGAIN; Python's buffered
stdout reported neither and dropped the rest (review of the runfix branch: 3,000,000 bytes
sent through `run --max-output`, 247,488 delivered, exit 0, no note). Real pipes and a real
slow reader here; the end-to-end case is in tests/test_run_pipe.py.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl import _runio
from reliactl._runio import Stalled, forget, waiting, write_all


def test_write_all_waits_for_a_slow_reader_of_a_non_blocking_pipe() -> None:
    """Every byte arrives, in order, although the pipe is full many times over and the
    writer's end is non-blocking (a reader that starts late and reads small pieces)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    data = bytes(range(256)) * 4096  # 1 MiB: sixteen pipe buffers
    got = bytearray()

    def read() -> None:
        time.sleep(0.2)  # the pipe is full before anyone reads
        while chunk := os.read(r, 4096):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        write_all(w, data)
    finally:
        os.close(w)
        reader.join(30)
        os.close(r)
    assert not reader.is_alive()
    assert bytes(got) == data


def test_write_all_raises_broken_pipe_once_the_reader_of_a_full_pipe_is_gone() -> None:
    """A full non-blocking pipe whose reader closes while write_all waits: BrokenPipeError
    (the relay's "reader gone"), never a wait forever."""
    r, w = os.pipe()
    os.set_blocking(w, False)

    def close_reader() -> None:
        time.sleep(0.2)
        os.close(r)

    closer = threading.Thread(target=close_reader)
    closer.start()
    try:
        with pytest.raises(BrokenPipeError):
            write_all(w, b"x" * (1 << 20))
    finally:
        closer.join(30)
        os.close(w)


@pytest.fixture(autouse=True)
def _nothing_abandoned() -> Iterator[None]:
    """Each test starts as a run does: no file given up (an inode may be reused)."""
    forget()
    yield
    forget()


def drain(r: int) -> bytes:
    """Everything the pipe holds now (its writer may still be open)."""
    os.set_blocking(r, False)
    got = bytearray()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(r, 65536):
            got += chunk
    return bytes(got)


@pytest.mark.parametrize("non_blocking", [False, True], ids=["blocking", "non-blocking"])
def test_a_waiter_is_called_instead_of_blocking_and_can_give_up(non_blocking: bool) -> None:
    """Under `waiting`, a full pipe (blocking or not) calls the waiter instead of blocking
    in the kernel; its False raises Stalled, and every later write to that pipe, inside the
    supervision or after it, writes only what fits at once and raises Stalled (never waits,
    never calls the waiter again) until the next run (`forget`)."""
    r, w = os.pipe()
    os.set_blocking(w, not non_blocking)
    calls: list[int] = []

    def give_up(fd: int) -> bool:
        calls.append(fd)
        return False

    try:
        with waiting(give_up):
            with pytest.raises(Stalled):
                write_all(w, b"x" * (1 << 20))
            assert len(calls) == 1
            with pytest.raises(Stalled):
                write_all(w, b"y" * 100_000)
            assert len(calls) == 1
        with pytest.raises(Stalled):  # after the supervision too: no blocking write
            write_all(w, b"z" * 100_000)
        got = drain(r)
        assert got and set(got) <= set(b"xyz")
        assert got.count(b"x") < (1 << 20)
        forget()
        write_all(w, b"new run")  # a new run: the pipe is written again
        assert drain(r) == b"new run"
    finally:
        os.close(w)
        os.close(r)


def test_a_waiter_that_says_try_again_delivers_every_byte() -> None:
    """A waiter that returns True once the reader made room (a slow reader): every byte
    arrives in order."""
    r, w = os.pipe()
    data = bytes(range(256)) * 2048  # 512 KiB: eight pipe buffers
    got = bytearray()
    waits = 0

    def read_some(fd: int) -> bool:
        nonlocal waits
        waits += 1
        got.extend(os.read(r, 10_000))
        return True

    try:
        with waiting(read_some):
            write_all(w, data)
        os.close(w)
        w = -1
        while chunk := os.read(r, 65536):
            got += chunk
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
    assert waits > 0
    assert bytes(got) == data


def test_a_line_written_while_a_write_waits_never_waits_nor_gives_up() -> None:
    """The supervision's own line written while a write waits (an event, on the same pipe
    as with `2>&1`) does not wait and abandons nothing: it is kept and written right after
    the waiting write, whose bytes arrive whole and first; a line that fits is written at
    once to another pipe."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    data = b"o" * 200_000
    got = bytearray()
    said = False

    def read_and_say(fd: int) -> bool:
        nonlocal said
        if not said:
            said = True
            write_all(w, b"EVENT\n")  # same pipe, full: kept for later
            write_all(w2, b"OTHER\n")  # another pipe with room: at once
        got.extend(os.read(r, 5_000))
        return True

    try:
        with waiting(read_and_say):
            write_all(w, data)
            assert drain(r2) == b"OTHER\n"
        got += drain(r)
    finally:
        for fd in (r, w, r2, w2):
            os.close(fd)
    assert bytes(got) == data + b"EVENT\n"


def test_another_threads_write_does_not_use_the_supervisions_waiter() -> None:
    """The waiter belongs to the thread that installed it: a write from another thread
    waits as a plain write does (here: until the pipe is read), never calling it."""
    r, w = os.pipe()
    called: list[int] = []
    done = threading.Event()

    def other() -> None:
        write_all(w, b"t" * 200_000)
        done.set()

    try:
        with waiting(lambda fd: called.append(fd) is not None):
            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.2)  # it fills the pipe and waits in poll, not in our waiter
            got = bytearray()
            while len(got) < 200_000:  # the pipe holds only what the writer wrote
                got += os.read(r, 65536)
            thread.join(30)
    finally:
        os.close(w)
        os.close(r)
    assert done.is_set() and not thread.is_alive()
    assert called == []
    assert bytes(got) == b"t" * 200_000


def test_a_line_that_would_fit_waits_behind_one_kept_for_the_same_pipe() -> None:
    """Two lines written while a write waits, to a pipe that is nearly full: the first does
    not fit and is kept; the second, which would fit after the reader made room, goes out
    after it, never before (the SIGKILL line came out before the SIGTERM line)."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    os.set_blocking(w2, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(w2, b"-" * 1024)  # the second pipe is full
    said = 0

    def wait_and_say(fd: int) -> bool:
        nonlocal said
        if said == 0:
            write_all(w2, b"FIRST\n")  # no room: kept
            os.read(r2, 65536)  # the reader makes room
            write_all(w2, b"SECOND\n")  # would fit now: must wait its turn
        said += 1
        os.read(r, 65536)
        return True

    try:
        with waiting(wait_and_say):
            write_all(w, b"o" * 200_000)
        text = drain(r2).replace(b"-", b"")
    finally:
        for fd in (r, w, r2, w2):
            os.close(fd)
    assert text == b"FIRST\nSECOND\n"


def test_a_pipe_that_cannot_be_reopened_is_tried_once() -> None:
    """reliactl as another user (nobody) writing to a pipe root made (mode 0600): its
    private open file cannot be had, and that is asked once, not at every write (a
    failed openat per write, each one audited); every byte still arrives."""
    script = (
        "import os, sys\n"
        "from reliactl import _runio\n"
        "tries = 0\n"
        "real = os.open\n"
        "def counting(path, *args, **kwargs):\n"
        "    global tries\n"
        "    tries += str(path).startswith('/proc/self/fd/')\n"
        "    return real(path, *args, **kwargs)\n"
        "os.open = counting\n"
        "with _runio.waiting(lambda fd: True):\n"
        "    for _ in range(500):\n"
        "        _runio.write_all(1, b'x' * 1000)\n"
        "sys.stderr.write(str(tries))\n"
    )
    proc = subprocess.Popen(
        [*NOBODY, sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(_runio.__file__).parents[1])},
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert out == b"x" * 500_000
    assert err == b"1"
