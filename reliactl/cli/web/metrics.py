"""serve's /metrics: a prometheus_client collector over the last round and the state store.

Names follow health/formats.py (``reliactl_health_*``, values in base units by the same
``_family`` table); breakers are ``reliactl_breaker_*``, jobs (runs) ``reliactl_job_*``, the
store's rate limiters ``reliactl_ratelimit_*``, serve's alert deliveries
``reliactl_alert_deliveries_total``, its connection guard ``reliactl_serve_connections_*``
(closes by reason, open now, the bound), ``reliactl_serve_answers_refused_total`` and
``reliactl_serve_answer_bytes_buffered`` (the answer budget) and
``reliactl_serve_log_lines_dropped_total`` (stderr not read). (Rate limiter waits are not
in the store: no waits_total.)
Counters (``transitions_total``, ``runs_total``) count what this serve process has seen in
the store's history since it started, so they only ever grow (a restart is a counter reset,
as Prometheus expects); they are never the size of the bounded history, which can shrink.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from reliactl.health.formats import PROM_PREFIX, _family

if TYPE_CHECKING:
    from reliactl.cli.web.core import Service
    from reliactl.cli.web.guard import Guard

STATES = ("closed", "open", "half_open")
# The connection guard's closes (Guard.counts) by the reason /metrics names them.
CLOSE_REASONS = {
    "timed_out": "head_timeout",
    "too_large": "head_too_large",
    "dropped": "evicted",
    "reader": "evicted_reader",
    "refused": "refused",
    "stalled": "send_timeout",
}
SEEN_LIMIT = 50_000


class ReliactlCollector:
    def __init__(self, service: Service, guard: Guard | None = None) -> None:
        self.service = service
        self.guard = guard
        self._events_seen: set[tuple[str, float, str]] = set()
        self._transitions: Counter[str] = Counter()
        self._runs_seen: set[int] = set()
        self._runs: Counter[tuple[str, str]] = Counter()

    def describe(self) -> list[Metric]:
        return []  # collected on each scrape only

    def collect(self) -> Iterator[Metric]:
        yield from self._health()
        yield from self._breakers()
        yield from self._jobs()
        yield from self._rate_limiters()
        yield from self._alerts()
        yield from self._connections()
        yield from self._log()

    def _health(self) -> Iterator[Metric]:
        report = self.service.report
        if report is None:
            return
        status = GaugeMetricFamily(
            f"{PROM_PREFIX}_status",
            "Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            labels=["check", "kind"],
        )
        duration = GaugeMetricFamily(
            f"{PROM_PREFIX}_check_duration_seconds", "How long each check took.", labels=["check"]
        )
        families: dict[str, Any] = {}
        seen: set[tuple[str, str, str]] = set()
        for m in report.metrics.values():
            status.add_metric([m.name, m.kind], m.status.code)
            duration.add_metric([m.name], round(m.duration, 6))
            for p in m.perfdata:
                name, factor, kind = _family(p)
                if (name, m.name, p.label) in seen:
                    continue
                seen.add((name, m.name, p.label))
                if name not in families:
                    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                    families[name] = cls(
                        name,
                        f"Performance data of each check ({kind}).",
                        labels=["check", "metric"],
                    )
                value = p.value * factor if math.isfinite(p.value) else p.value
                families[name].add_metric([m.name, p.label], value)
        yield status
        yield from (families[n] for n in sorted(families))
        yield duration
        overall = GaugeMetricFamily(
            f"{PROM_PREFIX}_overall_status", "Worst status of all checks (as the exit code)."
        )
        overall.add_metric([], report.overall_status.code)
        yield overall
        last = GaugeMetricFamily(
            f"{PROM_PREFIX}_last_run_timestamp_seconds", "When the checks ran (epoch)."
        )
        last.add_metric([], round(report.checked_at, 3))
        yield last

    def _breakers(self) -> Iterator[Metric]:
        from reliactl.breaker import list_breakers

        service = self.service
        snapshots = list_breakers(service.store, service.config)
        state = GaugeMetricFamily(
            "reliactl_breaker_state",
            "1 for the breaker's current state, 0 for the others.",
            labels=["breaker", "state"],
        )
        failures = GaugeMetricFamily(
            "reliactl_breaker_consecutive_failures",
            "Consecutive failures counted by each breaker.",
            labels=["breaker"],
        )
        for snap in snapshots:
            for each in STATES:
                state.add_metric([snap.name, each], 1.0 if snap.state.value == each else 0.0)
            failures.add_metric([snap.name], snap.consecutive_failures)
        for event in service.store.events(None, limit=1000):
            key = (event.name, event.at, event.to_state)
            if key not in self._events_seen:
                self._events_seen.add(key)
                self._transitions[event.name] += 1
        if len(self._events_seen) > SEEN_LIMIT:
            self._events_seen = set(sorted(self._events_seen, key=lambda k: k[1])[-1000:])
        transitions = CounterMetricFamily(
            "reliactl_breaker_transitions",
            "State transitions of each breaker seen since serve started.",
            labels=["breaker"],
        )
        for snap in snapshots:
            transitions.add_metric([snap.name], self._transitions.get(snap.name, 0))
        yield state
        yield failures
        yield transitions

    def _jobs(self) -> Iterator[Metric]:
        records = self.service.store.runs(None, limit=1000)
        last_success: dict[str, float] = {}
        last_duration: dict[str, float] = {}
        for r in records:  # newest first
            if r.ended_at is None:
                continue
            last_duration.setdefault(r.name, max(0.0, r.ended_at - r.started_at))
            if r.outcome == "success":
                last_success.setdefault(r.name, r.ended_at)
            if r.id is not None and r.id not in self._runs_seen:
                self._runs_seen.add(r.id)
                self._runs[(r.name, r.outcome)] += 1
        if len(self._runs_seen) > SEEN_LIMIT:
            self._runs_seen = set(sorted(self._runs_seen)[-1000:])
        statuses = self.service.job_statuses()
        for st in statuses:  # a declared job's success may be older than the last 1000 runs
            if st.last_success_at is not None:
                last_success.setdefault(st.name, st.last_success_at)
        success = GaugeMetricFamily(
            "reliactl_job_last_success_timestamp_seconds",
            "When each job (reliactl run --name) last succeeded (epoch).",
            labels=["job"],
        )
        for name, at in sorted(last_success.items()):
            success.add_metric([name], at)
        duration = GaugeMetricFamily(
            "reliactl_job_last_duration_seconds",
            "How long each job's last run took.",
            labels=["job"],
        )
        for name, took in sorted(last_duration.items()):
            duration.add_metric([name], took)
        runs = CounterMetricFamily(
            "reliactl_job_runs",
            "Finished runs of each job by outcome, seen since serve started.",
            labels=["job", "outcome"],
        )
        for (name, outcome), count in sorted(self._runs.items()):
            runs.add_metric([name, outcome], count)
        overdue = GaugeMetricFamily(
            "reliactl_job_overdue",
            "1 when a declared job missed its expected run (period plus grace), else 0.",
            labels=["job"],
        )
        for st in statuses:
            if st.declared:
                overdue.add_metric([st.name], 1.0 if st.overdue else 0.0)
        yield success
        yield duration
        yield runs
        yield overdue

    def _rate_limiters(self) -> Iterator[Metric]:
        """Tokens left in each bucket of each rate limiter shared through the store."""
        from reliactl.ratelimit import RateLimiter

        store = self.service.store
        tokens = GaugeMetricFamily(
            "reliactl_ratelimit_tokens_available",
            "Tokens left now in each bucket of each stored rate limiter.",
            labels=["limiter", "rate"],
        )
        for key, record in sorted(store.items("rate").items()):
            spec = record.get("spec")
            if not isinstance(spec, str):
                continue
            try:
                available = RateLimiter(spec, key=key, store=store).available()
            except (ValueError, TypeError):
                continue  # a record written by another version: not ours to judge
            for rate, left in available.items():
                tokens.add_metric([key, rate], max(0.0, left))
        yield tokens

    def _alerts(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "reliactl_alert_deliveries",
            "Alerts sent by serve's rounds to each sink, by result (delivered or failed).",
            labels=["sink", "result"],
        )
        for (sink, result), count in sorted(self.service.deliveries.items()):
            deliveries.add_metric([sink, result], count)
        yield deliveries

    def _connections(self) -> Iterator[Metric]:
        """The connection guard's closes by reason, and the connections open now."""
        guard = self.guard
        if guard is None:
            return
        counts = dict(guard.counts)  # the loop's thread counts on: one snapshot
        closed = CounterMetricFamily(
            "reliactl_serve_connections_closed",
            "Connections serve closed or refused since it started, by reason: head_timeout"
            " (no complete request head within --head-timeout), head_too_large (431),"
            " send_timeout (read none of its answer for --head-timeout), evicted (oldest"
            " waiting for a head, at --max-connections), evicted_reader (oldest slow reader"
            " of its answers, at --max-connections), refused (all busy at the bound).",
            labels=["reason"],
        )
        for kind, reason in CLOSE_REASONS.items():
            closed.add_metric([reason], counts.get(kind, 0))
        yield closed
        open_now = GaugeMetricFamily(
            "reliactl_serve_connections_open", "HTTP connections open now."
        )
        open_now.add_metric([], len(guard.open))
        yield open_now
        bound = GaugeMetricFamily(
            "reliactl_serve_connections_max",
            "The bound on open connections (--max-connections, lowered to fit ulimit -n).",
        )
        bound.add_metric([], guard.max_connections)
        yield bound
        refused = CounterMetricFamily(
            "reliactl_serve_answers_refused",
            "Answers over 1 MiB refused (503, Retry-After) since serve started: the answers"
            " waiting for slow readers would have held more than the answer budget (64 MiB).",
        )
        refused.add_metric([], guard.answers_refused)
        yield refused
        buffered = GaugeMetricFamily(
            "reliactl_serve_answer_bytes_buffered",
            "Bytes of answers written and not yet taken by their clients, held in memory now.",
        )
        buffered.add_metric([], guard.buffered())
        yield buffered

    def _log(self) -> Iterator[Metric]:
        """The lines serve dropped because nobody read its stderr (web/stderrlog.py)."""
        from reliactl.cli.web.stderrlog import installed

        queued = installed()
        if queued is None:
            return
        dropped = CounterMetricFamily(
            "reliactl_serve_log_lines_dropped",
            "Log lines (access log and serve's own) dropped since serve started because"
            " stderr's reader took none for a while (the queue of 1 MiB was full).",
        )
        dropped.add_metric([], queued.dropped)
        yield dropped


def exposition(collector: ReliactlCollector) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
