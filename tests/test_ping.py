"""Heartbeat pings against a real HTTP server on 127.0.0.1 (reliactl/ping.py)."""

from __future__ import annotations

import sys
import time

import pytest

from reliactl.ping import (
    OutputTail,
    Pinger,
    PingTargets,
    check_template,
    targets_from,
)
from reliactl.runner import RunOptions, run_command
from tests.pingserver import PingServer, closed_port_url

UUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def _pinger(url: str, **kwargs: object) -> Pinger:
    options: dict[str, object] = {"name": "backup", "host": "host-a"}
    options.update(kwargs)
    return Pinger(PingTargets(url=url), **options)  # type: ignore[arg-type]


def test_success_pings_start_then_end_with_one_rid_and_the_output_tail() -> None:
    """healthchecks.io protocol: GET URL/start?rid=R, then POST URL?rid=R with the tail."""
    with PingServer() as server:
        pinger = _pinger(f"{server.url}/{UUID}")
        assert pinger.start() is not None
        result = pinger.finish(exit_code=0, outcome="success", duration=1.5, output=b"all good\n")
    assert result is not None and result.ok, result
    start, end = server.pings
    assert (start.method, start.path) == ("GET", f"/{UUID}/start")
    assert (end.method, end.path) == ("POST", f"/{UUID}")
    assert start.rid == end.rid == pinger.rid
    assert start.at <= end.at
    assert end.body == b"all good\n"


def test_a_url_with_non_ascii_or_spaces_is_sent_percent_encoded() -> None:
    """http.client sends only ASCII: a ping URL with an accent or a space in its path or query
    reaches the server percent-encoded (as httpx and browsers send it), what was already
    encoded stays as it was, and the ping is delivered instead of failing every time."""
    with PingServer() as server:
        pinger = _pinger(f"{server.url}/caf\u00e9 x/%41?n=\u00fc")
        assert pinger.start() is not None
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1, output=b"")
    assert result is not None and result.ok, result
    assert [p.path for p in server.pings] == ["/caf%C3%A9%20x/%41/start", "/caf%C3%A9%20x/%41"]


def test_failure_pings_the_exit_code_with_only_the_last_body_limit_bytes() -> None:
    """A failed run pings URL/<exit code>; the body is the last body_limit bytes."""
    with PingServer() as server:
        pinger = Pinger(PingTargets(url=f"{server.url}/{UUID}", body_limit=10), name="j", host="h")
        pinger.start()
        pinger.finish(exit_code=3, outcome="failure", duration=0.1, output=b"0123456789ABCDEFGHIJ")
    assert [p.path for p in server.pings] == [f"/{UUID}/start", f"/{UUID}/3"]
    assert server.pings[1].body == b"ABCDEFGHIJ"


@pytest.mark.parametrize(("mode", "suffix"), [("log", "/log"), ("fail", "/fail"), ("none", None)])
def test_a_refused_run_is_reported_as_configured(mode: str, suffix: str | None) -> None:
    """Lock busy, breaker open, gate: /log, /fail or nothing, and never a start ping."""
    with PingServer() as server:
        pinger = Pinger(PingTargets(url=f"{server.url}/{UUID}", refusal=mode), name="j", host="h")
        pinger.refused(outcome="busy", exit_code=75, message="lock held by pid 42")
    if suffix is None:
        assert server.pings == []
    else:
        (ping,) = server.pings
        assert ping.path == f"/{UUID}{suffix}"
        assert b"busy" in ping.body and b"pid 42" in ping.body


def test_templates_get_every_placeholder_url_quoted() -> None:
    """--ping-start/-success/-failure templates: {name} {host} {exit_code} {duration_ms}..."""
    with PingServer() as server:
        targets = PingTargets(
            start=f"{server.url}/s/{{name}}?host={{host}}&rid={{rid}}",
            success=f"{server.url}/ok/{{name}}?ms={{duration_ms}}",
            failure=f"{server.url}/bad/{{name}}?code={{exit_code}}&o={{outcome}}",
        )
        one = Pinger(targets, name="nightly backup", host="host-a", rid="R1")
        one.start()
        one.finish(exit_code=0, outcome="success", duration=1.2345)
        two = Pinger(targets, name="n", host="h")
        two.finish(exit_code=124, outcome="timeout", duration=3)
    targets_seen = [p.target for p in server.pings]
    assert targets_seen == [
        "/s/nightly%20backup?host=host-a&rid=R1",
        "/ok/nightly%20backup?ms=1234",
        "/bad/n?code=124&o=timeout",
    ]


