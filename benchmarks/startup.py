"""Startup cost of reliactl's light commands against `python -c pass` (DESIGN.md section 4).

Prints the machine's load, then the median and min..max wall time over 20 interleaved runs of
`reliactl --version`, `--help`, `config show`, `run -- true` and `health --json` (on the
default SQLite store) and their ratio to `python -c pass`. Goal (issue 2): the light commands
within 8x. The `run` and `health` rows
show that the Redis backend (issue 16) costs nothing on SQLite: redis-py is never imported,
and that tracing (issue 20) costs nothing without OTEL_*: the "traced" row (spans to stderr
with OTEL_TRACES_EXPORTER=console) is what importing the OpenTelemetry SDK adds when on.

Then (issue 21 item 4) EVERY command, one representative real invocation each, in a second
table: as a user runs it (the fast path, reliactl/cli/_fast.py) and through the Typer app
(`RELIACTL_FAST=0`, via env(1), which adds ~1 ms), both interleaved round by round against
`python -c pass`. Goal: each within 8x on a loaded machine. The writers act on a scratch site
(`-c` a config naming breaker `bench`; `config init` rewrites a scratch file); `alert ack`,
`silence remove` take their "no such" answer (exit 1) and `state migrate` a refused Redis (75)
after the whole start; `drill` and `serve` are measured to the end of their own checks (`drill
nope`, `serve --port 0`: a real drill takes seconds, serve does not exit). `doctor` is slow by
nature (it opens the store, stats the directories, looks for the serve extra); `http`
includes one request to a local server in its own process.
STARTUP_PART=commands runs only this second table, =light only the first.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    PY,
    ServerProcess,
    print_header,
    print_spread_table,
    reliactl_cmd,
    sample_commands,
    sized,
)

# Every command: one representative real invocation each ({dir}: a scratch tree, {url}: a local
# server, {cfg}: a config naming breaker `bench`, {init}: a scratch file `config init` rewrites).
COMMANDS: dict[str, tuple[str, ...]] = {
    "--help": ("--help",),
    "run -- true": ("run", "--", "true"),
    "health --json": ("health", "--json"),
    "health history": ("health", "history"),
    "config show": ("config", "show"),
    "config validate": ("config", "validate"),
    "config init --force": ("config", "init", "{init}", "--force"),
    "breaker list": ("breaker", "list"),
    "breaker show NAME (unknown)": ("breaker", "show", "bench-nothing"),
    "breaker trip NAME": ("-c", "{cfg}", "breaker", "trip", "bench"),
    "breaker close NAME": ("-c", "{cfg}", "breaker", "close", "bench"),
    "breaker reset NAME": ("-c", "{cfg}", "breaker", "reset", "bench"),
    "runs": ("runs",),
    "jobs --json": ("jobs", "--json"),
    "alert list": ("alert", "list"),
    "alert ack (none open)": ("alert", "ack", "bench*"),
    "silence list": ("silence", "list"),
    "silence add": ("silence", "add", "bench", "--for", "1m"),
    "silence remove (no such)": ("silence", "remove", "nope"),
    "retry plan": ("retry", "plan"),
    "state info": ("state", "info"),
    "state sync (SQLite)": ("state", "sync"),
    "state migrate (refused)": ("state", "migrate", "--to", "redis://127.0.0.1:1/0"),
    "cleanup --dry-run DIR": ("cleanup", "--dry-run", "--older-than", "1d", "{dir}"),
    "http GET URL": ("http", "GET", "{url}"),
    "doctor (slow by nature)": ("doctor",),
    "drill nope": ("drill", "nope"),
    "serve --port 0": ("serve", "--port", "0"),
    "breaker --help (a group's help)": ("breaker", "--help"),
}
BENCH_CONFIG = "circuit_breaker:\n  breakers:\n    bench:\n      failure_threshold: 3\n"


def command_rows(runs: int, env: dict[str, str], home: str) -> dict[str, list[float]]:
    """Every command and its RELIACTL_FAST=0 twin against `python -c pass`, interleaved."""
    tree = os.path.join(home, "tree")
    os.makedirs(tree, exist_ok=True)
    cfg = os.path.join(home, "bench.yaml")
    with open(cfg, "w", encoding="utf-8") as fh:
        fh.write(BENCH_CONFIG)
    init = os.path.join(home, "init.yaml")
    with ServerProcess() as server:
        commands: dict[str, list[str]] = {"python -c pass": [PY, "-c", "pass"]}
        for name, args in COMMANDS.items():
            real = [a.format(dir=tree, url=server.url, cfg=cfg, init=init) for a in args]
            commands[f"reliactl {name}"] = reliactl_cmd(*real)
            typer_path = ["env", "RELIACTL_FAST=0", *reliactl_cmd(*real)]
            commands[f"reliactl {name} [RELIACTL_FAST=0]"] = typer_path
        return sample_commands(commands, runs=runs, env=env)


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    part = os.environ.get("STARTUP_PART", "")
    if part != "commands":
        light(runs)
    if part != "light":
        with tempfile.TemporaryDirectory() as home:
            env = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home, "NO_COLOR": "1"}
            samples = command_rows(runs, env, home)
        print_header(
            f"startup of every command and its Typer twin, {runs} interleaved rounds "
            "(goal: each within 8x python -c pass on a loaded machine)"
        )
        print_spread_table(samples, "python -c pass", label="command")


def light(runs: int) -> None:
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
