"""What `reliactl serve` costs and sustains (issue 18).

1. Load: 50 concurrent keep-alive clients on /healthz, then on /metrics, 10 s each, on
   loopback, while check rounds run back to back (--interval 1s and a check that takes
   0.5 s, so a round is in progress most of the time): requests per second and p99 latency.
   Goal: p99 below 50 ms. The clients share the machine's cores with serve (one asyncio
   process), so the figures are a floor, not serve's ceiling.
2. Idle CPU at the default interval (health_monitor.check_interval, 1m): serve's user+system
   CPU (its children included) over windows with no request. Goal: below 1% of a core.
3. RSS: serve started on a store holding an hour of simulated history (a round every second
   for 3600 s: 5 checks' points, status changes, 500 runs of 20 declared jobs), after its
   first round and again after the load phases and the dashboard's 24 h history reads.

Rounds are interleaved (healthz, metrics, healthz, metrics, ...); each figure is printed as
"median (min..max)" over the rounds, after a line stating the machine's load. There is no
peer serving the same pages; the figures are read against the goals.
Run: python benchmarks/serve.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import print_header, reliactl_cmd, sized

CLIENTS = 50
CHECKS = ("queue", "memory_usage", "disk_usage:/", "cpu_usage", "slow")
JOBS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(tmp: Path) -> dict[str, str]:
    (tmp / "benchchecks.py").write_text(
        "import time\n"
        "def depth():\n    return {'value': 5.0}\n"
        "def slow():\n    time.sleep(0.5)\n    return {'value': 1.0}\n",
        encoding="utf-8",
    )
    jobs = "".join(f"  job{i:02d}: {{every: 1h}}\n" for i in range(JOBS))
    (tmp / "serve.yaml").write_text(
        "health_monitor:\n  system_checks: [memory, disk, cpu]\n  jobs_checks: false\n"
        "  checks:\n"
        "    - {name: queue, kind: python, target: 'benchchecks:depth', warn: '50'}\n"
        "    - {name: slow, kind: python, target: 'benchchecks:slow'}\n"
        "circuit_breaker:\n  breakers:\n"
        + "".join(f"    b{i}: {{failure_threshold: 3}}\n" for i in range(5))
        + f"jobs:\n{jobs}",
        encoding="utf-8",
    )
    state = tmp / "state"
    state.mkdir(mode=0o700)
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(tmp / "serve.yaml"),
        "RELIACTL_STATE__PATH": str(state / "state.db"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def simulate_history(env: dict[str, str], seconds: int = 3600) -> None:
    """An hour of a round every second, and 500 runs, written through the library."""
    from reliactl.config import load
    from reliactl.health.model import HealthMetric, HealthReport, Status, worst
    from reliactl.history import record_report
    from reliactl.state import open_state
    from reliactl.state.base import RunRecord

    config = load(env["RELIACTL_CONFIG"], environ=env).config
    store = open_state(config)
    start = time.time() - seconds
    for i in range(seconds):
        at = start + i
        status = Status.WARNING if (i // 600) % 2 else Status.OK  # a change every 10 minutes
        metrics = {
            name: HealthMetric(name, status, float(i % 100), "simulated", unit="%")
            for name in CHECKS
        }
        report = HealthReport(worst(m.status for m in metrics.values()), metrics, at, 0.01)
        record_report(store, report, config.state, now=at)
    for i in range(500):
        at = start + i * 7
        run = RunRecord(f"job{i % JOBS:02d}", "true", at, at + 1.5, 1, 0, "success")
        store.add_run(run)
    store.close()


def start_serve(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        reliactl_cmd("serve", "--port", str(port), *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as res:
                if json.loads(res.read())["rounds"] >= 1:
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve did not finish a round within 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _client(port: int, path: str, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(port: int, path: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, path, until, latencies) for _ in range(CLIENTS)))
    return latencies


def load(port: int, path: str, seconds: float) -> tuple[float, float, float]:
    """(requests per second, p50 and p99 in ms) of CLIENTS keep-alive clients."""
    latencies = asyncio.run(_load(port, path, seconds))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / seconds, statistics.median(latencies) * 1000, p99 * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=sized(3))
    parser.add_argument("--seconds", type=float, default=sized(10), help="each load phase")
    parser.add_argument("--idle-window", type=float, default=sized(20), help="each idle window")
    parser.add_argument("--history", type=int, default=sized(3600, 60), help="seconds simulated")
    args = parser.parse_args()
    print_header("reliactl serve: load, idle CPU and RSS (serve in its own process)")
    with tempfile.TemporaryDirectory() as tmp:
        env = setup(Path(tmp))
        started = time.perf_counter()
        simulate_history(env, args.history)
        print(f"simulated {args.history} s of history in {time.perf_counter() - started:.1f}s")
        print(f"state store: {Path(env['RELIACTL_STATE__PATH']).stat().st_size / 1e6:.1f} MB")

        proc, port = start_serve(env, "--interval", "1s")
        first_rss = rss_mb(proc.pid)
        results: dict[str, tuple[list[float], list[float], list[float]]] = {
            "/healthz": ([], [], []),
            "/metrics": ([], [], []),
        }
        try:
            for _ in range(args.rounds):
                for path, (rps, p50, p99) in results.items():
                    r, median, p = load(port, path, args.seconds)
                    rps.append(r)
                    p50.append(median)
                    p99.append(p)
            for _ in range(3):  # the dashboard's reads
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/history?since=24h&max_points=120", timeout=60
                ).read()
            after_rss = rss_mb(proc.pid)
        finally:
            stop(proc)
        print(
            f"\n{CLIENTS} clients, {args.seconds:g}s per phase, {args.rounds} interleaved rounds,"
        )
        print("check rounds back to back (--interval 1s, a 0.5 s check):")
        for path, (rps, p50, p99) in results.items():
            print(
                f"  {path:<9} {spread(rps, '{:.0f}')} req/s   p50 {spread(p50)} ms"
                f"   p99 {spread(p99)} ms"
            )

        proc, port = start_serve(env)  # the default interval
        try:
            time.sleep(2)
            shares = []
            for _ in range(args.rounds):
                before, t0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(args.idle_window)
                shares.append(100 * (cpu_seconds(proc.pid) - before) / (time.monotonic() - t0))
            idle_rss = rss_mb(proc.pid)
        finally:
            stop(proc)
        windows = f"{args.rounds} x {args.idle_window:g}s windows"
        print(f"\nidle CPU at the default interval ({windows}): {spread(shares, '{:.2f}')} %")
        print(
            f"RSS with {args.history} s of history: {first_rss:.0f} MB after the first round,"
            f" {after_rss:.0f} MB after the load phases, {idle_rss:.0f} MB idle"
        )


if __name__ == "__main__":
    main()
