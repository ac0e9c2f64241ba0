"""ResilientClient against a real HTTP server on 127.0.0.1 that fails on demand."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from httpserver import FlakyServer, Reply, refused_url

from reliactl.errors import HTTPError, HTTPStatusError, RateLimitExceeded
from reliactl.http import (
    AsyncResilientClient,
    OpenAIWrapper,
    ResilientClient,
    RetryEvent,
    is_secret_header,
    parse_retry_after,
    redact_headers,
    redact_url,
)
from reliactl.testing import FakeClock


class Fixed:
    """A deterministic backoff: ``max_retries`` retries, each after ``seconds``."""

    def __init__(self, max_retries: int = 3, seconds: float = 0.5) -> None:
        self.max_retries = max_retries
        self.seconds = seconds

    def delay(self, attempt: int, previous_delay: float | None = None) -> float:
        return self.seconds


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client(url: str, clock: FakeClock, **kwargs: Any) -> ResilientClient:
    kwargs.setdefault("retry", Fixed())
    return ResilientClient(
        url, clock=clock.monotonic, wall=clock.time, sleep=clock.sleep, timeout=5, **kwargs
    )


# ---- what is retried


def test_5xx_is_retried_until_it_succeeds(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", 503, 500, 200)
    with client(server.url, clock) as c:
        response = c.get("/x")
    assert response.status_code == 200 and response.text == "ok"
    assert server.count("/x") == 3
    assert clock.sleeps == [0.5, 0.5]


def test_retries_stop_at_max_retries_and_the_last_answer_stands(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", *[502] * 10)
    with client(server.url, clock, retry=Fixed(max_retries=2)) as c:
        response = c.get("/x")
    assert response.status_code == 502
    assert server.count("/x") == 3
    stats = c.get_stats()
    assert (stats["attempts"], stats["retries"], stats["failures"]) == (3, 2, 1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_not_retried(server: FlakyServer, clock: FakeClock, status: int) -> None:
    server.script("/x", status, 200)
    with client(server.url, clock) as c:
        assert c.get("/x").status_code == status
    assert server.count("/x") == 1
    assert clock.sleeps == []


def test_retry_zero_sends_once(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", 503, 200)
    with client(server.url, clock, retry=0) as c:
        assert c.get("/x").status_code == 503
    assert server.count("/x") == 1


def test_a_read_timeout_is_retried_for_get(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/slow", Reply(delay=1.0), 200)
    with ResilientClient(server.url, retry=Fixed(), timeout=0.2, sleep=clock.sleep) as c:
        assert c.get("/slow").status_code == 200
    assert server.count("/slow") == 2


def test_a_dropped_connection_is_retried_for_get(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", Reply(drop=True), 200)
    with client(server.url, clock) as c:
        assert c.get("/x").status_code == 200
    assert server.count("/x") == 2


# ---- Retry-After


def test_retry_after_seconds_is_the_wait(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", Reply(429, headers={"Retry-After": "7"}), 200)
    events: list[RetryEvent] = []
    with client(server.url, clock, on_retry=events.append) as c:
        assert c.get("/x").status_code == 200
    assert clock.sleeps == [7.0]
    assert events[0].retry_after and events[0].reason == "HTTP 429" and events[0].delay == 7.0


def test_retry_after_http_date_is_the_wait(server: FlakyServer, clock: FakeClock) -> None:
    when = email.utils.formatdate(clock.time() + 30, usegmt=True)
    server.script("/x", Reply(503, headers={"Retry-After": when}), 200)
    with client(server.url, clock) as c:
        assert c.get("/x").status_code == 200
    assert clock.sleeps == [pytest.approx(30.0, abs=1.0)]


def test_a_retry_after_past_the_deadline_ends_the_retries(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(429, headers={"Retry-After": "60"}), 200)
    with client(server.url, clock, retry_deadline=10) as c:
        assert c.get("/x").status_code == 429
    assert server.count("/x") == 1 and clock.sleeps == []


def test_without_a_deadline_a_huge_retry_after_is_not_waited_for(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", Reply(503, headers={"Retry-After": "86400"}), 200)
    with client(server.url, clock, max_retry_after=120) as c:
        assert c.get("/x").status_code == 503
    assert clock.sleeps == []


def test_backoff_stops_at_the_retry_deadline(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", *[503] * 10)
    with client(server.url, clock, retry=Fixed(10, 4.0), retry_deadline=10) as c:
        assert c.get("/x").status_code == 503
    assert clock.sleeps == [4.0, 4.0]  # a third wait would end at 12s > 10s
    assert server.count("/x") == 3


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    for bad in (None, "", "-5", "soon", "nan"):
        assert parse_retry_after(bad) is None


# ---- non-idempotent methods


def test_post_is_not_retried_once_the_request_was_sent(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/p", 503, 200)
    with client(server.url, clock) as c:
        assert c.post("/p", json={"a": 1}).status_code == 503
    assert server.count("/p") == 1


def test_post_is_not_retried_after_a_dropped_connection(
    server: FlakyServer, clock: FakeClock
) -> None:
    """The server read the POST and hung up: it may have acted on it, so no second POST."""
    server.script("/p", Reply(drop=True), 200)
    with client(server.url, clock) as c, pytest.raises(HTTPError) as info:
        c.patch("/p", json={"a": 1})
    assert server.count("/p") == 1
    assert info.value.sent is True and info.value.attempts == 1


def test_post_is_retried_when_it_could_not_connect(clock: FakeClock) -> None:
    with client(refused_url(), clock, retry=Fixed(2)) as c, pytest.raises(HTTPError) as info:
        c.post("/p", json={})
    assert info.value.attempts == 3 and info.value.sent is False
    assert "ConnectError" in str(info.value) and "after 3 attempts" in str(info.value)
    assert clock.sleeps == [0.5, 0.5]


def test_retry_non_idempotent_retries_post_on_5xx(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/p", 503, 200)
    with client(server.url, clock, retry_non_idempotent=True) as c:
        assert c.post("/p", content=b"x").status_code == 200
    assert server.count("/p") == 2
    assert [r.body for r in server.requests] == [b"x", b"x"]


def test_put_and_delete_are_idempotent_and_retried(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/r", 503, 200, 503, 200)
    with client(server.url, clock) as c:
        assert c.put("/r", content=b"x").status_code == 200
        assert c.delete("/r").status_code == 200
    assert server.count("/r") == 4


# ---- rate limiting


def test_the_rate_limit_waits_before_sending(server: FlakyServer, clock: FakeClock) -> None:
    with client(server.url, clock, rate_limit="2/second") as c:
        for _ in range(3):
            c.get("/x")
        stats = c.get_stats()
    assert clock.sleeps == [pytest.approx(1.0, abs=0.01)]
    assert stats["rate_limit_waits"] == 1
    assert stats["rate_limit_wait_seconds"] == pytest.approx(1.0, abs=0.01)
    assert server.count() == 3


def test_a_rate_limit_deadline_raises_without_sending(
    server: FlakyServer, clock: FakeClock
) -> None:
    with client(server.url, clock, rate_limit="1/minute", rate_limit_wait=5) as c:
        c.get("/x")
        with pytest.raises(RateLimitExceeded):
            c.get("/x")
        stats = c.get_stats()
    assert server.count() == 1
    assert (stats["requests"], stats["rate_limited"], stats["failures"]) == (2, 1, 1)


def test_retries_take_rate_limit_tokens_too(server: FlakyServer, clock: FakeClock) -> None:
    """A retry is a request to the API: it spends a token, and runs out of them."""
    server.script("/x", 503, 503, 200)
    with client(server.url, clock, rate_limit="2/minute", rate_limit_wait=1) as c:
        response = c.get("/x")
    assert response.status_code == 503  # the third attempt found no token: the last answer stands
    assert server.count("/x") == 2


# ---- statistics and health


def test_stats_match_what_the_server_counted(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/a", 503, 200)
    server.script("/b", 404)
    with client(server.url, clock) as c:
        c.get("/a")
        c.get("/b")
        c.get("/c")
        stats = c.get_stats()
    assert stats["attempts"] == server.count() == 4
    assert stats["requests"] == 3 and stats["retries"] == 1
    assert stats["successes"] == 2 and stats["failures"] == 1
    assert stats["success_rate"] == pytest.approx(2 / 3)
    assert 0 < stats["latency_p50"] <= stats["latency_p95"] <= stats["latency_p99"]


def test_stats_before_any_request() -> None:
    with ResilientClient("http://127.0.0.1:9", retry=0) as c:
        stats = c.get_stats()
    assert stats["requests"] == 0 and stats["success_rate"] == 1.0
    assert stats["latency_p99"] is None


def test_health_turns_degraded_then_unhealthy_with_errors(
    server: FlakyServer, clock: FakeClock
) -> None:
    with client(server.url, clock, retry=0) as c:
        assert asyncio.run(c.get_health_status())["status"] == "healthy"
        c.get("/ok")
        server.script("/bad", *[500] * 10)
        c.get("/bad")
        health = asyncio.run(c.get_health_status())
        assert health["status"] == "degraded" and health["recent_failures"] == 1
        for _ in range(5):
            c.get("/bad")
        health = asyncio.run(c.get_health_status())
    assert health["status"] == "unhealthy"
    assert health["recent_error_rate"] == pytest.approx(6 / 7)
    assert health["stats"]["requests"] == 7


# ---- async


def test_the_async_client_retries_and_counts_the_same(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", 503, Reply(429, headers={"Retry-After": "2"}), 200)

    async def main() -> tuple[int, dict[str, Any]]:
        async with AsyncResilientClient(
            server.url,
            retry=Fixed(),
            clock=clock.monotonic,
            wall=clock.time,
            sleep=clock.async_sleep,
            rate_limit="10/second",
        ) as c:
            response = await c.get("/x")
            return response.status_code, c.get_stats()

    status, stats = asyncio.run(main())
    assert status == 200 and server.count("/x") == 3
    assert clock.sleeps == [0.5, 2.0]
    assert stats["retries"] == 2


def test_the_async_client_does_not_retry_post_after_sending(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/p", 500, 200)

    async def main() -> int:
        async with AsyncResilientClient(server.url, retry=Fixed(), sleep=clock.async_sleep) as c:
            return (await c.post("/p", json={})).status_code

    assert asyncio.run(main()) == 500
    assert server.count("/p") == 1


# ---- secrets


def test_secret_headers_are_redacted() -> None:
    headers = {
        "Authorization": "Bearer sk-secret",
        "Cookie": "sid=abc",
        "X-Api-Key": "k123",
        "X-Auth-Token": "t",
        "Accept": "application/json",
    }
    assert dict(redact_headers(headers)) == {
        "Authorization": "Bearer ***",
        "Cookie": "***",
        "X-Api-Key": "***",
        "X-Auth-Token": "***",
        "Accept": "application/json",
    }
    assert is_secret_header("x-github-token") and not is_secret_header("content-type")


def test_secret_url_parts_are_redacted() -> None:
    url = "https://bob:hunter2@api.example/v1?api_key=sk-1&q=x&token=t0"
    assert redact_url(url) == "https://bob:***@api.example/v1?api_key=***&q=x&token=***"
    assert redact_url("http://h/p?q=1") == "http://h/p?q=1"


def test_errors_and_logs_never_show_url_secrets(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reliactl.http")
    url = refused_url() + "/p?api_key=sk-verysecret"
    with client("", clock, retry=Fixed(1)) as c, pytest.raises(HTTPError) as info:
        c.get(url)
    assert "sk-verysecret" not in str(info.value)
    assert "api_key=***" in str(info.value)
    assert caplog.records and "sk-verysecret" not in caplog.text


# ---- the OpenAI preset


def openai(server: FlakyServer, clock: FakeClock, **kwargs: Any) -> OpenAIWrapper:
    kwargs.setdefault("enable_circuit_breaker", False)
    return OpenAIWrapper(
        api_key="sk-test-abcdef123456",
        base_url=server.url + "/v1",
        retry=Fixed(),
        sleep=clock.async_sleep,
        **kwargs,
    )


def test_openai_chat_completion_sends_path_headers_and_json(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/v1/chat/completions", Reply(body={"choices": [{"message": {"content": "hi"}}]}))
    wrapper = openai(server, clock)

    async def main() -> Any:
        async with wrapper:
            return await wrapper.chat_completion(
                [{"role": "user", "content": "hello"}], model="gpt-test", temperature=0
            )

    answer = asyncio.run(main())
    assert answer["choices"][0]["message"]["content"] == "hi"
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test-abcdef123456"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0,
    }
    assert wrapper.get_stats()["success_rate"] == 1.0


def test_openai_retries_429_on_post_like_the_official_sdk(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/v1/embeddings", Reply(429, headers={"Retry-After": "1"}), Reply(body={"ok": 1}))
    wrapper = openai(server, clock)

    async def main() -> Any:
        async with wrapper:
            return await wrapper.post("/embeddings", {"input": "x"}), (
                await wrapper.get_health_status()
            )["status"]

    answer, status = asyncio.run(main())
    assert answer == {"ok": 1} and server.count("/v1/embeddings") == 2
    assert status == "healthy"


def test_openai_key_never_in_reprs_or_errors(server: FlakyServer, clock: FakeClock) -> None:
    key = "sk-test-abcdef123456"
    server.script(
        "/v1/chat/completions",
        Reply(401, body={"error": {"message": f"Incorrect API key provided: {key}"}}),
    )
    wrapper = openai(server, clock)
    assert key not in repr(wrapper) and key not in repr(wrapper.client)

    async def main() -> None:
        async with wrapper:
            await wrapper.chat_completion([{"role": "user", "content": "x"}])

    with pytest.raises(HTTPStatusError) as info:
        asyncio.run(main())
    assert info.value.status_code == 401
    assert key not in str(info.value) and "Incorrect API key provided: ***" in str(info.value)


def test_openai_rate_limit_defaults_to_rate_limit_openai_rpm(
    monkeypatch: pytest.MonkeyPatch, server: FlakyServer, clock: FakeClock
) -> None:
    monkeypatch.setenv("RATE_LIMIT_OPENAI_RPM", "7")
    from reliactl.config import get_reliability_config

    wrapper = OpenAIWrapper(
        api_key="k-1234", enable_circuit_breaker=False, config=get_reliability_config(reload=True)
    )
    assert wrapper.client.limiter is not None and wrapper.client.limiter.spec == "7/minute"
    assert wrapper.base_url == "https://api.openai.com/v1"
    explicit = OpenAIWrapper(
        api_key="k-1234", enable_circuit_breaker=False, rate_limit_requests_per_minute=60
    )
    assert explicit.client.limiter is not None and explicit.client.limiter.spec == "60/minute"


def test_openai_without_a_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="needs an API key"):
        OpenAIWrapper()


# ---- the circuit breaker


@pytest.fixture
def fresh_manager() -> Iterator[None]:
    from reliactl.breaker import circuit_manager

    circuit_manager.clear()
    yield
    circuit_manager.clear()


def breaker(clock: FakeClock, threshold: int = 3) -> Any:
    from reliactl.breaker import BreakerConfig, CircuitBreaker

    config = BreakerConfig(failure_threshold=threshold, recovery_timeout=30)
    return CircuitBreaker("svc", config, clock=clock)


def test_the_breaker_opens_and_then_rejects_without_touching_the_server(
    server: FlakyServer, clock: FakeClock
) -> None:
    from reliactl.errors import CircuitOpenError

    server.script("/x", *[500] * 3)
    with client(server.url, clock, retry=0, breaker=breaker(clock)) as c:
        assert [c.get("/x").status_code for _ in range(3)] == [500, 500, 500]
        with pytest.raises(CircuitOpenError) as info:
            c.get("/x")
        assert info.value.name == "svc" and info.value.retry_after == pytest.approx(30.0)
        assert server.count("/x") == 3
        stats = c.get_stats()
        assert stats["rejected_by_breaker"] == 1 and stats["breaker_state"] == "open"
        health = asyncio.run(c.get_health_status())
        assert health["status"] == "unhealthy" and "breaker 'svc' is open" in health["reasons"]
        clock.advance(30)  # half-open: one trial goes through and closes it
        assert c.get("/x").status_code == 200
        assert c.get_stats()["breaker_state"] == "closed"
    assert server.count("/x") == 4


def test_a_breaker_opening_mid_retries_ends_them_with_the_last_answer(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", *[503] * 10)
    with client(server.url, clock, retry=Fixed(5), breaker=breaker(clock, threshold=2)) as c:
        assert c.get("/x").status_code == 503
        stats = c.get_stats()
    assert server.count("/x") == 2
    assert stats["rejected_by_breaker"] == 1 and stats["retries"] == 1


def test_4xx_and_429_never_open_the_breaker(server: FlakyServer, clock: FakeClock) -> None:
    server.script("/x", *[404] * 5, *[Reply(429, headers={"Retry-After": "0"})] * 5)
    with client(server.url, clock, retry=0, breaker=breaker(clock, threshold=2)) as c:
        statuses = [c.get("/x").status_code for _ in range(10)]
        assert c.get_stats()["breaker_state"] == "closed"
    assert statuses == [404] * 5 + [429] * 5


def test_connection_errors_open_the_breaker(clock: FakeClock) -> None:
    from reliactl.errors import CircuitOpenError

    with client(refused_url(), clock, retry=Fixed(5), breaker=breaker(clock, threshold=2)) as c:
        with pytest.raises(HTTPError) as info:
            c.get("/x")
        assert info.value.attempts == 2  # the third attempt was refused by the open breaker
        with pytest.raises(CircuitOpenError):
            c.get("/x")


def test_a_breaker_name_uses_the_process_registry(
    server: FlakyServer, clock: FakeClock, fresh_manager: None
) -> None:
    from reliactl.breaker import circuit_manager

    with client(server.url, clock, breaker="named") as c:
        c.get("/x")
        assert c.breaker is circuit_manager.get_breaker("named")


def test_a_breaker_name_with_a_store_is_persistent(
    server: FlakyServer, clock: FakeClock, tmp_path: Any
) -> None:
    from reliactl.state.sqlite import open_store

    server.script("/x", *[500] * 10)
    env = {"CB_FAILURE_THRESHOLD": "2"}
    from reliactl.config import load

    config = load(environ=env, search=False).config
    with open_store(tmp_path / "s.db") as store:
        for _ in range(2):
            with client(server.url, clock, retry=0, breaker="svc", store=store, config=config) as c:
                c.get("/x")
        record = store.get("breaker", "svc")
    assert record is not None and record["state"] == "open"


def test_openai_wrapper_exactly_as_the_seed_builds_it(
    monkeypatch: pytest.MonkeyPatch, server: FlakyServer, fresh_manager: None
) -> None:
    """ORIGIN.md's construction, pointed at the local server by OPENAI_BASE_URL."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.script("/v1/chat/completions", Reply(body={"choices": []}))

    async def seed() -> tuple[dict[str, Any], dict[str, Any]]:
        wrapper = OpenAIWrapper(
            api_key="your-key", enable_circuit_breaker=True, rate_limit_requests_per_minute=60
        )
        await wrapper.chat_completion([{"role": "user", "content": "hi"}])
        health = await wrapper.get_health_status()
        stats = wrapper.get_stats()
        await wrapper.close()
        return health, stats

    health, stats = asyncio.run(seed())
    assert health["status"] == "healthy" and health["breaker"] == "openai"
    assert f"{stats['success_rate']:.1%}" == "100.0%"
    assert stats["rate_limit"] == "60/minute"
    assert server.requests[0].path == "/v1/chat/completions"


