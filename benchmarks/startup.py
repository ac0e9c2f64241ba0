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
`alert resolve`, `silence remove` take their "no such" answer (exit 1) and `state migrate` a
refused Redis (75) after the whole start; `drill` and `serve` are measured to the end of their
own checks (`drill nope`, `serve --port 0`: a real drill takes seconds, serve does not exit).
`doctor` is slow by nature (it opens the store, stats the directories, looks for the serve
extra); `http` includes one request to a local server in its own process.
STARTUP_PART=commands runs only this second table (with STARTUP_BASE=DIR each command's twin
is the base tree's same command instead of RELIACTL_FAST=0), =light only the first, =config only the
table of `run` and `health` with a configuration file (see config_file_rows), =redis only the
table of the commands with a Redis state store (see redis_rows).
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    PY,
    TESTS,
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
    "alert resolve (none open)": ("alert", "resolve", "bench*"),
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
    """Every command and its RELIACTL_FAST=0 twin against `python -c pass`, interleaved; with
    STARTUP_BASE=DIR its twin is the base tree's same command instead (both via env(1))."""
    base_dir = os.environ.get("STARTUP_BASE", "")
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
            if base_dir:  # this tree and the base tree, both through env(1)
                commands[f"reliactl {name}"] = ["env", "PYTHONPATH=", *reliactl_cmd(*real)]
                # The base tree keeps its own parse cache (as config_file_rows): sharing one,
                # each tree's stamp evicted the other's entry, so every `-c FILE` command
                # (the breaker writers) imported yaml and parsed at every start, both sides.
                base_cache = f"XDG_CACHE_HOME={os.path.join(home, 'base-cache')}"
                based = ["env", f"PYTHONPATH={base_dir}", base_cache, *reliactl_cmd(*real)]
                commands[f"reliactl {name} [base]"] = based
                continue
            commands[f"reliactl {name}"] = reliactl_cmd(*real)
            typer_path = ["env", "RELIACTL_FAST=0", *reliactl_cmd(*real)]
            commands[f"reliactl {name} [RELIACTL_FAST=0]"] = typer_path
        return sample_commands(commands, runs=runs, env=env)


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    part = os.environ.get("STARTUP_PART", "")
    if part == "config":
        config_file_rows(runs)
        return
    if part == "redis":
        redis_rows(runs)
        return
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


# ---- with a configuration file (issue 21 item 4, wave 2: importdiet2) ----------------------
#
# A cron user's `run` and `health` read a configuration file, which the other tables' empty
# HOME does not have: the loader then parses YAML, builds every section and validates the job
# schedules. STARTUP_PART=config runs only this table: `run -- true` and `health --json`
# without a file, with a typical file (a few breakers, a file_age check, a cron job and an
# `every:` job), and with that file but the parse cache (config/_cache.py) unusable
# (XDG_CACHE_HOME under /dev/null: a cold cache, every start parses with PyYAML). Wall and
# CPU (user + sys of the process, from wait4) per round, interleaved. STARTUP_BASE=DIR adds
# the same rows for the reliactl package in DIR (e.g. `git archive REF reliactl | tar -x -C DIR`),
# for a before/after in the same rounds.

TYPICAL_CONFIG = """\
circuit_breaker:
  failure_threshold: 5
  recovery_timeout: 1m
  breakers:
    openai: {{failure_threshold: 3, recovery_timeout: 2m}}
    db: {{failure_threshold: 2, slow_call_threshold: 20s}}
retry:
  max_retries: 3
health_monitor:
  checks:
  - {{name: heartbeat, kind: file_age, path: {home}/heartbeat, warn: 15m, critical: 1h}}
jobs:
  backup: {{schedule: 30 2 * * *, grace: 1h, max_duration: 2h, max_failures: 2}}
  report: {{every: 1h}}
"""


def _sample_wall_and_cpu(
    commands: dict[str, tuple[list[str], dict[str, str]]], runs: int, warmup: int = 2
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(wall, CPU) seconds of every run of each command (with its own environment), interleaved."""
    import subprocess
    import time

    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(warmup + runs):
        for name, (argv, env) in commands.items():
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0  # reaped here; keeps Popen from waiting again
            if index >= warmup:
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(usage.ru_utime + usage.ru_stime)
    return wall, cpu


def _print_wall_and_cpu(
    title: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]
) -> None:
    """The header and the wall and CPU tables of a start-up table, each against
    ``python -c pass``."""
    print_header(title)
    print("wall:")
    print_spread_table(wall, "python -c pass", label="command")
    print("CPU (user + sys):")
    print_spread_table(cpu, "python -c pass", label="command")


def config_file_rows(runs: int) -> None:
    base_dir = os.environ.get("STARTUP_BASE", "")
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as home:
        os.makedirs(os.path.join(home, "reliactl"))
        with open(os.path.join(home, "reliactl", "config.yaml"), "w") as handle:
            handle.write(TYPICAL_CONFIG.format(home=home))
        with open(os.path.join(home, "heartbeat"), "w"):
            pass
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        clean.pop("PYTHONPATH", None)

        def env_of(where: str, **extra: str) -> dict[str, str]:
            homes = {"HOME": where, "XDG_STATE_HOME": where, "XDG_CONFIG_HOME": where}
            return {**clean, **homes, "NO_COLOR": "1", **extra}

        variants = {
            "no file": env_of(empty),
            "config file": env_of(home),
            "config file, no parse cache": env_of(home, XDG_CACHE_HOME="/dev/null/none"),
        }
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([PY, "-c", "pass"], env_of(empty))
        }
        trees = [("", None)] + ([(" [base]", base_dir)] if base_dir else [])
        for argv in (["run", "--", "true"], ["health", "--json"]):
            for variant, env in variants.items():
                for tag, tree in trees:
                    if tree is not None and variant == "config file, no parse cache":
                        continue  # the base has no cache: its "config file" row is that
                    row_env = env
                    if tree:  # its own parse cache: sharing one, each tree's stamp evicts
                        # the other's entry and both would parse at every start
                        row_env = dict(env, PYTHONPATH=tree)
                        row_env.setdefault("XDG_CACHE_HOME", os.path.join(home, "base-cache"))
                    commands[f"{' '.join(argv)} ({variant}){tag}"] = (reliactl_cmd(*argv), row_env)
        wall, cpu = _sample_wall_and_cpu(commands, runs)
    _print_wall_and_cpu(
        f"run and health with a configuration file, {runs} interleaved rounds "
        "(goal: within 5x python -c pass on a quiet machine)",
        wall,
        cpu,
    )


# ---- with a Redis state store (issue 21 item 4, wave 5: redisstart) --------------------------
#
# A fleet's cron lines run with `state.url: redis://...`: every `run` with a breaker, cooldown
# or fleet lock, every `health`, `doctor` and `state` command then opens the Redis store (on its
# own RESP client since wave 6, `resp`: no redis-py; a base tree before it imports redis-py).
# STARTUP_PART=redis starts its own redis-server (tests/state/redishelpers.py: a free loopback
# port, no persistence) and times, interleaved with `python -c pass`: `state migrate --to` it
# (an empty local store), `state sync`, `doctor`, `run --lock` (host and fleet scope) and
# `health --json`, all with RELIACTL_STATE__URL pointing at it. STARTUP_BASE=DIR adds the same
# rows for the reliactl package in DIR (`git archive REF reliactl | tar -x -C DIR`), for a
# before/after in the same rounds.

REDIS_COMMANDS: dict[str, tuple[str, ...]] = {
    "state migrate --to URL": ("state", "migrate", "--to", "{url}"),
    "state sync": ("state", "sync"),
    "doctor": ("doctor",),
    "run --lock -- true": ("run", "--lock", "--", "true"),
    "run --lock (fleet scope) -- true": ("run", "--lock", "--lock-scope", "fleet", "--", "true"),
    "health --json": ("health", "--json"),
}


def redis_rows(runs: int) -> None:
    sys.path.append(os.path.join(TESTS, "state"))
    from pathlib import Path

    from redishelpers import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    base_dir = os.environ.get("STARTUP_BASE", "")
    with tempfile.TemporaryDirectory() as home:
        server = RedisServer(Path(home) / "redis")
        try:
            clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            clean.pop("PYTHONPATH", None)
            env = {
                **clean,
                "HOME": home,
                "XDG_STATE_HOME": home,
                "XDG_CONFIG_HOME": home,
                "NO_COLOR": "1",
                "RELIACTL_STATE__URL": server.url,
            }
            commands: dict[str, tuple[list[str], dict[str, str]]] = {
                "python -c pass": ([PY, "-c", "pass"], env)
            }
            trees = [("", env)]
            if base_dir:
                trees.append((" [base]", dict(env, PYTHONPATH=base_dir)))
            for name, args in REDIS_COMMANDS.items():
                argv = [a.format(url=server.url) for a in args]
                for tag, row_env in trees:
                    commands[f"reliactl {name}{tag}"] = (reliactl_cmd(*argv), row_env)
            wall, cpu = _sample_wall_and_cpu(commands, runs)
        finally:
            server.stop()
    _print_wall_and_cpu(
        f"commands with a Redis state store (redis-server in its own process), {runs} "
        "interleaved rounds (goal: each within 8x python -c pass loaded; run, health 5x quiet)",
        wall,
        cpu,
    )


if __name__ == "__main__":
    main()
