"""The walk in C (reliactl/_cleanupwalk.c, issue 21): the same decisions as the Python walk.

The Python walk is the reference and the fallback. Here: both walks decide and remove
exactly the same set on generated hostile trees (with real lock holders, shared directories,
symlinks, FIFOs, sockets, hard links); the C module is loaded where it must be (CI sets
RELIACTL_REQUIRE_CLEANUP_C=1, so a build that lost it fails instead of skipping); cleanup
falls back to Python without it or when the operator turns it off; the build goes on
without a compiler; a batch of the C loop is bounded; and another user's directory is
cleaned by the strict rules in both walks.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, Removal, clean_root, removal_paths
from tests.cleanupwalks import (  # noqa: F401 - walk: the fixture
    REQUIRE_ENV,
    c_walk_required,
    spy_walkers,
    walk,
)

DAY = 86400.0
FUTURE = time.time() + 10 * DAY
REPO = Path(__file__).resolve().parent.parent
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

HOLDER = (
    "import fcntl, os, sys\n"
    "for spec in sys.argv[1:]:\n"
    "    kind, path = spec.split(':', 1)\n"
    "    fd = os.open(path, os.O_RDWR)\n"
    "    if kind == 'flock':\n"
    "        fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "    else:\n"
    "        fcntl.lockf(fd, fcntl.LOCK_SH, 1, 3)\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)


def require_c() -> None:
    if cleanup.c_walk() is None:
        if c_walk_required():
            pytest.fail(f"{REQUIRE_ENV}=1 and reliactl._cleanupwalk is not importable")
        pytest.skip("the C walk is not built here (no C compiler at install)")


def young(path: Path) -> None:
    os.utime(path, (FUTURE, FUTURE), follow_symlinks=False)


def special(p: Path, kind: str, base: Path) -> None:
    outside = base / "outside"
    if kind == "link-out":
        p.symlink_to(outside / "secret")
    elif kind == "link-dir":
        p.symlink_to(outside)
    elif kind == "dangling":
        p.symlink_to(base / "nowhere")
    elif kind == "hardlink":
        os.link(outside / "secret", p)
    elif kind == "fifo":
        os.mkfifo(p)
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(p))


def hostile(base: Path, seed: int) -> tuple[Path, Path, list[str]]:
    """A generated tree of traps (the same for the same seed): (root, outside, lock specs)."""
    rng = random.Random(seed)
    root, outside = base / "root", base / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "secret").write_text("secret")
    (outside / "inner" / "deep").write_text("deep")
    locks: list[str] = []
    young_dirs: list[Path] = []

    def fill(d: Path, depth: int) -> None:
        for index in range(rng.randint(4, 14)):
            p = d / f"e{index}"
            kind = rng.choice(
                ["old"] * 6
                + ["young", "big", "locked", "link-out", "link-dir", "dangling", "hardlink"]
                + ["fifo", "socket", "empty-dir"]
                + (["dir", "dir", "shared-dir", "young-dir"] if depth < 3 else [])
            )
            if kind in ("old", "young", "big", "locked"):
                p.write_bytes(b"x" * (rng.randint(1000, 9000) if kind == "big" else index))
                if kind == "young":
                    young(p)
                if kind == "locked":
                    locks.append(f"{rng.choice(['flock', 'posix'])}:{p}")
            elif kind in ("link-out", "link-dir", "dangling", "hardlink", "fifo", "socket"):
                special(p, kind, base)
            else:
                p.mkdir()
                if kind == "shared-dir":
                    p.chmod(0o1777)
                if kind == "young-dir":
                    young_dirs.append(p)
                if kind != "empty-dir":
                    fill(p, depth + 1)

    root.mkdir()
    fill(root, 0)
    for d in young_dirs:
        young(d)
    return root, outside, locks


def entries(top: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(dirpath, name), top)
        for dirpath, dirnames, filenames in os.walk(top)
        for name in dirnames + filenames
    )


@pytest.fixture(params=["table", "probe"])
def lock_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "probe":  # the lock table unreadable: each file probed with flock
        monkeypatch.setattr(cleanup, "LOCK_TABLE", "/nonexistent/locks")
    return str(request.param)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("dry_run", [False, True])
def test_both_walks_decide_and_remove_exactly_the_same_set_on_a_hostile_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, dry_run: bool, lock_mode: str
) -> None:
    """The Python walk (reference), the C walk reporting each removal (an on_remove
    callback) and the C walk without callbacks give the same removals, skips, counts and
    surviving entries on the same generated hostile tree, with real lock holders; nothing
    outside the root changes."""
    require_c()
    walkers = spy_walkers(monkeypatch)
    results = []
    for name, env, report in (("python", "0", True), ("c", "1", True), ("c-quiet", "1", False)):
        monkeypatch.setenv(cleanup.C_WALK_ENV, env)
        root, outside, locks = hostile(tmp_path / name, seed)
        before_outside = {p: (outside / p).read_bytes() for p in ("secret", "inner/deep")}
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *locks],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        removed: list[Removal] = []
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            report = clean_root(
                CleanupTarget(str(root), DAY),
                now=FUTURE,
                dry_run=dry_run,
                on_remove=removed.append if report else None,
            )
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=60)
        assert (walkers[-1].c_dirs > 0) == (name != "python"), name
        assert {p: (outside / p).read_bytes() for p in before_outside} == before_outside
        if locks:
            assert report.skipped.get("locked") == len(locks), report.skipped
        results.append(
            (
                sorted((os.path.relpath(r.path, root), r.kind, r.size) for r in removed)
                if report
                else None,
                dict(report.skipped),
                report.scanned,
                report.files_removed,
                report.symlinks_removed,
                report.dirs_removed,
                report.bytes_removed,
                report.kept_bytes,
                report.error_count,
                entries(root),
            )
        )
    python, c, quiet = results
    assert python == c
    assert python[1:] == quiet[1:]
    assert python[0], "the generated tree removed nothing"


def test_the_c_walk_is_loaded_where_it_must_be() -> None:
    """With RELIACTL_REQUIRE_CLEANUP_C=1 (.ci/run) the extension must import: an install
    that silently lost the compiler fails CI here instead of skipping every C-walk test."""
    module = cleanup.c_walk()
    if module is None and not c_walk_required():
        pytest.skip("the C walk is not built here and not required (no C compiler at install)")
    assert module is not None, "reliactl._cleanupwalk did not import"
    assert Path(module.__file__ or "").suffix == ".so"


FALLBACK = """
import sys, os, time
blocked = sys.argv[2] == "missing"
if blocked:
    sys.modules["reliactl._cleanupwalk"] = None  # as if it was never built: ImportError