def test_backoff_sleeps_by_default_end_at_a_signal() -> None:
    """The default sync sleep is reliactl.retry's interruptible sleep (imported at the first
    wait since the sixth session of issue 21): a signal whose handler raises ends a 600 s
    wait at once (the bound only detects a hang)."""
    import os
    import signal
    import threading
    import time

    class Stop(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Stop

    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        with ResilientClient("http://127.0.0.1:9") as c:
            started = time.monotonic()
            timer.start()
            with pytest.raises(Stop):
                c._sleep(600)
            assert time.monotonic() - started < 60
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)


def test_public_names_are_exported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, reliactl\n"
        "assert 'httpx' not in sys.modules\n"
        "from reliactl import ResilientClient, AsyncResilientClient, OpenAIWrapper, RateLimiter\n"
        "from reliactl import HTTPError, HTTPStatusError, limiter_for\n"
        "import reliactl.ratelimit\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_the_rate_limiter_module_never_imports_httpx() -> None:
    import subprocess
    import sys

    code = "import sys, reliactl.ratelimit\nprint('httpx' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_one_failure_in_many_requests_is_still_healthy(
    server: FlakyServer, clock: FakeClock
) -> None:
    server.script("/x", 500)
    with client(server.url, clock, retry=0) as c:
        for _ in range(20):
            c.get("/x")
        health = c.health()
    assert health["status"] == "healthy" and health["recent_failures"] == 1
    assert health["reasons"] == ["1 of the last 20 requests failed"]


