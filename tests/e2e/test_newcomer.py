"""A newcomer's first minutes: `config init`, then `health`, in a fresh directory."""

from __future__ import annotations

import json
from pathlib import Path

from e2ehelpers import reliactl

BUILT_IN = {"cpu_usage", "memory_usage", "swap_usage", "file_handles", "process_health"}
NAGIOS_EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def test_health_after_config_init_runs_only_the_built_in_checks_and_alerts_nobody(
    tmp_path: Path,
) -> None:
    """After `config init`, `health` runs the built-in checks alone (no placeholder http,
    tcp, process or file_age check), attempts no alert delivery, and exits with what this
    machine's checks say: never 2 because an example check could not reach example.com."""
    assert reliactl("config", "init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "reliactl.yaml").exists()
    result = reliactl("health", "--json", cwd=tmp_path, timeout=60)
    doc = json.loads(result.stdout)
    names = {check["name"] for check in doc["checks"]}
    assert names - BUILT_IN <= {n for n in names if n.startswith("disk_usage:")}, names
    assert names >= BUILT_IN
    assert doc["alerts"] == []
    worst = max(
        (NAGIOS_EXIT[check["status"]] for check in doc["checks"]),
        key=lambda code: {0: 0, 3: 1, 1: 2, 2: 3}[code],
    )
    assert result.returncode == doc["exit_code"] == worst, result.stderr
    # Nothing waited for a timeout: the slowest built-in is the 100 ms first CPU sample.
    assert all(check["duration"] < 5 for check in doc["checks"]), doc["checks"]
    assert "alert" not in result.stderr.lower(), result.stderr
