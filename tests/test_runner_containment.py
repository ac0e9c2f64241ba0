"""reliactl run owns the whole job (issue 12): no process escapes the lock or the time limit.

Real processes throughout: a job that leaves its group (setsid, a nested timeout(1), a
double-forking daemon), survives SIGTERM, or outlives the command must be found (the shim is a
child subreaper) and stopped, and the lock must stay held until the last of them is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runhelpers import alive, lock_dir, lock_is_free, run, start, wait_file, wait_for


def lock_free(path: Path) -> bool:
    return not path.exists() or lock_is_free(path)


def watch_lock(proc: subprocess.Popen[str], lock: Path, pidfile: Path) -> list[str]:
    """Sample until ``proc`` exits: the lock must never be free while the job's pid lives.

    The lock is looked at first: once it is free, the process must already be gone.
    """
    violations = []
    while proc.poll() is None:
        if lock.exists() and pidfile.exists() and pidfile.read_text().strip():
            free = lock_is_free(lock)
            pid = int(pidfile.read_text())
            if free and alive(pid):
                violations.append(f"lock free while {pid} runs")
        time.sleep(0.01)
    return violations


def kill_quietly(pidfile: Path) -> None:
    with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def report(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_a_setsid_escape_is_stopped_at_the_timeout_and_the_lock_waits_for_it(
    tmp_path: Path,
) -> None:
    """The issue's reproduction: `setsid` leaves the group; it used to outlive the run and
    overlap the next one. It is signalled with the group, and counted as escaped."""
    pidfile, log, rep = tmp_path / "pid", tmp_path / "log", tmp_path / "report.json"
    script = f"echo $$ > {pidfile}; sleep 4; echo first >> {log}"
    proc = start(
        "run", "--no-history", "--lock-name", "ov", "--timeout", "0.5", "-k", "1",
        "--json-report", str(rep), "--", "setsid", "sh", "-c", script,
    )  # fmt: skip
    violations = watch_lock(proc, lock_dir() / "ov.lock", pidfile)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 124, err
    assert not violations
    assert not alive(int(pidfile.read_text()))
    second = run("run", "--no-history", "--lock-name", "ov", "sh", "-c", f"echo second >> {log}")
    assert second.returncode == 0, second.stderr
    time.sleep(4.5)
    assert log.read_text() == "second\n"  # "first" never ran: the job did not overlap itself
    assert report(rep)["attempts"][0]["escaped"] >= 1
    assert "left its group" in err


def test_a_term_ignoring_grandchild_is_killed_after_kill_after_and_holds_the_lock(
    tmp_path: Path,
) -> None:
    """Supervision does not stop when the direct child exits: the survivor gets SIGKILL at
    --kill-after, and the lock is held until it is gone."""
    pidfile = tmp_path / "gc"
    inner = f"trap '' TERM; echo $$ > {pidfile}; exec sleep 60"
    proc = start(
        "run", "--no-history", "--lock-name", "gc", "--timeout", "0.5", "-k", "1.5",
        "sh", "-c", f"sh -c \"{inner}\" & sleep 60",
    )  # fmt: skip
    violations = watch_lock(proc, lock_dir() / "gc.lock", pidfile)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 137, err
    assert not violations
    assert not alive(int(pidfile.read_text()))
    assert "sending SIGKILL" in err and "sleep 60" in err  # the survivor is named


def test_a_nested_timeout_in_its_own_group_is_stopped(tmp_path: Path) -> None:
    """coreutils timeout puts itself and its child in a group of their own: reliactl's
    timeout still reaches them (through timeout, which forwards it)."""
    pidfile, rep = tmp_path / "pid", tmp_path / "report.json"
    result = run(
        "run", "--no-history", "--timeout", "0.5", "-k", "2", "--json-report", str(rep),
        "timeout", "-s", "INT", "25", "sh", "-c", f"echo $$ > {pidfile}; sleep 30",
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 124, result.stderr
    assert not alive(int(wait_file(pidfile)))
    assert report(rep)["attempts"][0]["escaped"] >= 1


DAEMON = """
import os, sys, time
if os.fork():
    while not os.path.exists(sys.argv[1]):  # the test needs the daemon's pid
        time.sleep(0.01)
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(os.getpid()))
time.sleep(60)
"""


def test_a_double_forking_daemon_is_stopped_when_the_command_exits(tmp_path: Path) -> None:
    """The daemon is reparented to the shim (a subreaper), not to init: it is found, named in
    a warning and stopped before the lock is released."""
    pidfile = tmp_path / "daemon"
    proc = start(
        "run", "--no-history", "--lock-name", "d", sys.executable, "-c", DAEMON, str(pidfile)
    )
    violations = watch_lock(proc, lock_dir() / "d.lock", pidfile)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not violations
    daemon = int(pidfile.read_text())
    assert not alive(daemon)
    assert f"{daemon} (" in err and "exited but 1 process it started still run" in err
    assert "stopped 1 process the command left running" in err


def test_leftovers_after_success_hold_the_lock_until_killed(tmp_path: Path) -> None:
    """KillMode=control-group: a leftover that ignores SIGTERM is SIGKILLed after
    --kill-after; the run keeps the command's exit code and the lock until then."""
    pidfile, rep = tmp_path / "bg", tmp_path / "report.json"
    inner = f"trap '' TERM; echo $$ > {pidfile}; exec sleep 60"
    proc = start(
        "run", "--no-history", "--lock-name", "lo", "-k", "1", "--json-report", str(rep),
        "sh", "-c", f"sh -c \"{inner}\" & while [ ! -s {pidfile} ]; do sleep 0.01; done; exit 3",
    )  # fmt: skip
    violations = watch_lock(proc, lock_dir() / "lo.lock", pidfile)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert not violations
    assert not alive(int(pidfile.read_text()))
    assert "warning: the command exited but 1 process it started still run" in err
    assert report(rep)["attempts"][0]["leftovers"] == 1
    assert report(rep)["processes_stopped"]["leftovers"] == 1


