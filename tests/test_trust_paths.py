"""The whole-path trust rule (reliactl.trust.resolve_untrusted / open_untrusting) for files
whose content aims reliactl's power (a pidfile it signals or watches): every directory up
the path and every link on the way must be this user's or root's, the file too; a sticky
directory is fine when the entry in it is trusted. Real files, links made by another user
(nobody, through setpriv), and the `process` health check that reads a pidfile."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runhelpers import NOBODY

from reliactl.config import CheckSpec, HealthMonitorConfig
from reliactl.health.checks import custom_check
from reliactl.health.model import Status
from reliactl.health.monitor import RecordStore, run_checks
from reliactl.trust import Untrusted, open_untrusting, resolve_untrusted


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-trust-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def nobody_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir()
    path.chmod(mode)
    os.chown(path, 65534, 65534)
    return path


def read(path: Path) -> bytes:
    fd = open_untrusting(str(path))
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_a_trusted_path_through_a_trusted_link_is_opened(shared: Path) -> None:
    """Root's file behind root's link (/var/run -> /run style, the link in the middle of the
    path and at its end) is opened, and the resolved path has no link left in it."""
    real = shared / "real"
    real.mkdir()
    (real / "app.pid").write_text("123\n")
    (shared / "run").symlink_to(real)
    (real / "current.pid").symlink_to("app.pid")
    physical, reason = resolve_untrusted(str(shared / "run" / "current.pid"))
    assert reason is None and physical == str(real / "app.pid")
    assert read(shared / "run" / "current.pid") == b"123\n"


def test_a_link_nobody_planted_in_their_directory_is_refused(shared: Path) -> None:
    """nobody's directory with nobody's link to root's secret file: refused, naming the
    directory and its owner; the secret is never read."""
    secret = shared / "secret"
    secret.write_text("root-only\n")
    secret.chmod(0o600)
    theirs = nobody_dir(shared / "nob")
    link = theirs / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(secret), str(link)], check=True, timeout=30)
    with pytest.raises(Untrusted, match=r"directory .*/nob is owned by nobody \(uid 65534\)"):
        read(link)


def test_nobodys_link_in_a_sticky_directory_is_refused_and_roots_entry_is_not(
    shared: Path,
) -> None:
    """A /tmp-like directory (1777): root's file in it is trusted (nobody can replace it),
    nobody's link in it is not (they can point it anywhere)."""
    sticky = shared / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    mine = sticky / "mine.pid"
    mine.write_text("42\n")
    assert read(mine) == b"42\n"
    link = sticky / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(mine), str(link)], check=True, timeout=30)
    with pytest.raises(Untrusted, match=r"symbolic link .*bot.pid is owned by nobody"):
        read(link)


def test_a_directory_up_the_path_writable_by_others_is_refused(shared: Path) -> None:
    """A grandparent writable by everyone (not sticky): anyone could rename the parent away
    and put theirs in its place, so root's file under root's parent is refused."""
    outer = shared / "open"
    outer.mkdir()
    outer.chmod(0o777)
    inner = outer / "run"
    inner.mkdir()
    (inner / "app.pid").write_text("7\n")
    with pytest.raises(Untrusted, match="writable by others"):
        read(inner / "app.pid")


def test_a_file_of_another_user_or_not_regular_is_refused(shared: Path) -> None:
    """The file itself: nobody's file, or a FIFO (refused at once, never blocking the read)."""
    theirs = shared / "theirs.pid"
    theirs.write_text("1\n")
    os.chown(theirs, 65534, 65534)
    with pytest.raises(Untrusted, match="the file is owned by nobody"):
        read(theirs)
    fifo = shared / "fifo.pid"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(Untrusted, match="not a regular file"):
        read(fifo)


def test_a_missing_file_is_an_oserror_not_a_refusal(shared: Path) -> None:
    """A pidfile not there (yet) is the ordinary error, so it is reported as missing."""
    with pytest.raises(FileNotFoundError):
        read(shared / "absent" / "app.pid")


def test_the_process_check_refuses_a_planted_pidfile_without_leaking_its_target(
    shared: Path,
) -> None:
    """A `process` check whose pidfile is nobody's link to a root-only file is UNKNOWN with
    the reason, and the message does not quote the target's content (before: it followed the
    link and printed the file's first characters as "does not hold a pid ('...')")."""
    secret = shared / "secret"
    secret.write_text("hunter2-secret\n")
    secret.chmod(0o600)
    theirs = nobody_dir(shared / "nob")
    link = theirs / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(secret), str(link)], check=True, timeout=30)
    check = custom_check(
        CheckSpec(name="svc", kind="process", pidfile=str(link)), HealthMonitorConfig()
    )
    metric = asyncio.run(run_checks([check], RecordStore())).metrics["svc"]
    assert metric.status is Status.UNKNOWN, metric.message
    assert "owned by nobody" in metric.message and "hunter2" not in metric.message
