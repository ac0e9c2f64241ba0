"""The stale-lock sweep: only free locks whose holder is gone go; a held lock never does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliactl.cleanup import sweep_stale_locks
from reliactl.locks import LockHolder, parse_holder, read_holder

HOST = os.uname().nodename

HOLD = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def record(pid: int, host: str = HOST, started_at: float | None = None) -> str:
    started = time.time() - 60 if started_at is None else started_at
    doc = {"pid": pid, "host": host, "started_at": started, "command": "job.sh"}
    return json.dumps(doc) + "\n"


def lock_file(lock_dir: Path, name: str, content: str, *, age: float = 60.0) -> Path:
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    path.write_text(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_a_held_lock_is_kept_even_with_a_dead_pid_recorded(tmp_path: Path) -> None:
    path = lock_file(tmp_path, "job", record(dead_pid()))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        report = sweep_stale_locks(str(tmp_path), grace=0)
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()
    assert report.removed == () and report.kept == {"held": 1}


def test_a_free_lock_whose_holder_is_gone_is_removed(tmp_path: Path) -> None:
    pid = dead_pid()
    path = lock_file(tmp_path, "job", record(pid))
    report = sweep_stale_locks(str(tmp_path))
    assert not path.exists()
    [stale] = report.removed
    assert (stale.path, stale.pid, stale.reason, stale.command) == (
        str(path),
        pid,
        "holder-gone",
        "job.sh",
    )


def test_a_free_lock_of_a_live_process_is_kept(tmp_path: Path) -> None:
    path = lock_file(tmp_path, "job", record(os.getpid(), started_at=time.time()))
    report = sweep_stale_locks(str(tmp_path))
    assert path.exists() and report.kept == {"holder-alive": 1}


def test_a_recycled_pid_counts_as_gone(tmp_path: Path) -> None:
    """Our pid, but recorded as started long before this process was: the holder is gone."""
    path = lock_file(tmp_path, "job", record(os.getpid(), started_at=1_000_000.0))
    report = sweep_stale_locks(str(tmp_path))
    assert not path.exists() and report.removed[0].reason == "holder-gone"


def test_a_lock_of_another_host_is_kept(tmp_path: Path) -> None:
    path = lock_file(tmp_path, "job", record(dead_pid(), host="elsewhere.example"))
    report = sweep_stale_locks(str(tmp_path))
    assert path.exists() and report.kept == {"other-host": 1}


def test_a_lock_without_a_record_goes_only_after_the_grace_period(tmp_path: Path) -> None:
    """An empty lock file (what a released lock leaves) goes once older than the grace;
    a file holding something that is not reliactl's record is another program's: kept."""
    fresh = lock_file(tmp_path, "fresh", "", age=0)
    old = lock_file(tmp_path, "old", "", age=60)
    garbage = lock_file(tmp_path, "garbage", "garbage, not json", age=60)
    report = sweep_stale_locks(str(tmp_path), grace=5.0)
    assert fresh.exists() and not old.exists() and garbage.exists()
    assert [s.reason for s in report.removed] == ["no-record"]
    assert report.kept == {"foreign": 1, "new": 1}


def test_dry_run_removes_nothing_and_lists_the_same(tmp_path: Path) -> None:
    path = lock_file(tmp_path, "job", record(dead_pid()))
    dry = sweep_stale_locks(str(tmp_path), dry_run=True)
    assert path.exists()
    real = sweep_stale_locks(str(tmp_path))
    assert [s.path for s in dry.removed] == [s.path for s in real.removed] == [str(path)]


def test_only_regular_dot_lock_files_are_considered(tmp_path: Path) -> None:
    target = lock_file(tmp_path / "elsewhere", "victim", record(dead_pid()))
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "link.lock").symlink_to(target)
    (tmp_path / "locks" / "notes.txt").write_text(record(dead_pid()))
    os.mkfifo(tmp_path / "locks" / "pipe.lock")
    report = sweep_stale_locks(str(tmp_path / "locks"))
    assert target.exists() and (tmp_path / "locks" / "notes.txt").exists()
    assert report.removed == () and report.kept == {"not-a-file": 2}


def test_a_missing_lock_dir_is_nothing_to_do(tmp_path: Path) -> None:
    report = sweep_stale_locks(str(tmp_path / "none"))
    assert report.missing and report.ok and report.removed == ()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'{"pid": 12, "host": "h", "started_at": 5, "command": "c"}\n',
            LockHolder(12, "h", 5.0, "c"),
        ),
        (b'{"pid": 12}', LockHolder(12, None, None, None)),
        (b'{"pid": true}', None),
        (b'{"pid": -3}', None),
        (b'{"pid": 0, "started_at": 5}', None),
        (b'{"pid": 7, "started_at": true}', LockHolder(7, None, None, None)),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
        (b"", None),
    ],
)
def test_holder_records_are_read_strictly(
    data: bytes, expected: LockHolder | None, tmp_path: Path
) -> None:
    """One reader for the sweeper and the busy message: a record without a positive int pid is
    no holder, in both (locks.read_holder used to report pid -3 or started_at True)."""
    assert parse_holder(data) == expected
    path = tmp_path / "job.lock"
    path.write_bytes(data)
    assert read_holder(str(path)) == (expected or LockHolder(None, None, None, None))


# --------------------------------------------------------------------------- the race

CONTENDER = r"""
import fcntl, json, os, random, sys, time
path, stop, violations, dead, mode = sys.argv[1:6]
holds = 0
while not os.path.exists(stop):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        os.close(fd)
        continue
    mine = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
        os.close(fd)  # the sweeper unlinked the inode we opened: retry, as `run` does
        continue
    # Held: record a dead holder (or nothing), so only the flock itself protects the file.
    os.ftruncate(fd, 0)
    if mode == "record":
        os.pwrite(fd, (json.dumps({"pid": int(dead), "host": os.uname().nodename,
                                   "started_at": time.time(), "command": "x"}) + "\n").encode(), 0)
    holds += 1
    time.sleep(random.uniform(0, 0.004))
    try:
        now = os.stat(path, follow_symlinks=False)
        ok = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
    except FileNotFoundError:
        ok = False
    if not ok:
        with open(violations, "a") as fh:
            fh.write(f"{path} removed while held\n")
    os.close(fd)
    time.sleep(random.uniform(0, 0.002))
