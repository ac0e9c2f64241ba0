"""Shared by the end-to-end tests: the repository, reliactl as a real process, a webhook server."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from httpserver import FlakyServer, Reply

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
IDEASHEETS = EXAMPLES / "scripts" / "process_ideasheets.sh"
VENV_BIN = os.path.dirname(sys.executable)


def default_signals() -> None:
    """preexec_fn: a runner started in the background ignores SIGINT/SIGQUIT, and reliactl
    rightly keeps ignored signals ignored; the processes under test start with defaults."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def shell_env(**extra: str) -> dict[str, str]:
    """The test's environment (private HOME/XDG dirs) with this venv's bin first on PATH, so
    `reliactl` in a script is the console script of the interpreter running the tests."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def reliactl(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m reliactl ARGS`` to completion (the timeout only guards a hang)."""
    kwargs.setdefault("preexec_fn", default_signals)
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else shell_env(),
        **kwargs,
    )


def start_reliactl(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reliactl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else shell_env(),
        preexec_fn=default_signals,
    )


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


_SKIP = (".git", ".venv", ".ci-venv", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis")
_IGNORED = shutil.ignore_patterns(*_SKIP)


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in name.split("/") for pattern in _SKIP)


def copy_repository(dest: Path) -> Path:
    """A fresh copy of the repository's files (what a newcomer has after a clone): the files
    git knows (tracked or new, not ignored) as they are in the working tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(REPO, dest, ignore=_IGNORED, symlinks=True)
        return dest
    dest.mkdir(parents=True)
    for name in filter(None, listed.decode().split("\0")):
        if _skipped(name):  # a CI venv that .gitignore does not know, say
            continue
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


class WebhookServer(FlakyServer):
    """The test server recording every POSTed JSON body and answering 204."""

    def __init__(self) -> None:
        super().__init__(Reply(204, b""))

    def received(self, path: str) -> list[Any]:
        return self.posted(path)
