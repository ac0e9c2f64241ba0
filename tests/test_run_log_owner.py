"""`run --log-file` never appends into another user's existing file.

"Created 0600" only held for new files: anyone could pre-create /shared/job.log mode 0666 in
a sticky directory, and `reliactl run --log-file /shared/job.log -- echo DB_PASSWORD=x`
appended the secret where that user reads it. The opened file is now fstat'ed and refused
unless it is the invoking user's own (trust.not_own): one line naming owner and path,
exit 125 (as every other refused --log-file), the job never started.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runhelpers import NOBODY, run

from reliactl.trust import not_own


def test_another_users_log_file_in_a_sticky_directory_is_refused(shared_dir: Path) -> None:
    """nobody pre-creates job.log 0666 in a sticky shared directory: refused (125), one
    line naming nobody and the path, the job not run, nothing written into the file."""
    log = shared_dir / "job.log"
    subprocess.run([*NOBODY, "sh", "-c", f"umask 0; : > '{log}'"], check=True, timeout=60)
    marker = shared_dir / "ran"
    result = run(
        "run", "--log-file", str(log), "--", "sh", "-c", f"echo DB_PASSWORD=x; : > {marker}"
    )
    assert result.returncode == 125, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(log) in lines[0] and "owned by nobody (uid 65534)" in lines[0]
    assert not marker.exists()
    assert log.read_bytes() == b""
    assert "DB_PASSWORD" not in result.stdout


def test_a_service_users_log_in_a_directory_nobody_else_writes_is_appended(tmp_path: Path) -> None:
    """Root's cron appending to a service's own log (/var/log/app/job.log owned by the service
    user, in a directory others cannot write) works as before: nobody could have planted that
    file; the caller chose it. Only a directory others can write is refused (above)."""
    where = tmp_path / "app"
    where.mkdir(mode=0o755)
    os.chown(where, 65534, 65534)
    log = where / "job.log"
    log.write_bytes(b"before\n")
    os.chown(log, 65534, 65534)
    result = run("run", "--log-file", str(log), "--", "echo", "after")
    assert result.returncode == 0, result.stderr
    assert "[out] after" in log.read_text()


def test_own_existing_log_file_is_still_appended(tmp_path: Path) -> None:
    """Our own existing log file (root's, run as root) is appended to as before."""
    log = tmp_path / "job.log"
    log.write_bytes(b"before\n")
    result = run("run", "--log-file", str(log), "--", "echo", "after")
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert text.startswith("before\n") and "[out] after" in text


def test_not_own_names_the_owner_and_trusts_only_the_invoking_user() -> None:
    """The rule (trust.not_own): only the invoking user's own file; root's file is not a
    user's own (unlike trust.untrusted, which trusts root for configuration)."""
    st = os.stat("/")  # owned by root
    assert not_own(st, euid=0) is None
    reason = not_own(st, euid=54321)
    assert reason is not None and reason.startswith("owned by root (uid 0), not by ")
    assert "(uid 54321)" in reason or reason.endswith("uid 54321")
