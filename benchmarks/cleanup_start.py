"""CPU of `reliactl cleanup`'s fixed start-up (issue 21 item 3) against `python -c pass` and
`systemd-tmpfiles --clean` on an empty directory, interleaved round by round.

Each row is the CPU (user + sys, from wait4) of one start; medians and minimums over the
rounds. Rows: `cleanup --older-than 1d EMPTYDIR` without a configuration file and with the
typical one of benchmarks/startup.py (its parse kept from the warm-up), started three ways:
the installed console script (pip's template imports `re`), a script without that import (as
uv writes one) and `python -m reliactl`; plus `run -- true`, `health --json` and `--help`.
With `--baseline DIR` (e.g. `git archive main reliactl | tar -x -C DIR`, plus a built
`_cleanupwalk*.so` copied into DIR/reliactl) each row has a `[base]` twin run from there.

    python benchmarks/cleanup_start.py --baseline /tmp/base --runs 25 [--only "typical"]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from startup import TYPICAL_CONFIG

SCRIPT_WITHOUT_RE = "import sys; from reliactl.__main__ import main; sys.exit(main())"


def _env(home: str, pythonpath: str, cache: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "XDG_STATE_HOME": home,
        "XDG_CACHE_HOME": os.path.join(home, cache),  # each tree its own parse cache
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def _commands(scratch: str, baseline: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    plain = os.path.join(scratch, "plain")
    typical = os.path.join(scratch, "typical")
    empty = os.path.join(scratch, "empty")
    for path in (plain, empty, os.path.join(typical, "reliactl")):
        os.makedirs(path)
    with open(os.path.join(typical, "reliactl", "config.yaml"), "w", encoding="utf-8") as fh:
        fh.write(TYPICAL_CONFIG.format(home=typical))
    conf = os.path.join(scratch, "tmpfiles.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(f"d {empty} - - - am:1d\n")
    script = os.path.join(os.path.dirname(sys.executable), "reliactl")
    trees = [("", "", "cache")] + ([(" [base]", baseline, "cache-base")] if baseline else [])
    cleanup = ["cleanup", "--older-than", "1d", empty]
    out: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], _env(plain, "", "cache")),
        "python -c 'import re'": ([sys.executable, "-c", "import re"], _env(plain, "", "cache")),
    }
    tmpfiles = shutil.which("systemd-tmpfiles")
    if tmpfiles:
        out["systemd-tmpfiles --clean EMPTYDIR"] = (
            [tmpfiles, "--clean", conf],
            _env(plain, "", ""),
        )
    for label, argv, homes in [
        ("cleanup EMPTYDIR", [script, *cleanup], (plain, typical)),
        (
            "cleanup EMPTYDIR, script without re",
            [sys.executable, "-c", SCRIPT_WITHOUT_RE, *cleanup],
            (plain,),
        ),
        ("cleanup EMPTYDIR, python -m", [sys.executable, "-m", "reliactl", *cleanup], (plain,)),
        ("run -- true", [script, "run", "--", "true"], (plain, typical)),
        ("health --json", [script, "health", "--json"], (plain, typical)),
        ("--help", [script, "--help"], (plain,)),
    ]:
        for home in homes:
            where = "typical file" if home == typical else "no file"
            for suffix, pythonpath, cache in trees:
                out[f"{label}, {where}{suffix}"] = (argv, _env(home, pythonpath, cache))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="", help="a directory holding another reliactl")
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--only", default="", help="only rows whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reliactl-start-") as scratch:
        commands = {
            name: spec
            for name, spec in _commands(scratch, args.baseline).items()
            if args.only in name or name == "python -c pass"
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.runs + 2):  # two warm-up rounds (the parse cache is filled)
            for name, (argv, env) in commands.items():
                proc = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=scratch
                )
                _, _, usage = os.wait4(proc.pid, 0)
                if round_ >= 2:
                    samples[name].append((usage.ru_utime + usage.ru_stime) * 1000)
    floor = statistics.median(samples["python -c pass"])
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.runs} interleaved rounds, load {load}; CPU ms: median (min), x python -c pass")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:52s} {median:6.1f} ({min(values):5.1f})  {median / floor:5.2f}x")


if __name__ == "__main__":
    main()
