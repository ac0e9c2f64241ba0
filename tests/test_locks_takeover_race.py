"""Taking over another user's unheld lock file never removes a lock file someone holds.

Root (or the sticky directory's owner) takes another user's unheld NAME.lock over while
holding its flock. The old way (check the name still names it, then unlink) had a gap: the
file's owner removes it right after the check, a new run creates and locks its own NAME.lock,
and the unlink removed that held file, so two runs each held "the" lock. Now the name is
swapped atomically (renameat2 RENAME_EXCHANGE) for root's own already-locked file and, when
what came out is not the file root held, swapped back. The race is forced at the exact
point: the check is wrapped so that nobody removes their file (setpriv) and a second
holder locks a new one in between. Real files, a real sticky directory, real flocks."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockBusyError
from tests.runhelpers import NOBODY


def nobodys_leftover(path: Path) -> None:
    """An empty, unheld lock file of nobody's (what a run under that account leaves)."""
    subprocess.run([*NOBODY, "touch", str(path)], check=True, timeout=60)
    assert path.stat().st_uid == 65534


def test_a_lock_file_created_during_the_takeover_is_kept_and_busy(
    sticky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after root's check that job.lock still names nobody's unheld file, nobody
    removes it and another holder creates and flocks a new job.lock. Root's acquire then
    reports busy and the holder's file is still job.lock, still held (before: root unlinked
    it and took the lock too, two holders). No spare file is left in the directory."""
    path = sticky / "job.lock"
    nobodys_leftover(path)
    other: list[int] = []
    real_same_file = locks._same_file

    def racing_same_file(name: str, fd: int) -> bool:
        same = real_same_file(name, fd)
        if same and not other and os.fstat(fd).st_uid == 65534:
            subprocess.run([*NOBODY, "rm", "-f", name], check=True, timeout=60)
            held = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a second run holds it
            other.append(held)
        return same

    monkeypatch.setattr(locks, "_same_file", racing_same_file)
    try:
        with pytest.raises(LockBusyError):
            locks.acquire(str(path), wait=0)
        assert other, "the race was not forced"
        assert os.stat(path).st_ino == os.fstat(other[0]).st_ino  # the holder's file stays
        probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            assert not locks.try_flock(probe)  # and it is still held
        finally:
            os.close(probe)
    finally:
        for fd in other:
            os.close(fd)
    assert sorted(os.listdir(sticky)) == ["job.lock"]


def test_the_takeover_leaves_only_roots_locked_file(sticky: Path) -> None:
    """The ordinary takeover: nobody's unheld leftover is replaced by root's file, which
    root holds (a second open cannot flock it), and no spare file is left behind."""
    path = sticky / "job.lock"
    nobodys_leftover(path)
    held = locks.acquire(str(path), wait=0)
    try:
        st = path.stat()
        assert st.st_uid == 0
        assert st.st_ino == os.fstat(held.fd).st_ino
        probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            assert not locks.try_flock(probe)
        finally:
            os.close(probe)
        assert sorted(os.listdir(sticky)) == ["job.lock"]
    finally:
        held.release()


def test_without_name_exchange_the_takeover_still_works(
    sticky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem that cannot exchange names (renameat2 says EINVAL) the takeover falls
    back to unlinking nobody's unheld file under its flock, as before, and locks root's
    own; the spare file made for the exchange is removed."""
    path = sticky / "job.lock"
    nobodys_leftover(path)
    monkeypatch.setattr(locks, "_exchange_function", lambda: lambda at, a, b: errno.EINVAL)
    held = locks.acquire(str(path), wait=0)
    try:
        assert path.stat().st_uid == 0 and path.stat().st_ino == os.fstat(held.fd).st_ino
        assert sorted(os.listdir(sticky)) == ["job.lock"]
    finally:
        held.release()


