"""Overhead of `reliactl run --lock -- true` against the shell tools it replaces (issue 5).

Prints the median wall time over interleaved runs of:
- `python -c pass` (the floor of any Python CLI),
- `flock -n LOCK timeout 5 true` (util-linux + coreutils: what cron lines chain today),
- `reliactl run --lock -- true` (lock, supervised child, history row),
- `reliactl run --lock --no-history -- true` (the same without the state store).
Goal: reliactl run within 9x `python -c pass`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import PY, print_table, reliactl_cmd, time_commands


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "20"))
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home, "NO_COLOR": "1"}
        commands: dict[str, list[str]] = {"python -c pass": [PY, "-c", "pass"]}
        if shutil.which("flock") and shutil.which("timeout"):
            lock = os.path.join(home, "bench.lock")
            commands["flock -n LOCK timeout 5 true"] = ["flock", "-n", lock, "timeout", "5", "true"]
        commands["reliactl run --lock -- true"] = reliactl_cmd("run", "--lock", "--", "true")
        commands["reliactl run --lock --no-history -- true"] = reliactl_cmd(
            "run", "--lock", "--no-history", "--", "true"
        )
        medians = time_commands(commands, runs=runs, env=env)
    print(f"run overhead, median of {runs} interleaved runs (goal: within 9x python -c pass)")
    print_table(medians, "python -c pass")


if __name__ == "__main__":
    main()
