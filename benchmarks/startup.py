"""Startup cost of reliactl's light commands against `python -c pass` (DESIGN.md section 4).

Prints the machine's load, then the median and min..max wall time over 20 interleaved runs of
`reliactl --version`, `--help`, `config show`, `run -- true` and `health --json` (on the
default SQLite store) and their ratio to `python -c pass`. Goal (issue 2): the light commands
within 8x. The `run` and `health` rows
show that the Redis backend (issue 16) costs nothing on SQLite: redis-py is never imported,
and that tracing (issue 20) costs nothing without OTEL_*: the "traced" row (spans to stderr
with OTEL_TRACES_EXPORTER=console) is what importing the OpenTelemetry SDK adds when on.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import PY, print_header, print_spread_table, reliactl_cmd, sample_commands, sized


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home, "NO_COLOR": "1"}
        samples = sample_commands(
            {
                "python -c pass": [PY, "-c", "pass"],
                "reliactl --version": reliactl_cmd("--version"),
                "reliactl --help": reliactl_cmd("--help"),
                "reliactl config show": reliactl_cmd("config", "show"),
                "reliactl run -- true": reliactl_cmd("run", "--", "true"),
                "reliactl run -- true (traced)": [
                    "env",
                    "OTEL_TRACES_EXPORTER=console",
                    *reliactl_cmd("run", "--", "true"),
                ],
                "reliactl health --json": reliactl_cmd("health", "--json"),
            },
            runs=runs,
            env=env,
        )
    print_header(f"startup, {runs} interleaved rounds (goal: each within 8x python -c pass)")
    print_spread_table(samples, "python -c pass", label="command")


if __name__ == "__main__":
    main()
