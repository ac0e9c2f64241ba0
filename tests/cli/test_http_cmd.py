"""`reliactl http` against a real HTTP server on 127.0.0.1 that fails on demand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import FlakyServer, Reply, refused_url

FAST = {"RELIACTL_RETRY__BASE_DELAY": "10ms", "RELIACTL_RETRY__MAX_DELAY": "20ms"}


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as srv:
        yield srv


def test_get_prints_the_body_to_stdout_and_nothing_else(run_cli, server: FlakyServer) -> None:
    server.script("/x", Reply(body=b"hello\x00bytes"))
    result = run_cli("http", "GET", server.url + "/x")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"hello\x00bytes"
    assert result.stderr == ""
    assert server.requests[0].headers["user-agent"].startswith("reliactl/")


def test_verbose_shows_headers_on_stderr_with_secrets_redacted(
    run_cli, server: FlakyServer
) -> None:
    server.script("/x", Reply(headers={"Set-Cookie": "sid=s3cr3t", "X-Trace": "t1"}))
    result = run_cli(
        "http",
        "get",
        server.url + "/x?api_key=k-verysecret",
        "-H",
        "Authorization: Bearer sk-verysecret",
        "-H",
        "X-Api-Key: k-verysecret",
        "-H",
        "Cookie: session=k-verysecret",
        "-H",
        "Accept: text/plain",
        "-v",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok"
    err = result.stderr
    assert "> GET /x?api_key=*** HTTP/1.1" in err
    assert "> Authorization: Bearer ***" in err and "> X-Api-Key: ***" in err
    assert "> Accept: text/plain" in err
    assert "< HTTP/1.1 200 OK" in err and "< X-Trace: t1" in err and "< Set-Cookie: ***" in err
    assert "verysecret" not in result.output and "s3cr3t" not in result.output
    assert server.requests[0].headers["authorization"] == "Bearer sk-verysecret"


def test_fail_exits_22_on_an_error_status_like_curl(run_cli, server: FlakyServer) -> None:
    server.script("/missing", Reply(404, body="nope"), Reply(404, body="nope"))
    result = run_cli("http", "GET", server.url + "/missing", "--fail")
    assert result.exit_code == 22, result.output
    assert result.stdout == ""
    assert "HTTP 404 Not Found" in result.stderr
    plain = run_cli("http", "GET", server.url + "/missing")
    assert plain.exit_code == 0 and plain.stdout == "nope"


def test_5xx_is_retried_and_each_retry_is_reported(run_cli, server: FlakyServer) -> None:
    server.script("/x", 503, Reply(429, headers={"Retry-After": "0"}), 200)
    result = run_cli("http", "GET", server.url + "/x", "--max-retries", "3", env=FAST)
    assert result.exit_code == 0, result.output
    assert server.count("/x") == 3
    assert "HTTP 503; retry 1" in result.stderr and "HTTP 429; retry 2" in result.stderr
    assert "(Retry-After)" in result.stderr


def test_post_is_not_retried_once_sent(run_cli, server: FlakyServer) -> None:
    server.script("/p", 503, 200)
    result = run_cli("http", "POST", server.url + "/p", "-d", "x", "--fail", env=FAST)
    assert result.exit_code == 22, result.output
    assert server.count("/p") == 1


def test_connection_refused_after_retries_exits_7(run_cli) -> None:
    url = refused_url() + "/x?token=tok-verysecret"
    result = run_cli("http", "GET", url, "--max-retries", "2", env=FAST)
    assert result.exit_code == 7, result.output
    assert "after 3 attempts" in result.stderr and "Connection refused" in result.stderr
    assert "tok-verysecret" not in result.stderr and "token=***" in result.stderr


def test_a_timeout_after_retries_exits_7(run_cli, server: FlakyServer) -> None:
    server.script("/slow", Reply(delay=1.0))
    result = run_cli(
        "http", "GET", server.url + "/slow", "--max-retries", "0", "--timeout", "100ms"
    )
    assert result.exit_code == 7, result.output
    assert "ReadTimeout" in result.stderr


def test_rate_limit_is_shared_by_invocations_and_exits_75(run_cli, server: FlakyServer) -> None:
    first = run_cli("http", "GET", server.url, "--rate", "1/minute", "--rate-wait", "0")
    assert first.exit_code == 0, first.output
    second = run_cli("http", "GET", server.url, "--rate", "1/minute", "--rate-wait", "0")
    assert second.exit_code == 75, second.output
    assert "rate limit '1/minute'" in second.stderr
    assert server.count() == 1
    other = run_cli("http", "GET", server.url, "--rate", "1/minute", "--rate-key", "other")
    assert other.exit_code == 0, other.output


def test_rate_key_alone_takes_the_configured_limit(run_cli, server: FlakyServer) -> None:
    env = {"RATE_LIMIT_OPENAI_RPM": "1"}
    args = ("http", "GET", server.url, "--rate-key", "openai", "--rate-wait", "0")
    assert run_cli(*args, env=env).exit_code == 0
    assert run_cli(*args, env=env).exit_code == 75
    unknown = run_cli("http", "GET", server.url, "--rate-key", "nope")
    assert unknown.exit_code == 2 and "no rate limit named 'nope'" in unknown.stderr


def test_data_from_a_file_and_from_stdin(run_cli, server: FlakyServer, tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x01file body")
    assert run_cli("http", "PUT", server.url + "/f", "--data", f"@{body}").exit_code == 0
    assert run_cli("http", "POST", server.url + "/s", "-d", "-", input="from stdin").exit_code == 0
    assert run_cli("http", "POST", server.url + "/t", "-d", "plain").exit_code == 0
    assert [r.body for r in server.requests] == [b"\x01file body", b"from stdin", b"plain"]


def test_json_body_is_checked_and_typed(run_cli, server: FlakyServer) -> None:
    ok = run_cli("http", "POST", server.url + "/j", "-d", '{"a": [1, 2]}', "--json-body")
    assert ok.exit_code == 0, ok.output
    seen = server.requests[0]
    assert seen.headers["content-type"] == "application/json" and seen.json() == {"a": [1, 2]}
    bad = run_cli("http", "POST", server.url + "/j", "-d", "{nope", "--json-body")
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    assert server.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("GET", "ftp://host/x"), "expected an http:// or https:// URL, got ftp:"),
        (("GET", "http:///nohost"), "expected an http:// or https:// URL with a host"),
        (("GET", "http://a..b/"), "every dot-separated part needs 1 to 63"),
        (("GET", "http://" + "a" * 64 + ".example/"), "every dot-separated part needs 1 to 63"),
        (("GET", "http://xn--a/"), "is not valid punycode"),
        (("GET", "http://caf\u00e9\u200d.example/"), "is not a valid international name"),
        (("GET", "http://h:99999/"), "URL is not valid"),
        (("GET", "http://[::1/"), "URL is not valid"),
        (("G T", "http://h/"), "METHOD must be a word"),
        (("GET", "http://h/", "-H", "Bearer sk-verysecret"), "-H/--header #1 is not"),
        (("GET", "http://h/", "-H", "X-Token: caf\u00e9"), "header X-Token: the value must be"),
        (("GET", "http://h/", "--timeout", "soon"), "--timeout:"),
        (("GET", "http://h/", "--timeout", "0s"), "--timeout: expected a positive duration"),
        (("GET", "http://h/", "--rate", "lots"), "--rate:"),
        (("GET", "http://h/", "--max-retries", "-1"), "--max-retries: expected 0 to 10000"),
        (("GET", "http://h/", "--json-body"), "--json-body needs --data"),
        (("GET", "http://h/", "-d", "@/nonexistent/file"), "No such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, args: tuple[str, ...], message: str) -> None:
    result = run_cli("http", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and "verysecret" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_http_help_lists_every_option_and_imports_no_httpx() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'http', '--help']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('httpx', 'pydantic') if m in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stderr, result.stderr
    for option in (
        "--header",
        "--data",
        "--json-body",
        "--breaker",
        "--max-retries",
        "--rate",
        "--rate-key",
        "--rate-wait",
        "--timeout",
        "--fail",
        "--verbose",
    ):
        assert option in result.stdout


def test_a_usage_error_under_http_imports_no_httpx(run_cli) -> None:
    """Rejecting bad input happens before httpx is even imported (cheap for cron)."""
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'http', 'GET', 'ftp://x/']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('EXIT', e.code, file=sys.stderr)\n"
        "print('HEAVY', [m for m in ('httpx',) if m in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "EXIT 2" in result.stderr and "HEAVY []" in result.stderr, result.stderr


def test_json_output_of_a_json_api_passes_through(run_cli, server: FlakyServer) -> None:
    server.script("/api", Reply(body={"ok": True}))
    result = run_cli("http", "GET", server.url + "/api")
    assert json.loads(result.stdout) == {"ok": True}


def test_breaker_state_persists_across_invocations_and_exits_69(
    run_cli, server: FlakyServer
) -> None:
    server.script("/down", *[500] * 10)
    env = {"CB_FAILURE_THRESHOLD": "2", **FAST}
    args = ("http", "GET", server.url + "/down", "--breaker", "svc", "--max-retries", "0", "--fail")
    assert [run_cli(*args, env=env).exit_code for _ in range(2)] == [22, 22]
    rejected = run_cli(*args, env=env)
    assert rejected.exit_code == 69, rejected.output
    assert "circuit breaker 'svc' is open" in rejected.stderr
    assert server.count("/down") == 2
    shown = run_cli("breaker", "show", "svc", "--json")
    assert json.loads(shown.stdout)["breaker"]["state"] == "open", shown.output


def test_rate_limit_max_wait_from_config_is_the_default_wait(run_cli, server: FlakyServer) -> None:
    env = {"RELIACTL_RATE_LIMIT__MAX_WAIT": "0s"}
    args = ("http", "GET", server.url, "--rate", "1/hour")
    assert run_cli(*args, env=env).exit_code == 0
    result = run_cli(*args, env=env)
    assert result.exit_code == 75, result.output
    assert "no token within 0s" in result.stderr


def test_the_default_rate_key_is_the_host_never_the_credentials(
    run_cli, server: FlakyServer
) -> None:
    url = server.url.replace("http://", "http://bob:pw-verysecret@")
    assert run_cli("http", "GET", url, "--rate", "1/hour").exit_code == 0
    result = run_cli("http", "GET", server.url, "--rate", "1/hour", "--rate-wait", "0")
    assert result.exit_code == 75, result.output  # the same budget: http:127.0.0.1:PORT
    assert f"'http:127.0.0.1:{server.port}'" in result.stderr
    assert "verysecret" not in result.output


# ---- deadlines, streaming and redaction (issue 13), through a real `reliactl http` process

HANG_BOUND = 20.0  # seconds: only detects a hang; the old code took a minute or more


def _reliactl(*args: str, timeout: float = 90.0, **kw: object) -> tuple[int, bytes, str, float]:
    """Run `python -m reliactl ARGS`: (exit code, stdout, stderr, seconds it took)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **FAST},
        **kw,  # type: ignore[arg-type]
    )
    return proc.returncode, proc.stdout, proc.stderr.decode(), time.monotonic() - started


