"""The benchmarks still run and print what a reviewer needs (issue 21 item 5).

Each script runs as its own process with BENCH_SMOKE=1 (the smallest sizes) and must exit 0,
without a traceback, printing the machine's load and a table with median, min..max and the
ratio to a named baseline. Behaviour only: no figure is asserted (measurements are the
scripts' job). The heavier scripts (whole-command rounds, serve, Redis) are stress tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402

LOAD = re.compile(r"^machine: \d+ cores, load average [\d.]+ [\d.]+ [\d.]+", re.M)
TABLE = re.compile(r"median +min\.\.max +x \S")
ROW = re.compile(r"[\d.]+ +(ns|us|ms|s) +[\d.]+\.\.[\d.]+ +[\d.]+x$", re.M)


def run_bench(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run one benchmark at its smallest sizes; its stdout (stderr in the failure message)."""
    full = {**os.environ, "BENCH_SMOKE": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done.stdout


def assert_reviewable(out: str, baseline: str) -> None:
    assert LOAD.search(out), out
    assert TABLE.search(out), out
    assert f"x {baseline}" in out, out
    assert ROW.search(out), out


@pytest.mark.parametrize(
    ("script", "baseline"),
    [
        ("retry_overhead.py", "reliactl"),
        ("adaptive.py", "baseline, 7d"),
        ("perfdata.py", "ordinary items"),
        ("json_strict.py", "dumps_indented only"),
        ("tracing_overhead.py", "tracing off"),
        ("http_client.py", "plain httpx"),
        ("alerts.py", "2 checks"),
    ],
)
def test_in_process_benchmark_prints_load_median_range_and_ratio(
    script: str, baseline: str
) -> None:
    """A library-call benchmark runs at its smallest size and prints load, median, min..max
    and the ratio to its named baseline."""
    assert_reviewable(run_bench(script), baseline)


def test_retry_benchmark_measures_every_installed_peer_in_the_same_table() -> None:
    """tenacity, stamina and backoff, where installed, are rows of reliactl's own table."""
    out = run_bench("retry_overhead.py")
    for peer in ("tenacity", "stamina", "backoff"):
        installed = _installed(peer)
        assert (f"\n{peer} " in out) == installed, out
        assert (f"{peer} is not installed" in out) == (not installed), out


def test_missing_peer_is_one_line_and_the_other_rows_still_run(tmp_path: Path) -> None:
    """A peer that cannot be imported is one line naming it and how to install it (no
    traceback), and reliactl and the other peers are still measured."""
    hidden = tmp_path / "hidden"
    (hidden / "tenacity").mkdir(parents=True)
    (hidden / "tenacity" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    out = run_bench("retry_overhead.py", env={"PYTHONPATH": str(hidden)})
    line = "peer not measured: tenacity is not installed (install it: pip install -e '.[bench]')"
    assert out.count(line) == 1, out
    assert "\ntenacity " not in out, out
    assert_reviewable(out, "reliactl")


def test_interleaving_rotates_who_goes_first_each_round() -> None:
    """interleave_calls runs every candidate each round, the starting candidate rotating, and
    returns one sample per round per candidate."""
    order: list[str] = []
    samples = _common.interleave_calls(
        {name: (lambda n=name: order.append(n)) for name in "abc"}, calls=2, rounds=3, warmup=1
    )
    assert order == [*"aabbcc", *"bbccaa", *"ccaabb", *"aabbcc"]
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3, "c": 3}


def test_interleaved_awaits_and_untimed_switches() -> None:
    """interleave_awaits awaits each coroutine factory per round; ``before`` runs before
    each candidate's batch (a mode switch), once per round."""
    seen: list[str] = []

    async def tick() -> None:
        seen.append("t")

    samples = _common.interleave_awaits({"t": tick}, calls=3, rounds=2, warmup=0)
    assert seen == ["t"] * 6 and len(samples["t"]) == 2
    switched: list[str] = []
    _common.interleave_calls(
        {"x": lambda: None}, calls=5, rounds=2, warmup=0, before={"x": lambda: switched.append("x")}
    )
    assert switched == ["x", "x"]


def test_spread_table_states_median_range_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    """The table's median, min..max and ratio are those of the samples, in the given unit."""
    _common.print_spread_table(
        {"base": [0.001, 0.002, 0.003], "other": [0.004, 0.006, 0.010], "absent": []},
        "base",
        unit="ms",
    )
    out = capsys.readouterr().out
    assert re.search(r"^base +2\.00 ms +1\.00\.\.3\.00 +1\.00x$", out, re.M), out
    assert re.search(r"^other +6\.00 ms +4\.00\.\.10\.0 +3\.00x$", out, re.M), out
    assert "absent" not in out
    assert "3 interleaved rounds" in out


def test_server_process_serves_and_counts_from_its_own_process() -> None:
    """The benchmarks' HTTP server is another process, answers 200 ok and counts requests."""
    import urllib.request

    with _common.ServerProcess() as server:
        assert server.proc.pid != os.getpid()
        with urllib.request.urlopen(server.url + "/x", timeout=30) as answer:
            assert answer.read() == b"ok"
        assert server.count() == 1
    assert server.proc.returncode is not None


def test_peak_rss_is_the_childs_own_not_the_benchmarks(tmp_path: Path) -> None:
    """A small child of a big benchmark process reports its own peak RSS (through GNU time),
    not the parent's RSS it would inherit in wait4's ru_maxrss; without GNU time, None."""
    ballast = bytearray(96 * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    report = str(tmp_path / "rss")
    argv = _common.with_peak_rss(["/bin/true"], report)
    done = subprocess.run(argv, check=False)
    assert done.returncode == 0
    peak = _common.read_peak_rss(report)
    if _common.GNU_TIME is None:
        assert argv == ["/bin/true"] and peak is None
    else:
        assert peak is not None and 0 < peak < 32, peak
    del ballast


@pytest.mark.stress
@pytest.mark.parametrize(
    ("script", "baseline"),
    [
        ("startup.py", "python -c pass"),
        ("http_start.py", "python -c pass"),
        ("health.py", "curl --parallel (50)"),
        ("ping.py", "run_command(true)"),
        ("busy_store.py", "run -- true, free"),
    ],
)
def test_command_benchmark_prints_load_median_range_and_ratio(script: str, baseline: str) -> None:
    """A whole-command benchmark runs one round and prints load, median, min..max, ratio."""
    assert_reviewable(run_bench(script), baseline)


@pytest.mark.stress
def test_http_memory_benchmark_measures_curl_in_the_same_rounds() -> None:
    """http_memory prints reliactl's and curl's peak RSS and the ratio, load stated."""
    out = run_bench("http_memory.py")
    assert LOAD.search(out), out
    assert re.search(r"^ +0MB +reliactl +\d+ \(\d+\.\.\d+\) .* \d+\.\dx +0$", out, re.M), out
    assert re.search(r"^ +0MB +curl ", out, re.M), out


@pytest.mark.stress
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_fleet_benchmark_interleaves_sqlite_and_redis() -> None:
    """fleet prints SQLite and Redis operations in one table each, ratio to SQLite."""
    out = run_bench("fleet.py")
    assert_reviewable(out, "breaker call (sqlite)")
    assert "x lock acquire+release (host)" in out, out


@pytest.mark.stress
def test_serve_benchmark_states_the_load() -> None:
    """serve runs its smallest phases and prints load and median (min..max) figures."""
    out = run_bench("serve.py")
    assert LOAD.search(out), out
    assert re.search(r"/healthz +\d+ \(\d+\.\.\d+\) req/s", out), out


@pytest.mark.stress
def test_serve_slowloris_benchmark_states_the_load() -> None:
    """The slowloris benchmark runs its smallest round and prints load and its figures."""
    out = run_bench("serve_slowloris.py")
    assert LOAD.search(out), out
    assert re.search(r"/livez, fresh connection, attacked: +[\d.]+ \([\d.]+\.\.[\d.]+\) ms", out), (
        out
    )


@pytest.mark.stress
def test_serve_memory_benchmark_states_the_load() -> None:
    """The slow-readers memory benchmark runs its smallest round and prints load and RSS."""
    out = run_bench("serve_memory.py")
    assert LOAD.search(out), out
    assert re.search(r"RSS, peak while reading: +\d+ \(\d+\.\.\d+\) MB", out), out


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
