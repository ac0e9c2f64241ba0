"""How long `reliactl health` takes: startup + built-in checks, and 50 concurrent HTTP checks.

Prints figures; asserts nothing. Goals (issue #6): built-in checks under 12x `python -c pass`;
50 concurrent checks against a server answering in 200 ms in under 1 s in all.

    python benchmarks/health.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import print_table, reliactl_cmd, time_commands


def wall(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


def serve(delay: float) -> SlowServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = SlowServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "XDG_STATE_HOME": f"{tmp}/state",
            "XDG_CONFIG_HOME": f"{tmp}/cfg",
            "NO_COLOR": "1",
        }
        env.pop("RELIACTL_CONFIG", None)
        # An installed package has its bytecode compiled; measure that, not source compiles.
        bytecode = env.pop("PYTHONDONTWRITEBYTECODE", None) is None
        health = reliactl_cmd("health", "--json", "--no-alerts")
        first = wall(health, env, 1)  # the first run ever samples the CPU for 100 ms
        medians = time_commands(
            {
                "python -c pass": [py, "-c", "pass"],
                "reliactl --version": reliactl_cmd("--version"),
                "reliactl config show": reliactl_cmd("config", "show"),
                "reliactl health --json": health,
            },
            runs=args.runs,
            env=env,
        )
        print(f"built-in checks, median of {args.runs} interleaved runs (goal: < 12x)")
        print_table(medians, "python -c pass")
        print(f"(the first run ever, which samples the CPU for 100 ms: {first * 1000:.1f}ms)")
        if not bytecode:
            print("(PYTHONDONTWRITEBYTECODE was set; unset here so .pyc files are used)")
        print()

        server = serve(0.2)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        from reliactl.config import CheckSpec, HealthMonitorConfig
        from reliactl.health.monitor import HealthMonitor

        specs = [CheckSpec(name=f"web{i}", kind="http", url=url) for i in range(50)]
        monitor = HealthMonitor(HealthMonitorConfig(system_checks=[], checks=specs), store=None)
        laps = []
        for _ in range(5):
            started = time.perf_counter()
            report = asyncio.run(monitor.check_all_health())
            laps.append(time.perf_counter() - started)
            assert report.overall_status.value == "OK", report.to_dict()
        print(
            f"50 http checks (200 ms server)  median {statistics.median(laps) * 1000:7.1f} ms"
            " in-process (goal < 1000 ms)"
        )

        cfg = Path(tmp) / "reliactl.yaml"
        checks = "\n".join(f"    - {{name: web{i}, kind: http, url: '{url}'}}" for i in range(50))
        cfg.write_text(f"health_monitor:\n  system_checks: []\n  checks:\n{checks}\n")
        cli = wall([py, "-m", "reliactl", "--config", str(cfg), "health", "--json"], env, 5)
        out = subprocess.run(
            [py, "-m", "reliactl", "--config", str(cfg), "health", "--json"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        status = json.loads(out.stdout)["status"]
        print(
            f"50 http checks via the CLI      median {cli * 1000:7.1f} ms"
            f" including startup (status {status})"
        )
        server.shutdown()


if __name__ == "__main__":
    main()
