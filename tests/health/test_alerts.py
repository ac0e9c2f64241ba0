"""Alerts, counted by a real HTTP server: once per change, cooldowns, claims, failures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from httpserver import CountingServer, FlakyServer, Reply, SilentServer, refused_url

from reliactl.config import AlertSink
from reliactl.errors import HealthError
from reliactl.health.alerts import AlertManager, AlertOutcome, payload, scrub
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.health.records import RecordStore
from reliactl.redact import redact_url
from reliactl.state.sqlite import open_store
from reliactl.testing import FakeClock

SECRET = "/api/webhooks/123/s3cr3t-t0ken"


def report(clock: FakeClock, **statuses: Status) -> HealthReport:
    metrics = {
        name: HealthMetric(name, status, 97.5, f"{name} is {status.value.lower()}", unit="%")
        for name, status in statuses.items()
    }
    return HealthReport(worst(statuses.values()), metrics, clock.time(), 0.0)


def manager(sinks: list[AlertSink], tmp_path: Path, clock: FakeClock, **kw: object) -> AlertManager:
    store = open_store(tmp_path / "state.db")
    return AlertManager(
        sinks,
        RecordStore(store),
        clock=clock.time,
        monotonic=clock.monotonic,
        sleep=clock.async_sleep,
        host="testhost",
        **kw,  # type: ignore[arg-type]
    )


def told(am: AlertManager, sink: str, check: str) -> dict[str, object] | None:
    """What ``sink`` was last told about ``check`` (its entry in the ``notify:SINK`` record)."""
    record = am.records.get("alert", f"notify:{sink}") or {}
    entry = (record.get("checks") or {}).get(am.state_key(check))
    return None if entry is None else dict(entry)


def hook(server: CountingServer, **kw: object) -> AlertSink:
    return AlertSink(name="hook", kind="webhook", url=server.url + SECRET, **kw)  # type: ignore[arg-type]


def test_one_alert_per_status_change(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    am = manager([hook(server, cooldown=600)], tmp_path, clock)
    sequence = [
        Status.OK,
        Status.CRITICAL,
        Status.CRITICAL,
        Status.WARNING,
        Status.WARNING,
        Status.OK,
        Status.OK,
    ]
    for status in sequence:
        asyncio.run(am.process(report(clock, disk=status)))
        clock.advance(60)
    posted = server.posted()
    assert [(p["status"], p["previous"], p["kind"]) for p in posted] == [
        ("CRITICAL", "OK", "problem"),
        ("WARNING", "CRITICAL", "problem"),
        ("OK", "WARNING", "recovery"),
    ]
    assert posted[0]["check"] == "disk" and posted[0]["host"] == "testhost"
    assert posted[0]["message"] == "disk is critical" and posted[0]["value"] == 97.5


def test_no_repeat_within_the_cooldown_one_after_it(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    am = manager([hook(server, cooldown=600)], tmp_path, clock)
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    clock.advance(599)
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 1
    clock.advance(2)
    outcomes = asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 2 and outcomes[0].kind == "repeat" and outcomes[0].delivered
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 2
    assert [p["kind"] for p in server.posted()] == ["problem", "repeat"]


def test_a_500_does_not_advance_the_cooldown(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    am = manager([hook(server)], tmp_path, clock)
    server.status = 500
    (outcome,) = asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert not outcome.delivered and outcome.attempts == 3
    assert server.count == 3 and clock.sleeps == [0.5, 1.0]  # retried, without really sleeping
    assert "HTTP 500" in (outcome.error or "")
    assert "s3cr3t" not in (outcome.error or "") and "s3cr3t" not in outcome.describe()
    record = told(am, "hook", "disk")
    assert record is not None and "sent_at" not in record and "claim" not in record
    server.status = 200
    clock.advance(1)
    (outcome,) = asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert outcome.delivered and outcome.kind == "problem"
    assert server.count == 4
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 4


def test_a_client_error_is_not_retried(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    server.status = 404
    (outcome,) = asyncio.run(
        manager([hook(server)], tmp_path, clock).process(report(clock, x=Status.WARNING))
    )
    assert not outcome.delivered and outcome.attempts == 1 and server.count == 1


def test_a_claim_blocks_others_until_its_lease_expires(
    server: CountingServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    am = manager([hook(server, timeout=10)], tmp_path, clock)
    now = clock.time()
    am.records.update(
        "alert", "hook:disk", lambda _r: {"claim": "crashed-run", "claimed_until": now + 40}
    )
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 0
    clock.advance(41)
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 1


def test_a_claim_made_a_moment_later_by_another_run_is_respected(
    server: CountingServer, tmp_path: Path
) -> None:
    """Regression (8 concurrent runs sent 2 alerts): a claim whose end lies a little beyond
    this run's own now + lease was made by a run whose clock read a moment later; it is
    live, not a claim from a clock that jumped."""
    clock = FakeClock()
    am = manager([hook(server, timeout=10)], tmp_path, clock)
    later = clock.time() + 0.5  # the other run read the clock half a second after us
    am.records.update(
        "alert", "hook:disk", lambda _r: {"claim": "other-run", "claimed_until": later + 40}
    )
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 0


def test_a_claim_from_a_clock_set_back_is_stale(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    am = manager([hook(server, timeout=10)], tmp_path, clock)
    ahead = clock.time() + 3600  # written while the clock was an hour ahead
    am.records.update(
        "alert", "hook:disk", lambda _r: {"claim": "old-run", "claimed_until": ahead + 40}
    )
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 1


def test_a_failing_sink_does_not_stop_the_others(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    broken = AlertSink(name="broken", kind="webhook", url="http://127.0.0.1:9/hook?token=abc")
    outcomes = asyncio.run(
        manager([broken, hook(server)], tmp_path, clock).process(report(clock, d=Status.CRITICAL))
    )
    by_sink = {o.sink: o for o in outcomes}
    assert by_sink["hook"].delivered and not by_sink["broken"].delivered
    assert "token=abc" not in (by_sink["broken"].error or "")
    assert server.count == 1


CONFIG = """\
health_monitor:
  system_checks: []
  checks:
    - name: broken
      kind: command
      command: [{python}, -c, "raise SystemExit(2)"]
  alerts:
    - name: hook
      kind: webhook
      url: {url}
