"""The monitor: concurrency, timeouts, aggregation, debounce and the seed's library API."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reliactl.config import HealthMonitorConfig
from reliactl.errors import HealthError
from reliactl.health.checks import Check
from reliactl.health.model import HealthReport, Status
from reliactl.health.monitor import HealthMonitor, run_checks_in_threads
from reliactl.health.records import RecordStore
from reliactl.state.sqlite import open_store

NO_SYSTEM = HealthMonitorConfig(system_checks=[])


def monitor(config: HealthMonitorConfig = NO_SYSTEM, **kw: Any) -> HealthMonitor:
    return HealthMonitor(config, store=kw.pop("store", None), **kw)


def test_a_hung_check_is_unknown_within_its_timeout_while_the_others_report() -> None:
    m = monitor()

    def hangs_sync() -> dict[str, Any]:
        time.sleep(60)
        return {"status": "ok"}

    async def hangs_async() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"status": "ok"}

    m.register_custom_check("stuck_thread", hangs_sync, timeout=0.3)
    m.register_custom_check("stuck_coroutine", hangs_async, timeout=0.3)
    m.register_custom_check("fine", lambda: {"status": "OK", "value": 1, "message": "fine"})
    started = time.monotonic()
    report = asyncio.run(m.check_all_health())
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert report.metrics["stuck_thread"].status is Status.UNKNOWN
    assert "timed out after 300ms" in report.metrics["stuck_thread"].message
    assert report.metrics["stuck_coroutine"].status is Status.UNKNOWN
    assert report.metrics["fine"].status is Status.OK
    assert report.overall_status is Status.UNKNOWN


def test_a_crashing_check_is_unknown_for_itself_only() -> None:
    m = monitor()
    m.register_custom_check("boom", lambda: 1 / 0)
    m.register_custom_check("fine", lambda: {"status": "healthy"})
    report = asyncio.run(m.check_all_health())
    assert report.metrics["boom"].status is Status.UNKNOWN
    assert "ZeroDivisionError" in report.metrics["boom"].message
    assert report.metrics["fine"].status is Status.OK


def test_checks_run_concurrently() -> None:
    m = monitor()
    for i in range(10):
        m.register_custom_check(f"slow{i}", lambda: time.sleep(0.3) or {"status": "ok"})
    started = time.monotonic()
    report = asyncio.run(m.check_all_health())
    assert time.monotonic() - started < 2.0
    assert report.overall_status is Status.OK


@pytest.mark.parametrize(
    ("words", "overall", "code"),
    [
        (["ok", "healthy"], Status.OK, 0),
        (["ok", "warning"], Status.WARNING, 1),
        (["warning", "critical", "unknown"], Status.CRITICAL, 2),
        (["ok", "unknown"], Status.UNKNOWN, 3),
        (["unknown", "warning"], Status.WARNING, 1),
    ],
)
def test_overall_status_and_exit_code(words: list[str], overall: Status, code: int) -> None:
    m = monitor()
    for i, word in enumerate(words):
        m.register_custom_check(f"c{i}", lambda w=word: {"status": w, "value": 1, "message": w})
    report = asyncio.run(m.check_all_health())
    assert report.overall_status is overall and report.exit_code == code


def test_value_without_status_is_judged_by_thresholds() -> None:
    m = monitor()
    m.register_custom_check(
        "queue", lambda: {"value": 120, "message": "queue"}, warn=100, critical=500
    )
    m.register_custom_check("garbage", lambda: 42)
    m.register_custom_check("odd", lambda: {"status": "purple"})
    report = asyncio.run(m.check_all_health())
    assert report.metrics["queue"].status is Status.WARNING
    assert report.metrics["queue"].perfdata[0].nagios() == "'queue'=120;100;500"
    assert report.metrics["garbage"].status is Status.UNKNOWN
    assert report.metrics["odd"].status is Status.UNKNOWN


def test_registered_check_may_take_the_context_and_be_async() -> None:
    m = monitor()

    async def with_ctx(ctx: Any) -> dict[str, Any]:
        return {"status": "ok", "message": type(ctx).__name__}

    m.register_custom_check("ctx", with_ctx)
    assert asyncio.run(m.check_all_health()).metrics["ctx"].message == "CheckContext"
    assert m.unregister_custom_check("ctx") and not m.unregister_custom_check("ctx")


def test_registered_checks_default_to_the_configured_timeout() -> None:
    m = monitor(HealthMonitorConfig(system_checks=[], check_timeout=0.2))
    m.register_custom_check("slow", lambda: time.sleep(5))
    report = asyncio.run(m.check_all_health())
    assert "timed out after 200ms" in report.metrics["slow"].message


def test_select_by_name_and_group(tmp_path: Path) -> None:
    config = HealthMonitorConfig(disk_paths=["/", str(tmp_path)], system_checks=["disk", "cpu"])
    m = HealthMonitor(config, store=None)
    names = [c.name for c in m.select(["disk_usage"])]
    assert names == ["disk_usage:/", f"disk_usage:{tmp_path}"]
    assert [c.name for c in m.select(["cpu_usage"])] == ["cpu_usage"]
    with pytest.raises(HealthError, match="no check named 'nope'"):
        m.select(["nope"])


def test_debounce_needs_n_consecutive_bad_runs_and_survives_between_processes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    state = {"word": "critical"}

    def run() -> HealthReport:
        m = HealthMonitor(NO_SYSTEM, store=open_store(db))  # a fresh "cron run" each time
        m.register_custom_check(
            "flappy", lambda: {"status": state["word"], "message": "x"}, debounce=3
        )
        return asyncio.run(m.check_all_health())

    first, second, third = run(), run(), run()
    assert first.metrics["flappy"].status is Status.OK
    assert "CRITICAL 1/3, debounced" in first.metrics["flappy"].message
    assert second.metrics["flappy"].status is Status.OK
    assert third.metrics["flappy"].status is Status.CRITICAL
    state["word"] = "ok"
    assert run().metrics["flappy"].status is Status.OK  # recovery is immediate
    state["word"] = "warning"
    assert run().metrics["flappy"].status is Status.OK  # and the count starts again


def test_report_to_dict_is_json_ready() -> None:
    import json

    m = monitor()
    m.register_custom_check("a", lambda: {"status": "warning", "value": 3, "message": "m"})
    doc = asyncio.run(m.check_all_health()).to_dict()
    json.dumps(doc)
    assert doc["status"] == "WARNING" and doc["exit_code"] == 1
    assert doc["counts"]["WARNING"] == 1
    assert doc["checks"][0]["name"] == "a" and doc["checks"][0]["value"] == 3


def test_start_monitoring_runs_in_the_background_and_stops() -> None:
    m = monitor()
    m.register_custom_check("tick", lambda: {"status": "ok"})
    seen: list[HealthReport] = []

    async def scenario() -> bool:
        task = await m.start_monitoring(interval=0.05, on_report=seen.append)
        for _ in range(100):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.02)
        await task.stop()
        return task.running

    assert asyncio.run(scenario()) is False
    assert len(seen) >= 2 and m.last_report is not None


def test_the_seed_api(tmp_path: Path) -> None:
    """The seed's snippets work unchanged: register, check_all_health, get_system_health."""
    from reliactl.health import get_system_health, health_monitor, start_health_monitoring

    def check_database_connection() -> dict[str, Any]:
        return {"status": "healthy", "value": 1, "message": "Database connection active"}

    health_monitor.register_custom_check("database", check_database_connection)
    try:

        async def scenario() -> tuple[HealthReport, HealthReport]:
            task = await start_health_monitoring(interval=60)
            report = await health_monitor.check_all_health()
            await task.stop()
            return report, await get_system_health()

        report, system = asyncio.run(scenario())
    finally:
        health_monitor.unregister_custom_check("database")
    assert f"Overall status: {report.overall_status}" in (
        "Overall status: OK",
        "Overall status: WARNING",
        "Overall status: CRITICAL",
        "Overall status: UNKNOWN",
    )
    assert report.metrics["database"].status is Status.OK
    assert report.metrics["database"].message == "Database connection active"
    assert system.metrics["memory_usage"].message.startswith("memory ")


