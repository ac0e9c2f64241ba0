"""What serve knows: the last check round, and the CLI's own JSON documents.

One :class:`Service` per process. ``round()`` runs the checks as ``health --watch`` does
(alerts and cooldowns included) and records the health history; the document methods build
exactly what the CLI's ``--json`` prints, by calling the CLI's own functions, with every URL
password and webhook token redacted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reliactl.redact import redact_urls_in

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.health.model import HealthReport
    from reliactl.health.monitor import HealthMonitor
    from reliactl.state import StateStore

HEALTHY = ("OK", "WARNING")  # /healthz answers 200 for these, 503 otherwise


@dataclass
class Service:
    config: Config
    store: StateStore
    monitor: HealthMonitor
    interval: float
    token: str | None = None
    report: HealthReport | None = None
    rounds: int = 0
    started_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def round(self) -> HealthReport:
        """One round of checks, alerts (with their cooldowns) and history."""
        from reliactl.cli.health import _one_round, record_history

        with self._lock:
            report, _outcomes = _one_round(self.monitor, None, alerts=True)
            record_history(self.store, report, self.config)
            self.report = report
            self.rounds += 1
            return report

    # ---- documents (the CLI's own)

    def health(self, check: str | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, `health --json` document), of one check with ``check``."""
        report = self.report
        if report is None:
            return 503, {"status": "UNKNOWN", "message": "no check round has finished yet"}
        from reliactl.cli.health import health_document

        doc = health_document(report, [])
        if check is not None:
            doc["checks"] = [c for c in doc["checks"] if c["name"] == check]
            if not doc["checks"]:
                return 404, {"error": f"no check named {check!r}"}
            doc["status"] = doc["checks"][0]["status"]
            doc["exit_code"] = doc["checks"][0]["code"]
        return (200 if doc["status"] in HEALTHY else 503), _scrubbed(doc)

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
