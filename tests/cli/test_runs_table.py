"""The `reliactl runs` table: peak RSS and CPU columns, and its fit in an 80-column terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

from runhelpers import run

from reliactl.units import format_seconds_short, format_size_short

HOG = "b = bytearray(48 * 2**20); b[::4096] = b'x' * len(b[::4096])"  # touch 48 MiB


def _in_terminal(*args: str, columns: int) -> str:
    """``reliactl ARGS`` with its stdout on a pseudo-terminal ``columns`` wide (rich's table)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reliactl", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60  # generous: detects a hang only
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def test_runs_table_shows_peak_rss_and_cpu_short_and_fits_80_columns() -> None:
    """A job that touches 48 MiB is listed with its peak RSS and CPU time as `runs --json`
    recorded them, in short form (e.g. "61M", "0.05s"), in the plain table (full ISO start
    time) and in an 80-column terminal, where every line fits and the fixed columns (start,
    outcome, RSS, CPU) are whole while a long name and command wrap instead."""
    name = "a-rather-long-nightly-job-name"
    assert run("run", "--name", name, "--", sys.executable, "-c", HOG).returncode == 0
    assert run("run", "--name", "quick", "--", "true").returncode == 0
    doc = json.loads(run("runs", "--json").stdout)
    expected = {
        r["name"]: (format_size_short(r["peak_rss"]), format_seconds_short(r["cpu_time"]))
        for r in doc["runs"]
    }
    assert doc["runs"][1]["peak_rss"] >= 48 * 2**20
    plain = run("runs").stdout.splitlines()
    header = plain[0].split()
    assert header[header.index("OUTCOME") + 1 : header.index("OUTCOME") + 3] == ["RSS", "CPU"]
    for line in plain[1:]:
        cells = line.split()
        rss, cpu = cells[header.index("RSS")], cells[header.index("CPU")]
        assert (rss, cpu) == expected[cells[1]], line
    assert doc["runs"][0]["started_at"] in plain[1]

    screen = _in_terminal("runs", columns=80)
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), screen
    assert "RSS" in lines[0] and "CPU" in lines[0] and "OUTCOME" in lines[0]
    for run_doc in doc["runs"]:
        rss, cpu = expected[run_doc["name"]]
        row = next(line for line in lines if re.search(rf"^{run_doc['id']}\s", line))
        started = time.strftime("%m-%d %H:%MZ", time.gmtime(run_doc["started_at_epoch"]))
        assert re.search(rf"{started}.*success\s+{re.escape(rss)}\s+{re.escape(cpu)}", row), row
