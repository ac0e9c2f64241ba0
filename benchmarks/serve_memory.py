"""`reliactl serve`'s memory while many clients read a large answer slowly (cli/web/guard.py).

A store is seeded so that /api/history?since=1h is about 9 MB; --readers clients (threads
of this process, each with a 16 KiB receive buffer) each ask for it and then read
4 KiB a second (enough for the send deadline: they keep taking bytes) until --seconds
after the last one asked. serve's
VmRSS (/proc/PID/status) is sampled every 0.2 s; printed per round: RSS before, its peak,
and the answers by status (200, or 503 when the answer budget is held). Before the answer
budget each pending answer kept its unsent part (~5-9 MB) in its connection's write buffer
for as long as its reader took: memory grew with the readers, up to --max-connections of them.
The readers ask one after another (each once the previous got its head), so that the
store's reads do not queue (a read waiting 5 s on the store is a 503 "store busy").
Run: python benchmarks/serve_memory.py [--rounds 3] [--readers 40]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import print_header, sized
from serve import rss_mb, setup, start_serve, stop

HISTORY = "/api/history?since=1h"


def seed(env: dict[str, str], points: int) -> None:
    """``points`` health points of one check over the last 50 minutes (~150 bytes each)."""
    from reliactl.state import open_sqlite_store
    from reliactl.state.base import HealthPoint

    store = open_sqlite_store(
        Path(env["RELIACTL_STATE__PATH"]), max_rows=10_000, warn=lambda _: None
    )
    now = time.time()
    step = 3000 / points
    store.add_health_points(
        [HealthPoint("big", now - 3000 + i * step, "OK", float(i)) for i in range(points)]
    )
    store.close()


def reader(port: int, done: threading.Event, statuses: list[str], asked: threading.Event) -> None:
    """Ask for the history, then take 4 KiB a second until ``done``; ``asked`` is set once
    the head came (the next reader asks then: the store is read by one at a time)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(30)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {HISTORY} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            first = sock.recv(4096)
            status = first.split(b" ", 2)[1].decode() if first else "closed"
            while status == "503" and b"}" not in first:  # its body may come apart
                piece = sock.recv(4096)
                if not piece:
                    break
                first += piece
            if status == "503":
                status += " budget" if b"large answers" in first else " store busy"
            statuses.append(status)
            asked.set()
            while status == "200" and not done.is_set() and sock.recv(4096):
                time.sleep(1.0)
        except OSError:
            statuses.append("error")
        finally:
            asked.set()


def one_round(env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    proc, port = start_serve(env, "--interval", "5s", "--head-timeout", "60s")
    try:
        before = peak = rss_mb(proc.pid)
        statuses: list[str] = []
        threads = []
        done = threading.Event()
        for _ in range(args.readers):  # one after another: each gets its head first
            asked = threading.Event()
            thread = threading.Thread(target=reader, args=(port, done, statuses, asked))
            thread.daemon = True
            thread.start()
            threads.append(thread)
            while not asked.wait(0.2):
                peak = max(peak, rss_mb(proc.pid))
        until = time.monotonic() + args.seconds
        while time.monotonic() < until:
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.2)
        done.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop(proc)
    return {
        "before": before,
        "peak": peak,
        "ok": float(statuses.count("200")),
        "budget": float(statuses.count("503 budget")),
        "other": float(len(statuses) - statuses.count("200") - statuses.count("503 budget")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=sized(3))
    parser.add_argument("--readers", type=int, default=sized(40, 2))
    parser.add_argument("--points", type=int, default=sized(60_000, 1000))
    parser.add_argument("--seconds", type=float, default=sized(20, 3))
    args = parser.parse_args()
    print_header(
        "reliactl serve's RSS while slow readers hold a large /api/history each",
        f"{args.readers} readers x /api/history of {args.points} points (~9 MB at 60,000),"
        f" 4 KiB/s each for {args.seconds:g} s; {args.rounds} rounds",
    )
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        env = setup(Path(tmp))
        seed(env, args.points)
        for _ in range(args.rounds):
            rounds.append(one_round(env, args))

    def col(name: str) -> str:
        values = [r[name] for r in rounds]
        return f"{statistics.median(values):.0f} ({min(values):.0f}..{max(values):.0f})"

    print(f"serve's RSS before the readers:   {col('before')} MB")
    print(f"serve's RSS, peak while reading:  {col('peak')} MB")
    print(f"answers 200 / 503 (budget held):  {col('ok')} / {col('budget')}")
    print(f"other answers (store busy, error): {col('other')}")


if __name__ == "__main__":
    main()