def test_timeout_cuts_off_a_server_that_trickles_its_answer(server: FlakyServer) -> None:
    """--timeout bounds the whole attempt: a byte every 0.2 s (60 s of answer) ends at 2 s."""
    server.script("/slow", Reply(body=b"x" * 300, trickle=0.2))
    code, out, err, took = _reliactl(
        "http", "GET", server.url + "/slow", "--timeout", "2s", "--max-retries", "0"
    )
    assert code == 7, err
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert "no complete answer within the 2s deadline" in err
    assert out == b""


def test_timeout_cuts_off_a_body_that_trickles_after_the_headers(server: FlakyServer) -> None:
    """Headers at once, then a byte every 0.2 s: cut at the deadline with what came on stdout."""
    server.script("/body", Reply(body=b"y" * 300, trickle=0.2, trickle_headers=False))
    code, out, err, took = _reliactl("http", "GET", server.url + "/body", "--timeout", "2s")
    assert code == 7, err
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert "HTTP 200, then the body broke off after" in err and "2s deadline" in err
    assert 0 < len(out) < 300 and set(out) == {ord("y")}


def test_each_retry_of_a_trickling_server_has_its_own_deadline(server: FlakyServer) -> None:
    """Two attempts of 1.5 s each against a trickling server: both cut off, then exit 7."""
    server.script("/t", Reply(body=b"z" * 300, trickle=0.2), Reply(body=b"z" * 300, trickle=0.2))
    code, _, err, took = _reliactl(
        "http", "GET", server.url + "/t", "--timeout", "1500ms", "--max-retries", "1"
    )
    assert code == 7, err
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert server.count("/t") == 2 and "after 2 attempts" in err


