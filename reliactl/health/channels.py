"""Alert channels beyond the original four: one provider each, as the provider documents it.

Each channel is a *payload builder* (pure: a sink, an alert and its secret in, the request or
the e-mail out; tests and ``doctor`` call it without sending) plus a *transport* (an HTTP POST
through the alert manager's client, or SMTP in a daemon thread). ``CHANNELS`` is the registry;
``alerts.AlertManager`` hands a sink whose kind is in it to :func:`send` and keeps everything
else (claims, cooldowns, the retry policy and the sink's deadline) to itself.

=========  ================================================  =====================================
kind       provider API                                      dedup / resolve
=========  ================================================  =====================================
email      SMTP (stdlib smtplib): STARTTLS, implicit TLS     References header threads a problem
           or plain; login with smtp_user + the secret        and its recovery (no resolve in mail)
pagerduty  Events API v2 ``POST /v2/enqueue``                 ``dedup_key``; recovery = ``resolve``
opsgenie   Alert API ``POST /v2/alerts`` (GenieKey auth)      ``alias``; recovery = ``close``
telegram   Bot API ``sendMessage`` (chat_id, text)            none (a recovery is a new message)
teams      Workflows / incoming webhook: an Adaptive Card     none
ntfy       JSON publish to the server root (topic, title,     none
           message, priority 1-5, tags)
=========  ================================================  =====================================

The dedup key is ``reliactl:<host>:<check>`` (``reliactl:*:<check>`` for a fleet-wide check,
see ``dedup_key``): one incident per check and host, which a
WARNING -> CRITICAL change updates and the recovery closes, whichever run sends it.

Secrets (routing key, API key, bot token, SMTP password, ntfy token) come from the sink's own
key, else ``secret_file`` (its first line), else the ``secret_env`` variable. Every error
message is scrubbed of the secret and of the URL (a Telegram URL carries the token) before it
leaves this module; nothing here prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from reliactl.health.model import Status
from reliactl.redact import redact_text, redact_url, scrub

if TYPE_CHECKING:
    from email.message import EmailMessage

    import httpx

    from reliactl.config import AlertSink
    from reliactl.health.alerts import Alert

__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelError",
    "HttpRequest",
    "Progress",
    "dedup_key",
    "preview",
    "resolve_secret",
    "send",
    "settings_problems",
]

# (error or None, retryable, seconds the server asked us to wait): what alerts.py expects.
SendResult = tuple[str | None, bool, float | None]
ClientFactory = Callable[[], "httpx.AsyncClient"]

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_URL = "https://api.opsgenie.com"
TELEGRAM_URL = "https://api.telegram.org"
NTFY_URL = "https://ntfy.sh"
SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}

_PD_SEVERITY = {
    Status.CRITICAL: "critical",
    Status.WARNING: "warning",
    Status.UNKNOWN: "error",
    Status.OK: "info",
}
_OPSGENIE_PRIORITY = {Status.CRITICAL: "P1", Status.WARNING: "P3", Status.UNKNOWN: "P3"}
_NTFY_PRIORITY = {Status.CRITICAL: 5, Status.WARNING: 4, Status.UNKNOWN: 3, Status.OK: 3}
_NTFY_TAG = {
    Status.CRITICAL: "rotating_light",
    Status.WARNING: "warning",
    Status.UNKNOWN: "grey_question",
    Status.OK: "white_check_mark",
}
_EMOJI = {Status.CRITICAL: "🔴", Status.WARNING: "⚠️", Status.UNKNOWN: "❔", Status.OK: "✅"}
_TEAMS_COLOR = {
    Status.CRITICAL: "Attention",
    Status.WARNING: "Warning",
    Status.UNKNOWN: "Default",
    Status.OK: "Good",
}


class ChannelError(Exception):
    """A sink that cannot be sent to as configured (no secret, an unreadable secret file)."""


@dataclass(frozen=True)
class HttpRequest:
    """One JSON POST a channel wants made (``headers`` may carry the secret: never shown)."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


if TYPE_CHECKING:  # ssl and the email package load only when a mail is sent (cron startup)
    Payload = HttpRequest | EmailMessage


@dataclass(frozen=True)
class Channel:
    """A provider: the sink key holding its secret, whether that secret is optional, whether
    a recovery resolves the provider's incident, and its payload builder."""

    kind: str
    secret_key: str | None
    secret_optional: bool
    resolves: bool
    build: Callable[[AlertSink, Alert, str], Payload]


def dedup_key(alert: Alert) -> str:
    """One incident per host and check, ``reliactl:HOST:CHECK``; one per check,
    ``reliactl:*:CHECK``, for a fleet-wide check (``alert.fleet``: whichever host sees it
    recover resolves the incident another host opened; ``*`` is in no host name, so it never
    meets a host's key). PagerDuty allows 255 characters, Opsgenie 512."""
    return f"reliactl:{'*' if alert.fleet else alert.host}:{alert.check}"[:255]