state:
  path: {db}
"""


def test_two_concurrent_runs_deliver_once(server: CountingServer, tmp_path: Path) -> None:
    server.delay = 1.0  # the first delivery is still in flight when the second run decides
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        CONFIG.format(
            python=json.dumps(sys.executable), url=server.url + SECRET, db=tmp_path / "s.db"
        )
    )
    cmd = [sys.executable, "-m", "reliactl", "--config", str(cfg), "health", "--json"]
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [2, 2], results
    assert server.count == 1
    again = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    assert again.returncode == 2 and server.count == 1


@pytest.mark.stress
def test_many_concurrent_runs_deliver_once(server: CountingServer, tmp_path: Path) -> None:
    server.delay = 0.5
    cfg = tmp_path / "reliactl.yaml"
    url = server.url + SECRET
    cfg.write_text(CONFIG.format(python=json.dumps(sys.executable), url=url, db=tmp_path / "s.db"))
    cmd = [sys.executable, "-m", "reliactl", "--config", str(cfg), "health", "--quiet"]
    for round_ in range(3):
        procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE) for _ in range(8)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [2] * 8, errors
        assert server.count == 1, (round_, [e.decode() for e in errors if e])


def test_discord_and_slack_payloads_are_colored_by_status() -> None:
    clock = FakeClock()
    metric = report(clock, disk=Status.CRITICAL).metrics["disk"]
    from reliactl.health.alerts import Alert

    alert = Alert("disk", Status.CRITICAL, Status.OK, "problem", metric.message, 97.5, "%", "h", 0)
    embed = payload("discord", alert)["embeds"][0]
    assert embed["color"] == 0xE74C3C and "disk is CRITICAL on h" in embed["title"]
    assert {"name": "value", "value": "97.5%", "inline": True} in embed["fields"]
    slack = payload("slack", alert)
    assert slack["attachments"][0]["color"] == "#e74c3c" and "disk" in slack["text"]
    ok = Alert("disk", Status.OK, Status.CRITICAL, "recovery", "fine", None, "", "h", 0)
    assert payload("discord", ok)["embeds"][0]["color"] == 0x2ECC71


def test_discord_sink_posts_an_embed(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    sink = AlertSink(name="d", kind="discord", url=server.url + SECRET)
    asyncio.run(manager([sink], tmp_path, clock).process(report(clock, disk=Status.WARNING)))
    (body,) = server.posted()
    assert body["embeds"][0]["color"] == 0xF1C40F
    assert server.requests[0].path == SECRET


def test_command_sink_gets_the_alert_on_stdin(tmp_path: Path) -> None:
    clock = FakeClock()
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    sink = AlertSink(name="cmd", kind="command", command=[sys.executable, "-c", script])
    (outcome,) = asyncio.run(
        manager([sink], tmp_path, clock).process(report(clock, disk=Status.CRITICAL))
    )
    assert outcome.delivered, outcome.error
    assert json.loads(out.read_text())["status"] == "CRITICAL"
    failing = AlertSink(name="f", kind="command", command=[sys.executable, "-c", "exit(1)"])
    (outcome,) = asyncio.run(
        manager([failing], tmp_path / "..", clock).process(report(clock, disk=Status.CRITICAL))
    )
    assert not outcome.delivered and "status 1" in (outcome.error or "")


def test_send_test_alert(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    am = manager([hook(server)], tmp_path, clock)
    outcome = asyncio.run(am.send_test("hook"))
    assert outcome.delivered and server.posted()[0]["kind"] == "test"
    with pytest.raises(HealthError, match="no alert sink named 'nope'"):
        asyncio.run(am.send_test("nope"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://discord.com/api/webhooks/1/tok", "https://discord.com/***"),
        ("https://user:pw@hooks.example.com:8443/x?token=1", "https://hooks.example.com:8443/***"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("not a url", "***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """A sink's URL is a secret as a whole: scheme and host shown, nothing else."""
    assert redact_url(url, path=False) == shown


