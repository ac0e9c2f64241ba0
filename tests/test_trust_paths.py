"""The pidfile path rule (reliactl.trust.resolve_owners / open_pidfile), systemd's for
PIDFile=: a path all root's or this user's names any process; one through one other user's
directory, link or file names only that user's processes (the owner comes back); two such
users, or anything writable by others (a sticky directory excepted), are refused. Real
files, links made by another user (nobody, through setpriv), and the `process` health check,
which reads a pidfile with no trust rule (a daemon's own /run/X) and never quotes it."""

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
from reliactl.health.model import HealthMetric, Status
from reliactl.health.monitor import RecordStore, run_checks
from reliactl.trust import Untrusted, open_pidfile, resolve_owners


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
    """The pidfile's content, when the path is all root's (else Untrusted, or AssertionError
    naming the other owner the caller would have to check the pid against)."""
    fd, owner = open_pidfile(str(path))
    try:
        assert owner is None, owner
        return os.read(fd, 100)
    finally:
        os.close(fd)


def owner_of(path: Path) -> int | None:
    fd, owner = open_pidfile(str(path))
    os.close(fd)
    return owner


def test_a_trusted_path_through_a_trusted_link_is_opened(shared: Path) -> None:
    """Root's file behind root's link (/var/run -> /run style, the link in the middle of the
    path and at its end) is opened, and the resolved path has no link left in it."""
    real = shared / "real"
    real.mkdir()
    (real / "app.pid").write_text("123\n")
    (shared / "run").symlink_to(real)
    (real / "current.pid").symlink_to("app.pid")
    physical, reason, owners = resolve_owners(str(shared / "run" / "current.pid"))
    assert reason is None and not owners and physical == str(real / "app.pid")
    assert read(shared / "run" / "current.pid") == b"123\n"


def test_a_link_nobody_planted_in_their_directory_binds_the_pid_to_nobody(shared: Path) -> None:
    """nobody's directory with nobody's link to root's file: not trusted for any pid, only
    for nobody's processes (the owner comes back for the caller to check the pid against)."""
    secret = shared / "secret"
    secret.write_text("root-only\n")
    secret.chmod(0o600)
    theirs = nobody_dir(shared / "nob")
    link = theirs / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(secret), str(link)], check=True, timeout=30)
    assert owner_of(link) == 65534


def test_a_daemons_own_runtime_directory_binds_the_pid_to_the_daemon(shared: Path) -> None:
    """/run/X owned by the daemon user (systemd RuntimeDirectory= with User=) holding the
    daemon's pidfile: usable, for that user's processes (before: refused outright)."""
    run = nobody_dir(shared / "mysqld")
    pidfile = run / "mysqld.pid"
    subprocess.run([*NOBODY, "sh", "-c", f"echo 42 > {pidfile}"], check=True, timeout=30)
    assert owner_of(pidfile) == 65534
    (run / "root.pid").write_text("43\n")  # root's file in nobody's directory: still nobody's
    assert owner_of(run / "root.pid") == 65534


def test_two_other_users_on_the_path_are_refused(shared: Path) -> None:
    """nobody's directory holding a file of uid 65533: no one user the pid could be bound
    to, so refused, naming both."""
    run = nobody_dir(shared / "nob")
    pidfile = run / "app.pid"
    pidfile.write_text("42\n")
    os.chown(pidfile, 65533, 65533)
    with pytest.raises(Untrusted, match=r"more than one other user .*65533.*65534"):
        owner_of(pidfile)


def test_nobodys_link_in_a_sticky_directory_is_nobodys_and_roots_entry_is_roots(
    shared: Path,
) -> None:
    """A /tmp-like directory (1777): root's file in it is trusted (nobody can replace it),
    nobody's link in it binds the pid to nobody (they can point it anywhere)."""
    sticky = shared / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    mine = sticky / "mine.pid"
    mine.write_text("42\n")
    assert read(mine) == b"42\n"
    link = sticky / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(mine), str(link)], check=True, timeout=30)
    assert owner_of(link) == 65534


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


def test_a_file_of_another_user_binds_and_a_fifo_or_writable_file_is_refused(
    shared: Path,
) -> None:
    """The file itself: nobody's file binds the pid to nobody; a file writable by others or
    a FIFO is refused (the FIFO at once, never blocking the read)."""
    theirs = shared / "theirs.pid"
    theirs.write_text("1\n")
    os.chown(theirs, 65534, 65534)
    assert owner_of(theirs) == 65534
    theirs.chmod(0o666)
    with pytest.raises(Untrusted, match="writable by others"):
        owner_of(theirs)
    fifo = shared / "fifo.pid"
    os.mkfifo(fifo, 0o644)
    with pytest.raises(Untrusted, match="not a regular file"):
        read(fifo)


def test_a_missing_file_is_an_oserror_not_a_refusal(shared: Path) -> None:
    """A pidfile not there (yet) is the ordinary error, so it is reported as missing."""
    with pytest.raises(FileNotFoundError):
        read(shared / "absent" / "app.pid")


def run_process_check(pidfile: Path) -> HealthMetric:
    check = custom_check(
        CheckSpec(name="svc", kind="process", pidfile=str(pidfile)), HealthMonitorConfig()
    )
    return asyncio.run(run_checks([check], RecordStore())).metrics["svc"]


def test_the_process_check_never_quotes_a_planted_pidfile(shared: Path) -> None:
    """A `process` check whose pidfile is nobody's link to a root-only file: the message
    does not quote the target's content (it could be a secret)."""
    secret = shared / "secret"
    secret.write_text("hunter2-secret\n")
    secret.chmod(0o600)
    theirs = nobody_dir(shared / "nob")
    link = theirs / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(secret), str(link)], check=True, timeout=30)
    metric = run_process_check(link)
    assert metric.status is not Status.OK, metric.message
    assert "hunter2" not in metric.message


def test_the_process_check_reads_a_daemons_own_runtime_directory(shared: Path) -> None:
    """The review's regression: /run/X owned by the daemon user (RuntimeDirectory= with
    User=) and the daemon's pidfile in it: the check is OK for the live process (before:
    UNKNOWN, "the directory ... is owned by nobody ... refused")."""
    run = nobody_dir(shared / "redis")
    proc = subprocess.Popen([*NOBODY, "sleep", "120"])
    try:
        pidfile = run / "redis.pid"
        subprocess.run(
            [*NOBODY, "sh", "-c", f"echo {proc.pid} > {pidfile}"], check=True, timeout=30
        )
        metric = run_process_check(pidfile)
        assert metric.status is Status.OK, metric.message
    finally:
        proc.kill()
        proc.wait(30)
