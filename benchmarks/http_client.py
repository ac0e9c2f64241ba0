"""Requests/s through ResilientClient against plain httpx, to the same local server, one run.

The server (``python tests/httpserver.py``, 200 "ok" on keep-alive) runs in its own
process so it does not share the client's GIL. The two clients take turns round by round
(a batch of GETs each per round, who goes first rotating), so load from other processes on a
busy machine hits both alike; printed: seconds per GET, median and min..max over the rounds,
and the ratio to plain httpx, after the machine's load. The protected
client has an in-memory breaker, a rate limit too high to bind and retries configured, so it
pays for every check on every request. A second figure takes the network away
(httpx.MockTransport) to show the protection's own cost per request.

A third table (issue 21 item 4) times making and closing a client, with the retry settings
given (no config file read): plain httpx loads its CA bundle when a client is made; a
ResilientClient made without ``verify`` loads it at its first https connection.

Goal (issue 8): ResilientClient at least 0.9x plain httpx.
BENCH_REQUESTS (default 10000) GETs per client, BENCH_ROUNDS (default 10) rounds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

import httpx
from _common import TESTS, interleave_calls, print_header, print_spread_table, sized

from reliactl.breaker import CircuitBreaker
from reliactl.http import ResilientClient
from reliactl.ratelimit import RateLimiter


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TESTS, "httpserver.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def protected(url: str, **kwargs: Any) -> ResilientClient:
    return ResilientClient(
        url,
        breaker=CircuitBreaker(f"bench-{len(kwargs)}"),
        retry=3,
        rate_limit=RateLimiter("1000000/second", key="bench"),
        timeout=10,
        **kwargs,
    )


def main() -> None:
    requests = int(os.environ.get("BENCH_REQUESTS", str(sized(10_000, 40))))
    rounds = int(os.environ.get("BENCH_ROUNDS", str(sized(10, 2))))
    per_round = max(1, requests // rounds)
    print_header(
        f"http: {per_round * rounds} GETs per client to a local server in its own process,"
        f" {rounds} interleaved rounds of {per_round} (goal: ResilientClient per request"
        " <= 1.11x plain httpx, i.e. >= 0.9x its throughput)"
    )
    proc, url = start_server()
    try:
        clients: dict[str, Any] = {
            "plain httpx": httpx.Client(base_url=url, timeout=10),
            "ResilientClient": protected(url),
        }
        gets = {name: (lambda c=client: c.get("/")) for name, client in clients.items()}
        interleave_calls(gets, min(300, per_round), rounds=1, warmup=0)  # connections, caches
        network = interleave_calls(gets, per_round, rounds, warmup=0)
        stats = clients["ResilientClient"].get_stats()
        for client in clients.values():
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")

    mocked: dict[str, Any] = {
        "plain httpx": httpx.Client(base_url="http://bench", transport=httpx.MockTransport(answer)),
        "ResilientClient": protected("http://bench", transport=httpx.MockTransport(answer)),
    }
    gets = {name: (lambda c=client: c.get("/")) for name, client in mocked.items()}
    no_network = interleave_calls(gets, per_round, rounds)

    print()
    print_spread_table(network, "plain httpx", unit="us", label="per GET, local server")
    for name, values in network.items():
        print(f"  {name}: {1 / statistics.median(values):.0f} req/s (median round)")
    print()
    print_spread_table(no_network, "plain httpx", unit="us", label="per GET, MockTransport")
    cost = statistics.median(no_network["ResilientClient"]) - statistics.median(
        no_network["plain httpx"]
    )
    print(f"  rate limit + breaker + retry bookkeeping + stats: {cost * 1e6:.1f} us/request")
    print(
        f"  ResilientClient's own latency stats: p50 {stats['latency_p50'] * 1000:.3f} ms,"
        f" p99 {stats['latency_p99'] * 1000:.3f} ms over the last 1000 attempts"
    )
    made = interleave_calls(
        {
            "plain httpx": lambda: httpx.Client(base_url="http://bench", timeout=10).close(),
            "ResilientClient": lambda: ResilientClient(
                "http://bench", retry=3, retry_deadline=60, rate_limit_wait=None, timeout=10
            ).close(),
        },
        sized(5, 1),
        rounds,
    )
    print()
    print_spread_table(made, "plain httpx", unit="ms", label="per client made and closed")


if __name__ == "__main__":
    main()
