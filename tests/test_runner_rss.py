"""--memory-max's RSS fallback: what the runner counts of a real process tree
(`runner._job_rss`, through `_procfs.tree_rss`, the one /proc reader of a tree's RSS)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from reliactl.runner import _job_rss as tree_rss

MiB = 1024 * 1024

# Plays the shim: 200 MiB resident, then a child that has not exec'd yet (a copy of it, as the
# shim's child is until the command's exec), which execs `sleep` when told to on stdin.
SHIM = """
import os, sys
big = bytearray(200 * 1024 * 1024)
for i in range(0, len(big), 4096):
    big[i] = 1
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os.execvp("sleep", ["sleep", "30"])
os.close(r)
print(pid, flush=True)
sys.stdin.readline()
os.write(w, b"x")
sys.stdin.readline()
os.kill(pid, 9)
os.waitpid(pid, 0)
"""


def _rss_until(root: int, done: object) -> int:
    deadline = time.monotonic() + 30
    while True:
        rss = tree_rss(root)
        if done(rss) or time.monotonic() > deadline:  # type: ignore[operator]
            return rss
        time.sleep(0.02)


def test_the_shims_child_is_not_counted_until_it_execs() -> None:
    """Between the shim's fork and the command's exec the child is a copy of reliactl: its RSS
    (here 200 MiB) is not the job's, and a first sample taken in that window stopped a small
    job over --memory-max (a loaded CI run). Once it has exec'd, the command is counted."""
    with subprocess.Popen(
        [sys.executable, "-c", SHIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as shim:
        assert shim.stdin is not None and shim.stdout is not None
        child = int(shim.stdout.readline())
        try:
            assert tree_rss(shim.pid) < 20 * MiB  # the 200 MiB copy is left out
            shim.stdin.write("\n")
            shim.stdin.flush()
            deadline = time.monotonic() + 30
            while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":
                assert time.monotonic() < deadline, "the child never exec'd"
                time.sleep(0.01)
            rss = _rss_until(shim.pid, lambda value: value > 0)
            assert 0 < rss < 20 * MiB  # sleep, counted
        finally:
            shim.stdin.write("\n")
            shim.stdin.flush()
            shim.wait(30)
