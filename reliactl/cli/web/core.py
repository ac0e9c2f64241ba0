"""What serve knows: the last check round, and the CLI's own JSON documents.

One :class:`Service` per process. ``round()`` runs the checks as ``health --watch`` does
(alerts and cooldowns included) and records the health history; the document methods build
exactly what the CLI's ``--json`` prints, by calling the CLI's own functions, with every URL
password and webhook token redacted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reliactl.redact import redact_urls_in

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.health.model import HealthReport
    from reliactl.health.monitor import HealthMonitor
    from reliactl.state import StateStore

HEALTHY = ("OK", "WARNING")  # /healthz answers 200 for these, 503 otherwise
JOBS_MAX_AGE = 1.0  # seconds a job status list is reused (/metrics, /api/jobs)
NOTES_MAX_AGE = 1.0  # seconds the checks' silences/acknowledgements are reused (/healthz)
# A round's store operations (debounce streaks, alert claims, history) wait at most this long
# in all on a store another process holds locked, not BUSY_TIMEOUT_S (30 s) each: then they
# are given up with a warning and the next round comes on time.
ROUND_STORE_WAIT = 5.0
# The same bound for each request's store operations (app.in_thread), the wait behind
# another thread of serve included: a busy store is a 503 after 5 s, and serve's stop
# waits for no request longer.
REQUEST_STORE_WAIT = 5.0
STALE_ROUNDS = 3  # /healthz is 503 when no round finished for this many intervals...
STALE_MIN = 60.0  # ...and at least this long (default of serve --stale-after)


def default_stale_after(interval: float) -> float:
    """How long after the last finished round /healthz stops trusting it (503 UNKNOWN)."""
    return max(STALE_ROUNDS * interval, STALE_MIN)


@dataclass
class Service:
    config: Config
    store: StateStore
    monitor: HealthMonitor
    interval: float
    token: str | None = None
    stale_after: float = 0.0  # 0: default_stale_after(interval)
    report: HealthReport | None = None
    rounds: int = 0
    finished: float | None = None  # time.monotonic() when the last round published its report
    started_at: float = field(default_factory=time.time)
    # Alert deliveries of this process's rounds by (sink, "delivered" | "failed"): what
    # /metrics counts (the store keeps each (sink, check)'s last claim, not a delivery log).
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock)
    _jobs_cache: tuple[float, list[Any]] | None = None
    _notes_lock: threading.Lock = field(default_factory=threading.Lock)
    _notes_cache: tuple[float, Any, dict[str, Any]] | None = None  # (time, report, notes)

    def __post_init__(self) -> None:
        if self.stale_after <= 0:
            self.stale_after = default_stale_after(self.interval)

    def round(self) -> HealthReport:
        """One round of checks, alerts (with their cooldowns) and history. The report is
        published (``report``, ``rounds``, ``finished``: what the probes read, in memory)
        before the history is written, and the round's store operations wait at most
        ``ROUND_STORE_WAIT`` in all on a store another process holds locked."""
        from reliactl.cli.health import _one_round, record_history
        from reliactl.state.base import bounded_waits

        with self._lock, bounded_waits(self.store, ROUND_STORE_WAIT):
            report, outcomes = _one_round(self.monitor, None, alerts=True)
            for outcome in outcomes:
                result = "delivered" if outcome.delivered else "failed"
                self.deliveries[(outcome.sink, result)] += 1
            self.report = report
            self.rounds += 1
            self.finished = time.monotonic()
            record_history(self.store, report, self.config)
            return report

    def round_age(self) -> float | None:
        """Seconds since the last round published its report (None before the first)."""
        finished = self.finished
        return None if finished is None else max(0.0, time.monotonic() - finished)

    # ---- documents (the CLI's own)

    def health(
        self,
        check: str | None = None,
        notes: dict[str, Any] | None = None,
        report: HealthReport | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, `health --json` document), of one check with ``check``: the last
        round's results (or ``report``'s), each check's silence/acknowledgement/flapping as
        they are now (or as ``notes`` say: then nothing here reads the store). A last round
        older than ``stale_after`` is not trusted: status UNKNOWN (503), ``stale`` true."""
        if report is None:
            report = self.report
        from reliactl.cli.health import JSON_VERSION, health_document

        if report is None:
            message = "no check round has finished yet"
            return 503, {"version": JSON_VERSION, "status": "UNKNOWN", "message": message}

        if notes is None:
            notes = self.check_notes(report)
        doc = health_document(report, [], (), notes)
        if check is not None:
            doc["checks"] = [c for c in doc["checks"] if c["name"] == check]
            if not doc["checks"]:
                return 404, {"version": JSON_VERSION, "error": f"no check named {check!r}"}
            doc["status"] = doc["checks"][0]["status"]
            doc["exit_code"] = doc["checks"][0]["code"]
        age = self.round_age()
        if age is not None and age > self.stale_after:
            doc["status"], doc["exit_code"], doc["stale"] = "UNKNOWN", 3, True
            doc["message"] = (
                f"no check round has finished for {age:.0f}s (stale after"
                f" {self.stale_after:g}s): these results are the last known"
            )
        return (200 if doc["status"] in HEALTHY else 503), _scrubbed(doc)

    def last_notes(self) -> tuple[float, Any, dict[str, Any]] | None:
        """The notes ``check_notes`` read last: (time.time() read, its report, notes), or
        None. Reads nothing: what a probe may use without waiting on the store."""
        return self._notes_cache

    def check_notes(self, report: HealthReport) -> dict[str, Any]:
        """``health``'s notes of the report's checks (silenced, acknowledged, flapping) as the
        store says now (a silence added after the round shows at once), at most
        ``NOTES_MAX_AGE`` old: probes and dashboards in a burst read the store once."""
        from reliactl.cli.health import _notes

        with self._notes_lock:
            now = time.time()
            cached = self._notes_cache
            if (
                cached is None
                or cached[1] is not report
                or not 0 <= now - cached[0] < NOTES_MAX_AGE
            ):
                cached = (now, report, _notes(self.monitor, report, self.config, now=now))
                self._notes_cache = cached
            return cached[2]

    def breakers(self) -> dict[str, Any]:
        from reliactl.breaker import list_breakers
        from reliactl.cli.breaker import _retry_in, breakers_document

        snapshots = list_breakers(self.store, self.config)
        doc = breakers_document(snapshots)
        for entry, snap in zip(doc["breakers"], snapshots, strict=True):
            entry["retry_in"] = _retry_in(snap)
        return _scrubbed(doc)

    def runs(self, limit: int = 20) -> dict[str, Any]:
        from reliactl.cli.run import runs_document

        return _scrubbed(runs_document(self.store.runs(None, limit=limit)))

    def job_statuses(self) -> list[Any]:
        """Each declared job, then each job only seen in history (``reliactl jobs``), at
        most ``JOBS_MAX_AGE`` old: scrapes and dashboards in a burst read the store once."""
        from reliactl.schedule import job_statuses

        with self._jobs_lock:
            now = time.time()
            cached = self._jobs_cache
            if cached is None or not 0 <= now - cached[0] < JOBS_MAX_AGE:
                cached = (now, job_statuses(self.config.jobs, self.store, now=now))
                self._jobs_cache = cached
            return list(cached[1])

    def jobs(self) -> dict[str, Any]:
        """The ``jobs --json`` document, each job's silence/acknowledgement/flapping included."""
        from reliactl.cli.jobs import job_notes, jobs_document
        from reliactl.errors import ReliactlError

        statuses = self.job_statuses()
        try:
            names = [s.name for s in statuses]
            notes = job_notes(self.store, self.config.jobs, names, time.time())
        except ReliactlError:  # as `health`: the jobs still show when the notes cannot be read
            notes = {}
        return _scrubbed(jobs_document(statuses, None, notes))

    def history(
        self, checks: list[str] | None, since: float, max_points: int | None = None
    ) -> dict[str, Any]:
        from reliactl.history import history_document

        now = time.time()
        doc = history_document(self.store, checks, now - since, now=now, max_points=max_points)
        return _scrubbed(doc)

    def breaker_action(self, name: str, action: str) -> tuple[int, dict[str, Any]]:
        """Reset or trip a known breaker (the caller checked the token)."""
        from reliactl.breaker import get_persistent_breaker, known_breaker_names

        if name not in known_breaker_names(self.store, self.config):
            return 404, {"error": f"no breaker named {name!r}"}
        breaker = get_persistent_breaker(name, self.config, self.store)
        before = breaker.state.value
        if action == "reset":
            breaker.reset("reset from the dashboard (reliactl serve)")
        elif action == "trip":
            breaker.trip(None, "tripped from the dashboard (reliactl serve)")
        else:
            return 404, {"error": f"unknown action {action!r}"}
        return 200, {"breaker": name, "was": before, "now": breaker.state.value}


def _scrubbed(value: dict[str, Any]) -> dict[str, Any]:
    """Every string of a document with URL passwords and webhook tokens replaced by ***."""
    result: dict[str, Any] = _scrub(value)
    return result


def _scrub(value: Any) -> Any:
    """Every string of a document with URL passwords and webhook tokens replaced by ***."""
    if isinstance(value, str):
        return redact_urls_in(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
