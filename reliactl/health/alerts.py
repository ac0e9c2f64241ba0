"""Alert sinks (webhook, discord, slack, command) with cooldowns kept in the state store.

An alert goes out when a check's status differs from the last status *delivered* to that
sink (a problem, or a recovery), and again while it stays bad once ``cooldown`` has passed.

Exactly one process sends each alert, even when cron runs overlap: a run first claims the
(sink, check) slot with an atomic ``update`` of the "alert" record (a lease, ``claimed_until``),
delivers, and only then records ``status`` and ``sent_at``. A failed delivery releases the
claim and leaves ``status``/``sent_at`` untouched, so the next run tries again (the cooldown
advances only after a delivery succeeded). A claim whose owner died expires with its lease.

Delivery retries with ``reliactl.retry`` (exponential backoff, no jitter, at most
``max_attempts`` tries) within the sink's ``timeout``: transport errors, 429 (honouring
Retry-After) and 5xx are retried, other answers are not. Failures come back as AlertOutcome
values with URL secrets redacted; nothing here prints.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reliactl.errors import HealthError, ReliactlError
from reliactl.health.checks import _in_daemon_thread, hostname, run_program
from reliactl.health.model import HealthMetric, HealthReport, Status

if TYPE_CHECKING:
    import httpx

    from reliactl.config import AlertSink
    from reliactl.health.monitor import RecordStore

LEASE_MARGIN = 30.0  # a claim outlives the delivery deadline by this much
# A claim that ends further ahead than a fresh lease would came from a clock that was ahead
# (then set back): stale. Within this slack it is just another process's slightly later now.
CLOCK_SLACK = 5.0
MAX_ATTEMPTS = 3
BASE_DELAY = 0.5

COLORS = {  # discord embed colors
    Status.OK: 0x2ECC71,
    Status.WARNING: 0xF1C40F,
    Status.CRITICAL: 0xE74C3C,
    Status.UNKNOWN: 0x95A5A6,
}
EMOJI = {
    Status.OK: ":white_check_mark:",
    Status.WARNING: ":warning:",
    Status.CRITICAL: ":red_circle:",
    Status.UNKNOWN: ":grey_question:",
}


@dataclass(frozen=True)
class Alert:
    """What is sent: a check's new status (``kind`` problem, recovery, repeat or test)."""

    check: str
    status: Status
    previous: Status
    kind: str
    message: str
    value: float | None = None
    unit: str = ""
    host: str = ""
    at: float = 0.0

    def title(self) -> str:
        verb = {"recovery": "recovered", "repeat": "still", "test": "test alert"}.get(
            self.kind, "is"
        )
        if self.kind == "test":
            return f"reliactl test alert from {self.host}"
        return f"{self.check} {verb} {self.status.value} on {self.host}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "reliactl",
            "check": self.check,
            "status": self.status.value,
            "previous": self.previous.value,
            "kind": self.kind,
            "message": self.message,
            "value": self.value,
            "unit": self.unit,
            "host": self.host,
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class AlertOutcome:
    """One delivery attempt sequence to one sink."""

    sink: str
    check: str
    status: Status
    kind: str
    delivered: bool
    attempts: int
    error: str | None = None

    def describe(self) -> str:
        if self.delivered:
            return f"{self.sink}: {self.kind} alert for {self.check} ({self.status.value}) sent"
        return (
            f"alert sink {self.sink!r}: {self.kind} alert for {self.check} ({self.status.value})"
            f" not delivered after {self.attempts} attempt{'s' if self.attempts != 1 else ''}:"
            f" {self.error}"
        )


class _DeliveryFailed(Exception):
    """One failed attempt; ``retryable`` says whether another could help."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        if retry_after is not None:
            self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 3600 else None


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def redact_url(url: str) -> str:
    """``https://discord.com/***``: scheme and host only; path, query and credentials hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    tail = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def scrub(text: str, url: str) -> str:
    """``text`` with the URL (and its path and query) replaced by the redacted form."""
    if not url:
        return text
    out = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    for secret in (parts.path, parts.query, parts.password or "", parts.username or ""):
        if secret and len(secret) > 1:
            out = out.replace(secret, "/***" if secret.startswith("/") else "***")
    return out


