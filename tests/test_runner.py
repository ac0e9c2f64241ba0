"""reliactl run as a real process: exit codes, timeouts, the process group, signals (priority 1).

Regression tests for RELIABILITY.md #1-#5 and #16 (coreutils timeout's promises and bug reports,
cpython #76116).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from runhelpers import (
    alive,
    default_signals,
    lock_dir,
    lock_is_free,
    run,
    start,
    wait_file,
    wait_for,
)


@pytest.mark.parametrize("code", [0, 1, 2, 3, 64, 125, 254, 255])
def test_exit_codes_pass_through(code: int) -> None:
    result = run("run", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code, result.stderr


def test_killed_by_a_signal_is_128_plus_n() -> None:
    result = run("run", "sh", "-c", "kill -KILL $$")
    assert result.returncode == 137, result.stderr
    assert "SIGKILL" in result.stderr


def test_missing_command_is_127() -> None:
    result = run("run", "no-such-command-reliactl-test")
    assert result.returncode == 127, result.stderr
    assert "No such file or directory" in result.stderr


def test_a_directory_is_126(tmp_path: Path) -> None:
    result = run("run", str(tmp_path))
    assert result.returncode == 126, result.stderr


def test_a_file_without_exec_permission_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    assert run("run", str(script)).returncode == 126


def test_a_script_without_shebang_runs_with_sh(tmp_path: Path) -> None:
    """As execvp(3): ENOEXEC falls back to /bin/sh."""
    script = tmp_path / "noshebang"
    script.write_text("exit 9\n")
    script.chmod(0o755)
    assert run("run", str(script)).returncode == 9


def test_bad_duration_is_125_and_the_command_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run("run", "--timeout", "soon", "touch", str(marker))
    assert result.returncode == 125
    assert "--timeout" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--no-such-option", "true"),
        ("--retries", "many", "true"),
        ("--signal", "NOPE", "true"),
        ("--backoff", "sideways", "true"),
        ("--retry-on", "1-x", "true"),
        ("--lock-name", "../escape", "true"),
        (),
    ],
)
def test_bad_options_exit_125_not_2(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run("run", *args)
    assert result.returncode == 125, result.stderr


def test_options_stop_at_the_command(tmp_path: Path) -> None:
    """Everything after the first non-option word is the command's, even --timeout."""
    result = run("run", "echo", "--timeout", "x", "--", "-k")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "--timeout x -- -k\n"


def test_own_lines_are_stamped_on_stderr() -> None:
    result = run("run", "sh", "-c", "echo out; exit 3")
    assert result.stdout == "out\n"
    lines = result.stderr.splitlines()
    assert lines and all(line[:4].isdigit() and "Z reliactl: " in line for line in lines)
    assert "exit 3" in lines[-1]


# ------------------------------------------------------------------ timeouts and the group


def test_timeout_is_124() -> None:
    result = run("run", "--timeout", "0.3", "sleep", "30")
    assert result.returncode == 124, result.stderr


def test_timeout_with_preserve_status_is_the_childs_status() -> None:
    result = run("run", "--timeout", "0.3", "--preserve-status", "sleep", "30")
    assert result.returncode == 128 + signal.SIGTERM, result.stderr


def test_timeout_signal_is_configurable(tmp_path: Path) -> None:
    marker = tmp_path / "got"
    script = f"trap 'echo INT > {marker}; exit 0' INT; while :; do sleep 0.05; done"
    result = run("run", "--timeout", "0.6", "--signal", "INT", "sh", "-c", script)
    assert result.returncode == 124, result.stderr
    assert marker.read_text().strip() == "INT"


def test_timeout_kills_a_tree_that_traps_term_and_leaves_no_process(tmp_path: Path) -> None:
    """--timeout 1 --kill-after 1 on a TERM-trapping tree: 137, and nothing of the group lives."""
    pids = tmp_path / "pids"
    script = (
        "trap '' TERM; "
        f"(trap '' TERM; sleep 60) & echo $! >> {pids}; "
        f"sh -c 'trap \"\" TERM; sleep 60' & echo $! >> {pids}; "
        f"echo $$ >> {pids}; cut -d' ' -f5 /proc/$$/stat > {tmp_path / 'pgid'}; wait"
    )
    result = run("run", "--timeout", "1", "--kill-after", "1", "sh", "-c", script, timeout=20)
    assert result.returncode == 137, result.stderr
    members = [int(p) for p in pids.read_text().split()]
    assert len(members) == 3
    assert wait_for(lambda: not any(alive(p) for p in members), timeout=2)
    group = (tmp_path / "pgid").read_text().strip()
    assert wait_for(lambda: not group_members(int(group)), timeout=2)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def test_a_stopped_command_is_continued_and_terminated() -> None:
    """TERM is followed by CONT, so a stopped job dies on timeout instead of hanging."""
    result = run("run", "--timeout", "0.5", "--kill-after", "20", "sh", "-c", "kill -STOP $$")
    assert result.returncode == 124, result.stderr


