"""Alert channels against local fakes of each provider: a real HTTP server on 127.0.0.1 for
PagerDuty, Opsgenie, Telegram, Teams and ntfy, a real SMTP server (aiosmtpd) for e-mail,
with STARTTLS and implicit TLS under a test CA (trustme)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import trustme
from httpserver import FlakyServer, Reply
from smtpserver import PASSWORD, make_ca, smtp_server

from reliactl.config import ALERT_KINDS, AlertSink
from reliactl.health.alerts import Alert, AlertManager
from reliactl.health.channels import CHANNELS, ChannelError, dedup_key, preview, resolve_secret
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.health.records import RecordStore
from reliactl.state.sqlite import open_store
from reliactl.testing import FakeClock

ROUTING_KEY = "R0UTING-KEY-s3cr3t"
API_KEY = "0psgenie-KEY-s3cr3t"
BOT_TOKEN = "123456:B0T-t0ken-s3cr3t"
HANG_BOUND = 20.0  # seconds: detects a hang only


def report(clock: FakeClock, **statuses: Status) -> HealthReport:
    metrics = {
        name: HealthMetric(name, status, 97.5, f"{name} is {status.value.lower()}", unit="%")
        for name, status in statuses.items()
    }
    return HealthReport(worst(statuses.values()), metrics, clock.time(), 0.0)


def manager(sinks: list[AlertSink], tmp_path: Path, clock: FakeClock | None = None) -> AlertManager:
    kw: dict[str, Any] = {}
    if clock is not None:
        kw = {"clock": clock.time, "monotonic": clock.monotonic, "sleep": clock.async_sleep}
    return AlertManager(
        sinks, RecordStore(open_store(tmp_path / "state.db")), host="testhost", **kw
    )


def run_sequence(am: AlertManager, clock: FakeClock, *statuses: Status) -> list[Any]:
    outcomes = []
    for status in statuses:
        outcomes += asyncio.run(am.process(report(clock, disk=status)))
        clock.advance(60)
    return outcomes


@pytest.fixture
def fake() -> Iterator[FlakyServer]:
    with FlakyServer(Reply(202, {"status": "success"})) as srv:
        yield srv


def sink_for(kind: str, url: str, **kw: Any) -> AlertSink:
    """A sink of ``kind`` pointed at the fake at ``url``, with its required keys."""
    base: dict[str, Any] = {
        "pagerduty": {"url": url + "/v2/enqueue", "routing_key": ROUTING_KEY},
        "opsgenie": {"url": url, "api_key": API_KEY},
        "telegram": {"url": url, "token": BOT_TOKEN, "chat_id": "-100123"},
        "teams": {"url": url + "/workflows/abc/triggers/manual/paths/invoke?sig=S1GN"},
        "ntfy": {"url": url, "topic": "reliactl-test-topic"},
    }[kind]
    return AlertSink(name=kind, kind=kind, **{**base, **kw})


def test_the_registry_covers_every_new_kind() -> None:
    """Every configurable kind is either one of the original four or a registered channel."""
    assert set(ALERT_KINDS) == {"webhook", "discord", "slack", "command"} | set(CHANNELS)


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(
    fake: FlakyServer, tmp_path: Path
) -> None:
    """A problem triggers with the Events API v2's required fields; a WARNING->CRITICAL change
    re-triggers the same dedup_key; the recovery resolves that key."""
    clock = FakeClock()
    am = manager([sink_for("pagerduty", fake.url)], tmp_path, clock)
    outcomes = run_sequence(am, clock, Status.WARNING, Status.CRITICAL, Status.OK)
    assert all(o.delivered for o in outcomes), [o.error for o in outcomes]
    sent = fake.posted("/v2/enqueue")
    assert [e["event_action"] for e in sent] == ["trigger", "trigger", "resolve"]
    assert {e["dedup_key"] for e in sent} == {"reliactl:testhost:disk"}
    assert all(e["routing_key"] == ROUTING_KEY for e in sent)
    first, second = sent[0]["payload"], sent[1]["payload"]
    assert first["severity"] == "warning" and second["severity"] == "critical"
    for payload in (first, second):
        assert payload["source"] == "testhost" and 0 < len(payload["summary"]) <= 1024
        assert payload["severity"] in {"critical", "error", "warning", "info"}
    assert "payload" not in sent[2]


def test_opsgenie_creates_with_alias_and_closes_by_alias(fake: FlakyServer, tmp_path: Path) -> None:
    """Create carries GenieKey auth, message <= 130 and the alias; the recovery closes that
    alias with identifierType=alias."""
    clock = FakeClock()
    am = manager([sink_for("opsgenie", fake.url)], tmp_path, clock)
    outcomes = run_sequence(am, clock, Status.CRITICAL, Status.OK)
    assert all(o.delivered for o in outcomes), [o.error for o in outcomes]
    create, close = fake.requests
    assert create.path == "/v2/alerts" and create.headers["authorization"] == f"GenieKey {API_KEY}"
    body = create.json()
    assert 0 < len(body["message"]) <= 130 and body["priority"] == "P1"
    assert body["alias"] == "reliactl:testhost:disk"
    assert all(isinstance(v, str) for v in body["details"].values())
    path, _, query = close.path.partition("?")
    assert query == "identifierType=alias" and close.method == "POST"
    assert unquote(path) == "/v2/alerts/reliactl:testhost:disk/close"
    assert close.headers["authorization"] == f"GenieKey {API_KEY}"


def test_opsgenie_alias_with_a_slash_stays_one_path_segment() -> None:
    """A built-in check named after a path (disk_usage:/srv) is escaped in the close URL."""
    alert = Alert("disk_usage:/srv", Status.OK, Status.CRITICAL, "recovery", "ok", host="h")
    request = preview(sink_for("opsgenie", "http://x"), alert, API_KEY)
    assert "/v2/alerts/reliactl%3Ah%3Adisk_usage%3A%2Fsrv/close" in request.url  # type: ignore[union-attr]


def test_telegram_send_message_has_chat_id_and_text(fake: FlakyServer, tmp_path: Path) -> None:
    """sendMessage gets chat_id and text; the token is in the path, as the Bot API wants."""
    clock = FakeClock()
    am = manager([sink_for("telegram", fake.url)], tmp_path, clock)
    (outcome,) = run_sequence(am, clock, Status.CRITICAL)
    assert outcome.delivered, outcome.error
    (seen,) = fake.requests
    assert seen.path == f"/bot{BOT_TOKEN}/sendMessage"
    body = seen.json()
    assert body["chat_id"] == "-100123" and "disk" in body["text"] and len(body["text"]) <= 4096
    assert "parse_mode" not in body


def test_teams_gets_an_adaptive_card(fake: FlakyServer, tmp_path: Path) -> None:
    """The Workflows webhook's shape: a message whose attachment is an Adaptive Card."""
    clock = FakeClock()
    am = manager([sink_for("teams", fake.url)], tmp_path, clock)
    (outcome,) = run_sequence(am, clock, Status.CRITICAL)
    assert outcome.delivered, outcome.error
    (body,) = fake.posted()
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] and card["body"]
    assert card["body"][0]["color"] == "Attention"