def test_a_large_answer_is_streamed_to_stdout_not_buffered(server: FlakyServer) -> None:
    """A 120 MB answer reaches stdout whole while reliactl's peak RSS stays far below 120 MB."""
    size = 120 * 1024 * 1024
    server.script("/big", Reply(size=size))
    probe = (
        "import resource, subprocess, sys\n"
        "with open('/dev/null', 'wb') as sink:\n"
        "    p = subprocess.run([sys.executable, '-m', 'reliactl', 'http', 'GET', sys.argv[1],"
        " '--timeout', '60s'], stdout=sink)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, server.url + "/big"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, peak_kib = map(int, proc.stdout.split())
    assert code == 0, proc.stderr
    assert peak_kib * 1024 < size / 2, f"peak RSS {peak_kib} KiB for a {size} byte answer"


def test_webhook_tokens_in_url_paths_are_redacted_in_errors_and_verbose_lines(
    server: FlakyServer,
) -> None:
    """Discord and Slack webhook tokens in the path never reach stderr, as in alert messages."""
    discord = "/api/webhooks/123456/DISCORD-verysecret"
    code, _, err, _ = _reliactl("http", "POST", server.url + discord, "-d", "{}", "-v")
    assert code == 0, err
    assert "> POST /api/webhooks/123456/*** HTTP/1.1" in err
    slack = "/services/T0ABC/B0DEF/SLACKverysecret"
    code, _, err, _ = _reliactl("http", "POST", refused_url() + slack, "--max-retries", "0")
    assert code == 7, err
    assert "/services/***" in err
    assert "verysecret" not in err