def test_a_grandchild_holding_stdout_does_not_hang_the_run(tmp_path: Path) -> None:
    """cpython #76116: the command exits, a background grandchild left running (with
    --leave-running) keeps the pipe open."""
    pidfile = tmp_path / "bg"
    script = f"sleep 30 & echo $! > {pidfile}; echo done"
    for flags in (["--leave-running"], ["--leave-running", "--timestamps"]):
        # reliactl's stdout is a file here: with a pipe, the test itself would wait for EOF.
        with open(tmp_path / "out", "w+") as out:
            proc = start("run", *flags, "sh", "-c", script, stdout=out, stderr=subprocess.DEVNULL)
            assert proc.wait(timeout=15) == 0
            out.seek(0)
            assert "done" in out.read()
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_grandchild_holding_stdout_does_not_hang_a_timeout(tmp_path: Path) -> None:
    result = run(
        "run", "--timestamps", "--timeout", "0.5", "sh", "-c", "echo a; sleep 30", timeout=15
    )
    assert result.returncode == 124, result.stderr
    assert result.stdout.endswith(" a\n")


def test_the_command_runs_in_its_own_session(tmp_path: Path) -> None:
    out = run("run", "sh", "-c", "cut -d' ' -f1,5,6 /proc/$$/stat").stdout.split()
    pid, pgid, sid = (int(x) for x in out)
    assert pgid != os.getpgid(0) and sid != os.getsid(0)
    assert pgid == sid != pid  # the shim leads the session and group; the command is in it


# ------------------------------------------------------------------ signals


def proc_status(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(field)


def test_child_gets_default_sigpipe_and_an_empty_mask() -> None:
    """Even when reliactl starts with SIGCHLD and SIGALRM blocked (timeout bug#13535)."""

    def block() -> None:
        default_signals()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGALRM, signal.SIGTERM})

    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "cat", "/proc/self/status"],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=block,
    )
    assert result.returncode == 0, result.stderr
    assert proc_status(result.stdout, "SigBlk") == 0
    ignored = proc_status(result.stdout, "SigIgn")
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGCHLD):
        assert not ignored & (1 << (sig - 1)), sig


def test_ignored_signals_stay_ignored() -> None:
    """nohup reliactl run ...: SIGHUP stays ignored in the command, and is not forwarded."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "cat", "/proc/self/status"],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: (default_signals(), signal.signal(signal.SIGHUP, signal.SIG_IGN)),
    )
    assert result.returncode == 0, result.stderr
    assert proc_status(result.stdout, "SigIgn") & (1 << (signal.SIGHUP - 1))


def test_an_ignored_sigchld_at_start_does_not_lose_the_status() -> None:
    """An inherited SIG_IGN for SIGCHLD would auto-reap the child (timeout bug#25624)."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "sh", "-c", "exit 42"],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )
    assert result.returncode == 42, result.stderr


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT]
)
def test_a_signal_is_forwarded_and_reliactl_exits_128_plus_n(
    sig: signal.Signals, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    ready = tmp_path / "ready"
    bg = tmp_path / "bg"
    script = (
        f"trap 'echo {sig.name} > {seen}; exit 0' {sig.name[3:]}; "
        f"sleep 30 & echo $! > {bg}; touch {ready}; wait"
    )
    # No pipes: sh runs `sleep &` with SIGINT/SIGQUIT ignored, so it may outlive the run.
    proc = start("run", "sh", "-c", script, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(ready.exists)
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == -sig  # died by it after forwarding: a shell sees 128+N
    assert seen.read_text().strip() == sig.name
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(bg.read_text()), signal.SIGKILL)


def test_sigterm_mid_run_no_retry_and_the_lock_is_free(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    seen = tmp_path / "seen"
    script = f"trap 'echo TERM > {seen}; exit 1' TERM; echo x >> {attempts}; sleep 30 & wait"
    proc = start(
        "run", "--lock-name", "job", "--retries", "3", "--delay", "0", "sh", "-c", script,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_file(attempts)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM  # re-raised: a shell sees 143
    assert seen.read_text().strip() == "TERM"
    assert attempts.read_text().count("x") == 1
    assert lock_is_free(lock_dir() / "job.lock")


def test_kill_9_of_reliactl_kills_the_group_and_frees_the_lock(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"sleep 60 & echo $! >> {pids}; (sleep 60; :) & echo $! >> {pids}; echo $$ >> {pids}; wait"
    )
    proc = start("run", "--lock-name", "k9", "sh", "-c", script)
    assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3)
    members = [int(p) for p in pids.read_text().split()]
    group = os.getpgid(members[-1])
    assert group_members(group)
    proc.kill()
    proc.wait(timeout=10)
    assert wait_for(lambda: not group_members(group), timeout=1.0)
    assert not any(alive(p) for p in members)
    assert lock_is_free(lock_dir() / "k9.lock")


def test_the_command_does_not_inherit_the_lock_descriptor() -> None:
    """RELIABILITY #9 (filelock #634): a child must not be able to release the parent's lock."""
    result = run("run", "--lock-name", "fds", "sh", "-c", "ls -l /proc/$$/fd")
    assert result.returncode == 0, result.stderr
    assert "fds.lock" not in result.stdout
    fds = [line.split()[-3] for line in result.stdout.splitlines() if "->" in line]
    assert set(fds) <= {"0", "1", "2", "10", "255"}, result.stdout  # sh's own script fd aside


def test_a_shim_killed_from_outside_takes_its_group_with_it(tmp_path: Path) -> None:
    """The OOM killer picks the shim: the command must not run on unsupervised."""
    pids = tmp_path / "pids"
    script = f"echo $$ > {pids}; sleep 60"
    proc = start("run", "sh", "-c", script, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_file(pids)
    command = int(pids.read_text())
    shim = os.getpgid(command)
    os.kill(shim, signal.SIGKILL)
    assert proc.wait(timeout=20) == 137
    assert wait_for(lambda: not alive(command), timeout=2)