def _text(alert: Alert) -> str:
    lines = [alert.message]
    if alert.value is not None:
        lines.append(f"value: {alert.value:g}{alert.unit}")
    if alert.kind != "test":
        lines.append(f"was: {alert.previous.value}")
    lines.append(f"host: {alert.host} · at {alert.to_dict()['at']}")
    return "\n".join(lines)


def _pagerduty(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    # Events API v2: routing_key, event_action and (to resolve) dedup_key at the top level;
    # a trigger's payload needs summary (<= 1024), source and severity.
    body: dict[str, Any] = {
        "routing_key": secret,
        "event_action": "resolve" if alert.kind == "recovery" else "trigger",
        "dedup_key": dedup_key(alert),
    }
    if alert.kind != "recovery":
        body["client"] = "reliactl"
        body["payload"] = {
            "summary": f"{alert.title()}: {alert.message}"[:1024],
            "source": alert.host,
            "severity": "info" if alert.kind == "test" else _PD_SEVERITY[alert.status],
            "timestamp": alert.to_dict()["at"],
            "component": alert.check,
            "group": "reliactl health",
            "class": alert.kind,
            "custom_details": alert.to_dict(),
        }
    return HttpRequest(sink.url or PAGERDUTY_URL, body)


def _opsgenie(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    # Alert API: create needs message (<= 130); alias (<= 512) deduplicates and is what the
    # recovery closes (POST /v2/alerts/{alias}/close?identifierType=alias).
    base = (sink.url or OPSGENIE_URL).rstrip("/")
    headers = {"Authorization": f"GenieKey {secret}"}
    alias = dedup_key(alert)
    source = f"reliactl on {alert.host}"
    if alert.kind == "recovery":
        return HttpRequest(
            f"{base}/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias",
            {"source": source, "user": "reliactl", "note": f"{alert.title()}: {alert.message}"},
            headers,
        )
    details = {k: "" if v is None else str(v) for k, v in alert.to_dict().items()}
    return HttpRequest(
        f"{base}/v2/alerts",
        {
            "message": alert.title()[:130],
            "alias": alias,
            "description": _text(alert)[:15000],
            "priority": "P5"
            if alert.kind == "test"
            else _OPSGENIE_PRIORITY.get(alert.status, "P3"),
            "source": source,
            "entity": alert.host,
            "tags": ["reliactl", alert.status.value],
            "details": details,
        },
        headers,
    )


def _telegram(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    # Bot API sendMessage: chat_id and text (<= 4096) are required. No parse_mode: a check's
    # message is shown as it is, never misread as Markdown.
    base = (sink.url or TELEGRAM_URL).rstrip("/")
    text = f"{_EMOJI[alert.status]} {alert.title()}\n{_text(alert)}"
    return HttpRequest(
        f"{base}/bot{secret}/sendMessage",
        {"chat_id": sink.chat_id, "text": text[:4096], "disable_web_page_preview": True},
    )


def _teams(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    # An Adaptive Card in a "message" attachment: what Teams Workflows webhooks ("post to a
    # channel when a webhook request is received") require, and what the retiring Office 365
    # connector webhooks accept too. MessageCard works on the old connectors only.
    facts = [{"title": "Status", "value": alert.status.value}]
    if alert.kind != "test":
        facts.append({"title": "Was", "value": alert.previous.value})
    if alert.value is not None:
        facts.append({"title": "Value", "value": f"{alert.value:g}{alert.unit}"})
    facts += [
        {"title": "Host", "value": alert.host},
        {"title": "At", "value": alert.to_dict()["at"]},
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": alert.title(),
                "weight": "Bolder",
                "size": "Medium",
                "color": _TEAMS_COLOR[alert.status],
                "wrap": True,
            },
            {"type": "TextBlock", "text": alert.message[:4000], "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    return HttpRequest(
        sink.url,
        {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        },
    )


def _ntfy(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    # JSON publishing: POST to the server's root with the topic in the body; priority 1-5,
    # tags (emoji short codes are shown as emoji); an access token as a Bearer header.
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return HttpRequest(
        (sink.url or NTFY_URL).rstrip("/") + "/",
        {
            "topic": sink.topic,
            "title": alert.title(),
            "message": _text(alert)[:4000],
            "priority": 3 if alert.kind == "test" else _NTFY_PRIORITY[alert.status],
            "tags": [_NTFY_TAG[alert.status], "reliactl"],
        },
        headers,
    )


def _email(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    import hashlib
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["Subject"] = f"[reliactl] {alert.title()}"
    msg["From"] = sink.mail_from
    msg["To"] = ", ".join(sink.mail_to)
    msg["Date"] = formatdate(alert.at or None, usegmt=True)
    domain = sink.mail_from.rpartition("@")[2] or "reliactl"
    msg["Message-ID"] = make_msgid("reliactl", domain=domain)
    # Mail has no resolve: a stable thread root makes a problem, its repeats and its recovery
    # one conversation in the reader's client.
    thread = hashlib.sha256(dedup_key(alert).encode()).hexdigest()[:32]
    msg["References"] = msg["In-Reply-To"] = f"<{thread}@reliactl>"
    msg["X-Reliactl-Key"] = dedup_key(alert)
    msg["X-Reliactl-Status"] = alert.status.value
    msg.set_content(f"{_text(alert)}\n\n{json.dumps(alert.to_dict(), indent=2)}\n")
    return msg


CHANNELS: dict[str, Channel] = {
    "email": Channel("email", "password", True, False, _email),
    "pagerduty": Channel("pagerduty", "routing_key", False, True, _pagerduty),
    "opsgenie": Channel("opsgenie", "api_key", False, True, _opsgenie),
    "telegram": Channel("telegram", "token", False, False, _telegram),
    "teams": Channel("teams", None, True, False, _teams),
    "ntfy": Channel("ntfy", "token", True, False, _ntfy),
}


def resolve_secret(sink: AlertSink, environ: Mapping[str, str] | None = None) -> str:
    """The sink's secret: its own key, else ``secret_file``'s first line, else ``secret_env``;
    "" when the channel's secret is optional and none is given. Raises ChannelError."""
    channel = CHANNELS[sink.kind]
    if channel.secret_key is None:
        return ""
    inline = str(getattr(sink, channel.secret_key) or "")
    if inline:
        return inline
    if sink.secret_file:
        path = os.path.expanduser(sink.secret_file)
        try:
            with open(path, encoding="utf-8") as handle:
                line = handle.readline().strip()
        except OSError as exc:
            raise ChannelError(f"cannot read secret_file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ChannelError(f"secret_file {path} is not UTF-8 text") from None
        if not line:
            raise ChannelError(f"secret_file {path} is empty")
        return line
    if sink.secret_env:
        value = (os.environ if environ is None else environ).get(sink.secret_env, "").strip()
        if not value:
            raise ChannelError(f"environment variable {sink.secret_env} is not set")
        return value
    if channel.secret_optional and not (sink.kind == "email" and sink.smtp_user):
        return ""
    raise ChannelError(f"no {channel.secret_key}: set it, secret_file or secret_env")


def preview(sink: AlertSink, alert: Alert, secret: str) -> Payload:
    """What ``sink`` would be sent for ``alert`` (tests, ``doctor``): nothing is sent."""
    return CHANNELS[sink.kind].build(sink, alert, secret)


def settings_problems(
    sink: AlertSink, sample: Alert | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Why ``sink`` cannot deliver as configured, offline: the schema's rules, the secret
    (file readable, variable set), the CA file, and the payload built for ``sample``."""
    from reliactl.config import sink_problems

    problems = [f"{key}: {message}" for key, message in sink_problems(sink)]
    if problems or sink.kind not in CHANNELS:
        return problems
    try:
        secret = resolve_secret(sink, environ)
    except ChannelError as exc:
        return [str(exc)]
    if sink.kind == "email" and sink.tls_ca_file:
        import ssl

        try:
            ssl.create_default_context(cafile=os.path.expanduser(sink.tls_ca_file))
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"tls_ca_file {sink.tls_ca_file}: {exc}")
    try:
        if sample is not None:
            preview(sink, sample, secret)
    except (ValueError, TypeError) as exc:  # a header the e-mail library refuses, say
        problems.append(redact_text(f"payload: {exc}", [secret]))
    return problems


async def send(
    sink: AlertSink,
    alert: Alert,
    timeout: float,
    client: ClientFactory,
    *,
    progress: Progress | None = None,
) -> SendResult:
    """Deliver ``alert`` once to ``sink`` within ``timeout``: the error comes back scrubbed.
    ``progress`` learns whether an HTTP request may have left (``Progress``)."""
    secret = ""
    try:
        secret = resolve_secret(sink)
        payload = CHANNELS[sink.kind].build(sink, alert, secret)
        if isinstance(payload, HttpRequest):
            error, retryable, wait = await post_json(
                client(), payload, timeout, limit=sink.timeout, progress=progress
            )
        else:
            error, retryable, wait = await _send_mail(sink, payload, secret, timeout)
    except ChannelError as exc:
        error, retryable, wait = str(exc), False, None
    except Exception as exc:  # never let one sink break the others
        error, retryable, wait = f"{type(exc).__name__}: {exc}", False, None
    if error is None:
        return None, False, None
    return _scrub(error, sink, secret), retryable, wait


def _scrub(text: str, sink: AlertSink, secret: str) -> str:
    text = redact_text(text, [secret, sink.topic, sink.password])
    return scrub(text, sink.url) if sink.url else text


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 3600 else None


class Progress:
    """Whether an alert's POST may have left: httpx's trace hook (``extensions={"trace":
    ...}``) says when the request headers start going out. An attempt cut at the sink's
    deadline before that provably never left and may be sent again; after it, the server may
    have read the alert and is not sent it twice by one delivery (``backoff.never_sent``'s
    rule, for a cut httpx itself never sees)."""

    def __init__(self) -> None:
        self.left = False

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(".send_request_headers.started"):
            self.left = True


async def post_json(
    client: httpx.AsyncClient,
    request: HttpRequest,
    timeout: float,
    *,
    limit: float | None = None,
    progress: Progress | None = None,
) -> SendResult:
    """One JSON POST of an alert (every HTTP sink and channel): (error, retryable, retry after).

    Retryable: 429 and 5xx (the server answered: it asks for another try), and an error that
    proves the POST never left (``reliactl.backoff.never_sent``: it could not connect); any
    other error may come after the server read the alert, which is then not sent again.
    ``limit`` is the sink's configured timeout, which a timeout's message names (``timeout``
    is what is left of it for this attempt); ``progress`` learns whether the POST left.
    """
    import httpx

    from reliactl.backoff import never_sent
    from reliactl.units import format_duration

    trace = None if progress is None else {"trace": progress.trace}
    try:
        # The status and Retry-After are all we need (as for the other sinks): the body is
        # never read, so a huge or endless answer costs nothing.
        async with client.stream(
            "POST",
            request.url,
            json=request.body,
            headers=request.headers,
            timeout=timeout,
            extensions=trace,
        ) as resp:
            status = resp.status_code
            retry_after = resp.headers.get("Retry-After")
    except httpx.TimeoutException as exc:
        return f"no answer within {format_duration(limit or timeout)}", never_sent(exc), None
    except httpx.InvalidURL as exc:
        return f"invalid URL: {exc}", False, None
    except httpx.UnsupportedProtocol:
        return "invalid URL: expected http:// or https://", False, None
    except (httpx.HTTPError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}", never_sent(exc), None
    if status < 300:
        return None, False, None
    where = redact_url(request.url, path=False)
    retryable = status == 429 or status >= 500
    return f"HTTP {status} from {where}", retryable, _retry_after(retry_after)


async def _send_mail(
    sink: AlertSink, msg: EmailMessage, password: str, timeout: float
) -> SendResult:
    from reliactl.health.checks import _in_daemon_thread

    # smtplib blocks: a daemon thread, abandoned (never joined) if the server hangs past the
    # deadline the alert manager enforces around this call.
    return await _in_daemon_thread(lambda: _smtp(sink, msg, password, timeout))  # type: ignore[no-any-return]


def _smtp(sink: AlertSink, msg: EmailMessage, password: str, timeout: float) -> SendResult:
    import smtplib
    import ssl

    security = sink.smtp_security
    port = sink.smtp_port or SMTP_PORTS.get(security, 25)
    where = f"SMTP {sink.smtp_host}:{port}"
    try:
        context = ssl.create_default_context(
            cafile=os.path.expanduser(sink.tls_ca_file) if sink.tls_ca_file else None
        )
        smtp: smtplib.SMTP
        if security == "tls":
            smtp = smtplib.SMTP_SSL(sink.smtp_host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(sink.smtp_host, port, timeout=timeout)
        with smtp:
            if security == "starttls":
                # Never falls back to plain text: a server without STARTTLS is an error.
                smtp.starttls(context=context)
            if sink.smtp_user:
                smtp.login(sink.smtp_user, password)
            smtp.send_message(msg)
    except smtplib.SMTPNotSupportedError:
        return f"{where} does not offer STARTTLS (set smtp_security)", False, None
    except smtplib.SMTPAuthenticationError as exc:
        return f"{where} refused the login ({exc.smtp_code})", False, None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        retryable = all(400 <= code < 500 for code in codes)
        return f"{where} refused the recipients ({', '.join(map(str, codes))})", retryable, None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        retryable = 400 <= exc.smtp_code < 500
        return f"{where} answered {exc.smtp_code} {text.strip()[:200]}", retryable, None
    except ssl.SSLCertVerificationError as exc:
        return f"{where}: TLS certificate not trusted: {exc.verify_message}", False, None
    except TimeoutError:
        return f"{where}: no answer within {timeout:.1f}s", True, None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return f"{where}: {type(exc).__name__}: {exc}", True, None
    return None, False, None
