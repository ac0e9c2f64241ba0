"""Alert sinks (webhook, discord, slack, command; the other channels in ``channels``) with
cooldowns kept in the state store.

An alert goes out when a check's status differs from the last status *delivered* to that
sink (a problem, or a recovery), and again while it stays bad once ``cooldown`` has passed.

Exactly one process sends each alert, even when cron runs overlap: a run first claims the
(sink, check) slot with an atomic ``update`` of the "alert" record (a lease, ``claimed_until``),
delivers, and only then records ``status`` and ``sent_at``. A failed delivery releases the
claim and leaves ``status``/``sent_at`` untouched, so the next run tries again (the cooldown
advances only after a delivery succeeded). A claim whose owner died expires with its lease.

Delivery retries with ``reliactl.retry`` (exponential backoff, no jitter, at most
``max_attempts`` tries) within the sink's ``timeout``, counted from the claim and binding
each attempt whole (a trickling server is cut off): transport errors, 429 (honouring
Retry-After) and 5xx are retried, other answers are not. The claim's lease outlives the
longest possible delivery. The answer's body is never read. Failures come back as AlertOutcome
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

from reliactl.errors import HealthError, ReliactlError
from reliactl.health.channels import CHANNELS
from reliactl.health.channels import send as send_to_channel
from reliactl.health.checks import _in_daemon_thread, hostname, run_program
from reliactl.health.model import HealthMetric, HealthReport, Status
from reliactl.redact import redact_url, scrub

if TYPE_CHECKING:
    import httpx

    from reliactl.config import AlertSink
    from reliactl.health.records import RecordStore

# A delivery ends by its sink's ``timeout`` counted from the claim (every attempt and every
# wait is cut there), plus at most DELIVERY_GRACE (a command sink killed at its deadline has
# one second to hand back its output). The claim's lease is longer still by LEASE_MARGIN
# (store writes, a loaded machine): no other run can take over a delivery in flight, so a
# slow sink can never make an alert go out twice within its cooldown.
DELIVERY_GRACE = 3.0
LEASE_MARGIN = 30.0
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
        if self.kind == "remediation_exhausted":
            return f"{self.check}: remediation exhausted on {self.host} ({self.status.value})"
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
        lease = sink.timeout + DELIVERY_GRACE + LEASE_MARGIN
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
            if isinstance(sent_at, (int, float)) and sent_at > now + CLOCK_SLACK:
                # Sent "in the future": the clock was ahead then and has been set back. Count
                # the cooldown from now (as the breaker does its open time), never forever.
                current["sent_at"] = sent_at = now
                rec = current
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
        jobs: list[tuple[AlertSink, Alert, str, float]] = []
        outcomes: list[AlertOutcome] = []
        for sink in self.sinks:
            for metric in report.metrics.values():
                token = uuid.uuid4().hex
                claimed = self.monotonic()  # before the claim: the delivery ends by its lease
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
                    jobs.append((sink, alert, token, claimed))
        if not jobs:
            return outcomes
        try:
            results = await asyncio.gather(*(self._deliver(s, a, t0) for s, a, _, t0 in jobs))
        finally:
            await self._close()
        for (sink, alert, token, _), (ok, attempts, failure) in zip(jobs, results, strict=True):
            error = failure
            try:
                self._settle(sink, alert, token, ok)
            except ReliactlError as exc:
                error = f"{failure + '; ' if failure else ''}state: {exc}"
            outcomes.append(
                AlertOutcome(sink.name, alert.check, alert.status, alert.kind, ok, attempts, error)
            )
        return outcomes

    async def announce(self, alert: Alert) -> list[AlertOutcome]:
        """Deliver one alert that is not a status change (remediation exhausted) to every
        sink now: no cooldown and nothing recorded; the caller makes it happen once."""
        if not self.sinks:
            return []
        try:
            results = await asyncio.gather(*(self._deliver(sink, alert) for sink in self.sinks))
        finally:
            await self._close()
        return [
            AlertOutcome(sink.name, alert.check, alert.status, alert.kind, ok, attempts, error)
            for sink, (ok, attempts, error) in zip(self.sinks, results, strict=True)
        ]

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

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": "reliactl-health"})
        return self._client

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _deliver(
        self, sink: AlertSink, alert: Alert, started: float | None = None
    ) -> tuple[bool, int, str | None]:
        """(delivered, attempts, error) by ``started`` + the sink's timeout, retrying.

        Each attempt is cut at that deadline whatever the server does (one that trickles its
        answer a byte a second included); a command sink gets DELIVERY_GRACE more to exit."""
        from reliactl.retry import ExponentialBackoffStrategy, RetryPolicy

        deadline = (self.monotonic() if started is None else started) + sink.timeout
        attempts = 0

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            remaining = max(0.05, deadline - self.monotonic())
            grace = DELIVERY_GRACE if sink.kind == "command" else 0.0
            try:
                error, retryable, wait = await asyncio.wait_for(
                    self._send_once(sink, alert, remaining), remaining + grace
                )
            except asyncio.TimeoutError:
                error, retryable, wait = f"no answer within {remaining:.1f}s", True, None
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
                code, output = await _in_daemon_thread(
                    lambda: run_program(sink.command, timeout, stdin=data)
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
        if sink.kind in CHANNELS:  # email, pagerduty, opsgenie, telegram, teams, ntfy
            return await send_to_channel(sink, alert, timeout, self._http)
        import httpx

        client = self._http()
        try:
            # The status and Retry-After are all we need: the body is never read, so a huge
            # or endless answer costs nothing.
            async with client.stream("POST", sink.url, json=body, timeout=timeout) as resp:
                status = resp.status_code
                retry_after = resp.headers.get("Retry-After")
        except httpx.TimeoutException:
            return f"no answer within {timeout:.1f}s", True, None
        except httpx.InvalidURL as exc:
            return f"invalid URL: {exc}", False, None
        except httpx.UnsupportedProtocol:
            return "invalid URL: expected http:// or https://", False, None
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}", True, None
        if status < 300:
            return None, False, None
        where = redact_url(sink.url, path=False)  # the whole URL is the secret
        retryable = status == 429 or status >= 500
        return f"HTTP {status} from {where}", retryable, _retry_after(retry_after)
