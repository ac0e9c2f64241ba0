"""The benchmarks' HTTP server in its own process (issue 21 item 5: a server in the measuring
process shares its GIL and skews what is measured).

    python benchmarks/_httpproc.py [--delay SECONDS] [--size BYTES]

Serves tests/httpserver.py's ``CountingServer`` (200 ``ok`` after ``--delay``) or, with
``--size``, a ``FlakyServer`` answering that many filler bytes; prints its URL on the first
line of stdout, then answers each ``count`` line on stdin with the number of requests seen,
and exits when stdin closes. ``_common.server_process`` starts and stops it.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from httpserver import CountingServer, FlakyServer, Reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--size", type=int, default=0)
    args = parser.parse_args()
    server: FlakyServer = (
        FlakyServer(Reply(size=args.size)) if args.size else CountingServer(delay=args.delay)
    )
    print(server.url, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                with server._lock:
                    seen = len(server.requests)
                print(seen, flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
