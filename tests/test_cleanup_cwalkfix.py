"""The C walk of cleanup after its review (issue 21): the findings, each pinned.

Times that do not fit in 64-bit nanoseconds, counters that would overflow, a lock table
whose re-read closes or re-enters the Lister, signals during a long batch, the local-only
choice, and the build hook (a stale build, a module built from other source, an unwritable
checkout). Huge times and sparse files need tmpfs (/dev/shm): ext4 refuses both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, clean_root
from reliactl.locks import NETWORK_FS_TYPES
from tests.cleanupwalks import spy_walkers
from tests.test_cleanup_cwalk import require_c

DAY = 86400.0
FUTURE = time.time() + 10 * DAY
REPO = Path(__file__).resolve().parent.parent
EXT = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
BIG = 2**63 - 1  # the largest file size (tmpfs allows it, sparse)


@pytest.fixture
def shm() -> Iterator[Path]:
    """A directory on tmpfs, which stores times from before 1678 and after 2262."""
    base = Path(tempfile.mkdtemp(prefix="reliactl-cwalkfix-", dir="/dev/shm"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def both_walks(monkeypatch: pytest.MonkeyPatch, make: Any, **kwargs: Any) -> list[Any]:
    """Run cleanup on a fresh tree from ``make()`` with the Python walk, then the C walk;
    check that the C one really went through C. Returns (report, make's result) of each."""
    require_c()
    walkers = spy_walkers(monkeypatch)
    results = []
    for env in ("0", "1"):
        monkeypatch.setenv(cleanup.C_WALK_ENV, env)
        root, extra = make(env)
        report = clean_root(CleanupTarget(str(root), DAY), **kwargs)
        assert (walkers[-1].c_dirs > 0) == (env == "1")
        results.append((report, extra))
    return results


def counts(report: cleanup.RootReport) -> tuple[Any, ...]:
    return (
        report.scanned,
        report.files_removed,
        report.dirs_removed,
        report.bytes_removed,
        report.kept_bytes,
        dict(report.skipped),
        report.error_count,
    )


@pytest.mark.parametrize("dry_run", [True, False])
def test_directory_times_beyond_64_bit_nanoseconds_are_never_rewritten(
    shm: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """A directory dated 2286 (10**19 ns) or 1653 (-10**19 ns), which tmpfs, ext4 and xfs
    can store, keeps its times exactly through a dry run and a real run of both walks (the
    C walk once handed back a wrapped ns value, and a dry run rewrote 2286 to 1702), and is
    decided as the Python walk decides: the future one kept, the past one removed once
    emptied."""

    def make(name: str) -> tuple[Path, dict[str, Path]]:
        root = shm / name
        dirs = {"future": root / "future", "past": root / "past"}
        for when, path in dirs.items():
            path.mkdir(parents=True)
            (path / "old").write_text("x")
            os.utime(path / "old", (1, 1))
            ns = 10**19 if when == "future" else -(10**19)
            os.utime(path, ns=(ns, ns))
        return root, dirs

    results = both_walks(monkeypatch, make, dry_run=dry_run, now=time.time(), age_by="mtime")
    for report, dirs in results:
        future = os.lstat(dirs["future"])
        assert (future.st_atime_ns, future.st_mtime_ns) == (10**19, 10**19)
        if dry_run:
            past = os.lstat(dirs["past"])
            assert (past.st_atime_ns, past.st_mtime_ns) == (-(10**19), -(10**19))
        else:
            assert not dirs["past"].exists()
            assert not (dirs["future"] / "old").exists()
        assert (report.files_removed, report.dirs_removed) == (2, 1)
    assert counts(results[0][0]) == counts(results[1][0])


def test_sizes_that_overflow_64_bits_are_counted_exactly_by_both_walks(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sparse files of 2**63-1 bytes each: the kept and removed byte counts are the exact
    sums (C once added them in a signed 64-bit counter and reported a negative size)."""

    def make(name: str) -> tuple[Path, None]:
        root = shm / name
        root.mkdir()
        for index in range(3):
            for kind in ("young", "old"):
                path = root / f"{kind}{index}"
                with open(path, "wb") as fh:
                    fh.truncate(BIG)
                if kind == "old":
                    os.utime(path, (1, 1))
        return root, None

    for report, _ in both_walks(monkeypatch, make, now=time.time(), age_by="mtime"):
        assert report.files_removed == 3
        assert report.bytes_removed == 3 * BIG
        assert report.kept_bytes == 3 * BIG


@pytest.fixture
def old_files() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="reliactl-cwalkfix-", dir="/dev/shm"))
    for index in range(5):
        (base / f"old{index}").write_text("x")
        os.utime(base / f"old{index}", (1, 1))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("what", ["close", "batch", "list", "init"])
def test_the_lock_tables_reread_cannot_close_or_reenter_a_running_batch(
    old_files: Path, what: str
) -> None:
    """The lock table's refresh() is Python that C calls in the middle of a batch, while
    the name being judged lives in the Lister's buffer: a close(), a nested batch() or
    list() or a re-initialisation from there raises RuntimeError (it once freed or refilled
    the buffer under C: a use-after-free, or an unlink of other bytes than the name
    checked), nothing is removed, and the Lister still works afterwards."""
    module = cleanup.c_walk()
    if module is None:
        require_c()
    fd = os.open(old_files, os.O_RDONLY | os.O_DIRECTORY)
    args = (False, time.time() - DAY, os.fstat(fd).st_dev, 1, False)
    try:
        lister = module.Lister(*args)

        class Table:
            read_at = -1e9
            ttl = 0.01
            inodes: frozenset[tuple[int, int]] = frozenset()

            def refresh(self, now: float) -> None:
                if what == "close":
                    lister.close()
                elif what == "batch":
                    lister.batch(100, None)
                elif what == "list":
                    lister.list(fd, False, 100, None)
                else:
                    lister.__init__(*args)
                self.read_at = now

        with pytest.raises(RuntimeError, match="in a batch"):
            lister.list(fd, False, 100, Table())
        assert sorted(os.listdir(old_files)) == [f"old{i}" for i in range(5)]
        rest = lister.batch(100, None)  # no table: each old file is handed back to Python
        assert rest[1] == 0 and rest[8] == 1
        lister.close()
    finally:
        os.close(fd)
    assert sorted(os.listdir(old_files)) == [f"old{i}" for i in range(5)]


class Interrupted(Exception):
    pass


def test_a_signal_stops_a_long_batch_in_the_middle(shm: Path) -> None:
    """A signal handler runs (and its exception stops the walk) during a batch, not after
    up to C_BATCH syscalls: a SIGALRM every millisecond interrupts a batch over 20,000
    entries part way (entries are left for the next batch). Tried a few times: under load
    the first alarm may come before the batch starts."""
    module = cleanup.c_walk()
    if module is None:
        require_c()
    total = 20_000
    for index in range(total):
        (shm / f"f{index}").touch()

    def handler(signum: int, frame: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    seen = []
    try:
        for _ in range(5):
            fd = os.open(shm, os.O_RDONLY | os.O_DIRECTORY)
            try:
                lister = module.Lister(True, 0.0, os.fstat(fd).st_dev, 0, False)
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
                    lister.list(fd, False, total + 10, None)
                    signal.setitimer(signal.ITIMER_REAL, 0)
                except Interrupted:
                    pass
                signal.setitimer(signal.ITIMER_REAL, 0)
                rest = lister.batch(total + 10, None)[0]
                lister.close()
            finally:
                os.close(fd)
            seen.append(rest)
            if 0 < rest < total:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert 0 < seen[-1] < total, f"entries left after the interrupted batch: {seen}"


def test_the_c_walk_runs_on_local_filesystems_only(
    shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C holds the GIL across its syscalls, so it is chosen only where stat and unlink
    cannot hang on a server or a FUSE daemon: local disk and memory filesystems yes, every
    network filesystem reliactl.locks knows, FUSE, Ceph, Gluster, Lustre and an unknown
    type no. A root on tmpfs (and on ext4, the tests' /tmp) walks in C."""
    for fstype in ("ext4", "xfs", "btrfs", "tmpfs", "overlay"):
        assert cleanup._local_filesystem(fstype), fstype
    for fstype in (*NETWORK_FS_TYPES, "fuse", "fuse.rclone", "ceph", "glusterfs", "lustre"):
        assert not cleanup._local_filesystem(fstype), fstype
    assert not cleanup._local_filesystem(None)

    def make(name: str) -> tuple[Path, None]:
        (shm / name / "d").mkdir(parents=True)
        return shm / name, None

    both_walks(monkeypatch, make, now=time.time())  # asserts C was used with env 1


def test_a_root_on_a_filesystem_not_known_local_walks_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real mount of a type not on the local list (hugetlbfs, which takes directories
    and empty files; no NFS server or FUSE daemon here) is cleaned by the Python walk with
    the C walk available, with the same result."""
    require_c()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a filesystem")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "hugetlbfs", "none", str(mnt)], check=True, timeout=60)
    walkers = spy_walkers(monkeypatch)
    monkeypatch.delenv(cleanup.C_WALK_ENV, raising=False)
    try:
        (mnt / "d").mkdir()
        for path in (mnt / "old", mnt / "d" / "old"):
            path.touch()
            os.utime(path, (1, 1))
        (mnt / "young").touch()
        assert cleanup._filesystem_of(str(mnt), os.stat(mnt).st_dev) == "hugetlbfs"
        report = clean_root(CleanupTarget(str(mnt), DAY), now=time.time(), age_by="mtime")
        assert walkers[-1].simple and walkers[-1].c_dirs == 0
        assert report.files_removed == 2
        assert sorted(os.listdir(mnt)) == ["d", "young"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)


def hatch_build() -> Any:
    sys.path.insert(0, str(REPO))
    try:
        import hatch_build as module
    finally:
        sys.path.remove(str(REPO))
    return module


def checkout(base: Path) -> Path:
    """A copy of the package's source (no build) under ``base``."""
    shutil.copytree(REPO / "reliactl", base / "reliactl", ignore=shutil.ignore_patterns("*.so"))
    return base


def test_a_stale_build_is_removed_whenever_the_build_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIACTL_BUILD_EXTENSION=0 or no Python headers: the build of older source that an
    editable install would go on importing is removed, not left in place."""
    build = hatch_build()
    (tmp_path / "reliactl").mkdir()
    shutil.copy(REPO / "reliactl" / "_cleanupwalk.c", tmp_path / "reliactl")
    stale = tmp_path / "reliactl" / ("_cleanupwalk" + EXT)
    stale.write_bytes(b"an older build")
    monkeypatch.setenv("RELIACTL_BUILD_EXTENSION", "0")
    assert build.build_extension(tmp_path) is None
    assert not stale.exists()
    monkeypatch.delenv("RELIACTL_BUILD_EXTENSION")
    stale.write_bytes(b"an older build")
    monkeypatch.setattr(build.sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    assert build.build_extension(tmp_path) is None  # no Python.h there
    assert not stale.exists()


LOADER = """
import sys
import reliactl.cleanup as cleanup, reliactl._cleanupwalk as built
assert cleanup.__file__.startswith(sys.argv[1]), cleanup.__file__
print(cleanup.c_walk() is not None, built.SOURCE_SHA256)
"""


def test_a_module_built_from_other_source_is_not_used(tmp_path: Path) -> None:
    """The module carries the sha256 of the source it was built from: beside the very
    source it loads; once that .c changes (a checkout updated without reinstalling, API
    number unchanged) cleanup walks in Python; without a .c beside it (a wheel) it loads."""
    if shutil.which("gcc") is None:
        require_c()
    root = checkout(tmp_path)
    assert hatch_build().build_extension(root, cc=["gcc"]) is not None
    source = root / "reliactl" / "_cleanupwalk.c"
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop(cleanup.C_WALK_ENV, None)

    def loads() -> tuple[bool, str]:
        out = subprocess.run(
            [sys.executable, "-c", LOADER, str(root)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        ).stdout.split()
        return out[0] == "True", out[1]

    assert loads() == (True, hashlib.sha256(source.read_bytes()).hexdigest())
    with open(source, "a") as fh:
        fh.write("/* a later change, built by nobody */\n")
    assert loads()[0] is False
    source.unlink()
    assert loads()[0] is True


def test_an_unwritable_checkout_installs_without_the_c_walk(tmp_path: Path) -> None:
    """A checkout on a read-only filesystem (with an older build in it, or none): the build
    hook says why and returns None instead of raising, so `pip install` still succeeds."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True, timeout=60)
    try:
        root = checkout(mnt)
        stale = root / "reliactl" / ("_cleanupwalk" + EXT)
        build = hatch_build()
        for older in (True, False):
            if older:
                stale.write_bytes(b"an older build")
            else:
                stale.unlink()
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, timeout=60)
            try:
                assert build.build_extension(root, cc=["gcc"]) is None
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True, timeout=60)
            assert stale.exists() == older
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)


