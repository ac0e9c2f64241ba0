"""`reliactl retry plan`: the schedule a policy would follow, as a table or JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def plan_json(run_cli, *args: str) -> dict:
    result = run_cli("retry", "plan", "--json", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_defaults_come_from_the_builtin_config(run_cli) -> None:
    doc = plan_json(run_cli, "--jitter", "none")
    assert doc["version"] == 1
    assert (doc["strategy"], doc["max_retries"], doc["base_delay"], doc["max_delay"]) == (
        "exponential",
        3,
        1.0,
        30.0,
    )
    assert [row["delay"] for row in doc["schedule"]] == [1.0, 2.0, 4.0]
    assert [row["cumulative"] for row in doc["schedule"]] == [1.0, 3.0, 7.0]
    assert [row["attempt"] for row in doc["schedule"]] == [2, 3, 4]
    assert doc["attempts"] == 4 and doc["total_delay"] == 7.0


def test_defaults_come_from_the_config_file(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  strategy: linear\n  base_delay: 2s\n  max_retries: 4\n")
    result = run_cli("--config", str(cfg), "retry", "plan", "--json", "--jitter", "none")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["strategy"] == "linear"
    assert [row["delay"] for row in doc["schedule"]] == [2.0, 4.0, 6.0, 8.0]


def test_flags_override_the_config(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  strategy: linear\n  max_retries: 9\n")
    result = run_cli(
        "--config",
        str(cfg),
        "retry",
        "plan",
        "--json",
        "--strategy",
        "exponential",
        "--base-delay",
        "500ms",
        "--max-delay",
        "3s",
        "--multiplier",
        "3",
        "--max-retries",
        "4",
        "--jitter",
        "none",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [row["delay"] for row in doc["schedule"]] == [0.5, 1.5, 3.0, 3.0]


def test_table_has_a_bar_per_delay(run_cli) -> None:
    result = run_cli("retry", "plan", "--jitter", "none", "--max-retries", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("exponential backoff, none jitter, base 1s, max 30s, x2")
    assert lines[1].split() == ["ATTEMPT", "DELAY", "CUMULATIVE"]
    rows = [line.split() for line in lines[2:6]]
    assert [r[:3] for r in rows] == [
        ["2", "1s", "1s"],
        ["3", "2s", "3s"],
        ["4", "4s", "7s"],
        ["5", "8s", "15s"],
    ]
    bars = [len(r[3]) for r in rows]
    assert bars == sorted(bars) and bars[-1] == 24 and bars[0] == 3
    assert lines[-1] == "5 attempts; attempt 1 at once; 15s of backoff in all"


def test_seed_makes_jitter_reproducible(run_cli) -> None:
    a = plan_json(run_cli, "--seed", "42", "--max-retries", "8")
    b = plan_json(run_cli, "--seed", "42", "--max-retries", "8")
    c = plan_json(run_cli, "--seed", "43", "--max-retries", "8")
    assert a["schedule"] == b["schedule"] and a["seed"] == 42
    assert a["schedule"] != c["schedule"]
    for row in a["schedule"]:
        assert row["low"] <= row["delay"] <= row["high"]


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_shows_the_range(run_cli, jitter: str) -> None:
    result = run_cli("retry", "plan", "--jitter", jitter, "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split() == ["ATTEMPT", "DELAY", "RANGE", "CUMULATIVE"]
    assert "seed 1" in result.stdout.splitlines()[0]


def test_max_elapsed_cuts_the_schedule(run_cli) -> None:
    doc = plan_json(run_cli, "--jitter", "none", "--max-retries", "10", "--max-elapsed", "10s")
    assert [row["delay"] for row in doc["schedule"]] == [1.0, 2.0, 4.0, 3.0]
    assert doc["schedule"][-1]["cut_by_deadline"] is True
    assert doc["max_elapsed"] == 10.0 and doc["total_delay"] == 10.0
    result = run_cli(
        "retry", "plan", "--jitter", "none", "--max-retries", "10", "--max-elapsed", "10s"
    )
    assert "3s (cut)" in result.stdout


def test_max_elapsed_none_lifts_the_config_limit(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  max_elapsed: 2s\n  max_retries: 3\n  jitter: none\n")
    result = run_cli("-c", str(cfg), "retry", "plan", "--json", "--max-elapsed", "none")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_delay"] == 7.0
    result = run_cli("-c", str(cfg), "retry", "plan", "--json")
    assert json.loads(result.stdout)["total_delay"] == 2.0


def test_zero_retries_is_a_plan_of_one_attempt(run_cli) -> None:
    doc = plan_json(run_cli, "--max-retries", "0")
    assert doc["schedule"] == [] and doc["attempts"] == 1
    result = run_cli("retry", "plan", "--max-retries", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("1 attempt; attempt 1 at once; 0ms of backoff in all")


def test_base_delay_above_the_configured_max_lifts_the_cap(run_cli) -> None:
    doc = plan_json(run_cli, "--base-delay", "1m", "--jitter", "none")
    assert doc["max_delay"] == 60.0 and [r["delay"] for r in doc["schedule"]] == [60.0] * 3


def test_max_delay_below_the_configured_base_lowers_it(run_cli) -> None:
    doc = plan_json(run_cli, "--max-delay", "500ms", "--jitter", "none")
    assert doc["base_delay"] == 0.5 and [r["delay"] for r in doc["schedule"]] == [0.5] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "expo"], "--strategy: expected one of exponential, linear, fixed"),
        (["--jitter", "ful"], "did you mean 'full'?"),
        (["--base-delay", "soon"], "--base-delay: expected a duration"),
        (["--base-delay", "-1s"], "--base-delay: expected a duration"),
        (["--max-delay", "-1s"], "--max-delay"),
        (["--max-delay", "1s", "--base-delay", "5s"], "must not be less than --base-delay"),
        (["--max-retries", "-1"], "--max-retries: expected 0 to 10000, got -1"),
        (["--max-retries", "100000"], "--max-retries: expected 0 to 10000"),
        (["--multiplier", "0.5"], "--multiplier: expected a finite number >= 1"),
        (["--multiplier", "inf"], "--multiplier: expected a finite number >= 1"),
        (["--max-elapsed", "0"], "--max-elapsed: expected a positive duration, got '0'"),
    ],
)
def test_bad_values_are_usage_errors(run_cli, args: list[str], message: str) -> None:
    result = run_cli("retry", "plan", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("reliactl: error: ")
    assert result.stdout == "" and "Traceback" not in result.output


def test_non_numbers_are_typer_usage_errors(run_cli) -> None:
    result = run_cli("retry", "plan", "--max-retries", "many")
    assert result.exit_code == 2
    assert "many" in result.output


def test_a_broken_config_exits_78(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  jitter: sometimes\n")
    result = run_cli("-c", str(cfg), "retry", "plan")
    assert result.exit_code == 78, result.output
    assert "retry.jitter" in result.stderr and result.stdout == ""


def test_help_lists_every_option(run_cli) -> None:
    result = run_cli("retry", "plan", "--help")
    assert result.exit_code == 0, result.output
    for option in (
        "--strategy",
        "--base-delay",
        "--max-delay",
        "--max-retries",
        "--jitter",
        "--multiplier",
        "--max-elapsed",
        "--seed",
        "--json",
    ):
        assert option in result.stdout
    assert "retry" in run_cli("--help").stdout


def test_plan_imports_no_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'retry', 'plan', '--jitter', 'none']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('pydantic', 'httpx', 'psutil', 'filelock', 'asyncio', 'rich')"
        " if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert "HEAVY []" in result.stderr, result.stderr
    assert "attempt" in result.stdout
