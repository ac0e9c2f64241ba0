"""The job engine: what `reliactl run` means, as one library call.

``run_job(JobSpec(...))`` names the lock, builds the retry policy, opens the state store
(and runs on without it when it is unusable), gates the start on the health checks and on a
circuit breaker, runs the command with :mod:`reliactl.runner`, reports the outcome to the
breaker and records the run in the history. It never prints: reliactl's own lines (warnings,
and the runner's events) go to ``on_event``; the answer is a :class:`JobResult`.

The rules, in one place:

- Lock: ``lock_name`` names it (``run.lock_dir/NAME.lock``), else the command's real path
  does (``locks.derive_lock_name``, with a warning event when that name may be ambiguous).
  Its scope is ``lock_scope``, else ``run.lock_scope``: host (that lock file) or fleet (a
  lease of ``run.lock_lease`` in the shared store, renewed while the job runs; lost: the job
  is stopped, outcome "lock_lost", exit 75; the store unreachable: not run, exit 75).
  The job's history name is ``name``, else the lock name, else the same derived name.
- Store: opened only when history, a breaker or the health gate needs it. An unusable store
  is a warning event; the job runs without history and breaker (health state in memory).
- Health gate (``check``): every configured check once, under the lock, before the first
  attempt. CRITICAL refuses (exit 75, outcome "gated"); WARNING and UNKNOWN start with a
  warning; checks that cannot run at all start with a warning (unknown is not critical).
- Breaker gate (``breaker``): asked under the lock (a tick that finds the lock busy never
  touches it) and before the health gate. Open: exit 69, outcome "breaker_open". The run,
  after all its retries, is one call: success, failure (failure, timeout, not_found,
  not_executable) or ignored (interrupted, busy, skipped, gated: the service was not tried).
- History: a "running" row before the start, finished with the outcome (or "error" when
  reliactl itself failed). :func:`record_outcome` reads a "running" row whose reliactl on
  this host is gone as "lost"; :func:`newest_decisive` is what ``runs --last`` judges.

Hooks (:class:`JobHooks`, ``JobSpec.hooks``) see the start of the command (after the lock
and the gates) and every finish; what a hook raises is a warning event, never the job's end.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

from reliactl.errors import (
    GateSetupError,
    JobSpecError,
    LockError,
    ReliactlError,
)
from reliactl.hostname import hostname
from reliactl.redact import redact_argv

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, replace
    from typing import Any
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, replace

if TYPE_CHECKING:
    from reliactl.chaos import RunChaos
    from reliactl.config import Config
    from reliactl.health.model import HealthReport
    from reliactl.runner import (
        Gate,
        GateRefusal,
        OutputSink,
        RunEvent,
        RunOptions,
        RunResult,
        WatchVerdict,
    )
    from reliactl.state.base import RunRecord, StateStore

__all__ = [
    "FROM_CONFIG",
    "JobHooks",
    "JobResult",
    "JobSpec",
    "JobStart",
    "PreparedJob",
    "newest_decisive",
    "prepare_job",
    "record_outcome",
    "run_job",
]

# Exit codes the engine decides (the same numbers as reliactl.cli.exitcodes, which the core
# does not import): 75 temporary failure, 69 unavailable, 125 reliactl itself failed.
TEMPFAIL = 75
UNAVAILABLE = 69
INTERNAL = 125
# A store another process holds locked (state.base.bounded_waits): the run's row waits at most
# RUN_START_WAIT before the job, then the job starts and the row is written after it; the
# breaker's outcome and the row after the job wait at most RUN_RECORD_WAIT in all, then are
# given up with a warning. Not the 30 s a statement of the store's own busy timeout.
RUN_START_WAIT = 1.0
RUN_RECORD_WAIT = 5.0
# The same store: --breaker's admission (its reads and writes: a rejection counted, a trial
# reserved) waits at most BREAKER_ADMIT_WAIT, then the breaker is enforced as its state reads
# (open, or a trial that cannot be reserved: refused, nothing counted), and only a state that
# cannot be read runs the job without the breaker, as with an unusable store; the health
# checks' store operations (CPU sample, debounce streaks, a job check's run history) wait
# only until HEALTH_STORE_WAIT after their round began (the gate's, each --watch-health
# round: a deadline the checks' threads share), then are done in memory, as with an unusable
# store.
BREAKER_ADMIT_WAIT = 1.0
HEALTH_STORE_WAIT = 1.0

# Outcomes the breaker counts as the service failing (the others: it was not tried).
BREAKER_FAILURES = frozenset(
    {
        "failure",
        "timeout",
        "not_found",
        "not_executable",
        "memory_limit",
        "cpu_limit",
        "output_limit",
    }
)
# Outcomes `runs --last` looks past: a tick that found the lock busy says nothing of the job.
NOT_DECISIVE = frozenset({"skipped", "busy"})
# How many records `runs --last` looks through for a decisive one.
LAST_LOOKBACK = 200


class _FromConfig(Enum):
    FROM_CONFIG = "from the configuration"

    def __repr__(self) -> str:
        return "FROM_CONFIG"


FROM_CONFIG = _FromConfig.FROM_CONFIG
"""A JobSpec default that means "the configuration's setting" (None means "none")."""


@dataclass(frozen=True)
class JobStart:
    """What a hook learns when the command is about to start (lock held, gates passed)."""

    name: str
    command: tuple[str, ...]
    started_at: float  # when the job began (before the lock), epoch seconds
    run_id: int | None  # the history row, when history is kept


class JobHooks:
    """Observer of a job's life: subclass and override what you need (both are no-ops).

    ``on_start`` runs once the command is about to start: after the lock is taken and the
    gates admitted it (never for a busy, skipped or refused run). ``on_finish`` runs for every
    job that ends with a JobResult, after the history is recorded. A hook that raises is
    reported as a "warning" event and never changes the job's result.
    """

    def on_start(self, start: JobStart) -> None:
        """The command is about to start."""

    def on_finish(self, result: JobResult) -> None:
        """The job ended (whatever its outcome)."""


@dataclass(frozen=True)
class JobSpec:
    """One job, as `reliactl run`'s flags describe it. Durations are seconds.

    ``FROM_CONFIG`` takes the configuration's setting (``run.timeout``, ``run.kill_after``,
    ``retry.max_elapsed``); the retry overrides left None take ``retry.*``. Retries are on
    when ``retry`` is True or ``max_retries`` is given.
    """

    command: tuple[str, ...]
    name: str | None = None  # history name (default: the lock name, else derived)
    # lock
    lock: bool = False
    lock_name: str | None = None  # implies lock
    lock_wait: float | None = 0.0  # None: forever
    skip_if_locked: bool = False  # implies lock
    lock_on_nfs: bool = False
    lock_scope: str | None = None  # host | fleet (implies lock); None: run.lock_scope
    # time limits
    timeout: float | _FromConfig | None = FROM_CONFIG  # per attempt; None: no limit
    total_timeout: float | None = None
    kill_after: float | _FromConfig | None = FROM_CONFIG  # None: never SIGKILL
    timeout_signal: int = signal.SIGTERM
    preserve_status: bool = False
    leave_running: bool = False
    chaos: RunChaos | None = None  # failure injection (`run --chaos`); None: off
    # retries
    retry: bool = False
    max_retries: int | None = None
    strategy: str | None = None
    base_delay: float | None = None
    max_delay: float | None = None
    multiplier: float | None = None
    jitter: str | None = None
    max_elapsed: float | _FromConfig | None = FROM_CONFIG  # None: no limit
    retry_on: frozenset[int] | None = None
    no_retry_on: frozenset[int] = frozenset()
    retry_on_timeout: bool = False
    # gates and history
    breaker: str | None = None
    check: bool = False
    history: bool = True
    # process
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    hooks: tuple[JobHooks, ...] = ()
    # resource limits of each attempt (issue 22); FROM_CONFIG: run.<same name>, None: none
    memory_max: int | _FromConfig | None = FROM_CONFIG  # bytes, the whole tree
    cpu_time: float | _FromConfig | None = FROM_CONFIG  # seconds of CPU, per process
    nice: int | _FromConfig | None = FROM_CONFIG  # -20..19
    io_class: str | _FromConfig | None = FROM_CONFIG  # idle, best-effort
    max_output: int | _FromConfig | None = FROM_CONFIG  # bytes of stdout + stderr
    # health during the run: the gate's checks every watch_health seconds; on CRITICAL
    # "warn" logs it, "stop" stops the job (outcome health_stopped)
    watch_health: float | None = None
    on_critical: str = "warn"

    @property
    def wants_lock(self) -> bool:
        return (
            self.lock
            or self.lock_name is not None
            or self.skip_if_locked
            or self.lock_wait != 0.0
            or self.lock_scope is not None
        )


@dataclass(frozen=True)
class JobResult:
    """A job's end: the RunResult, the gates' decisions, the history row and the exit code."""

    run: RunResult
    name: str
    run_id: int | None = None  # None when no history was kept
    breaker: dict[str, Any] | None = None  # name, decision (admitted/rejected), trial, recorded
    health: HealthReport | None = None  # the health gate's report, when it ran
    checked: bool = False  # the health gate was asked for

    @property
    def exit_code(self) -> int:
        return self.run.exit_code

    @property
    def outcome(self) -> str:
        return self.run.outcome

    @property
    def succeeded(self) -> bool:
        return self.run.succeeded

    @property
    def peak_rss(self) -> int | None:
        """Bytes: the run's peak RSS (RunResult.peak_rss)."""
        return self.run.peak_rss

    @property
    def cpu_time(self) -> float | None:
        """Seconds of CPU used by the job's processes (RunResult.cpu_time)."""
        return self.run.cpu_time

    def to_dict(self) -> dict[str, Any]:
        doc = {**self.run.to_dict(), "run_id": self.run_id, "breaker": self.breaker}
        doc["name"] = self.name
        if self.checked:
            doc["health"] = self.health.to_dict() if self.health is not None else None
        return doc


