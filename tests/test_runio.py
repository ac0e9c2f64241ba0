"""`_runio.write_all`: run's relay writes whole to a non-blocking descriptor.

On a full non-blocking pipe `write` returns short or fails with EAGAIN; Python's buffered
stdout reported neither and dropped the rest (review of the runfix branch: 3,000,000 bytes
sent through `run --max-output`, 247,488 delivered, exit 0, no note). Real pipes and a real
slow reader here; the end-to-end case is in tests/test_run_pipe.py.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from reliactl._runio import write_all


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