def test_a_down_server_is_a_warning_with_the_url_redacted() -> None:
    """Connection refused: the ping fails (retried), the warning never shows the UUID."""
    url = f"{closed_port_url()}/{UUID}"
    pinger = _pinger(url)
    pinger.start()
    result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
    assert result is not None and not result.ok
    assert result.attempts == 3
    warnings = pinger.warnings()
    assert len(warnings) == 2 and "connection refused" in warnings[1]
    text = repr(pinger.history()) + "".join(warnings)
    assert UUID not in text and "127.0.0.1" in text


def test_a_500_is_retried_within_the_bound_then_a_warning() -> None:
    """A server answering 500 is tried 1 + max_retries times; the result says HTTP 500."""
    with PingServer("500") as server:
        pinger = _pinger(f"{server.url}/{UUID}")
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
    assert result is not None and not result.ok
    assert result.error is not None and "HTTP 500" in result.error
    assert len(server.pings) == 3


def test_a_404_is_not_retried() -> None:
    """4xx (an unknown check) is final: one request, a warning."""
    with PingServer("404") as server:
        pinger = _pinger(f"{server.url}/{UUID}")
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
    assert result is not None and not result.ok and result.status == 404
    assert len(server.pings) == 1


def test_a_redirect_is_not_delivered_and_the_warning_names_where_it_points() -> None:
    """A 301 (an http->https reverse proxy) never reached the monitor: each ping is recorded
    not ok with its status, sent once (not retried, not followed), and the warning names the
    redirect target's scheme and host (never the UUID) so the operator fixes the URL."""
    with PingServer("301") as server:
        pinger = _pinger(f"{server.url}/{UUID}")
        pinger.start()
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
    assert result is not None and not result.ok and result.status == 301
    assert [(p.method, p.path) for p in server.pings] == [
        ("GET", f"/{UUID}/start"),
        ("POST", f"/{UUID}"),
    ]
    assert [r["ok"] for r in pinger.history()] == [False, False]
    warnings = pinger.warnings()
    assert len(warnings) == 2
    assert "redirected (HTTP 301) to https://monitor.example/***" in warnings[1], warnings
    assert UUID not in repr(pinger.history()) + "".join(warnings)


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_hanging_or_trickling_server_is_abandoned_at_the_bounds(mode: str) -> None:
    """start() returns within start_wait, finish() within end_timeout (generous hang bound)."""
    with PingServer(mode) as server:
        pinger = _pinger(f"{server.url}/{UUID}", start_wait=0.3, start_timeout=0.6, end_timeout=1.0)
        began = time.monotonic()
        pinger.start()
        started = time.monotonic() - began
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
        took = time.monotonic() - began
        pinger.close()
    assert started < 5 and took < 10, (started, took)  # not the server's 60 s
    assert result is not None and not result.ok
    assert [r.event for r in pinger.results] == ["start", "success"]
    assert all(not r.ok for r in pinger.results)


def test_output_tail_keeps_the_last_bytes_of_both_streams_and_passes_them_on() -> None:
    """OutputTail is a runner OutputSink: interleaved tail, everything forwarded."""
    seen: list[tuple[int, bytes]] = []

    class Inner:
        def write(self, stream: int, data: bytes) -> None:
            seen.append((stream, data))

        def end_attempt(self, attempt: int) -> None:
            seen.append((0, b"end"))

    tail = OutputTail(8, inner=Inner())
    tail.write(1, b"abcdef")
    tail.write(2, b"GHIJ")
    tail.end_attempt(1)
    assert tail.tail() == b"cdefGHIJ"
    assert seen == [(1, b"abcdef"), (2, b"GHIJ"), (0, b"end")]


def test_pings_plug_into_the_runner_and_never_change_its_exit_code() -> None:
    """The engine hook: on_event sends start, report(result) the end with the real tail."""
    with PingServer("500") as server:
        pinger = _pinger(f"{server.url}/{UUID}", end_timeout=2.0)
        tail = OutputTail()
        result = run_command(
            RunOptions(command=(sys.executable, "-c", "print('out'); raise SystemExit(7)")),
            on_event=pinger.on_event,
            output=tail,
        )
        pinger.report(result, tail.tail())
    assert result.exit_code == 7
    assert server.pings[0].path == f"/{UUID}/start"
    assert server.pings[-1].path == f"/{UUID}/7"
    assert server.pings[-1].body == b"out\n"