def test_run_now_without_an_event_loop_times_out_hung_threads() -> None:
    m = monitor()
    m.register_custom_check("stuck", lambda: time.sleep(60), timeout=0.3)
    m.register_custom_check("boom", lambda: 1 / 0)
    m.register_custom_check("fine", lambda: {"status": "healthy", "value": 2})
    started = time.monotonic()
    report = m.run_now()
    assert time.monotonic() - started < 2.0
    assert report.metrics["stuck"].status is Status.UNKNOWN
    assert "timed out" in report.metrics["stuck"].message
    assert "ZeroDivisionError" in report.metrics["boom"].message
    assert report.metrics["fine"].status is Status.OK and report.metrics["fine"].value == 2
    assert m.last_report is report


def test_run_now_uses_asyncio_for_async_checks() -> None:
    m = monitor()

    async def ok() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"status": "ok", "message": "async"}

    m.register_custom_check("a", ok)
    m.register_custom_check("s", lambda: {"status": "warning"})
    report = m.run_now()
    assert report.metrics["a"].message == "async" and report.overall_status is Status.WARNING


# --------------------------------------------------------------- the lane (issue 21 item 4)


def _lane_checks(funcs: dict[str, Any], timeout: float = 30.0) -> list[Check]:
    return [Check(name, "custom", lambda ctx, f=f: f(), timeout) for name, f in funcs.items()]


