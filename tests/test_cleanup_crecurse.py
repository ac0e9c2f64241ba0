"""The directory recursion in C (issue 21, sixth session): every rule it took over, pinned.

``_cleanupwalk.Lister.walk`` enters, checks, times and removes directories itself; the
Python walk is the reference. Each test here runs on both walks (the ``walk`` fixture of
tests/cleanupwalks.py) and expects the same report: a directory swapped for a symlink or
for another directory between listing and entering, a directory on another device, more
nesting than the process may hold descriptors for, a held lock deep in the tree, Ctrl-C
mid-walk, a dry run counting what the real run removes.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, Removal, clean_root
from tests.cleanupwalks import DAY, FUTURE, spy_walkers, walk, write  # noqa: F401 - walk: the fixture
from tests.test_cleanup_held import Holder

pytestmark = pytest.mark.usefixtures("walk")


def between_listing_and_entering(
    monkeypatch: pytest.MonkeyPatch, name: str, action: Any
) -> list[bool]:
    """Run ``action()`` once, after the directory holding ``name`` was listed and before
    ``name`` is entered: in the Python walk at enter(); in the C recursion at the callback
    for the batch's unsettled entries (a FIFO next to ``name`` makes one), which C makes
    after listing the batch and before entering any of its subdirectories."""
    done: list[bool] = []
    real_enter = cleanup._Walker.enter
    real_items = cleanup._Walker.c_items

    def once() -> None:
        if not done:
            done.append(True)
            action()

    def enter(self: cleanup._Walker, parent: Any, entry: str, st: Any, depth: int) -> Any:
        if entry == name:
            once()
        return real_enter(self, parent, entry, st, depth)

    def items(self: cleanup._Walker, fd: int, rel: str, shared: int, batch: Any) -> Any:
        once()
        return real_items(self, fd, rel, shared, batch)

    monkeypatch.setattr(cleanup._Walker, "enter", enter)
    monkeypatch.setattr(cleanup._Walker, "c_items", items)
    return done


def test_a_directory_swapped_for_a_symlink_before_it_is_entered_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listed directory becomes a symlink to a directory outside the root after it was
    listed: the open (O_NOFOLLOW|O_DIRECTORY) refuses it, it is skipped as "changed", and
    nothing outside the root is touched."""
    root = tmp_path / "r"
    outside = tmp_path / "outside"
    secret = write(outside / "secret")
    write(root / "victim" / "old")
    os.mkfifo(root / "fifo")

    def swap() -> None:
        os.rename(root / "victim", tmp_path / "moved")
        os.symlink(outside, root / "victim")

    done = between_listing_and_entering(monkeypatch, "victim", swap)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert done
    assert report.ok and report.skipped == {"changed": 1, "fifo": 1}
    assert secret.exists() and os.path.islink(root / "victim")
    assert (tmp_path / "moved" / "old").exists()
    assert report.files_removed == 0 and report.dirs_removed == 0


def test_a_directory_replaced_by_another_before_it_is_entered_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another directory renamed over the listed one (another inode under the same name)
    is not entered: the fstat after the open must find the listed inode ("changed")."""
    root = tmp_path / "r"
    write(root / "victim" / "old")
    other = write(tmp_path / "other" / "theirs").parent
    os.mkfifo(root / "fifo")

    def swap() -> None:
        os.rename(root / "victim", tmp_path / "moved")
        os.rename(other, root / "victim")

    done = between_listing_and_entering(monkeypatch, "victim", swap)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert done
    assert report.ok and report.skipped == {"changed": 1, "fifo": 1}
    assert (root / "victim" / "theirs").exists()


def test_a_directory_on_another_device_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmpfs mounted below the root after cleanup read the mount table (so the mount-point
    rule does not know it): its st_dev differs, so it is skipped as "other-filesystem" and
    nothing in it is removed. (With the mount point known, cleanup walks in Python.)"""
    root = tmp_path / "r"
    write(root / "old")
    mnt = root / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "tmpfs", str(mnt)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test needs to mount a tmpfs, as the suite does: {mounted.stderr}")
    try:
        inside = write(mnt / "old-inside")
        old = time.time() - 5 * DAY
        os.utime(inside, (old, old))
        monkeypatch.setattr(cleanup, "_mount_points_under", lambda root: set())
        report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
        assert report.ok and report.skipped == {"other-filesystem": 1}
        assert report.files_removed == 1 and inside.exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=False, timeout=60)


def test_a_lock_held_deep_in_the_tree_keeps_its_file_and_its_directories(
    tmp_path: Path,
) -> None:
    """A file six directories down that another process holds locked is kept ("locked"),
    its directories are therefore not emptied and stay; every other old entry goes."""
    root = tmp_path / "r"
    deep = root / "a" / "b" / "c" / "d" / "e" / "f"
    held = write(deep / "held")
    write(deep / "free")
    write(root / "a" / "b" / "other" / "old")
    holder = Holder("flock", held)
    try:
        report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    finally:
        holder.release()
    assert report.ok and report.skipped == {"locked": 1}
    assert report.files_removed == 2 and report.dirs_removed == 1  # other/ emptied
    assert held.exists() and not (deep / "free").exists()


