"""reliactl.cleanup: the safety rules of RELIABILITY.md #13, each shown on a real tree.

Files made by a test have a fresh ctime (utime cannot set it back), so most tests clean "as of"
ten days from now (``now=FUTURE``): what the test creates is then old, and what it marks new
gets times in that future.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliactl.cleanup import (
    CleanupTarget,
    Removal,
    check_root,
    clean,
    clean_root,
    removal_paths,
)
from reliactl.errors import UnsafeRootError
from tests.cleanupwalks import walk  # noqa: F401 - the fixture

# Every test here runs against both walks, Python and C (tests/cleanupwalks.py).
pytestmark = pytest.mark.usefixtures("walk")

DAY = 86400.0
FUTURE = time.time() + 10 * DAY

LOCK_HOLDER = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def make_new(path: Path) -> None:
    """Give ``path`` times in the cleaning 'now' (young)."""
    os.utime(path, (FUTURE, FUTURE), follow_symlinks=False)


def write(path: Path, data: str = "x", *, new: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    if new:
        make_new(path)
    return path


def snapshot(top: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry below ``top`` with its kind, mtime and content (or link target)."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = ("link", st.st_mtime_ns, os.readlink(p))
            elif os.path.isdir(p):
                out[p] = ("dir", st.st_mtime_ns, "")
            elif os.path.isfile(p):
                out[p] = ("file", st.st_mtime_ns, Path(p).read_bytes())
            else:  # FIFO, socket: never opened
                out[p] = ("special", st.st_mtime_ns, "")
    return out


def hold_lock(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def hostile_tree(base: Path) -> tuple[Path, Path, set[str]]:
    """A root full of traps next to an outside directory; returns (root, outside, expected)."""
    root = base / "root"
    outside = base / "outside"
    write(outside / "secret.txt", "secret")
    write(outside / "inner" / "deep.txt", "deep")
    root.mkdir()
    write(root / "old.txt")
    write(root / "new.txt", new=True)
    write(root / "sub" / "old1")
    write(root / "sub" / "new1", new=True)
    write(root / "emptied" / "a")
    write(root / "emptied" / "b" / "c")
    (root / "newdir").mkdir()
    make_new(root / "newdir")
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "sub" / "dangling").symlink_to(base / "nowhere")
    os.link(outside / "secret.txt", root / "hardlink")  # only the name inside goes
    os.mkfifo(root / "fifo")
    expected = {
        str(root / p)
        for p in (
            "old.txt",
            "sub/old1",
            "emptied/a",
            "emptied/b/c",
            "emptied/b",
            "emptied",
            "link_file",
            "link_dir",
            "sub/dangling",
            "hardlink",
        )
    }
    return root, outside, expected


def run(root: Path, **kwargs: object) -> tuple[list[Removal], object]:
    removed: list[Removal] = []
    kwargs.setdefault("now", FUTURE)
    report = clean_root(
        CleanupTarget(str(root), kwargs.pop("max_age", DAY)),  # type: ignore[arg-type]
        on_remove=removed.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return removed, report


# --------------------------------------------------------------------------- the hostile tree


def test_only_old_files_symlinks_and_emptied_old_dirs_go_and_nothing_outside_changes(
    tmp_path: Path,
) -> None:
    root, outside, expected = hostile_tree(tmp_path)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    write(root / "held.lock", "")
    holder = hold_lock(root / "held.lock")
    before = snapshot(outside)
    try:
        removed, report = run(root)
    finally:
        holder.kill()
        holder.wait()
        sock.close()
    assert set(removal_paths(removed)) == expected
    assert snapshot(outside) == before
    left = {p.name for p in root.iterdir()}
    assert left == {"new.txt", "sub", "newdir", "fifo", "sock", "held.lock"}
    assert sorted(p.name for p in (root / "sub").iterdir()) == ["new1"]
    assert report.ok, report.errors  # type: ignore[attr-defined]
    assert dict(report.skipped) == {"fifo": 1, "locked": 1, "socket": 1}  # type: ignore[attr-defined]
    assert report.files_removed == 5 and report.symlinks_removed == 3  # type: ignore[attr-defined]
    assert report.dirs_removed == 2  # type: ignore[attr-defined]


def test_dry_run_lists_exactly_what_the_real_run_removes(tmp_path: Path) -> None:
    root, outside, expected = hostile_tree(tmp_path)
    before_outside = snapshot(outside)
    before_root = snapshot(root)
    dry, dry_report = run(root, dry_run=True)
    assert snapshot(root) == before_root, "a dry run changed the tree"
    dry_again, _ = run(root, dry_run=True)
    real, real_report = run(root)
    assert removal_paths(dry) == removal_paths(dry_again) == removal_paths(real)
    assert set(removal_paths(real)) == expected
    assert dry_report.bytes_removed == real_report.bytes_removed  # type: ignore[attr-defined]
    assert snapshot(outside) == before_outside


def test_root_itself_is_kept_even_when_emptied(tmp_path: Path) -> None:
    write(tmp_path / "r" / "only")
    removed, _ = run(tmp_path / "r")
    assert removal_paths(removed) == [str(tmp_path / "r" / "only")]
    assert (tmp_path / "r").is_dir()


def test_fifo_is_never_opened(tmp_path: Path) -> None:
    """A writer blocked opening the FIFO stays blocked: the cleaner never opened it to read."""
    root = tmp_path / "r"
    root.mkdir()
    fifo = root / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; os.open(sys.argv[1], os.O_WRONLY)", str(fifo)]
    )
    try:
        time.sleep(0.3)  # let the writer reach open(); it blocks until a reader opens
        _, dry = run(root, dry_run=True)
        _, real = run(root)
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(timeout=0.5)
    finally:
        writer.kill()
        writer.wait()
    assert fifo.exists()
    assert dict(dry.skipped) == dict(real.skipped) == {"fifo": 1}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- roots


def test_a_root_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    write(target / "file")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeRootError, match="is a symlink"):
        run(tmp_path / "link")
    with pytest.raises(UnsafeRootError, match="is a symlink"):
        clean([CleanupTarget(str(tmp_path / "link"), DAY)], now=FUTURE, force_root=True)
    assert (target / "file").exists()


def test_a_root_below_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "real" / "dir" / "file")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(UnsafeRootError, match=r"alias is a symlink"):
        run(tmp_path / "alias" / "dir")
    assert (tmp_path / "real" / "dir" / "file").exists()


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/.", "//etc/", "/usr", "/home", "/root"])
def test_dangerous_roots_are_refused(path: str) -> None:
    with pytest.raises(UnsafeRootError, match="refusing"):
        check_root(path)


def test_home_and_its_parents_are_refused_unless_forced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home / "old")
    for path in (str(home), str(home) + "/", str(tmp_path)):
        with pytest.raises(UnsafeRootError, match="home directory"):
            run(Path(path), home=str(home))
    removed, _ = run(home, home=str(home), force_root=True)
    assert removal_paths(removed) == [str(home / "old")]


def test_empty_path_is_refused_even_when_forced() -> None:
    with pytest.raises(UnsafeRootError, match="empty"):
        check_root("", force=True)


def test_dotdot_is_refused_unless_forced_and_then_resolved_without_following(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a" / "old")
    (tmp_path / "b").mkdir()
    dotted = f"{tmp_path}/b/../a"
    with pytest.raises(UnsafeRootError, match=r"'\.\.'"):
        check_root(dotted)
    removed, report = run(Path(dotted), force_root=True)
    assert report.root == str(tmp_path / "a")  # type: ignore[attr-defined]
    assert removal_paths(removed) == [str(tmp_path / "a" / "old")]


def test_dotdot_through_a_symlink_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "x" / "old")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "x")
    with pytest.raises(UnsafeRootError, match="symlink"):
        run(Path(f"{tmp_path}/link/.."), force_root=True)
    assert (tmp_path / "elsewhere" / "x" / "old").exists()


def test_a_relative_root_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "rel" / "old")
    monkeypatch.chdir(tmp_path)
    removed, _ = run(Path("rel"))
    assert removal_paths(removed) == [str(tmp_path / "rel" / "old")]


def test_a_missing_root_is_reported_not_fatal(tmp_path: Path) -> None:
    _, report = run(tmp_path / "nope")
    assert report.missing and report.ok  # type: ignore[attr-defined]


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "f")
    with pytest.raises(UnsafeRootError, match="not a directory"):
        run(tmp_path / "f")


def test_all_roots_are_checked_before_anything_is_removed(tmp_path: Path) -> None:
    write(tmp_path / "good" / "old")
    with pytest.raises(UnsafeRootError):
        clean([CleanupTarget(str(tmp_path / "good"), DAY), CleanupTarget("/etc", DAY)], now=FUTURE)
    assert (tmp_path / "good" / "old").exists()


# --------------------------------------------------------------------------- mounts


def _mount(args: list[str]) -> str | None:
    if os.geteuid() != 0:
        return "mounting needs root"
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        return f"mount {' '.join(args)} failed: {result.stderr.strip()}"
    return None


def test_another_filesystem_mounted_inside_is_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root / "old")
    mnt = root / "mnt"
    mnt.mkdir()
    problem = _mount(["-t", "tmpfs", "none", str(mnt)])
    if problem:
        pytest.skip(problem)
    try:
        write(mnt / "inside-tmpfs")
        removed, report = run(root)
        assert (mnt / "inside-tmpfs").exists()
        assert os.path.ismount(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert removal_paths(removed) == [str(root / "old")]
    assert report.skipped.get("other-filesystem") == 1  # type: ignore[attr-defined]


def test_a_bind_mount_of_the_same_filesystem_is_not_entered(tmp_path: Path) -> None:
    """Same st_dev, so only the mount table shows it: still never entered."""
    root = tmp_path / "r"
    source = tmp_path / "source"
    write(source / "precious")
    write(root / "old")
    mnt = root / "bind"
    mnt.mkdir()
    problem = _mount(["--bind", str(source), str(mnt)])
    if problem:
        pytest.skip(problem)
    try:
        removed, report = run(root)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert (source / "precious").exists()
    assert removal_paths(removed) == [str(root / "old")]
    assert report.skipped.get("mount-point") == 1  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- age rules


def test_default_age_is_the_newest_time_so_a_backdated_file_is_kept(tmp_path: Path) -> None:
    """touch -d '3 days ago' cannot move ctime: tmpfiles keeps such a file, and so do we."""
    root = tmp_path / "r"
    old = write(root / "backdated")
    three_days_ago = time.time() - 3 * DAY
    os.utime(old, (three_days_ago, three_days_ago))
    removed, _ = run(root, now=time.time())
    assert removed == [] and old.exists()
    removed, _ = run(root, now=time.time(), age_by="mtime")
    assert removal_paths(removed) == [str(old)]


def test_age_by_atime_uses_only_atime(tmp_path: Path) -> None:
    root = tmp_path / "r"
    f = write(root / "f")
    now = time.time()
    os.utime(f, (now - 3 * DAY, now))  # read long ago, written now
    removed, _ = run(root, now=now, age_by="atime")
    assert removal_paths(removed) == [str(f)]


def test_an_unknown_age_rule_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="age_by"):
        run(tmp_path, age_by="birth")


def test_future_times_count_as_young(tmp_path: Path) -> None:
    root = tmp_path / "r"
    f = write(root / "f")
    os.utime(f, (FUTURE + DAY * 100, FUTURE + DAY * 100))
    removed, _ = run(root)
    assert removed == []


def test_old_directories_stay_old_after_being_read(tmp_path: Path) -> None:
    """Reading a directory bumps its atime; the cleaner puts it back, as tmpfiles does."""
    root = tmp_path / "r"
    keep = write(root / "d" / "young", new=True)
    old = time.time() - 5 * DAY
    os.utime(root / "d", (old, old))
    run(root, now=time.time(), age_by="atime")
    st = os.stat(root / "d")
    assert abs(st.st_atime - old) < 1 and abs(st.st_mtime - old) < 1
    assert keep.exists()


def test_a_directory_something_was_removed_from_keeps_its_old_times(tmp_path: Path) -> None:
    """Removing an entry moves the directory's mtime; the cleaner puts both times back
    (without a look first: issue 21's walk skips the fstat when it removed something)."""
    root = tmp_path / "r"
    write(root / "d" / "old")
    keep = write(root / "d" / "young", new=True)
    old = time.time() - 5 * DAY
    os.utime(root / "d", (old, old))
    removed, _ = run(root)
    assert removal_paths(removed) == [str(root / "d" / "old")]
    st = os.stat(root / "d")
    assert abs(st.st_atime - old) < 1 and abs(st.st_mtime - old) < 1
    assert keep.exists()


def test_a_directory_with_nothing_removed_is_read_without_touching_its_times(
    tmp_path: Path,
) -> None:
    """Directories are opened O_NOATIME (as systemd-tmpfiles): reading one with nothing old
    in it leaves its atime alone, so there is nothing to put back and no utime, which would
    move its ctime (the old walk read it, saw the atime bumped and reset it: a ctime moved
    on every directory of every cron run that found nothing). Dry run and real run alike."""
    root = tmp_path / "r"
    keep = write(root / "d" / "young", new=True)
    old = time.time() - 5 * DAY
    os.utime(root / "d", (old, old))  # atime older than mtime+24 h: relatime updates it
    before = os.stat(root / "d")
    time.sleep(0.05)  # past the filesystem's timestamp granularity: a utime would show
    for dry_run in (True, False):
        removed, report = run(root, now=time.time(), dry_run=dry_run)
        assert removed == [] and report.ok  # type: ignore[attr-defined]
        after = os.stat(root / "d")
        assert after.st_ctime_ns == before.st_ctime_ns, "the directory's times were rewritten"
        assert (after.st_atime_ns, after.st_mtime_ns) == (before.st_atime_ns, before.st_mtime_ns)
    assert keep.exists()


def test_root_without_cap_fowner_reads_another_users_directory_without_o_noatime(
    tmp_path: Path,
) -> None:
    """O_NOATIME is refused (EPERM) to a process that neither owns the directory nor has
    CAP_FOWNER: root stripped of it (setpriv) still enters nobody's directory, opened
    without the flag, and cleans it (putting its times back is then not its to do: as
    before, that utime fails quietly)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("this test needs root and setpriv (util-linux), as the suite does")
    root = tmp_path / "r"
    write(root / "theirs" / "old")
    keep = write(root / "theirs" / "young", new=True)
    os.chown(root / "theirs", 65534, 65534)
    old = time.time() - 5 * DAY
    os.utime(root / "theirs", (old, old))
    code = (
        "import sys\n"
        "from reliactl.cleanup import CleanupTarget, clean_root\n"
        "r = clean_root(CleanupTarget(sys.argv[1], 86400.0), now=float(sys.argv[2]))\n"
        "print(r.files_removed, dict(r.skipped), r.ok)\n"
    )
    strip = ["setpriv", "--bounding-set", "-fowner", "--inh-caps", "-fowner"]
    out = subprocess.run(
        [*strip, sys.executable, "-c", code, str(root), str(time.time() + DAY)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "{}", "True"], out.stdout + out.stderr
    assert not (root / "theirs" / "old").exists() and keep.exists()


def test_exclude_keeps_names_and_whole_directories(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root / "keep-me")
    write(root / "drop.tmp")
    write(root / "cache" / "keep-inside")
    report = clean_root(CleanupTarget(str(root), DAY, exclude=("keep-*", "cache")), now=FUTURE)
    assert report.files_removed == 1
    assert (root / "keep-me").exists() and (root / "cache" / "keep-inside").exists()
    assert not (root / "drop.tmp").exists()
    assert report.skipped == {"excluded": 2}


def test_include_limits_removal_to_matching_names(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write(root / "a.tmp")
    write(root / "a.pdf")
    write(root / "sub" / "b.tmp")
    got: list[Removal] = []
    clean_root(CleanupTarget(str(root), DAY, include=("*.tmp",)), now=FUTURE, on_remove=got.append)
    assert removal_paths(got) == [str(root / "a.tmp"), str(root / "sub" / "b.tmp")]
    assert (root / "a.pdf").exists() and (root / "sub").is_dir()


# --------------------------------------------------------------------------- size budget


def test_size_budget_removes_oldest_first_until_the_root_fits(tmp_path: Path) -> None:
    root = tmp_path / "r"
    base = FUTURE - 3600  # all young by age (1 day max_age)
    for index in range(5):
        f = write(root / "d" / f"f{index}", "x" * 100)
        os.utime(f, (base + index * 60, base + index * 60))
    got: list[Removal] = []
    report = clean_root(
        CleanupTarget(str(root), DAY, max_total_size=250), now=FUTURE, on_remove=got.append
    )
    assert [Path(r.path).name for r in got] == ["f0", "f1", "f2"]
    assert all(r.reason == "size" for r in got)
    assert report.kept_bytes == 200 and report.over_budget == 0
    assert report.removed_for_size == 3
    assert sorted(p.name for p in (root / "d").iterdir()) == ["f3", "f4"]


def test_size_budget_never_removes_a_locked_or_excluded_file(tmp_path: Path) -> None:
    root = tmp_path / "r"
    base = FUTURE - 3600
    for index, name in enumerate(["locked", "keep-x", "plain"]):
        f = write(root / name, "x" * 100)
        os.utime(f, (base + index, base + index))
    holder = hold_lock(root / "locked")
    try:
        report = clean_root(
            CleanupTarget(str(root), DAY, exclude=("keep-*",), max_total_size=50), now=FUTURE
        )
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in root.iterdir()) == ["keep-x", "locked"]
    assert report.over_budget == 150 and report.skipped == {"excluded": 1, "locked": 1}


def test_size_budget_dry_run_matches_the_real_run(tmp_path: Path) -> None:
    root = tmp_path / "r"
    for index in range(6):
        f = write(root / f"s{index % 2}" / f"f{index}", "y" * 10 * (index + 1))
        os.utime(f, (FUTURE - 100 * index, FUTURE - 100 * index))
    target = CleanupTarget(str(root), DAY, max_total_size=60)
    dry: list[Removal] = []
    real: list[Removal] = []
    clean_root(target, now=FUTURE, dry_run=True, on_remove=dry.append)
    clean_root(target, now=FUTURE, on_remove=real.append)
    assert [r.path for r in dry] == [r.path for r in real] and real


# --------------------------------------------------------------------------- trouble mid-walk


def test_entries_vanishing_mid_walk_are_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "r"
    for index in range(50):
        write(root / f"f{index:02}")
    others = [root / f"f{index:02}" for index in range(50)]

    def vanish_the_rest(removal: Removal) -> None:
        for p in others:
            if str(p) != removal.path:
                p.unlink(missing_ok=True)

    report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE, on_remove=vanish_the_rest)
    assert report.ok
    assert report.files_removed >= 1
    assert report.files_removed + report.skipped.get("vanished", 0) == 50
    assert report.skipped.get("vanished", 0) > 0


def test_a_file_that_cannot_be_removed_is_an_error_but_the_walk_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "r"
    stuck = write(root / "a" / "stuck")
    write(root / "b" / "other")
    result = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {result.stderr.strip()}")
    try:
        removed, report = run(root)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
    assert not report.ok  # type: ignore[attr-defined]
    assert report.error_count == 1  # type: ignore[attr-defined]
    assert report.errors[0].path == str(stuck)  # type: ignore[attr-defined]
    assert "cannot remove" in report.errors[0].message  # type: ignore[attr-defined]
    assert removal_paths(removed) == [str(root / "b"), str(root / "b" / "other")]
    assert (root / "a").is_dir()


def test_progress_is_reported_on_long_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reliactl import cleanup

    monkeypatch.setattr(cleanup, "PROGRESS_EVERY", 100)
    root = tmp_path / "r"
    root.mkdir()
    for index in range(250):
        (root / f"{index}").write_bytes(b"")
    seen: list[int] = []
    clean_root(
        CleanupTarget(str(root), DAY),
        now=FUTURE,
        dry_run=True,
        on_progress=lambda p: seen.append(p.scanned),
    )
    assert seen[:2] == [100, 200]


def test_deep_trees_do_not_exhaust_recursion(tmp_path: Path) -> None:
    root = tmp_path / "r"
    deep = root
    for _ in range(300):
        deep = deep / "d"
    write(deep / "old")
    _, report = run(root, dry_run=True)
    assert report.skipped == {"too-deep": 1}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- shared directories


def test_in_a_shared_directory_a_fifo_swapped_in_after_listing_is_never_opened(
    tmp_path: Path,
) -> None:
    """The listed regular file became a FIFO (the race): the O_PATH probe opens nothing."""
    from reliactl.cleanup import _Probe

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    listed = write(shared / "victim")
    st = os.lstat(listed)
    listed.unlink()
    os.mkfifo(listed)  # same name, now a FIFO
    writer = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; os.open(sys.argv[1], os.O_WRONLY)", str(listed)]
    )
    dfd = os.open(shared, os.O_RDONLY | os.O_DIRECTORY)
    try:
        time.sleep(0.3)
        assert _Probe().open(dfd, "victim", st, shared=True) == "changed"
        with pytest.raises(subprocess.TimeoutExpired):
            writer.wait(timeout=0.5)
    finally:
        os.close(dfd)
        writer.kill()
        writer.wait()


def test_a_world_writable_sticky_directory_is_cleaned_with_the_strict_probe(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    root.chmod(0o1777)
    write(root / "old")
    write(root / "held", "")
    holder = hold_lock(root / "held")
    try:
        removed, report = run(root)
    finally:
        holder.kill()
        holder.wait()
    assert removal_paths(removed) == [str(root / "old")]
    assert report.skipped == {"locked": 1}  # type: ignore[attr-defined]


def test_a_directory_denied_mid_walk_is_skipped_and_counted(tmp_path: Path) -> None:
    """A directory the walk may not open (EACCES: root stripped of CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH by setpriv, a mode-000 directory of another user) is skipped as
    "denied", is not an error, and the rest of the tree is cleaned; both walks (the C
    recursion opens directories itself, so this is a real denial, not a mocked os.open)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("this test needs root and setpriv (util-linux), as the suite does")
    root = tmp_path / "r"
    write(root / "closed" / "inside")
    write(root / "open" / "old")
    os.chown(root / "closed", 65534, 65534)
    os.chmod(root / "closed", 0o000)
    old = time.time() - 5 * DAY
    os.utime(root / "closed", (old, old))
    code = (
        "import sys\n"
        "from reliactl.cleanup import CleanupTarget, clean_root\n"
        "got = []\n"
        "r = clean_root(CleanupTarget(sys.argv[1], 86400.0), now=float(sys.argv[2]),\n"
        "               on_remove=lambda x: got.append(x.path))\n"
        "print(r.ok, dict(r.skipped), sorted(got))\n"
    )
    caps = "-dac_override,-dac_read_search"
    strip = ["setpriv", "--bounding-set", caps, "--inh-caps", caps]
    try:
        out = subprocess.run(
            [*strip, sys.executable, "-c", code, str(root), str(FUTURE)],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
            check=False,
        )
    finally:
        os.chmod(root / "closed", 0o755)
    assert out.returncode == 0, out.stderr
    expected = [str(root / "open"), str(root / "open" / "old")]
    assert out.stdout.strip() == f"True {{'denied': 1}} {expected}", out.stdout + out.stderr
    assert (root / "closed" / "inside").exists()


@pytest.mark.parametrize("shared", [False, True])
def test_a_file_replaced_after_it_was_listed_is_not_removed(tmp_path: Path, shared: bool) -> None:
    """The age was judged on the listed inode; a newcomer under the same name stays."""
    from reliactl.cleanup import _Walker

    root = tmp_path / "r"
    listed = write(root / "name", "old")
    st = os.lstat(listed)
    listed.unlink()
    time.sleep(0.02)  # a later clock tick: the newcomer's ctime differs (its inode may not)
    write(root / "name", "newcomer")
    walker = _Walker(
        CleanupTarget(str(root), DAY),
        str(root),
        dry_run=False,
        now=FUTURE,
        age_by="newest",
        on_remove=None,
        on_progress=None,
    )
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert walker.remove_file(dfd, "name", st, shared) == "changed"
    finally:
        os.close(dfd)
    assert (root / "name").read_text() == "newcomer"


# --------------------------------------------------------------------------- the inline path


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_inline_path_decides_exactly_as_the_rule_by_rule_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """list_dir's inline decision for plain files and symlinks (issue 21: the per-file cost)
    gives the same removals, skips and counts as sending every entry through ``decide``."""
    from reliactl import cleanup

    results = []
    for inline in (True, False):
        base = tmp_path / ("inline" if inline else "rules")
        root, _, expected = hostile_tree(base)
        shared = root / "shared"
        shared.mkdir()
        shared.chmod(0o1777)
        write(shared / "old_in_shared", "12345")
        write(shared / "new_in_shared", new=True)
        write(root / "held.lock", "")
        holder = hold_lock(root / "held.lock")
        if not inline:
            monkeypatch.setattr(cleanup, "_REMOVABLE", frozenset())
            monkeypatch.setattr(cleanup, "_S_IFDIR", -1)  # directories through decide() too
        try:
            removed, report = run(root, dry_run=dry_run)
        finally:
            monkeypatch.undo()
            holder.kill()
            holder.wait()
        assert expected <= set(removal_paths(removed))
        results.append(
            (
                sorted((os.path.relpath(r.path, root), r.kind, r.size) for r in removed),
                report.skipped,  # type: ignore[attr-defined]
                report.scanned,  # type: ignore[attr-defined]
                report.files_removed,  # type: ignore[attr-defined]
                report.symlinks_removed,  # type: ignore[attr-defined]
                report.dirs_removed,  # type: ignore[attr-defined]
                report.bytes_removed,  # type: ignore[attr-defined]
                report.kept_bytes,  # type: ignore[attr-defined]
                sorted(os.path.relpath(p, root) for p in snapshot(root)),
            )
        )
    assert results[0] == results[1]


def test_in_a_shared_directory_a_file_swapped_just_before_the_unlink_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk re-checks the name in a directory others may write to: a file put under the
    listed name after the listing (another inode) is neither removed nor counted, and the
    walk goes on. The swap happens inside the lock table's re-read, which both walks do
    between a file's lstat and its unlink (the table is made stale before every file)."""
    from reliactl import cleanup

    root = tmp_path / "r"
    root.mkdir()
    root.chmod(0o1777)
    write(root / "victim", "old")  # the only file of the shared root
    write(root / "sub" / "a_old")  # a later directory, not shared: the walk goes on
    if cleanup._LockTable.for_root(str(root), os.stat(root).st_dev) is None:
        pytest.skip("the lock table is not trusted here; the flock probe checks the inode")
    real_refresh = cleanup._LockTable.refresh
    refreshes: list[float] = []

    def swapping_refresh(self: cleanup._LockTable, now: float) -> None:
        refreshes.append(now)
        if len(refreshes) == 1:  # the walk's first read: right after victim's lstat
            os.unlink(root / "victim")
            time.sleep(0.02)  # a later clock tick: the newcomer's ctime differs
            (root / "victim").write_text("newcomer")
        real_refresh(self, now)

    monkeypatch.setattr(cleanup._LockTable, "refresh", swapping_refresh)
    monkeypatch.setattr(cleanup, "LOCK_TABLE_TTL", -1.0)  # re-read before every file
    removed, report = run(root)
    assert len(refreshes) >= 2
    assert removal_paths(removed) == [str(root / "sub"), str(root / "sub" / "a_old")]
    assert (root / "victim").read_text() == "newcomer"
    assert report.skipped == {"changed": 1} and report.ok  # type: ignore[attr-defined]


def test_importing_the_cleanup_core_leaves_the_lock_sweepers_modules_alone() -> None:
    """A cleanup walk pays for no import it does not use (issue 21: start-up is most of a
    10k-file run): the stale-lock sweeper's modules, json, struct and fnmatch load when used,
    and the result records are ``_records`` ones, so neither ``dataclasses`` nor what it
    imports (``inspect``, ``ast``, ``dis``: ~14 ms, and ~10 ms more to compile eight frozen
    dataclasses) is loaded."""
    code = (
        "import sys, reliactl.cleanup\n"
        "lazy = ('reliactl.locks', 'reliactl.hostname', 'json', 'struct', 'fnmatch',\n"
        "        'dataclasses', 'inspect', 'ast')\n"
        "print([m for m in lazy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_cleanup_command_imports_no_typing(tmp_path: Path) -> None:
    """``reliactl cleanup --dry-run --older-than 1d DIR`` (as cron starts it) loads no
    ``typing`` (issue 21, sixth session: ~2.5 ms of a ~35 ms start): the public records'
    ``Literal`` annotations resolve through a lazy ``Literal`` and the aliases ``AgeBy`` and
    ``EntryKind`` are made at first use (typing.get_type_hints on the records is pinned by
    tests/test_config_records.py, the aliases by tests/test_run_core_imports.py)."""
    from tests.importtime import cron_env, start_reliactl

    target = tmp_path / "target"
    write(target / "old")
    result, modules = start_reliactl(
        ["cleanup", "--dry-run", "--older-than", "1d", str(target)], env=cron_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reliactl.cleanup" in modules
    assert "typing" not in modules