def test_errors_of_our_own_are_not_service_failures(server: FlakyServer, clock: FakeClock) -> None:
    with client(server.url, clock, retry=0) as c:
        for _ in range(6):
            with pytest.raises(TypeError):
                c.get("/x", bogus_argument=1)
        health = c.health()
    assert health["status"] == "healthy" and health["stats"]["failures"] == 6
    assert server.count() == 0


def test_threads_sharing_a_client_keep_exact_counts(server: FlakyServer, clock: FakeClock) -> None:
    import threading

    with client(server.url, clock, rate_limit="1000/second") as c:

        def work() -> None:
            for _ in range(25):
                c.get("/x")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = c.get_stats()
    assert stats["requests"] == stats["successes"] == stats["attempts"] == 100
    assert server.count("/x") == 100


def test_a_retry_policy_gives_its_strategy_and_deadline(
    server: FlakyServer, clock: FakeClock
) -> None:
    from reliactl.retry import RetryPolicy, make_strategy

    strategy = make_strategy("fixed", base_delay=2, max_delay=2, max_retries=5, jitter="none")
    policy = RetryPolicy(strategy=strategy, max_elapsed=5)
    server.script("/x", *[503] * 10)
    with client(server.url, clock, retry=policy) as c:
        assert c.get("/x").status_code == 503
    assert clock.sleeps == [2.0, 2.0]  # a third wait would end past max_elapsed (5s)
    with pytest.raises(TypeError, match="retry must be"):
        ResilientClient("http://h", retry="often")  # type: ignore[arg-type]


