"""What heartbeat pings and job checks cost (issue 17).

1. In-process `run_command(("true",))` medians without pings and with a ``Pinger`` to a local
   HTTP server in another process (start ping on the runner's "start" event, end ping with
   the output tail): the added milliseconds a run pays for ``--ping``.
2. Against a hanging server: how long start() and finish() hold the run (the stated bounds,
   1 s and 10 s by default; here start_wait 1 s, end_timeout 2 s).
3. `reliactl health -C job --json` with 50 declared jobs (cron and every) against a store
   holding their runs, and `health --json` without jobs: the import and evaluation cost.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import PY, print_table, reliactl_cmd, time_commands


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


def _hanging() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # accepts connections (backlog), never answers

    def hold() -> None:
        conns = []
        while True:
            try:
                conns.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/x"


def in_process(runs: int) -> None:
    from reliactl.ping import OutputTail, Pinger, PingTargets
    from reliactl.runner import RunOptions, run_command

    server, url = _serve_ok()
    try:
        plain, pinged = [], []
        for _ in range(runs):
            began = time.perf_counter()
            run_command(RunOptions(command=("true",)))
            plain.append(time.perf_counter() - began)
            began = time.perf_counter()
            pinger = Pinger(PingTargets(url=url), name="bench", host="h")
            tail = OutputTail()
            result = run_command(
                RunOptions(command=("true",)), on_event=pinger.on_event, output=tail
            )
            pinger.report(result, tail.tail())
            pinged.append(time.perf_counter() - began)
            assert all(r.ok for r in pinger.results), pinger.warnings()
        alone = []
        for _ in range(runs):
            began = time.perf_counter()
            pinger = Pinger(PingTargets(url=url), name="bench", host="h")
            pinger.start()
            pinger.finish(exit_code=0, outcome="success", duration=0.0, output=b"x" * 10240)
            alone.append(time.perf_counter() - began)
    finally:
        server.kill()
    a, b = statistics.median(plain) * 1000, statistics.median(pinged) * 1000
    c = statistics.median(alone) * 1000
    print(f"run_command(true), median of {runs}: {a:.1f} ms plain, {b:.1f} ms with pings")
    print(f"start + end ping (10 KiB body) to a local server alone: {c:.1f} ms")

    sock, hung = _hanging()
    try:
        pinger = Pinger(PingTargets(url=hung), name="bench", host="h", end_timeout=2.0)
        began = time.perf_counter()
        pinger.start()
        started = time.perf_counter() - began
        pinger.finish(exit_code=0, outcome="success", duration=0.0)
        total = time.perf_counter() - began
        pinger.close()
    finally:
        sock.close()
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
        medians = time_commands(
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
    print(f"health, median of {runs} interleaved runs")
    print_table(medians, "python -c pass")


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "20"))
    in_process(runs)
    health_with_jobs(runs)


if __name__ == "__main__":
    main()
