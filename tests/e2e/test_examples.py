"""The files under examples/ work as shipped: systemd units, the production config, CI."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from e2ehelpers import EXAMPLES, VENV_BIN, WebhookServer, reliactl, shell_env

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """Every example unit passes `systemd-analyze verify` without a single complaint, once
    /usr/local/bin/reliactl is this venv's reliactl."""
    units = sorted((EXAMPLES / "systemd").iterdir())
    assert {u.suffix for u in units} == {".service", ".timer"}, units
    here = tmp_path / "units"
    here.mkdir()
    reliactl_bin = os.path.join(VENV_BIN, "reliactl")
    assert os.access(reliactl_bin, os.X_OK), reliactl_bin
    for unit in units:
        text = unit.read_text()
        (here / unit.name).write_text(text.replace("/usr/local/bin/reliactl", reliactl_bin))
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *(str(here / u.name) for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on "Unknown key" or "Failed to parse value, ignoring" too: any line
    # about our units is a failure. (Lines about the host's own units are not ours.)
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if str(here) in line or any(line.startswith(u.name) for u in units)
    ]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_the_example_config_validates() -> None:
    result = reliactl("config", "validate", "--no-env", str(EXAMPLES / "reliactl.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("valid: "), result.stdout


def test_the_example_config_names_what_the_examples_use() -> None:
    """The breaker of the crontab/systemd job is configured, with a Discord sink and both a
    heartbeat (file_age) and an http check; the cleanup roots are present."""
    result = reliactl("--config", str(EXAMPLES / "reliactl.yaml"), "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert "ideasheets" in config["circuit_breaker"]["breakers"]
    kinds = {c["kind"] for c in config["health_monitor"]["checks"]}
    assert {"http", "file_age"} <= kinds
    sinks = config["health_monitor"]["alerts"]
    assert any(s["kind"] == "discord" and s["cooldown"] for s in sinks), sinks
    assert config["cleanup"]["roots"]
    for name in ("crontab", "systemd/ideasheets.service"):
        assert "--breaker ideasheets" in (EXAMPLES / name).read_text(), name


def test_the_example_jobs_are_the_names_the_crontab_and_unit_record() -> None:
    """Each job the example config declares is the --name its crontab line and systemd unit
    record runs under, so the job:NAME health check judges the real history."""
    result = reliactl("--config", str(EXAMPLES / "reliactl.yaml"), "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["config"]["jobs"]
    assert jobs["ideasheets"]["schedule"] == "15 2 * * *"
    for name in ("crontab", "systemd/ideasheets.service"):
        assert "--name ideasheets" in (EXAMPLES / name).read_text(), name


SMOKE_CONFIG = """\
circuit_breaker:
  breakers:
    ideasheets: {{failure_threshold: 3}}
health_monitor:
  system_checks: []
  checks:
    - {{name: heartbeat, kind: file_age, path: "{heartbeat}", warn: 1h, critical: 2h}}
"""


def test_ci_smoke_check(tmp_path: Path) -> None:
    """examples/ci/smoke-check.sh: 0 when healthy; the health status when CRITICAL; 69 once
    a breaker is open."""
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(SMOKE_CONFIG.format(heartbeat=heartbeat))
    script = EXAMPLES / "ci" / "smoke-check.sh"

    def smoke(config: Path = cfg) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(script), str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=shell_env(),
        )

    healthy = smoke()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "valid: " in healthy.stdout and "OK" in healthy.stdout

    heartbeat.unlink()  # the job stopped beating: CRITICAL fails the deploy
    critical = smoke()
    assert critical.returncode == 2, critical.stdout + critical.stderr
    assert "CRITICAL" in critical.stdout and "== breakers" not in critical.stdout

    heartbeat.touch()
    tripped = reliactl("--config", str(cfg), "breaker", "trip", "ideasheets")
    assert tripped.returncode == 0, tripped.stderr
    blocked = smoke()
    assert blocked.returncode == 69, blocked.stdout + blocked.stderr
    assert "ideasheets" in blocked.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("retry:\n  max_retries: lots\n")
    invalid = smoke(broken)
    assert invalid.returncode == 78, invalid.stdout + invalid.stderr
    assert "retry.max_retries" in invalid.stdout + invalid.stderr


def test_ci_smoke_check_works_without_a_config_file(tmp_path: Path) -> None:
    """Run with no argument in a repository without reliactl.yaml, the smoke check checks
    the defaults (it used to fail: `config validate reliactl.yaml`, no such file)."""
    result = subprocess.run(
        ["sh", str(EXAMPLES / "ci" / "smoke-check.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env=shell_env(),
        cwd=tmp_path,
    )
    assert "valid: no configuration file found" in result.stdout, result.stdout + result.stderr
    # The built-in checks of this machine decide; only CRITICAL/UNKNOWN (>= 2) fail CI.
    assert result.returncode == 0 or "CRITICAL" in result.stdout, result.stdout + result.stderr


def test_ci_smoke_check_never_sends_alerts(tmp_path: Path) -> None:
    """A CRITICAL check fails the smoke check (exit 2) without alerting the configured sink:
    a CI run must not page anyone."""
    with WebhookServer() as server:
        cfg = tmp_path / "reliactl.yaml"
        cfg.write_text(
            SMOKE_CONFIG.format(heartbeat=tmp_path / "missing")
            + f'  alerts:\n    - {{name: ops, kind: webhook, url: "{server.url}/hook"}}\n'
        )
        assert reliactl("config", "validate", str(cfg)).returncode == 0
        result = subprocess.run(
            ["sh", str(EXAMPLES / "ci" / "smoke-check.sh"), str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            env=shell_env(),
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert server.posted() == []


def _unit_line(unit: str, key: str) -> str:
    lines = [line for line in (EXAMPLES / "systemd" / unit).read_text().splitlines() if "=" in line]
    found = [line.split("=", 1)[1] for line in lines if line.split("=", 1)[0] == key]
    assert len(found) == 1, (key, found)
    return found[0]


@pytest.mark.parametrize(
    ("code", "status", "touched"),
    [
        ("exited", "0", True),
        ("exited", "75", False),
        ("exited", "69", False),
        ("exited", "1", False),
        ("killed", "TERM", False),
    ],
)
def test_systemd_job_refreshes_its_heartbeat_only_after_a_real_success(
    tmp_path: Path, code: str, status: str, touched: bool
) -> None:
    """The job unit's heartbeat command runs as systemd would run it (`$$` unescaped, the
    EXIT_CODE/EXIT_STATUS of the main process set) and touches the heartbeat after exit 0
    only: not after 75 or 69, which SuccessExitStatus= makes clean for the unit."""
    text = (EXAMPLES / "systemd" / "ideasheets.service").read_text()
    assert not [line for line in text.splitlines() if line.startswith("ExecStartPost")]
    command = _unit_line("ideasheets.service", "ExecStopPost").lstrip("-")
    assert "$EXIT_STATUS" not in command.replace("$$", "")  # systemd would expand it itself
    heartbeat = tmp_path / "heartbeat"
    command = command.replace("$$", "$").replace("/var/lib/ideasheets/heartbeat", str(heartbeat))
    env = dict(shell_env(), EXIT_CODE=code, EXIT_STATUS=status, SERVICE_RESULT="success")
    result = subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr  # never fails the unit on its own
    assert heartbeat.exists() is touched


def _cron_command(marker: str) -> str:
    for line in (EXAMPLES / "crontab").read_text().splitlines():
        if line and not line.startswith("#") and marker in line and line[0] in "*0123456789":
            return line.split(None, 5)[5]
    raise AssertionError(f"no crontab line with {marker!r}")


def test_crontab_cleanup_line_prints_nothing_when_there_is_nothing_to_report(
    tmp_path: Path,
) -> None:
    """cron mails any output: the nightly cleanup line (roots, stale locks, state pruning) is
    silent on a night with nothing to report and exits 0 (it printed two summary lines)."""
    root = tmp_path / "scratch"
    root.mkdir()
    (root / "young.tmp").write_text("x")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"cleanup:\n  roots:\n    - {{path: {root}, max_age: 7d}}\n")
    command = _cron_command("reliactl cleanup")
    for night in (1, 2):
        result = subprocess.run(
            ["sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            env=shell_env(RELIACTL_CONFIG=str(cfg)),
            cwd=tmp_path,
        )
        assert result.returncode == 0, (night, result.stdout + result.stderr)
        assert result.stdout + result.stderr == "", (night, result.stdout + result.stderr)
    assert (root / "young.tmp").exists()
