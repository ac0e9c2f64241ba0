"""`reliactl run` with a state store another process holds locked (``BEGIN EXCLUSIVE``): the
job is not delayed by the store's 30 s busy wait, and what cannot be recorded is one warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from runhelpers import reliactl_cmd
from storelock import write_lock_held

# Generous (the bounded waits are ~6 s in all), yet below the 30 s of one unbounded wait
# (before: 30.7 s for `run -- true`, 60.5 s with --breaker).
HANG = 25.0


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RELIACTL_STATE__PATH": str(tmp_path / "state" / "state.db")}


def _runs(tmp_path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        reliactl_cmd("runs", "--json"),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    runs: list[dict[str, object]] = json.loads(done.stdout)["runs"]
    return runs


def test_a_locked_store_delays_neither_the_job_nor_its_end(tmp_path: Path) -> None:
    """`run --breaker b` while the store stays locked: the job runs, its exit code passes
    through, and the breaker's outcome and the history row are given up within the bound,
    the row with one warning line (no traceback)."""
    env = _env(tmp_path)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    with write_lock_held(tmp_path / "state" / "state.db"):
        done = subprocess.run(
            reliactl_cmd("run", "--breaker", "b", "--", "sh", "-c", "echo ran; exit 3"),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    assert done.returncode == 3 and done.stdout == "ran\n"
    lines = [line for line in done.stderr.splitlines() if "not recorded in the history" in line]
    assert len(lines) == 1 and "database is locked" in lines[0] and "gave up" in lines[0]
    assert "Traceback" not in done.stderr
    assert len(_runs(tmp_path)) == 1  # only the run before the lock


def test_a_row_not_written_before_the_job_is_written_after_it(tmp_path: Path) -> None:
    """The store locked when the run starts and free by its end: the job starts within the
    bound (not after the 30 s busy wait) and its whole row, outcome included, is written
    after it (no warning)."""
    env = _env(tmp_path)
    subprocess.run(reliactl_cmd("run", "--", "true"), env=env, timeout=60, check=True)
    started, go = tmp_path / "started", tmp_path / "go"
    job = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; exit 4"
    with write_lock_held(tmp_path / "state" / "state.db"):
        proc = subprocess.Popen(
            reliactl_cmd("run", "--name", "late", "--", "sh", "-c", job),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + HANG
        while not started.exists():
            assert time.monotonic() < deadline, "the job did not start within the bound"
            assert proc.poll() is None
            time.sleep(0.05)
    go.touch()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert "not recorded" not in err and "history disabled" not in err
    newest = _runs(tmp_path)[0]
    assert newest["name"] == "late" and newest["outcome"] == "failure"
    assert newest["exit_code"] == 4 and newest["ended_at"] is not None
