"""Requests/s through ResilientClient against plain httpx, to the same local server, one run.

The server (``python -m reliactl._httpserver``, 200 "ok" on keep-alive) runs in its own
process so it does not share the client's GIL. Rounds alternate between the clients so drift
hits both equally; the median round of each is reported. The protected client has a breaker
(in memory), a rate limit too high to bind and retries configured, so it pays for every
check on every request. Goal (issue 8): at least 0.9x plain httpx.
"""

from __future__ import annotations

import os
import sys

# This file is named like the stdlib package `http`; run as a script, its directory comes
# first on sys.path and would shadow it (httpx imports http.client). Drop that entry.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import httpx  # noqa: E402

from reliactl.http import ResilientClient  # noqa: E402
from reliactl.ratelimit import RateLimiter  # noqa: E402


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reliactl._httpserver"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


def rate(send: Callable[[], object], requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        send()
    return requests / (time.perf_counter() - started)


def make_breaker() -> object | None:
    try:
        from reliactl.breaker import CircuitBreaker
    except ImportError:
        return None
    return CircuitBreaker("bench")


def overhead_us(requests: int = 1000, rounds: int = 31) -> tuple[float, float]:
    """Microseconds per GET without any network (httpx.MockTransport): plain, protected."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")

    plain = httpx.Client(base_url="http://bench.local", transport=httpx.MockTransport(answer))
    resilient = ResilientClient(
        "http://bench.local",
        breaker=make_breaker(),
        retry=3,
        rate_limit=RateLimiter("1000000/second", key="bench-mock"),
        transport=httpx.MockTransport(answer),
    )
    samples: dict[str, list[float]] = {"plain": [], "resilient": []}
    for _ in range(rounds):  # short alternating rounds: load on the machine hits both alike
        samples["plain"].append(1e6 / rate(lambda: plain.get("/"), requests))
        samples["resilient"].append(1e6 / rate(lambda: resilient.get("/"), requests))
    return statistics.median(samples["plain"]), statistics.median(samples["resilient"])


def main() -> None:
    requests = int(os.environ.get("BENCH_REQUESTS", "2000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "7"))
    proc, url = start_server()
    try:
        plain = httpx.Client(base_url=url, timeout=10)
        breaker = make_breaker()
        resilient = ResilientClient(
            url,
            breaker=breaker,
            retry=3,
            rate_limit=RateLimiter("1000000/second", key="bench"),
            timeout=10,
        )
        for client in (plain, resilient):  # warm up: connections, imports, caches
            for _ in range(200):
                client.get("/")
        results: dict[str, list[float]] = {"plain httpx": [], "ResilientClient": []}
        for _ in range(rounds):
            results["plain httpx"].append(rate(lambda: plain.get("/"), requests))
            results["ResilientClient"].append(rate(lambda: resilient.get("/"), requests))
        stats = resilient.get_stats()
        plain.close()
        resilient.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    base = statistics.median(results["plain httpx"])
    print(
        f"http: {requests} GETs per round, {rounds} interleaved rounds, median requests/s"
        " (goal: ResilientClient >= 0.9x plain httpx)"
    )
    print(
        f"  breaker: {'in-memory CircuitBreaker' if breaker else 'none (reliactl.breaker absent)'}"
    )
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<16} {median:8.0f} req/s  {median / base:5.2f}x")
    mock_plain, mock_resilient = overhead_us()
    print(
        f"  no network (MockTransport, median of 31 rounds): plain {mock_plain:.1f} us/request,"
        f" ResilientClient"
        f" {mock_resilient:.1f} us/request: the protection costs"
        f" {mock_resilient - mock_plain:.1f} us"
    )
    print(
        f"  ResilientClient latency p50 {stats['latency_p50'] * 1000:.3f} ms,"
        f" p99 {stats['latency_p99'] * 1000:.3f} ms, {stats['requests']} requests"
    )


if __name__ == "__main__":
    main()