def test_a_lock_busy_result_reports_a_refusal_not_an_exit_code() -> None:
    """report() of an unstarted run (outcome busy) sends URL/log, no start."""

    class Busy:
        outcome, exit_code, message, duration = "busy", 75, "lock busy", 0.0

    with PingServer() as server:
        pinger = _pinger(f"{server.url}/{UUID}")
        pinger.report(Busy())
    assert [p.path for p in server.pings] == [f"/{UUID}/log"]


def test_bad_templates_and_urls_are_explained() -> None:
    """Unknown placeholders, stray braces and non-http URLs are one-line problems."""
    assert check_template("https://x/{name}/{exit_code}") is None
    problem = check_template("https://x/{nme}")
    assert problem is not None and "unknown placeholder {nme}" in problem
    assert check_template("https://x/{") is not None
    assert check_template("ftp://x/") == "expected an http:// or https:// URL, got ftp:"
    assert "1 to 63" in (check_template("https://a..b/{name}") or "")


def test_flags_over_job_settings_over_the_environment() -> None:
    """--ping flags win over the job's ping:, which wins over RELIACTL_PING_URL (used only
    when nothing names a target); a bad template is one line without the credential."""
    from reliactl.config import JobPingSettings

    env = {"RELIACTL_PING_URL": "https://hc-ping.com/" + UUID}
    assert targets_from(None, environ=env).url == env["RELIACTL_PING_URL"]
    job = JobPingSettings(url="https://hc.example/job", refusal="fail", body_limit=5)
    got = targets_from(job, environ=env)
    assert (got.url, got.refusal, got.body_limit) == ("https://hc.example/job", "fail", 5)
    assert targets_from(job, url="https://flag/x", environ=env).url == "https://flag/x"
    templated = targets_from(None, success="https://k/api/push/T?m={outcome}", environ=env)
    assert (templated.url, templated.success) == ("", "https://k/api/push/T?m={outcome}")
    assert not targets_from(None, environ={}).configured
    with pytest.raises(ValueError, match=r"unknown placeholder \{oops\}") as info:
        targets_from(None, failure=f"https://hc-ping.com/{UUID}/{{oops}}", environ={})
    assert UUID not in str(info.value)


def test_an_environment_url_that_is_not_utf8_is_refused_only_when_it_is_used() -> None:
    """RELIACTL_PING_URL carrying an undecodable byte (a surrogate, as os.environ holds it)
    is a ValueError naming the variable, its secret path hidden; it is not read (so not
    refused) when a flag or the job's settings name a target."""
    import os

    env = {"RELIACTL_PING_URL": os.fsdecode(f"https://hc-ping.com/{UUID}".encode() + b"\xff")}
    with pytest.raises(ValueError, match=r"^RELIACTL_PING_URL: expected UTF-8 text") as info:
        targets_from(None, environ=env)
    assert UUID not in str(info.value)
    assert targets_from(None, url="https://flag/x", environ=env).url == "https://flag/x"


