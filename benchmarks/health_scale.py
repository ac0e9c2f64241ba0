"""HTTP checks at scale: `reliactl health` against `curl --parallel`, same URLs, same run.

A server answering every request after 200 ms runs in its own process (a thread per
connection, so it serves them all at once). For N checks (default 50 and 500) the candidates
are run round by round, interleaved:

- ``curl``: ``curl --parallel --parallel-max N`` fetching the N URLs (the peer; installed
  from the distribution's packages if missing);
- ``reliactl``: ``reliactl --config C health --json --no-alerts`` with N ``http`` checks;
- ``before`` (with ``--base REF``): the same command running the ``reliactl`` package of a git
  ref (e.g. ``main``), extracted to a temporary directory, in the same rounds.

Printed per N: median wall and CPU seconds (user+sys of the child) with min..max, the ratio to
curl, the child's peak RSS, and how many reliactl runs were not all OK (a run where any check
timed out counts). Also 100 ``command`` checks (plugins running ``true``) against
``xargs -P 100 -n 1 true``. ``--curl-max`` caps curl's parallelism (default: N, all at once);
``--max-parallel`` sets ``health_monitor.max_parallel`` (default: reliactl's own). Asserts
nothing.

    python benchmarks/health_scale.py [--runs N] [--counts 50,500] [--base main]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import reliactl_cmd

SERVER = r"""
import sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096
    def handle_error(self, request, client_address):
        pass  # a client closing its idle keep-alive connections at exit

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(float(sys.argv[1]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def measure(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds of the child, its peak RSS in MB, its stdout).

    ``cwd`` is a neutral directory: ``python -m`` puts the working directory first on
    sys.path, which would shadow the ``before`` copy with the checkout's own package."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, text


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f}s ({min(values):.3f}..{max(values):.3f})"


def ensure_curl() -> str:
    found = shutil.which("curl")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "curl"], check=False)
    found = shutil.which("curl")
    if not found:
        sys.exit("curl is needed as the peer and could not be installed")
    return found


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def compare(
    label: str, commands: dict[str, list[str]], env: dict[str, str], runs: int, ok: str
) -> None:
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    bad = dict.fromkeys(commands, 0)
    loads = [os.getloadavg()[0]]
    for index in range(runs + 1):
        for name, argv in commands.items():
            wall, cpu, peak, out = measure(argv, env, env["HOME"])
            if index == 0:
                continue  # warm-up round: page cache, bytecode
            walls[name].append(wall)
            cpus[name].append(cpu)
            rss[name].append(peak)
            if name != ok:
                report = json.loads(out) if out.strip() else {}
                if report.get("status") != "OK":
                    bad[name] += 1
        loads.append(os.getloadavg()[0])
    print(
        f"{label} ({runs} interleaved rounds, {load()}; 1-min load during the rounds "
        f"{min(loads):.1f}..{max(loads):.1f})"
    )
    base = statistics.median(walls[ok])
    base_cpu = statistics.median(cpus[ok])
    for name in commands:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"  {name:<9} wall {spread(walls[name])}  {w / base:5.2f}x   "
            f"CPU {spread(cpus[name])}  {c / max(base_cpu, 1e-3):6.1f}x   "
            f"RSS {statistics.median(rss[name]):5.0f} MB"
        )
    for name in commands:
        if name != ok:
            print(f"  {name} runs not all OK: {bad[name]} of {runs}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--counts", default="50,500")
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--base", help="git ref whose reliactl package runs as 'before'")
    parser.add_argument("--curl-max", type=int, help="curl --parallel-max (default: N)")
    parser.add_argument("--max-parallel", type=int, help="health_monitor.max_parallel")
    args = parser.parse_args()
    curl = ensure_curl()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, "0.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "HOME": tmp,
                "XDG_STATE_HOME": f"{tmp}/state",
                "XDG_CONFIG_HOME": f"{tmp}/cfg",
                "NO_COLOR": "1",
            }
            env.pop("RELIACTL_CONFIG", None)
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed copy runs from .pyc files
            base = ""
            if args.base:
                base = f"{tmp}/base"
                os.mkdir(base)
                archive = subprocess.run(
                    ["git", "archive", args.base, "reliactl"],
                    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    capture_output=True,
                    check=True,
                )
                subprocess.run(["tar", "-x", "-C", base], input=archive.stdout, check=True)
            for count in [int(c) for c in args.counts.split(",")]:
                cfg = Path(tmp) / f"http{count}.yaml"
                checks = "\n".join(
                    f"    - {{name: web{i}, kind: http, url: '{url}?{i}'}}" for i in range(count)
                )
                bound = f"  max_parallel: {args.max_parallel}\n" if args.max_parallel else ""
                cfg.write_text(
                    f"health_monitor:\n{bound}  system_checks: []\n  checks:\n{checks}\n"
                )
                urls = [f"{url}?{i}" for i in range(count)]
                most = str(args.curl_max or count)
                curl_argv = [curl, "-s", "--parallel", "--parallel-max", most]
                for each in urls:
                    curl_argv += ["-o", "/dev/null", each]
                argv = ["--config", str(cfg), "health", "--json", "--no-alerts"]
                candidates = {"curl": curl_argv, "reliactl": reliactl_cmd(*argv)}
                if base:
                    candidates["before"] = ["env", f"PYTHONPATH={base}", *reliactl_cmd(*argv)]
                bounded = args.max_parallel or "its default (256)"
                compare(
                    f"{count} http checks, server answers in 200 ms, curl --parallel-max {most}, "
                    f"reliactl max_parallel {bounded}",
                    candidates,
                    env,
                    args.runs,
                    "curl",
                )
            if args.commands:
                n = args.commands
                cfg = Path(tmp) / "commands.yaml"
                checks = "\n".join(
                    f"    - {{name: plugin{i}, kind: command, command: ['true']}}" for i in range(n)
                )
                cfg.write_text(f"health_monitor:\n  system_checks: []\n  checks:\n{checks}\n")
                compare(
                    f"{n} command checks (true)",
                    {
                        "xargs": ["sh", "-c", f"seq {n} | xargs -P {n} -n 1 true"],
                        "reliactl": reliactl_cmd(
                            "--config", str(cfg), "health", "--json", "--no-alerts"
                        ),
                    },
                    env,
                    args.runs,
                    "xargs",
                )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
