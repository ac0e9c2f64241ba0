"""`breaker show NAME` and `breaker list` with 10,000 breakers in the store vs an empty store.

Two SQLite stores: one holding only the breaker shown, one with 10,000 more. The commands run
interleaved round by round as the CLI (compiled bytecode); printed: median wall with
min..max and the ratio to the same command on the small store. `show` should not depend on
the number of breakers; `list` prints them all, so it does. Asserts nothing.

    python benchmarks/breaker_store.py [--runs N] [--breakers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import reliactl_cmd

from reliactl.state.sqlite import open_store


def fill(db: Path, extra: int) -> None:
    with open_store(db) as store:
        store.update("breaker", "api", lambda r: {"state": "open", "opened_at": time.time()})
        with store.conn:
            store.conn.executemany(
                "INSERT INTO records (kind, key, data, updated_at) VALUES ('breaker', ?, ?, ?)",
                [
                    (f"svc{i:05d}", '{"state":"closed","calls":3}', time.time())
                    for i in range(extra)
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--breakers", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "NO_COLOR": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("RELIACTL_CONFIG", None)
        commands: dict[str, list[str]] = {}
        for label, extra in (("empty", 0), (f"{args.breakers}", args.breakers)):
            db = Path(tmp) / f"{label}.db"
            fill(db, extra)
            cfg = Path(tmp) / f"{label}.yaml"
            cfg.write_text(f"state:\n  path: '{db}'\n")
            commands[f"show api, {label}"] = reliactl_cmd("-c", str(cfg), "breaker", "show", "api")
            commands[f"list, {label}"] = reliactl_cmd("-c", str(cfg), "breaker", "list", "--json")
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for index in range(args.runs + 1):
            for name, argv in commands.items():
                started = time.perf_counter()
                subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
                if index:
                    samples[name].append(time.perf_counter() - started)
        one, five, _ = os.getloadavg()
        print(f"{args.runs} interleaved rounds, load average {one:.1f}/{five:.1f}, 2 CPUs")
        for name, values in samples.items():
            kind = name.split(",")[0]
            base = statistics.median(samples[f"{kind}, empty"])
            med = statistics.median(values)
            print(
                f"  {name:<20} {med * 1000:7.1f} ms ({min(values) * 1000:.1f}.."
                f"{max(values) * 1000:.1f})  {med / base:5.2f}x empty"
            )


if __name__ == "__main__":
    main()