def test_a_dry_run_counts_exactly_what_the_real_run_removes(tmp_path: Path) -> None:
    """With no callbacks (the C recursion's fast path), a dry run reports the same files,
    symlinks, directories, bytes, skips and kept bytes as the real run then removes, and
    leaves every entry in place."""
    root = tmp_path / "r"
    for top in range(6):
        for sub in range(4):
            d = root / f"t{top}" / f"s{sub}"
            write(d / "old", b"x" * (top + sub))
            if sub % 2:
                write(d / "young", b"yy")
                os.utime(d / "young", (FUTURE, FUTURE))
            os.symlink("/nonexistent", d / "link")
        os.mkfifo(root / f"t{top}" / "fifo")
    (root / "empty").mkdir()
    before = sorted(str(p) for p in root.rglob("*"))

    def counts(dry_run: bool) -> tuple[Any, ...]:
        r = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, dry_run=dry_run)
        return (
            r.files_removed,
            r.symlinks_removed,
            r.dirs_removed,
            r.bytes_removed,
            dict(r.skipped),
            r.kept_bytes,
            r.error_count,
        )

    dry = counts(True)
    assert sorted(str(p) for p in root.rglob("*")) == before
    real = counts(False)
    assert dry == real
    assert real[:3] == (24, 24, 13)  # 12 s* directories emptied, and empty/


class Interrupted(Exception):
    pass


def test_ctrl_c_mid_walk_stops_it_and_leaks_no_descriptor(
    tmp_path: Path,
    walk: str,  # noqa: F811 - the fixture's value
) -> None:
    """A signal handler's exception (Ctrl-C's KeyboardInterrupt, here SIGALRM's) raised while
    the walk is deep in a tree of many small directories stops it: clean_root raises it, and
    each walk closes every directory descriptor it had open (the Python walk too since its
    fds are owned from the instant os.open returns: tests/test_cleanup_leftovers.py tries
    every point, and with each ``finally``'s close-all built before its ``try`` this asserts
    zero leaks on both walks). One exception a run, so no second one lands in a ``finally``.
    Tried a few times: under load the alarm may come before or after the walk."""
    root = tmp_path / "r"
    for a in range(40):
        for b in range(40):
            (root / f"{a}" / f"{b}" / "x").mkdir(parents=True)
    fds_before = set(os.listdir("/proc/self/fd"))

    fired = [False]

    def handler(signum: int, frame: Any) -> None:
        # One exception a run: a second SIGALRM already pending (the 2 ms timer under load)
        # would raise again inside the walk's finally, which nothing can guard.
        signal.setitimer(signal.ITIMER_REAL, 0)
        if not fired[0]:
            fired[0] = True
            raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    stopped = 0
    try:
        for _ in range(10):
            try:
                fired[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
                clean_root(CleanupTarget(str(root), DAY), now=FUTURE, dry_run=True)
            except Interrupted:
                stopped += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            leaked = set(os.listdir("/proc/self/fd")) - fds_before
            if leaked:  # a traceback's frames may hold a scandir iterator until collected
                gc.collect()
                leaked = set(os.listdir("/proc/self/fd")) - fds_before
            for fd in leaked:
                os.close(int(fd))
            assert not leaked, leaked
            if stopped:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert stopped, "the walk was never interrupted"
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, dry_run=True)
    assert report.ok and report.dirs_removed == 40 * 40 * 2 + 40


def test_removals_reported_by_the_c_recursion_carry_their_full_path(tmp_path: Path) -> None:
    """An on_remove callback gets each removal as it happens with its path below the root
    (files, symlinks and emptied directories, at every depth), as the Python walk gives it."""
    root = tmp_path / "r"
    write(root / "a" / "b" / "f", b"abc")
    os.symlink("nowhere", root / "a" / "l")
    got: list[Removal] = []
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_remove=got.append)
    assert report.ok
    assert sorted((os.path.relpath(r.path, root), r.kind, r.size) for r in got) == [
        ("a", "dir", 0),
        ("a/b", "dir", 0),
        ("a/b/f", "file", 3),
        ("a/l", "symlink", 0),
    ]


def test_the_python_walk_closes_a_directory_it_opened_when_interrupted_entering_it(
    tmp_path: Path,
    walk: str,  # noqa: F811 - the fixture's value
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception raised while the Python walk checks a directory it has just opened (here
    Ctrl-C's KeyboardInterrupt from the mount-id read; a signal handler may raise there) closes
    that directory's descriptor on its way out (the instant between the open's return and its
    result being stored is closed too: tests/test_cleanup_leftovers.py). The C walk reads
    mount ids in C: nothing to raise."""
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    real, calls = cleanup._mount_id, []

    def interrupted_entering(fd: int) -> int | None:
        calls.append(fd)
        if len(calls) == 1:  # the root's own, read before the walk
            return real(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(cleanup, "_mount_id", interrupted_entering)
    fds_before = set(os.listdir("/proc/self/fd"))
    if walk == "python":
        with pytest.raises(KeyboardInterrupt):
            clean_root(CleanupTarget(str(root), DAY), now=FUTURE, dry_run=True)
        assert len(calls) == 2, "the walk did not check the mount id of the directory it entered"
    else:
        assert clean_root(CleanupTarget(str(root), DAY), now=FUTURE, dry_run=True).ok
    assert set(os.listdir("/proc/self/fd")) - fds_before == set()
