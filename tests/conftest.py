"""Shared fixtures: every test runs with its own HOME, XDG dirs and working directory."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Take SIGINT back when the suite was started with it ignored.

    A non-interactive shell starts a background job (`nohup python -m pytest &`, some CI
    runners) with SIGINT and SIGQUIT ignored; Python then leaves SIGINT ignored, and every
    child the tests start inherits that (an ignored signal survives exec): the Ctrl-C tests,
    whose child must end at SIGINT, would hang instead. An interactive shell gives Python
    SIGINT at its default, so do the same: a Python handler is reset to the default in an
    exec'd child, as from a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


LEGACY_VARS = (
    "CB_FAILURE_THRESHOLD",
    "CB_RECOVERY_TIMEOUT",
    "HEALTH_CHECK_INTERVAL",
    "HEALTH_MEMORY_THRESHOLD_MB",
    "RATE_LIMIT_OPENAI_RPM",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME/XDG tree and cwd; no reliactl or seed variables leak in from outside."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    for d in (home, work):
        d.mkdir()
    for var in list(os.environ):
        if var.startswith("RELIACTL_") or var in LEGACY_VARS:
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(work)
    from reliactl import config

    config._cached = None
    yield work


@pytest.fixture
def run_cli():
    """Invoke the CLI in-process; returns typer's Result (stdout and stderr separate)."""
    from typer.testing import CliRunner

    from reliactl.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        return runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-writable sticky directory another user can reach (like /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# Importing reliactl.cli no longer imports typer (the fast dispatcher runs without it); the
# app imports it plain (no rich) off a terminal. Tests that import a command module directly
# get the same typer the CLI would.
from reliactl.cli import _import_typer_plain_unless_terminal  # noqa: E402

_import_typer_plain_unless_terminal()


@pytest.fixture
def sticky() -> Iterator[Path]:
    """A sticky, world-writable lock directory (1777, root's), reachable by nobody."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("these tests need root and setpriv (util-linux), as the suite does")
    top = Path(tempfile.mkdtemp(prefix="reliactl-sticky-"))
    top.chmod(0o755)
    directory = top / "lock"
    directory.mkdir()
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(top)
