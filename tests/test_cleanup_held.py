"""reliactl.cleanup keeps files other processes hold locked (issue 21: the cheaper probe).

Cleanup learns which inodes are locked from the kernel's lock table (``/proc/locks``) where it
is complete for the root, and otherwise probes each file with flock plus F_OFD_GETLK. Each
test runs against real lock holders (other processes) in both modes: ``table`` (the lock
table, on a filesystem it is trusted for) and ``probe`` (the table made unreadable).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, Removal, clean_root, removal_paths
from tests.cleanupwalks import walk  # noqa: F401 - the fixture

# Every test here runs against both walks, Python and C (tests/cleanupwalks.py).
pytestmark = pytest.mark.usefixtures("walk")

DAY = 86400.0
FUTURE = time.time() + 10 * DAY

HOLDER = (
    "import fcntl, os, sys\n"
    "kind, path = sys.argv[1], sys.argv[2]\n"
    "fd = os.open(path, os.O_RDWR)\n"
    "if kind == 'flock':\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "elif kind == 'posix':\n"
    "    fcntl.lockf(fd, fcntl.LOCK_EX)\n"
    "elif kind == 'posix-range':\n"
    "    fcntl.lockf(fd, fcntl.LOCK_SH, 1, 5)\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)
KINDS = ("flock", "posix", "posix-range")


class Holder:
    """Another process holding a lock of ``kind`` on ``path`` until released."""

    def __init__(self, kind: str, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _initial_pid_namespace() -> bool:
    try:
        return os.stat("/proc/self/ns/pid").st_ino == cleanup._INIT_PID_NS_INO
    except OSError:
        return False


def needs_table() -> None:
    """The lock table mode exists only in the initial PID namespace (a container's table
    hides other namespaces' lockers, so reliactl never trusts it there)."""
    if not _initial_pid_namespace():
        pytest.skip("not in the initial PID namespace: reliactl never uses the lock table here")


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem the lock table is trusted for (tmpfs if $TMPDIR is not)."""
    if not _initial_pid_namespace():  # the table is never used here: probe-mode tests only
        yield tmp_path
        return
    st = os.stat(tmp_path)
    if cleanup._LockTable.for_root(str(tmp_path), st.st_dev) is not None:
        yield tmp_path
        return
    shm = tempfile.mkdtemp(prefix="reliactl-held-", dir="/dev/shm")
    st = os.stat(shm)
    assert cleanup._LockTable.for_root(shm, st.st_dev) is not None, "no trusted filesystem"
    try:
        yield Path(shm)
    finally:
        subprocess.run(["rm", "-rf", "--", shm], check=False)


@pytest.fixture(params=["table", "probe"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "table":
        needs_table()
    if request.param == "probe":
        monkeypatch.setattr(cleanup, "LOCK_TABLE", "/nonexistent/locks")
    return str(request.param)


def run(root: Path, *, dry_run: bool = False) -> tuple[list[Removal], cleanup.RootReport]:
    removed: list[Removal] = []
    report = clean_root(
        CleanupTarget(str(root), DAY), dry_run=dry_run, now=FUTURE, on_remove=removed.append
    )
    return removed, report


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shared", [False, True])
def test_a_file_locked_by_another_process_is_kept(
    base: Path, mode: str, kind: str, shared: bool
) -> None:
    """flock, whole-file POSIX and byte-range POSIX locks all keep an old file, in either mode.

    (The old probe, flock only, removed a file held by a POSIX lock.)
    """
    root = base / "root"
    root.mkdir()
    if shared:
        root.chmod(0o1777)
    (root / "held").write_text("0123456789")
    (root / "free").write_text("x")
    holder = Holder(kind, root / "held")
    try:
        for dry_run in (True, False):
            removed, report = run(root, dry_run=dry_run)
            assert removal_paths(removed) == [str(root / "free")]
            assert report.skipped == {"locked": 1}
            assert (root / "held").exists()
    finally:
        holder.release()
    removed, report = run(root)
    assert removal_paths(removed) == [str(root / "held")]


def test_the_lock_table_is_used_where_trusted_and_not_where_unreadable(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table mode really runs on the test filesystem; an unreadable table means probing."""
    needs_table()
    st = os.stat(base)
    table = cleanup._LockTable.for_root(str(base), st.st_dev)
    assert table is not None and table.reads == 0  # read at the first file that needs it
    monkeypatch.setattr(cleanup, "LOCK_TABLE", "/nonexistent/locks")
    assert cleanup._LockTable.for_root(str(base), st.st_dev) is None


def test_a_lock_taken_after_the_table_was_read_is_seen_once_it_is_stale(base: Path) -> None:
    """The table is re-read when older than its time to live, so a new lock is not missed."""
    needs_table()
    target = base / "late"
    target.write_text("x")
    st = os.stat(target)
    table = cleanup._LockTable(cleanup.LOCK_TABLE, ttl=0.0)
    assert not table.held(st)
    holder = Holder("posix", target)
    try:
        assert table.held(st)
    finally:
        holder.release()
    time.sleep(0.001)
    assert not table.held(st)


def test_lock_table_lines_of_every_kind_are_read() -> None:
    """Every line format the kernel prints (flock, POSIX, OFD, lease, waiters) names an inode."""
    text = (
        b"1: POSIX  ADVISORY  WRITE 1234 fe:01:100 0 EOF\n"
        b"1: -> POSIX  ADVISORY  WRITE 1240 fe:01:100 0 EOF\n"
        b"2: FLOCK  ADVISORY  WRITE 99 08:02:7 0 EOF\n"
        b"3: OFDLCK ADVISORY  READ -1 00:1a:12345 0 9\n"
        b"4: LEASE  ACTIVE    READ 77 103:05:42 0 EOF\n"
    )
    assert cleanup._parse_lock_table(text) == {
        (os.makedev(0xFE, 1), 100),
        (os.makedev(8, 2), 7),
        (os.makedev(0, 0x1A), 12345),
        (os.makedev(0x103, 5), 42),
    }
    with pytest.raises(ValueError):
        cleanup._parse_lock_table(b"1: something new\n")


def test_the_lock_table_is_not_trusted_for_filesystems_it_may_not_describe() -> None:
    """Only local filesystems whose st_dev/st_ino the table prints get the fast path."""
    st = os.stat("/proc")
    assert cleanup._LockTable.for_root("/proc", st.st_dev) is None
    root_fs = cleanup._filesystem_of("/", os.stat("/").st_dev)
    assert root_fs is not None  # the mount of "/" is found (its type is this machine's)
    assert cleanup._filesystem_of("/", os.stat("/").st_dev + 12345) is None


def test_cli_keeps_a_posix_locked_file(base: Path) -> None:
    """End to end: `reliactl cleanup` keeps an old file a running process holds with lockf."""
    root = base / "cli"
    root.mkdir()
    old = time.time() - 3 * DAY
    for name in ("held", "free"):
        (root / name).write_text("x")
        os.utime(root / name, (old, old))
    holder = Holder("posix", root / "held")
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "reliactl",
                "cleanup",
                str(root),
                "--older-than",
                "1d",
                "--age-by",
                "mtime",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        holder.release()
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in root.iterdir()) == ["held"]


