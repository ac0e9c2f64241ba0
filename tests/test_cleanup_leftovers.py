"""Two safety leftovers of cleanup's review (issue 21, seventh session), pinned on both walks.

- The size budget (``_Walker.apply_budget``) re-opens directories by path after the walk: each
  one's mount id must be the root's, as the walks check, so a bind mount made over a
  directory after the walk listed it is not entered to remove a file outside the root.
- A Ctrl-C (a signal handler's exception) lands between two bytecodes; wherever it lands in
  the Python walk, the walk leaves no descriptor open: ``os.open``'s result is stored before
  any bytecode runs (``_open_held``), and a directory's fd is owned by the walk's stack from
  the instant it is pushed until the instant it is popped and closed.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, clean_root
from tests.cleanupwalks import (  # noqa: F401 - walk: the fixture
    DAY,
    FUTURE,
    REQUIRE_ENV,
    c_walk_required,
    walk,
    write,
)
from tests.test_cleanup_identity import mount, unmount  # noqa: F401 - unmount: the fixture

OLD = FUTURE - 30 * DAY


@pytest.mark.usefixtures("walk")
def test_the_size_budget_does_not_enter_a_bind_mount_made_after_the_walk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unmount: list[Path],  # noqa: F811
) -> None:
    """The walk lists root/sub/f (young, over the budget); before the budget removes it, a
    directory outside the root holding a hard link of that very file (same inode, same ctime)
    is bind-mounted over root/sub. The budget re-opens root/sub by path: same st_dev, and the
    name f there is the listed inode, so only the mount id tells. It is skipped ("changed",
    as any directory the budget cannot re-open as it was) and the name outside is kept."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    victim = write(root / "sub" / "f", b"x" * 100)
    outside.mkdir()
    os.link(victim, outside / "f")  # before the walk: the listed ctime is the link's
    unmount.append(root / "sub")
    real = cleanup._Walker.apply_budget

    def mount_then_budget(self: cleanup._Walker, root_fd: int) -> None:
        mount("--bind", str(outside), str(root / "sub"))
        real(self, root_fd)

    monkeypatch.setattr(cleanup._Walker, "apply_budget", mount_then_budget)
    report = clean_root(CleanupTarget(str(root), 1000 * DAY, max_total_size=10), now=FUTURE)
    assert (outside / "f").exists(), "the budget removed a name outside the root"
    assert report.files_removed == 0 and report.skipped == {"changed": 1}
    assert report.over_budget == 90


@pytest.mark.usefixtures("walk")
def test_the_size_budget_still_removes_through_directories_of_the_root(tmp_path: Path) -> None:
    """The mount-id check keeps the budget's ordinary work: oldest first, three levels down."""
    root = tmp_path / "root"
    for i, rel in enumerate(("a/b/c/old", "a/mid", "new")):
        path = write(root / rel, b"x" * 100)
        os.utime(path, (OLD + i, OLD + i))
    report = clean_root(CleanupTarget(str(root), 1000 * DAY, max_total_size=150), now=FUTURE)
    assert report.removed_for_size == 2 and report.kept_bytes == 100
    assert [p.name for p in root.rglob("*") if p.is_file()] == ["new"]


def _tree(root: Path) -> None:
    """Old and young files over four levels and two branches; an old empty directory."""
    for rel in ("a/b/c/f", "a/b/g", "a/x/h", "y/i", "j"):
        write(root / rel)
        os.utime(root / rel, (OLD, OLD))
    write(root / "a" / "young")
    (root / "a" / "b" / "empty").mkdir()
    for directory in (root / "a" / "b" / "empty",):
        os.utime(directory, (OLD, OLD))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _open_fds() -> set[int]:
    """The descriptors open now (not the one that listed them)."""
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)}


def _leaked(before: set[int]) -> set[int]:
    """Descriptors opened since ``before`` and still open (after a collection: a traceback's
    frames may hold a scandir iterator, which closes its fd when freed)."""
    if not _open_fds() - before:
        return set()
    gc.collect()
    return _open_fds() - before


