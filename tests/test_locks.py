"""The flock layer: RELIABILITY.md #6-#10 (util-linux flock, filelock's bug reports)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockBusyError, LockError


def hold_in_other_process(path: Path) -> subprocess.Popen[str]:
    """Another process holding the flock on ``path`` until its stdin closes."""
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def test_acquire_creates_the_file_0600_and_writes_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "job.lock"
    with locks.acquire(str(path), command="backup --full") as held:
        assert held.held
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        doc = json.loads(path.read_text().splitlines()[0])
        assert doc["pid"] == os.getpid()
        assert doc["host"] == socket.gethostname()
        assert doc["command"] == "backup --full"
        assert isinstance(doc["started_at"], float)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_release_never_unlinks_the_lock_file(tmp_path: Path) -> None:
    """filelock #574/#623: unlinking lets a waiter and a newcomer lock different inodes."""
    path = tmp_path / "job.lock"
    held = locks.acquire(str(path))
    inode = path.stat().st_ino
    held.release()
    held.release()  # twice is harmless
    assert path.exists() and path.stat().st_ino == inode
    assert path.read_text() == ""  # the holder line is cleared while still held


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """filelock CVE-2025-68146: a planted symlink truncated a victim file."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    path = tmp_path / "job.lock"
    path.symlink_to(victim)
    with pytest.raises(LockError, match="symbolic link"):
        locks.acquire(str(path))
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_a_dangling_symlink_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    path.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(LockError):
        locks.acquire(str(path))
    assert not (tmp_path / "would-be-created").exists()


def test_a_fifo_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    os.mkfifo(path)
    with pytest.raises(LockError, match="not a regular file"):
        locks.acquire(str(path))


def test_a_busy_lock_names_its_holder_and_the_loser_changes_nothing(tmp_path: Path) -> None:
    """filelock #591: losers must not truncate or re-mode the holder's file."""
    path = tmp_path / "job.lock"
    with locks.acquire(str(path), command="first"):
        os.chmod(path, 0o640)
        before = path.read_bytes()
        other = hold_in_other_process(tmp_path / "unrelated.lock")  # a real second process
        release(other)
        code = (
            "import sys\nfrom reliactl import locks\n"
            "try:\n"
            f"    locks.acquire({str(path)!r}, command='second')\n"
            "except locks.LockBusyError as e:\n"
            "    print(e); sys.exit(75)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 75, result.stderr
        assert f"pid {os.getpid()}" in result.stdout and "'first'" in result.stdout
        assert path.read_bytes() == before
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_wait_zero_fails_at_once_and_a_wait_succeeds_when_released(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    holder = hold_in_other_process(path)
    try:
        with pytest.raises(LockBusyError) as info:
            locks.acquire(str(path), wait=0)
        assert "unknown process" in str(info.value)  # that holder wrote no holder line
        timer = threading.Timer(0.2, release, args=(holder,))
        timer.start()
        with locks.acquire(str(path), wait=30) as held:
            assert held.attempt.waited > 0
        timer.join()
    finally:
        if holder.poll() is None:
            release(holder)


def test_a_bounded_wait_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    holder = hold_in_other_process(path)
    try:
        with pytest.raises(LockBusyError):
            locks.acquire(str(path), wait=0.2)
    finally:
        release(holder)


def test_a_sleep_that_returns_false_abandons_the_wait(tmp_path: Path) -> None:
    """The runner's sleep returns False when a signal arrives: the wait ends at once."""
    path = tmp_path / "job.lock"
    holder = hold_in_other_process(path)
    calls: list[float] = []

    def sleep(seconds: float) -> bool:
        calls.append(seconds)
        return False

    try:
        with pytest.raises(LockBusyError, match="gave up"):
            locks.acquire(str(path), wait=None, sleep=sleep)
        assert len(calls) == 1
    finally:
        release(holder)


def test_a_lock_file_replaced_while_waiting_is_retaken(tmp_path: Path) -> None:
    """Another tool removed the (stale) file while we waited: we must lock the new inode."""
    path = tmp_path / "job.lock"
    holder = hold_in_other_process(path)
    replaced = False

    def sleep(seconds: float) -> bool:
        nonlocal replaced
        if not replaced:
            path.unlink()  # the stale-lock sweeper
            release(holder)  # ... and the old holder goes away
            replaced = True
        return True

    with locks.acquire(str(path), wait=10, sleep=sleep) as held:
        assert held.attempt.retakes == 1  # (the new file may reuse the freed inode number)
        assert os.fstat(held.fd).st_ino == path.stat().st_ino
        # a newcomer on the path now really conflicts with us
        fd = os.open(path, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


def test_the_lock_descriptor_is_close_on_exec(tmp_path: Path) -> None:
    with locks.acquire(str(tmp_path / "job.lock")) as held:
        assert not os.get_inheritable(held.fd)
        assert fcntl.fcntl(held.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_another_users_read_only_lock_file_still_locks(tmp_path: Path) -> None:
    """A lock file we may only read (another user's 0444 file) still locks, untouched."""
    import tempfile

    if os.geteuid() != 0:
        path = tmp_path / "job.lock"
        path.write_text("")
        path.chmod(0o444)
        with locks.acquire(str(path)) as held:
            assert held.held
        assert path.stat().st_mode & 0o777 == 0o444
        return
    # As root every file is writable: become an unprivileged user for the acquire.
    shared = Path(tempfile.mkdtemp(prefix="reliactl-ro-"))
    try:
        shared.chmod(0o755)
        path = shared / "job.lock"
        path.write_text("")
        path.chmod(0o444)
        os.seteuid(65534)
        try:
            with locks.acquire(str(path)) as held:
                assert held.held
        finally:
            os.seteuid(0)
        assert path.stat().st_mode & 0o777 == 0o444 and path.stat().st_uid == 0
    finally:
        shutil.rmtree(shared)


def test_network_filesystems_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """filelock #6/#77: never a fake success where flock is not real."""
    monkeypatch.setattr(locks, "filesystem_type", lambda path: "nfs4")
    with pytest.raises(LockError, match="nfs4"):
        locks.acquire(str(tmp_path / "job.lock"))
    with locks.acquire(str(tmp_path / "job.lock"), allow_network_fs=True) as held:
        assert held.held


def test_filesystem_type_reads_the_longest_matching_mount(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "30 22 0:40 / /mnt/share rw,relatime shared:5 - nfs4 server:/export rw\n"
        "31 22 0:41 / /mnt/share\\040two rw - fuse.sshfs host:/ rw\n"
    )
    assert locks.filesystem_type("/mnt/share/locks", str(mountinfo)) == "nfs4"
    assert locks.filesystem_type("/mnt/share two/x", str(mountinfo)) == "fuse.sshfs"
    assert locks.filesystem_type("/mnt/shared", str(mountinfo)) == "ext4"
    assert locks.filesystem_type("/x", str(tmp_path / "missing")) is None
    assert locks.filesystem_type(str(tmp_path)) is not None  # the real table


def test_default_lock_names_come_from_the_resolved_path(tmp_path: Path) -> None:
    true = shutil.which("true")
    assert true is not None
    name = locks.lock_name_for(["true", "ignored", "args"])
    assert name == locks.encode_name(os.path.realpath(true))
    assert "/" not in name and not name.startswith(".")
    script = tmp_path / "my job.sh"
    script.write_text("")
    assert locks.lock_name_for([str(script)]).endswith("my%20job.sh")
    assert locks.lock_name_for(["no-such-program-xyz"]) == "%00no%2dsuch%2dprogram%2dxyz"


def test_shell_and_interpreter_jobs_do_not_share_one_default_lock(tmp_path: Path) -> None:
    """`sh -c A` and `sh -c B` are different jobs; `sh job.sh` is named after job.sh."""
    script = tmp_path / "job.sh"
    script.write_text("exit 0\n")
    a = locks.lock_name_for(["sh", "-c", "echo a"])
    b = locks.lock_name_for(["sh", "-c", "echo b"])
    assert a != b and a == locks.lock_name_for(["sh", "-c", "echo a"])
    by_script = locks.lock_name_for(["sh", "-e", str(script), "arg"])
    assert by_script.endswith("job.sh") and by_script == locks.lock_name_for(["sh", str(script)])
    assert locks.lock_name_for(["env", "A=1", "true"]).endswith("true")


def test_encoded_names_are_bounded_and_distinct() -> None:
    a = locks.encode_name("/x/" + "a" * 300)
    b = locks.encode_name("/y/" + "a" * 300)
    assert len(a) <= locks.MAX_NAME and len(b) <= locks.MAX_NAME and a != b
    assert not locks.encode_name("/../..").startswith(".")


@pytest.mark.parametrize("bad", ["", "a/b", "../x", ".hidden", "x" * 200, "sp ace"])
def test_bad_lock_names_are_refused(bad: str) -> None:
    with pytest.raises(LockError):
        locks.check_name(bad)


def test_read_holder_tolerates_garbage(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    for content in ("", "not json", "[1]", '{"pid": "x"}'):
        path.write_text(content)
        assert locks.read_holder(str(path)).pid is None
    path.write_text('{"pid": 7, "host": "h", "started_at": 1.5, "command": "c"}\n')
    holder = locks.read_holder(str(path))
    assert (holder.pid, holder.host, holder.started_at, holder.command) == (7, "h", 1.5, "c")
    assert "pid 7 on h" in holder.describe()
