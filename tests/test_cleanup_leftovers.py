"""Two safety leftovers of cleanup's review (issue 21, seventh session), pinned on both walks.

- The size budget (``_Walker.apply_budget``) re-opens directories by path after the walk: each
  one's mount id must be the root's, as the walks check, so a bind mount made over a
  directory after the walk listed it is not entered to remove a file outside the root; a
  mount id it cannot read (no descriptor left) fails closed; it closes the directories it
  re-opens as it goes, so it does not run out of descriptors itself.
- A Ctrl-C (a signal handler's exception) lands between two bytecodes; wherever it lands in
  the Python walk, the walk leaves no descriptor open: ``os.open``'s result is stored before
  any bytecode runs (``_open_held``), and a directory's fd is owned by the walk's stack from
  the instant it is pushed until the instant it is popped and closed.
"""

from __future__ import annotations

import dis
import gc
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
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
    name f there is the listed inode, so only the mount id tells. It is skipped
    ("mount-point", as the walk says it; it used to say "changed") and the name outside is
    kept."""
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
    assert report.files_removed == 0 and report.skipped == {"mount-point": 1}
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


_AFTER_CALLS: dict[CodeType, frozenset[int]] = {}


def _after_calls(code: CodeType) -> frozenset[int]:
    """Offsets of ``code``'s instructions that follow a CALL: CPython checks for a pending
    signal once a call returned, whatever was called (a C function, a type such as ``map``,
    a Python function)."""
    got = _AFTER_CALLS.get(code)
    if got is None:
        bytecode = dis.Bytecode(code)
        entries = getattr(bytecode, "exception_entries", [])

        def handler(offset: int) -> tuple[int, int] | None:
            for entry in entries:
                if entry.start <= offset < entry.end:
                    return entry.target, entry.depth
            return None

        instructions = list(bytecode)
        # The handler runs at the end of the CALL instruction, so its exception goes where
        # the CALL's would: raising it at the next instruction is the same only when that
        # one has the same handler (not when the call ends a ``try`` and the ``finally``'s
        # inlined code follows).
        got = frozenset(
            after.offset
            for ins, after in itertools.pairwise(instructions)
            if ins.opname in ("CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW")
            and handler(ins.offset) == handler(after.offset)
        )
        _AFTER_CALLS[code] = got
    return got


def _interrupt_at(
    k: int, error: type[BaseException] = KeyboardInterrupt, here: str = cleanup.__file__
) -> tuple[Callable[[FrameType, str, Any], Any], list[int]]:
    """A trace function raising ``error`` at the k-th point of cleanup.py's code (or the
    module file ``here``) where the interpreter runs a pending signal handler: at a
    function's start and just after each call returns (an opcode trace: a profile hook sees
    no event when a type such as ``map`` is called, and so never tried the point between
    ``map(os.close, held)`` and ``any``). tests/test_retry.py uses it too."""
    seen = [0]

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != here:
            return None
        if event == "call":
            frame.f_trace_opcodes = True
        elif event != "opcode" or frame.f_lasti not in _after_calls(frame.f_code):
            return trace
        seen[0] += 1
        if seen[0] == k:
            raise error
        return trace

    return trace, seen


class _Boom(Exception):
    """An ordinary exception raised by a signal handler (not Ctrl-C's)."""


@pytest.mark.parametrize("locks", ["table", "probe"])
@pytest.mark.parametrize("which", ["python", "c"])
def test_ctrl_c_anywhere_in_the_walk_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, locks: str
) -> None:
    """See _interrupted_anywhere; Ctrl-C's KeyboardInterrupt."""
    _interrupted_anywhere(tmp_path, monkeypatch, which, locks, KeyboardInterrupt)


@pytest.mark.stress
@pytest.mark.parametrize("locks", ["table", "probe"])
@pytest.mark.parametrize("which", ["python", "c"])
def test_an_ordinary_exception_from_a_signal_handler_anywhere_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, locks: str
) -> None:
    """See _interrupted_anywhere; a handler raising an ordinary Exception (not a
    BaseException only): no ``except`` of the walk swallows it half-way and goes on."""
    _interrupted_anywhere(tmp_path, monkeypatch, which, locks, _Boom)


