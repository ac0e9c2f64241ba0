"""A run starting while `cleanup --stale-locks` sweeps is never told "busy" by the sweep.

The sweep judges a lock file (name, record, age, owner, lock table, POSIX/OFD probe) before
it takes the file's flock, and takes it only for a file it is about to remove; and
``acquire(wait=0)`` that finds an flock held with no holder record (a sweep, or a run between
its flock and its record write) keeps trying for ``NO_RECORD_GRACE`` before calling it busy.
The old code reported such a run busy ("held by an unknown process"), which
``--skip-if-locked`` turned into a silently skipped cron run (exit 0)."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.cleanup import sweep_stale_locks
from reliactl.errors import LockBusyError
from reliactl.locks import LockHolder


def test_acquire_waits_out_a_recordless_flock_for_a_moment(tmp_path: Path) -> None:
    """wait=0 against an flock held with an empty file (no record): acquire tries again
    within the grace; here the holder lets go at the first pause, and the lock is taken.
    The old code raised LockBusyError at once without pausing."""
    path = tmp_path / "job.lock"
    other = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    pauses: list[float] = []

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        fcntl.flock(other, fcntl.LOCK_UN)  # the sweep (or a starting run) lets go
        return True

    try:
        with locks.acquire(str(path), wait=0, command="job", sleep=pause) as held:
            assert held.held
        assert pauses and all(p <= locks.NO_RECORD_GRACE for p in pauses)
    finally:
        os.close(other)


def test_a_recordless_flock_kept_longer_than_the_grace_is_busy(tmp_path: Path) -> None:
    """The grace is bounded: an flock held with no record that is not let go is busy
    ("an unknown process") after the grace, not waited for."""
    path = tmp_path / "job.lock"
    other = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockBusyError, match="an unknown process"):
            locks.acquire(str(path), wait=0)
    finally:
        os.close(other)


def test_a_holder_with_a_record_is_busy_at_once(tmp_path: Path) -> None:
    """A lock held by a run (its record written) is busy at once with wait=0: the grace is
    only for a holder with no record."""
    path = tmp_path / "job.lock"
    pauses: list[float] = []

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        return True

    with (
        locks.acquire(str(path), command="job"),
        pytest.raises(LockBusyError, match=rf"held by pid {os.getpid()}"),
    ):
        locks.acquire(str(path), wait=0, sleep=pause)
    assert pauses == []


def test_the_sweep_judges_a_kept_file_without_locking_it(tmp_path: Path) -> None:
    """While the sweep judges a file whose holder it then finds alive, a run can take the
    lock (wait=0): the sweep holds no flock on a file it keeps. The old sweep held the flock
    while it judged, so this run was busy."""
    path = tmp_path / "job.lock"
    record = {"command": "job", "host": "here", "pid": 2**22 + 7, "started_at": 1000.0}
    path.write_text(json.dumps(record) + "\n")
    os.utime(path, (1000, 1000))
    taken: list[bool] = []

    def alive(holder: LockHolder) -> bool:
        with locks.acquire(str(path), wait=0, command="run") as held:
            taken.append(held.held)
        return True

    report = sweep_stale_locks(str(tmp_path), hostname="here", is_alive=alive)
    assert taken == [True]
    assert report.removed == () and report.kept == {"holder-alive": 1}


def _sweeper(directory: str, grace: float, stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sweep_stale_locks(directory, grace=grace)


@pytest.mark.stress
@pytest.mark.parametrize("grace", [5.0, 0.0], ids=["kept-new", "removed-stale"])
def test_runs_racing_the_sweep_are_never_falsely_busy(tmp_path: Path, grace: float) -> None:
    """The reviewer's race (bounded to ~3 s): a process sweeps the lock directory in a loop
    while this one takes and releases the lock with wait=0. kept-new: the file stays fresh,
    so the sweep keeps it (the old code: ~7% of attempts busy); removed-stale: grace 0, so
    the sweep removes every released file (taking its flock for a moment). No attempt may be
    busy."""
    path = str(tmp_path / "job.lock")
    locks.acquire(path, command="x").release()
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    sweeper = ctx.Process(target=_sweeper, args=(str(tmp_path), grace, stop))
    sweeper.start()
    ok, busy = 0, []
    try:
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            if grace and os.path.exists(path):
                os.utime(path)
            try:
                locks.acquire(path, wait=0, command="x").release()
                ok += 1
            except LockBusyError as exc:
                busy.append(str(exc))
    finally:
        stop.set()
        sweeper.join(30)
        if sweeper.is_alive():
            sweeper.kill()
    assert ok > 0 and busy == [], f"{len(busy)} busy of {ok + len(busy)}: {busy[:3]}"
