"""Another process holding a SQLite state store's write lock (``BEGIN EXCLUSIVE``), as a
backup tool, an operator's sqlite3 shell or a stopped writer does."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # held until the test closes stdin (or the holder is killed)
"""


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Hold ``path``'s write lock in a subprocess until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked", "the holder could not lock the store"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


_PULSER = """
import sqlite3, sys, time
hold, gap = float(sys.argv[2]), float(sys.argv[3])
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print("pulsing", flush=True)
while True:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(hold)
    conn.execute("COMMIT")
    time.sleep(gap)
"""


@contextlib.contextmanager
def write_lock_pulsing(path: Path, hold: float, gap: float) -> Iterator[subprocess.Popen[str]]:
    """A lightly busy store: a subprocess takes ``path``'s write lock for ``hold`` seconds
    every ``hold + gap`` (a busy neighbour's short writes) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PULSER, str(path), str(hold), str(gap)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "pulsing", "the writer could not start"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