@pytest.mark.parametrize("shared", [False, True])
def test_a_lock_table_lost_mid_walk_falls_back_to_probing_each_file(
    base: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    """A re-read of the lock table that fails mid-walk switches the walk to the flock probe.

    The walk's inline path (issue 21) re-reads the table itself; a held file listed after the
    table went away is still kept, and the free files around it still go.
    """
    needs_table()
    root = base / "root"
    root.mkdir()
    if shared:
        root.chmod(0o1777)
    for index in range(20):
        (root / f"free{index:02}").write_text("x")
    (root / "held").write_text("x")
    real_refresh = cleanup._LockTable.refresh
    reads: list[float] = []

    def failing_refresh(self: cleanup._LockTable, now: float) -> None:
        reads.append(now)
        if len(reads) > 1:
            raise OSError(5, "Input/output error")
        real_refresh(self, now)

    monkeypatch.setattr(cleanup._LockTable, "refresh", failing_refresh)
    monkeypatch.setattr(cleanup, "LOCK_TABLE_TTL", -1.0)  # re-read before every file
    holder = Holder("flock", root / "held")
    try:
        removed, report = run(root)
    finally:
        holder.release()
    assert len(reads) == 2, "the table was not re-read, or re-read after it failed"
    assert removal_paths(removed) == [str(root / f"free{index:02}") for index in range(20)]
    assert report.skipped == {"locked": 1} and report.ok
    assert (root / "held").exists()


def test_a_walk_that_finds_nothing_old_never_reads_the_lock_table(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read of /proc/locks takes the kernel's file-lock rwsem for writing (other
    processes' lock calls wait): the table is read only when an old regular file is to be
    decided, so a cron run over a root with nothing due reads it not at all (it was read
    once per root before); a walk with something old reads it and still keeps a held file."""
    needs_table()
    root = base / "root"
    root.mkdir()
    for index in range(5):
        (root / f"young{index}").write_text("x")
        os.utime(root / f"young{index}", (FUTURE, FUTURE))
    (root / "old-link").symlink_to("/nowhere")  # a symlink is removed without the table
    reads: list[float] = []
    real_refresh = cleanup._LockTable.refresh

    def counting_refresh(self: cleanup._LockTable, now: float) -> None:
        reads.append(now)
        real_refresh(self, now)

    monkeypatch.setattr(cleanup._LockTable, "refresh", counting_refresh)
    removed, report = run(root)
    assert removal_paths(removed) == [str(root / "old-link")]
    assert reads == []
    (root / "held").write_text("x")
    holder = Holder("posix", root / "held")
    try:
        removed, report = run(root)
    finally:
        holder.release()
    assert reads and report.skipped == {"locked": 1} and removed == []


def test_a_lock_table_that_cannot_be_parsed_at_its_first_read_means_probing(
    base: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first read now happens at the first old file: a table that opens but does not
    parse then switches the walk to the flock probe (as a failed re-read does), so a held
    file is still kept and the free ones go."""
    needs_table()
    garbage = tmp_path / "locks"
    garbage.write_text("1: something this reliactl cannot read\n")
    monkeypatch.setattr(cleanup, "LOCK_TABLE", str(garbage))
    root = base / "root"
    root.mkdir()
    for name in ("a", "b", "held"):
        (root / name).write_text("x")
    holder = Holder("flock", root / "held")
    try:
        removed, report = run(root)
    finally:
        holder.release()
    assert removal_paths(removed) == [str(root / "a"), str(root / "b")]
    assert report.skipped == {"locked": 1} and report.ok
