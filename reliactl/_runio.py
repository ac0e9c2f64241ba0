"""Writing a job's output to a descriptor whole: the one owner of run's relay write.

A descriptor reliactl inherits may be non-blocking (``O_NONBLOCK`` is a flag of the open
file, shared with whoever set it: a parent that made its end of the pipe non-blocking).
Then a full pipe makes ``write`` return short or fail with EAGAIN instead of waiting, and
Python's buffered streams report neither (``BufferedWriter.write`` returns None; the bytes
are gone). So run's relay writes with ``os.write`` and, when the descriptor cannot take more
yet, waits for it (``poll`` POLLOUT, no time limit): a slow reader slows the job, as in a
shell pipeline, as a blocking descriptor does. A reader gone or any other failure raises.
"""

from __future__ import annotations

import os
import select


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, through short writes and EAGAIN (waiting for POLLOUT);
    raises ``OSError`` as ``os.write`` does otherwise (``BrokenPipeError`` for a gone reader)."""
    view = memoryview(data)
    poller = None
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
            poller.poll()  # POLLERR/POLLHUP/POLLNVAL end it too: the next write says why
