"""Review findings on cleanup's C recursion (issue 21, sixth session), pinned.

Each test names the break of ``reliactl/_cleanupwalk.c`` it catches (the suite passed with
it before): byte totals that overflow a long long across directories, a shared
subdirectory (not only a shared root), the exact depth limit, a directory's atime put back,
a subdirectory that vanishes before it is opened, a callback's result of the wrong type,
and the typing of the module's annotations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, Removal, clean_root
from tests.cleanupwalks import DAY, FUTURE, c_walk_required, walk, write  # noqa: F401 - walk: the fixture

HUGE = 0x3000000000000000  # three of them overflow a long long (2**63 - 1)


@pytest.mark.usefixtures("walk")
def test_byte_totals_past_a_long_long_across_directories_are_exact(tmp_path: Path) -> None:
    """Sparse files of 0x3000000000000000 bytes on /dev/shm, three young (kept) and three
    old (removed), one of each per directory: no batch overflows, the walk's totals do.
    Both totals are exact Python ints on both walks (the C walk's were signed overflow:
    negative, and an abort under UBSan)."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp_path
    root = base / f"reliactl-huge-{os.getpid()}-{tmp_path.name}"
    try:
        for i in range(3):
            for name in ("young", "old"):
                path = write(root / f"d{i}" / name, b"")
                os.truncate(path, HUGE)
            os.utime(root / f"d{i}" / "old", (1, 1))
        report = clean_root(CleanupTarget(str(root), DAY), now=time.time(), age_by="mtime")
        assert report.files_removed == 3
        assert report.bytes_removed == 3 * HUGE
        assert report.kept_bytes == 3 * HUGE
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.mark.usefixtures("walk")
def test_in_a_shared_subdirectory_a_file_swapped_just_before_the_unlink_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A world-writable sticky SUBdirectory of a private root: its files are re-checked by
    lstat before the unlink like a shared root's (the C walk's enter() must mark it shared),
    so a file put under the listed name after the listing is kept as "changed"."""
    root = tmp_path / "r"
    sub = root / "sub"
    sub.mkdir(parents=True)
    sub.chmod(0o1777)
    write(sub / "victim", b"old")
    if cleanup._LockTable.for_root(str(root), os.stat(root).st_dev) is None:
        pytest.fail("the lock table is not trusted on this tmpfs: the test needs it")
    real_refresh = cleanup._LockTable.refresh
    refreshes: list[float] = []

    def swapping_refresh(self: cleanup._LockTable, now: float) -> None:
        refreshes.append(now)
        if len(refreshes) == 1:  # the walk's first read: right after victim's lstat
            os.unlink(sub / "victim")
            time.sleep(0.02)  # a later clock tick: the newcomer's ctime differs
            (sub / "victim").write_text("newcomer")
        real_refresh(self, now)

    monkeypatch.setattr(cleanup._LockTable, "refresh", swapping_refresh)
    monkeypatch.setattr(cleanup, "LOCK_TABLE_TTL", -1.0)  # re-read before every file
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert refreshes
    assert (sub / "victim").read_text() == "newcomer"
    assert report.skipped == {"changed": 1} and report.ok
    assert report.files_removed == 0


@pytest.mark.usefixtures("walk")
def test_the_depth_limit_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MAX_DEPTH 3, the directories 1, 1/2 and 1/2/3 are entered and cleaned and
    1/2/3/4 is the one "too-deep" (an off-by-one either way changes the counts)."""
    monkeypatch.setattr(cleanup, "MAX_DEPTH", 3)
    root = tmp_path / "r"
    deepest = root / "1" / "2" / "3" / "4"
    write(deepest / "old")
    for d in (root, root / "1", root / "1/2", root / "1/2/3"):
        write(d / "old")
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert report.skipped == {"too-deep": 1}
    assert report.files_removed == 4 and report.dirs_removed == 0
    assert (deepest / "old").exists() and not (root / "1/2/3/old").exists()


