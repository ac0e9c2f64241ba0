"""`_runio.write_all`: run's relay writes whole to a non-blocking descriptor.

On a full non-blocking pipe `write` returns short or fails with EAGAIN; Python's buffered
stdout reported neither and dropped the rest (review of the runfix branch: 3,000,000 bytes
sent through `run --max-output`, 247,488 delivered, exit 0, no note). Real pipes and a real
slow reader here; the end-to-end case is in tests/test_run_pipe.py.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from reliactl._runio import Stalled, waiting, write_all


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


@pytest.mark.parametrize("non_blocking", [False, True], ids=["blocking", "non-blocking"])
def test_a_waiter_is_called_instead_of_blocking_and_can_give_up(non_blocking: bool) -> None:
    """Under `waiting`, a full pipe (blocking or not) calls the waiter instead of blocking
    in the kernel; its False raises Stalled, and later writes to the same pipe only write
    what fits at once (nothing here) instead of waiting again."""
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
            assert calls == [w]
            write_all(w, b"y" * 100_000)  # abandoned: returns at once, drops what does not fit
            assert calls == [w]
        os.set_blocking(r, False)
        got = bytearray()
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(r, 65536):
                got += chunk
        assert got and set(got) <= {ord("x"), ord("y")}
        assert got.count(b"x") < (1 << 20)
    finally:
        os.close(w)
        os.close(r)


def test_a_waiter_that_says_try_again_delivers_every_byte() -> None:
    """A waiter that returns True once the reader made room (a slow reader): every byte
    arrives in order, in pieces no larger than the pipe takes without blocking."""
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
