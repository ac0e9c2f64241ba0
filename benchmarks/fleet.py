"""Shared state on Redis against SQLite (issue 16): one persisted breaker call, one rate-limit
acquire, p50 and p99 in microseconds on loopback.

Also a lock acquire+release (a host flock against a fleet lease: SET NX PX + fencing INCR,
then compare-and-delete) and whole `reliactl run --lock -- true` commands of host and fleet
scope, interleaved rounds, median (min..max) and the ratio (goal: fleet within 1.3x of host).

Starts its own redis-server (Debian package `redis-server`) on a free loopback port in a temp
directory, without persistence, and stops it afterwards. Goal: breaker call p50 <= 0.5 ms.
Set BENCH_CALLS to change the number of measured calls (default 3000, in BENCH_ROUNDS
interleaved rounds, default 10: median, min..max and the ratio to SQLite / the host lock),
BENCH_RUNS the rounds of whole commands (default 20). The first line states the machine's load.

Then the scale simulation: BENCH_CLIENTS (default 200) clients, each with its own Redis
connection (BENCH_PROCS processes of threads, default 8, so the client side is not one GIL;
the threads of one process take turns on the updates of one breaker record, as threads of
one program do, so more processes are closer to many hosts),
call one persisted breaker (BENCH_BREAKERS, default 1: the threads of a process spread over
that many breakers) and one shared rate limiter (60/minute: mostly refusals, each still
one atomic update) in turn for BENCH_SECONDS (default 10): calls per second, p50/p99 per
operation, lost WATCH races, and Redis's CPU from INFO (used_cpu_user + used_cpu_sys).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing import get_context
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import (
    interleave_calls,
    print_header,
    print_spread_table,
    reliactl_cmd,
    sample_commands,
    sized,
)

from reliactl import locks
from reliactl.breaker import BreakerConfig, CircuitBreaker
from reliactl.ratelimit import RateLimiter
from reliactl.state.redis import open_redis_store
from reliactl.state.redislease import RedisLeaseService
from reliactl.state.sqlite import open_store
from reliactl.state.url import parse_state_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(server, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory),
            *("--save", "", "--appendonly", "no", "--logfile", os.path.join(directory, "log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


def _client_process(port: int, threads: int, seconds: float, queue: Any) -> None:
    """``threads`` clients, each with its own store (connection), until the deadline."""
    barrier = threading.Barrier(threads)
    results: list[tuple[list[float], list[float], int]] = []
    lock = threading.Lock()

    breakers = int(os.environ.get("BENCH_BREAKERS", "1"))
    count = itertools.count()

    def client() -> None:
        store = open_redis_store(parse_state_url(f"redis://127.0.0.1:{port}/0"), namespace="scale")
        which = next(count) % breakers
        breaker = CircuitBreaker(f"shared{which or ''}", BreakerConfig(), store=store)
        limiter = RateLimiter("60/minute", key="shared", store=store)
        b_lat: list[float] = []
        r_lat: list[float] = []
        errors = 0
        barrier.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                t0 = time.perf_counter()
                breaker.call(int)
                t1 = time.perf_counter()
                limiter.try_acquire()
                t2 = time.perf_counter()
                b_lat.append(t1 - t0)
                r_lat.append(t2 - t1)
            except Exception:
                errors += 1
        store.close()
        with lock:
            results.append((b_lat, r_lat, errors))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    b_all = [x for r in results for x in r[0]]
    r_all = [x for r in results for x in r[1]]
    queue.put((b_all, r_all, sum(r[2] for r in results)))


def _redis_cpu(port: int) -> float:
    import redis

    info = redis.Redis(host="127.0.0.1", port=port).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * q))] * 1e3 if samples else 0.0


def scale(port: int) -> None:
    clients = int(os.environ.get("BENCH_CLIENTS", str(sized(200, 2))))
    procs = min(clients, int(os.environ.get("BENCH_PROCS", str(sized(8, 1)))))
    seconds = float(os.environ.get("BENCH_SECONDS", str(sized(10, 1))))
    ctx = get_context("spawn")
    queue = ctx.Queue()
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    cpu0 = _redis_cpu(port)
    wall0 = time.monotonic()
    children = [
        ctx.Process(target=_client_process, args=(port, n, seconds, queue)) for n in per if n
    ]
    for c in children:
        c.start()
    got = [queue.get(timeout=seconds + 600) for _ in children]
    for c in children:
        c.join()
    wall = time.monotonic() - wall0
    cpu = _redis_cpu(port) - cpu0
    b_all = sorted(x for g in got for x in g[0])
    r_all = sorted(x for g in got for x in g[1])
    errors = sum(g[2] for g in got)
    print(
        f"\nscale: {clients} clients ({len(children)} processes),"
        f" {os.environ.get('BENCH_BREAKERS', '1')} breaker(s) + one limiter,"
        f" {seconds:g}s each"
    )
    print(
        f"breaker calls    {len(b_all) / seconds:8.0f}/s  p50 {_pct(b_all, 0.5):6.1f} ms"
        f"  p99 {_pct(b_all, 0.99):7.1f} ms"
    )
    print(
        f"limiter acquires {len(r_all) / seconds:8.0f}/s  p50 {_pct(r_all, 0.5):6.1f} ms"
        f"  p99 {_pct(r_all, 0.99):7.1f} ms"
    )
    print(
        f"errors {errors}; Redis CPU {cpu:.2f}s over the {seconds:g}s run"
        f" (~{100 * cpu / seconds:.0f}% of a core; {wall:.1f}s wall with the clients' start)"
    )


def main() -> None:
    calls = int(os.environ.get("BENCH_CALLS", str(sized(3000, 20))))
    print_header("shared state on Redis against SQLite (redis-server in its own process)")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(tmp)
        try:
            if os.environ.get("BENCH_ONLY") == "scale":
                scale(port)
                return
            stores: dict[str, Any] = {
                "sqlite": open_store(os.path.join(tmp, "state.db")),
                "redis": open_redis_store(parse_state_url(f"redis://127.0.0.1:{port}/0")),
            }
            ops: dict[str, Callable[[], Any]] = {}
            for backend, store in stores.items():
                breaker = CircuitBreaker("bench", BreakerConfig(), store=store)
                limiter = RateLimiter("1000000/second", key="bench", store=store)
                ops[f"breaker call ({backend})"] = lambda c=breaker.call: c(int)
                ops[f"rate-limit acquire ({backend})"] = limiter.acquire
            ops.update(lock_ops(tmp, port))
            rounds = int(os.environ.get("BENCH_ROUNDS", str(sized(10, 2))))
            samples = interleave_calls(ops, max(1, calls // rounds), rounds)
            for store in stores.values():
                store.close()
            commands = run_commands(tmp, port)
            print_rows(calls, samples)
            print_runs(commands)
            scale(port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def print_rows(calls: int, samples: dict[str, list[float]]) -> None:
    """Per operation: time per call, median and min..max over the rounds, ratio to SQLite's
    (breaker, limiter) or to the host flock (locks)."""
    print(f"persisted operations, {calls} calls each in interleaved rounds, loopback")
    print("(goal: breaker call on Redis <= 500 us)")
    for group, base in (
        ("breaker call", "breaker call (sqlite)"),
        ("rate-limit acquire", "rate-limit acquire (sqlite)"),
        ("lock acquire+release", "lock acquire+release (host)"),
    ):
        rows = {name: values for name, values in samples.items() if name.startswith(group)}
        print()
        print_spread_table(rows, base, unit="us", label=group)
    print()


def lock_ops(tmp: str, port: int) -> dict[str, Callable[[], Any]]:
    """Acquire+release of a host lock (flock) and of a fleet lock (lease) on one connection."""
    path = os.path.join(tmp, "bench.lock")

    def host() -> None:
        locks.acquire(path, command="bench").release()

    url = parse_state_url(f"redis://127.0.0.1:{port}/0")
    service = RedisLeaseService(open_redis_store(url, namespace="benchlock"))

    def fleet() -> None:
        lease = service.acquire("bench", locks.fleet_owner("bench", time.time()), 30.0)
        lease.release()  # type: ignore[union-attr]

    return {"lock acquire+release (host)": host, "lock acquire+release (fleet)": fleet}


def run_commands(tmp: str, port: int) -> dict[str, list[float]]:
    """Whole `reliactl run --lock -- true` runs, host against fleet scope, interleaved."""
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = {
        "HOME": tmp,
        "RELIACTL_RUN__LOCK_DIR": os.path.join(tmp, "locks"),
        "RELIACTL_STATE__PATH": os.path.join(tmp, "run-state.db"),
        "RELIACTL_STATE__NAMESPACE": "benchrun",
    }
    lock = ("--lock-name", "bench")
    commands = {
        "host scope, SQLite state": [
            "env",
            "RELIACTL_STATE__URL=",
            *reliactl_cmd("run", *lock, "--", "true"),
        ],
        "host scope, Redis state": [
            "env",
            f"RELIACTL_STATE__URL={redis_url}",
            *reliactl_cmd("run", *lock, "--lock-scope", "host", "--", "true"),
        ],
        "fleet scope, Redis state": [
            "env",
            f"RELIACTL_STATE__URL={redis_url}",
            *reliactl_cmd("run", *lock, "--lock-scope", "fleet", "--", "true"),
        ],
    }
    return sample_commands(commands, runs=runs, env=env)


def print_runs(samples: dict[str, list[float]]) -> None:
    runs = len(next(iter(samples.values())))
    print(f"reliactl run --lock -- true, {runs} interleaved rounds (goal: fleet <= 1.3x host)")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["host scope, Redis state"]
    width = max(len(n) for n in samples)
    print(f"{'command':<{width}}  {'median':>8}  {'min..max':>15}  {'x host/Redis':>12}")
    for name, values in samples.items():
        spread = f"{min(values) * 1000:.1f}..{max(values) * 1000:.1f}ms"
        print(
            f"{name:<{width}}  {medians[name] * 1000:6.1f}ms  {spread:>15}"
            f"  {medians[name] / base:11.2f}x"
        )


if __name__ == "__main__":
    main()
