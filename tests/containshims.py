"""The two shims of reliactl.runner.Contained (issue 21): every containment test runs on both.

``shim`` is a parametrized fixture: ``python`` turns the C shim off the way an operator does
(``RELIACTL_CONTAIN_SHIM=0``: the fork of reliactl running ``runner._shim``); ``c`` needs the
``reliactl/_containshim`` executable that ``pip install -e .`` builds. Where it is missing the
``c`` case skips, except when ``RELIACTL_REQUIRE_CONTAIN_SHIM=1`` (set by .ci/run): then it
fails, so CI cannot pass without testing the C shim. After each test the fixture checks that
every Contained started in this process went through the chosen shim.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reliactl import runner

REQUIRE_ENV = "RELIACTL_REQUIRE_CONTAIN_SHIM"


def c_shim_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def shim_of(pid: int) -> str:
    """Which shim a program's parent is: ``c`` when it runs reliactl/_containshim."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
    exe = os.path.basename(os.readlink(f"/proc/{ppid}/exe"))
    return "c" if exe == "_containshim" else "python"


@pytest.fixture(params=["python", "c"])
def shim(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setenv(runner.CONTAIN_SHIM_ENV, "0")
    else:
        monkeypatch.delenv(runner.CONTAIN_SHIM_ENV, raising=False)
        if runner.contain_shim() is None:
            if c_shim_required():
                pytest.fail(f"{REQUIRE_ENV}=1 and reliactl/_containshim is not there")
            pytest.skip("the C shim is not built here (no C compiler at install)")
    used: list[str] = []
    real_init = runner.Contained.__init__

    def spying_init(self: runner.Contained, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        used.append(self.shim)

    monkeypatch.setattr(runner.Contained, "__init__", spying_init)
    yield str(request.param)
    assert all(one == request.param for one in used), (request.param, used)