# ---- whole-request deadlines (issue 13)

HANG_BOUND = 20.0  # seconds: detects a hang only


def test_each_attempt_ends_at_its_timeout_however_slowly_the_server_answers(
    server: FlakyServer,
) -> None:
    """A server trickling a byte every 0.2 s (60 s of answer) is cut at 1 s per attempt."""
    trickle = Reply(body=b"x" * 300, trickle=0.2)
    server.script("/t", trickle, trickle)
    import time

    started = time.monotonic()
    c = ResilientClient(server.url, retry=Fixed(max_retries=1, seconds=0), timeout=1)
    with c, pytest.raises(HTTPError, match="within the 1s deadline after 2 attempts"):
        c.get("/t")
    assert time.monotonic() - started < HANG_BOUND
    assert server.count("/t") == 2


def test_the_retry_deadline_cuts_an_attempt_too(server: FlakyServer) -> None:
    """retry_deadline bounds everything: an attempt still running at it is cut off there."""
    import time

    server.script("/t", Reply(body=b"x" * 300, trickle=0.2))
    started = time.monotonic()
    c = ResilientClient(server.url, retry=Fixed(seconds=0), retry_deadline=1.0, timeout=30)
    with c, pytest.raises(HTTPError, match="deadline"):
        c.get("/t")
    assert time.monotonic() - started < HANG_BOUND
    assert server.count("/t") == 1


