"""The one retry decision (reliactl.backoff.decide) and zero_backoff reaching every retry loop.

RetryPolicy, the HTTP clients and ``run``'s loop all ask ``decide()``; so the rules are the
same everywhere and ``reliactl.testing.zero_backoff()`` reaches all three (it used to reach
only RetryPolicy: a ResilientClient slept 1 s and 2 s under it).
"""

from __future__ import annotations

import asyncio
import math

from httpserver import FlakyServer

from reliactl.backoff import GiveUp, Retry, decide
from reliactl.http import AsyncResilientClient, ResilientClient, RetryEvent
from reliactl.retry import ExponentialBackoffStrategy, FixedDelayStrategy
from reliactl.runner import RunEvent, RunOptions, RunRetryPolicy, run_command
from reliactl.testing import zero_backoff


def _exponential(max_retries: int = 2) -> ExponentialBackoffStrategy:
    # 1 s then 2 s, no jitter: what a ResilientClient slept under zero_backoff before.
    return ExponentialBackoffStrategy(
        base_delay=1.0, max_delay=2.0, max_retries=max_retries, jitter="none"
    )


# ---- the pure decision


def test_decide_gives_the_strategy_delay_and_each_reason_to_give_up() -> None:
    """Each rule of decide() in isolation: delay, not retryable, attempts, Retry-After, deadline."""
    s = _exponential(max_retries=2)
    assert decide(s, 1) == Retry(1.0, 1.0)
    assert decide(s, 2) == Retry(2.0, 2.0)
    assert decide(s, 3) is GiveUp.ATTEMPTS
    assert decide(s, 1, retryable=False) is GiveUp.NOT_RETRYABLE
    assert decide(s, 5, max_retries=9) == Retry(2.0, 2.0)  # the caller's limit wins
    assert decide(None, 1, max_retries=1) == Retry(0.0, 0.0)  # no strategy: no pause
    # Retry-After replaces the delay (the strategy's stays in `computed`), capped or refused
    assert decide(s, 1, retry_after=7.0) == Retry(7.0, 1.0)
    assert decide(s, 1, retry_after=7.0, retry_after_cap=2.0) == Retry(2.0, 1.0)
    assert decide(s, 1, retry_after=700.0, retry_after_limit=600.0) is GiveUp.RETRY_AFTER
    assert decide(s, 1, retry_after=math.nan) == Retry(1.0, 1.0)  # unusable: ignored
    # a deadline cuts the pause short ("cut") or ends the retries ("stop")
    assert decide(s, 2, now=10.0, deadline=10.5) == Retry(0.5, 2.0)
    assert decide(s, 2, now=10.0, deadline=10.0) is GiveUp.DEADLINE
    assert decide(s, 2, now=10.0, deadline=10.5, at_deadline="stop") is GiveUp.DEADLINE
    assert decide(s, 2, now=10.0, deadline=13.0, at_deadline="stop") == Retry(2.0, 2.0)
    assert GiveUp.ATTEMPTS == "attempts"  # RetryError.reason's strings are the enum's values


def test_zero_backoff_makes_decide_answer_zero_and_caps_retries() -> None:
    """Under zero_backoff every delay is 0 (also a server's Retry-After) and retries can be
    capped; the Retry-After limit still applies, so a test sees the same give-up as production."""
    s = _exponential(max_retries=5)
    with zero_backoff():
        assert decide(s, 2) == Retry(0.0, 2.0)
        assert decide(s, 1, retry_after=30.0) == Retry(0.0, 1.0)
        assert decide(s, 1, retry_after=700.0, retry_after_limit=600.0) is GiveUp.RETRY_AFTER
    with zero_backoff(max_retries=1):
        assert decide(s, 2) is GiveUp.ATTEMPTS
    assert decide(s, 2) == Retry(2.0, 2.0)


# ---- zero_backoff reaches the HTTP clients (a real server on 127.0.0.1 answering 503)


def test_zero_backoff_reaches_the_http_client_against_a_real_503_server() -> None:
    """A ResilientClient with the default sleep retries a real 503 without pausing under
    zero_backoff (it used to sleep 1 s and 2 s): every retry event says 0 and the server sees
    all three requests."""
    events: list[RetryEvent] = []
    with (
        FlakyServer(503) as srv,
        zero_backoff(),
        ResilientClient(srv.url, retry=_exponential(), on_retry=events.append) as client,
    ):
        response = client.get("/down")
    assert response.status_code == 503
    assert len(srv.requests) == 3
    assert [e.delay for e in events] == [0.0, 0.0]


def test_zero_backoff_caps_the_http_clients_retries() -> None:
    """zero_backoff(max_retries=0) caps the HTTP client's retries too: one request only."""
    with (
        FlakyServer(503) as srv,
        zero_backoff(max_retries=0),
        ResilientClient(srv.url, retry=_exponential()) as client,
    ):
        assert client.get("/down").status_code == 503
    assert len(srv.requests) == 1


def test_zero_backoff_reaches_the_async_http_client() -> None:
    """AsyncResilientClient with the default asyncio sleep: no pause under zero_backoff."""
    events: list[RetryEvent] = []

    async def fetch(url: str) -> int:
        async with AsyncResilientClient(url, retry=_exponential(), on_retry=events.append) as c:
            return (await c.get("/down")).status_code

    with FlakyServer(503) as srv, zero_backoff():
        assert asyncio.run(fetch(srv.url)) == 503
    assert len(srv.requests) == 3
    assert [e.delay for e in events] == [0.0, 0.0]


# ---- zero_backoff reaches run's retry loop


def test_zero_backoff_reaches_runs_retries() -> None:
    """run's loop (a real failing subprocess) pauses 0 between attempts under zero_backoff,
    where its strategy says 0.5 s."""
    events: list[RunEvent] = []
    options = RunOptions(
        command=("sh", "-c", "exit 3"),
        retry=RunRetryPolicy(max_retries=2, strategy=FixedDelayStrategy(base_delay=0.5)),
    )
    with zero_backoff():
        result = run_command(options, on_event=events.append)
    assert result.exit_code == 3 and len(result.attempts) == 3
    assert [a.delay_after for a in result.attempts] == [0.0, 0.0, None]
    assert [e.delay for e in events if e.kind == "retry"] == [0.0, 0.0]
