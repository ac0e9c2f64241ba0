"""Peak RSS of `reliactl http GET` fetching a large answer to /dev/null, and its wall time.

The server (``FlakyServer`` of tests/httpserver.py with ``Reply(size=N)``) runs in this
process; each `reliactl http` runs as its own child and its peak RSS is read from
``os.wait4``. A client that buffers the answer needs at least its size (httpx held it twice
over: 431-635 MB for 200 MB before issue 13); a streaming one stays near its idle size.

    python benchmarks/http_memory.py [MB ...]        # default: 0 50 200

To measure another copy of reliactl (an older commit), put it first on PYTHONPATH and run
from outside the repository.
"""

from __future__ import annotations

import os
import sys
import time

from _common import reliactl_cmd
from httpserver import FlakyServer, Reply


def fetch(url: str) -> tuple[int, float, float]:
    """(exit status, peak RSS in MB, seconds) of one `reliactl http GET url >/dev/null`."""
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        pid = os.posix_spawn(
            sys.executable,
            reliactl_cmd("http", "GET", url, "--timeout", "5m"),
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, sink.fileno(), 1)],
        )
        _, status, usage = os.wait4(pid, 0)
    took = time.perf_counter() - started
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, took


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [0, 50, 200]
    print(f"{'answer':>8}  {'peak RSS':>9}  {'time':>7}  exit")
    with FlakyServer() as server:
        for mb in sizes:
            path = f"/size{mb}"
            server.script(path, Reply(size=mb * 1024 * 1024) if mb else Reply(body=b"ok"))
            code, rss, took = fetch(server.url + path)
            print(f"{mb:>6}MB  {rss:>7.0f}MB  {took:>6.2f}s  {code}")


if __name__ == "__main__":
    main()
