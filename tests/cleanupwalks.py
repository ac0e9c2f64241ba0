"""The two walks of reliactl.cleanup (issue 21): every safety test runs against both.

``walk`` is a parametrized fixture: ``python`` turns the C walk off the way an operator does
(``RELIACTL_CLEANUP_C=0``); ``c`` needs the extension that ``pip install -e .`` builds.
Where it is missing the ``c`` case skips, except when ``RELIACTL_REQUIRE_CLEANUP_C=1`` (set by
.ci/run): then it fails, so CI cannot pass without testing the C walk. After each test the
fixture checks that every walk with no per-name rule really went through the chosen walk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import reliactl.cleanup as cleanup

REQUIRE_ENV = "RELIACTL_REQUIRE_CLEANUP_C"


DAY = 86400.0
FUTURE = time.time() + 10 * DAY  # an mtime/atime that no cutoff ever finds old


def write(path: Path, data: bytes = b"x") -> Path:
    """A file with ``data`` at ``path``, its directories made as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def c_walk_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def spy_walkers(monkeypatch: pytest.MonkeyPatch) -> list[cleanup._Walker]:
    """Every ``_Walker`` that runs from now on (to check which walk it went through)."""
    walkers: list[cleanup._Walker] = []
    real_run = cleanup._Walker.run

    def spying_run(self: cleanup._Walker, root_fd: int) -> None:
        walkers.append(self)
        real_run(self, root_fd)

    monkeypatch.setattr(cleanup._Walker, "run", spying_run)
    return walkers


@pytest.fixture(params=["python", "c"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setenv(cleanup.C_WALK_ENV, "0")
    else:
        monkeypatch.delenv(cleanup.C_WALK_ENV, raising=False)
        if cleanup.c_walk() is None:
            if c_walk_required():
                pytest.fail(f"{REQUIRE_ENV}=1 and reliactl._cleanupwalk is not importable")
            pytest.skip("the C walk is not built here (no C compiler at install)")
    walks: list[tuple[bool, int]] = []
    real_run = cleanup._Walker.run

    def spying_run(self: cleanup._Walker, root_fd: int) -> None:
        try:
            real_run(self, root_fd)
        finally:
            walks.append((self.simple, self.c_dirs))

    monkeypatch.setattr(cleanup._Walker, "run", spying_run)
    yield str(request.param)
    for simple, c_dirs in walks:
        if request.param == "c" and simple:
            assert c_dirs > 0, "a plain walk did not go through the C walk"
        if request.param == "python":
            assert c_dirs == 0, "RELIACTL_CLEANUP_C=0 did not turn the C walk off"