@pytest.mark.usefixtures("walk")
def test_a_directory_gets_its_own_atime_and_mtime_back(tmp_path: Path) -> None:
    """A directory something was removed from keeps its own atime and mtime (to the
    nanosecond): each is put back from the listed lstat, not one from the other."""
    root = tmp_path / "r"
    d = root / "d"
    write(d / "old")
    write(d / "young")
    os.utime(d / "young", ns=(FUTURE_NS, FUTURE_NS))
    atime_ns, mtime_ns = 1_000_000_000_123_456_789, 1_100_000_000_987_654_321
    os.utime(d, ns=(atime_ns, mtime_ns))
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, age_by="mtime")
    assert report.files_removed == 1
    st = os.stat(d)
    assert (st.st_atime_ns, st.st_mtime_ns) == (atime_ns, mtime_ns)


FUTURE_NS = int(FUTURE * 1e9)


@pytest.mark.usefixtures("walk")
def test_a_subdirectory_that_vanishes_before_it_is_opened_counts_as_gone(
    tmp_path: Path,
) -> None:
    """``p/v`` is removed by someone else after ``p`` was listed and before ``v`` is
    opened (from the on_remove callback of ``p``'s old file, which both walks call before
    entering ``p``'s subdirectories): "vanished", counted as gone, so the old ``p`` is
    emptied and removed."""
    root = tmp_path / "r"
    write(root / "p" / "old")
    (root / "p" / "v").mkdir()
    os.utime(root / "p", (1, 1))

    def on_remove(removal: Removal) -> None:
        if removal.path.endswith("/p/old"):
            os.rmdir(root / "p" / "v")

    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_remove=on_remove)
    assert report.skipped == {"vanished": 1}
    assert not (root / "p").exists()
    assert report.files_removed == 1 and report.dirs_removed == 1


def need_c() -> None:
    if cleanup.c_walk() is None:
        if c_walk_required():
            pytest.fail("RELIACTL_REQUIRE_CLEANUP_C=1 and the C walk is not built")
        pytest.skip("the C walk is not built here")


@pytest.mark.parametrize(
    "result",
    [[0, []], (0, [["sub", os.stat("/")]])],
    ids=["items-not-a-tuple", "subdir-not-a-tuple"],
)
def test_a_callback_result_of_the_wrong_type_is_a_type_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, result: object
) -> None:
    """The C recursion checks what ``c_items`` returns: a list where a tuple belongs (the
    result, or a subdirectory in it) raises TypeError, not SystemError ("error return
    without exception set")."""
    need_c()
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "fifo")  # deferred to Python: c_items is called
    monkeypatch.setattr(cleanup._Walker, "c_items", lambda *args: result)
    with pytest.raises(TypeError, match="tuple"):
        clean_root(CleanupTarget(str(root), DAY), now=FUTURE)


def test_annotations_resolve_before_the_aliases_are_read() -> None:
    """In a fresh interpreter, typing.get_type_hints resolves the module's annotations and
    ``_Walker.__init__``/``removed`` (whose Literals are spelled out: the aliases come from
    the module ``__getattr__``, which eval over the module's globals never calls), and
    ``dir()`` lists ``AgeBy`` and ``EntryKind`` as ``__all__`` does."""
    code = (
        "import typing\n"
        "import reliactl.cleanup as c\n"
        "assert 'AgeBy' not in vars(c) and 'EntryKind' not in vars(c)\n"
        "hints = typing.get_type_hints(c._Walker.__init__)\n"
        "assert typing.get_args(hints['age_by']) == c.AGE_BY, hints\n"
        "kinds = typing.get_args(typing.get_type_hints(c._Walker.removed)['kind'])\n"
        "assert kinds == ('file', 'symlink', 'dir'), kinds\n"
        "typing.get_type_hints(c)\n"
        "assert {'AgeBy', 'EntryKind'} <= set(dir(c)) and set(c.__all__) <= set(dir(c))\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