def test_stream_reads_the_body_within_the_attempt_deadline(server: FlakyServer) -> None:
    """stream() hands over an unread body; reading it past the deadline raises ReadTimeout."""
    import time

    import httpx

    server.script("/s", Reply(body=b"abc" * 100, trickle=0.1, trickle_headers=False))
    server.script("/ok", Reply(body=b"whole"))
    with ResilientClient(server.url, retry=0, timeout=1.0) as c:
        with c.stream("GET", "/ok") as response:
            assert response.read() == b"whole"
        started = time.monotonic()
        got = b""
        with pytest.raises(httpx.ReadTimeout, match="1s deadline"), c.stream("GET", "/s") as r:
            for chunk in r.iter_bytes():
                got += chunk
        assert time.monotonic() - started < HANG_BOUND
        assert 0 < len(got) < 300


def test_the_async_client_cuts_a_trickling_server_at_the_timeout(server: FlakyServer) -> None:
    """AsyncResilientClient: the same whole-attempt deadline, enforced with asyncio."""
    import time

    server.script("/t", Reply(body=b"x" * 300, trickle=0.2))

    async def main() -> None:
        async with AsyncResilientClient(server.url, retry=0, timeout=1.0) as c:
            with pytest.raises(HTTPError, match="1s deadline"):
                await c.get("/t")

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < HANG_BOUND
