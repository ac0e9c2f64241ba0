"""Alert processing cost and message count with N failing checks and one webhook sink.

One AlertManager.process() on a real SQLite store per round and per N (each N its own store),
the Ns interleaved round by round (the order rotating): in round 1 every check turns CRITICAL
(the messages go to a local server in its own process, which counts them), in rounds 2..
nothing changes (decisions only). Printed after the machine's load: per N, the messages sent
in round 1 and its time, then the quiet rounds' median, min..max and ratio to the smallest N.
There is no peer: alert routing of this shape is reliactl's own. Run it against another
checkout with PYTHONPATH=that/checkout to compare. Asserts nothing.

    python benchmarks/alerts.py [--checks 10,100,1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import ServerProcess, interleave_once, print_header, print_spread_table, sized

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", default="2,5" if sized(0) else "10,100,1000")
    parser.add_argument("--rounds", type=int, default=sized(5, 2), help="rounds, the first loud")
    args = parser.parse_args()
    counts = [int(x) for x in args.checks.split(",")]
    rounds = max(2, args.rounds)
    print_header(
        f"alerts: N CRITICAL checks, one webhook sink, {rounds} interleaved rounds"
        " (round 1 sends, the rest are quiet)"
    )
    with ServerProcess() as server, tempfile.TemporaryDirectory() as tmp:
        stores, managers = [], {}
        for n in counts:
            store = open_store(Path(tmp) / f"s{n}.db")
            stores.append(store)
            sink = AlertSink(name="hook", kind="webhook", url=server.url + "/hook", timeout=60)
            managers[f"{n} checks"] = AlertManager([sink], RecordStore(store), host="bench")
        reports = {f"{n} checks": report(n) for n in counts}
        runs = {
            name: (lambda am=am, rep=reports[name]: asyncio.run(am.process(rep)))
            for name, am in managers.items()
        }
        loud: dict[str, float] = {}
        sent: dict[str, int] = {}
        before = server.count()
        for name, run in runs.items():  # round 1, one N at a time to count its messages
            started = time.perf_counter()
            run()
            loud[name] = time.perf_counter() - started
            sent[name] = server.count() - before
            before += sent[name]
        quiet = interleave_once(runs, rounds=rounds - 1, warmup=0)
        for store in stores:
            store.close()
    print(f"{'round 1':<12} {'messages':>9} {'time':>10}")
    for name in runs:
        print(f"{name:<12} {sent[name]:>9} {loud[name] * 1000:>8.0f}ms")
    print()
    print_spread_table(quiet, f"{counts[0]} checks", unit="ms", label="quiet rounds")


if __name__ == "__main__":
    main()
