"""A directory swapped for a symlink to the outside during walks never redirects deletion.

Another process keeps renaming subdirectories of the root away and putting symlinks to an
outside directory (full of old files with the same names) in their place, then swapping
back, while the cleaner walks and deletes many files, many times. Nothing outside may ever
be removed (the CVE-2018-6954 class of bug).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliactl.cleanup import CleanupTarget, clean_root
from tests.cleanupwalks import walk  # noqa: F401 - the fixture

# Every test here runs against both walks, Python and C (tests/cleanupwalks.py).
pytestmark = pytest.mark.usefixtures("walk")

DAY = 86400.0
FUTURE = time.time() + 10 * DAY
DIRS = 12
FILES = 60

SWAPPER = r"""
import os, random, sys
root, outside, stop = sys.argv[1:4]
names = [f"d{i}" for i in range(int(sys.argv[4]))]
swaps = 0
while not os.path.exists(stop):
    name = random.choice(names)
    real = os.path.join(root, name)
    aside = os.path.join(root, "." + name + ".aside")
    try:
        os.rename(real, aside)
    except OSError:
        continue
    try:
        os.symlink(outside, real)
        swaps += 1
    except OSError:
        pass
    for _ in range(random.randint(0, 200)):
        pass
    try:
        os.unlink(real)
    except OSError:
        pass
    try:
        os.rename(aside, real)
    except OSError:
        pass
print(swaps)
"""


def fill(root: Path) -> None:
    """Put the files back (wherever each directory currently is)."""
    for i in range(DIRS):
        try:
            if not os.path.lexists(root / f"d{i}") and not (root / f".d{i}.aside").exists():
                (root / f"d{i}").mkdir()  # the cleaner removed it once emptied
        except OSError:
            pass
        for candidate in (root / f"d{i}", root / f".d{i}.aside"):
            try:
                if candidate.is_symlink() or not candidate.is_dir():
                    continue
                for j in range(FILES):
                    (candidate / f"f{j}").touch()
            except OSError:
                continue  # moved meanwhile


def race(tmp_path: Path, rounds: int) -> tuple[int, int]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    names = [f"f{j}" for j in range(FILES)]
    for name in names:
        (outside / name).write_text("precious")
    (outside / "nested").mkdir()
    (outside / "nested" / "f0").write_text("precious")
    root.mkdir()
    for i in range(DIRS):
        (root / f"d{i}").mkdir()
    stop = tmp_path / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(root), str(outside), str(stop), str(DIRS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    removed_total = 0
    try:
        for _ in range(rounds):
            fill(root)
            report = clean_root(CleanupTarget(str(root), DAY), now=FUTURE)
            removed_total += report.files_removed
            assert sorted(p.name for p in outside.iterdir()) == sorted([*names, "nested"])
            assert (outside / "nested" / "f0").read_text() == "precious"
    finally:
        stop.touch()
        out, _ = swapper.communicate(timeout=30)
    for name in names:
        assert (outside / name).read_text() == "precious"
    return removed_total, int(out.strip() or 0)


def test_swapping_a_directory_for_a_symlink_mid_walk_never_reaches_outside(
    tmp_path: Path,
) -> None:
    removed, swaps = race(tmp_path, rounds=12)
    assert removed > DIRS * FILES  # the cleaner really was deleting while the swaps ran
    assert swaps > 0


@pytest.mark.stress
def test_swapping_race_many_rounds(tmp_path: Path) -> None:
    """300 rounds of the race in all, 150 for each walk: nothing outside is ever removed.

    The liveness bound is loose on purpose: how much the cleaner finds to remove depends on
    how fast the swapper runs against it, and at load 5 main's own code removed 16.7k-43k
    files in 150 rounds (it used to assert more than 18k)."""
    removed, swaps = race(tmp_path, rounds=150)
    assert removed > 5 * DIRS * FILES and swaps > 10  # liveness; counts depend on the load
