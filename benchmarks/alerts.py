"""Alert processing cost and message count with N failing checks and one webhook sink.

One AlertManager.process() on a real SQLite store per round: round 1 every check turns
CRITICAL (the messages go to a local CountingServer), rounds 2.. nothing changes (decisions
only). Printed per N: messages sent in round 1, and the median wall time of round 1 and of
the quiet rounds. Run it against another checkout with PYTHONPATH=that/checkout to compare.
Asserts nothing.

    python benchmarks/alerts.py [--checks 10,100,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from httpserver import CountingServer

from reliactl.config import AlertSink
from reliactl.health.alerts import AlertManager
from reliactl.health.model import HealthMetric, HealthReport, Status
from reliactl.health.records import RecordStore
from reliactl.state.sqlite import open_store


def report(n: int) -> HealthReport:
    metrics = {
        f"c{i:05d}": HealthMetric(f"c{i:05d}", Status.CRITICAL, 1.0, "down") for i in range(n)
    }
    return HealthReport(Status.CRITICAL, metrics, time.time(), 0.0)


def measure(n: int, rounds: int) -> tuple[int, float, float]:
    with CountingServer() as server, tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "s.db")
        sink = AlertSink(name="hook", kind="webhook", url=server.url + "/hook", timeout=60)
        am = AlertManager([sink], RecordStore(store), host="bench")
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            asyncio.run(am.process(report(n)))
            times.append(time.perf_counter() - started)
        store.close()
        return server.count, times[0], statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'checks':>7} {'messages':>9} {'round 1':>9} {'quiet round':>12}")
    for n in (int(x) for x in args.checks.split(",")):
        count, first, quiet = measure(n, max(2, args.rounds))
        print(f"{n:>7} {count:>9} {first * 1000:>7.0f}ms {quiet * 1000:>10.0f}ms")


if __name__ == "__main__":
    main()
