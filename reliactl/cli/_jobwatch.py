"""`run`'s job options (--job, --ping, --ping-start/-success/-failure, --alert) turned into a
``schedule.RunWatch``, and what it learnt written back to the run's history.

Kept out of cli/run.py so the command's body only calls ``watch_for_run`` before the job and
``record_watch`` after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.config import Config, JobSettings
    from reliactl.jobwatch import RunWatch


class _LazyRecords:
    """The state store's records, opened only when an alert needs them."""

    def __init__(self, open_store: Callable[[], Any]) -> None:
        self._open = open_store
        self._records: Any = None

    def _get(self) -> Any:
        if self._records is None:
            from reliactl.health.records import RecordStore

            self._records = RecordStore(self._open())
        return self._records

    def get(self, kind: Any, key: str) -> Any:
        return self._get().get(kind, key)

    def update(self, kind: Any, key: str, fn: Any) -> Any:
        return self._get().update(kind, key, fn)

    def items(self, kind: Any) -> Any:
        # The alert manager reads every alert record (silences, problems) in one go: without
        # this every `run --alert` failed with an AttributeError and alerted nobody.
        return self._get().items(kind)

    def bounded(self, seconds: float) -> Any:
        """``RecordStore.bounded`` (jobwatch.ALERT_STORE_WAIT: a busy store's alert state)."""
        return self._get().bounded(seconds)

    @property
    def given_up(self) -> Any:
        return None if self._records is None else self._records.given_up


def resolve(
    config: Config,
    job: str | None,
    *,
    name: str | None,
    breaker: str | None,
    open_store: Callable[[], Any],
    lock_scope: str | None = None,
    **pings: Any,
) -> tuple[str | None, str | None, RunWatch | None]:
    """--job's settings under the flags: (history name, breaker, watch or None). ValueError
    for an unknown job or an unusable ping URL (a usage error before the job starts)."""
    if job is None and not any(pings.values()) and not os.environ.get("RELIACTL_PING_URL"):
        return name, breaker, None  # the common case: nothing to watch, nothing imported
    settings = job_settings(config, job)
    if settings is not None:
        name = name or job
        breaker = breaker or settings.breaker or None
    watch = watch_for_run(
        config, name or "", settings, open_store=open_store, lock_scope=lock_scope, **pings
    )
    return name, breaker, watch


def hooks(watch: RunWatch | None) -> tuple[Any, ...]:
    return () if watch is None else (as_hook(watch),)


def output(watch: RunWatch | None, sink: Any) -> Any:
    """The runner's output sink: the engine's, wrapped when the watch needs the tail."""
    return sink if watch is None else watch.output(sink)


def named(watch: RunWatch | None, name: str) -> None:
    if watch is not None:
        watch.rename(name)


def report(
    watch: RunWatch | None, say: Callable[[str], None], store: Any, run_id: int | None
) -> dict[str, Any]:
    """After the job: its ping/alert warnings through ``say``, the pings into the run's
    history; what --json-report adds (pings, alerts; URLs redacted)."""
    if watch is None:
        return {}
    for text in watch.warnings():
        say(f"warning: {text}")
    record_watch(watch, store, run_id)
    return watch.history()


def job_settings(config: Config, job: str | None) -> JobSettings | None:
    """The ``jobs:`` entry named by --job; ValueError naming the declared jobs if unknown."""
    if job is None:
        return None
    found = config.jobs.get(job)
    if found is None:
        known = ", ".join(sorted(config.jobs)) or "none declared"
        raise ValueError(f"--job: no job named {job!r} in jobs: ({known})")
    return found


def watch_for_run(
    config: Config,
    name: str,
    settings: JobSettings | None,
    *,
    ping: str | None = None,
    ping_start: str | None = None,
    ping_success: str | None = None,
    ping_failure: str | None = None,
    alert: bool = False,
    open_store: Callable[[], Any],
    environ: Any = None,
    lock_scope: str | None = None,
) -> RunWatch | None:
    """The RunWatch of one run (None when it neither pings nor alerts); ValueError for an
    unusable ping URL or template (the message hides the credential). ``lock_scope``: the
    run's --lock-scope (else --job's entry's)."""
    from reliactl.health.alertstate import fleet_run
    from reliactl.jobwatch import RunWatch
    from reliactl.ping import targets_from

    targets = targets_from(
        settings.ping if settings is not None else None,
        url=ping,
        start=ping_start,
        success=ping_success,
        failure=ping_failure,
        environ=environ,
    )
    wants_alert = alert or (settings is not None and settings.alert)
    if wants_alert and "/" in name:
        # Its alert is the check run:NAME, addressed as HOST/run:NAME: a "/" in NAME would
        # make `alert ack`/`silence add`/`alert resolve` targets ambiguous.
        raise ValueError(
            f"--alert: the run name {name!r} has a '/', which alert targets (HOST/CHECK)"
            " cannot tell apart; name it without '/' (--name)"
        )
    # Escalation sinks (alerts.escalate_to) hear only of problems that lasted: a run's
    # result is one moment, so `run --alert` never goes there (health's job:NAME check does).
    escalation = set(config.alerts.escalate_to)
    sinks = (
        [s for s in config.health_monitor.alerts if s.name not in escalation] if wants_alert else ()
    )
    watch = RunWatch(
        name,
        targets=targets,
        alert=wants_alert,
        sinks=sinks,
        records=_LazyRecords(open_store),
        default_cooldown=config.health_monitor.alert_cooldown,
        # A job declared with lock_scope: fleet (however this run was named) or a run under
        # a fleet lock runs on one host at a time, any of them: its runs are one sequence, so
        # its run:NAME alert is one problem for the fleet (alertstate.fleet_run).
        fleet=fleet_run(
            name, config.jobs, lock_scope or (settings.lock_scope if settings else None)
        ),
    )
    return watch if watch.active else None


def as_hook(watch: RunWatch) -> Any:
    """``watch`` as a ``reliactl.jobs.JobHooks`` of the job engine (start ping once the lock
    is held and the gates admitted the run; end ping and alert with the JobResult)."""
    from reliactl.jobs import JobHooks

    class _WatchHooks(JobHooks):
        def on_start(self, start: Any) -> None:
            watch.on_start(start)

        def on_finish(self, result: Any) -> None:
            watch.on_finish(result)

    return _WatchHooks()


def record_watch(watch: RunWatch, store: Any, run_id: int | None) -> None:
    """Add the pings and alerts of ``watch`` to run ``run_id``'s history record (best effort:
    the job's outcome is already recorded and never depends on this)."""
    if store is None or run_id is None:
        return
    data = watch.history()
    if not data:
        return
    import dataclasses

    from reliactl.errors import ReliactlError
    from reliactl.jobwatch import ALERT_STORE_WAIT
    from reliactl.state.base import bounded_waits

    try:
        with bounded_waits(store, ALERT_STORE_WAIT):  # a busy store: given up, as any failure
            for record in store.runs(watch.name, 20):
                if record.id == run_id:
                    merged = {**record.data, **data}
                    store.finish_run(run_id, dataclasses.replace(record, data=merged))
                    return
    except ReliactlError:
        return
