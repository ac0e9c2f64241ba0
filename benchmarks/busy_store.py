"""`reliactl run` against a state store another process holds locked (BEGIN EXCLUSIVE).

attack2 1b: the run's row waited the store's 30 s busy timeout before the job, and
`--breaker`'s outcome 30 s more after it. Now: at most 1 s before the job (jobs.RUN_START_WAIT)
and 5 s in all after it (jobs.RUN_RECORD_WAIT). An open breaker's admission (a write: the
rejection counted) and --require-healthy's checks (the CPU sample, debounce streaks) waited 30 s
a write too; now 1 s each (jobs.BREAKER_ADMIT_WAIT, jobs.HEALTH_STORE_WAIT). Rounds interleave
the free and the locked store.

    python benchmarks/busy_store.py [--rounds N]     (BENCH_SMOKE=1: one round)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_header, print_spread_table, reliactl_cmd, sized

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def timed(cmd: list[str], env: dict[str, str], store: Path | None) -> float:
    """Wall seconds of one command; with ``store``, while another process holds its lock."""
    holder = None
    if store is not None:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        started = time.perf_counter()
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        return time.perf_counter() - started
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=sized(3, 1))
    rounds = parser.parse_args().rounds
    print_header(
        "run with the state store free and locked by another process (wall seconds)",
        f"{rounds} interleaved rounds; each locked run has its own holder process",
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "state.db"
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"state:\n  path: {store}\n"
            "circuit_breaker:\n  breakers:\n"
            "    down: {failure_threshold: 1, recovery_timeout: 1d}\n",
            encoding="utf-8",
        )
        env = {**os.environ, "RELIACTL_CONFIG": str(config)}
        for setup in (("--", "true"), ("--breaker", "down", "--", "false")):  # "down" is open
            subprocess.run(
                reliactl_cmd("run", *setup),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        down = reliactl_cmd("run", "--breaker", "down", "--", "true")
        healthy = reliactl_cmd("run", "--require-healthy", "--", "true")
        candidates = {
            "run -- true, free": (reliactl_cmd("run", "--", "true"), None),
            "run -- true, locked": (reliactl_cmd("run", "--", "true"), store),
            "run --breaker, free": (reliactl_cmd("run", "--breaker", "b", "--", "true"), None),
            "run --breaker, locked": (reliactl_cmd("run", "--breaker", "b", "--", "true"), store),
            "run --breaker (open), free": (down, None),
            "run --breaker (open), locked": (down, store),
            "run --require-healthy, free": (healthy, None),
            "run --require-healthy, locked": (healthy, store),
        }
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        names = list(candidates)
        for index in range(rounds):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                cmd, locked = candidates[name]
                samples[name].append(timed(cmd, env, locked))
    print_spread_table(samples, "run -- true, free", unit="s")


if __name__ == "__main__":
    main()
