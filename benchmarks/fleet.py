"""Shared state on Redis against SQLite (issue 16): one persisted breaker call, one rate-limit
acquire, p50 and p99 in microseconds on loopback.

Also a lock acquire+release (a host flock against a fleet lease: SET NX PX + fencing INCR,
then compare-and-delete) and whole `reliactl run --lock -- true` commands of host and fleet
scope, interleaved rounds, median (min..max) and the ratio (goal: fleet within 1.3x of host).

Starts its own redis-server (Debian package `redis-server`) on a free loopback port in a temp
directory, without persistence, and stops it afterwards. Goal: breaker call p50 <= 0.5 ms.
Set BENCH_CALLS to change the number of measured calls (default 3000), BENCH_RUNS the rounds
of whole commands (default 20).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import reliactl_cmd, sample_commands

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


def measure(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        fn()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


def main() -> None:
    calls = int(os.environ.get("BENCH_CALLS", "3000"))
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(tmp)
        try:
            stores: dict[str, Any] = {
                "sqlite": open_store(os.path.join(tmp, "state.db")),
                "redis": open_redis_store(parse_state_url(f"redis://127.0.0.1:{port}/0")),
            }
            rows = []
            for backend, store in stores.items():
                breaker = CircuitBreaker("bench", BreakerConfig(), store=store)
                limiter = RateLimiter("1000000/second", key="bench", store=store)
                call = breaker.call
                rows.append((f"breaker call ({backend})", *measure(lambda c=call: c(int), calls)))
                rows.append((f"rate-limit acquire ({backend})", *measure(limiter.acquire, calls)))
                store.close()
            rows += lock_rows(tmp, port, calls)
            commands = run_commands(tmp, port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"persisted operations, {calls} calls each, loopback (goal: breaker p50 <= 500 us)")
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'p50':>9}  {'p99':>9}")
    for name, p50, p99 in rows:
        print(f"{name:<{width}}  {p50:7.0f}us  {p99:7.0f}us")
    print()
    print_runs(commands)


def lock_rows(tmp: str, port: int, calls: int) -> list[tuple[str, float, float]]:
    """Acquire+release of a host lock (flock) and of a fleet lock (lease) on one connection."""
    path = os.path.join(tmp, "bench.lock")

    def host() -> None:
        locks.acquire(path, command="bench").release()

    url = parse_state_url(f"redis://127.0.0.1:{port}/0")
    service = RedisLeaseService(open_redis_store(url, namespace="benchlock"))

    def fleet() -> None:
        lease = service.acquire("bench", locks.fleet_owner("bench", time.time()), 30.0)
        lease.release()  # type: ignore[union-attr]

    rows = [
        ("lock acquire+release (host)", *measure(host, calls)),
        ("lock acquire+release (fleet)", *measure(fleet, calls)),
    ]
    service.close()
    return rows


def run_commands(tmp: str, port: int) -> dict[str, list[float]]:
    """Whole `reliactl run --lock -- true` runs, host against fleet scope, interleaved."""
    runs = int(os.environ.get("BENCH_RUNS", "20"))
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