def test_output_tail_alone_passes_output_through_to_the_real_stdout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without an inner sink the command's output still reaches reliactl's stdout/stderr (a
    real subprocess whose fd 1 is a file), and a full disk (/dev/full) never stops the run."""
    import subprocess

    code = (
        "from reliactl.ping import OutputTail\n"
        "from reliactl.runner import RunOptions, run_command\n"
        "t = OutputTail(4)\n"
        "r = run_command(RunOptions(command=('sh', '-c', 'echo hello; echo oops >&2')), output=t)\n"
        "import sys; sys.stderr.write(repr((r.exit_code, t.tail())))\n"
    )
    out = tmp_path / "out"
    with open(out, "wb") as handle:
        proc = subprocess.run(
            [sys.executable, "-c", code], stdout=handle, stderr=subprocess.PIPE, timeout=60
        )
    assert out.read_bytes() == b"hello\n"
    assert proc.stderr.startswith(b"oops\n") and proc.stderr.endswith(b"(0, b'ops\\n')")
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, timeout=60
        )
    assert proc.stderr.endswith(b"(0, b'ops\\n')")


def _ping_threads_ended(pinger: Pinger, deadline: float) -> bool:
    """Wait (until ``deadline``, monotonic) for the ping threads of ``pinger`` to end (named
    with its rid; another test's threads still ending are not this one's business)."""
    import threading

    while time.monotonic() < deadline:
        names = [t.name for t in threading.enumerate()]
        if not any(n.startswith("reliactl-ping-") and n.endswith(pinger.rid) for n in names):
            return True
        time.sleep(0.02)
    return False


def _history_lines(pinger: Pinger) -> list[str]:
    """The history's failed pings written as their warning lines are."""
    return [
        f"ping {r['event']} to {r['url']} failed: {r['error']}"
        for r in pinger.history()
        if not r["ok"]
    ]


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_ping_given_up_on_stays_given_up_when_its_thread_ends_later(mode: str) -> None:
    """A server that accepts and never answers (or answers a byte a second): the run gives up
    on the end ping at end_timeout and says so (finish() returns it not ok). Its thread ends
    later: at its own timeout, at the same deadline (hang), or after the server stopped
    trickling (each byte restarted its socket timeout, so the run's bound came first).
    Neither changes the ping's outcome: warnings() and history() say what finish() said,
    read right away or after. The outcome used to be read again at each call, so the warning
    line, the history row and --json-report of one run could each tell another story
    ("abandoned", "timed out", "RemoteDisconnected")."""
    with PingServer(mode) as server:
        # trickle: longer than the 1 s between two bytes, so only the run's bound stops it
        pinger = _pinger(f"{server.url}/{UUID}", end_timeout=0.5 if mode == "hang" else 2.5)
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
        assert result is not None and not result.ok
        first = (pinger.warnings(), pinger.history())
    assert _ping_threads_ended(pinger, time.monotonic() + 30)  # by itself or by the close
    assert first == ([result.warning()], [result.to_dict()])
    assert (pinger.warnings(), pinger.history()) == first


@pytest.mark.parametrize(
    ("start_timeout", "end_timeout"),
    [(0.6, 1.0), (2.0, 0.5)],
    ids=["start-ends-first", "end-bound-first"],
)
def test_a_start_ping_still_pending_at_the_jobs_end_and_the_end_ping_warn_once_each(
    start_timeout: float, end_timeout: float
) -> None:
    """A server that accepts and never answers, a job that ends while the start ping is
    still pending: the start ping and the end ping are one warning line each, start first,
    whether the start's own timeout ends before the end ping's bound or the end ping's bound
    runs out while it still waits for the start. Then the start is abandoned, decided when
    finish() returns: it used to stay undecided until the warnings were read, and by then
    its thread could have ended as "RemoteDisconnected" (the server closed), about 1 run
    in 3; and the end ping, never sent, is "not sent" (it said "timed out after 1
    attempt(s)")."""
    with PingServer("hang") as server:
        pinger = _pinger(
            f"{server.url}/{UUID}",
            start_wait=0.1,
            start_timeout=start_timeout,
            end_timeout=end_timeout,
        )
        assert pinger.start() is None  # still pending
        result = pinger.finish(exit_code=4, outcome="failure", duration=0.1)
        pinger.close()
    assert result is not None and not result.ok
    warnings = pinger.warnings()
    assert [w.split(" ")[1] for w in warnings] == ["start", "failure"], warnings
    assert warnings[1] == result.warning()
    assert all(UUID not in w for w in warnings)
    start, end = warnings
    if start_timeout > end_timeout:  # the run gave up on the start at the end's bound
        assert "(abandoned; the monitor may have it)" in start, warnings
        # its whole bound went on the start ping (a few us left: sent and given up on)
        assert "not sent: no time left" in end or "abandoned" in end, warnings
    else:
        assert "timed out after 1 attempt(s)" in start or "abandoned" in start, warnings
        assert "timed out after 1 attempt(s)" in end or "abandoned" in end, warnings
    assert _history_lines(pinger) == warnings


def test_the_end_of_the_job_at_the_moment_the_start_ping_times_out_loses_no_warning() -> None:
    """The start ping's own timeout and the job's end coincide (finish() called a few ms
    before, at and after the start's deadline): each time exactly one start and one end
    warning, and the warnings, the history and finish()'s result say the same."""
    with PingServer("hang") as server:
        for offset in (-0.02, -0.01, 0.0, 0.01, 0.02):
            pinger = _pinger(
                f"{server.url}/{UUID}", start_wait=0.1, start_timeout=0.4, end_timeout=0.3
            )
            began = time.monotonic()
            pinger.start()
            time.sleep(max(0.0, 0.4 + offset - (time.monotonic() - began)))
            result = pinger.finish(exit_code=4, outcome="failure", duration=0.4)
            warnings = pinger.warnings()
            assert result is not None and not result.ok
            assert [w.split(" ")[1] for w in warnings] == ["start", "failure"], (offset, warnings)
            assert warnings[1] == result.warning()
            assert _history_lines(pinger) == warnings == pinger.warnings(), offset
            pinger.close()


