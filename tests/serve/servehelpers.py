"""Helpers of the serve tests: a real `reliactl serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN = "s3rve-t0ken-0123456789abcdef"
WEBHOOK = "https://discord.com/api/webhooks/123456/SECRETWEBHOOKTOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    env: dict[str, str]
    flag: Path
    tmp: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as res:
                return res.status, res.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, json.loads(body)

    def post(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        req = urllib.request.Request(self.base + path, data=b"", method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reliactl", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )

    def wait_for(self, predicate: Any, what: str, bound: float = 30.0) -> Any:
        deadline = time.monotonic() + bound  # generous: detects a hang only
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return self.proc.returncode, err


def start_serve(tmp: Path, *extra: str, token: bool = True, nofile: int | None = None) -> Served:
    """serve on a free port (``nofile``: its RLIMIT_NOFILE, soft and hard), once it answers."""
    flag = tmp / "failing"
    (tmp / "servecheck.py").write_text(
        "import os\n"
        "def depth():\n"
        f"    return {{'value': 99.0 if os.path.exists({str(flag)!r}) else 5.0}}\n",
        encoding="utf-8",
    )
    # A plugin whose perfdata labels hold a double quote, a backslash and a space.
    (tmp / "perf.sh").write_text("echo 'OK | '\\''we\"i rd\\'\\''=5s;; x_y=3B'\n", encoding="utf-8")
    config = tmp / "serve.yaml"
    config.write_text(
        "health_monitor:\n  system_checks: [memory]\n  jobs_checks: false\n  checks:\n"
        "    - name: queue\n      kind: python\n      target: servecheck:depth\n"
        "      warn: '50'\n      critical: '90'\n"
        "    - name: perf\n      kind: command\n"
        f"      command: [sh, {tmp / 'perf.sh'}]\n"
        "  alerts:\n    - name: chat\n      kind: discord\n"
        f"      url: {WEBHOOK}\n"
        "circuit_breaker:\n  breakers:\n    payments: {failure_threshold: 3}\n"
        # Never run: overdue once a second and its grace have passed since serve declared it.
        "jobs:\n  nightly-report: {every: 1s, grace: 1s}\n  weekly: {every: 7d}\n",
        encoding="utf-8",
    )
    (tmp / "token").write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(tmp / "token", 0o600)
    port = free_port()
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__PATH": str(tmp / "state" / "state.db"),
        # the check module's directory, then the caller's path (an old tree under test)
        "PYTHONPATH": os.pathsep.join(filter(None, (str(tmp), os.environ.get("PYTHONPATH")))),
    }
    args = ["serve", "--port", str(port), "--interval", "1s", *extra]
    if token:
        args += ["--token-file", str(tmp / "token")]

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "reliactl", *args],
        preexec_fn=limit,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = Served(proc, port, env, flag, tmp)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.communicate()[1]}")
        try:
            status, doc = served.json("/livez")
        except (OSError, ValueError):
            return False
        return status == 200 and doc["rounds"] >= 1

    served.wait_for(ready, "serve to answer /livez after one round")
    return served


def read_for(fd: int, enough: Callable[[bytes], bool], bound: float = 60.0) -> bytes:
    """What the pipe ``fd`` gives until ``enough`` of it (or its end, or ``bound`` seconds:
    generous, detects a hang only)."""
    data = b""
    deadline = time.monotonic() + bound
    while not enough(data) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            piece = os.read(fd, 1 << 20)
            if not piece:
                break
            data += piece
    return data