def _interrupt_at(k: int) -> tuple[Callable[[FrameType, str, Any], None], list[int]]:
    """A profile hook raising KeyboardInterrupt at the k-th point of cleanup.py's code where
    the interpreter runs a pending signal handler: after a call returns (C or Python) and at
    a function's start."""
    seen = [0]
    here = cleanup.__file__

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("c_return", "return", "call") or frame.f_code.co_filename != here:
            return
        seen[0] += 1
        if seen[0] == k:
            raise KeyboardInterrupt

    return hook, seen


@pytest.mark.parametrize("locks", ["table", "probe"])
@pytest.mark.parametrize("which", ["python", "c"])
def test_ctrl_c_anywhere_in_the_walk_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, locks: str
) -> None:
    """A Ctrl-C raised at every point of reliactl/cleanup.py where Python runs a signal
    handler (after each call returns, C or Python, and at each function's start), one point
    a run, on a real tree and a real (not dry) run, with the lock table and with the flock
    probe (which opens each old file): each run either finishes or raises
    KeyboardInterrupt, and no descriptor is left open either way. The old Python walk
    leaked the directory fd when the handler ran just after ``os.open`` returned, or just
    after ``enter`` returned the frame and before it was pushed, or after it was popped and
    before ``leave`` closed it."""
    if which == "python":
        monkeypatch.setenv(cleanup.C_WALK_ENV, "0")
    else:  # not the walk fixture: it checks that each walk reached C, and some are stopped before
        monkeypatch.delenv(cleanup.C_WALK_ENV, raising=False)
        if cleanup.c_walk() is None:
            if c_walk_required():
                pytest.fail(f"{REQUIRE_ENV}=1 and reliactl._cleanupwalk is not importable")
            pytest.skip("the C walk is not built here (no C compiler at install)")
    if locks == "probe":  # no trusted lock table: each old file opened for an flock probe
        monkeypatch.setattr(cleanup._LockTable, "for_root", classmethod(lambda *_: None))
    before = _open_fds()
    k, interrupted = 0, 0
    while True:
        k += 1
        root = tmp_path / f"r{k}"
        _tree(root)
        hook, seen = _interrupt_at(k)
        sys.setprofile(hook)
        try:
            clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
            finished = True
        except KeyboardInterrupt:
            finished = False
            interrupted += 1
        finally:
            sys.setprofile(None)
        leaked = _leaked(before)
        for fd in leaked:
            os.close(fd)
        assert not leaked, f"interrupted at point {k} of {seen[0]}: {len(leaked)} fd(s) leaked"
        if finished:
            break
        assert k < 5000, "the walk never finished"
    assert interrupted == k - 1 and interrupted > 20


@pytest.mark.usefixtures("walk")
@pytest.mark.parametrize("members", ["pairs", "odd"])
def test_the_lock_tables_set_decides_exactly_its_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: str
) -> None:
    """C looks an old file up in the lock table's set through a hash set of its own, built
    once per read (issue 21, seventh session), instead of building a (dev, ino) tuple a file:
    it must answer exactly as the set. The table lists every other old file, 3,000 decoys
    on the same device (long probe chains), and the other files' inodes on another device
    (same inode, other filesystem: not theirs). With "odd", the set also holds a member that
    is not a pair of ints, which C cannot key: it then asks the set, as before."""
    root = tmp_path / "root"
    names = [f"old{i:02}" for i in range(40)]
    for name in names:
        os.utime(write(root / name), (OLD, OLD))
    held = {(st.st_dev, st.st_ino) for st in (os.lstat(root / n) for n in names[::2])}
    free = [os.lstat(root / n) for n in names[1::2]]
    dev = next(iter(held))[0]
    decoys = {(dev, 10_000_000 + 7 * i) for i in range(3000)}
    decoys |= {(st.st_dev ^ 1, st.st_ino) for st in free}
    extra: set[Any] = {("not", "a pair")} if members == "odd" else set()
    real_refresh = cleanup._LockTable.refresh

    def refresh(self: cleanup._LockTable, now: float) -> None:
        real_refresh(self, now)
        self.inodes = frozenset(self.inodes | held | decoys | extra)

    monkeypatch.setattr(cleanup._LockTable, "refresh", refresh)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert report.skipped == {"locked": 20} and report.files_removed == 20
    assert sorted(p.name for p in root.iterdir()) == names[::2]
