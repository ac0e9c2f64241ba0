"""Run checks concurrently, each within its timeout, and aggregate them into a HealthReport.

One hung or crashing check becomes UNKNOWN for itself only; the others report on time.
Debounce counters and the CPU sample live in the state store (kind "kv"), so cron runs a
minute apart share them; without a store they live in memory for the life of the process.

The seed's API is kept: ``health_monitor.register_custom_check(name, fn)``,
``await health_monitor.check_all_health()``, ``await start_health_monitoring(interval=60)``,
``await get_system_health()``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from reliactl.durations import format_duration
from reliactl.errors import HealthError, ReliactlError
from reliactl.health.checks import (
    DEFAULT_TIMEOUT,
    Check,
    CheckContext,
    coerce_result,
    custom_check,
    run_sync_check,
    soft_nofile_limit,
    system_checks,
)
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.health.records import Record, RecordStore
from reliactl.ranges import parse_range

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import asyncio
    import logging
    from dataclasses import dataclass, replace
    from typing import Any

    from reliactl.config import Config, HealthMonitorConfig
    from reliactl.health.alerts import AlertOutcome
    from reliactl.state import StateStore
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, replace


def _log() -> logging.Logger:
    """The "reliactl.health" logger; logging is imported at the first message (with traceback,
    string and textwrap it cost ~5 ms of every `health` start, issue 21)."""
    import logging

    return logging.getLogger("reliactl.health")


# --------------------------------------------------------------------------- running

FDS_PER_CHECK = 2  # an http/tcp check's socket (and a resolver's), a thread's spare
FDS_PER_PROGRAM = 5  # a command check: its output pipe, and while spawning two more and /dev/null
FDS_SPARE = 32  # the state store, its journal, logging, the event loop's own


def fd_bound(checks: Sequence[Check], max_parallel: int) -> int:
    """How many of ``checks`` may run at once so that each gets its file descriptors.

    A run asking for more than the soft ``RLIMIT_NOFILE`` allows (often 1024) raises the
    soft limit towards the hard one, as servers do at start (raised, never lowered, and only
    by what the run needs); if the hard limit is short too, fewer checks run at once rather
    than some failing with "Too many open files" against a healthy service."""
    in_flight = max(1, min(max_parallel, len(checks)))
    each = FDS_PER_PROGRAM if any(c.kind == "command" for c in checks) else FDS_PER_CHECK
    soft_now = soft_nofile_limit()  # enough already: no `resource` import (~0.2 ms)
    if soft_now is not None and soft_now >= FDS_SPARE + in_flight * each + _open_fds():
        return in_flight
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        return in_flight
    used = _open_fds()
    need = used + FDS_SPARE + in_flight * each
    if soft == resource.RLIM_INFINITY or soft >= need:
        return in_flight
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):  # pragma: no cover - refused: fit within the soft one
            pass
    return max(1, min(in_flight, (soft - used - FDS_SPARE) // each))


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - no /proc
        return FDS_SPARE


def _timed_out(check: Check) -> HealthMetric:
    return HealthMetric(
        check.name,
        Status.UNKNOWN,
        None,
        f"timed out after {format_duration(check.timeout)}",
        kind=check.kind,
        warn=check.warn,
        critical=check.critical,
    )


def _crashed(check: Check, exc: BaseException) -> HealthMetric:
    text = str(exc)
    return HealthMetric(
        check.name,
        Status.UNKNOWN,
        None,
        f"check failed: {type(exc).__name__}{': ' + text if text else ''}",
        kind=check.kind,
        warn=check.warn,
        critical=check.critical,
    )


async def run_check(
    check: Check, ctx: CheckContext, slots: asyncio.Semaphore | None = None
) -> HealthMetric:
    """One check within its timeout; any failure or hang is UNKNOWN with the reason.

    With ``slots``, the check first waits for one (``health_monitor.max_parallel``); its
    timeout and duration count from then, so a check queued behind others never times out
    for their sake."""
    if slots is None:
        return await _run_check(check, ctx)
    async with slots:
        return await _run_check(check, ctx)


async def _run_check(check: Check, ctx: CheckContext) -> HealthMetric:
    import asyncio

    started = time.monotonic()
    try:
        if check.is_async:
            raw = await asyncio.wait_for(check.func(ctx), check.timeout)
        else:
            raw = await asyncio.wait_for(run_sync_check(check, ctx), check.timeout)
            if asyncio.iscoroutine(raw) or isinstance(raw, asyncio.Future):
                remaining = max(0.001, check.timeout - (time.monotonic() - started))
                raw = await asyncio.wait_for(raw, remaining)
        metric = coerce_result(check, raw)
    except asyncio.TimeoutError:
        metric = _timed_out(check)
    except Exception as exc:
        metric = _crashed(check, exc)
    return replace(metric, duration=round(time.monotonic() - started, 6))


# How long the checks may run one after another in one thread before every check not started
# yet gets its own (issue 21 item 4). A thread costs ~0.15 ms of CPU to start and hand the GIL
# to and back (measured: nine cheap checks, 1.5 ms in threads of their own against 0.05 ms in
# one); a cron start's checks (/proc, a stat, a record) finish in well under this. A check
# that takes longer (a slow program, a hung mount) delays those queued behind it by at most
# this long; its own timeout, like every check's, counts from its own start.
LANE_S = 0.01
# The longest the caller's thread waits without looking at signals. A Ctrl-C that reaches the
# process while that thread is about to block, or that the kernel hands to another thread
# (6.x kernels give a signal a process sends itself to the sending thread), does not wake a
# lock wait: CPython runs the handler, and so raises KeyboardInterrupt, only when the wait
# returns. Without a bound that was the next check's timeout (30 s by default), while the
# lane went on starting queued checks.
INTERRUPT_POLL_S = 0.2


def run_checks_in_threads(
    checks: Sequence[Check],
    records: RecordStore,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    max_parallel: int = 256,
    lane_s: float = LANE_S,
) -> HealthReport:
    """As run_checks for sync checks only, without asyncio (cheaper for a cron run).

    The checks start one after another in one daemon thread (the lane) for up to ``lane_s``
    seconds; then, or as soon as a check times out, every check not started yet runs in a
    daemon thread of its own, at most ``max_parallel`` at once (the lane's check counts).
    A check's timeout counts from its own start; one still running at its timeout is
    UNKNOWN and abandoned (it never delays the exit, and its slot goes to the next check).
    """
    if any(check.is_async for check in checks):
        raise HealthError("run_checks_in_threads takes sync checks only")
    started = time.monotonic()
    checked_at = clock()
    round_ = _ThreadedRound(
        checks,
        CheckContext(records=records.round_view(), clock=clock, sleep=sleep),
        max(1, fd_bound(checks, max_parallel)),
        started + lane_s,
    )
    done = [metric for metric in round_.run() if metric is not None]
    return _aggregate(checks, done, records, checked_at, started)


class _ThreadedRound:
    """One run_checks_in_threads round: the lane, the checks' own threads, their timeouts.

    ``changed`` guards ``waiting``, ``running``, ``lane_open`` and the boxes' "done"."""

    def __init__(
        self, checks: Sequence[Check], ctx: CheckContext, max_parallel: int, lane_until: float
    ) -> None:
        self.checks, self.ctx, self.max_parallel = checks, ctx, max_parallel
        self.lane_until = lane_until
        self.changed = threading.Condition()
        self.boxes: list[dict[str, Any]] = [{} for _ in checks]
        self.results: list[HealthMetric | None] = [None] * len(checks)
        self.waiting = list(range(len(checks)))[::-1]  # popped from the end: in order
        self.running: dict[int, float] = {}  # index -> when it started
        self.lane_open = bool(self.waiting)  # the lane still takes checks

    def target(self, check: Check, box: dict[str, Any]) -> None:
        try:
            box["raw"] = check.func(self.ctx)
        except BaseException as exc:
            box["exc"] = exc
        finally:
            box["end"] = time.monotonic()
            with self.changed:
                box["done"] = True
                if not self.lane_open:  # an open lane's checks are collected when it closes
                    self.changed.notify()

    def lane(self) -> None:
        while True:
            with self.changed:
                if not (self.lane_open and self.waiting):
                    self.lane_open = False
                    self.changed.notify()
                    return
                index = self.waiting.pop()
                self.running[index] = time.monotonic()
            self.target(self.checks[index], self.boxes[index])

    def run(self) -> list[HealthMetric | None]:
        with self.changed:
            try:
                if self.lane_open:
                    threading.Thread(target=self.lane, name="reliactl-check", daemon=True).start()
                while True:
                    if self.lane_open and time.monotonic() >= self.lane_until:
                        self.lane_open = False  # slow checks: the rest start in their own threads
                    self._start_own_threads()
                    self._settle()
                    if not (self.waiting or self.running):
                        return self.results
                    if not self._free_slot():
                        wait = self._next_deadline() - time.monotonic()
                        self.changed.wait(min(max(0.0, wait), INTERRUPT_POLL_S))
            finally:
                # Whatever ends the round (Ctrl-C, an error), no check starts after it: the
                # lane would otherwise go on starting the queued ones, unwatched.
                self.lane_open = False
                self.waiting.clear()

    def _free_slot(self) -> bool:
        """A check can start in a thread of its own now."""
        return not self.lane_open and bool(self.waiting) and len(self.running) < self.max_parallel

    def _start_own_threads(self) -> None:
        while self._free_slot():
            index = self.waiting.pop()
            self.running[index] = time.monotonic()
            threading.Thread(
                target=self.target, args=(self.checks[index], self.boxes[index]),
                name="reliactl-check", daemon=True,
            ).start()  # fmt: skip

    def _settle(self) -> None:
        """Collect the checks that returned, and time out those past their timeout."""
        now = time.monotonic()
        for index, begun in list(self.running.items()):
            check, box = self.checks[index], self.boxes[index]
            if box.get("done"):
                metric = _settled(check, box)
                self.results[index] = replace(metric, duration=round(box["end"] - begun, 6))
            elif now >= begun + check.timeout:
                self.results[index] = replace(_timed_out(check), duration=round(now - begun, 6))
                self.lane_open = False  # the lane may be the thread it holds
            else:
                continue
            del self.running[index]

    def _next_deadline(self) -> float:
        deadlines = [begun + self.checks[i].timeout for i, begun in self.running.items()]
        if self.lane_open:
            deadlines.append(self.lane_until)
            if self.waiting:  # the lane may start one unseen: no timeout ends before this
                timeouts = (self.checks[i].timeout for i in self.waiting)
                deadlines.append(time.monotonic() + min(timeouts))
        return min(deadlines)


def _settled(check: Check, box: dict[str, Any]) -> HealthMetric:
    """The metric of a check whose thread returned (or raised) in time."""
    if "exc" in box:
        return _crashed(check, box["exc"])
    raw = box["raw"]
    close = getattr(raw, "close", None)
    if hasattr(raw, "__await__") and callable(close):
        close()  # a sync function that returned a coroutine: it needs an event loop
        return _crashed(check, TypeError("returned an awaitable; use check_all_health"))
    try:
        return coerce_result(check, raw)
    except Exception as exc:
        return _crashed(check, exc)


def _aggregate(
    checks: Sequence[Check],
    results: Sequence[HealthMetric],
    records: RecordStore,
    checked_at: float,
    started: float,
) -> HealthReport:
    metrics: dict[str, HealthMetric] = {}
    for check, result in zip(checks, results, strict=True):
        metric = result
        if check.adaptive is not None or check.forecast is not None:
            metric = _adapt(check, result, records, checked_at)
        try:
            metrics[check.name] = debounce(metric, check, records)
        except ReliactlError as exc:  # the state store failed: report, do not hide the result
            metrics[check.name] = replace(metric, message=f"{metric.message} (debounce: {exc})")
    report = HealthReport(
        # nothing checked is not "all is well": a cron job with an emptied config must notice
        overall_status=worst(m.status for m in metrics.values()) if metrics else Status.UNKNOWN,
        metrics=metrics,
        checked_at=checked_at,
        duration=round(time.monotonic() - started, 6),
    )
    _trace(report)
    return report


def _trace(report: HealthReport) -> None:
    """A span per check when tracing is on (reliactl.tracing.record_health). Tracing is on
    only through configure() (so reliactl.tracing is imported already) or an OTEL_* variable
    (tracing.exporters): without either, the module is not imported at all (~0.4 ms)."""
    from reliactl._switches import tracing_may_be_on

    if not tracing_may_be_on():
        return
    from reliactl import tracing

    tracing.record_health(report)


def _adapt(check: Check, metric: HealthMetric, records: RecordStore, now: float) -> HealthMetric:
    """The metric judged also by its learnt limits and forecast (reliactl.health.adaptive)."""
    from reliactl.health import adaptive

    windows = [s.window for s in (check.adaptive, check.forecast) if s is not None]
    try:
        samples = records.history(check.name, now - max(windows))
    except ReliactlError as exc:  # the state store failed: the fixed thresholds still apply
        return replace(metric, message=f"{metric.message} (history unavailable: {exc})")
    return adaptive.apply(metric, samples, now, check.adaptive, check.forecast)


def debounce(metric: HealthMetric, check: Check, records: RecordStore) -> HealthMetric:
    """Hold a check at OK until it was bad ``check.debounce`` times in a row (kept in "kv")."""
    if check.debounce <= 1:
        return metric
    held: list[tuple[int, str]] = []

    def step(prev: Record | None) -> Record | None:
        held.clear()  # the store may call this again (Redis: a lost WATCH race)
        streak = int((prev or {}).get("streak", 0))
        reported = str((prev or {}).get("reported", "OK"))
        if metric.status.is_ok:
            return {"streak": 0, "reported": "OK"}
        streak += 1
        if reported == "OK" and streak < check.debounce:
            held.append((streak, reported))
            return {"streak": streak, "reported": "OK"}
        return {"streak": streak, "reported": metric.status.value}

    records.update("kv", f"health:debounce:{check.name}", step)
    if not held:
        return metric
    streak = held[0][0]
    return replace(
        metric,
        status=Status.OK,
        message=f"{metric.message} ({metric.status.value} {streak}/{check.debounce}, debounced)",
        details={**metric.details, "debounced": metric.status.value, "streak": streak},
    )


async def run_checks(
    checks: Sequence[Check],
    records: RecordStore,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    max_parallel: int = 256,
) -> HealthReport:
    """Run ``checks`` concurrently, at most ``max_parallel`` at once, and aggregate them
    (the worst status wins)."""
    import asyncio

    started = time.monotonic()
    checked_at = clock()
    max_parallel = fd_bound(checks, max_parallel)
    ctx = CheckContext(
        records=records.round_view(), clock=clock, sleep=sleep, max_parallel=max_parallel
    )
    slots = asyncio.Semaphore(max_parallel)
    try:
        if any(check.kind == "http" for check in checks):
            ctx.prepare_http()  # import aiohttp and build the session before any clock starts
        results = await asyncio.gather(*(run_check(check, ctx, slots) for check in checks))
    finally:
        await ctx.aclose()
    return _aggregate(checks, results, records, checked_at, started)


# --------------------------------------------------------------------------- the monitor


class _Auto:
    pass


AUTO: Any = _Auto()


def _check_from_function(
    name: str,
    fn: Callable[..., Any],
    timeout: float | None,
    warn: object,
    critical: object,
    debounce: int,
    default_timeout: float,
) -> Check:
    import inspect

    takes_ctx = False
    try:
        takes_ctx = any(  # one required positional parameter: it wants the CheckContext
            p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in inspect.signature(fn).parameters.values()
        )
    except (TypeError, ValueError):
        pass
    if inspect.iscoroutinefunction(fn):

        async def run_async(ctx: CheckContext) -> Any:
            return await (fn(ctx) if takes_ctx else fn())

        func: Callable[[CheckContext], Any] = run_async
    else:

        def run_sync(ctx: CheckContext) -> Any:
            return fn(ctx) if takes_ctx else fn()

        func = run_sync
    ws = str(parse_range(warn)) if warn not in (None, "") else None
    cs = str(parse_range(critical)) if critical not in (None, "") else None
    return Check(
        name,
        "custom",
        func,
        timeout=timeout if timeout is not None else default_timeout,
        debounce=max(1, int(debounce)),
        warn=ws,
        critical=cs,
    )


@dataclass(frozen=False)
class MonitoringTask:
    """A background monitoring loop; ``await task.stop()`` ends it."""

    task: asyncio.Task[None]
    interval: float
    monitor: HealthMonitor

    @property
    def running(self) -> bool:
        return not self.task.done()

    async def stop(self) -> None:
        import asyncio

        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class HealthMonitor:
    """Built-in, configured and registered checks; run them, alert on changes.

    With no arguments it reads ``get_reliability_config()`` and the configured state store on
    first use (falling back to memory, with a logged warning, if the store cannot be opened).
    """

    def __init__(
        self,
        config: HealthMonitorConfig | None = None,
        *,
        store: StateStore | _Auto | None = AUTO,
        full_config: Config | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        state_dir: str | None = None,
    ) -> None:
        self._config = config
        self._full = full_config
        self._store_arg = store
        self._records: RecordStore | None = None
        self._state_dir = state_dir
        self.clock = clock
        self.sleep = sleep
        self._custom: dict[str, Check] = {}
        self._default_timeout: set[str] = set()
        self._task: MonitoringTask | None = None
        self.last_report: HealthReport | None = None

    # ---- configuration

    @property
    def config(self) -> HealthMonitorConfig:
        if self._config is None:
            if self._full is None:
                from reliactl.config import get_reliability_config

                self._full = get_reliability_config()
            self._config = self._full.health_monitor
        return self._config

    @property
    def records(self) -> RecordStore:
        if self._records is None:
            arg = self._store_arg
            store: StateStore | None = None if isinstance(arg, _Auto) else arg
            if isinstance(arg, _Auto):
                from reliactl.state import open_state

                for attempt in range(4):
                    try:
                        store = open_state(self._full)
                        break
                    except ReliactlError as exc:
                        if "locked" in str(exc) and attempt < 3:  # a concurrent first open
                            time.sleep(0.05 * (attempt + 1))
                            continue
                        _log().warning(
                            "health: state store unavailable, state kept in memory: %s", exc
                        )
                        break
            self._records = RecordStore(store)
        return self._records

    def _state_directory(self) -> str | None:
        if self._state_dir is not None:
            return self._state_dir
        store = self.records.store
        if store is not None and os.path.isabs(store.location):  # a file, not a redis:// URL
            return os.path.dirname(store.location)
        return None

    # ---- checks

    def register_custom_check(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        timeout: float | None = None,
        warn: object = None,
        critical: object = None,
        debounce: int = 1,
    ) -> None:
        """Add a check: ``fn()`` (sync or async) returns {"status", "value", "message"}.

        ``status`` may be OK/WARNING/CRITICAL/UNKNOWN or the seed's "healthy"; without a status
        the ``warn``/``critical`` Nagios ranges judge ``value``. A function taking one
        argument receives the CheckContext.
        """
        if not name or not isinstance(name, str):
            raise HealthError(f"a check needs a name, got {name!r}")
        self._custom[name] = _check_from_function(
            name, fn, timeout, warn, critical, debounce, DEFAULT_TIMEOUT
        )
        if timeout is None:
            self._default_timeout.add(name)
        else:
            self._default_timeout.discard(name)

    def unregister_custom_check(self, name: str) -> bool:
        self._default_timeout.discard(name)
        return self._custom.pop(name, None) is not None

    def checks(self) -> list[Check]:
        """Every check: built-in, then configured, then registered (a later name replaces)."""
        config = self.config
        out: dict[str, Check] = {}
        for check in system_checks(config, self._state_directory()):
            out[check.name] = check
        for spec in config.checks:
            out[spec.name] = custom_check(spec, config)
        if config.jobs_checks and self._full is not None and self._full.jobs:
            from reliactl.health.jobcheck import job_checks

            for check in job_checks(self._full.jobs, config.check_timeout):
                out[check.name] = check
        for name, registered in self._custom.items():
            timeout = config.check_timeout if name in self._default_timeout else None
            out[name] = registered if timeout is None else replace(registered, timeout=timeout)
        return list(out.values())

    def select(self, names: Sequence[str] | None) -> list[Check]:
        """The checks named (a group such as ``disk_usage`` selects ``disk_usage:*``)."""
        checks = self.checks()
        if not names:
            return checks
        chosen: list[Check] = []
        unknown = []
        for name in names:
            matched = [c for c in checks if c.name == name or c.name.split(":", 1)[0] == name]
            if not matched:
                unknown.append(name)
            for check in matched:
                if check not in chosen:
                    chosen.append(check)
        if unknown:
            known = ", ".join(sorted({c.name for c in checks}))
            raise HealthError(
                f"no check named {', '.join(map(repr, unknown))}; the checks are: {known}"
            )
        return chosen

    async def check_all_health(self, only: Sequence[str] | None = None) -> HealthReport:
        """Run every check (or those in ``only``) concurrently; never raises for a bad check."""
        report = await run_checks(
            self.select(only),
            self.records,
            clock=self.clock,
            sleep=self.sleep,
            max_parallel=self.config.max_parallel,
        )
        self.last_report = report
        return report

    def run_now(self, only: Sequence[str] | None = None) -> HealthReport:
        """check_all_health for a caller without an event loop (the CLI, a cron script).

        Sync checks run in threads without loading asyncio; any async check (http, tcp,
        python, a registered coroutine) makes it use asyncio.run.
        """
        checks = self.select(only)
        if any(check.is_async for check in checks):
            import asyncio

            report = asyncio.run(
                run_checks(
                    checks,
                    self.records,
                    clock=self.clock,
                    sleep=self.sleep,
                    max_parallel=self.config.max_parallel,
                )
            )
        else:
            report = run_checks_in_threads(
                checks,
                self.records,
                clock=self.clock,
                sleep=self.sleep,
                max_parallel=self.config.max_parallel,
            )
        self.last_report = report
        return report

    # ---- alerts

    def alert_manager(self, **kwargs: Any) -> Any:
        from reliactl.health.alerts import AlertManager
        from reliactl.health.alertstate import AlertPolicy

        config = self.config
        if self._full is not None:
            kwargs.setdefault("policy", AlertPolicy.from_config(self._full.alerts))
            kwargs.setdefault(
                "breakers", {n: j.breaker for n, j in self._full.jobs.items() if j.breaker}
            )
        return AlertManager(
            config.alerts,
            self.records,
            default_cooldown=config.alert_cooldown,
            clock=self.clock,
            **kwargs,
        )

    async def check_and_alert(
        self, only: Sequence[str] | None = None
    ) -> tuple[HealthReport, list[AlertOutcome]]:
        report = await self.check_all_health(only)
        outcomes: list[AlertOutcome] = []
        if self.config.alerts:
            outcomes = await self.alert_manager().process(report)
        return report, outcomes

    # ---- background monitoring

    async def start_monitoring(
        self,
        interval: float | None = None,
        on_report: Callable[[HealthReport], Any] | None = None,
    ) -> MonitoringTask:
        """Check (and alert) every ``interval`` seconds in the background until stopped."""
        import asyncio

        if self._task is not None and self._task.running:
            await self._task.stop()
        period = float(interval if interval is not None else self.config.check_interval)
        if period <= 0:
            raise HealthError(f"the interval must be positive, got {interval!r}")

        async def loop() -> None:
            while True:
                try:
                    report, outcomes = await self.check_and_alert()
                    for outcome in outcomes:
                        if not outcome.delivered:
                            _log().warning("health alert not delivered: %s", outcome.describe())
                    if on_report is not None:
                        result = on_report(report)
                        if asyncio.iscoroutine(result):
                            await result
                except asyncio.CancelledError:
                    raise
                except Exception:
                    _log().exception("health monitoring round failed")
                await asyncio.sleep(period)

        task = asyncio.get_running_loop().create_task(loop(), name="reliactl-health-monitor")
        self._task = MonitoringTask(task, period, self)
        return self._task

    async def stop_monitoring(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None


health_monitor = HealthMonitor()


async def start_health_monitoring(
    interval: float | None = None,
    on_report: Callable[[HealthReport], Any] | None = None,
) -> MonitoringTask:
    """The seed's entry point: monitor in the background with the global ``health_monitor``."""
    return await health_monitor.start_monitoring(interval, on_report)


async def stop_health_monitoring() -> None:
    await health_monitor.stop_monitoring()


async def get_system_health() -> HealthReport:
    """The seed's troubleshooting call: every check of the global monitor, once."""
    return await health_monitor.check_all_health()
