"""What a job's declaration adds to one run: heartbeat pings and the alert on a final failure.

``RunWatch`` is the one object the run engine needs (the runner's events or the job engine's
hooks); ``alert_on_result`` sends the ``alert: true`` alert through the health alert sinks.
Never prints; never changes a run's outcome.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from reliactl.schedule import NOT_DECISIVE

__all__ = ["ALERT_STORE_WAIT", "RunWatch", "alert_on_result"]

# A store another process holds locked (state.base.bounded_waits): the alert's state (its
# problem and claims) waits at most this long in all, then is kept in memory for the run, as
# without a store (the alert is still sent: a page is never dropped for want of the store,
# a repeat is the price); the pings and alerts noted in the run's row wait as long again.
ALERT_STORE_WAIT = 1.0


def alert_on_result(
    name: str,
    result: Any,
    output: bytes,
    sinks: Any,
    records: Any,
    *,
    default_cooldown: float = 900.0,
    clock: Any = time.time,
    fleet: bool = False,
) -> list[Any]:
    """Alert the sinks about a run of job ``name`` that finally failed (after retries), with
    its exit code and output tail; one recovery alert on its next success; repeats only after
    the sink's cooldown. Runs refused before they started alert nothing (health reports a
    job that stops running). Returns the ``AlertOutcome``s; never raises for a failed sink.

    The alert is the check ``run:NAME`` in the alert records, so its cooldown and status are
    its own, apart from the ``job:NAME`` health check's. It is this host's (a failure here is
    not recovered by a success on another host), unless ``fleet``: the job runs under a fleet
    lock, on whichever host, and its runs are one sequence (alertstate.fleet_wide).
    """
    if not sinks or result.outcome in NOT_DECISIVE:
        return []
    import asyncio

    from reliactl.health.alerts import AlertManager
    from reliactl.health.model import HealthMetric, HealthReport, Status

    ok = result.outcome == "success"
    if ok:
        message = f"{name} succeeded"
    else:
        tail = output[-2048:].decode("utf-8", "replace").strip()
        attempts = len(getattr(result, "attempts", ()) or ()) or 1
        message = (
            f"{name} failed: {result.outcome}, exit {result.exit_code}"
            f" after {attempts} attempt{'s' if attempts != 1 else ''}"
            + (f"; output ends:\n{tail}" if tail else "")
        )
    metric = HealthMetric(
        f"run:{name}",
        Status.OK if ok else Status.CRITICAL,
        float(result.exit_code),
        message,
        kind="job",
    )
    report = HealthReport(metric.status, {metric.name: metric}, clock(), 0.0)
    manager = AlertManager(
        sinks,
        records,
        default_cooldown=default_cooldown,
        clock=clock,
        fleet=(metric.name,) if fleet else (),
    )
    outcomes: list[Any] = asyncio.run(manager.process(report))
    return outcomes


class RunWatch:
    """What a job's declaration adds to one ``reliactl run``: heartbeat pings and the alert
    on a final failure. The run engine calls, in order::

        watch = RunWatch("backup", targets=ping.targets_from(job.ping, url=flag_url),
                         alert=job.alert or flag_alert, sinks=cfg.health_monitor.alerts,
                         records=RecordStore(store))
        result = run_command(options, on_event=chain(own_handler, watch.on_event),
                             output=watch.output(own_sink_or_None))
        warnings = watch.finish(result)      # end ping, alert; never raises
        record.data.update(watch.history())  # {"pings": [...], "alerts": [...]}, redacted

    ``output`` wraps the engine's sink only when something needs the output's tail (a ping
    with a body limit, an alert); otherwise it returns the sink untouched, so a run without
    pings keeps its inherited stdout/stderr (no pipes).
    """

    def __init__(
        self,
        name: str,
        *,
        targets: Any = None,
        alert: bool = False,
        sinks: Any = (),
        records: Any = None,
        default_cooldown: float = 900.0,
        host: str | None = None,
        pinger_options: Mapping[str, Any] | None = None,
        fleet: bool = False,
    ) -> None:
        self.name = name
        self.fleet = fleet  # the job runs under a fleet lock: its run:NAME alert is the fleet's
        self.pinger: Any = None
        if targets is not None and targets.configured:
            from reliactl.ping import Pinger

            self.pinger = Pinger(targets, name=name, host=host, **dict(pinger_options or {}))
        self.alert = bool(alert) and bool(sinks) and records is not None
        self.sinks = sinks
        self.records = records
        self.default_cooldown = default_cooldown
        self.tail: Any = None
        self.alerts: list[Any] = []
        self._alert_error: str | None = None

    def rename(self, name: str) -> None:
        """The history name, once the engine has derived it (``{name}`` in templates)."""
        self.name = name
        if self.pinger is not None:
            self.pinger.name = name

    @property
    def active(self) -> bool:
        return self.pinger is not None or self.alert

    def on_event(self, event: Any) -> None:
        """A runner event handler: its "start" event sends the start ping."""
        if self.pinger is not None:
            self.pinger.on_event(event)

    # The job engine's hooks (``reliactl.jobs.JobHooks``: on_start once the command is about
    # to start, on_finish with the JobResult); use these or on_event + finish, not both.

    def on_start(self, start: Any = None) -> None:
        if self.pinger is not None:
            self.pinger.start()

    def on_finish(self, result: Any) -> None:
        self.finish(result)

    def output(self, inner: Any = None) -> Any:
        limit = self.pinger.targets.body_limit if self.pinger is not None else 0
        if self.alert:
            limit = max(limit, 2048)
        if not limit:
            return inner
        from reliactl.ping import OutputTail

        self.tail = OutputTail(limit, inner=inner)
        return self.tail

    def finish(self, result: Any) -> list[str]:
        """Send the end ping and the alert; the warnings to show (URLs redacted). ``result``
        is a ``RunResult`` or anything with one in ``.run`` (a ``JobResult``)."""
        result = getattr(result, "run", result)
        output = self.tail.tail() if self.tail is not None else b""
        if self.pinger is not None:
            self.pinger.report(result, output)
        if self.alert:
            bounded = getattr(self.records, "bounded", None)  # a RecordStore's (health.records)
            try:
                with bounded(ALERT_STORE_WAIT) if bounded else contextlib.nullcontext():
                    self.alerts = alert_on_result(
                        self.name,
                        result,
                        output,
                        self.sinks,
                        self.records,
                        default_cooldown=self.default_cooldown,
                        fleet=self.fleet,
                    )
            except Exception as exc:  # a broken store or sink never changes the outcome
                self._alert_error = f"alert for {self.name}: {type(exc).__name__}: {exc}"
            given_up = getattr(self.records, "given_up", None)
            if given_up is not None and self._alert_error is None:
                from reliactl.state.base import store_busy

                why = (
                    f" (busy: gave up after {ALERT_STORE_WAIT:g}s)" if store_busy(given_up) else ""
                )
                self._alert_error = f"alert state kept in memory for this run: {given_up}{why}"
        return self.warnings()

    def warnings(self) -> list[str]:
        out = list(self.pinger.warnings()) if self.pinger is not None else []
        out += [a.describe() for a in self.alerts if not a.delivered]
        if self._alert_error:
            from reliactl.redact import redact_urls_in

            out.append(redact_urls_in(self._alert_error))
        return out

    def history(self) -> dict[str, Any]:
        """What the run's history record keeps (URLs redacted)."""
        data: dict[str, Any] = {}
        if self.pinger is not None:
            data["pings"] = self.pinger.history()
        if self.alerts:
            data["alerts"] = [
                {"sink": a.sink, "kind": a.kind, "delivered": a.delivered, "error": a.error}
                for a in self.alerts
            ]
        return data

    def close(self) -> None:
        if self.pinger is not None:
            self.pinger.close()
