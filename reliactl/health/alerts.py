"""Alert sinks (webhook, discord, slack, command; the other channels in ``channels``):
grouped messages, repeats, escalation, silences, acknowledgements and flap detection, with
every decision in the state store.

Each run first records what it saw in each check's problem record (status, since, state
changes, flapping; keyed ``HOST/CHECK``, or ``CHECK`` for a fleet-wide check: see
``reliactl.health.alertstate``), then, per sink, decides in ONE
atomic ``update`` of the sink's ``notify:SINK`` record what that sink must be told (new
problems, recoveries, repeats after ``repeat_every``, escalations, flapping/settled notices;
nothing for a silenced check) and claims those entries (a lease, ``claimed_until``). It
delivers them as one grouped message, and only then records each entry's ``status`` and
``sent_at``. Concurrent runs (and hosts, on a shared store) find the entries claimed and skip
them: one message, exactly once. A failed delivery releases the claims and leaves
``status``/``sent_at`` untouched, so the next run tries again. A claim whose owner died
expires with its lease.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reliactl.errors import HealthError, ReliactlError
from reliactl.health import alertstate
from reliactl.health.alertstate import AlertPolicy, Snapshot
from reliactl.health.channels import CHANNELS, HttpRequest, Progress, post_json
from reliactl.health.channels import send as send_to_channel
from reliactl.health.checks import _in_daemon_thread, hostname, run_program
from reliactl.health.model import HealthMetric, HealthReport, Status
from reliactl.redact import scrub
from reliactl.units import format_duration

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
    # One problem for the fleet (``alertstate.fleet_wide``): its provider incident is not
    # the sending host's (``channels.dedup_key``), so another host's recovery resolves it.
    fleet: bool = False

    def title(self) -> str:
        verb = {
            "recovery": "recovered",
            "repeat": "still",
            "test": "test alert",
            "flapping": "is flapping, now",
            "settled": "settled at",
            "escalation": "escalated:",
        }.get(self.kind, "is")
        if self.kind == "test":
            return f"reliactl test alert from {self.host}"
        if self.kind == "group":  # grouped_alert(): the check is the group's summary line
            return self.check
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


def summary(alerts: Sequence[Alert]) -> str:
    """One line naming what a grouped message holds: "2 problems, 1 recovery on HOST"."""
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.kind] = counts.get(alert.kind, 0) + 1
    words = {"recovery": "recoveries", "flapping": "flapping", "settled": "settled"}
    parts = [f"{n} {kind if n == 1 else words.get(kind, kind + 's')}" for kind, n in counts.items()]
    host = alerts[0].host if alerts else ""
    return f"reliactl on {host}: {', '.join(parts)}"


_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def grouped_alert(alerts: Sequence[Alert]) -> Alert:
    """One alert that stands for a group (for channels that send text): the summary as its
    title, a line per alert as its message, the worst status of the group as its status."""
    worst = max(alerts, key=lambda a: _SEVERITY[a.status])
    lines = [f"{EMOJI[a.status]} {a.title()}: {a.message}" for a in alerts]
    return Alert(
        check=summary(alerts),
        status=worst.status,
        previous=worst.previous,
        kind="group",
        message="\n".join(lines),
        host=alerts[0].host,
        at=max(a.at for a in alerts),
    )


def group_payload(sink_kind: str, alerts: Sequence[Alert]) -> dict[str, Any]:
    """The body of one grouped message; a group of one is exactly ``payload`` (as before)."""
    if len(alerts) == 1:
        return payload(sink_kind, alerts[0])
    head = summary(alerts)
    if sink_kind == "discord":
        embeds = [payload("discord", a)["embeds"][0] for a in alerts[:10]]  # Discord's limit
        more = f" (first 10 of {len(alerts)})" if len(alerts) > 10 else ""
        return {"username": "reliactl", "content": (head + more)[:2000], "embeds": embeds}
    if sink_kind == "slack":
        lines = [f"{EMOJI[a.status]} {a.title()}: {a.message}" for a in alerts]
        return {
            "text": "\n".join([head, *lines])[:39000],
            "attachments": [
                {"color": f"#{COLORS[a.status]:06x}", "title": a.title(), "text": a.message}
                for a in alerts[:20]
            ],
        }
    return {
        "source": "reliactl",
        "kind": "group",
        "summary": head,
        "host": alerts[0].host,
        "at": _iso(max(a.at for a in alerts)),
        "alerts": [a.to_dict() for a in alerts],
    }


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
        policy: AlertPolicy | None = None,
        breakers: Mapping[str, str] | None = None,
        fleet: Sequence[str] = (),
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
        self.policy = policy or AlertPolicy()
        self.breakers = dict(breakers or {})  # job name -> its breaker (silences match both)
        # Check names that are one problem for the fleet besides job:NAME (alertstate's
        # fleet_wide): the run:NAME alert of a job run under a fleet lock.
        self.fleet = frozenset(fleet)
        self._client: httpx.AsyncClient | None = None

    def sink(self, name: str) -> AlertSink:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        names = ", ".join(s.name for s in self.sinks) or "none configured"
        raise HealthError(f"no alert sink named {name!r} (sinks: {names})")

    def cooldown_of(self, sink: AlertSink) -> float:
        """How long a still-bad check waits between repeats to ``sink``: the sink's own
        ``cooldown``, else ``alerts.repeat_every``, else ``health_monitor.alert_cooldown``."""
        if sink.cooldown is not None:
            return sink.cooldown
        if self.policy.repeat_every is not None:
            return self.policy.repeat_every
        return self.default_cooldown

    # ---- the decision

    def state_key(self, check: str) -> str:
        """``check``'s alert state key on this host (``alertstate.state_key``)."""
        return alertstate.state_key(check, self.host, alertstate.fleet_wide(check, self.fleet))

    def _snapshot(self, report: HealthReport) -> tuple[Snapshot, str | None]:
        """Record the report in the problem records; read silences (and old-format records).

        A host-local check's old-form record (``problem:CHECK``, from before alert state was
        per host) that names this host is moved to this host's key, and this host takes over
        the sinks' old entries of that check (``inherit``); so does a host that sees the check
        bad where no old record says whose it was. A host that sees it OK never does: an
        upgrade sends no recovery for a problem this host never had.

        A store failure here leaves the snapshot without problems and silences (the claims
        that follow will most likely fail the same way and be reported)."""
        now = self.clock()
        snap = Snapshot({})
        for name, metric in report.metrics.items():
            key = self.state_key(name)
            snap.statuses[key] = metric.status
            snap.names[key] = name
        try:
            items = alertstate._items(self.records)
            for key, status in snap.statuses.items():
                name = snap.names[key]
                seed = None
                if key != name:  # host-local
                    seed = alertstate.old_record(items, name, self.host)
                    old_elsewhere = isinstance(items.get(alertstate.PROBLEM + name), dict)
                    if seed is not None or (not status.is_ok and not old_elsewhere):
                        snap.inherit.add(key)
                fleet = key == name
                rec = alertstate.observe(
                    self.records, name, status, now, self.policy, self.host, fleet=fleet, seed=seed
                )
                if seed is not None:
                    alertstate.drop_old_record(self.records, name, self.host)
                if rec is not None:
                    snap.problems[key] = rec
        except ReliactlError as exc:
            return snap, f"state: {exc}"
        silences = alertstate._silences(items)
        for key, name in snap.names.items():
            if alertstate.silence_for(silences, name, self.host, key == name, now, self.breakers):
                snap.silenced.add(key)
        own = (alertstate.SILENCE, alertstate.PROBLEM, alertstate.NOTIFY)
        snap.legacy = {
            k: v
            for k, v in items.items()
            if isinstance(v, dict) and ":" in k and not k.startswith(own)
        }
        return snap, None

    def _claim(
        self, sink: AlertSink, snap: Snapshot, token: str, metrics: Mapping[str, HealthMetric]
    ) -> list[Alert]:
        """Atomically decide what ``sink`` must be told now and claim those entries."""
        lease = sink.timeout + DELIVERY_GRACE + LEASE_MARGIN
        repeat = self.cooldown_of(sink)
        escalation = sink.name in self.policy.escalate_to
        decided: list[Alert] = []
        # The old "SINK:CHECK" records, by state key: a fleet-wide check's, and a host-local
        # one's where this host takes its old state over (snap.inherit).
        legacy: dict[str, dict[str, Any]] = {}
        for key, name in snap.names.items():
            rec = snap.legacy.get(f"{sink.name}:{name}")
            if rec is not None and (key == name or key in snap.inherit):
                legacy[key] = rec
        view = Snapshot(snap.statuses, snap.problems, snap.silenced, legacy, snap.names)

        def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
            # Read the clock inside the transaction: a "now" taken before waiting for the
            # store's lock can be older than a claim another run made meanwhile, and that
            # claim would then look as if it came from the future (a clock jump) and be taken
            # over: two runs would both deliver.
            decided.clear()  # the store may call this again (Redis: a lost WATCH race)
            now = self.clock()
            current = dict(rec or {})
            entries = {k: dict(v) for k, v in (current.get("checks") or {}).items()}
            changed = False

            def in_flight(entry: dict[str, Any]) -> bool:
                until = entry.get("claimed_until")
                return bool(
                    entry.get("claim")
                    and isinstance(until, (int, float))
                    and now < until <= now + lease + CLOCK_SLACK
                )  # another run is delivering it (a stale lease is not)

            for check in snap.statuses:
                entry = entries.get(check)
                old = snap.names.get(check, check)
                if entry is None and check in snap.inherit and isinstance(entries.get(old), dict):
                    # This host takes its check's entry of the old form (keyed by name) over.
                    moved = entries.pop(old)
                    entries[check] = entry = {
                        k: v for k, v in moved.items() if k not in ("claim", "claimed_until")
                    }
                    changed = True
                if entry is None and check in legacy:
                    entry = {k: v for k, v in legacy[check].items() if k in ("status", "sent_at")}
                    if check != old:  # taken over by this host: its own entry from now on
                        keep = ("status", "sent_at", "claim", "claimed_until")
                        entries[check] = {k: v for k, v in legacy[check].items() if k in keep}
                        changed = True
                sent_at = (entry or {}).get("sent_at")
                if isinstance(sent_at, (int, float)) and sent_at > now + CLOCK_SLACK:
                    # Sent "in the future": the clock was ahead then and has been set back.
                    # Count the repeat from now (as the breaker does its open time).
                    assert entry is not None
                    entries[check] = {**entry, "sent_at": now}
                    changed = True
            items = alertstate.decide(
                entries,
                view,
                now=now,
                policy=self.policy,
                repeat=repeat,
                escalation=escalation,
                in_flight=in_flight,
            )
            for item in items:
                base = entries.get(item.check)
                if base is None:
                    base = {
                        k: v
                        for k, v in legacy.get(item.check, {}).items()
                        if k in ("status", "sent_at")
                    }
                entries[item.check] = {**base, "claim": token, "claimed_until": now + lease}
                name = snap.names.get(item.check, item.check)
                metric = metrics.get(name)
                decided.append(
                    Alert(
                        name,
                        item.status,
                        item.previous,
                        item.kind,
                        metric.message if metric else "",
                        metric.value if metric else None,
                        metric.unit if metric else "",
                        self.host,
                        now,
                        fleet=item.check == name,  # a fleet-wide check's key is its name
                    )
                )
            if not items and not changed:
                return rec
            current["checks"] = entries
            return current

        self.records.update("alert", alertstate.NOTIFY + sink.name, step)
        return decided

    def _settle(
        self, sink: AlertSink, alerts: Sequence[Alert], token: str, delivered: bool
    ) -> None:
        """Record a delivery (status, sent_at) or release a failed claim."""
        done_at = self.clock()

        def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
            current = dict(rec or {})
            entries = {k: dict(v) for k, v in (current.get("checks") or {}).items()}
            for alert in alerts:
                entry = entries.setdefault(self.state_key(alert.check), {})
                if entry.get("claim") == token:
                    entry.pop("claim", None)
                    entry.pop("claimed_until", None)
                if delivered and alert.status.is_ok and alert.kind != "flapping":
                    # Told "all clear": nothing left to remember (a missing entry reads as
                    # told OK), so recovered problems do not pile up in notify:SINK.
                    if not entry.get("claim"):
                        entries.pop(self.state_key(alert.check), None)
                    else:
                        entry.update(status=alert.status.value, sent_at=done_at, flapping=False)
                elif delivered:
                    entry.update(
                        status=alert.status.value,
                        sent_at=done_at,
                        flapping=alert.kind == "flapping",
                    )
                    entry.pop("failed_at", None)
                else:
                    entry["failed_at"] = done_at
            current["checks"] = entries
            return current

        self.records.update("alert", alertstate.NOTIFY + sink.name, step)
        if delivered:
            for alert in alerts:
                key = self.state_key(alert.check)
                if key == alert.check and alert.status.is_ok and alert.kind != "flapping":
                    # A fleet-wide check falls back on its old "SINK:CHECK" record when it
                    # has no entry: that record must go with the entry, or it is told again.
                    self.records.update("alert", f"{sink.name}:{alert.check}", lambda _r: None)

    # ---- processing a report

    async def process(self, report: HealthReport) -> list[AlertOutcome]:
        """Send what the report calls for to every sink, one grouped message per sink; never
        raises for a failed sink."""
        jobs: list[tuple[AlertSink, list[Alert], str, float]] = []
        outcomes: list[AlertOutcome] = []
        snap, failure = self._snapshot(report)
        for sink in self.sinks:
            token = uuid.uuid4().hex
            claimed = self.monotonic()  # before the claim: the delivery ends by its lease
            try:
                alerts = self._claim(sink, snap, token, report.metrics)
            except ReliactlError as exc:
                outcomes.append(
                    AlertOutcome(
                        sink.name,
                        "*",
                        report.overall_status,
                        "?",
                        False,
                        0,
                        failure or f"state: {exc}",
                    )
                )
                continue
            if alerts:
                jobs.append((sink, alerts, token, claimed))
        if not jobs:
            return outcomes
        try:
            results = await asyncio.gather(*(self._deliver(s, a, t0) for s, a, _, t0 in jobs))
        finally:
            await self._close()
        for (sink, alerts, token, _), (ok, attempts, failed) in zip(jobs, results, strict=True):
            error = failed
            try:
                self._settle(sink, alerts, token, ok)
            except ReliactlError as exc:
                error = f"{failed + '; ' if failed else ''}state: {exc}"
            for alert in alerts:
                outcomes.append(
                    AlertOutcome(
                        sink.name, alert.check, alert.status, alert.kind, ok, attempts, error
                    )
                )
        return outcomes

    async def resolve(
        self, target: str, *, by: str | None = None, reason: str = ""
    ) -> list[tuple[alertstate.Problem, list[AlertOutcome]]]:
        """Close the open problems TARGET names by hand (a host renamed, replaced or gone:
        nothing will ever see them recover): each sink that was told of one gets its
        recovery (a PagerDuty/Opsgenie incident closes), then its problem record and sink
        entries go. A host-local problem needs ``HOST/CHECK`` (``alertstate.resolvable``).
        A sink whose delivery failed keeps its entry, and the problem stays, for a retry.
        Allowed for a live host too: if its check is still bad, its next run opens the
        problem again. Returns each problem matched with its deliveries."""
        who = by if by is not None else alertstate.current_user()
        found = [
            p
            for p in alertstate.open_problems(self.records)
            if alertstate.resolvable(p, target, self.breakers)
        ]
        done: list[tuple[alertstate.Problem, list[AlertOutcome]]] = []
        try:
            for problem in found:
                outcomes: list[AlertOutcome] = []
                for sink in self.sinks:
                    rec = self.records.get(alertstate.KIND, alertstate.NOTIFY + sink.name) or {}
                    entry = (rec.get("checks") or {}).get(problem.key)
                    told = Status.from_word((entry or {}).get("status")) or Status.OK
                    if told.is_ok and not (entry or {}).get("flapping"):
                        alertstate.drop_entry(self.records, sink.name, problem.key)
                        continue
                    why = f": {reason.strip()}" if reason.strip() else ""
                    alert = Alert(
                        problem.check,
                        Status.OK,
                        told,
                        "recovery",
                        f"resolved by hand by {who}{why}",
                        None,
                        "",
                        problem.host or self.host,
                        self.clock(),
                        fleet=problem.scope == "fleet",
                    )
                    ok, attempts, error = await self._deliver(sink, [alert])
                    outcomes.append(
                        AlertOutcome(
                            sink.name, problem.check, Status.OK, "recovery", ok, attempts, error
                        )
                    )
                    if ok:
                        alertstate.drop_entry(self.records, sink.name, problem.key)
                if all(o.delivered for o in outcomes):
                    self.records.update(
                        alertstate.KIND, alertstate.PROBLEM + problem.key, lambda _rec: None
                    )
                done.append((problem, outcomes))
        finally:
            await self._close()
        return done

    async def announce(self, alert: Alert) -> list[AlertOutcome]:
        """Deliver one alert that is not a status change (remediation exhausted) to every
        sink now: no cooldown and nothing recorded; the caller makes it happen once."""
        if not self.sinks:
            return []
        try:
            results = await asyncio.gather(*(self._deliver(sink, [alert]) for sink in self.sinks))
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
            ok, attempts, error = await self._deliver(sink, [alert])
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
        self, sink: AlertSink, alerts: Sequence[Alert], started: float | None = None
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
            progress = Progress()
            try:
                error, retryable, wait = await asyncio.wait_for(
                    self._send_once(sink, alerts, remaining, progress), remaining + grace
                )
            except asyncio.TimeoutError:  # cut at the deadline: a POST that left is not resent
                error = f"no answer within {format_duration(sink.timeout)}"
                retryable, wait = not progress.left, None
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
            # what is left of the sink's timeout since the claim: no attempt after the deadline
            max_elapsed=max(0.05, deadline - self.monotonic()),
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

    async def _send_channel(
        self, sink: AlertSink, alerts: Sequence[Alert], timeout: float, progress: Progress
    ) -> tuple[str | None, bool, float | None]:
        """A group to a provider channel. Where the provider keeps incidents (PagerDuty,
        Opsgenie) each check stays its own event, since a dedup key is per check (a retry sends
        the group again, which the key makes harmless); a chat or mail channel gets one message
        listing the group, as webhooks do."""
        if len(alerts) > 1 and not CHANNELS[sink.kind].resolves:
            alerts = [grouped_alert(alerts)]
        for alert in alerts:
            result = await send_to_channel(sink, alert, timeout, self._http, progress=progress)
            if result[0] is not None:
                return result
        return None, False, None

    async def _send_once(
        self, sink: AlertSink, alerts: Sequence[Alert], timeout: float, progress: Progress
    ) -> tuple[str | None, bool, float | None]:
        """(error or None, retryable, seconds the server asked us to wait); ``progress``
        learns whether an HTTP POST may have left (a cut attempt is resent only if not)."""
        body = group_payload(sink.kind, alerts)
        if sink.kind == "command":
            data = json.dumps(body).encode()
            try:
                code, output = await _in_daemon_thread(
                    lambda: run_program(sink.command, timeout, stdin=data, leave_running=True)
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
            return await self._send_channel(sink, alerts, timeout, progress)
        return await post_json(
            self._http(),
            HttpRequest(sink.url, body),
            timeout,
            limit=sink.timeout,
            progress=progress,
        )
