"""Overhead of `reliactl run` against the shell tools it replaces (issues 5 and 21).

Two tables, every candidate interleaved round by round (median, min..max, ratio, load):

1. Whole commands, as cron starts them:
   - `python -c pass` (the floor of any Python CLI),
   - `flock L timeout 10 true` (util-linux + coreutils: what cron lines chain today),
   - `reliactl run --lock --timeout 10 -- true` (the same promises, plus the supervised
     child, containment and a history row),
   - `reliactl run --lock -- true` and `... --no-history -- true`.
   Goal: reliactl run within 9x `python -c pass` (issue 5), 5x on a quiet machine (issue 21).
2. The child spawn alone, from one warm interpreter (no interpreter start in the figures):
   `run_command(("true",), timeout=10)` (fork the shim, posix_spawn the command, supervise,
   reap) against `subprocess.run(["flock", L, "timeout", "10", "true"])` and
   `subprocess.run(["true"])`. Goal (issue 21): run's spawn within a few ms of flock+timeout.
3. The relay's throughput: 256 MiB of lines through `run --max-output` and `run --log-file`
   into a pipe, against the bare pipeline (`cat F | cat`).

Besides wall time, table 1 prints the CPU time (user + system) of each command's whole process
tree (RUSAGE_CHILDREN): on a machine loaded by others, wall time mostly measures waiting for
a core, CPU time what the command costs. BENCH_BEFORE=DIR adds the rows of another checkout's
`reliactl` package (e.g. `git archive REV reliactl | tar -x -C DIR`) for before/after figures.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import PY, reliactl_cmd


def print_samples(
    title: str,
    samples: dict[str, list[float]],
    baseline: str,
    cpu: dict[str, list[float]] | None = None,
) -> None:
    base = statistics.median(samples[baseline])
    width = max(len(n) for n in samples)
    print(title)
    header = f"{'command':<{width}}  {'median':>9}  {'min..max':>17}  {'x ' + baseline:>8}"
    if cpu is not None:
        header += f"  {'CPU median':>10}  {'x':>6}"
    print(header)
    cpu_base = statistics.median(cpu[baseline]) if cpu is not None else 1.0
    for name, values in samples.items():
        median = statistics.median(values)
        spread = f"{min(values) * 1000:.1f}..{max(values) * 1000:.1f}ms"
        line = f"{name:<{width}}  {median * 1000:7.2f}ms  {spread:>17}  {median / base:7.2f}x"
        if cpu is not None:
            used = statistics.median(cpu[name])
            line += f"  {used * 1000:8.2f}ms  {used / cpu_base:5.2f}x"
        print(line)
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()


def sample_commands(
    commands: dict[str, list[str]], runs: int, env: dict[str, str], warmup: int = 2
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and tree CPU seconds of every run of each command, interleaved round by round."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    full_env = {**os.environ, **env}
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: from compiled .pyc files
    for index in range(warmup + runs):
        for name, cmd in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                cmd,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=full_env,
                cwd=env["HOME"],  # not a checkout: `python -m` puts the cwd first on sys.path
            )
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if index >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
    return wall, cpu


def sample_calls(
    calls: dict[str, Callable[[], object]], runs: int, warmup: int = 3
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds (this process and the children it reaped) of every call,
    interleaved round by round."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}

    def used() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    for index in range(warmup + runs):
        for name, call in calls.items():
            cpu_before = used()
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
            if index >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(used() - cpu_before)
    return wall, cpu


def old_runner(checkout: str) -> Any:
    """runner.py of another checkout, loaded beside ours (the rest of reliactl is ours)."""
    path = os.path.join(checkout, "reliactl", "runner.py")
    spec = importlib.util.spec_from_file_location("reliactl_runner_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "20"))
    have_flock = bool(shutil.which("flock") and shutil.which("timeout"))
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home, "NO_COLOR": "1"}
        lock = os.path.join(home, "bench.lock")
        commands: dict[str, list[str]] = {"python -c pass": [PY, "-c", "pass"]}
        if have_flock:
            commands["flock L timeout 10 true"] = ["flock", lock, "timeout", "10", "true"]
        commands["reliactl run --lock --timeout 10 -- true"] = reliactl_cmd(
            "run", "--lock", "--timeout", "10", "--", "true"
        )
        commands["reliactl run --lock -- true"] = reliactl_cmd("run", "--lock", "--", "true")
        commands["reliactl run --lock --no-history -- true"] = reliactl_cmd(
            "run", "--lock", "--no-history", "--", "true"
        )
        before = os.environ.get("BENCH_BEFORE")
        if before:
            commands["BEFORE run --lock --timeout 10 -- true"] = [
                "env",
                f"PYTHONPATH={before}",
                *reliactl_cmd("run", "--lock", "--timeout", "10", "--", "true"),
            ]
        wall, cpu = sample_commands(commands, runs=runs, env=env)
        print_samples(
            f"run overhead, {runs} interleaved runs (goal: within 9x python -c pass)",
            wall,
            "python -c pass",
            cpu,
        )

        from reliactl.runner import RunOptions, run_command

        options = RunOptions(command=("true",), timeout=10, job_control=False)
        calls: dict[str, Callable[[], object]] = {}
        if have_flock:
            calls["flock L timeout 10 true"] = lambda: subprocess.run(
                ["flock", lock, "timeout", "10", "true"], check=False
            )
        calls["run_command(true, timeout=10)"] = lambda: run_command(options)
        if before:
            old = old_runner(before)
            old_options = old.RunOptions(command=("true",), timeout=10, job_control=False)
            calls["BEFORE run_command(true, timeout=10)"] = lambda: old.run_command(old_options)
        calls["subprocess.run(true)"] = lambda: subprocess.run(["true"], check=False)
        spawn_runs = runs * 5
        wall, cpu = sample_calls(calls, spawn_runs)
        print_samples(
            f"the child spawn alone, one warm interpreter, {spawn_runs} interleaved runs",
            wall,
            "flock L timeout 10 true" if have_flock else "subprocess.run(true)",
            cpu,
        )

        relay(home, env, max(3, runs // 4), before)


def relay(home: str, env: dict[str, str], runs: int, before: str | None) -> None:
    """Table 3: the relay's throughput through a pipe (the job's output copied by reliactl:
    --max-output counts it, --log-file also writes it stamped to a file) against the bare
    pipeline, 256 MiB of 1 KiB lines read by `cat`."""
    data = os.path.join(home, "lines")
    with open(data, "wb") as out:
        out.write((b"x" * 1023 + b"\n") * (256 * 1024))
    job = f"cat {data}"
    log = os.path.join(home, "job.log")

    def through(prefix: str, flags: str) -> list[str]:
        cmd = " ".join(reliactl_cmd("run", "--no-history")) + f" {flags} -- {job}"
        return ["sh", "-c", f"rm -f {log}; {prefix}{cmd} | cat > /dev/null"]

    commands = {"cat F | cat": ["sh", "-c", f"{job} | cat > /dev/null"]}
    for flags in ("--max-output 1G", f"--log-file {log}"):
        commands[f"run {flags.split()[0]}"] = through("", flags)
        if before:
            commands[f"BEFORE run {flags.split()[0]}"] = through(f"PYTHONPATH={before} ", flags)
    wall, cpu = sample_commands(commands, runs=runs, env=env, warmup=1)
    print_samples(
        f"the relay, 256 MiB through a pipe, {runs} interleaved runs", wall, "cat F | cat", cpu
    )


if __name__ == "__main__":
    main()