def test_ntfy_publishes_json_with_title_priority_tags(fake: FlakyServer, tmp_path: Path) -> None:
    """JSON publish to the root: topic, title, priority 1-5, tags; a token is a Bearer header."""
    clock = FakeClock()
    sink = sink_for("ntfy", fake.url, token="tk_n7fyt0ken")
    am = manager([sink], tmp_path, clock)
    outcomes = run_sequence(am, clock, Status.CRITICAL, Status.OK)
    assert all(o.delivered for o in outcomes)
    problem, recovery = fake.requests
    assert problem.path == "/" and problem.headers["authorization"] == "Bearer tk_n7fyt0ken"
    body = problem.json()
    assert body["topic"] == "reliactl-test-topic" and "disk" in body["title"]
    assert body["priority"] == 5 and body["tags"][0] == "rotating_light"
    assert recovery.json()["tags"][0] == "white_check_mark"
    assert 1 <= recovery.json()["priority"] <= 5


@pytest.mark.parametrize("kind", ["pagerduty", "opsgenie", "telegram", "teams", "ntfy"])
def test_a_500_then_429_is_retried_within_the_bound(kind: str, tmp_path: Path) -> None:
    """500 and 429 (Retry-After honoured) are retried; the third attempt succeeds."""
    with FlakyServer(Reply(202)) as srv:
        sink = sink_for(kind, srv.url)
        path = {"pagerduty": "/v2/enqueue", "opsgenie": "/v2/alerts", "ntfy": "/"}.get(
            kind, f"/bot{BOT_TOKEN}/sendMessage" if kind == "telegram" else ""
        )
        if kind == "teams":
            path = "/workflows/abc/triggers/manual/paths/invoke"
        srv.script(path, Reply(500), Reply(429, headers={"Retry-After": "2"}))
        clock = FakeClock()
        (outcome,) = run_sequence(manager([sink], tmp_path, clock), clock, Status.CRITICAL)
        assert outcome.delivered and outcome.attempts == 3, outcome.error
        assert clock.sleeps[-1] == 2.0 and srv.count() == 3