def test_leave_running_keeps_leftovers_and_says_the_lock_is_released(tmp_path: Path) -> None:
    """--leave-running: the leftover survives the run, which says so and frees the lock."""
    pidfile = tmp_path / "bg"
    try:
        result = run(
            "run", "--no-history", "--lock-name", "lr", "--leave-running",
            "sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}", timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert alive(int(pidfile.read_text()))
        assert "--leave-running" in result.stderr and "lock is released" in result.stderr
        assert lock_is_free(lock_dir() / "lr.lock")
    finally:
        kill_quietly(pidfile)


def test_kill_9_of_reliactl_takes_an_escaped_grandchild_with_it(tmp_path: Path) -> None:
    """The lifeline reaches processes outside the group too, not only the group."""
    pidfile = tmp_path / "esc"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait"
    proc = start("run", "--no-history", "--lock-name", "k9e", "sh", "-c", script)
    escaped = int(wait_file(pidfile))
    assert os.getpgid(escaped) != os.getpgid(proc.pid)
    proc.kill()
    proc.wait(timeout=10)
    assert wait_for(lambda: not alive(escaped), timeout=5)
    assert lock_is_free(lock_dir() / "k9e.lock")


def test_sigterm_to_reliactl_reaches_an_escaped_process(tmp_path: Path) -> None:
    """A forwarded signal goes to every process of the job, not only to its group."""
    pidfile = tmp_path / "esc"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait"
    proc = start("run", "--no-history", "--lock-name", "te", "sh", "-c", script)
    escaped = int(wait_file(pidfile))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err
    assert not alive(escaped)
    assert lock_is_free(lock_dir() / "te.lock")


@pytest.mark.stress
def test_twenty_concurrent_ticks_of_a_group_escaping_job_never_overlap(tmp_path: Path) -> None:
    """Each tick's job leaves its group, ignores SIGTERM and outlives its time limit; with the
    lock held until it is gone, no tick ever starts while the previous job still runs."""
    last, log = tmp_path / "last", tmp_path / "log"
    # The trap first: on a loaded machine the 0.2 s limit can come before the shell reaches it.
    body = (
        f"trap '' TERM; prev=$(cat {last} 2>/dev/null); "
        f'if [ -n "$prev" ] && kill -0 "$prev" 2>/dev/null; then echo OVERLAP >> {log}; fi; '
        f"echo $$ > {last}; echo run >> {log}; sleep 5"
    )
    args = (
        "run", "--no-history", "--lock-name", "tick", "--lock-wait", "300",
        "--timeout", "0.2", "-k", "0.2", "setsid", "sh", "-c", body,
    )  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    ticks = [start(*args, **quiet) for _ in range(20)]
    codes = [tick.wait(timeout=300) for tick in ticks]
    assert codes == [137] * 20
    lines = log.read_text().split()
    assert lines.count("run") == 20
    assert "OVERLAP" not in lines
    assert not alive(int(last.read_text()))


# ------------------------------------------------------------------ signal details (timeout(1))


@pytest.mark.parametrize("sig", ["KILL", "9", "SIGKILL"])
def test_signal_kill_on_timeout_exits_137_as_timeout_does(sig: str) -> None:
    """`timeout -s KILL` exits 137: the command had to be killed; reliactl used to say 124."""
    result = run("run", "--no-history", "--timeout", "0.3", "--signal", sig, "sleep", "30")
    assert result.returncode == 137, result.stderr


def test_sigalrm_to_reliactl_means_time_out_now(tmp_path: Path) -> None:
    """As timeout(1): SIGALRM ends the attempt as a timeout (124), long before --timeout."""
    started = tmp_path / "started"
    proc = start("run", "--no-history", "--timeout", "1h", "sh", "-c", f"touch {started}; sleep 60")
    assert wait_for(started.exists)
    proc.send_signal(signal.SIGALRM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 124, err
    assert "timed out" in err


@pytest.mark.parametrize("sig", ["0", "SIG0", "EXIT"])
def test_signal_zero_is_refused_clearly_and_nothing_runs(sig: str, tmp_path: Path) -> None:
    """kill -0 is an existence check, not a signal: it could never stop the command."""
    marker = tmp_path / "ran"
    result = run("run", "--no-history", "--signal", sig, "touch", str(marker))
    assert result.returncode == 125
    assert "0 is not a signal" in result.stderr
    assert not marker.exists()


def test_a_shell_still_sees_128_plus_n_when_reliactl_dies_by_the_signal() -> None:
    """reliactl re-raises the signal that ended it; `$?` in a shell is still 143."""
    line = (
        f"{sys.executable} -m reliactl run --no-history sleep 30 & pid=$!; "
        "sleep 1; kill -TERM $pid; wait $pid; echo status=$?"
    )
    result = subprocess.run(
        ["sh", "-c", line], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert "status=143" in result.stdout, result.stderr


def test_upper_case_duration_units_mean_the_same_in_flags_and_config(tmp_path: Path) -> None:
    """Units are case-insensitive everywhere (one parser): `0.3S` is `0.3s` in --timeout and
    in run.timeout alike, and `M` is minutes."""
    assert run("run", "--no-history", "--timeout", "0.3S", "sleep", "30").returncode == 124
    config = tmp_path / "reliactl.yaml"
    config.write_text("run:\n  timeout: 0.3S\n")
    assert run("-c", str(config), "run", "--no-history", "sleep", "30").returncode == 124
    from reliactl.durations import parse_duration

    assert parse_duration("42D") == parse_duration("42d") == 42 * 86400
    assert parse_duration("1M") == 60


# ------------------------------------------------------------------ cgroup v2 (where allowed)


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def writable_cgroup() -> str:
    from reliactl.runner import cgroup_base

    base = cgroup_base()
    if base is None:
        pytest.skip("this machine has no writable cgroup2 directory for reliactl")
    return base


def test_the_job_gets_a_cgroup_of_its_own_which_is_removed_after(tmp_path: Path) -> None:
    """Where reliactl's cgroup v2 is writable, a job that runs a moment is moved into
    reliactl-<shim pid> below it, and the directory is gone when the run ends."""
    base = writable_cgroup()
    out = tmp_path / "cg"
    script = f"sleep 1; grep ^0:: /proc/$$/cgroup > {out}"  # moved after runner.CGROUP_AFTER
    result = run("run", "--no-history", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    name = out.read_text().strip().rsplit("/", 1)[1]
    assert name.startswith("reliactl-")
    assert not os.path.exists(os.path.join(base, name))


def test_a_shim_killed_from_outside_still_takes_escaped_processes_with_it(
    tmp_path: Path,
) -> None:
    """With the shim (the subreaper) gone, orphans go to init; the job's cgroup still finds
    them, so a process that left the group dies too."""
    writable_cgroup()
    pidfile = tmp_path / "esc"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & wait"
    proc = start("run", "--no-history", "sh", "-c", script)
    escaped = int(wait_file(pidfile))
    assert wait_for(lambda: "reliactl-" in Path(f"/proc/{escaped}/cgroup").read_text())
    command = ppid(escaped)  # setsid exec'd in the command's background child
    os.kill(ppid(command), signal.SIGKILL)  # the shim
    proc.communicate(timeout=30)
    assert wait_for(lambda: not alive(escaped), timeout=5)


def test_leave_running_moves_leftovers_out_of_the_job_cgroup(tmp_path: Path) -> None:
    """Left running, a process must not keep the job's cgroup alive: it goes back to
    reliactl's cgroup and the job's directory is removed."""
    writable_cgroup()
    pidfile = tmp_path / "bg"
    try:
        result = run(
            "run", "--no-history", "--leave-running",
            "sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}; sleep 1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        left = int(pidfile.read_text())
        assert alive(left)
        where = Path(f"/proc/{left}/cgroup").read_text()
        own = Path("/proc/self/cgroup").read_text()
        assert [ln for ln in where.splitlines() if ln.startswith("0::")] == [
            ln for ln in own.splitlines() if ln.startswith("0::")
        ]  # back in reliactl's (here: the test's) cgroup
    finally:
        kill_quietly(pidfile)


def test_a_stale_job_cgroup_of_a_dead_shim_is_swept(tmp_path: Path) -> None:
    """A shim killed before it could remove its cgroup leaves an empty directory; the next
    job that gets a cgroup removes it, so they never pile up."""
    base = writable_cgroup()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(base) / f"reliactl-{dead.pid}"
    stale.mkdir()
    try:
        result = run("run", "--no-history", "sleep", "0.5")
        assert result.returncode == 0, result.stderr
        assert not stale.exists()
    finally:
        with contextlib.suppress(OSError):
            stale.rmdir()