def test_scrub_hides_path_and_query_in_error_text() -> None:
    url = "https://hooks.slack.com/services/T0/B0/XYZ?sig=abc"
    text = f"ConnectError: cannot reach {url} (path /services/T0/B0/XYZ, sig=abc)"
    cleaned = scrub(text, url)
    assert "XYZ" not in cleaned and "sig=abc" not in cleaned and "hooks.slack.com" in cleaned


def test_delivery_gives_up_at_the_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    with CountingServer(status=503) as srv:
        sink = AlertSink(name="h", kind="webhook", url=srv.url, timeout=1.0)
        am = manager([sink], tmp_path, clock, max_attempts=10)
        started = time.monotonic()
        (outcome,) = asyncio.run(am.process(report(clock, d=Status.CRITICAL)))
    assert not outcome.delivered and sum(clock.sleeps) <= 1.0
    assert outcome.attempts < 10 and time.monotonic() - started < 5


def test_retry_after_of_a_429_is_honoured(server: CountingServer, tmp_path: Path) -> None:
    clock = FakeClock()
    server.status = 429
    server.headers["Retry-After"] = "3"
    (outcome,) = asyncio.run(
        manager([hook(server)], tmp_path, clock).process(report(clock, d=Status.CRITICAL))
    )
    assert not outcome.delivered and outcome.attempts == 3
    assert clock.sleeps == [3.0, 3.0]


# ---- deadlines, leases and clocks (issue 13)

HANG_BOUND = 20.0  # seconds: detects a hang only


def real_manager(sinks: list[AlertSink], tmp_path: Path, **kw: object) -> AlertManager:
    """An AlertManager on real clocks (deadlines are enforced by asyncio in real time)."""
    return AlertManager(
        sinks,
        RecordStore(open_store(tmp_path / "state.db")),
        host="testhost",
        **kw,  # type: ignore[arg-type]
    )


def test_a_trickling_webhook_is_cut_off_at_the_sink_timeout(tmp_path: Path) -> None:
    """A sink answering a byte every 0.2 s is given up at its 1.5 s timeout, retries included."""
    with FlakyServer(Reply(body=b"ok" * 150, trickle=0.2)) as srv:
        sink = AlertSink(name="slow", kind="webhook", url=srv.url + SECRET, timeout=1.5)
        started = time.monotonic()
        (outcome,) = asyncio.run(
            real_manager([sink], tmp_path).process(report(FakeClock(), d=Status.CRITICAL))
        )
        took = time.monotonic() - started
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert not outcome.delivered and "no answer within" in (outcome.error or "")
    assert "s3cr3t" not in outcome.describe()


