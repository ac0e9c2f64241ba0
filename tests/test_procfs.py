"""reliactl._procfs: the one owner of /proc reading and pid liveness (issue 15 item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from runhelpers import NOBODY

from reliactl import _procfs
from reliactl.locks import LockHolder, holder_alive


def test_read_bytes_reads_a_file_past_one_read(tmp_path: Path) -> None:
    """A mountinfo larger than 64 KiB (hundreds of mounts) is read whole, not cut at one read
    (the runner's old reader stopped at 65536 bytes)."""
    data = b"".join(b"%d 1 0:1 / /mnt/m%d rw - tmpfs t rw\n" % (i, i) for i in range(4000))
    assert len(data) > 2 * 65536
    path = tmp_path / "mountinfo"
    path.write_bytes(data)
    assert _procfs.read_bytes(str(path)) == data
    assert _procfs.read_bytes(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/mnt/with\\040space", "/mnt/with space"),
        ("/mnt/tab\\011and\\012nl", "/mnt/tab\tand\nnl"),
        ("/mnt/back\\134slash", "/mnt/back\\slash"),
        ("/mnt/not\\089octal", "/mnt/not\\089octal"),
        ("/mnt/short\\04", "/mnt/short\\04"),
    ],
)
def test_mount_paths_are_unescaped_one_way(field: str, path: str) -> None:
    """One unescaper for cleanup, locks and the runner: three octal digits only (cleanup's old
    one raised ValueError on a backslash before "089")."""
    assert _procfs.unescape_mount(field) == path


def test_pid_alive_only_for_a_positive_int_that_exists() -> None:
    """Not a pid (bool, zero, negative, text) is not alive; a reaped child is not alive."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    for not_a_pid in (True, False, 0, -1, "12", None, 1.5, child.pid):
        assert not _procfs.pid_alive(not_a_pid), not_a_pid
    assert _procfs.pid_alive(os.getpid())


def test_another_users_process_is_alive_to_an_unprivileged_caller() -> None:
    """EPERM from kill(pid, 0) means the process exists: nobody sees root's pid 1 as alive."""
    code = f"import sys; sys.path.insert(0, {str(Path(_procfs.__file__).parent.parent)!r})\n"
    code += "from reliactl._procfs import pid_alive\nprint(pid_alive(1), pid_alive(2**22 + 1))"
    out = subprocess.run(
        [*NOBODY, sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def test_start_time_agrees_with_psutil() -> None:
    """Epoch start time from /proc/<pid>/stat and btime, as psutil computes it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = _procfs.start_time(child.pid)
        assert started is not None
        assert abs(started - psutil.Process(child.pid).create_time()) < 1.0
        assert abs(started - time.time()) < 60
    finally:
        child.kill()
        child.wait()
    assert _procfs.start_time(child.pid) is None


def test_a_holder_whose_pid_started_after_the_lock_is_a_recycled_pid() -> None:
    """holder_alive (locks.py, used by the sweeper): same pid, later start -> gone."""
    me = os.getpid()
    started = _procfs.start_time(me)
    assert started is not None
    assert holder_alive(LockHolder(me, None, started, None))
    assert holder_alive(LockHolder(me, None, None, None))
    assert not holder_alive(LockHolder(me, None, started - 3600, None))
    assert not holder_alive(LockHolder(None, None, None, None))


def test_a_record_older_than_the_boot_is_judged_only_when_it_may_be_from_before_a_reboot() -> None:
    """A wall-clock step forward moves every computed start time (btime + ticks) but not a
    recorded time. A record that cannot predate this boot (this_boot: a pidfile on tmpfs)
    and is older than the boot as computed now means the clock stepped: not judged (before:
    this very process "started after" it, a reused pid). Any other record from before the
    boot may be from before a reboot: judged, so a lock holder from then is gone."""
    boot = _procfs.boot_time()
    assert boot is not None
    assert not _procfs.started_after(os.getpid(), boot - 3600, this_boot=True)
    assert _procfs.started_after(os.getpid(), boot - 3600)
    assert not holder_alive(LockHolder(os.getpid(), "h", boot - 3600, None))
