"""How the shim starts the command (issue 21, item 4): posix_spawn unless a limit needs a fork.

The shim (a forked copy of reliactl) starts the command with posix_spawn, a vfork: no copy of
the shim's memory and no Python between fork and exec. A run with a limit the command sets on
itself before exec (nice, I/O class, CPU time, a memory cgroup to join) still forks. Both paths
must start the command alike: the same PATH search in the command's environment, directory,
signal dispositions and mask, and the same errors.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from reliactl.runner import RunOptions, run_command

# glibc's posix_spawn leaves its two internal signals (SIGCANCEL 32, SIGSETXID 33) ignored in
# the new process; no program can set them through glibc, which installs its own handlers on
# first use. They are the only difference allowed between the two paths.
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def status_field(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(field)


def command_status(tmp_path: Path, name: str, **options: object) -> str:
    """Run `cat /proc/self/status > FILE` supervised, in-process; the command's own status."""
    out = tmp_path / name
    result = run_command(
        RunOptions(
            command=("sh", "-c", f"exec cat /proc/self/status > {out}"),
            timeout=60,
            job_control=False,
            **options,  # type: ignore[arg-type]
        )
    )
    assert result.exit_code == 0, result
    return out.read_text()


def test_the_shim_starts_the_command_without_forking_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only reliactl forks (the shim); the shim starts the command with posix_spawn."""
    forks = tmp_path / "forks"
    real_fork = os.fork

    def fork() -> int:
        fd = os.open(forks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    marker = tmp_path / "ran"
    result = run_command(RunOptions(command=("touch", str(marker)), timeout=60, job_control=False))
    assert result.exit_code == 0, result
    assert marker.exists()
    assert forks.read_text().split() == [str(os.getpid())]


def test_a_limit_set_before_exec_still_forks_and_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--nice is set in the command's own process before exec: that run forks in the shim."""
    forks = tmp_path / "forks"
    real_fork = os.fork

    def fork() -> int:
        fd = os.open(forks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    status = command_status(tmp_path, "status", nice=0)
    assert "Name:\tcat" in status
    assert len(forks.read_text().split()) == 2  # reliactl -> shim, shim -> command


def test_both_paths_give_the_command_the_same_signals(tmp_path: Path) -> None:
    """Dispositions and mask: spawned (no limit) as forked (--nice 0), ignored ones kept."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        spawned = command_status(tmp_path, "spawned")
        forked = command_status(tmp_path, "forked", nice=0)
    finally:
        signal.signal(signal.SIGHUP, old)
    for text in (spawned, forked):
        assert status_field(text, "SigBlk") == 0
        ignored = status_field(text, "SigIgn")
        assert ignored & (1 << (signal.SIGHUP - 1))
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGCHLD):
            assert not ignored & (1 << (sig - 1)), sig
    assert (status_field(spawned, "SigIgn") & ~GLIBC_INTERNAL) == status_field(forked, "SigIgn")


def test_the_command_is_searched_in_its_own_path_and_runs_in_cwd(tmp_path: Path) -> None:
    """PATH from the command's environment, not reliactl's; a non-executable match earlier
    in PATH is passed over (as execvp); --cwd is the command's directory."""
    first, second, work = tmp_path / "a", tmp_path / "b", tmp_path / "jobdir"
    for d in (first, second, work):
        d.mkdir()
    (first / "relitool").write_text("#!/bin/sh\nexit 3\n")  # not executable
    tool = second / "relitool"
    tool.write_text('#!/bin/sh\npwd > where\necho "$RELIACTL_TEST_VAR" >> where\n')
    tool.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'missing'}:{first}:{second}", "RELIACTL_TEST_VAR": "given"}
    result = run_command(
        RunOptions(command=("relitool",), env=env, cwd=str(work), timeout=60, job_control=False)
    )
    assert result.exit_code == 0, result
    assert (work / "where").read_text().split() == [str(work), "given"]


@pytest.mark.parametrize(
    ("command", "code", "why"),
    [
        (("relitool-that-is-nowhere",), 127, "No such file or directory"),
        (("/",), 126, "Permission denied"),
    ],
)
def test_a_command_that_cannot_start_is_an_exec_error(
    command: tuple[str, ...], code: int, why: str
) -> None:
    """Not found is 127, not executable 126, with the errno's words, and no process left."""
    result = run_command(RunOptions(command=command, timeout=60, job_control=False))
    assert result.exit_code == code, result
    attempt = result.attempts[-1]
    assert attempt.exec_error is not None and why in attempt.exec_error


def test_a_missing_cwd_is_an_exec_error(tmp_path: Path) -> None:
    """--cwd that does not exist: the command is not started; the message names the directory."""
    missing = tmp_path / "gone"
    result = run_command(
        RunOptions(command=("true",), cwd=str(missing), timeout=60, job_control=False)
    )
    assert result.exit_code == 127, result
    assert str(missing) in (result.attempts[-1].exec_error or "")


@pytest.mark.parametrize("limit", [{}, {"nice": 0}], ids=["spawned", "forked"])
def test_a_nul_byte_in_the_environment_is_an_exec_error(limit: dict[str, int]) -> None:
    """exec cannot take it: 126 with the reason on both paths (the fork path exited 127
    without a word)."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "BROKEN": "a\0b"}
    result = run_command(
        RunOptions(command=("true",), env=env, timeout=60, job_control=False, **limit)  # type: ignore[arg-type]
    )
    assert result.exit_code == 126, result
    assert "null" in (result.attempts[-1].exec_error or "")
