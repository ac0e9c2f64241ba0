"""The lock directory's trust rule: `run --lock` refuses a directory another user could use
to unlink or replace a held lock file (RELIABILITY.md: mutual exclusion), and keeps working
in sticky shared directories (/tmp, /run/lock) and in a directory it creates."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliactl import locks
from reliactl.errors import LockError
from tests.runhelpers import NOBODY, default_signals, reliactl_cmd, run


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned directory (0755) another user can traverse, unlike pytest's tmp_path."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("these tests need root and setpriv (util-linux), as the suite does")
    top = Path(tempfile.mkdtemp(prefix="reliactl-lockdir-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_a_world_writable_lock_directory_without_sticky_bit_is_refused(shared: Path) -> None:
    """0777 (or 0770, a shared group) without +t: refused with the mode in the message,
    before any lock file exists; the same with +t locks."""
    directory = shared / "locks"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(LockError, match=r"lock directory .*mode 0777.*chmod \+t"):
        locks.acquire(str(directory / "job.lock"))
    assert not (directory / "job.lock").exists()
    # group-writable for a group that is not root's private one (nogroup): refused too;
    # with the sticky bit (1770) it is a shared directory and locks
    directory.chmod(0o770)
    os.chown(directory, 0, 65534)
    with pytest.raises(LockError, match=r"mode 0770"):
        locks.acquire(str(directory / "job.lock"))
    directory.chmod(0o1770)
    with locks.acquire(str(directory / "job.lock")) as held:
        assert held.held


def test_a_lock_directory_owned_by_another_user_is_refused(shared: Path) -> None:
    """A 0700 directory owned by nobody: its owner can replace our lock file; refused."""
    directory = shared / "locks"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(LockError, match=r"owned by .*uid 65534\), not by root \(uid 0\);"):
        locks.acquire(str(directory / "job.lock"))
    assert not (directory / "job.lock").exists()


def test_a_sticky_shared_directory_and_a_created_one_still_lock(shared: Path) -> None:
    """/tmp-style (root's, 1777) works for root and for nobody; a missing one is made 0700."""
    sticky = shared / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    with locks.acquire(str(sticky / "root.lock")) as held:
        assert held.held
    os.seteuid(65534)
    try:
        with locks.acquire(str(sticky / "nobody.lock")) as held:
            assert held.held
    finally:
        os.seteuid(0)
    made = shared / "new" / "locks"
    with locks.acquire(str(made / "job.lock")) as held:
        assert held.held
    assert made.stat().st_mode & 0o7777 == 0o700


def test_nobody_replacing_a_held_lock_file_cannot_give_a_second_run_the_lock(
    shared: Path,
) -> None:
    """The attack, with real runs: run A holds the lock in a 0777 directory; nobody unlinks
    and recreates job.lock; run B must not get the lock while A holds it. The old code let
    B run (two holders); now A (and B) are refused before their command runs."""
    state = shared / "state"
    directory = state / "reliactl" / "locks"
    directory.mkdir(parents=True)
    state.chmod(0o755)
    (state / "reliactl").chmod(0o755)
    directory.chmod(0o777)
    lock = directory / "job.lock"
    started, go, b_ran = shared / "a-started", shared / "go", shared / "b-ran"
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    wait_for_go = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done"
    a = subprocess.Popen(
        reliactl_cmd("run", "--lock-name", "job", "--", "sh", "-c", wait_for_go),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    try:
        deadline = time.monotonic() + 60  # only guards against a hang
        while not started.exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if started.exists():  # A holds the lock: the old code got here
            attack = (
                "import os, sys; p = sys.argv[1]; os.unlink(p); os.close(os.open(p, os.O_CREAT"
                " | os.O_WRONLY, 0o666))"
            )
            subprocess.run([*NOBODY, "python3", "-c", attack, str(lock)], check=True, timeout=60)
            b = run("run", "--lock-name", "job", "--", "touch", str(b_ran), env=env)
            go.touch()
            assert not b_ran.exists(), "a second run got the lock while the first held it"
            assert b.returncode == 75, b.stderr
        _, a_err = a.communicate(timeout=60)
    finally:
        go.touch()
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == 125, a_err
    assert not started.exists()
    assert a_err.count("\n") == 1 and "refusing the lock directory" in a_err, a_err
    assert "mode 0777" in a_err and "chmod +t" in a_err, a_err