def test_the_stale_lock_sweep_keeps_a_lock_file_created_during_its_removal(
    sticky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's same gap: root sweeping nobody's stale (empty, old, unheld) job.lock
    re-checks, under its flock, that the name still names it; right after that check nobody
    removes it and another holder creates and flocks a new job.lock. The sweep keeps it
    ("changed"), still held (before: it unlinked the held file); the ordinary case, nothing
    racing, removes nobody's file and leaves no spare file behind."""
    from reliactl.cleanup import sweep_stale_locks

    path = sticky / "job.lock"
    nobodys_leftover(path)
    os.utime(path, (1000, 1000))
    other: list[int] = []
    real_stat = os.stat

    def racing_stat(name: object, *args: object, **kwargs: object) -> os.stat_result:
        st = real_stat(name, *args, **kwargs)  # type: ignore[arg-type]
        if name == "job.lock" and "dir_fd" in kwargs and not other and st.st_uid == 65534:
            probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                swept = not locks.try_flock(probe)  # the sweep holds it: this is the re-check
            finally:
                os.close(probe)
            if swept:
                subprocess.run([*NOBODY, "rm", "-f", str(path)], check=True, timeout=60)
                held = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                other.append(held)
        return st

    monkeypatch.setattr(os, "stat", racing_stat)
    try:
        report = sweep_stale_locks(str(sticky))
        monkeypatch.undo()
        assert other, "the race was not forced"
        assert not report.removed and report.kept == {"changed": 1}, report
        assert os.stat(path).st_ino == os.fstat(other[0]).st_ino
    finally:
        monkeypatch.undo()
        for fd in other:
            os.close(fd)
    assert sorted(os.listdir(sticky)) == ["job.lock"]
    path.unlink()
    nobodys_leftover(path)
    os.utime(path, (1000, 1000))
    report = sweep_stale_locks(str(sticky))
    assert len(report.removed) == 1 and os.listdir(sticky) == [], report


def test_a_displaced_file_moved_away_before_it_is_looked_at_leaves_roots_lock_held(
    sticky: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the exchange put root's locked file at job.lock and nobody's unheld one
    at the spare name, nobody (its owner, who may rename it in the sticky directory) renames
    the spare name away, before root looks at what came out. Root's acquire keeps its own
    file, held, at job.lock (before: an uncaught FileNotFoundError, `run --lock-name job`
    exiting 125 "internal error" and leaving an unheld root job.lock)."""
    path = sticky / "job.lock"
    nobodys_leftover(path)
    real = locks._exchange_function()
    assert real is not None
    moved: list[str] = []

    def racing(at: int, a: str, b: str) -> int:
        failed = real(at, a, b)
        if not failed and not moved:
            away = str(sticky / "moved-away")
            subprocess.run([*NOBODY, "mv", a, away], check=True, timeout=60)
            moved.append(away)
        return failed

    monkeypatch.setattr(locks, "_exchange_function", lambda: racing)
    held = locks.acquire(str(path), wait=0)
    try:
        assert moved, "the race was not forced"
        st = path.stat()
        assert st.st_uid == 0 and st.st_ino == os.fstat(held.fd).st_ino
        probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            assert not locks.try_flock(probe)  # root's lock is held
        finally:
            os.close(probe)
        assert sorted(os.listdir(sticky)) == ["job.lock", "moved-away"]
    finally:
        held.release()


KILLED_MID_SWAP = """
import os, signal, sys
from reliactl import locks
locks._exchange_function = lambda: lambda at, a, b: os.kill(os.getpid(), signal.SIGKILL)
locks.acquire(sys.argv[1], wait=0)
"""


def test_the_stale_lock_sweep_removes_the_spare_file_a_killed_takeover_left(
    sticky: Path,
) -> None:
    """A run killed (-9) inside the takeover, after making its spare `.job.lock.PID.RANDOM`
    and before the exchange, leaves that empty root-owned dot-file for good (the sweep
    never judged dot-files). `cleanup --stale-locks` now removes it (its pid is gone, it is
    unheld), reporting it with that pid; a live swap's spare (its pid alive, flock held),
    another user's dot-file of that shape and a non-empty one are kept."""
    import sys

    from reliactl.cleanup import sweep_stale_locks

    path = sticky / "job.lock"
    nobodys_leftover(path)
    killed = subprocess.Popen([sys.executable, "-c", KILLED_MID_SWAP, str(path)])
    assert killed.wait(timeout=120) == -9
    (left,) = (name for name in os.listdir(sticky) if name.startswith(".job.lock."))
    assert locks.spare_pid(left) == killed.pid and (sticky / left).stat().st_uid == 0
    live = sticky / f".other.lock.{os.getpid()}.{'ab' * 6}"
    held = os.open(live, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    theirs = f".x.lock.1.{'cd' * 6}"
    subprocess.run([*NOBODY, "touch", str(sticky / theirs)], check=True, timeout=60)
    full = sticky / f".y.lock.1.{'ef' * 6}"
    full.write_text("not empty")
    os.utime(full, (1000, 1000))
    try:
        report = sweep_stale_locks(str(sticky))
        spares = [r for r in report.removed if os.path.basename(r.path) == left]
        assert len(spares) == 1 and spares[0].pid == locks.spare_pid(left), report
        assert sorted(os.listdir(sticky)) == sorted(["job.lock", live.name, theirs, full.name]), (
            report
        )
        os.utime(live, (1000, 1000))  # old, but held: still kept
        again = sweep_stale_locks(str(sticky))
        assert live.exists() and again.kept.get("held") == 1, again
    finally:
        os.close(held)