EventCallback = Callable[["RunEvent"], None]


def stored_text(text: str) -> str:
    """Arguments that are not UTF-8 (surrogate escapes) are shown, stored and logged escaped
    (a byte 0xff as the six characters ``\\udcff``, the form the history has always had, so
    a job keeps its one history). The one owner: `runs NAME` and `jobs NAME` look a name up
    in this form."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _named(metrics: list[Any]) -> str:
    return "; ".join(f"{m.name} ({_one_line(m.message, 200)})" for m in metrics)


class PreparedJob:
    """A JobSpec checked against the configuration: names and options fixed, nothing run.

    :func:`prepare_job` builds it (raising JobSpecError for what cannot run); ``run()`` runs it
    once. Two steps so that a CLI can refuse bad input before it opens logs or stores.
    """

    def __init__(
        self, spec: JobSpec, config: Config, options: RunOptions, ambiguous: str | None
    ) -> None:
        self.spec = spec
        self.config = config
        self.options = options
        self.ambiguous = ambiguous  # why the derived lock name may be ambiguous
        self.name = options.name

    # ---- the run

    def run(
        self,
        *,
        store: StateStore | Callable[[], StateStore] | None = None,
        on_event: EventCallback | None = None,
        output: OutputSink | None = None,
        store_warnings: StoreWarnings | None = None,
    ) -> JobResult:
        """Run the job once. ``store`` is a StateStore, a function that opens one (called only
        when needed), or None for the configuration's. A caller whose function opens the store
        routes the store's own warnings through ``store_warnings``: a fleet-locked run holds
        them until the lock is taken (Redis away: the lock's refusal is the one line). Raises
        GateSetupError (invalid health checks, before anything runs) and what the runner raises
        (LockError, ReliactlError), after recording the run as "error"."""
        from reliactl.runner import LOCK_UNAVAILABLE

        spec, options = self.spec, self.options
        emit: EventCallback = on_event or (lambda event: None)

        def warn(text: str) -> None:
            from reliactl.runner import RunEvent

            emit(RunEvent("warning", text))

        if self.ambiguous is not None:
            warn(
                f"warning: lock name {self.name!r} may be ambiguous: {self.ambiguous}; "
                "use --lock-name"
            )
        # A fleet lock needs Redis: when Redis is away the lock's refusal says so, and the
        # store's own "unreachable, using this host's store" warning would only repeat it. So
        # that warning waits until the lock is taken (or the run ended otherwise).
        fleet = options.lock is not None and options.lock.scope == "fleet"
        if store_warnings is None:
            store_warnings = StoreWarnings()
        store_warnings.holding = fleet
        opened = self._open_store(store, warn, store_warnings)
        options = _known_away(options, opened, self.config)
        gate_seen: dict[str, HealthReport] = {}
        watch = self._health_watch(opened) if spec.watch_health is not None else None
        health_gate = self._health_gate(opened, warn, gate_seen, watch) if spec.check else None
        started_at = time.time()
        shown = stored_text(" ".join(redact_argv(spec.command)))  # history shows no secret
        name = stored_text(self.name)
        options = _with_name(options, name)

        trace = None  # tracing off (reliactl.tracing not even imported without OTEL_*)
        from reliactl._switches import tracing_may_be_on

        if tracing_may_be_on():
            from reliactl import tracing

            trace = tracing.start_run(name, spec.command, options.env)
        if trace is not None:
            options = replace(options, env=trace.child_env(options.env))
        breaker = _BreakerGate(spec.breaker, self.config, opened, options, warn)
        breaker.on_change = trace.breaker_event if trace is not None else None
        run_id: int | None = None
        history = opened if spec.history else None
        if history is not None:
            from reliactl.state.base import RunRecord, bounded_waits, store_busy

            try:
                with bounded_waits(history, RUN_START_WAIT):
                    run_id = history.add_run(
                        RunRecord(
                            name=name,
                            command=shown,
                            started_at=started_at,
                            data=_runner_identity(),
                        )
                    )
            except ReliactlError as exc:
                if not store_busy(exc):  # busy: the job starts, its row is written after it
                    warn(f"warning: run history disabled: {exc}")
                    history = None
        starting = self._start_hook(JobStart(name, spec.command, started_at, run_id), warn)
        gates: list[Gate] = [store_warnings.gate] if fleet else []
        gates += [g for g in (breaker.gate(), health_gate, starting) if g is not None]
        gate = _chain_gates(gates)

        def finish(result: RunResult | None, outcome: str, message: str | None) -> None:
            nonlocal run_id
            run_id = _finish_history(
                history, run_id, name, shown, started_at, result, outcome, message, warn
            )
            if trace is not None:
                trace.finish(result, breaker.info, message or "")

        def records() -> Any:  # the breaker's outcome and the row: RUN_RECORD_WAIT in all
            from reliactl.state.base import bounded_waits

            return bounded_waits(opened, RUN_RECORD_WAIT)

        try:
            result = _supervised(options, emit, warn, output, gate, watch)
        except ReliactlError as exc:
            store_warnings.release()
            with records():
                breaker.ignore()
                finish(None, "error", str(exc))
            raise
        if result.outcome == LOCK_UNAVAILABLE:
            store_warnings.drop()  # the refusal names the unreachable store: one line
        store_warnings.release()
        with records():
            breaker.report(result)
            finish(result, result.outcome, None)
        job = JobResult(
            run=result,
            name=name,
            run_id=run_id if history is not None else None,
            breaker=breaker.info,
            health=gate_seen.get("report"),
            checked=spec.check,
        )
        for hook in spec.hooks:
            _call_hook(hook.on_finish, job, warn)
        return job

    def _open_store(
        self,
        store: StateStore | Callable[[], StateStore] | None,
        warn: Callable[[str], None],
        store_warnings: Callable[[str], None] | None = None,
    ) -> StateStore | None:
        """The store, when history, a breaker or the health gate needs it; None if unusable.
        ``store_warnings`` receives the store's own warnings (Redis away: the fallback)."""
        spec = self.spec
        if not (spec.history or spec.breaker or spec.check or spec.watch_health is not None):
            return None
        try:
            if store is None:
                from reliactl.state import open_state

                return open_state(self.config, warn=store_warnings)
            if callable(store) and not hasattr(store, "add_run"):
                return store()
            return store  # type: ignore[return-value]
        except ReliactlError as exc:
            lost = [
                *(["run history"] if spec.history else []),
                *(["--breaker"] if spec.breaker else []),
            ]
            what = " and ".join(lost) + " disabled" if lost else "health state kept in memory"
            if lost and spec.check:
                what += ", health state kept in memory"
            warn(f"warning: state store unusable, {what}: {exc}")
            return None

    def _health_gate(
        self,
        store: StateStore | None,
        warn: Callable[[str], None],
        seen: dict[str, HealthReport],
        watch: _HealthWatch | None = None,
    ) -> Gate:
        """Every configured health check, once; CRITICAL refuses (exit 75).

        The checks share the state store with `reliactl health` (debounce streaks, the CPU
        sample), so a debounced check counts the gate's observations too. No alert is sent.
        With --watch-health (``watch``), the gate's "kept in memory" line is the run's one.
        """
        from reliactl.health.model import Status
        from reliactl.runner import GateRefusal

        monitor = self._health_monitor(store)
        store_line = warn if watch is None else watch.said_by_gate(warn)

        def gate() -> GateRefusal | None:
            try:
                report = _bounded_round(monitor, store_line)
            except Exception as exc:  # the checking itself broke: health is unknown, not critical
                warn(f"warning: health checks could not run ({_one_line(str(exc))}); starting")
                return None
            seen["report"] = report
            status = report.overall_status
            if status is Status.OK:
                return None
            if status is Status.CRITICAL:
                bad = [m for m in report.metrics.values() if m.status is Status.CRITICAL]
                return GateRefusal(TEMPFAIL, f"health is CRITICAL: {_named(bad)}")
            what = _named(report.problems) if report.metrics else "no health checks are enabled"
            warn(f"warning: health is {status.value}: {what}; starting anyway")
            return None

        return gate

    def _health_monitor(self, store: StateStore | None) -> Any:
        from reliactl.health.monitor import HealthMonitor

        config = self.config
        monitor = HealthMonitor(config.health_monitor, store=store, full_config=config)
        try:
            monitor.checks()  # a setup that validation let through still fails here, not later
        except (ReliactlError, ValueError) as exc:
            raise GateSetupError(f"invalid health configuration: {_one_line(str(exc))}") from None
        return monitor

    def _health_watch(self, store: StateStore | None) -> _HealthWatch:
        """--watch-health: the gate's checks again while the command runs (in the runner's
        watch thread). CRITICAL stops the job (on_critical "stop") or is logged once each time
        health turns CRITICAL ("warn"); checks that cannot run are a warning, never a stop."""
        return _HealthWatch(self._health_monitor(store), self.spec.on_critical == "stop")

    def _start_hook(self, start: JobStart, warn: Callable[[str], None]) -> Gate | None:
        """A last gate that admits always and tells the hooks the command starts."""
        hooks = self.spec.hooks
        if not hooks:
            return None

        def starting() -> GateRefusal | None:
            for hook in hooks:
                _call_hook(hook.on_start, start, warn)
            return None

        return starting


class _HealthWatch:
    """The Watch of --watch-health (see PreparedJob._health_watch), and the one line a run
    that says the health state was kept in memory (a busy store): the --require-healthy
    gate's round says it (``said_by_gate``), else a round's verdict says it (after that
    round's CRITICAL line, in the next round), and ``flush`` at the end of the run says it if
    the runner never logged that verdict: the job was stopped by a CRITICAL round or ended
    before the next round, or the verdict came after the job's end. Exactly once either way
    (``passing`` sees what the runner logs). A round still going on when the job ended says
    nothing (its results are not used)."""

    def __init__(self, monitor: Any, stop: bool) -> None:
        self.monitor, self.stop = monitor, stop
        self.was_critical = False
        self.store_line: str | None = None  # the first round's store line (watch thread)
        self.offered = False  # returned as a verdict (watch thread)
        self.said = False  # logged (the run's thread)

    def _note(self, text: str) -> None:
        if self.store_line is None:
            self.store_line = text

    def __call__(self) -> WatchVerdict | None:
        from reliactl.health.model import Status
        from reliactl.runner import WatchVerdict

        try:
            report = _bounded_round(self.monitor, self._note)
        except Exception as exc:
            return WatchVerdict(False, f"warning: health checks could not run: {exc}")
        critical = report.overall_status is Status.CRITICAL
        turned, self.was_critical = critical and not self.was_critical, critical
        if critical:
            bad = [m for m in report.metrics.values() if m.status is Status.CRITICAL]
            text = f"health is CRITICAL during the run: {_named(bad)}"
            if self.stop:
                return WatchVerdict(True, text)
            if turned:
                return WatchVerdict(False, f"warning: {text}; running on")
        line = self.store_line
        if line is not None and not self.offered:  # a round's CRITICAL line goes first
            self.offered = True
            return WatchVerdict(False, line)
        return None

    def said_by_gate(self, warn: Callable[[str], None]) -> Callable[[str], None]:
        """The --require-healthy gate's store line (its round, before the job and before any
        of these rounds): said through ``warn`` and the run's one; no round nor ``flush``
        says it again."""

        def say(text: str) -> None:
            if self.store_line is None:
                self.store_line = text
            if not self.said:
                self.said = self.offered = True
                warn(text)

        return say

    def passing(self, emit: EventCallback) -> EventCallback:
        """The runner's event callback: ``emit``, noting when the store line is logged."""

        def on_event(event: RunEvent) -> None:
            if not self.said and event.kind == "health" and event.message == self.store_line:
                self.said = True
            emit(event)

        return on_event

    def flush(self, warn: Callable[[str], None]) -> None:
        """After the runner: the store line, if a round met the busy store and the runner
        did not log it; later rounds (one left running) say nothing."""
        line = self.store_line
        if line is not None and not self.said:
            self.said = True
            warn(line)
        self.offered = True


class StoreWarnings:
    """The state store's warnings (the ``warn`` of ``open_state``), held back while
    ``holding`` (see PreparedJob.run): passed on to ``emit`` (default: logged as the store
    logs them) by ``gate`` under the lock or ``release``, or dropped."""

    def __init__(self, emit: Callable[[str], None] | None = None) -> None:
        self.holding = False
        self.pending: list[str] = []
        self._emit = emit or _log_store_warning

    def __call__(self, message: str) -> None:
        if self.holding:
            self.pending.append(message)
        else:
            self._emit(message)

    def release(self) -> None:
        self.holding = False
        pending, self.pending = self.pending, []
        for message in pending:
            self._emit(message)

    def drop(self) -> None:
        self.holding = False
        self.pending = []

    def gate(self) -> None:
        """A gate that never refuses: the lock is taken, so the store's warnings apply."""
        self.release()


def _log_store_warning(message: str) -> None:
    import logging

    logging.getLogger("reliactl.state").warning("%s", message)


def _call_hook(fn: Callable[[Any], None], arg: Any, warn: Callable[[str], None]) -> None:
    try:
        fn(arg)
    except Exception as exc:  # a hook never ends the job
        what = getattr(fn, "__qualname__", repr(fn))
        warn(f"warning: hook {what} failed: {_one_line(str(exc) or type(exc).__name__)}")


class _BreakerGate:
    """The --breaker gate and the one call the run's outcome makes on the breaker."""

    def __init__(
        self,
        name: str | None,
        config: Config,
        store: StateStore | None,
        options: RunOptions,
        warn: Callable[[str], None],
    ) -> None:
        self.name = name
        self.config = config
        self.store = store
        self.options = options
        self.warn = warn
        self.admission: Any = None
        self.info: dict[str, Any] | None = None
        self.on_change: Callable[[Any], None] | None = None  # state changes (tracing)

    def gate(self) -> Gate | None:
        if not self.name or self.store is None:
            return None
        return self._admit

    def _admit(self) -> GateRefusal | None:
        from reliactl.breaker import get_persistent_breaker
        from reliactl.errors import CircuitOpenError
        from reliactl.runner import GateRefusal
        from reliactl.state.base import bounded_waits, store_busy

        name = self.name
        assert name is not None and self.store is not None
        breaker = None
        try:
            breaker = get_persistent_breaker(name, self.config, self.store)
            if self.on_change is not None:
                breaker.on_state_change(self.on_change)
            with bounded_waits(self.store, BREAKER_ADMIT_WAIT):
                self.admission = breaker.admit(trial_timeout=_trial_timeout(self.options))
            self.admission.log_lost = False  # an outcome not recorded: report()'s warning
        except CircuitOpenError as exc:
            self.info = {"name": name, "decision": "rejected", "retry_after": exc.retry_after}
            return GateRefusal(UNAVAILABLE, str(exc), outcome="breaker_open")
        except (ReliactlError, ValueError) as exc:
            busy = isinstance(exc, ReliactlError) and store_busy(exc)
            if busy and breaker is not None:
                refused = self._as_read(breaker)
                if refused is not None:
                    return refused
            why = f" (busy: gave up after {BREAKER_ADMIT_WAIT:g}s)" if busy else ""
            self.warn(f"warning: breaker {name!r} unusable, running without it: {exc}{why}")
            return None
        self.info = {"name": name, "decision": "admitted", "trial": self.admission.trial}
        return None

    def _as_read(self, breaker: Any) -> GateRefusal | None:
        """The admission's write given up on a busy store: the breaker enforced as its state
        reads (reads go on while another process holds the write lock), nothing counted or
        reserved. Open (no trial due yet) or half-open with its trial slots taken: refused
        as usual; a trial due: refused too, as it could not be reserved (a trial nobody
        reserved is one more call to a recovering service, from every such run). None
        (fail open) when the state cannot be read either, or the breaker is closed."""
        from reliactl.errors import CircuitOpenError
        from reliactl.runner import GateRefusal
        from reliactl.state.base import bounded_waits

        name = breaker.name
        try:
            with bounded_waits(self.store, BREAKER_ADMIT_WAIT):
                admitted, trial, retry_after, state = breaker.would_admit(
                    trial_timeout=_trial_timeout(self.options)
                )
        except (ReliactlError, ValueError):
            return None
        if admitted and not trial:
            return None
        self.info = {"name": name, "decision": "rejected", "retry_after": retry_after}
        busy = f"the state store is busy (gave up after {BREAKER_ADMIT_WAIT:g}s)"
        if trial:
            text = f"circuit breaker '{name}' is due a trial call; not reserved: {busy}"
        else:
            text = f"{CircuitOpenError(name, retry_after, state)} (rejection not counted: {busy})"
        return GateRefusal(UNAVAILABLE, text, outcome="breaker_open")

    def ignore(self) -> None:
        if self.admission is not None:
            self.admission.ignore()
            self._lost("ignored")

    def report(self, result: RunResult) -> None:
        """The run's outcome, after all retries, is one call of the breaker."""
        admission = self.admission
        if admission is None:
            return
        try:
            if result.outcome == "success":
                admission.success()
                recorded = "success"
            elif result.outcome in BREAKER_FAILURES:
                timed_out = " (timeout)" if result.outcome == "timeout" else ""
                admission.failure(f"exit {result.exit_code}{timed_out}")
                recorded = "failure"
            else:  # interrupted, lock busy, skipped or gated: the service was not tried
                admission.ignore()
                recorded = "ignored"
        except ReliactlError:
            recorded = "not recorded"
        if self._lost(recorded):
            recorded = "not recorded"
        self.info = {**(self.info or {}), "recorded": recorded}

    def _lost(self, what: str) -> bool:
        """The outcome the store did not take (a busy store past RUN_RECORD_WAIT, one that
        broke): one warning line of the run, as its history row's, not the breaker's log."""
        lost = None if self.admission is None else self.admission.lost
        if lost is None:
            return False
        from reliactl.state.base import store_busy

        why = f" (busy: gave up after {RUN_RECORD_WAIT:g}s)" if store_busy(lost) else ""
        self.warn(
            f"warning: breaker {self.name!r}: the run's outcome ({what}) not recorded: {lost}{why}"
        )
        return True


def _supervised(
    options: RunOptions,
    emit: EventCallback,
    warn: Callable[[str], None],
    output: OutputSink | None,
    gate: Gate | None,
    watch: _HealthWatch | None,
) -> RunResult:
    """The Runner's run of the job; --watch-health's store line said once however it ended
    (``_HealthWatch.flush``)."""
    from reliactl.runner import Runner

    if watch is None:
        return Runner(options, on_event=emit, output=output, gate=gate).run()
    try:
        return Runner(
            options, on_event=watch.passing(emit), output=output, gate=gate, watch=watch
        ).run()
    finally:
        watch.flush(warn)


def _bounded_round(monitor: Any, warn: Callable[[str], None]) -> HealthReport:
    """One round of ``monitor``'s checks whose store operations (the CPU sample, debounce
    streaks, a job check's run history) wait on a store another process holds locked, or
    for another thread's operation, only until HEALTH_STORE_WAIT after the round began; what
    fails is done in memory, as without a store (a job check whose history was not read is
    UNKNOWN, "run history not read: ..."), and is one ``warn`` line."""
    records = monitor.records
    with records.bounded(HEALTH_STORE_WAIT):
        report: HealthReport = monitor.run_now()
    exc = records.given_up
    if exc is not None:
        from reliactl.state.base import store_busy

        why = f" (busy: gave up after {HEALTH_STORE_WAIT:g}s)" if store_busy(exc) else ""
        warn(f"warning: health state kept in memory for this run: {exc}{why}")
    return report


def _runner_identity() -> dict[str, Any]:
    """Who writes a "running" row: this process (``pid``, and ``pid_start``, its start in
    clock ticks since boot, so that a reused pid is not read as the run going on) on this
    host (``schedule.record_outcome``)."""
    from reliactl._procfs import start_ticks

    pid = os.getpid()
    return {"pid": pid, "pid_start": start_ticks(pid), "host": hostname()}


def _trial_timeout(options: RunOptions) -> float | None:
    """How long a half-open trial may take: the run's own bound, when it has one."""
    if options.total_timeout is not None:
        return float(options.total_timeout)
    if options.timeout is not None:
        return float(options.timeout) * (options.retry.max_retries + 1)
    return None


def _chain_gates(gates: Sequence[Gate]) -> Gate | None:
    """One gate that asks each in turn and stops at the first refusal."""
    if not gates:
        return None

    def chained() -> GateRefusal | None:
        for gate in gates:
            refusal = gate()
            if refusal is not None:
                return refusal
        return None

    return chained


def _scope(spec: JobSpec, config: Config) -> dict[str, Any]:
    """The lock's scope fields of LockOptions (fleet: the lease and how to open the store)."""
    scope = spec.lock_scope or config.run.lock_scope
    if scope not in ("host", "fleet"):
        raise JobSpecError(f"lock scope must be host or fleet, got {scope!r}")
    if scope == "host":
        return {}
    lease = config.run.lock_lease
    bound = config.state.connect_timeout + config.state.operation_timeout
    if lease / 3 <= bound:
        raise JobSpecError(
            f"run.lock_lease {lease:g}s is too short for the store's timeouts: a renewal every"
            f" third of it must outlast one call (state.connect_timeout +"
            f" state.operation_timeout = {bound:g}s)"
        )

    def open_leases() -> Any:
        from reliactl.state import open_leases

        return open_leases(config)

    return {"scope": "fleet", "lease": lease, "open_leases": open_leases}


def _known_away(options: RunOptions, store: Any, config: Config) -> RunOptions:
    """``options`` whose fleet lock's first ``open_leases`` call fails at once with the
    reason the run's store just found Redis unreachable (``FleetStore.unreachable``), when
    that store is the Redis the lock uses (``state.url``): a hung Redis cost the store's
    connect timeout and then the lock's again, twice the bound DESIGN states for a command.
    Later calls (within --lock-wait) connect again."""
    lock = options.lock
    if lock is None or lock.scope != "fleet" or lock.open_leases is None:
        return options
    open_leases = lock.open_leases
    asked = False

    def opener() -> Any:
        nonlocal asked
        if not asked:
            asked = True
            unreachable = getattr(store, "unreachable", None)
            reason = unreachable() if callable(unreachable) else None
            if reason is not None and _same_store(store, config):
                raise reason
        return open_leases()

    return replace(options, lock=replace(lock, open_leases=opener))


def _same_store(store: Any, config: Config) -> bool:
    """Whether ``store`` is the one ``state.url`` names (a caller may pass another)."""
    from reliactl.state.url import StateURLError, parse_state_url

    try:
        url = parse_state_url(config.state.url, config.state.path)
    except StateURLError:
        return False
    return bool(getattr(store, "location", None) == url.shown())


def _with_name(options: RunOptions, name: str) -> RunOptions:
    if options.name == name:
        return options
    return replace(options, name=name)


def _finish_history(
    store: StateStore | None,
    run_id: int | None,
    name: str,
    command: str,
    started_at: float,
    result: RunResult | None,
    outcome: str,
    message: str | None,
    warn: Callable[[str], None],
) -> int | None:
    """Write the run's row (its start's row was written: ``run_id``; else the whole row) and
    return its id; a row the store refuses is one warning line, never a failure."""
    if store is None:
        return run_id
    from reliactl.state.base import RunRecord

    data: dict[str, Any] = {"message": message} if message else {}
    if result is not None:
        data = {
            "attempts": [a.to_dict() for a in result.attempts],
            "lock_wait": result.lock_wait,
            **({"fencing_token": result.fencing_token} if result.fencing_token else {}),
            "interrupted_by": result.interrupted_by,
            "message": result.message,
            "pid": os.getpid(),
            "host": hostname(),
            "peak_rss": result.peak_rss,
            "cpu_time": None if result.cpu_time is None else round(result.cpu_time, 6),
        }
    record = RunRecord(
        name=name,
        command=command,
        started_at=started_at,
        ended_at=time.time(),
        attempts=len(result.attempts) if result else 0,
        exit_code=result.exit_code if result else INTERNAL,
        outcome=outcome,
        data=data,
    )
    try:
        if run_id is None:
            return store.add_run(record)
        store.finish_run(run_id, record)
    except ReliactlError as exc:
        from reliactl.state.base import store_busy

        why = f" (busy: gave up after {RUN_RECORD_WAIT:g}s)" if store_busy(exc) else ""
        warn(f"warning: run not recorded in the history: {exc}{why}")
    return run_id


# --------------------------------------------------------------------------- preparing


def prepare_job(spec: JobSpec, config: Config | None = None) -> PreparedJob:
    """Check ``spec`` against ``config`` (default: get_reliability_config()) without running.

    Raises JobSpecError for an invalid lock name or an impossible retry policy, and
    ChaosError for ``spec.chaos`` on a store marked production (``state.production``) unless
    ``chaos.force``.
    """
    from reliactl.runner import LockOptions, RunOptions, RunRetryPolicy

    if config is None:
        from reliactl.config import get_reliability_config

        config = get_reliability_config()
    if not spec.command:
        raise JobSpecError("no command given")
    if spec.chaos is not None:  # a rehearsal must not open a breaker a fleet shares
        from reliactl.chaos import refuse_on_production

        refuse_on_production(config)
    from reliactl import locks

    lock_opts = None
    ambiguous: str | None = None
    try:
        if spec.wants_lock:
            if spec.lock_name is not None:  # "" too: an empty name is refused, never replaced
                lock_name = locks.check_name(spec.lock_name)
            else:
                lock_name, ambiguous = locks.derive_lock_name(spec.command)
            lock_opts = LockOptions(
                path=os.path.join(config.run.lock_dir, lock_name + ".lock"),
                wait=spec.lock_wait,
                skip_if_locked=spec.skip_if_locked,
                allow_network_fs=spec.lock_on_nfs,
                name=lock_name,
                **_scope(spec, config),
            )
            name = spec.name or lock_name
        else:
            # The same default name as with a lock, so a job's history is one list either way.
            name = spec.name or locks.lock_name_for(spec.command)
    except LockError as exc:
        raise JobSpecError(str(exc)) from None

    retrying = spec.retry or spec.max_retries is not None
    max_retries = 0
    strategy = None
    max_elapsed = None
    if retrying:
        from reliactl.retry import strategy_from_config

        max_retries = spec.max_retries if spec.max_retries is not None else config.retry.max_retries
        if max_retries < 0:
            raise JobSpecError(f"retry policy: max_retries must be >= 0, got {max_retries}")
        try:
            strategy = strategy_from_config(
                config.retry,
                strategy=spec.strategy,
                base_delay=spec.base_delay,
                max_delay=spec.max_delay,
                multiplier=spec.multiplier,
                jitter=spec.jitter,
                max_retries=max_retries,
            )
        except (TypeError, ValueError) as exc:
            raise JobSpecError(f"retry policy: {exc}") from None
        max_elapsed = (
            config.retry.max_elapsed if spec.max_elapsed is FROM_CONFIG else spec.max_elapsed
        )
        if max_elapsed is not None and not max_elapsed > 0:
            raise JobSpecError(f"retry policy: max_elapsed must be > 0, got {max_elapsed}")
    policy = RunRetryPolicy(
        max_retries=max_retries,
        strategy=strategy,
        retry_on=spec.retry_on,
        no_retry_on=spec.no_retry_on,
        retry_on_timeout=spec.retry_on_timeout,
        max_elapsed=max_elapsed,
    )
    limits = _limits(spec, config)
    options = RunOptions(
        command=tuple(spec.command),
        name=name,
        timeout=config.run.timeout if spec.timeout is FROM_CONFIG else spec.timeout,
        total_timeout=spec.total_timeout,
        kill_after=config.run.kill_after if spec.kill_after is FROM_CONFIG else spec.kill_after,
        timeout_signal=spec.timeout_signal,
        preserve_status=spec.preserve_status,
        leave_running=spec.leave_running,
        chaos=spec.chaos,
        retry=policy,
        lock=lock_opts,
        env=spec.env,
        cwd=spec.cwd,
        watch_interval=spec.watch_health,
        **limits,
    )
    return PreparedJob(spec, config, options, ambiguous)


def _limits(spec: JobSpec, config: Config) -> dict[str, Any]:
    """The resource limits of ``spec``, FROM_CONFIG taken from run.*; JobSpecError if invalid."""
    run = config.run
    got: dict[str, Any] = {}
    for key in ("memory_max", "cpu_time", "nice", "io_class", "max_output"):
        value = getattr(spec, key)
        if value is FROM_CONFIG:
            value = getattr(run, key, None)
        got[key] = None if value == "" else value
    from reliactl.durations import MAX_DURATION, MAX_INTERVAL, MAX_SIZE

    for key, most in (
        ("memory_max", MAX_SIZE),
        ("max_output", MAX_SIZE),
        ("cpu_time", MAX_DURATION),
    ):
        if got[key] is not None and not 0 < got[key] <= most:  # the CLI's and files' bounds
            raise JobSpecError(f"{key} must be > 0 and at most {int(most)}, got {got[key]}")
    if got["nice"] is not None and not -20 <= got["nice"] <= 19:
        raise JobSpecError(f"nice must be from -20 to 19, got {got['nice']}")
    if got["io_class"] is not None and got["io_class"] not in ("idle", "best-effort"):
        raise JobSpecError(f"io_class must be idle or best-effort, got {got['io_class']!r}")
    if spec.watch_health is not None and not 0 < spec.watch_health <= MAX_INTERVAL:
        raise JobSpecError(f"watch_health must be > 0 and at most 7d, got {spec.watch_health}")
    if spec.on_critical not in ("warn", "stop"):
        raise JobSpecError(f"on_critical must be warn or stop, got {spec.on_critical!r}")
    return got


def run_job(
    spec: JobSpec,
    *,
    config: Config | None = None,
    store: StateStore | Callable[[], StateStore] | None = None,
    on_event: EventCallback | None = None,
    output: OutputSink | None = None,
) -> JobResult:
    """Run one job as `reliactl run` does (lock, gates, retries, time limits, history).

    ``config`` defaults to get_reliability_config(); ``store`` to the configuration's state
    store (a StateStore, or a function that opens one). ``on_event`` receives reliactl's own
    lines (RunEvent; kind "warning" for the engine's warnings); ``output`` (optional) receives
    the command's output instead of the inherited stdout/stderr. Never prints.
    """
    return prepare_job(spec, config).run(store=store, on_event=on_event, output=output)


# --------------------------------------------------------------------------- history rules


def record_outcome(record: RunRecord, *, host: str | None = None) -> str:
    """A record's outcome; a "running" one whose reliactl (on this host) is gone is "lost"
    (``schedule.record_outcome``, the one owner: job health judges by it too)."""
    from reliactl.schedule import record_outcome as judged

    return judged(record, host=host)


def newest_decisive(records: Sequence[RunRecord]) -> RunRecord | None:
    """The newest record (of ``records``, newest first) that says how the job is doing.

    A tick that found the lock busy (skipped or busy) says nothing about the job: look past it
    to the newest run that started (or was refused), else a hung job whose ticks keep skipping
    would look healthy forever. None when every record is such a tick (or there is none).
    """
    for record in records:
        if record.outcome not in NOT_DECISIVE:
            return record
    return None
