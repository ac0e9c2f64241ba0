"""Lock squatting: in a sticky shared lock directory (/tmp, /run/lock) anyone may create
NAME.lock first, hold it and forge its holder line. `run --lock` refuses a lock file owned by
another user than the caller or root: held, it is busy naming only its owner (never what the
file says); free (flock and POSIX/OFD), root or the directory's owner removes it and takes the
lock (the empty leftover of a run under another account); anyone else is refused (exit 125).
A file writable by others is refused. The sticky directory itself stays usable (DESIGN,
"Hostile environments")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockBusyError, LockError
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


def test_a_held_lock_file_of_another_user_is_busy_naming_only_its_owner(squatter: Path) -> None:
    """nobody holds its own job.lock with a forged record: busy (LockBusyError), naming the
    owner and the path but nothing the file says (the old code showed the forged holder);
    the file is neither removed nor rewritten."""
    with pytest.raises(LockBusyError) as caught:
        locks.acquire(str(squatter))
    message = str(caught.value)
    assert f"lock {squatter} is busy" in message
    assert "a process of nobody (uid 65534)" in message
    assert "root job" not in message and "pid 1" not in message
    data = json.loads(squatter.read_text())
    assert data["command"] == "root job"  # untouched: never truncated or rewritten


def test_run_on_a_squatted_lock_is_busy_in_one_line_without_the_forged_holder(
    squatter: Path,
) -> None:
    """`reliactl run --lock-name job -- true` as root with nobody's held job.lock: exit 75
    (busy, as any held lock: holding it is all a squatter can do), one line naming the
    owner, no forged holder shown, the command never ran."""
    ran = squatter.parent.parent / "ran"
    env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(squatter.parent)}
    result = run("run", "--lock-name", "job", "--", "touch", str(ran), env=env)
    assert result.returncode == 75, result.stderr
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


def as_user(uid: int, code: str, *args: str, umask: str = "077") -> None:
    """Run python ``code`` as ``uid`` (umask ``umask``) to completion."""
    subprocess.run(
        [
            *("setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"),
            *(sys.executable, "-c", f"import os; os.umask(0o{umask})\n{code}", *args),
        ],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )


TOUCH = "import sys; open(sys.argv[1], 'w').close()"


def test_root_takes_over_the_empty_lock_file_a_run_as_another_user_left(sticky: Path) -> None:
    """The upgrade break: nobody's earlier run left backup.lock (empty, 0600: release()
    truncates, never unlinks). Nobody holds it, so root's `run --lock-name backup` removes it
    and locks its own (exit 0, the command ran, the file is root's now); the previous
    release refused it with exit 125 on every run."""
    path = sticky / "backup.lock"
    as_user(65534, TOUCH, str(path))
    ran = sticky.parent / "ran"
    env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(sticky)}
    result = run("run", "--lock-name", "backup", "--", "touch", str(ran), env=env)
    assert result.returncode == 0, result.stderr
    assert ran.exists()
    assert path.stat().st_uid == 0 and path.read_bytes() == b""


def test_another_users_file_under_a_posix_lock_is_busy_and_kept(sticky: Path) -> None:
    """A program of nobody's holds an fcntl (POSIX) lock on its job.lock, not an flock: the
    flock alone would look free, so root also asks F_OFD_GETLK, reports busy naming the owner
    and neither removes nor takes the file."""
    path = sticky / "job.lock"
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [*NOBODY, sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusyError, match=r"a process of nobody \(uid 65534\)"):
            locks.acquire(str(path))
        assert path.stat().st_uid == 65534
    finally:
        proc.kill()
        proc.wait()


def test_a_user_who_may_not_remove_another_users_file_is_refused(sticky: Path) -> None:
    """In root's sticky directory only root (or the directory's owner) may unlink another
    user's file: nobody finding uid 65533's unheld job.lock (0644) is refused (LockError,
    exit 125 in the CLI) naming the owner, and so is a 0600 one it cannot even open (the old
    message only said "Permission denied"); both files stay."""
    path = sticky / "job.lock"
    as_user(65533, TOUCH, str(path), umask="022")
    private = sticky / "private.lock"
    as_user(65533, TOUCH, str(private))
    code = (
        "import sys; from reliactl import locks; from reliactl.errors import LockBusyError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        locks.acquire(path)\n"
        "    except LockBusyError as e:\n"
        "        print('busy', e)\n"
        "    except locks.LockError as e:\n"
        "        print('refused', e)\n"
    )
    out = subprocess.run(
        [*NOBODY, sys.executable, "-c", code, str(path), str(private)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    assert lines[0].startswith(f"refused refusing lock file {path}: it is owned by uid 65533")
    assert "may not remove it" in lines[0]
    assert lines[1].startswith(f"refused refusing lock file {private}: it is owned by uid 65533")
    assert "may not open it" in lines[1]
    assert path.stat().st_uid == 65533 and private.stat().st_uid == 65533


def test_another_users_lock_file_writable_by_others_is_refused_not_taken(sticky: Path) -> None:
    """nobody's job.lock with mode 0666: anyone could have written it, so root refuses it
    (LockError with the mode) rather than locking, reading or removing it."""
    path = sticky / "job.lock"
    as_user(65534, TOUCH, str(path), umask="000")
    with pytest.raises(LockError, match=r"it is writable by others \(mode 0666") as caught:
        locks.acquire(str(path))
    assert type(caught.value) is LockError
    assert path.stat().st_uid == 65534


def test_root_sweep_removes_another_users_unheld_empty_lock_file(sticky: Path) -> None:
    """`cleanup --stale-locks` as root: nobody's empty, unheld, old backup.lock (a released
    run's leftover) is removed (the old sweep kept it as "other-user" for ever); nobody's
    empty job.lock that nobody's process holds (flock) is kept as held."""
    left = sticky / "backup.lock"
    as_user(65534, TOUCH + "; import os; os.utime(sys.argv[1], (1000, 1000))", str(left))
    held = sticky / "job.lock"
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.utime(sys.argv[1], (1000, 1000))\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [*NOBODY, sys.executable, "-c", code, str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(sticky)}
        result = run("cleanup", "--stale-locks", env=env, cwd=sticky.parent)
        assert result.returncode == 0, result.stderr
        assert not left.exists() and held.exists()
        assert "removed 1 stale lock" in result.stderr and "held 1" in result.stderr, result.stderr
    finally:
        proc.kill()
        proc.wait()
