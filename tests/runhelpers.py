"""Helpers shared by the run tests: start reliactl as a real process, inspect processes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run a command as another user (nobody), as the trust and liveness tests need.
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def reliactl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reliactl", *args]


FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def default_signals() -> None:
    """preexec_fn: a test runner started in the background has SIGINT/SIGQUIT ignored, and
    reliactl rightly keeps ignored signals ignored; tests start it with default dispositions."""
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)


def run(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run reliactl to completion (the timeout only guards against a hang).

    stdin is /dev/null unless given: on a developer's terminal, reliactl would otherwise
    hand the terminal to the command (job control), unlike under cron or CI.
    """
    kwargs.setdefault("preexec_fn", default_signals)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        reliactl_cmd(*args), capture_output=True, text=True, timeout=timeout, **kwargs
    )


def start(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("stdin", subprocess.DEVNULL)  # as in run(): no terminal, as under cron
    kwargs.setdefault("preexec_fn", default_signals)
    return subprocess.Popen(reliactl_cmd(*args), text=True, **kwargs)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def wait_file(path: Path, timeout: float = 10.0) -> str:
    assert wait_for(lambda: path.exists() and path.read_text().strip() != "", timeout), path
    return path.read_text()


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def lock_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "reliactl" / "locks"


def catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (/proc/PID/status SigCgt)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds a descriptor open on ``path``."""
    target = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False
