"""`run`'s retry options speak `retry plan`'s (and the config's) vocabulary (issue 15 item 4).

Real `reliactl` processes; the schedules compared are deterministic (jitter none).
"""

from __future__ import annotations

import json
from pathlib import Path

from runhelpers import run

# A schedule as one previews it with `reliactl retry plan`, pasted into `run` as it is.
PLAN = (
    "--strategy", "linear", "--base-delay", "20ms", "--max-delay", "50ms", "--max-retries", "3",
    "--multiplier", "2", "--jitter", "none", "--max-elapsed", "none",
)  # fmt: skip


def plan(*flags: str) -> dict:
    result = run("retry", "plan", *flags, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def report_of(tmp_path: Path, *args: str) -> tuple[int, dict]:
    report = tmp_path / "r.json"
    result = run("run", "--json-report", str(report), *args)
    return result.returncode, json.loads(report.read_text())


def test_a_schedule_previewed_with_retry_plan_pastes_into_run(tmp_path: Path) -> None:
    """The same flags are accepted by both, and `run` pauses exactly as the plan shows."""
    shown = plan(*PLAN)
    code, doc = report_of(tmp_path, *PLAN, "--", "false")
    assert code == 1
    assert len(doc["attempts"]) == shown["attempts"] == 4
    pauses = [a["delay_after"] for a in doc["attempts"][:-1]]
    assert pauses == [row["delay"] for row in shown["schedule"]] == [0.02, 0.04, 0.05]


def test_the_old_spellings_still_work_and_mixing_them_is_refused(tmp_path: Path) -> None:
    """--retries/--backoff/--delay are hidden aliases with the same meaning; giving a setting
    under both names is a usage error (125) that runs nothing."""
    code, doc = report_of(
        tmp_path, "--retries", "2", "--backoff", "fixed", "--delay", "10ms", "--jitter", "none",
        "--", "false",
    )  # fmt: skip
    assert code == 1
    assert [a["delay_after"] for a in doc["attempts"]] == [0.01, 0.01, None]
    marker = tmp_path / "ran"
    both = run("run", "--delay", "10ms", "--base-delay", "20ms", "touch", str(marker))
    assert both.returncode == 125 and not marker.exists()
    assert both.stderr.strip().endswith(
        "--base-delay and --delay (its old name) both given; use --base-delay"
    ), both.stderr


def test_run_honours_max_elapsed_from_the_flag_and_the_config(tmp_path: Path) -> None:
    """`run` stops retrying at retry.max_elapsed as `retry plan` shows (it used to ignore it
    and make all 101 attempts); the plan assumes instant failures, so a real run makes at
    most the plan's attempts."""
    flags = ("--strategy", "fixed", "--base-delay", "50ms", "--jitter", "none")
    shown = plan(*flags, "--max-retries", "100", "--max-elapsed", "300ms")
    assert shown["attempts"] == 7 and shown["schedule"][-1]["cumulative"] == 0.3
    code, doc = report_of(
        tmp_path, *flags, "--max-retries", "100", "--max-elapsed", "300ms", "--", "false"
    )
    assert code == 1 and 1 <= len(doc["attempts"]) <= shown["attempts"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  max_elapsed: 300ms\n  max_retries: 100\n")
    configured = tmp_path / "configured.json"
    result = run(
        "-c", str(cfg), "run", "--retry", *flags, "--json-report", str(configured), "false"
    )
    assert result.returncode == 1 and "max_elapsed 300ms reached" in result.stderr
    assert 1 <= len(json.loads(configured.read_text())["attempts"]) <= 7


def test_bad_retry_values_are_usage_errors_that_run_nothing(tmp_path: Path) -> None:
    """A bad --max-elapsed or --multiplier is one line and exit 125, before anything runs."""
    marker = tmp_path / "ran"
    for flags, message in (
        (("--max-elapsed", "0s"), "--max-elapsed: expected a positive duration, got '0s'"),
        (("--multiplier", "0.5"), "--multiplier: expected a finite number >= 1, got 0.5"),
        (("--max-retries", "-1"), "--max-retries: expected 0 to 10000, got -1"),
    ):
        result = run("run", "--retry", *flags, "touch", str(marker))
        assert result.returncode == 125, (flags, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert not marker.exists()