def test_a_post_the_server_read_is_never_sent_again_and_the_timeout_is_named(
    tmp_path: Path,
) -> None:
    """A receiver that reads the alert and never answers (slow but working) gets it once per
    sink: a webhook, a slack sink and a channel (ntfy) each make exactly one connection, and
    the failure names the configured 3s timeout (it named the 0.1 s left for a second try,
    which used to resend the alert)."""
    claims = 0

    def slow_claims() -> float:
        """Real time, but each sink's claim (the first three reads, before any delivery)
        took a second, as on a loaded store: the delivery starts 1 s into its 3 s."""
        nonlocal claims
        claims += 1
        return time.monotonic() - (1.0 if claims <= 3 else 0.0)

    with SilentServer() as srv:
        sinks = [
            AlertSink(name="hook", kind="webhook", url=srv.url + SECRET, timeout=3.0),
            AlertSink(name="chat", kind="slack", url=srv.url + "/services/T/B/x", timeout=3.0),
            AlertSink(name="push", kind="ntfy", url=srv.url, topic="reliactl-t", timeout=3.0),
        ]
        started = time.monotonic()
        am = real_manager(sinks, tmp_path, monotonic=slow_claims)
        outcomes = asyncio.run(am.process(report(FakeClock(), d=Status.CRITICAL)))
        took = time.monotonic() - started
        assert srv.connections == 3, srv.requests
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert sorted(o.sink for o in outcomes) == ["chat", "hook", "push"]
    for outcome in outcomes:
        assert not outcome.delivered and outcome.attempts == 1, outcome.describe()
        assert outcome.error == "no answer within 3s", outcome.describe()
        assert "not delivered after 1 attempt: no answer within 3s" in outcome.describe()


def test_a_post_that_provably_never_left_is_still_retried(tmp_path: Path) -> None:
    """Connection refused proves the alert never left: retried up to max_attempts (the
    backoff on a fake clock); a connection dropped after the server read the request is not
    (it may have been acted on)."""
    clock = FakeClock()
    refused = AlertSink(name="down", kind="webhook", url=refused_url() + SECRET)
    (outcome,) = asyncio.run(
        manager([refused], tmp_path, clock).process(report(clock, d=Status.CRITICAL))
    )
    assert not outcome.delivered and outcome.attempts == 3, outcome.describe()
    with FlakyServer(Reply(drop=True)) as srv:
        dropped = AlertSink(name="drop", kind="webhook", url=srv.url + SECRET)
        (outcome,) = asyncio.run(
            manager([dropped], tmp_path, clock).process(report(clock, e=Status.CRITICAL))
        )
        assert not outcome.delivered and outcome.attempts == 1, outcome.describe()
        assert srv.count() == 1


def test_the_claim_outlives_the_longest_delivery(tmp_path: Path) -> None:
    """While a slow sink is being tried, its claim holds: a second run sends nothing; and the
    delivery is over (cut at the sink's timeout) long before the claim's lease ends."""
    with FlakyServer(Reply(body=b"ok" * 300, trickle=0.2)) as srv:
        sink = AlertSink(name="slow", kind="webhook", url=srv.url + SECRET, timeout=2.0)
        first = real_manager([sink], tmp_path)
        outcomes: list[AlertOutcome] = []
        worker = threading.Thread(
            target=lambda: outcomes.extend(
                asyncio.run(first.process(report(FakeClock(), d=Status.CRITICAL)))
            )
        )
        worker.start()
        deadline = time.monotonic() + 10
        while srv.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        record = told(first, "slow", "d")
        assert record is not None and record.get("claim"), record
        second = real_manager([sink], tmp_path)
        assert asyncio.run(second.process(report(FakeClock(), d=Status.CRITICAL))) == []
        worker.join(HANG_BOUND)
        assert not worker.is_alive(), "the delivery outlived its deadline"
        assert time.time() < record["claimed_until"], "the delivery outlived its claim"  # type: ignore[operator]
        assert srv.count() >= 1 and len(outcomes) == 1 and not outcomes[0].delivered


def test_a_sent_at_in_the_future_does_not_suppress_repeats_forever(
    server: CountingServer, tmp_path: Path
) -> None:
    """An alert recorded while the clock was a year ahead: the cooldown counts from now."""
    clock = FakeClock()
    am = manager([hook(server, cooldown=600)], tmp_path, clock)
    ahead = clock.time() + 365 * 86400
    am.records.update("alert", "hook:disk", lambda _r: {"status": "CRITICAL", "sent_at": ahead})
    asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert server.count == 0  # within a cooldown of now: no repeat yet
    record = told(am, "hook", "disk")
    assert record is not None and record["sent_at"] <= clock.time()  # type: ignore[operator]
    clock.advance(601)
    (outcome,) = asyncio.run(am.process(report(clock, disk=Status.CRITICAL)))
    assert outcome.delivered and outcome.kind == "repeat" and server.count == 1
