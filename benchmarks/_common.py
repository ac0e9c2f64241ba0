"""Shared helpers for the benchmarks: interleaved timing of whole commands."""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

PY = sys.executable
# The test HTTP server (tests/httpserver.py) serves the HTTP benchmarks too: one copy.
TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)


def reliactl_cmd(*args: str) -> list[str]:
    """reliactl started as users start it: the ``reliactl`` console script installed next to
    sys.executable (``python -m reliactl`` only where there is none). ``-m`` costs ~7 ms of
    runpy and importlib.util that no user's start pays; the script's own ``import re`` is
    what pip's entry point costs everyone (DESIGN section 6, "`cleanup`'s fixed start-up")."""
    script = os.path.join(os.path.dirname(PY), "reliactl")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script, *args]
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


# --- Issue 21 item 5: benchmarks a reviewer can trust. Every benchmark states the machine's
# load, interleaves its candidates round by round, and prints median, min..max and the ratio to
# a named baseline; a peer that is not installed is one line, and the other rows still run.

BENCH_INSTALL = "pip install -e '.[bench]'"


def smoke() -> bool:
    """True when BENCH_SMOKE is set: the smallest sizes, to check that a script still runs."""
    return bool(os.environ.get("BENCH_SMOKE"))


def sized(default: int, smallest: int = 1) -> int:
    """``default``, or ``smallest`` under BENCH_SMOKE (tests/test_benchmarks.py)."""
    return smallest if smoke() else default


def load_line() -> str:
    """The machine's load as one line: cores and the 1/5/15-minute load averages."""
    one, five, fifteen = os.getloadavg()
    cores = os.cpu_count() or 1
    return (
        f"machine: {cores} cores, load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min,"
        f" {one / cores:.1f} per core); python {sys.version.split()[0]}"
    )


def print_header(title: str, *notes: str) -> None:
    """What is measured, then the machine's load (the figures mean little without it)."""
    print(title)
    print(load_line())
    for note in notes:
        print(note)


def missing_peer(name: str, install: str = BENCH_INSTALL) -> None:
    """One line for a peer that is not installed: named, with how to install it; no traceback."""
    print(f"peer not measured: {name} is not installed (install it: {install})")


def optional_peer(module: str, install: str = BENCH_INSTALL) -> Any:
    """The imported peer module, or None after printing ``missing_peer`` (other rows still run)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing_peer(module, install)
        return None


def peer_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _rotated(names: list[str], index: int) -> list[str]:
    """Round ``index``'s order: who goes first rotates, so no candidate always follows another."""
    shift = index % len(names) if names else 0
    return names[shift:] + names[:shift]