def payload(sink_kind: str, alert: Alert) -> dict[str, Any]:
    """The JSON body a sink of ``sink_kind`` receives."""
    if sink_kind == "discord":
        fields = [{"name": "status", "value": alert.status.value, "inline": True}]
        if alert.kind != "test":
            fields.append({"name": "previous", "value": alert.previous.value, "inline": True})
        if alert.value is not None:
            fields.append(
                {"name": "value", "value": f"{alert.value:g}{alert.unit}", "inline": True}
            )
        return {
            "username": "reliactl",
            "embeds": [
                {
                    "title": alert.title()[:256],
                    "description": alert.message[:4000],
                    "color": COLORS[alert.status],
                    "fields": fields,
                    "timestamp": _iso(alert.at),
                    "footer": {"text": f"reliactl health · {alert.kind}"},
                }
            ],
        }
    if sink_kind == "slack":
        color = f"#{COLORS[alert.status]:06x}"
        return {
            "text": f"{EMOJI[alert.status]} {alert.title()}: {alert.message}",
            "attachments": [{"color": color, "title": alert.title(), "text": alert.message}],
        }
    return alert.to_dict()


class AlertManager:
    """Decide, claim, deliver and record alerts for a report's checks."""

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        records: RecordStore,
        *,
        default_cooldown: float = 900.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        host: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = BASE_DELAY,
    ) -> None:
        self.sinks = list(sinks)
        self.records = records
        self.default_cooldown = default_cooldown
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.host = host or hostname()
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self._client: httpx.AsyncClient | None = None

    def sink(self, name: str) -> AlertSink:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        names = ", ".join(s.name for s in self.sinks) or "none configured"
        raise HealthError(f"no alert sink named {name!r} (sinks: {names})")

    def cooldown_of(self, sink: AlertSink) -> float:
        return sink.cooldown if sink.cooldown is not None else self.default_cooldown

    # ---- the decision

    def _claim(self, sink: AlertSink, metric: HealthMetric, token: str) -> Alert | None:
        """Atomically decide whether ``metric`` needs an alert to ``sink`` and claim it."""
        lease = sink.timeout + LEASE_MARGIN
        cooldown = self.cooldown_of(sink)
        status = metric.status
        decided: list[Alert] = []

        def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
            # Read the clock inside the transaction: a "now" taken before waiting for the
            # store's lock can be older than a claim another run made meanwhile, and that
            # claim would then look as if it came from the future (a clock jump) and be taken
            # over: two runs would both deliver.
            decided.clear()  # the store may call this again (Redis: a lost WATCH race)
            now = self.clock()
            current = dict(rec or {})
            previous = Status.from_word(current.get("status")) or Status.OK
            until = current.get("claimed_until")
            if (
                current.get("claim")
                and isinstance(until, (int, float))
                and now < until <= now + lease + CLOCK_SLACK
            ):
                return rec  # another run is delivering this very alert (a stale lease is not)
            sent_at = current.get("sent_at")
            if status != previous:
                kind = "recovery" if status.is_ok else "problem"
            elif not status.is_ok and isinstance(sent_at, (int, float)):
                if max(0.0, now - sent_at) < cooldown:
                    return rec
                kind = "repeat"
            else:
                return rec
            current.update(claim=token, claimed_until=now + lease)
            decided.append(
                Alert(
                    metric.name,
                    status,
                    previous,
                    kind,
                    metric.message,
                    metric.value,
                    metric.unit,
                    self.host,
                    now,
                )
            )
            return current

        self.records.update("alert", f"{sink.name}:{metric.name}", step)
        return decided[0] if decided else None

    def _settle(self, sink: AlertSink, alert: Alert, token: str, delivered: bool) -> None:
        """Record a delivery (status, sent_at) or release a failed claim."""
        done_at = self.clock()

        def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
            current = dict(rec or {})
            ours = current.get("claim") == token
            if ours:
                current.pop("claim", None)
                current.pop("claimed_until", None)
            if delivered:
                current.update(status=alert.status.value, sent_at=done_at)
                current.pop("failed_at", None)
            else:
                current["failed_at"] = done_at
            return current

        self.records.update("alert", f"{sink.name}:{alert.check}", step)

    # ---- processing a report

    async def process(self, report: HealthReport) -> list[AlertOutcome]:
        """Send what the report calls for to every sink; never raises for a failed sink."""
        jobs: list[tuple[AlertSink, Alert, str]] = []
        outcomes: list[AlertOutcome] = []
        for sink in self.sinks:
            for metric in report.metrics.values():
                token = uuid.uuid4().hex
                try:
                    alert = self._claim(sink, metric, token)
                except ReliactlError as exc:
                    outcomes.append(
                        AlertOutcome(
                            sink.name, metric.name, metric.status, "?", False, 0, f"state: {exc}"
                        )
                    )
                    continue
                if alert is not None:
                    jobs.append((sink, alert, token))
        if not jobs:
            return outcomes
        try:
            results = await asyncio.gather(*(self._deliver(s, a) for s, a, _ in jobs))
        finally:
            await self._close()
        for (sink, alert, token), (ok, attempts, failure) in zip(jobs, results, strict=True):
            error = failure
            try:
                self._settle(sink, alert, token, ok)
            except ReliactlError as exc:
                error = f"{failure + '; ' if failure else ''}state: {exc}"
            outcomes.append(
                AlertOutcome(sink.name, alert.check, alert.status, alert.kind, ok, attempts, error)
            )
        return outcomes

    async def send_test(self, sink_name: str) -> AlertOutcome:
        """Send a sample alert to one sink now (no cooldown, nothing recorded)."""
        sink = self.sink(sink_name)
        alert = Alert(
            "reliactl-test",
            Status.WARNING,
            Status.OK,
            "test",
            f"This is a test alert from reliactl on {self.host}; if you can read it,"
            f" the '{sink.name}' sink works.",
            42.0,
            "%",
            self.host,
            self.clock(),
        )
        try:
            ok, attempts, error = await self._deliver(sink, alert)
        finally:
            await self._close()
        return AlertOutcome(sink.name, alert.check, alert.status, "test", ok, attempts, error)

    # ---- delivery

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _deliver(self, sink: AlertSink, alert: Alert) -> tuple[bool, int, str | None]:
        """(delivered, attempts, error) within the sink's deadline, retrying transient errors."""
        from reliactl.retry import ExponentialBackoffStrategy, RetryPolicy

        deadline = self.monotonic() + sink.timeout
        attempts = 0

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            remaining = max(0.05, deadline - self.monotonic())
            try:
                error, retryable, wait = await self._send_once(sink, alert, remaining)
            except Exception as exc:  # never let one sink break the others
                error, retryable, wait = f"{type(exc).__name__}: {exc}", False, None
            if error is not None:
                raise _DeliveryFailed(scrub(error, sink.url), retryable, wait)

        policy = RetryPolicy(
            strategy=ExponentialBackoffStrategy(
                base_delay=self.base_delay,
                max_delay=max(self.base_delay, sink.timeout / 2),
                max_retries=self.max_attempts - 1,
                jitter="none",
            ),
            max_elapsed=sink.timeout,
            retry_on=lambda exc: isinstance(exc, _DeliveryFailed) and exc.retryable,
            reraise=True,
            async_sleep=self.sleep,
            clock=self.monotonic,
            name=f"alert sink {sink.name}",
        )
        try:
            await policy.call_async(attempt)
        except _DeliveryFailed as failed:
            return False, attempts, str(failed)
        return True, attempts, None

    async def _send_once(
        self, sink: AlertSink, alert: Alert, timeout: float
    ) -> tuple[str | None, bool, float | None]:
        """(error or None, retryable, seconds the server asked us to wait)."""
        body = payload(sink.kind, alert)
        if sink.kind == "command":
            data = json.dumps(body).encode()
            try:
                code, output = await asyncio.wait_for(
                    _in_daemon_thread(lambda: run_program(sink.command, timeout, stdin=data)),
                    timeout + 2.0,
                )
            except FileNotFoundError:
                return f"{sink.command[0]}: command not found", False, None
            except PermissionError:
                return f"{sink.command[0]}: permission denied", False, None
            if code == 0:
                return None, False, None
            first = output.strip().splitlines()[0][:200] if output.strip() else ""
            what = "timed out" if code is None else f"exited with status {code}"
            return f"{sink.command[0]} {what}{': ' + first if first else ''}", True, None
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": "reliactl-health"})
        try:
            response = await self._client.post(sink.url, json=body, timeout=timeout)
        except httpx.TimeoutException:
            return f"no answer within {timeout:.1f}s", True, None
        except httpx.InvalidURL as exc:
            return f"invalid URL: {exc}", False, None
        except httpx.UnsupportedProtocol:
            return "invalid URL: expected http:// or https://", False, None
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True, None
        if response.status_code < 300:
            return None, False, None
        where = redact_url(sink.url)
        retryable = response.status_code == 429 or response.status_code >= 500
        wait = _retry_after(response.headers.get("Retry-After"))
        return f"HTTP {response.status_code} from {where}", retryable, wait
