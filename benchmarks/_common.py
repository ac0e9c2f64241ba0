"""Shared helpers for the benchmarks: interleaved timing of whole commands."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

PY = sys.executable
# The test HTTP server (tests/httpserver.py) serves the HTTP benchmarks too: one copy.
TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)


def reliactl_cmd(*args: str) -> list[str]:
    """reliactl started the way an installed console script starts it, via sys.executable."""
    return [PY, "-m", "reliactl", *args]


def time_commands(
    commands: dict[str, Sequence[str]],
    runs: int = 20,
    env: dict[str, str] | None = None,
    warmup: int = 2,
) -> dict[str, float]:
    """Median wall seconds of each command, runs interleaved so drift hits all equally."""
    samples = sample_commands(commands, runs, env, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def sample_commands(
    commands: dict[str, Sequence[str]],
    runs: int = 20,
    env: dict[str, str] | None = None,
    warmup: int = 2,
) -> dict[str, list[float]]:
    """Wall seconds of every run of each command, runs interleaved so drift hits all equally."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    full_env = {**os.environ, **(env or {})}
    # An installed reliactl runs from compiled .pyc files (pip compiles them). This machine sets
    # PYTHONDONTWRITEBYTECODE, which would make every start recompile every module instead.
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    for index in range(warmup + runs):
        for name, cmd in commands.items():
            started = time.perf_counter()
            subprocess.run(
                cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env
            )
            if index >= warmup:
                samples[name].append(time.perf_counter() - started)
    return samples


def print_table(medians: dict[str, float], baseline: str) -> None:
    base = medians[baseline]
    width = max(len(n) for n in medians)
    print(f"{'command':<{width}}  {'median':>9}  {'x ' + baseline:>12}")
    for name, value in medians.items():
        print(f"{name:<{width}}  {value * 1000:7.1f}ms  {value / base:11.1f}x")
