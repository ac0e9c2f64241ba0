"""Lock squatting: in a sticky shared lock directory (/tmp, /run/lock) anyone may create
NAME.lock first, hold it and forge its holder line. `run --lock` refuses a lock file owned by
another user than the caller or root (or writable by others) with one line naming the owner
and the path, exit 125 as for an untrusted lock directory, and never shows what the file says.
The sticky directory itself stays usable (DESIGN, "Hostile environments")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockError
from tests.runhelpers import NOBODY, run

# Run as nobody: create NAME.lock with a forged holder line, flock it, say so, hold it.
SQUAT = r"""
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, (json.dumps({"pid": 1, "host": os.uname().nodename, "started_at": 1.0,
                          "command": "root job"}) + "\n").encode())
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def sticky() -> Iterator[Path]:
    """A sticky, world-writable lock directory (1777, root's), reachable by nobody."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("these tests need root and setpriv (util-linux), as the suite does")
    top = Path(tempfile.mkdtemp(prefix="reliactl-squat-"))
    top.chmod(0o755)
    directory = top / "lock"
    directory.mkdir()
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(top)


@pytest.fixture
def squatter(sticky: Path) -> Iterator[Path]:
    """nobody holds sticky/job.lock (flock) with a record naming pid 1 and "root job"."""
    path = sticky / "job.lock"
    proc = subprocess.Popen(
        [*NOBODY, sys.executable, "-c", SQUAT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield path
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_file_of_another_user_is_refused_naming_owner_and_path(squatter: Path) -> None:
    """The library refuses nobody's file before locking or reading it: LockError (not
    LockBusyError) naming the owner and the path, and nothing of the forged record."""
    with pytest.raises(LockError) as caught:
        locks.acquire(str(squatter))
    message = str(caught.value)
    assert type(caught.value) is LockError
    assert f"refusing lock file {squatter}" in message
    assert "owned by nobody (uid 65534), not by root (uid 0)" in message
    assert "root job" not in message and "pid 1" not in message
    data = json.loads(squatter.read_text())
    assert data["command"] == "root job"  # untouched: never truncated or rewritten


def test_run_refuses_a_squatted_lock_with_one_line_and_exit_125(squatter: Path) -> None:
    """`reliactl run --lock-name job -- true` as root with nobody's squatted job.lock: exit
    125 (as for an untrusted lock directory; the old code said 75 "busy" on every run and
    showed the forged holder), one line, the command never ran."""
    ran = squatter.parent.parent / "ran"
    env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(squatter.parent)}
    result = run("run", "--lock-name", "job", "--", "touch", str(ran), env=env)
    assert result.returncode == 125, result.stderr
    assert not ran.exists()
    assert result.stderr.count("\n") == 1, result.stderr
    assert str(squatter) in result.stderr and "uid 65534" in result.stderr
    assert "root job" not in result.stderr


def test_own_and_roots_lock_files_in_a_sticky_directory_still_lock(sticky: Path) -> None:
    """The sticky-directory rule stands: root's own lock file there locks; nobody locks its
    own file and root's (read-only, 0444) one; only a file nobody could write is judged."""
    with locks.acquire(str(sticky / "mine.lock")) as held:
        assert held.held
    roots = sticky / "shared.lock"
    roots.write_text("")
    roots.chmod(0o444)
    script = (
        "import sys; from reliactl import locks\n"
        "for p in sys.argv[1:]:\n"
        "    with locks.acquire(p) as held: assert held.held\n"
        "print('ok')"
    )
    out = subprocess.run(
        [*NOBODY, sys.executable, "-c", script, str(sticky / "nobodys.lock"), str(roots)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "ok", out.stderr
    assert (sticky / "nobodys.lock").stat().st_uid == 65534


def test_a_lock_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    """Our own lock file made world-writable (0666): anyone could rewrite its holder line;
    refused with the mode in the message, like the state store's files."""
    path = tmp_path / "job.lock"
    path.write_text("")
    path.chmod(0o666)
    with pytest.raises(LockError, match=r"refusing lock file .*job\.lock: it is writable by"):
        locks.acquire(str(path))