def test_quick_sync_checks_run_one_after_another_in_one_thread_not_the_callers() -> None:
    """run_checks_in_threads starts quick checks one after another in one daemon thread (the
    lane) instead of a thread each (~0.15 ms of CPU per thread at every cron `health`): all
    of them run in the same thread, which is not the caller's, in their order, and each
    reports as before. (A lane of 60 s: a loaded machine never closes it early here.)"""
    ran: list[tuple[str, threading.Thread]] = []

    def check(name: str) -> Any:
        return lambda: ran.append((name, threading.current_thread())) or {"status": "ok"}

    names = [f"c{i}" for i in range(6)]
    report = run_checks_in_threads(
        _lane_checks({n: check(n) for n in names}), RecordStore(), lane_s=60.0
    )
    assert [name for name, _ in ran] == names
    threads = {id(thread) for _, thread in ran}
    assert len(threads) == 1, "each check had a thread of its own"
    assert ran[0][1] is not threading.current_thread() and ran[0][1].daemon
    assert all(report.metrics[n].status is Status.OK for n in names)


def test_a_check_timing_out_in_the_lane_is_unknown_and_the_queued_ones_still_run() -> None:
    """A check that hangs in the lane (which would stay open for a minute) is UNKNOWN at its
    own timeout, as every check is; the checks queued behind it then start in threads of
    their own and report OK; nothing waits for the hung one (its thread is abandoned)."""
    release = threading.Event()
    try:
        checks = _lane_checks({"hung": lambda: release.wait(60)}, timeout=0.3)
        checks += _lane_checks({"a": lambda: {"status": "ok"}, "b": lambda: {"status": "ok"}})
        started = time.monotonic()
        report = run_checks_in_threads(checks, RecordStore(), lane_s=60.0)
        assert time.monotonic() - started < 20.0  # detects a hang only
        assert report.metrics["hung"].status is Status.UNKNOWN
        assert "timed out after 300ms" in report.metrics["hung"].message
        assert report.metrics["a"].status is Status.OK and report.metrics["b"].status is Status.OK
    finally:
        release.set()


def test_checks_queued_behind_a_slow_one_start_when_the_lane_closes() -> None:
    """A slow (not hung) check in the lane holds the checks behind it for at most the lane's
    time: then they start in threads of their own while it still runs. Here the first check
    waits for the second to run (up to 30 s, far below its timeout): with a lane of 50 ms
    the second starts while the first waits, and both are OK."""
    second_ran = threading.Event()
    checks = _lane_checks(
        {
            "first": lambda: {"status": "ok" if second_ran.wait(30) else "critical"},
            "second": lambda: second_ran.set() or {"status": "ok"},
        },
        timeout=60.0,
    )
    report = run_checks_in_threads(checks, RecordStore(), lane_s=0.05)
    assert report.metrics["first"].status is Status.OK
    assert report.metrics["second"].status is Status.OK


def test_no_queued_check_starts_after_the_round_is_interrupted() -> None:
    """Ctrl-C (or any error) that ends a round while the lane is open stops the lane too: the
    checks still queued never start afterwards, unwatched and past the CLI's last
    kill_running_programs (the lane used to run every one of them)."""
    first_running, release = threading.Event(), threading.Event()
    started: list[str] = []

    def first() -> Any:
        started.append("first")
        first_running.set()
        release.wait(30)
        return {"status": "ok"}

    checks = _lane_checks({"first": first})
    checks += _lane_checks({f"q{i}": lambda i=i: started.append(f"q{i}") for i in range(5)})

    def interrupt() -> None:
        if first_running.wait(30):
            # A real Ctrl-C, sent the hard way: a 6.x kernel hands a signal a process sends
            # itself to the sending thread, so the caller's wait is not woken by it and must
            # look for it on its own (INTERRUPT_POLL_S; it used to wait for the check's 30 s
            # timeout, and the lane ran the queued checks meanwhile: 2 runs in 8 failed).
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_checks_in_threads(checks, RecordStore(), lane_s=60.0)
    release.set()
    time.sleep(0.3)  # time for a lane that went on to start the next check
    assert started == ["first"]
