"""reliactl run when it cannot write its own lines (issue 13, "the job must run").

The cron idiom `>>/var/log/job.log 2>&1` on a full /var (the job may be what frees space), a
closed stderr: the job still runs, its exit code is passed through, and reliactl's own output
is dropped with at most one note. /dev/full stands in for the full disk.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from runhelpers import default_signals, reliactl_cmd


def run_with(
    args: list[str], *, stdout: object, stderr: object, close_stderr: bool = False
) -> subprocess.CompletedProcess[bytes]:
    def prepare() -> None:
        default_signals()
        if close_stderr:
            os.close(2)

    return subprocess.run(
        reliactl_cmd(*args),
        stdout=stdout,  # type: ignore[arg-type]
        stderr=stderr,  # type: ignore[arg-type]
        preexec_fn=prepare,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flags", [[], ["--timestamps"], ["--quiet-success"], ["--lock"]])
def test_a_full_disk_for_all_output_still_runs_the_job_and_passes_its_code(
    flags: list[str], tmp_path: Path
) -> None:
    """`>/dev/full 2>&1`: the job runs to its end and its 3 comes back (was 1 or 125)."""
    marker = tmp_path / "ran"
    script = f"echo one; sleep 0.2; echo two >&2; echo ran > {marker}; exit 3"
    with open("/dev/full", "wb") as full:
        result = run_with(["run", *flags, "sh", "-c", script], stdout=full, stderr=full)
    assert result.returncode == 3
    assert marker.read_text() == "ran\n"


def test_timestamps_to_a_full_stdout_do_not_stop_the_job_and_say_so_once(tmp_path: Path) -> None:
    """--timestamps with stdout on a full disk: the job's output is dropped, the job runs on
    (it used to be killed mid-run with 125), and one note on stderr says why."""
    marker = tmp_path / "ran"
    script = f"for i in 1 2 3 4 5; do echo line $i; sleep 0.05; done; echo ran > {marker}; exit 3"
    with open("/dev/full", "wb") as full:
        result = run_with(
            ["run", "--timestamps", "sh", "-c", script], stdout=full, stderr=subprocess.PIPE
        )
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert marker.read_text() == "ran\n"
    assert err.count("cannot write to stdout (No space left on device)") == 1
    assert "failed in" in err  # reliactl's own lines on the writable stderr go on


def test_a_full_stderr_still_runs_the_job(tmp_path: Path) -> None:
    """`2>/dev/full` used to exit 1 before the job started."""
    marker = tmp_path / "ran"
    with open("/dev/full", "wb") as full:
        result = run_with(
            ["run", "--log-file", str(tmp_path / "log"), "sh", "-c", f"echo x > {marker}; exit 4"],
            stdout=subprocess.PIPE,
            stderr=full,
        )
    assert result.returncode == 4
    assert marker.read_text() == "x\n"
    log = (tmp_path / "log").read_text()
    assert log.count("cannot write to stderr") == 1  # the one note went where it could
    assert "failed in" in log


def test_a_closed_stderr_still_runs_the_job_and_no_file_becomes_its_stderr(
    tmp_path: Path,
) -> None:
    """`2>&-`: reliactl used to die with an internal error (125). Now fd 2 is /dev/null, so
    neither the lock file nor the state database can become the command's stderr."""
    fd2 = tmp_path / "fd2"
    script = f"readlink /proc/$$/fd/2 > {fd2}; echo to-stderr >&2; exit 5"
    result = run_with(
        ["run", "--lock-name", "closed", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=None,
        close_stderr=True,
    )
    assert result.returncode == 5
    assert fd2.read_text().strip() == "/dev/null"
