"""`reliactl serve` while other clients hold half-sent requests (slowloris; cli/web/guard.py).

serve runs at its defaults (1000 connections, a 10 s head deadline) with RLIMIT_NOFILE set
to --nofile; --attackers processes (as nobody when run as root) each open --connections
connections and send half a request head on each, then hold them. Measured, each as
"median (min..max)" over --rounds rounds: /livez latency of one fresh connection per probe
(20 probes) before and during the attack, serve's open descriptors during the attack, the
bytes serve wrote to stderr during it (its access log: 20 lines), and /livez requests per
second of 50 keep-alive clients (what the guard's per-request timer costs). A probe that
gets no answer within 5 s counts as 5 s. Before the guard (the session 8 review, 2 x 10,500
against 20,000 descriptors) /livez gave no answer within 5 s and stderr grew 53 MB in 20 s.
Run: python benchmarks/serve_slowloris.py [--rounds 3] [--connections 5000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from _common import print_header, reliactl_cmd, sized
from serve import free_port, load, setup, spread, stop

HOLDER = """
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]) + 64, int(sys.argv[2]) + 64))
held = []
for _ in range(int(sys.argv[2])):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n")
        held.append(s)
    except OSError:
        pass
print(len(held), flush=True)
sys.stdin.read()
"""


def probe(port: int) -> float:
    """Seconds /livez took on a fresh connection (5.0: no answer within 5 s)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as res:
            res.read()
    except OSError:
        return 5.0
    return min(5.0, time.perf_counter() - started)


def probes(port: int) -> float:
    return statistics.median(probe(port) for _ in range(20))


def one_round(env: dict[str, str], tmp: Path, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    err = tmp / "serve.err"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    with err.open("wb") as sink:
        proc = subprocess.Popen(
            reliactl_cmd("serve", "--port", str(port), "--interval", "5s"),
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=env,
            preexec_fn=limit,  # noqa: PLW1509 - no thread runs yet in this process
        )
    figures: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while probe(port) >= 5.0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("serve did not start")
            time.sleep(0.2)
        figures["idle"] = probes(port) * 1000
        rps, _p50, _p99 = load(port, "/livez", args.seconds)
        figures["rps"] = rps
        nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        as_user = nobody if os.geteuid() == 0 else []
        holders = [
            subprocess.Popen(
                [*as_user, sys.executable, "-c", HOLDER, str(port), str(args.connections)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.attackers)
        ]
        before = err.stat().st_size  # the access log of the load above
        try:
            held = sum(int(h.stdout.readline() or 0) for h in holders if h.stdout)
            figures["held"] = held
            figures["attacked"] = probes(port) * 1000
            figures["fds"] = len(os.listdir(f"/proc/{proc.pid}/fd"))
        finally:
            for holder in holders:
                if holder.stdin:
                    holder.stdin.close()
                holder.wait()
        figures["stderr"] = err.stat().st_size - before
    finally:
        stop(proc)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=sized(3))
    parser.add_argument("--attackers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=sized(5000, 200), help="each")
    parser.add_argument("--nofile", type=int, default=20000, help="serve's RLIMIT_NOFILE")
    parser.add_argument("--seconds", type=float, default=sized(5), help="the keep-alive load")
    args = parser.parse_args()
    print_header(
        "reliactl serve under a slowloris (serve and the attackers in their own processes)",
        f"{args.attackers} attackers x {args.connections} half-sent requests;"
        f" serve's RLIMIT_NOFILE {args.nofile}; {args.rounds} rounds",
    )
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # the attackers (nobody) need nothing in it, serve does
        env = setup(Path(tmp))
        for _ in range(args.rounds):
            rounds.append(one_round(env, Path(tmp), args))

    def col(name: str) -> list[float]:
        return [r[name] for r in rounds]

    print(f"connections the attackers held open: {spread(col('held'), '{:.0f}')}")
    print(f"/livez, fresh connection, no attack:  {spread(col('idle'))} ms (median of 20)")
    print(f"/livez, fresh connection, attacked:   {spread(col('attacked'))} ms (median of 20)")
    print(f"serve's open descriptors, attacked:   {spread(col('fds'), '{:.0f}')}")
    print(f"serve's stderr during the attack:     {spread(col('stderr'), '{:.0f}')} bytes")
    print(f"/livez, 50 keep-alive clients:        {spread(col('rps'), '{:.0f}')} req/s")


if __name__ == "__main__":
    main()
