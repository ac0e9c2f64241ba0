"""What heartbeat pings and job checks cost (issue 17).

1. In-process `run_command(("true",))` medians without pings and with a ``Pinger`` to a local
   HTTP server in another process (start ping on the runner's "start" event, end ping with
   the output tail): the added milliseconds a run pays for ``--ping``.
2. Against a hanging server: how long start() and finish() hold the run (the stated bounds,
   1 s and 10 s by default; here start_wait 1 s, end_timeout 2 s).
3. `reliactl health -C job --json` with 50 declared jobs (cron and every) against a store
   holding their runs, and `health --json` without jobs: the import and evaluation cost.
Both servers run in their own process; the cases run in interleaved rounds, printed as
median, min..max and the ratio to the plain run, after the machine's load. BENCH_RUNS rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    PY,
    interleave_once,
    print_header,
    print_spread_table,
    reliactl_cmd,
    sample_commands,
    sized,
)


def _serve_ok() -> tuple[subprocess.Popen[bytes], str]:
    code = (
        "import http.server,sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def log_message(self,*a): pass\n"
        "    def _h(self):\n"
        "        n=int(self.headers.get('Content-Length') or 0); self.rfile.read(n)\n"
        "        self.send_response(200); self.send_header('Content-Length','2');"
        " self.end_headers(); self.wfile.write(b'OK')\n"
        "    do_GET=_h; do_POST=_h\n"
        "s=http.server.ThreadingHTTPServer(('127.0.0.1',0),H)\n"
        "print(s.server_address[1],flush=True); s.serve_forever()\n"
    )
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def _hanging() -> tuple[subprocess.Popen[bytes], str]:
    """A server in its own process that accepts connections (backlog) and never answers."""
    code = (
        "import socket,time\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(16)\n"
        "print(s.getsockname()[1],flush=True)\n"
        "while True: time.sleep(3600)\n"
    )
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}/x"


def in_process(runs: int) -> None:
    from reliactl.ping import OutputTail, Pinger, PingTargets
    from reliactl.runner import RunOptions, run_command

    server, url = _serve_ok()

    def plain() -> None:
        run_command(RunOptions(command=("true",)))

    def pinged() -> None:
        pinger = Pinger(PingTargets(url=url), name="bench", host="h")
        tail = OutputTail()
        result = run_command(RunOptions(command=("true",)), on_event=pinger.on_event, output=tail)
        pinger.report(result, tail.tail())
        assert all(r.ok for r in pinger.results), pinger.warnings()

    def alone() -> None:
        pinger = Pinger(PingTargets(url=url), name="bench", host="h")
        pinger.start()
        pinger.finish(exit_code=0, outcome="success", duration=0.0, output=b"x" * 10240)

    try:
        samples = interleave_once(
            {
                "run_command(true)": plain,
                "run_command(true) with pings": pinged,
                "start + end ping alone (10 KiB)": alone,
            },
            rounds=runs,
        )
    finally:
        server.kill()
        server.wait()
    print("\nin-process, the ping server in its own process")
    print_spread_table(samples, "run_command(true)", label="what")

    hung, hung_url = _hanging()
    try:
        pinger = Pinger(PingTargets(url=hung_url), name="bench", host="h", end_timeout=2.0)
        began = time.perf_counter()
        pinger.start()
        started = time.perf_counter() - began
        pinger.finish(exit_code=0, outcome="success", duration=0.0)
        total = time.perf_counter() - began
        pinger.close()
    finally:
        hung.kill()
        hung.wait()
    print(f"hanging ping server: start() held the run {started:.2f} s, start+finish {total:.2f} s")


def health_with_jobs(runs: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        lines = ["jobs:"]
        for i in range(50):
            lines.append(f"  job{i}:")
            lines.append(
                f"    schedule: '{i % 60} * * * *'\n    tz: Europe/Berlin"
                if i % 2
                else "    every: 1h"
            )
        cfg = os.path.join(home, "jobs.yaml")
        with open(cfg, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(cfg, 0o600)
        env = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home, "NO_COLOR": "1"}
        for i in range(0, 50, 5):
            subprocess.run(
                [*reliactl_cmd("--config", cfg, "run", "--name", f"job{i}", "--", "true")],
                env={**os.environ, **env},
                check=True,
                stderr=subprocess.DEVNULL,
            )
        samples = sample_commands(
            {
                "python -c pass": [PY, "-c", "pass"],
                "health --json (no jobs)": reliactl_cmd("health", "--json"),
                "health -C job --json (50 jobs)": reliactl_cmd(
                    "--config", cfg, "health", "-C", "job", "--json"
                ),
            },
            runs=runs,
            env=env,
        )
    print(f"\nhealth, {runs} interleaved rounds")
    print_spread_table(samples, "python -c pass", label="command")


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    print_header(f"heartbeat pings and job checks, {runs} interleaved rounds")
    in_process(runs)
    health_with_jobs(runs)


if __name__ == "__main__":
    main()
