"""`reliactl run`'s limits and --watch-health end to end: a real reliactl process, real jobs,
the exit code, the summary line and the history (`runs --json`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from runhelpers import run

HOG = (
    "import time\n"
    "chunks = []\n"
    "for _ in range(60):\n"
    "    chunks.append(bytearray(10 * 1024 * 1024)); time.sleep(0.02)\n"
    "time.sleep(60)\n"
)


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def _last_run(cfg: str) -> dict:
    result = run("-c", cfg, "runs", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["runs"][0]


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--memory-max", "12XB", "--memory-max: expected a size"),
        ("--memory-max", "0", "--memory-max: expected a size above 0"),
        ("--max-output", "lots", "--max-output: expected a size"),
        ("--cpu-time", "fast", "--cpu-time:"),
        ("--nice", "20", "--nice: expected a number from -20 to 19"),
        ("--io-class", "realtime", "--io-class: expected one of idle, best-effort"),
        ("--watch-health", "soon", "--watch-health:"),
        ("--on-critical", "panic", "--on-critical: expected one of warn, stop"),
    ],
)
def test_bad_limits_are_one_line_usage_errors(
    tmp_path: Path, flag: str, value: str, said: str
) -> None:
    """A bad size, duration or choice never runs the command: one line, exit 125."""
    marker = tmp_path / "ran"
    result = run("run", flag, value, "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert result.stderr.startswith("reliactl: error: " + said), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


def test_max_output_passes_exactly_the_limit_and_records_the_run(tmp_path: Path) -> None:
    """`run --max-output 1000B -- yes`: 1000 bytes reach stdout, exit 121, outcome
    output_limit, and `runs --json` carries the peak RSS and CPU time."""
    cfg = _config(tmp_path, "")
    result = run("-c", cfg, "run", "--max-output", "1000B", "--", "yes")
    assert result.returncode == 121, result.stderr
    assert len(result.stdout) == 1000
    assert "more than --max-output" in result.stderr
    row = _last_run(cfg)
    assert (row["outcome"], row["exit_code"]) == ("output_limit", 121)
    assert row["peak_rss"] > 0 and row["cpu_time"] >= 0


def test_memory_max_stops_an_allocating_job(tmp_path: Path) -> None:
    """`run --memory-max 80MiB` on a job allocating 600 MiB: exit 121, outcome memory_limit,
    and the line naming which path enforced it."""
    cfg = _config(tmp_path, "")
    result = run("-c", cfg, "run", "--memory-max", "80MiB", "--", sys.executable, "-c", HOG)
    assert result.returncode == 121, result.stderr
    assert "--memory-max 80.0MiB enforced by" in result.stderr
    assert _last_run(cfg)["outcome"] == "memory_limit"


def test_watch_health_stops_the_job_when_a_file_age_check_turns_critical(
    tmp_path: Path,
) -> None:
    """--watch-health with --on-critical stop: the heartbeat file goes stale mid-run, the job
    is stopped (exit 122, outcome health_stopped) long before it would have ended."""
    hb = tmp_path / "hb"
    hb.touch()
    done = tmp_path / "done"
    cfg = _config(
        tmp_path,
        "health_monitor:\n  system_checks: []\n  checks:\n"
        f"    - {{name: heartbeat, kind: file_age, path: {hb}, warn: 1h, critical: 2h}}\n",
    )
    script = f"sleep 0.5; touch -d @0 {hb}; sleep 60; touch {done}"
    result = run(
        "-c", cfg, "run", "--watch-health", "0.2s", "--on-critical", "stop", "--",
        "sh", "-c", script,
        timeout=50,
    )  # fmt: skip
    assert result.returncode == 122, result.stderr
    assert "health is CRITICAL during the run: heartbeat" in result.stderr
    assert not done.exists()
    assert _last_run(cfg)["outcome"] == "health_stopped"


def test_limits_from_a_job_of_the_configuration(tmp_path: Path) -> None:
    """`run --job NAME` takes the job's own limits (jobs.NAME.max_output over run.*);
    a flag wins over both."""
    cfg = _config(
        tmp_path,
        "run:\n  max_output: 1MB\njobs:\n  flood:\n    every: 1h\n    max_output: 500B\n",
    )
    result = run("-c", cfg, "run", "--job", "flood", "--", "yes")
    assert result.returncode == 121, result.stderr
    assert len(result.stdout) == 500
    result = run("-c", cfg, "run", "--job", "flood", "--max-output", "700B", "--", "yes")
    assert len(result.stdout) == 700


def test_bad_limits_in_the_configuration_name_file_and_line(tmp_path: Path) -> None:
    """Limits in run: and jobs: are validated like every setting: file:line, all at once."""
    cfg = _config(
        tmp_path,
        "run:\n  memory_max: 12XB\n  nice: 40\njobs:\n  b:\n    every: 1h\n    io_class: rt\n",
    )
    result = run("config", "validate", cfg)
    assert result.returncode == 78, result.stderr
    assert f"{cfg}:2: run.memory_max: expected a size" in result.stderr
    assert f"{cfg}:3: run.nice: expected at most 19" in result.stderr
    assert f"{cfg}:7: jobs.b.io_class: expected one of idle, best-effort" in result.stderr


def test_watch_health_with_an_invalid_health_configuration_exits_78(tmp_path: Path) -> None:
    """A health configuration that cannot run refuses --watch-health: exit 78, nothing runs."""
    cfg = _config(tmp_path, "health_monitor:\n  checks:\n    - {name: hb, kind: file_age}\n")
    marker = tmp_path / "ran"
    result = run("-c", cfg, "run", "--watch-health", "1s", "--", "touch", str(marker))
    assert result.returncode == 78, result.stderr
    assert "health_monitor.checks" in result.stderr
    assert not marker.exists()