def _interrupted_anywhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    locks: str,
    error: type[BaseException],
) -> None:
    """A Ctrl-C raised at every point of reliactl/cleanup.py where Python runs a signal
    handler (after each call returns, C or Python, and at each function's start), one point
    a run, on a real tree and a real (not dry) run, with the lock table and with the flock
    probe (which opens each old file): each run either finishes or raises the
    exception, and no descriptor is left open either way. The old Python walk
    leaked the directory fd when the handler ran just after ``os.open`` returned, or just
    after ``enter`` returned the frame and before it was pushed, or after it was popped and
    before ``leave`` closed it; and every ``finally: any(map(os.close, held))`` leaked
    when it landed after ``map`` returned and before ``any`` ran (the root's fd, a
    directory's, /proc/locks', the probe's holding an flock on an unlinked file)."""
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
        trace, seen = _interrupt_at(k, error)
        previous = sys.gettrace()
        sys.settrace(trace)
        try:
            clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
            finished = True
        except error:
            finished = False
            interrupted += 1
        finally:
            sys.settrace(previous)
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


_BUDGET_CHILD = """
import json, os, resource, sys
import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, clean_root
root, now, how = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if how == "limit":  # 64 descriptors in all, for 200 directories
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
else:  # "last": the budget starts with one descriptor free, which its open of d takes
    real = cleanup._Walker.apply_budget
    def starved(self, root_fd):
        fill = []
        try:
            while True:
                fill.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            os.close(fill.pop())
        real(self, root_fd)
    cleanup._Walker.apply_budget = starved
r = clean_root(CleanupTarget(root, 1000 * 86400.0, max_total_size=0), now=now)
print(json.dumps([r.removed_for_size, dict(r.skipped), r.error_count,
                  [(e.path, e.message) for e in r.errors]]))
"""


def _budget_child(root: Path, how: str) -> list[Any]:
    out = subprocess.run(
        [sys.executable, "-c", _BUDGET_CHILD, str(root), str(FUTURE), how],
        capture_output=True,
        text=True,
        timeout=120,
        close_fds=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


@pytest.mark.usefixtures("walk")
def test_the_size_budget_over_more_directories_than_descriptors_removes_them_all(
    tmp_path: Path,
) -> None:
    """200 directories, a file each over the budget, in a process allowed 64 descriptors: the
    budget closes the directories it re-opened as it goes (at most BUDGET_DIRS_OPEN), so it
    removes all 200. It used to keep each open to the end: once none was left, every other
    file was skipped "changed" with no error (59 removed, 141 skipped)."""
    root = tmp_path / "root"
    for i in range(200):
        path = write(root / f"d{i:03}" / "f", b"x" * 10)
        os.utime(path, (OLD + i, OLD + i))
    removed, skipped, error_count, _ = _budget_child(root, "limit")
    assert (removed, skipped, error_count) == (200, {}, 0)
    assert not list(root.rglob("f"))


@pytest.mark.usefixtures("walk")
def test_the_size_budget_does_not_enter_a_directory_whose_mount_it_cannot_tell(
    tmp_path: Path,
) -> None:
    """The budget's open of root/d takes the process's last free descriptor (all others are
    taken, really): reading d's mount id from /proc/self/fdinfo then fails (EMFILE). It
    cannot tell d from a bind mount, so the file is kept and an error names it; the check
    used to take the unknown id for the root's (fail open) and go in."""
    root = tmp_path / "root"
    victim = write(root / "d" / "f", b"x" * 10)
    removed, skipped, error_count, errors = _budget_child(root, "last")
    assert victim.exists()
    assert (removed, skipped, error_count) == (0, {}, 1)
    assert errors == [[str(victim), "cannot tell its mount: Too many open files"]]
