"""`cleanup --stale-locks` in the field: a file held by any kind of lock (flock, POSIX
``lockf``/``fcntl``, OFD) is never removed, and in a shared lock directory (/tmp, /run/lock)
only reliactl's own lock files of the invoking user are judged (RELIABILITY.md #13)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliactl import cleanup
from reliactl.cleanup import sweep_stale_locks
from tests.runhelpers import NOBODY, run

HOST = os.uname().nodename

# Takes one kind of lock on argv[2] and says so; holds it until killed.
HOLDER = r"""
import fcntl, os, struct, sys, time
kind, path = sys.argv[1:3]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
elif kind == "lockf":
    fcntl.lockf(fd, fcntl.LOCK_EX)
elif kind == "fcntl-read":  # a shared POSIX lock on one byte, as some daemons take
    fcntl.fcntl(fd, fcntl.F_SETLKW, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, 0, 1, 0))
elif kind == "ofd":
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
os.utime(path, (0, 0))  # old: only the lock protects it
print("locked", flush=True)
time.sleep(600)
"""


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def record(pid: int, host: str = HOST) -> str:
    doc = {"pid": pid, "host": host, "started_at": time.time() - 60, "command": "job.sh"}
    return json.dumps(doc) + "\n"


def aged(path: Path, content: str = "", *, uid: int = 0) -> Path:
    path.write_text(content)
    os.chown(path, uid, uid)
    os.utime(path, (1000.0, 1000.0))
    return path


@pytest.fixture
def holder() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def hold(kind: str, path: Path) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, str(path)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sticky, world-writable directory (1777, root's) like /tmp or /run/lock."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("these tests need root and setpriv (util-linux), as the suite does")
    top = Path(tempfile.mkdtemp(prefix="reliactl-stale-"))
    top.chmod(0o755)
    locks = top / "lock"
    locks.mkdir()
    locks.chmod(0o1777)
    try:
        yield locks
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("table", [True, False], ids=["lock-table", "probe"])
@pytest.mark.parametrize("kind", ["flock", "lockf", "fcntl-read", "ofd"])
def test_a_file_held_by_any_kind_of_lock_is_kept(
    tmp_path: Path, holder: object, kind: str, table: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old, empty (or dead-pid) lock file held by a flock, a POSIX lock (lockf, or a read
    lock on one byte) or an OFD lock is kept as "held", with the kernel's lock table and,
    where it is not trusted, with the flock + F_OFD_GETLK probe. The old sweep only tried
    flock, which POSIX and OFD locks do not conflict with, and removed them."""
    if not table:
        monkeypatch.setattr(cleanup._LockTable, "for_root", classmethod(lambda *a: None))
    empty = tmp_path / "empty.lock"
    gone = aged(tmp_path / "gone.lock", record(dead_pid()))
    holder(kind, empty)  # type: ignore[operator]
    holder(kind, gone)  # type: ignore[operator]
    report = sweep_stale_locks(str(tmp_path), grace=0)
    assert empty.exists() and gone.exists()
    assert report.removed == () and report.kept == {"held": 2}


def test_cli_keeps_a_lockf_held_lock_file(tmp_path: Path, holder: object) -> None:
    """The reported case end to end: a daemon's lockf on L/daemon.lock (old, empty) and
    `RELIACTL_RUN__LOCK_DIR=L reliactl cleanup --stale-locks -l` removes nothing."""
    locks = tmp_path / "L"
    locks.mkdir()
    held = locks / "daemon.lock"
    holder("lockf", held)  # type: ignore[operator]
    env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(locks), "HOME": str(tmp_path)}
    result = run("cleanup", "--stale-locks", "-l", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert held.exists() and result.stdout == ""
    assert "removed 0 stale locks; kept: held 1" in result.stderr, result.stderr


def test_only_reliactls_own_lock_files_are_judged_in_a_shared_directory(shared: Path) -> None:
    """In a sticky shared directory root's sweep removes its own stale reliactl lock files
    (empty, or a reliactl record whose holder is gone) and another user's too (empty: the
    normal leftover of a released run under that account; or a reliactl record whose holder
    is gone). Kept: a dot-file (PostgreSQL's socket lock), a file holding a bare pid or
    another program's JSON, a name run never makes. The old sweep removed every unlocked
    *.lock older than 5 s."""
    dead = dead_pid()
    keep = [
        aged(shared / ".s.PGSQL.5432.lock", f"{dead}\n/var/run/postgresql\n", uid=65534),
        aged(shared / "otherapp.lock", f"{dead}\n"),
        aged(shared / "pidjson.lock", json.dumps({"pid": dead}) + "\n"),
        aged(shared / "extra.lock", json.dumps({**json.loads(record(dead)), "x": 1}) + "\n"),
        aged(shared / "two-lines.lock", record(dead) + record(dead)),
        aged(shared / "odd name.lock", ""),
    ]
    go = [
        aged(shared / "mine.lock", ""),
        aged(shared / "mine-gone.lock", record(dead)),
        aged(shared / "theirs-gone.lock", record(dead), uid=65534),
        aged(shared / "theirs-empty.lock", "", uid=65534),
    ]
    report = sweep_stale_locks(str(shared))
    assert all(p.exists() for p in keep) and not any(p.exists() for p in go)
    assert sorted(s.path for s in report.removed) == sorted(str(p) for p in go)
    assert report.kept == {"foreign": 6}


def test_a_user_sweep_judges_only_that_users_files(shared: Path) -> None:
    """Not root: another user's file (root's here, even a stale reliactl one) is kept as
    "other-user", never unlinked (in a non-sticky directory the old sweep could have)."""
    roots = aged(shared / "roots.lock", record(dead_pid()))
    sweep = (
        "import json, sys; from reliactl.cleanup import sweep_stale_locks;"
        " r = sweep_stale_locks(sys.argv[1]);"
        " print(json.dumps([[s.path for s in r.removed], dict(r.kept)]))"
    )
    subprocess.run(
        [
            *NOBODY,
            sys.executable,
            "-c",
            "import os, sys; open(sys.argv[1], 'w').close(); os.utime(sys.argv[1], (1000, 1000))",
            str(shared / "nobodys.lock"),
        ],
        check=True,
    )
    out = subprocess.run(
        [*NOBODY, sys.executable, "-c", sweep, str(shared)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    removed, kept = json.loads(out)
    assert roots.exists() and not (shared / "nobodys.lock").exists()
    assert removed == [str(shared / "nobodys.lock")] and kept == {"other-user": 1}
