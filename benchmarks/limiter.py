"""Shared rate limiter: ``try_acquire`` on the SQLite store against the raw SQLite floor.

Candidates, interleaved round by round (each round runs every candidate ``--calls`` times and
keeps the mean per call), printed as median with min..max over the rounds and the ratio to the
floor:

- raw SQLite floor: what a shared acquire cannot avoid, done directly with sqlite3 and the
  store's pragmas (WAL, synchronous=NORMAL, busy timeout): one read of a small JSON record,
  then one read-modify-write of it in a BEGIN IMMEDIATE transaction;
- reliactl shared limiter, SQLite store, "1000/minute", ``try_acquire`` with ~85 log entries
  (its wall clock steps 0.7 s a call: one entry per 0.6 s grain, a minute of them live);
- reliactl limiter in memory (same spec and stepped clock);
- ``limits`` MovingWindowRateLimiter in memory (``pip install limits``), the peer;
- with ``--base REF``: the shared limiter of a git ref's ``reliactl/ratelimit.py`` (loaded
  beside this one, same store code), for before/after figures from one run;
- with ``--base-store REF``: this shared limiter on a store opened with a git ref's
  ``reliactl/state/sqlite.py`` (its own file, same pragmas), for the store's before/after.

The issue's goal: the shared limiter within 2x the floor. Asserts nothing.

    python benchmarks/limiter.py [--rounds N] [--calls N] [--base REF] [--base-store REF]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import module_at_ref

from reliactl.ratelimit import RateLimiter
from reliactl.state.sqlite import open_store


def floor_call(db: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    """One read + one read-modify-write of a small JSON record; and a closer."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE r (kind TEXT, key TEXT, data TEXT, at REAL, PRIMARY KEY (kind, key))"
    )
    conn.execute("INSERT INTO r VALUES ('rate', 'k', '{\"n\": 0}', 0)")

    def one() -> None:
        json.loads(conn.execute("SELECT data FROM r WHERE kind='rate' AND key='k'").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT data FROM r WHERE kind='rate' AND key='k'").fetchone()
        new = {"n": json.loads(row[0])["n"] + 1}
        conn.execute(
            "UPDATE r SET data = ?, at = ? WHERE kind='rate' AND key='k'",
            (json.dumps(new), time.time()),
        )
        conn.execute("COMMIT")

    return one, conn.close


def base_limiter_class(ref: str, tmp: str) -> type[RateLimiter]:
    """``RateLimiter`` of ``reliactl/ratelimit.py`` as of git ``ref``, as its own module."""
    cls: type[RateLimiter] = module_at_ref(
        ref, "reliactl/ratelimit.py", "ratelimit_base", tmp
    ).RateLimiter
    return cls


def stepped_wall(step: float) -> Callable[[], float]:
    steps = itertools.count()
    start = time.time()
    return lambda: start + next(steps) * step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--base", metavar="REF", help="also a git ref's shared limiter")
    parser.add_argument("--base-store", metavar="REF", help="also on a git ref's SQLite store")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        floor, close_floor = floor_call(Path(tmp) / "floor.db")
        store = open_store(Path(tmp) / "state.db")
        shared = RateLimiter("1000/minute", key="bench", store=store, wall=stepped_wall(0.7))
        memory = RateLimiter("1000/minute", key="bench", clock=stepped_wall(0.7))
        candidates: dict[str, Callable[[], object]] = {
            "raw SQLite floor (1 read + 1 RMW)": floor,
            "reliactl shared limiter (SQLite)": shared.try_acquire,
            "reliactl limiter in memory": memory.try_acquire,
        }
        if args.base:
            base_cls = base_limiter_class(args.base, tmp)
            base = base_cls("1000/minute", key="base", store=store, wall=stepped_wall(0.7))
            candidates[f"{args.base} shared limiter (SQLite)"] = base.try_acquire
        base_store = None
        if args.base_store:
            old = module_at_ref(args.base_store, "reliactl/state/sqlite.py", "sqlite_base", tmp)
            base_store = old.open_store(Path(tmp) / "state-base.db")
            on_base = RateLimiter(
                "1000/minute", key="bench", store=base_store, wall=stepped_wall(0.7)
            )
            candidates[f"shared limiter on {args.base_store}'s store"] = on_base.try_acquire
        try:
            import limits

            window = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
            item = limits.parse("1000000/minute")
            candidates["limits MovingWindow in memory"] = lambda: window.hit(item, "bench")
        except ImportError:
            print("limits not installed (pip install limits to compare)")

        for fn in candidates.values():  # warm up: records exist, ~85 entries in the log
            for _ in range(200):
                fn()
        record = store.get("rate", "bench") or {}
        print(f"stored record: {len(json.dumps(record))} bytes of JSON")

        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, fn in candidates.items():
                started = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                samples[name].append((time.perf_counter() - started) / args.calls * 1e6)
        store.close()
        if base_store is not None:
            base_store.close()
        close_floor()

    load = os.getloadavg()
    print(
        f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average"
        f" {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.rounds} rounds x {args.calls} calls"
    )
    base = statistics.median(samples["raw SQLite floor (1 read + 1 RMW)"])
    width = max(map(len, samples))
    print(f"{'candidate':<{width}}  {'median us':>9}  {'min..max us':>15}  {'x floor':>7}")
    for name, values in samples.items():
        med = statistics.median(values)
        spread = f"{min(values):.1f}..{max(values):.1f}"
        print(f"{name:<{width}}  {med:9.1f}  {spread:>15}  {med / base:7.2f}")


if __name__ == "__main__":
    main()