@pytest.mark.parametrize("hanging", ["start", "failure"])
def test_a_hanging_and_a_refusing_monitor_each_get_their_one_warning(hanging: str) -> None:
    """Templates to two places, one that never answers and one where nothing listens: the
    start and the end ping warn once each, "connection refused" for the closed port and a
    timeout or abandonment for the hanging one, scheme and host only (no path)."""
    refused = f"{closed_port_url()}/{UUID}"
    with PingServer("hang") as server:
        hang = f"{server.url}/{UUID}"
        targets = PingTargets(
            start=hang if hanging == "start" else refused,
            failure=hang if hanging == "failure" else refused,
        )
        pinger = Pinger(
            targets, name="j", host="h", start_wait=0.1, start_timeout=0.6, end_timeout=1.0
        )
        pinger.start()
        result = pinger.finish(exit_code=4, outcome="failure", duration=0.1)
        pinger.close()
    assert result is not None and not result.ok
    start, end = pinger.warnings()
    hung, refusing = (start, end) if hanging == "start" else (end, start)
    assert start.startswith("ping start ") and end.startswith("ping failure ")
    assert "connection refused" in refusing, refusing
    assert "timed out" in hung or "abandoned" in hung, hung
    assert UUID not in start + end and "127.0.0.1" in start + end


def test_reading_the_results_of_a_ping_in_flight_decides_nothing() -> None:
    """A start ping still waiting for its answer when ``results`` is read (mid-run) is shown
    as in flight, and when the monitor then answers it is delivered: reading used to give it
    up for good, so the run's later warning line said "abandoned" for a ping the monitor had
    answered within its bound."""
    with PingServer("hold") as server:  # answers once released
        pinger = _pinger(f"{server.url}/{UUID}", start_wait=0.1, start_timeout=30)
        assert pinger.start() is None
        (early,) = pinger.results
        assert not early.ok and "(in flight)" in (early.error or ""), early
        server.release.set()
        assert _ping_threads_ended(pinger, time.monotonic() + 30)
    (late,) = pinger.results
    assert late.ok and late.status == 200 and late.attempts == 1, late
    assert pinger.warnings() == []


def test_an_end_ping_with_no_time_left_is_not_sent_and_says_so() -> None:
    """An end ping whose bound is spent (end_timeout 0) is never sent: the server sees
    nothing, and its warning says "not sent", 0 attempts; it used to say "timed out after
    1 attempt(s)" (the deadline check counted as an attempt) or "abandoned"."""
    with PingServer() as server:
        pinger = _pinger(f"{server.url}/{UUID}", end_timeout=0.0)
        result = pinger.finish(exit_code=0, outcome="success", duration=0.1)
        assert _ping_threads_ended(pinger, time.monotonic() + 30)
    assert server.pings == []
    assert result is not None and not result.ok and result.attempts == 0, result
    assert result.error == "not sent: no time left of its 0.0s bound", result
    assert pinger.warnings() == [result.warning()]


@pytest.mark.parametrize("mode", ["500", "drop"])
def test_close_stops_the_retries_of_a_ping_in_flight(mode: str) -> None:
    """A monitor that answers 500 (or closes every connection at once) and a start ping
    with retries left: after close() at most the request already under way reaches the
    server (connections counted on it). close() used to skip the backoff only, so the
    retries left then went out back to back."""
    import threading

    before = set(threading.enumerate())
    with PingServer(mode) as server:
        pinger = _pinger(f"{server.url}/{UUID}", start_wait=0.1, start_timeout=60, max_retries=40)
        assert pinger.start() is None  # retrying (0.2-1 s of backoff between two)
        deadline = time.monotonic() + 30
        while not server.pings and time.monotonic() < deadline:
            time.sleep(0.01)
        pinger.close()
        at_close = len(server.pings)
        (thread,) = [
            t
            for t in threading.enumerate()
            if t.name.startswith("reliactl-ping-") and t not in before
        ]
        thread.join(30)
        assert not thread.is_alive()
        sent = len(server.pings)
    assert 1 <= at_close <= sent <= at_close + 1, (at_close, sent)
    (start,) = pinger.results
    assert not start.ok and "abandoned" in (start.error or ""), start