@pytest.mark.parametrize("later", ["locked", "free"])
def test_each_reread_of_the_lock_table_decides_the_files_after_it(
    monkeypatch: pytest.MonkeyPatch, later: str
) -> None:
    """C reads the table's inode set, read time and ttl once a batch and again after each
    refresh() (issue 21 wave 3): a file judged after a re-read is judged by that read. Every
    file here re-reads the table (ttl 0); the first read lists no file (or every file), the
    later ones every file (or none), so exactly one old file is removed and four kept as
    locked (or one kept and four removed), in both walks. A batch that kept the first read's
    set (or its "empty" shortcut) would remove all five (or keep all five)."""
    made: list[Path] = []

    def make(env: str) -> tuple[Path, None]:
        root = Path(tempfile.mkdtemp(prefix="reliactl-cwalkfix-", dir="/dev/shm"))
        made.append(root)
        for index in range(5):
            (root / f"old{index}").write_text("x")
            os.utime(root / f"old{index}", (1, 1))
        return root, None

    real_refresh = cleanup._LockTable.refresh

    def refresh(self: cleanup._LockTable, now: float) -> None:
        real_refresh(self, now)
        listed = {(st.st_dev, st.st_ino) for st in (os.lstat(p) for p in made[-1].iterdir())}
        first = self.reads == 1
        if (later == "locked") != first:
            self.inodes = frozenset(self.inodes | listed)

    monkeypatch.setattr(cleanup, "LOCK_TABLE_TTL", 0.0)
    monkeypatch.setattr(cleanup._LockTable, "refresh", refresh)
    try:
        for report, _ in both_walks(monkeypatch, make, now=time.time(), age_by="mtime"):
            removed, locked = (1, 4) if later == "locked" else (4, 1)
            assert report.files_removed == removed
            assert report.skipped.get("locked", 0) == locked
    finally:
        for root in made:
            shutil.rmtree(root, ignore_errors=True)


