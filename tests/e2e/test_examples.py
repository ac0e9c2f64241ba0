"""The files under examples/ work as shipped: systemd units, the production config, CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from e2ehelpers import EXAMPLES, VENV_BIN, reliactl, shell_env

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