@pytest.mark.parametrize("kind", ["pagerduty", "opsgenie", "telegram", "teams", "ntfy"])
def test_a_failing_provider_gives_one_redacted_line(kind: str, tmp_path: Path) -> None:
    """Always 500: given up after max_attempts; the error is one line without any secret."""
    with FlakyServer(Reply(500)) as srv:
        clock = FakeClock()
        am = manager([sink_for(kind, srv.url)], tmp_path, clock)
        (outcome,) = run_sequence(am, clock, Status.CRITICAL)
        assert srv.count() == 3
    text = outcome.describe()
    assert not outcome.delivered and "HTTP 500" in text and "\n" not in text
    for secret in (ROUTING_KEY, API_KEY, BOT_TOKEN, "S1GN", "abc", "reliactl-test-topic"):
        assert secret not in text


def test_a_400_is_not_retried(fake: FlakyServer, tmp_path: Path) -> None:
    """PagerDuty answers 400 to an invalid event: retrying cannot help."""
    fake.script("/v2/enqueue", Reply(400))
    clock = FakeClock()
    (outcome,) = run_sequence(
        manager([sink_for("pagerduty", fake.url)], tmp_path, clock), clock, Status.CRITICAL
    )
    assert not outcome.delivered and outcome.attempts == 1


def test_a_hanging_provider_is_bounded_by_the_sink_timeout(tmp_path: Path) -> None:
    """A provider that never answers is given up at the sink's timeout, retries included."""
    with FlakyServer(Reply(202, delay=60)) as srv:
        sink = sink_for("telegram", srv.url, timeout=1.5)
        started = time.monotonic()
        (outcome,) = asyncio.run(
            manager([sink], tmp_path).process(report(FakeClock(), d=Status.CRITICAL))
        )
        took = time.monotonic() - started
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert not outcome.delivered and "no answer within" in (outcome.error or "")
    assert BOT_TOKEN not in outcome.describe()


# ---- secrets


def test_the_secret_comes_from_inline_file_or_environment(tmp_path: Path) -> None:
    """Inline wins, then secret_file's first line, then secret_env; missing is an error."""
    key_file = tmp_path / "key"
    key_file.write_text(f"{ROUTING_KEY}\nignored\n")
    inline = AlertSink(name="p", kind="pagerduty", routing_key="inline", secret_file=str(key_file))
    assert resolve_secret(inline) == "inline"
    from_file = AlertSink(name="p", kind="pagerduty", secret_file=str(key_file))
    assert resolve_secret(from_file) == ROUTING_KEY
    from_env = AlertSink(name="p", kind="pagerduty", secret_env="PD_KEY")
    assert resolve_secret(from_env, {"PD_KEY": "k3y"}) == "k3y"
    with pytest.raises(ChannelError, match="PD_KEY is not set"):
        resolve_secret(from_env, {})
    with pytest.raises(ChannelError, match="cannot read secret_file"):
        resolve_secret(AlertSink(name="p", kind="pagerduty", secret_file=str(tmp_path / "no")))
    assert resolve_secret(AlertSink(name="n", kind="ntfy", topic="t")) == ""  # optional


def test_a_missing_secret_file_fails_the_delivery_without_sending(
    fake: FlakyServer, tmp_path: Path
) -> None:
    """An unreadable secret is a non-retried failure: nothing reaches the provider."""
    sink = AlertSink(name="p", kind="pagerduty", url=fake.url, secret_file=str(tmp_path / "no"))
    clock = FakeClock()
    (outcome,) = run_sequence(manager([sink], tmp_path, clock), clock, Status.CRITICAL)
    assert not outcome.delivered and outcome.attempts == 1
    assert "cannot read secret_file" in (outcome.error or "") and fake.count() == 0


def test_dedup_key_is_per_host_and_check() -> None:
    """The same check on two hosts is two incidents; at most PagerDuty's 255 characters."""
    a = Alert("disk", Status.CRITICAL, Status.OK, "problem", "", host="a")
    b = Alert("disk", Status.CRITICAL, Status.OK, "problem", "", host="b")
    assert dedup_key(a) != dedup_key(b)
    assert len(dedup_key(Alert("x" * 400, Status.OK, Status.OK, "problem", "", host="h"))) == 255


# ---- e-mail over a real SMTP server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    return make_ca(tmp_path_factory.mktemp("ca"))


def mail_sink(port: int, **kw: Any) -> AlertSink:
    settings: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "mail_from": "reliactl@example.com",
        "mail_to": ["oncall@example.com", "second@example.com"],
    }
    return AlertSink(name="mail", kind="email", **{**settings, **kw})


