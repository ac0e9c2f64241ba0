"""Configuration files another user owns or can write are never trusted (issue 13).

As sudo, ssh (StrictModes) and git (safe.directory): a configuration decides which commands
`health` runs and what `cleanup` deletes, so a file (or its directory) that another user owns
or can write is refused when named, and skipped (with a note) when only found by search.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runhelpers import NOBODY


def as_nobody_write(path: Path, text: str) -> None:
    subprocess.run([*NOBODY, "sh", "-c", f"cat > '{path}'"], input=text, text=True, check=True)
    assert path.stat().st_uid == 65534


def reliactl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def evil_config(shared: Path, marker: Path, victim: Path) -> str:
    return (
        "health_monitor:\n"
        "  system_checks: []\n"
        "  checks:\n"
        "    - name: evil\n"
        "      kind: command\n"
        f"      command: [touch, '{marker}']\n"
        "cleanup:\n"
        "  roots:\n"
        f"    - path: '{victim}'\n"
        "      max_age: 1s\n"
    )


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    root = tmp_path / "precious"
    root.mkdir()
    old = root / "data.db"
    old.write_text("keep me")
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    return root


def test_searched_config_owned_by_another_user_is_skipped_not_run(
    shared_dir: Path, tmp_path: Path, victim: Path
) -> None:
    """Root running `health` and `cleanup` in a world-writable directory ignores nobody's file."""
    marker = tmp_path / "evil-ran"
    as_nobody_write(shared_dir / "reliactl.yaml", evil_config(shared_dir, marker, victim))
    health = reliactl("health", "--no-alerts", cwd=shared_dir)
    assert "skipped configuration file reliactl.yaml" in health.stderr, health.stderr
    assert "owned by nobody (uid 65534)" in health.stderr, health.stderr
    assert not marker.exists()
    cleanup = reliactl("cleanup", cwd=shared_dir)
    assert "skipped configuration file" in cleanup.stderr, cleanup.stderr
    assert (victim / "data.db").read_text() == "keep me"


def test_explicit_config_owned_by_another_user_is_refused_with_78(
    shared_dir: Path, tmp_path: Path, victim: Path
) -> None:
    """--config naming another user's file: exit 78, one line naming the file and its owner."""
    marker = tmp_path / "evil-ran"
    cfg = shared_dir / "reliactl.yaml"
    as_nobody_write(cfg, evil_config(shared_dir, marker, victim))
    result = reliactl("--config", str(cfg), "health", "--no-alerts", cwd=tmp_path)
    assert result.returncode == 78, result.stderr
    first = result.stderr.splitlines()[0]
    assert str(cfg) in first and "owned by nobody (uid 65534)" in first, result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()
    env_named = subprocess.run(
        [sys.executable, "-m", "reliactl", "cleanup"],
        cwd=tmp_path,
        env={**os.environ, "RELIACTL_CONFIG": str(cfg)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert env_named.returncode == 78, env_named.stderr
    assert (victim / "data.db").read_text() == "keep me"


def test_own_file_in_a_world_writable_directory_is_not_trusted(
    tmp_path: Path, victim: Path
) -> None:
    """Root's own file is skipped when others can write its directory (they could swap it)."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    marker = tmp_path / "ran"
    (open_dir / "reliactl.yaml").write_text(evil_config(open_dir, marker, victim))
    result = reliactl("health", "--no-alerts", cwd=open_dir)
    assert f"the directory {open_dir} on its path is writable by others" in result.stderr, (
        result.stderr
    )
    assert not marker.exists()


def test_config_writable_by_others_is_refused_even_when_owned(tmp_path: Path, run_cli) -> None:
    """A mode 0666 file is refused by `config validate` (78) with its mode in the message."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  max_retries: 2\n")
    cfg.chmod(0o666)
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78, result.output
    assert "writable by others (mode 0666" in result.stderr
    cfg.chmod(0o644)
    assert run_cli("config", "validate", str(cfg)).exit_code == 0


def test_own_config_found_by_search_is_still_used_as_root(isolated_env: Path, run_cli) -> None:
    """./reliactl.yaml is still searched as root when it is root's own, in root's directory."""
    (isolated_env / "reliactl.yaml").write_text("retry:\n  max_retries: 7\n")
    result = run_cli("config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert '"max_retries": 7' in result.stdout and "skipped" not in result.stderr


def test_doctor_reports_a_skipped_config(shared_dir: Path, tmp_path: Path, victim: Path) -> None:
    """`doctor` names the skipped file and why (a WARN finding with a fix)."""
    as_nobody_write(shared_dir / "reliactl.yaml", evil_config(shared_dir, tmp_path / "m", victim))
    result = reliactl("doctor", "--json", cwd=shared_dir)
    import json

    findings = json.loads(result.stdout)["findings"]
    trust = [f for f in findings if f["check"] == "config trust"]
    assert trust and trust[0]["status"] == "warn", findings
    assert "owned by nobody" in trust[0]["message"] and "chown" in trust[0]["fix"]
