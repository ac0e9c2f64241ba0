"""Output files that are not regular files, and hard-linked lock files, are refused at once.

Issue 13: `--log-file` on a FIFO blocked forever before the job started, and a lock file that
was a hard link to another file had that file truncated by the holder line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockError


def reliactl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # The generous timeout only detects a hang: before the fix these blocked forever.
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize("flag", ["--log-file", "--json-report"])
def test_run_refuses_a_fifo_output_before_the_job_starts(tmp_path: Path, flag: str) -> None:
    """`run --log-file FIFO` / `--json-report FIFO`: exit 125 at once, the job never runs."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    marker = tmp_path / "ran"
    result = reliactl("run", flag, str(fifo), "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert "is a FIFO, not a regular file; refused" in result.stderr
    assert not marker.exists()


def test_run_refuses_a_directory_as_log_file(tmp_path: Path) -> None:
    """A directory at --log-file is named as such (exit 125), not an opaque EISDIR."""
    result = reliactl("run", "--log-file", str(tmp_path), "--", "true")
    assert result.returncode == 125 and "is a directory" in result.stderr, result.stderr


def test_health_refuses_a_fifo_textfile_with_unknown(tmp_path: Path) -> None:
    """`health --textfile FIFO` is a bad option: exit 3 before any check runs."""
    fifo = tmp_path / "metrics.prom"
    os.mkfifo(fifo)
    result = reliactl("health", "--no-alerts", "--textfile", str(fifo))
    assert result.returncode == 3, result.stderr
    assert "--textfile" in result.stderr and "is a FIFO" in result.stderr
    assert fifo.is_fifo()


@pytest.mark.parametrize("force", [False, True])
def test_config_init_refuses_a_fifo_target(tmp_path: Path, force: bool) -> None:
    """`config init FIFO` (with or without --force) is refused at once and never blocks."""
    fifo = tmp_path / "reliactl.yaml"
    os.mkfifo(fifo)
    args = ["config", "init", str(fifo), *(["--force"] if force else [])]
    result = reliactl(*args)
    assert result.returncode == 1, result.stderr
    assert "is a FIFO, not a regular file; refused" in result.stderr
    assert fifo.is_fifo()


def test_a_hard_linked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A lock file that is a hard link to another file: refused, the other file intact."""
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    os.link(victim, lock_dir / "job.lock")
    with pytest.raises(LockError, match="2 hard links"):
        locks.acquire(str(lock_dir / "job.lock"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run:\n  lock_dir: '{lock_dir}'\n")
    marker = tmp_path / "ran"
    result = reliactl("--config", str(cfg), "run", "--lock-name", "job", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert "hard links" in result.stderr and not marker.exists()
    assert victim.read_text() == "precious\n"
