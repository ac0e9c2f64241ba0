"""`reliactl jobs` and the `job` health checks, over real runs recorded by `reliactl run`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

CONFIG = """\
jobs:
  backup:
    every: 1h
    max_failures: 2
  nightly:
    schedule: "30 2 * * *"
    tz: Europe/Berlin
"""


def _config(tmp_path: Path, text: str = CONFIG) -> str:
    path = tmp_path / "jobs.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _run(run_cli, config: str, name: str, code: int) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        "--config", config, "run", "--name", name, "--", sys.executable, "-c", f"exit({code})"
    )
    assert result.exit_code == code, result.output


def test_jobs_lists_declared_and_seen_jobs_with_their_state(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Declared jobs first (a failure streak below max_failures is WARNING), then names only
    seen in history; --json has ISO 8601 UTC times to the second with `X_at_epoch` beside them
    (it had milliseconds and no number); a declared job not OK exits 1."""
    config = _config(tmp_path)
    _run(run_cli, config, "backup", 0)
    _run(run_cli, config, "backup", 4)
    _run(run_cli, config, "adhoc", 0)
    _run(run_cli, config, "other", 9)
    result = run_cli("--config", config, "jobs", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    by_name = {j["name"]: j for j in doc["jobs"]}
    assert list(by_name) == ["backup", "nightly", "adhoc", "other"]
    backup = by_name["backup"]
    assert (backup["status"], backup["consecutive_failures"]) == ("WARNING", 1)
    assert backup["last_outcome"] == "failure" and backup["last_success_at"].endswith("Z")
    # Times as every JSON document has them: ISO text to the second, the number beside it.
    epoch = backup["last_success_at_epoch"]
    assert backup["last_success_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    assert by_name["nightly"]["last_run_at_epoch"] is None
    assert "expected every 1h, last success" in backup["message"]
    assert by_name["nightly"]["status"] == "OK" and by_name["nightly"]["last_run_at"] is None
    assert by_name["adhoc"]["declared"] is False
    assert by_name["other"]["status"] == "WARNING"  # undeclared: at worst WARNING

    text = run_cli("--config", config, "jobs")
    assert "backup" in text.stdout and "WARNING" in text.stdout
    assert "1 failed run in a row (CRITICAL at 2" in text.stdout


def test_jobs_name_shows_recent_runs_and_an_unknown_name_is_a_usage_error(
    run_cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """`reliactl jobs NAME` adds its recent runs; a failing undeclared job does not make the
    listing exit 1; a name nobody knows exits 2."""
    config = _config(tmp_path)
    _run(run_cli, config, "backup", 0)
    _run(run_cli, config, "failing-adhoc", 1)
    assert run_cli("--config", config, "jobs").exit_code == 0  # undeclared: no verdict
    result = run_cli("--config", config, "jobs", "backup", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [j["name"] for j in doc["jobs"]] == ["backup"]
    assert [r["outcome"] for r in doc["runs"]] == ["success"]
    missing = run_cli("--config", config, "jobs", "nope")
    assert missing.exit_code == 2 and "no job named 'nope'" in missing.stderr


def test_health_has_a_job_check_per_declared_job_with_the_success_age(
    run_cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Kind job, on by default; Prometheus gets last_success_age in seconds; two failures in
    a row (max_failures 2) make health CRITICAL (exit 2)."""
    config = _config(tmp_path)
    _run(run_cli, config, "backup", 0)
    prom = run_cli("--config", config, "health", "-C", "job", "-f", "prometheus")
    assert prom.exit_code == 0, prom.output
    assert 'reliactl_health_status{check="job:backup",kind="job"} 0' in prom.stdout
    assert 'reliactl_health_value_seconds{check="job:backup",metric="last_success_age"}' in (
        prom.stdout
    )
    _run(run_cli, config, "backup", 1)
    _run(run_cli, config, "backup", 1)
    result = run_cli("--config", config, "health", "-C", "job:backup", "--json")
    assert result.exit_code == 2, result.output
    (metric,) = json.loads(result.stdout)["checks"]
    assert metric["kind"] == "job" and "2 failed runs in a row" in metric["message"]


def test_jobs_checks_false_turns_the_job_checks_off(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """health_monitor.jobs_checks: false leaves health without job:* checks."""
    config = _config(tmp_path, CONFIG + "health_monitor:\n  jobs_checks: false\n")
    result = run_cli("--config", config, "health", "-C", "job")
    assert result.exit_code == 3, result.output
    assert "no check named 'job'" in result.stderr
