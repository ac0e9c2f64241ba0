"""Review findings on cleanup's C recursion (issue 21, sixth session), pinned.

Each test names the break of ``reliactl/_cleanupwalk.c`` it catches (the suite passed with
it before): byte totals that overflow a long long across directories, a shared
subdirectory (not only a shared root), the exact depth limit, a directory's atime put back,
a subdirectory that vanishes before it is opened, a callback's result of the wrong type,
and the typing of the module's annotations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reliactl.cleanup as cleanup
from reliactl.cleanup import CleanupTarget, clean_root
from tests.cleanupwalks import c_walk_required, walk  # noqa: F401 - walk: the fixture

DAY = 86400.0
FUTURE = time.time() + 10 * DAY
HUGE = 0x3000000000000000  # three of them overflow a long long (2**63 - 1)


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.usefixtures("walk")
def test_byte_totals_past_a_long_long_across_directories_are_exact(tmp_path: Path) -> None:
    """Sparse files of 0x3000000000000000 bytes on /dev/shm, three young (kept) and three
    old (removed), one of each per directory: no batch overflows, the walk's totals do.
    Both totals are exact Python ints on both walks (the C walk's were signed overflow:
    negative, and an abort under UBSan)."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp_path
    root = base / f"reliactl-huge-{os.getpid()}-{tmp_path.name}"
    try:
        for i in range(3):
            for name in ("young", "old"):
                path = write(root / f"d{i}" / name, b"")
                os.truncate(path, HUGE)
            os.utime(root / f"d{i}" / "old", (1, 1))
        report = clean_root(CleanupTarget(str(root), DAY), now=time.time(), age_by="mtime")
        assert report.files_removed == 3
        assert report.bytes_removed == 3 * HUGE
        assert report.kept_bytes == 3 * HUGE
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def need_c() -> None:
    if cleanup.c_walk() is None:
        if c_walk_required():
            pytest.fail("RELIACTL_REQUIRE_CLEANUP_C=1 and the C walk is not built")
        pytest.skip("the C walk is not built here")


@pytest.mark.parametrize(
    "result",
    [[0, []], (0, [["sub", os.stat("/")]])],
    ids=["items-not-a-tuple", "subdir-not-a-tuple"],
)
def test_a_callback_result_of_the_wrong_type_is_a_type_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, result: object
) -> None:
    """The C recursion checks what ``c_items`` returns: a list where a tuple belongs (the
    result, or a subdirectory in it) raises TypeError, not SystemError ("error return
    without exception set")."""
    need_c()
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "fifo")  # deferred to Python: c_items is called
    monkeypatch.setattr(cleanup._Walker, "c_items", lambda *args: result)
    with pytest.raises(TypeError, match="tuple"):
        clean_root(CleanupTarget(str(root), DAY), now=FUTURE)


def test_annotations_resolve_before_the_aliases_are_read() -> None:
    """In a fresh interpreter, typing.get_type_hints resolves the module's annotations and
    ``_Walker.__init__``/``removed`` (whose Literals are spelled out: the aliases come from
    the module ``__getattr__``, which eval over the module's globals never calls), and
    ``dir()`` lists ``AgeBy`` and ``EntryKind`` as ``__all__`` does."""
    code = (
        "import typing\n"
        "import reliactl.cleanup as c\n"
        "assert 'AgeBy' not in vars(c) and 'EntryKind' not in vars(c)\n"
        "hints = typing.get_type_hints(c._Walker.__init__)\n"
        "assert typing.get_args(hints['age_by']) == c.AGE_BY, hints\n"
        "kinds = typing.get_args(typing.get_type_hints(c._Walker.removed)['kind'])\n"
        "assert kinds == ('file', 'symlink', 'dir'), kinds\n"
        "typing.get_type_hints(c)\n"
        "assert {'AgeBy', 'EntryKind'} <= set(dir(c)) and set(c.__all__) <= set(dir(c))\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