if sys.argv[2] == "stale":  # built from another version of the source
    import types
    stale = types.ModuleType("reliactl._cleanupwalk")
    stale.API = 0
    sys.modules["reliactl._cleanupwalk"] = stale
import reliactl.cleanup as cleanup
seen = []
real = cleanup._Walker.run
def run(self, fd):
    real(self, fd)
    seen.append(self.c_dirs)
cleanup._Walker.run = run
report = cleanup.clean_root(cleanup.CleanupTarget(sys.argv[1], 86400.0), now=time.time() + 864000)
print(cleanup.c_walk() is None, seen[0], report.files_removed, sorted(os.listdir(sys.argv[1])))
"""


@pytest.mark.parametrize("how", ["missing", "turned-off", "stale"])
def test_without_the_c_walk_cleanup_falls_back_to_the_python_walk(tmp_path: Path, how: str) -> None:
    """No extension (never built: the import fails), one built from other source (its API
    number differs: a checkout updated without reinstalling) or RELIACTL_CLEANUP_C=0 (the
    operator's off switch): cleanup still cleans, in Python, with the same result."""
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    for name in ("a", "b", "d/c"):
        (root / name).write_text("x")
    env = dict(os.environ)
    env.pop(cleanup.C_WALK_ENV, None)
    if how == "turned-off":
        env[cleanup.C_WALK_ENV] = "0"
    out = subprocess.run(
        [sys.executable, "-c", FALLBACK, str(root), how],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    assert out.stdout.split(None, 3) == ["True", "0", "3", "[]\n"], out.stdout + out.stderr


def test_the_build_goes_on_without_a_c_compiler(tmp_path: Path) -> None:
    """hatch_build.py (the hatchling hook) with no usable compiler builds nothing and does
    not fail: `pip install` succeeds and cleanup walks in Python. With the compiler, the
    module it builds loads and walks."""
    sys.path.insert(0, str(REPO))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(REPO))
    (tmp_path / "reliactl").mkdir()
    shutil.copy(REPO / "reliactl" / "_cleanupwalk.c", tmp_path / "reliactl")
    assert hatch_build.build_extension(tmp_path, cc=["/nonexistent/cc"]) is None
    assert hatch_build.build_extension(tmp_path, cc=["false"]) is None
    assert [p.name for p in (tmp_path / "reliactl").iterdir()] == ["_cleanupwalk.c"]
    stale = tmp_path / "reliactl" / ("_cleanupwalk" + sysconfig.get_config_var("EXT_SUFFIX"))
    stale.write_bytes(b"an older build")
    assert hatch_build.build_extension(tmp_path, cc=["false"]) is None
    assert not stale.exists(), "a failed rebuild left an older build in place"
    if shutil.which("gcc") is None and not c_walk_required():
        return
    built = hatch_build.build_extension(tmp_path, cc=["gcc"])
    assert built is not None and (tmp_path / built).is_file()


class CountingModule:
    """Wraps the C module to record each batch's size (what a batch holds in memory)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.batches: list[tuple[int, int]] = []  # (entries read, items handed back)

    def Lister(self, *args: Any) -> Any:
        lister = self.real.Lister(*args)
        batches = self.batches

        def counted(result: Any) -> Any:
            batches.append((result[0], len(result[6]) + len(result[7])))
            return result

        def start(fd: int, shared: bool, limit: int, table: Any) -> Any:
            return counted(lister.list(fd, shared, limit, table))

        def batch(limit: int, table: Any) -> Any:
            return counted(lister.batch(limit, table))

        return SimpleNamespace(list=start, batch=batch, close=lister.close)


def test_a_batch_of_the_c_walk_is_bounded_so_memory_stays_flat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory of many entries C hands back (FIFOs, subdirectories) is read in batches
    of at most C_BATCH entries: what one call holds does not grow with the directory. (With
    a progress callback: then C lists each directory and Python recurses; the recursion in
    C has its own test below.)"""
    real = cleanup.c_walk()
    if real is None:
        require_c()
    root = tmp_path / "r"
    root.mkdir()
    for index in range(300):
        os.mkfifo(root / f"p{index}")
        (root / f"f{index}").write_text("x")
    for index in range(20):
        (root / f"d{index}").mkdir()
    counting = CountingModule(real)
    monkeypatch.setattr(cleanup, "c_walk", lambda: counting)
    monkeypatch.setattr(cleanup, "C_BATCH", 64)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_progress=lambda p: None)
    assert report.files_removed == 300 and report.dirs_removed == 20
    assert report.skipped == {"fifo": 300}
    assert max(n for n, _ in counting.batches) <= 64
    assert max(items for _, items in counting.batches) <= 64
    assert sum(n for n, _ in counting.batches) >= 620