print(holds)
"""


def lock_race(tmp_path: Path, sweeps: int) -> tuple[int, int]:
    locks = tmp_path / "locks"
    locks.mkdir()
    stop = tmp_path / "stop"
    violations = tmp_path / "violations"
    dead = str(dead_pid())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONTENDER,
                str(locks / f"job{i}.lock"),
                str(stop),
                str(violations),
                dead,
                "record" if i % 2 else "empty",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    removed = 0
    try:
        deadline = time.monotonic() + 10
        while not list(locks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(sweeps):
            report = sweep_stale_locks(str(locks), grace=0, hostname=os.uname().nodename)
            removed += len(report.removed)
            assert report.ok, report.errors
    finally:
        stop.touch()
        outs = [p.communicate(timeout=30)[0] for p in procs]
    holds = sum(int(o.strip() or 0) for o in outs)
    assert not violations.exists(), violations.read_text()
    return removed, holds


def test_sweeping_in_a_loop_never_removes_a_held_lock(tmp_path: Path) -> None:
    removed, holds = lock_race(tmp_path, sweeps=1500)
    assert holds > 10 and removed > 0  # both sides really ran against each other (liveness)


@pytest.mark.stress
def test_sweeping_race_many_rounds(tmp_path: Path) -> None:
    removed, holds = lock_race(tmp_path, sweeps=5000)
    assert holds > 20 and removed > 0  # liveness only; exact counts depend on the load


REAL_HOLDER = r"""
import json, os, random, sys, time
from reliactl.locks import acquire
path, stop, violations, dead = sys.argv[1:5]
holds = 0
while not os.path.exists(stop):
    lock = acquire(path, wait=None, command="job")  # re-checks the inode after locking
    mine = os.fstat(lock.fd)
    # The worst case for the sweeper: the record says the holder is dead.
    os.pwrite(lock.fd, (json.dumps({"pid": int(dead), "host": os.uname().nodename,
                                    "started_at": 1.0, "command": "x"}) + "\n").encode(), 0)
    holds += 1
    time.sleep(random.uniform(0, 0.004))
    try:
        now = os.stat(path, follow_symlinks=False)
        ok = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
    except FileNotFoundError:
        ok = False
    if not ok:
        with open(violations, "a") as fh:
            fh.write(f"{path} removed while held\n")
    lock.release()
    time.sleep(random.uniform(0, 0.002))
print(holds)
"""


def test_sweeps_never_remove_a_lock_held_through_reliactl_locks(tmp_path: Path) -> None:
    """The real `run --lock` locking code against sweeps: free stale files go, held ones stay."""
    locks = tmp_path / "locks"
    locks.mkdir()
    stop = tmp_path / "stop"
    violations = tmp_path / "violations"
    dead = str(dead_pid())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                REAL_HOLDER,
                str(locks / "job.lock"),
                str(stop),
                str(violations),
                dead,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    removed = 0
    try:
        deadline = time.monotonic() + 10
        while not list(locks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(1000):
            report = sweep_stale_locks(str(locks), grace=0)
            removed += len(report.removed)
            assert report.ok, report.errors
    finally:
        stop.touch()
        outs = [p.communicate(timeout=30)[0] for p in procs]
    assert not violations.exists(), violations.read_text()
    # Liveness only (the safety assertion is above): the holders did contend with the sweeps.
    assert sum(int(o.strip() or 0) for o in outs) > 5 and removed > 0
