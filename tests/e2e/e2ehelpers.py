"""Shared by the end-to-end tests: the repository, reliactl as a real process, a webhook server."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


class WebhookServer:
    """A real HTTP server on 127.0.0.1 that records every POSTed JSON body and answers 204."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    doc: Any = json.loads(raw)
                except ValueError:
                    doc = raw.decode("utf-8", "replace")
                with owner._lock:
                    owner.posts.append((self.path, doc))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self, path: str) -> list[Any]:
        with self._lock:
            return [doc for p, doc in self.posts if p == path]
