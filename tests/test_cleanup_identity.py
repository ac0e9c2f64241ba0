"""Cleanup never leaves the root's mount and never removes a directory it did not enter.

Review findings of the C recursion (issue 21, sixth session), pinned on both walks:

- a bind mount of a directory of the same filesystem (same st_dev), made below the root after
  cleanup read the mount table, is seen by the open directory's mount id (statx in C,
  /proc/self/fdinfo in Python) and skipped as "mount-point": nothing outside the root is
  removed through it;
- an emptied directory renamed away and replaced by another (empty, young) directory before
  its rmdir: the name is checked to still be the directory entered, so the newcomer stays.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, Removal, clean_root
from tests.cleanupwalks import DAY, FUTURE, walk, write  # noqa: F401 - walk: the fixture

pytestmark = pytest.mark.usefixtures("walk")


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"this test mounts, as the suite does (we run as root): {done.stderr}")


@pytest.fixture
def unmount() -> Iterator[list[Path]]:
    """Mount points to unmount (lazily, innermost first) after the test."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def mount_after_the_table_is_read(
    monkeypatch: pytest.MonkeyPatch, *args: str, then: Callable[[], None] | None = None
) -> None:
    """Run ``mount args`` (and then ``then()``) just after cleanup read /proc/self/mountinfo
    (the race: the mount table it holds does not list the new mount point, so only the open
    directory tells)."""
    real = cleanup._mount_points_under

    def then_mount(root: str) -> set[tuple[int, int]]:
        points = real(root)
        mount(*args)
        if then is not None:
            then()
        return points

    monkeypatch.setattr(cleanup, "_mount_points_under", then_mount)


def test_a_bind_mount_made_after_the_mount_table_was_read_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unmount: list[Path]
) -> None:
    """A directory of the same filesystem, outside the root, bind-mounted over a
    subdirectory after the mount table was read: same st_dev, and the listed inode is the
    mounted one, so only the mount id shows it. It is skipped as "mount-point" and its old
    files (outside the root) are not removed; the rest of the root is cleaned."""
    root = tmp_path / "r"
    outside = tmp_path / "outside"
    secret = write(outside / "deep" / "secret")
    write(outside / "top")
    write(root / "old")
    (root / "sub").mkdir()
    unmount.append(root / "sub")
    mount_after_the_table_is_read(monkeypatch, "--bind", str(outside), str(root / "sub"))
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert subprocess.run(["mountpoint", "-q", str(root / "sub")], check=False).returncode == 0
    assert secret.exists() and (outside / "top").exists()
    assert report.skipped == {"mount-point": 1}
    assert report.ok and report.files_removed == 1 and not (root / "old").exists()


def test_a_bind_mount_deep_in_the_tree_is_not_entered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unmount: list[Path]
) -> None:
    """The same a few levels down (each directory is checked, not only the root's
    children), and the directories above it are not removed (the mount point stays)."""
    root = tmp_path / "r"
    outside = write(tmp_path / "outside" / "secret").parent
    write(root / "a" / "b" / "old")
    (root / "a" / "b" / "c").mkdir()
    unmount.append(root / "a" / "b" / "c")
    mount_after_the_table_is_read(monkeypatch, "--bind", str(outside), str(root / "a/b/c"))
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert (outside / "secret").exists()
    assert report.skipped == {"mount-point": 1}
    assert report.files_removed == 1 and report.dirs_removed == 0


def test_an_old_empty_directory_on_a_tmpfs_mounted_after_the_scan_is_not_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unmount: list[Path]
) -> None:
    """A tmpfs mounted below the root after the mount table was read holds an old, empty
    directory: the other device is not entered, so that directory is not removed either
    (removing the other-device check in the C walk's enter() makes this fail)."""
    root = tmp_path / "r"
    write(root / "old")
    mnt = root / "mnt"
    mnt.mkdir()
    unmount.append(mnt)

    def old_empty_dir() -> None:
        (mnt / "empty").mkdir()  # on the tmpfs now, made old
        os.utime(mnt / "empty", (0, 0))

    mount_after_the_table_is_read(monkeypatch, "-t", "tmpfs", "tmpfs", str(mnt), then=old_empty_dir)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert (mnt / "empty").is_dir()
    assert report.skipped == {"other-filesystem": 1}
    assert report.dirs_removed == 0


def test_a_directory_renamed_away_before_its_rmdir_is_not_replaced_by_a_newcomer(
    tmp_path: Path,
) -> None:
    """While the walk empties ``d`` (the on_remove callback of its last file), ``d`` is
    renamed away and a new, empty directory takes its name. The emptied directory's rmdir
    would remove the newcomer by name: it must find the inode it entered there, so the
    newcomer stays, is not reported, and is counted as "changed"."""
    root = tmp_path / "r"
    write(root / "d" / "old")
    os.utime(root / "d", (0, 0))
    removals: list[Removal] = []

    def on_remove(removal: Removal) -> None:
        removals.append(removal)
        if removal.path.endswith("/d/old"):
            os.rename(root / "d", tmp_path / "moved")
            (root / "d").mkdir()  # young and empty: not cleanup's to remove

    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_remove=on_remove)
    assert (root / "d").is_dir() and (tmp_path / "moved").is_dir()
    assert [r.path for r in removals] == [str(root / "d" / "old")]
    assert report.skipped == {"changed": 1}
    assert report.files_removed == 1 and report.dirs_removed == 0


def test_an_emptied_directory_that_vanishes_before_its_rmdir_counts_as_gone(
    tmp_path: Path,
) -> None:
    """The emptied directory is removed by someone else just before cleanup's rmdir: it is
    "vanished", counted as gone, so its old, now empty parent is removed too. (The C walk
    read the dead directory's ENOENT from getdents64 as a read failure, which glibc's readdir
    takes as its end, and kept the parent.)"""
    root = tmp_path / "r"
    write(root / "p" / "d" / "old")
    os.utime(root / "p" / "d", (0, 0))
    os.utime(root / "p", (0, 0))

    def on_remove(removal: Removal) -> None:
        if removal.path.endswith("/d/old"):
            os.rmdir(root / "p" / "d")

    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_remove=on_remove)
    assert report.skipped == {"vanished": 1}
    assert not (root / "p").exists()
    assert report.files_removed == 1 and report.dirs_removed == 1
