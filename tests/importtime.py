"""A real reliactl start under ``python -X importtime``: what the start-up tests read (issue 21
item 4: which modules each command imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def cron_env(tmp_path: Path) -> dict[str, str]:
    """The environment cron gives a start: HOME and XDG dirs in ``tmp_path``, PATH, no
    RELIACTL_* variable (PYTHONPATH kept for an uninstalled checkout)."""
    env = {
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NO_COLOR": "1",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def imported(stderr: str) -> list[str]:
    """Every module ``-X importtime`` reported on ``stderr``, in the order they finished."""
    return [
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    ]


def start_reliactl(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime -m reliactl ARGV`` (this process's environment and directory
    unless given): the finished process and the modules it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reliactl", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        preexec_fn=preexec_fn,
    )
    return result, imported(result.stderr)