def test_the_c_recursion_hands_python_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recursion in C (no progress callback) reads a directory in batches of at most
    C_BATCH entries and hands Python each batch's unsettled entries (here FIFOs) at once:
    what one callback holds does not grow with the directory."""
    require_c()
    root = tmp_path / "r"
    root.mkdir()
    for index in range(300):
        os.mkfifo(root / f"p{index}")
        (root / f"f{index}").write_text("x")
    for index in range(20):
        (root / f"d{index}").mkdir()
    sizes: list[int] = []
    real_items = cleanup._Walker.c_items

    def counted(self: cleanup._Walker, fd: int, rel: str, shared: int, items: Any) -> Any:
        sizes.append(len(items))
        return real_items(self, fd, rel, shared, items)

    monkeypatch.setattr(cleanup._Walker, "c_items", counted)
    monkeypatch.setattr(cleanup, "C_BATCH", 64)
    walkers = spy_walkers(monkeypatch)
    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
    assert walkers[-1].c_dirs == 21  # the root and its 20 subdirectories, listed by C
    assert report.files_removed == 300 and report.dirs_removed == 20
    assert report.skipped == {"fifo": 300} and report.scanned == 620
    assert max(sizes) <= 64 and sum(sizes) == 300


SWAP = """
import os, sys, time
path = sys.argv[1]
os.unlink(path)
time.sleep(0.02)
with open(path, "w") as fh:
    fh.write("newcomer")
