"""How long `reliactl health` takes: startup + built-in checks, and 50 concurrent HTTP checks.

Prints figures; asserts nothing. Goals (issue #6): built-in checks under 12x `python -c pass`;
50 concurrent checks against a server answering in 200 ms in under 1 s in all. The server
runs in its own process; `curl --parallel` fetching the same 50 URLs is the peer, in the same
interleaved rounds as the CLI. Printed after the machine's load: median, min..max, ratio.
(500 and 5,000 checks: benchmarks/health_scale.py.)

    python benchmarks/health.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    ServerProcess,
    interleave_once,
    missing_peer,
    print_header,
    print_spread_table,
    reliactl_cmd,
    sample_commands,
    sized,
)

CHECKS = 50


def command(argv: list[str], env: dict[str, str]) -> Callable[[], object]:
    """One whole command, output discarded: a candidate for ``interleave_once``."""

    def run() -> object:
        return subprocess.run(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=sized(15, 1), help="interleaved rounds")
    args = parser.parse_args()
    py = sys.executable
    print_header(f"reliactl health, {args.runs} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "HOME": tmp,
            "XDG_STATE_HOME": f"{tmp}/state",
            "XDG_CONFIG_HOME": f"{tmp}/cfg",
            "NO_COLOR": "1",
            "RELIACTL_CONFIG": "",
        }
        health = reliactl_cmd("health", "--json", "--no-alerts")
        first = sample_commands({"first": health}, runs=1, env=env, warmup=0)["first"][0]
        samples = sample_commands(
            {
                "python -c pass": [py, "-c", "pass"],
                "reliactl --version": reliactl_cmd("--version"),
                "reliactl config show": reliactl_cmd("config", "show"),
                "reliactl health --json": health,
            },
            runs=args.runs,
            env=env,
        )
        print("\nbuilt-in checks (goal: < 12x python -c pass)")
        print_spread_table(samples, "python -c pass", label="command")
        print(f"(the first run ever, which samples the CPU for 100 ms: {first * 1000:.1f}ms)")

        with ServerProcess(delay=0.2) as server:
            url = server.url + "/"
            from reliactl.config import CheckSpec, HealthMonitorConfig
            from reliactl.health.monitor import HealthMonitor

            specs = [CheckSpec(name=f"web{i}", kind="http", url=url) for i in range(CHECKS)]
            monitor = HealthMonitor(HealthMonitorConfig(system_checks=[], checks=specs), store=None)
            statuses: set[str] = set()

            def in_process() -> None:
                report = asyncio.run(monitor.check_all_health())
                statuses.add(report.overall_status.value)

            cfg = Path(tmp) / "reliactl.yaml"
            checks = "\n".join(
                f"    - {{name: web{i}, kind: http, url: '{url}'}}" for i in range(CHECKS)
            )
            cfg.write_text(f"health_monitor:\n  system_checks: []\n  checks:\n{checks}\n")
            commands: dict[str, list[str]] = {
                f"reliactl health ({CHECKS} http)": reliactl_cmd(
                    "--config", str(cfg), "health", "--json", "--no-alerts"
                ),
            }
            curl = shutil.which("curl")
            if curl is None:
                missing_peer("curl", "apt-get install curl")
            else:
                urls = [arg for _ in range(CHECKS) for arg in ("-o", "/dev/null", url)]
                commands[f"curl --parallel ({CHECKS})"] = [
                    curl, "-sS", "--parallel", "--parallel-max", str(CHECKS), *urls
                ]  # fmt: skip
            child_env = {**os.environ, **env}
            child_env.pop("PYTHONDONTWRITEBYTECODE", None)  # as _common.sample_commands
            candidates: dict[str, Callable[[], object]] = {
                name: command(argv, child_env) for name, argv in commands.items()
            }
            candidates["reliactl in-process"] = in_process
            rounds = interleave_once(candidates, rounds=args.runs)
            out = subprocess.run(
                commands[f"reliactl health ({CHECKS} http)"],
                env={**os.environ, **env}, capture_output=True, text=True, check=False,
            )  # fmt: skip
        print(f"\n{CHECKS} http checks, server answering in 200 ms in its own process")
        base = f"curl --parallel ({CHECKS})" if curl else f"reliactl health ({CHECKS} http)"
        print_spread_table(rounds, base)
        status = json.loads(out.stdout)["status"] if out.stdout else f"exit {out.returncode}"
        print(f"(CLI status {status}; in-process statuses {sorted(statuses)}; goal < 1000 ms)")


if __name__ == "__main__":
    main()