def test_email_is_sent_and_a_recovery_threads_with_its_problem(tmp_path: Path) -> None:
    """A plain SMTP server receives a well-formed message per alert, to every recipient; a
    problem and its recovery share References (one thread) and the dedup key header."""
    import email

    with smtp_server() as (inbox, port):
        clock = FakeClock()
        am = manager([mail_sink(port)], tmp_path, clock)
        outcomes = run_sequence(am, clock, Status.CRITICAL, Status.OK)
    assert all(o.delivered for o in outcomes), [o.error for o in outcomes]
    assert len(inbox.messages) == 2
    sender, recipients, raw = inbox.messages[0]
    assert sender == "reliactl@example.com"
    assert recipients == ["oncall@example.com", "second@example.com"]
    problem = email.message_from_bytes(raw)
    recovery = email.message_from_bytes(inbox.messages[1][2])
    assert "disk" in problem["Subject"] and "CRITICAL" in problem["Subject"]
    assert problem["Message-ID"] and problem["Date"]
    assert problem["References"] == recovery["References"]
    assert problem["X-Reliactl-Key"] == "reliactl:testhost:disk"
    assert "recovered" in recovery["Subject"]


def test_email_over_starttls_with_login(tmp_path: Path, ca: tuple[trustme.CA, Path]) -> None:
    """STARTTLS against a server whose certificate our tls_ca_file signed, then AUTH (which
    the server only allows over TLS) with the password from a file."""
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    with smtp_server(ca, auth=True) as (inbox, port):
        sink = mail_sink(
            port,
            smtp_security="starttls",
            smtp_user="alerts",
            secret_file=str(password_file),
            tls_ca_file=str(ca[1]),
        )
        outcome = asyncio.run(manager([sink], tmp_path).send_test("mail"))
    assert outcome.delivered, outcome.error
    assert len(inbox.messages) == 1


def test_email_over_implicit_tls(tmp_path: Path, ca: tuple[trustme.CA, Path]) -> None:
    """smtp_security: tls speaks TLS from the first byte (SMTPS)."""
    with smtp_server(ca, implicit=True) as (inbox, port):
        sink = mail_sink(port, smtp_security="tls", tls_ca_file=str(ca[1]))
        outcome = asyncio.run(manager([sink], tmp_path).send_test("mail"))
    assert outcome.delivered, outcome.error
    assert len(inbox.messages) == 1


def test_email_refuses_an_untrusted_certificate(
    tmp_path: Path, ca: tuple[trustme.CA, Path]
) -> None:
    """Without the CA the server's certificate is not trusted: not sent, not retried."""
    with smtp_server(ca) as (inbox, port):
        sink = mail_sink(port, smtp_security="starttls")
        outcome = asyncio.run(manager([sink], tmp_path).send_test("mail"))
    assert not outcome.delivered and outcome.attempts == 1
    assert "not trusted" in (outcome.error or "") and inbox.messages == []


def test_email_wrong_password_is_refused_and_never_shown(
    tmp_path: Path, ca: tuple[trustme.CA, Path]
) -> None:
    """A refused login is one non-retried failure; the password appears nowhere."""
    with smtp_server(ca, auth=True) as (inbox, port):
        sink = mail_sink(
            port,
            smtp_security="starttls",
            smtp_user="alerts",
            password="wr0ng-" + PASSWORD,
            tls_ca_file=str(ca[1]),
        )
        outcome = asyncio.run(manager([sink], tmp_path).send_test("mail"))
    assert not outcome.delivered and outcome.attempts == 1
    assert "refused the login" in (outcome.error or "") and PASSWORD not in outcome.describe()
    assert inbox.messages == []


def test_email_4xx_is_retried_5xx_is_not(tmp_path: Path) -> None:
    """451 (try later) is retried up to max_attempts; 554 (rejected) is given up at once."""
    with smtp_server() as (inbox, port):
        clock = FakeClock()
        inbox.reply = "451 4.3.0 try again later"
        (outcome,) = run_sequence(
            manager([mail_sink(port)], tmp_path, clock), clock, Status.CRITICAL
        )
        assert not outcome.delivered and outcome.attempts == 3 and "451" in (outcome.error or "")
        inbox.reply = "554 5.7.1 rejected"
        outcome = asyncio.run(manager([mail_sink(port)], tmp_path / "..").send_test("mail"))
        assert not outcome.delivered and outcome.attempts == 1 and "554" in (outcome.error or "")


def test_a_hanging_smtp_server_is_bounded_by_the_sink_timeout(tmp_path: Path) -> None:
    """A server that accepts and never greets is given up at the sink's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        sink = mail_sink(listener.getsockname()[1], timeout=1.5)
        started = time.monotonic()
        outcome = asyncio.run(manager([sink], tmp_path).send_test("mail"))
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
    assert took < HANG_BOUND, f"took {took:.1f}s"
    assert not outcome.delivered and "no answer within" in (outcome.error or "")
