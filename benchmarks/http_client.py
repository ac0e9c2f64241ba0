"""Requests/s through ResilientClient against plain httpx, to the same local server, one run.

The server (``python tests/httpserver.py``, 200 "ok" on keep-alive) runs in its own
process so it does not share the client's GIL. The two clients alternate request by request
(who goes first alternates too), so load from other processes on a busy machine hits both
alike; each client's throughput is its requests over the time spent in them. The protected
client has an in-memory breaker, a rate limit too high to bind and retries configured, so it
pays for every check on every request. A second figure takes the network away
(httpx.MockTransport) to show the protection's own cost per request.

Goal (issue 8): ResilientClient at least 0.9x plain httpx.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from _common import TESTS

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


def interleaved(clients: dict[str, Any], requests: int) -> dict[str, list[float]]:
    """Seconds of each request of each client, the clients taking turns request by request."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    order = list(clients.items())
    clock = time.perf_counter
    for index in range(requests):
        for name, client in order if index % 2 else reversed(order):
            started = clock()
            client.get("/")
            times[name].append(clock() - started)
    return times


def report(title: str, times: dict[str, list[float]], base: str) -> None:
    base_rate = len(times[base]) / sum(times[base])
    print(title)
    for name, values in times.items():
        throughput = len(values) / sum(values)
        print(
            f"  {name:<16} {throughput:8.0f} req/s  {throughput / base_rate:5.2f}x"
            f"   median {statistics.median(values) * 1e6:7.1f} us/request"
        )


def main() -> None:
    requests = int(os.environ.get("BENCH_REQUESTS", "10000"))
    proc, url = start_server()
    try:
        clients: dict[str, Any] = {
            "plain httpx": httpx.Client(base_url=url, timeout=10),
            "ResilientClient": protected(url),
        }
        interleaved(clients, 300)  # warm up: connections, imports, caches
        network = interleaved(clients, requests)
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
    interleaved(mocked, 1000)
    no_network = interleaved(mocked, requests)

    report(
        f"http: {requests} GETs each to a local server, interleaved"
        " (goal: ResilientClient >= 0.9x plain httpx)",
        network,
        "plain httpx",
    )
    report(
        "no network (httpx.MockTransport): the cost of the protection itself",
        no_network,
        "plain httpx",
    )
    cost = statistics.median(no_network["ResilientClient"]) - statistics.median(
        no_network["plain httpx"]
    )
    print(f"  rate limit + breaker + retry bookkeeping + stats: {cost * 1e6:.1f} us/request")
    print(
        f"  ResilientClient's own latency stats: p50 {stats['latency_p50'] * 1000:.3f} ms,"
        f" p99 {stats['latency_p99'] * 1000:.3f} ms over the last 1000 attempts"
    )


if __name__ == "__main__":
    main()
