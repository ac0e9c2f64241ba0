"""How long `reliactl health` takes: startup + built-in checks, and 50 concurrent HTTP checks.

Prints figures; asserts nothing. Goals (issue #6): built-in checks under 12x `python -c pass`;
50 concurrent checks against a server answering in 200 ms in under 1 s in all. The server
runs in its own process; `curl --parallel` fetching the same 50 URLs is the peer, in the same
interleaved rounds as the CLI. Printed after the machine's load: median, min..max, ratio.
(500 and 5,000 checks: benchmarks/health_scale.py.)

Then 50 `command` checks running `true` (each plugin contained under a shim of its own, as
`run` contains its job: DESIGN section 7, "Hostile environments"): the CLI's wall time and
the cost of one program (``run_program``, 50 in a row): this tree with its C contain shim
(``reliactl/_containshim``, where built), the same with the Python shim forked from reliactl
(``RELIACTL_CONTAIN_SHIM=0``) and, with ``--base DIR``, a tree without the shim (e.g.
/tmp/basede55), in the same interleaved rounds.

    python benchmarks/health.py [--runs N] [--base DIR] [--commands-only]
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
    parser.add_argument("--base", help="a reliactl tree (its parent of reliactl/) to compare")
    parser.add_argument("--commands-only", action="store_true", help="only the command checks")
    args = parser.parse_args()
    if args.commands_only:
        command_checks(args.runs, args.base)
        return
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
    command_checks(args.runs, args.base)


ONE_PROGRAM = """
import os, time
from reliactl.health.checks import run_program
run_program(["true"], 5)
started, cpu = time.perf_counter(), os.times()
for _ in range({n}):
    run_program(["true"], 5)
wall, end = time.perf_counter() - started, os.times()
used = sum(end[:4]) - sum(cpu[:4])  # ours and our children's (shims, plugins) user + system
print(wall / {n}, used / {n})
"""


def command_checks(runs: int, base: str | None) -> None:
    """50 command checks `true`: the CLI and one program in-process, this tree and ``base``."""
    py = sys.executable
    # (PYTHONPATH, extra environment): this tree with its C contain shim (where built), the
    # same with the shim forked from reliactl (RELIACTL_CONTAIN_SHIM=0), and ``base``.
    trees: dict[str, tuple[str | None, dict[str, str]]] = {
        "this tree": (None, {}),
        "this tree, Python shim": (None, {"RELIACTL_CONTAIN_SHIM": "0"}),
    }
    if base is not None:
        trees["base"] = (base, {})
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "HOME": tmp,
            "XDG_STATE_HOME": f"{tmp}/state",
            "XDG_CONFIG_HOME": f"{tmp}/cfg",
            "NO_COLOR": "1",
            "RELIACTL_CONFIG": "",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cfg = Path(tmp) / "reliactl.yaml"
        checks = "\n".join(
            f"    - {{name: c{i}, kind: command, command: ['true']}}" for i in range(CHECKS)
        )
        cfg.write_text(f"health_monitor:\n  system_checks: []\n  checks:\n{checks}\n")
        candidates: dict[str, Callable[[], object]] = {}
        per_program: dict[str, list[float]] = {name: [] for name in trees}
        cpu_program: dict[str, list[float]] = {name: [] for name in trees}
        for name, (tree, extra) in trees.items():
            tree_env = {**env, **extra}
            if tree is not None:
                tree_env["PYTHONPATH"] = tree
            argv = [py, "-m", "reliactl"]  # the same start for both trees
            candidates[f"health, {CHECKS} command checks ({name})"] = command(
                [*argv, "--config", str(cfg), "health", "--json", "--no-alerts"], tree_env
            )

            def one(tree_env: dict[str, str] = tree_env, name: str = name) -> None:
                out = subprocess.run(
                    [py, "-c", ONE_PROGRAM.format(n=CHECKS)],
                    env=tree_env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                wall, cpu = out.stdout.split()
                per_program[name].append(float(wall))
                cpu_program[name].append(float(cpu))

            candidates[f"one program, {CHECKS} in a row ({name})"] = one
        for name, (tree, extra) in trees.items():  # a config error would be timed as fast
            tree_env = {**env, **extra} if tree is None else {**env, **extra, "PYTHONPATH": tree}
            argv = [py, "-m", "reliactl", "--config", str(cfg), "health", "--json", "--no-alerts"]
            done = subprocess.run(argv, env=tree_env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"health ({name}) exited {done.returncode}: {done.stderr}")
        load = os.getloadavg()[0]
        rounds = interleave_once(candidates, rounds=runs)
    print(f"\n{CHECKS} command checks `true` (load average {load:.1f} at the start)")
    print_spread_table({k: v for k, v in rounds.items() if k.startswith("health")})
    print("\none program (run_program, in-process): wall time")
    print_spread_table(per_program)
    print("one program: CPU time (user + system, reliactl's and its children's)")
    print_spread_table(cpu_program)


if __name__ == "__main__":
    main()
