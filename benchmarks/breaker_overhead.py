"""Per-call cost of a circuit breaker around a trivial function, and of a persisted one.

Like with like: every candidate is a *closed* breaker with a failure threshold it never
reaches, around the same trivial function (sync: ``return 1``; async: a coroutine that
returns 1 without suspending), called in a tight loop. The success path and the failure path
(the function raises ValueError, caught by the loop) are measured separately. The decorator
forms are compared with each other (``@circuit_breaker`` / ``@breaker`` against pybreaker's
``@breaker`` and circuitbreaker's ``@circuit``), the call forms with each other
(``breaker.call(fn)`` / ``await breaker.call_async(fn)`` against pybreaker's ``call`` and
aiobreaker's ``call_async``, each through the same lambda). Peers: ``pip install pybreaker
circuitbreaker aiobreaker limits`` in your venv (missing ones are reported, not faked).

Then a breaker persisted in a real SQLite state store, closed, success (one state read at
admission, one atomic write of the outcome), next to the same calls with the store's fast
paths turned off (the full decode/read-modify-write path every call took before issue 21), a
closed breaker's counted failure (one statement too) and the same on the full path, an open
breaker's rejection (counted: one statement once it has seen the record open), and the raw
SQLite floor: one read plus one BEGIN
IMMEDIATE read-modify-write of a small JSON record with the store's pragmas, done directly
with sqlite3 (and of a record the size of the breaker's, for reference).

Candidates are interleaved round by round (every round runs each once, so a noisy moment on
this shared machine hurts one sample of each); printed: the median with min..max over the
rounds, the overhead over the bare function, and the ratio to the named peer or floor. The
load average is printed: compare ratios, not absolute figures. Asserts nothing.

With ``--base-store REF`` the persisted paths also run on a store opened with a git ref's
``reliactl/state/sqlite.py`` (its own file), in the same rounds: the store's before/after.

    python benchmarks/breaker_overhead.py [--calls N] [--rounds N] [--persisted-calls N]
        [--base-store REF] [--baseline FILE] [--in-memory-only | --persisted-only]

``--baseline FILE`` adds a breaker module from another revision to the in-memory tables, in
the same interleaved rounds (``git show REV:reliactl/breaker.py > /tmp/before.py``): a
before/after comparison on the same load. It is loaded beside this tree's reliactl and imports
the rest of reliactl from it, so it suits revisions that changed only breaker.py.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import module_at_ref

from reliactl.breaker import BreakerConfig, CircuitBreaker, CircuitBreakerManager, circuit_breaker
from reliactl.errors import CircuitOpenError
from reliactl.ratelimit import RateLimiter
from reliactl.state.sqlite import open_store

NEVER = 10**9  # a failure threshold no run reaches: the breaker stays closed
BASELINE: Any = None  # --baseline: another revision's reliactl/breaker.py, loaded as a module


def load_baseline(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("reliactl._breaker_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def trivial() -> int:
    return 1


def failing() -> int:
    raise ValueError("down")


async def atrivial() -> int:
    return 1


async def afailing() -> int:
    raise ValueError("down")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ({min(values):.0f}..{max(values):.0f})"


def report(title: str, samples: dict[str, list[float]], bare: str, peer: str | None) -> None:
    """Median (min..max) ns per call, overhead over ``bare`` and ratio to ``peer``."""
    base = statistics.median(samples[bare])
    ref = statistics.median(samples[peer]) - base if peer in samples else None
    print(f"{title:44} {'ns/call (min..max)':>22} {'overhead':>9} {'x peer':>7}")
    for label, values in samples.items():
        overhead = statistics.median(values) - base
        ratio = f"{overhead / ref:6.2f}x" if ref and label != bare else ""
        print(f"  {label:42} {summary(values):>22} {overhead:9.0f} {ratio:>7}")
    if ref is None:
        print(f"  ({peer} not installed: no ratio)")
    else:
        print(f"  (x peer: overhead / {peer}'s overhead)")
    print()


def loop_sync(fn: Callable[[], Any], n: int, raises: bool) -> float:
    if raises:
        start = time.perf_counter_ns()
        for _ in range(n):
            try:
                fn()
            except ValueError:
                pass
        return (time.perf_counter_ns() - start) / n
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n


def sync_candidates(fn: Callable[[], int]) -> list[tuple[str, Callable[[], Any]]]:
    out: list[tuple[str, Callable[[], Any]]] = [("function alone", fn)]
    cfg = BreakerConfig(failure_threshold=NEVER)
    b = CircuitBreaker("bench", cfg)
    out.append(
        (
            "reliactl @circuit_breaker",
            circuit_breaker("deco", cfg, manager=CircuitBreakerManager())(fn),
        )
    )
    out.append(("reliactl @breaker (instance)", CircuitBreaker("inst", cfg)(fn)))
    out.append(("reliactl lambda: breaker.call(fn)", lambda: b.call(fn)))
    if BASELINE is not None:
        old = BASELINE.BreakerConfig(failure_threshold=NEVER)
        deco = BASELINE.circuit_breaker("deco", old, manager=BASELINE.CircuitBreakerManager())
        out.append(("baseline @circuit_breaker", deco(fn)))
    try:
        import circuitbreaker

        out.append(("circuitbreaker @circuit", circuitbreaker.circuit(failure_threshold=NEVER)(fn)))
    except ImportError:
        print("circuitbreaker not installed (pip install circuitbreaker to compare)")
    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker(fail_max=NEVER, reset_timeout=60)
        out.append(("pybreaker @breaker", pb(fn)))
        out.append(("pybreaker lambda: breaker.call(fn)", lambda: pb.call(fn)))
    except ImportError:
        print("pybreaker not installed (pip install pybreaker to compare)")
    return out


def async_candidates(fn: Callable[[], Any]) -> list[tuple[str, Callable[[], Any]]]:
    out: list[tuple[str, Callable[[], Any]]] = [("await coroutine alone", fn)]
    cfg = BreakerConfig(failure_threshold=NEVER)
    b = CircuitBreaker("abench", cfg)
    out.append(
        (
            "reliactl async @circuit_breaker",
            circuit_breaker("adeco", cfg, manager=CircuitBreakerManager())(fn),
        )
    )
    out.append(("reliactl lambda: breaker.call_async(fn)", lambda: b.call_async(fn)))
    if BASELINE is not None:
        old = BASELINE.BreakerConfig(failure_threshold=NEVER)
        deco = BASELINE.circuit_breaker("adeco", old, manager=BASELINE.CircuitBreakerManager())
        out.append(("baseline async @circuit_breaker", deco(fn)))
    try:
        import circuitbreaker

        out.append(
            ("circuitbreaker async @circuit", circuitbreaker.circuit(failure_threshold=NEVER)(fn))
        )
    except ImportError:
        print("circuitbreaker not installed (pip install circuitbreaker to compare)")
    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=NEVER)
        out.append(("aiobreaker lambda: call_async(fn)", lambda: ab.call_async(fn)))
    except ImportError:
        print("aiobreaker not installed (pip install aiobreaker to compare)")
    return out


def in_memory(n: int, rounds: int) -> None:
    for title, fn, raises in (
        ("sync, success (closed)", trivial, False),
        ("sync, failure (closed, counted)", failing, True),
    ):
        candidates = sync_candidates(fn)
        samples: dict[str, list[float]] = {label: [] for label, _ in candidates}
        for _ in range(rounds):
            for label, call in candidates:
                samples[label].append(loop_sync(call, n, raises))
        report(title, samples, "function alone", "circuitbreaker @circuit")

    async def loop_async(make: Callable[[], Any], raises: bool) -> float:
        start = time.perf_counter_ns()
        if raises:
            for _ in range(n):
                try:
                    await make()
                except ValueError:
                    pass
        else:
            for _ in range(n):
                await make()
        return (time.perf_counter_ns() - start) / n

    async def run_async() -> None:
        for title, fn, raises in (
            ("async, success (closed)", atrivial, False),
            ("async, failure (closed, counted)", afailing, True),
        ):
            candidates = async_candidates(fn)
            samples: dict[str, list[float]] = {label: [] for label, _ in candidates}
            for _ in range(rounds):
                for label, make in candidates:
                    samples[label].append(await loop_async(make, raises))
            report(title, samples, "await coroutine alone", "aiobreaker lambda: call_async(fn)")

    asyncio.run(run_async())


def floor_one(conn: sqlite3.Connection) -> Callable[[], None]:
    """What a persisted call cannot avoid: a read, then an atomic read-modify-write."""

    def one() -> None:
        json.loads(
            conn.execute("SELECT data FROM r WHERE kind='breaker' AND key='b'").fetchone()[0]
        )
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT data FROM r WHERE kind='breaker' AND key='b'").fetchone()
        record = json.loads(row[0])
        record["n"] = record.get("n", 0) + 1
        conn.execute(
            "UPDATE r SET data = ?, at = ? WHERE kind='breaker' AND key='b'",
            (json.dumps(record), time.time()),
        )
        conn.execute("COMMIT")

    return one


def floor_conn(db: Path, record: dict[str, Any]) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE r (kind TEXT, key TEXT, data TEXT, at REAL, PRIMARY KEY (kind, key))"
    )
    conn.execute("INSERT INTO r VALUES ('breaker', 'b', ?, 0)", (json.dumps(record),))
    return conn


def median_us(fn: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def persisted_candidates(store: Any, tag: str) -> list[tuple[str, Callable[[], Any]]]:
    """A persisted breaker's paths on ``store``: closed success (fast path), the same with the
    fast paths off (full read-modify-write), a counted failure (the threshold never reached;
    the store's failure statement), the same on the full path, and an open breaker's counted
    rejection."""
    fast = CircuitBreaker("fast", BreakerConfig(), store=store)
    full = CircuitBreaker("full", BreakerConfig(), store=store)
    full._peek_state = full._count_success = full._count_failure = None  # the full path
    fails = CircuitBreaker("fails", BreakerConfig(failure_threshold=NEVER), store=store)
    fails_full = CircuitBreaker("fails-full", BreakerConfig(failure_threshold=NEVER), store=store)
    fails_full._peek_state = fails_full._count_failure = None  # the full path
    opened = CircuitBreaker("open", BreakerConfig(), store=store)
    for b in (fast, full, opened):
        for _ in range(200):  # warm up: the record exists, pages are cached
            b.call(trivial)
    opened.trip(None)

    def rejected() -> None:
        try:
            opened.call(trivial)
        except CircuitOpenError:
            pass

    def failure() -> None:
        try:
            fails.call(failing)
        except ValueError:
            pass

    def failure_full() -> None:
        try:
            fails_full.call(failing)
        except ValueError:
            pass

    for _ in range(200):
        failure()
        failure_full()
    return [
        (f"{tag}closed, success", lambda: fast.call(trivial)),
        (f"{tag}closed, success, full path", lambda: full.call(trivial)),
        (f"{tag}closed, failure (counted)", failure),
        (f"{tag}closed, failure, full path", failure_full),
        (f"{tag}open, rejected (counted)", rejected),
    ]


def persisted(calls: int, rounds: int, base_store: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "state.db")
        ours = persisted_candidates(store, "reliactl ")
        small = floor_conn(Path(tmp) / "floor.db", {"n": 0})
        record = store.get("breaker", "fast") or {}
        sized = floor_conn(Path(tmp) / "floor-sized.db", record)
        candidates: list[tuple[str, Callable[[], Any]]] = [
            ("raw SQLite floor (small record)", floor_one(small)),
            (f"raw SQLite floor ({len(json.dumps(record))}-byte record)", floor_one(sized)),
            *ours,
        ]
        old_store = None
        if base_store:
            old = module_at_ref(base_store, "reliactl/state/sqlite.py", "sqlite_base", tmp)
            old_store = old.open_store(Path(tmp) / "state-base.db")
            candidates += persisted_candidates(old_store, f"{base_store[:10]} store: ")
        samples: dict[str, list[float]] = {label: [] for label, _ in candidates}
        for _ in range(rounds):
            for label, fn in candidates:
                samples[label].append(median_us(fn, calls))
        floor = statistics.median(samples["raw SQLite floor (small record)"])
        print(f"persisted in SQLite (WAL), one process; median of {calls} single calls per round")
        print(f"{'':54} {'us/call (min..max)':>22} {'x floor':>8}")
        for label, values in samples.items():
            med = statistics.median(values)
            text = f"{med:7.1f} ({min(values):.1f}..{max(values):.1f})"
            print(f"  {label:52} {text:>22} {med / floor:7.2f}x")
        print()
        for conn in (small, sized):
            conn.close()
        if old_store is not None:
            old_store.close()
        # A wall clock stepped 0.7 s a call keeps ~85 entries (one per 0.6 s grain) in the log.
        steps = iter(range(10**9))
        limiter = RateLimiter(
            "1000/m", key="bench", store=store, wall=lambda: time.time() + next(steps) * 0.7
        )
        for _ in range(200):
            limiter.try_acquire()
        med = median_us(limiter.try_acquire, calls)
        print("shared rate limiter (SQLite, 1000/m), try_acquire with ~85 log entries:")
        print(f"  median {med:.1f} us/call")
        store.close()
    try:
        import limits

        window = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
        item = limits.parse("1000000/minute")
        med = median_us(lambda: window.hit(item, "bench"), calls)
        print(f"limits MovingWindowRateLimiter in memory: median {med:.1f} us/call")
    except ImportError:
        print("limits not installed (pip install limits to compare)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="in-memory calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--persisted-calls", type=int, default=1000, help="per round")
    parser.add_argument(
        "--base-store", metavar="REF", help="the persisted paths also on a git ref's store"
    )
    parser.add_argument("--baseline", help="another revision's reliactl/breaker.py to compare")
    parser.add_argument("--in-memory-only", action="store_true", help="skip the SQLite part")
    parser.add_argument("--persisted-only", action="store_true", help="skip the in-memory part")
    args = parser.parse_args()
    if args.baseline:
        global BASELINE
        BASELINE = load_baseline(args.baseline)
    one, five, _ = os.getloadavg()
    print(
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {args.rounds}"
        f" interleaved rounds; load average {one:.1f}/{five:.1f} on {os.cpu_count()} CPUs\n"
    )
    if not args.persisted_only:
        in_memory(args.calls, args.rounds)
    if not args.in_memory_only:
        persisted(args.persisted_calls, args.rounds, args.base_store)
    one, five, _ = os.getloadavg()
    print(f"load average at the end {one:.1f}/{five:.1f}")


if __name__ == "__main__":
    main()