def interleave_calls(
    candidates: dict[str, Callable[[], object]],
    calls: int = 10_000,
    rounds: int = 7,
    warmup: int = 1,
    before: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate in each round, measured in this process.

    Round by round: every round runs ``calls`` calls of each candidate in turn (the order
    rotating), so drift and other load on the machine hit all candidates alike. ``before``
    (by name) runs untimed before a candidate's calls in each round (switch a mode on/off)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    clock = time.perf_counter_ns
    for index in range(warmup + rounds):
        for name in _rotated(names, index):
            fn = candidates[name]
            if before and name in before:
                before[name]()
            started = clock()
            for _ in range(calls):
                fn()
            per_call = (clock() - started) / calls / 1e9
            if index >= warmup:
                samples[name].append(per_call)
    return samples


def interleave_awaits(
    candidates: dict[str, Callable[[], Awaitable[object]]],
    calls: int = 10_000,
    rounds: int = 7,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """``interleave_calls`` for coroutine functions: all rounds in one event loop."""

    async def measure() -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        names = list(candidates)
        clock = time.perf_counter_ns
        for index in range(warmup + rounds):
            for name in _rotated(names, index):
                factory = candidates[name]
                started = clock()
                for _ in range(calls):
                    await factory()
                per_call = (clock() - started) / calls / 1e9
                if index >= warmup:
                    samples[name].append(per_call)
        return samples

    return asyncio.run(measure())


def interleave_once(
    candidates: dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall seconds of one call of each candidate per round (whole operations: a run, a
    request, a parse), round by round with the order rotating."""
    return interleave_calls(candidates, calls=1, rounds=rounds, warmup=warmup)


UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _figure(seconds: float, unit: str) -> str:
    value = seconds * UNITS[unit]
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def spread(values: Sequence[float], unit: str = "ms") -> str:
    """``median (min..max)`` of seconds, in ``unit``."""
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{_figure(med, unit)} ({_figure(low, unit)}..{_figure(high, unit)}) {unit}"


def print_spread_table(
    samples: dict[str, Sequence[float]],
    baseline: str | None = None,
    unit: str = "ms",
    label: str = "candidate",
    subtract: float = 0.0,
) -> None:
    """One row per candidate: median, min..max and the median's ratio to ``baseline``'s.

    ``samples`` are seconds (per call, per run); candidates with no samples are left out.
    ``subtract`` (seconds) is taken off every figure first (e.g. a bare function's cost, to
    show overhead); the ratio is of what remains. ``baseline`` None: the first row."""
    rows = {name: [v - subtract for v in values] for name, values in samples.items() if values}
    if not rows:
        print("(nothing measured)")
        return
    base_name = baseline if baseline in rows else next(iter(rows))
    base = statistics.median(rows[base_name])
    width = max(len(label), *(len(n) for n in rows))
    ratio_head = f"x {base_name}"
    print(f"{label:<{width}}  {'median':>10}  {'min..max':>19}  {ratio_head}")
    for name, values in rows.items():
        med = statistics.median(values)
        low_high = f"{_figure(min(values), unit)}..{_figure(max(values), unit)}"
        ratio = f"{med / base:.2f}x" if base > 0 else "-"
        print(f"{name:<{width}}  {_figure(med, unit):>7} {unit:<2}  {low_high:>19}  {ratio:>8}")
    count = len(next(iter(rows.values())))
    print(f"({count} interleaved rounds; ratio: median / median of {base_name})")


class ServerProcess:
    """An HTTP server (benchmarks/_httpproc.py) in its own process: ``url``, ``count()``."""

    def __init__(self, delay: float = 0.0, size: int = 0) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_httpproc.py")
        argv = [PY, script, "--delay", str(delay), "--size", str(size)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            self.close()
            raise SystemExit("the benchmark's HTTP server did not start")

    def count(self) -> int:
        """Requests the server has seen so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def with_peak_rss(argv: Sequence[str], report: str) -> list[str]:
    """``argv`` started through GNU time, which writes the child's own peak RSS to ``report``.

    ``os.wait4``'s ``ru_maxrss`` of a child of this process starts at this process's RSS at
    fork/vfork/posix_spawn time (the kernel carries the old mm's high-water mark over exec),
    so a small peer (curl, find) measured that way shows the benchmark's own ~25 MB. GNU time
    (~1 MB, Debian package `time`) is the child's parent instead. Without it: ``argv``
    unchanged, and ``read_peak_rss`` answers None."""
    if GNU_TIME is None:
        return list(argv)
    return [GNU_TIME, "-q", "-f", "%M", "-o", report, *argv]


def read_peak_rss(report: str) -> float | None:
    """MB from ``with_peak_rss``'s report, or None (no GNU time, or nothing written)."""
    try:
        with open(report, encoding="ascii") as handle:
            words = handle.read().split()
    except OSError:
        return None
    return int(words[-1]) / 1024 if words and words[-1].isdigit() else None


def module_at_ref(ref: str, path: str, name: str, directory: str) -> Any:
    """The module at ``path`` (relative to the repository) as of git ``ref``, loaded as its
    own module ``name`` (its file written into ``directory``) beside the working tree's: for
    before/after figures from one interleaved run. Its absolute imports resolve to the
    working tree's modules."""
    import importlib.util

    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout
    target = os.path.join(directory, f"{name}.py")
    with open(target, "w") as out:
        out.write(source)
    spec = importlib.util.spec_from_file_location(name, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