"""


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory another user (nobody) can reach, outside pytest's root-only tmp dir."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(tempfile.mkdtemp(prefix="reliactl-nobody-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.usefixtures("walk")
def test_another_users_directory_is_cleaned_by_the_strict_rules(
    nobody_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root cleans directories owned by nobody (shared by ownership, not by mode): nobody's
    old files go, the one nobody holds locked stays, nobody's symlink to a root-only file
    goes as a link (the file stays), and a file nobody swaps in between a file's lstat and
    its unlink (inside the lock table's re-read, which both walks do there) is kept."""
    secret = nobody_dir / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    theirs, inbox = nobody_dir / "theirs", nobody_dir / "inbox"
    for d in (theirs, inbox):
        d.mkdir()
        os.chown(d, 65534, 65534)
    plant = (
        "import os, sys\n"
        "theirs, inbox, secret = sys.argv[1:4]\n"
        "for name in ('a_old', 'b_old', 'held'):\n"
        "    open(os.path.join(theirs, name), 'w').write('x')\n"
        "open(os.path.join(inbox, 'victim'), 'w').write('old')\n"
        "os.symlink(secret, os.path.join(theirs, 'link'))\n"
    )
    subprocess.run(
        [*NOBODY, sys.executable, "-c", plant, str(theirs), str(inbox), str(secret)], check=True
    )
    assert (inbox / "victim").stat().st_uid == 65534
    holder = subprocess.Popen(
        [*NOBODY, sys.executable, "-c", HOLDER, f"flock:{theirs / 'held'}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    removed: list[Removal] = []
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        report = clean_root(CleanupTarget(str(theirs), DAY), now=FUTURE, on_remove=removed.append)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert secret.read_text() == "root only"
    assert sorted(p.name for p in theirs.iterdir()) == ["held"]
    assert removal_paths(removed) == [str(theirs / n) for n in ("a_old", "b_old", "link")]
    assert report.skipped == {"locked": 1} and report.ok

    if cleanup._LockTable.for_root(str(inbox), os.stat(inbox).st_dev) is None:
        return  # the flock probe checks the opened inode instead (test_cleanup_held)
    real_refresh = cleanup._LockTable.refresh
    reads: list[float] = []

    def swapping_refresh(self: cleanup._LockTable, now: float) -> None:
        reads.append(now)
        if len(reads) == 1:  # the walk's first read: right after victim's lstat
            subprocess.run([*NOBODY, sys.executable, "-c", SWAP, str(inbox / "victim")], check=True)
        real_refresh(self, now)

    monkeypatch.setattr(cleanup._LockTable, "refresh", swapping_refresh)
    monkeypatch.setattr(cleanup, "LOCK_TABLE_TTL", -1.0)  # re-read before every file
    report = clean_root(CleanupTarget(str(inbox), DAY), now=FUTURE)
    assert len(reads) >= 1
    assert (inbox / "victim").read_text() == "newcomer"
    assert report.skipped == {"changed": 1} and report.files_removed == 0


def test_a_subdirectory_handed_back_by_c_carries_the_lstat_python_would_take(
    tmp_path: Path,
) -> None:
    """The C loop hands subdirectories back with an os.stat_result it built: every field
    (identity, owner, mode, float and nanosecond times, and since it is filled in place also
    st_blksize, st_blocks and st_rdev, which were None) equals os.lstat's."""
    module = cleanup.c_walk()
    if module is None:
        require_c()
    sub = tmp_path / "top" / "sub"
    sub.mkdir(parents=True)
    os.utime(sub, ns=(1_234_567_891_123_456_789, 1_134_567_891_987_654_321))
    fd = os.open(sub.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lister = module.Lister(True, 0.0, os.fstat(fd).st_dev, 0, False)
        result = lister.list(fd, False, 100, None)
        lister.close()
    finally:
        os.close(fd)
    ((name, st),) = result[7]
    want = os.lstat(sub)
    assert name == "sub" and tuple(st) == tuple(want)
    for field in ("atime", "mtime", "ctime"):
        assert getattr(st, f"st_{field}") == getattr(want, f"st_{field}")
        assert getattr(st, f"st_{field}_ns") == getattr(want, f"st_{field}_ns")
    for field in ("st_blksize", "st_blocks", "st_rdev"):
        assert getattr(st, field) == getattr(want, field), field


def test_one_lister_serves_every_directory_of_a_walk(tmp_path: Path) -> None:
    """A walk makes one Lister and starts each directory with list() (issue 21 wave 3: no
    Lister and buffer a directory). list() on another directory drops what was left unread
    of the last one: a batch never hands back a name of the directory before,
    batch() continues the directory list() started, and a Lister with no directory yet
    refuses batch() rather than reading fd 0."""
    module = cleanup.c_walk()
    if module is None:
        require_c()
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, prefix in ((first, "a"), (second, "b")):
        directory.mkdir()
        for index in range(10):
            (directory / f"{prefix}{index}").write_text("x")
            os.utime(directory / f"{prefix}{index}", (1, 1))
    fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in (first, second)]
    try:
        lister = module.Lister(True, time.time() - DAY, os.fstat(fds[0]).st_dev, 1, True)
        with pytest.raises(ValueError, match="call list"):
            lister.batch(100, None)
        seen = []
        head = lister.list(fds[0], False, 3, None)  # stops with seven names of first unread
        assert head[0] == 3 and head[8] == 0
        seen += [item[0] for item in head[6]]
        result = lister.list(fds[1], False, 4, None)
        while True:
            seen += [item[0] for item in result[6]]
            if result[8]:
                break
            result = lister.batch(4, None)
        lister.close()
    finally:
        for fd in fds:
            os.close(fd)
    assert len([n for n in seen if n.startswith("a")]) == 3
    assert sorted(n for n in seen if n.startswith("b")) == sorted(f"b{i}" for i in range(10))
    assert len(os.listdir(first)) == 10 and len(os.listdir(second)) == 10  # a dry run