EMFILE = """
import json, os, resource, sys
from reliactl.cleanup import CleanupTarget, clean_root
root, now = sys.argv[1], float(sys.argv[2])
budget = max(int(fd) for fd in os.listdir("/proc/self/fd")) + 12  # closed fds: 0-2 and its own
resource.setrlimit(resource.RLIMIT_NOFILE, (budget, budget))
r = clean_root(CleanupTarget(root, 86400.0), now=now)
print(json.dumps([r.files_removed, r.dirs_removed, dict(r.skipped), r.error_count,
                  [(e.path, e.message) for e in r.errors]]))
"""


def test_nesting_beyond_the_descriptor_budget_is_an_error_by_path_in_both_walks(
    tmp_path: Path,
) -> None:
    """A tree nested deeper than the process may hold descriptors for (RLIMIT_NOFILE lowered
    in the child): the walk runs out of descriptors (EMFILE) and reports one error with the
    directory's path, the directories above it are kept (not emptied), and the rest is
    cleaned. The Python walk fails one level higher than C, at the mount-id read of the
    directory it just opened (/proc/self/fdinfo needs a descriptor too: it cannot tell the
    mount, so it does not enter, where it used to take the unknown id for the root's and
    then fail reading, os.scandir dups the fd), where C fails opening the next level;
    before the sixth session its read failure was dropped silently (counted as no skip
    reason at all)."""
    require_c()
    for env, what in (("0", "cannot tell its mount"), ("1", "cannot open")):
        root = tmp_path / f"r{env}"
        deep = root
        for _ in range(40):
            deep = deep / "d"
        deep.mkdir(parents=True)
        (root / "old").write_text("x")
        (deep / "old-at-the-bottom").write_text("x")
        out = subprocess.run(
            [sys.executable, "-c", EMFILE, str(root), str(FUTURE)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, cleanup.C_WALK_ENV: env},
            close_fds=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        files, dirs, skipped, error_count, errors = json.loads(out.stdout)
        assert (files, dirs, skipped, error_count) == (1, 0, {}, 1), out.stdout
        [(path, message)] = errors
        assert message == f"{what}: Too many open files", (env, message)
        rel = os.path.relpath(path, root)
        assert set(rel.split("/")) == {"d"} and 5 <= rel.count("d") < 40, rel
        assert (deep / "old-at-the-bottom").exists()
