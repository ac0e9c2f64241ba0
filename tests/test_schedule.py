"""Missed runs, failure streaks, runs too long and never-ran jobs (reliactl/schedule.py), with a
fake clock and real SQLite history; cron schedules across DST; the `jobs:` configuration."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reliactl.config import JobSettings, load
from reliactl.errors import ConfigError
from reliactl.schedule import Schedule, declared_at, evaluate_job, job_statuses
from reliactl.state.base import RunRecord
from reliactl.state.sqlite import SQLiteStateStore
from reliactl.testing import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")


def _run(
    name: str, start: float, took: float, outcome: str, code: int | None = 0, host: str = "host-a"
) -> RunRecord:
    ended = None if outcome == "running" else start + took
    return RunRecord(name, "job.sh", start, ended, 1, code, outcome, {"host": host})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=1_800_000_000.0)


def test_a_recent_success_is_ok_and_says_what_was_expected(clock: FakeClock) -> None:
    """OK within period + grace; the message names the rhythm, the age and the host."""
    spec = JobSettings(every=900.0)
    now = clock.time()
    status = evaluate_job("j", spec, [_run("j", now - 300, 10, "success")], now=now)
    assert status.status == "OK"
    assert status.message == "expected every 15m, last success 4m50s ago on host-a"
    assert status.success_age == pytest.approx(290)
    assert status.next_expected_at == pytest.approx(now - 290 + 900)


def test_an_overdue_job_is_critical(clock: FakeClock) -> None:
    """Past the expected run plus grace (default: half the period) is a missed run."""
    spec = JobSettings(every=900.0)
    start = clock.time()
    runs = [_run("j", start, 10, "success")]
    clock.advance(10 + 900 + 449)
    ok = evaluate_job("j", spec, runs, now=clock.time())
    assert (ok.status, ok.overdue, ok.to_dict()["overdue"]) == ("OK", False, False)
    clock.advance(2)
    status = evaluate_job("j", spec, runs, now=clock.time())
    assert (status.status, status.overdue, status.to_dict()["overdue"]) == ("CRITICAL", True, True)
    assert "last success 22m31s ago on host-a" in status.message
    assert "missed: expected a run 7m31s ago" in status.message


def test_a_run_longer_than_max_duration_is_a_warning(clock: FakeClock) -> None:
    """A run still going after max_duration is WARNING, saying for how long."""
    spec = JobSettings(every=3600.0, max_duration=600.0)
    now = clock.time()
    runs = [_run("j", now - 601, 0, "running", None), _run("j", now - 3000, 5, "success")]
    status = evaluate_job("j", spec, runs, now=now)
    assert status.status == "WARNING"
    assert "running for 10m1s, longer than max_duration 10m" in status.message


def test_a_running_row_whose_reliactl_is_gone_is_not_a_run_going_on(clock: FakeClock) -> None:
    """A "running" row of this host whose reliactl is gone (its end not recorded: a store
    busy past run's bound, or a kill -9) is lost, not a run going on: no "running for"
    warning however old it grows; the same row of a live reliactl still warns."""
    import os
    import subprocess

    from reliactl.hostname import hostname

    dead = subprocess.Popen(["true"])
    dead.wait()
    spec = JobSettings(every=3600.0, max_duration=600.0)
    now = clock.time()

    def row(pid: int) -> RunRecord:
        data = {"pid": pid, "host": hostname()}
        return RunRecord("j", "job.sh", now - 7200, None, 0, None, "running", data)

    success = _run("j", now - 3000, 5, "success")
    gone = evaluate_job("j", spec, [row(dead.pid), success], now=now)
    assert gone.status == "OK" and "running for" not in gone.message
    assert gone.running_for is None
    alive = evaluate_job("j", spec, [row(os.getpid()), success], now=now)
    assert alive.status == "WARNING" and "running for 2h" in alive.message


def test_a_failure_streak_warns_then_is_critical_at_max_failures(clock: FakeClock) -> None:
    """Fewer than max_failures failures in a row: WARNING; max_failures: CRITICAL; refusals
    (lock busy, breaker open) neither break nor extend the streak."""
    spec = JobSettings(every=3600.0, max_failures=3)
    now = clock.time()
    runs = [_run("j", now - 100, 1, "success")]
    for i, outcome in enumerate(["failure", "busy", "timeout", "breaker_open"]):
        code = {"failure": 2, "timeout": 124}.get(outcome, 75)
        runs.insert(0, _run("j", now - 90 + i * 10, 1, outcome, code))
    status = evaluate_job("j", spec, runs, now=now)
    assert (status.status, status.consecutive_failures) == ("WARNING", 2)
    assert "2 failed runs in a row (CRITICAL at 3; last timeout, exit 124)" in status.message
    runs.insert(0, _run("j", now - 5, 1, "failure", 1))
    failing = evaluate_job("j", spec, runs, now=now)
    assert (failing.status, failing.overdue) == ("CRITICAL", False)  # failing is not missed


def test_a_never_run_job_counts_from_when_it_was_first_declared(
    clock: FakeClock, tmp_path: Path
) -> None:
    """The first sight is stored; the job is OK through period + grace, then CRITICAL."""
    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        jobs = {"nightly": JobSettings(every=3600.0, grace=600.0)}
        first = clock.time()
        (status,) = job_statuses(jobs, store, now=first)
        assert status.status == "OK" and status.message.endswith("never ran; declared 0s ago")
        clock.advance(3600 + 599)
        (status,) = job_statuses(jobs, store, now=clock.time())
        assert status.status == "OK" and status.declared_at == first
        clock.advance(2)
        (status,) = job_statuses(jobs, store, now=clock.time())
        assert status.status == "CRITICAL"
        assert "never ran successfully since declared 1h10m1s ago" in status.message
        assert declared_at(store, "nightly", clock.time() + 99) == first
    finally:
        store.close()


def test_jobs_seen_in_history_are_listed_after_declared_ones(
    clock: FakeClock, tmp_path: Path
) -> None:
    """A name in history that is not declared is listed, at worst WARNING (nothing says when
    it is critical)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        now = clock.time()
        store.add_run(_run("adhoc", now - 50, 1, "failure", 3))
        statuses = job_statuses({"a": JobSettings(every=60.0)}, store, now=now)
        assert [(s.name, s.declared) for s in statuses] == [("a", True), ("adhoc", False)]
        assert statuses[1].status == "WARNING" and statuses[1].consecutive_failures == 1
        assert statuses[1].message == (
            "not declared; no success yet; last run 50s ago (failure); 1 failed run in a row"
            " (last failure, exit 3)"
        )
        assert json.dumps(statuses[1].to_dict())
    finally:
        store.close()


def test_a_success_in_the_future_counts_as_age_zero(clock: FakeClock) -> None:
    """A clock set back never makes a job look overdue forever or negative."""
    now = clock.time()
    status = evaluate_job(
        "j", JobSettings(every=60.0), [_run("j", now + 500, 1, "success")], now=now
    )
    assert status.status == "OK" and status.success_age == 0


def _epoch(*args: int) -> float:
    return datetime(*args, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def test_cron_across_the_spring_dst_change_in_berlin() -> None:
    """02:30 does not exist on 29 March 2026: that day's run is expected at 03:00 local, and a
    job that ran on 28 March is not overdue at 03:30 on the 29th (grace 1h)."""
    sched = Schedule("30 2 * * *", "Europe/Berlin")
    ran = _epoch(2026, 3, 28, 2, 31)
    nxt = sched.next_after(ran)
    assert nxt is not None
    assert datetime.fromtimestamp(nxt, BERLIN).strftime("%m-%d %H:%M %Z") == "03-29 03:00 CEST"
    assert nxt - ran == 23 * 3600 + 29 * 60  # 24h29m on the wall clock, one hour skipped
    spec = JobSettings(schedule="30 2 * * *", tz="Europe/Berlin", grace=3600.0)
    runs = [_run("j", ran - 60, 60, "success")]
    assert evaluate_job("j", spec, runs, now=_epoch(2026, 3, 29, 3, 59)).status == "OK"
    assert evaluate_job("j", spec, runs, now=_epoch(2026, 3, 29, 4, 1)).status == "CRITICAL"


def test_cron_across_the_autumn_dst_change_in_berlin() -> None:
    """02:30 happens twice on 25 October 2026: one run is expected (the first), and the next
    after it is on the 26th, 25 hours later, so the job is not counted as missed twice."""
    sched = Schedule("30 2 * * *", "Europe/Berlin")
    ran = _epoch(2026, 10, 24, 2, 31)
    first = sched.next_after(ran)
    assert first is not None
    shown = datetime.fromtimestamp(first, BERLIN)
    assert (shown.strftime("%m-%d %H:%M %Z"), shown.fold) == ("10-25 02:30 CEST", 0)
    second = sched.next_after(first + 60)
    assert second is not None and second - first == 25 * 3600
    spec = JobSettings(schedule="30 2 * * *", tz="Europe/Berlin", grace=1800.0)
    runs = [_run("j", first, 60, "success")]
    assert evaluate_job("j", spec, runs, now=first + 25 * 3600 + 1799).status == "OK"


def test_an_hourly_cron_in_utc_and_its_message() -> None:
    """A cron schedule's message names the expression and zone."""
    spec = JobSettings(schedule="0 * * * *", tz="UTC")
    now = datetime(2026, 1, 1, 12, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    status = evaluate_job("j", spec, [_run("j", now - 1800, 5, "success")], now=now)
    assert status.status == "OK"
    assert status.message.startswith("expected at '0 * * * *' UTC, last success 29m55s ago")


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reliactl.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("  j:\n    schedule: '61 * * * *'\n", 3, "not a valid cron expression"),
        ("  j:\n    schedule: '* * * * *'\n    every: 5m\n", 4, "give schedule or every"),
        ("  j:\n    every: 5m\n    tz: Mars/Olympus\n", 4, "unknown time zone 'Mars/Olympus'"),
        ("  j:\n    ping:\n      success: https://x/{nme}\n", 4, "unknown placeholder {nme}"),
        ("  j:\n    ping:\n      url: ftp://x/abc\n", 4, "expected an http:// or https://"),
        ("  j:\n    max_failures: 0\n", 3, "expected a positive value"),
        ("  j:\n    evry: 5m\n", 3, "did you mean 'every'"),
    ],
)
def test_bad_job_settings_are_config_errors_with_file_and_line(
    tmp_path: Path, body: str, line: int, expected: str
) -> None:
    """Every problem in `jobs:` names the file, the line and what was expected."""
    path = _config(tmp_path, "jobs:\n" + body)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    text = str(info.value)
    assert f"{path}:{line}" in text and expected in text, text


def test_config_validate_exits_78_on_a_bad_cron(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The CLI's answer to a bad schedule is EX_CONFIG with one line naming the key."""
    path = _config(tmp_path, "jobs:\n  backup:\n    schedule: '0 25 * * *'\n")
    result = run_cli("config", "validate", str(path))
    assert result.exit_code == 78, result.output
    assert "jobs.backup.schedule" in result.stderr and ":3" in result.stderr


def test_config_show_hides_the_ping_credential(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A ping URL (its UUID is the credential) is shown as scheme and host only."""
    uuid = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
    path = _config(
        tmp_path,
        f"jobs:\n  backup:\n    every: 1d\n    ping:\n      url: https://hc-ping.com/{uuid}\n"
        "      failure: https://kuma.example/api/push/SECRET?s={outcome}\n",
    )
    result = run_cli("--config", str(path), "config", "show")
    assert result.exit_code == 0, result.output
    assert uuid not in result.stdout and "SECRET" not in result.stdout
    assert "https://hc-ping.com/***" in result.stdout


def test_job_settings_come_from_the_environment(tmp_path: Path) -> None:
    """RELIACTL_JOBS__NAME__KEY sets a job's key, as for every other section."""
    loaded = load(environ={"RELIACTL_JOBS__BACKUP__EVERY": "1h"}, search=False)
    assert loaded.config.jobs["backup"].every == 3600.0


def test_a_failed_run_alerts_once_per_cooldown_and_recovers_once(tmp_path: Path) -> None:
    """alert: true: a final failure sends the sinks its exit code and output tail (a real
    webhook server); a second failure within the cooldown sends nothing; the next success
    sends one recovery; a lock-busy refusal sends nothing."""
    import sys

    from reliactl.config import AlertSink
    from reliactl.health.records import RecordStore
    from reliactl.jobwatch import alert_on_result
    from reliactl.runner import RunOptions, run_command
    from tests.pingserver import PingServer

    store = SQLiteStateStore(tmp_path / "state.db")
    records = RecordStore(store)
    fail = (sys.executable, "-c", "print('disk full at /srv'); raise SystemExit(4)")
    try:
        with PingServer() as server:
            sinks = [AlertSink(name="hook", kind="webhook", url=f"{server.url}/hook")]

            def once(command: tuple[str, ...], output: bytes) -> list[object]:
                result = run_command(RunOptions(command=command))
                return alert_on_result("backup", result, output, sinks, records)

            (first,) = once(fail, b"disk full at /srv\n")
            assert first.delivered and first.kind == "problem"  # type: ignore[attr-defined]
            assert once(fail, b"again\n") == []
            (back,) = once(("true",), b"")
            assert back.kind == "recovery"  # type: ignore[attr-defined]

            class Busy:
                outcome, exit_code = "busy", 75

            assert alert_on_result("backup", Busy(), b"", sinks, records) == []
        bodies = [json.loads(p.body) for p in server.pings]
    finally:
        store.close()
    assert [(b["check"], b["status"], b["kind"]) for b in bodies] == [
        ("run:backup", "CRITICAL", "problem"),
        ("run:backup", "OK", "recovery"),
    ]
    assert "exit 4 after 1 attempt" in bodies[0]["message"]
    assert "disk full at /srv" in bodies[0]["message"]


def test_run_watch_pings_alerts_and_records_without_touching_the_exit_code(
    tmp_path: Path,
) -> None:
    """The engine's hooks: a failing run through RunWatch pings start and URL/<code> with the
    tail, alerts the sink, keeps its exit code, and its history data hides the UUID; a watch
    with nothing configured leaves the engine's sink untouched (no pipes)."""
    import sys

    from reliactl.config import AlertSink
    from reliactl.health.records import RecordStore
    from reliactl.jobwatch import RunWatch
    from reliactl.ping import PingTargets
    from reliactl.runner import RunOptions, run_command
    from tests.pingserver import PingServer

    uuid = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        with PingServer() as server:
            watch = RunWatch(
                "backup",
                targets=PingTargets(url=f"{server.url}/{uuid}"),
                alert=True,
                sinks=[AlertSink(name="hook", kind="webhook", url=f"{server.url}/hook")],
                records=RecordStore(store),
            )
            command = (sys.executable, "-c", "print('tail line'); raise SystemExit(5)")
            result = run_command(
                RunOptions(command=command), on_event=watch.on_event, output=watch.output()
            )
            warnings = watch.finish(result)
            history = watch.history()
        paths = [p.path for p in server.pings]
        bodies = {p.path: p.body for p in server.pings}
    finally:
        store.close()
    assert result.exit_code == 5 and warnings == []
    assert paths[0] == f"/{uuid}/start" and set(paths[1:]) == {f"/{uuid}/5", "/hook"}
    assert bodies[f"/{uuid}/5"] == b"tail line\n"
    assert b"tail line" in bodies["/hook"]
    assert uuid not in json.dumps(history) and history["alerts"][0]["delivered"]
    idle = RunWatch("other", targets=PingTargets())
    sentinel = object()
    assert not idle.active and idle.output(sentinel) is sentinel


def test_run_watch_is_a_job_engine_hook_too(tmp_path: Path) -> None:
    """on_start/on_finish (the job engine's JobHooks) send the same pings, and a result that
    carries its RunResult in .run (a JobResult) is understood."""
    from reliactl.jobwatch import RunWatch
    from reliactl.ping import PingTargets
    from reliactl.runner import RunOptions, run_command
    from tests.pingserver import PingServer

    with PingServer() as server:
        watch = RunWatch("j", targets=PingTargets(url=f"{server.url}/u"))
        watch.on_start(None)
        run = run_command(RunOptions(command=("sh", "-c", "exit 3")), output=watch.output())

        class JobResultLike:
            def __init__(self, run: object) -> None:
                self.run = run

        watch.on_finish(JobResultLike(run))
    assert [p.path for p in server.pings] == ["/u/start", "/u/3"]
    assert watch.warnings() == []


@pytest.mark.stress
def test_concurrent_first_sights_agree_on_when_a_job_was_declared(tmp_path: Path) -> None:
    """Eight processes seeing a new job at once (health and jobs from several crons) store
    one declared_at: every one of them reads the same first value."""
    import subprocess
    import sys

    db = tmp_path / "state.db"
    SQLiteStateStore(db).close()
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from reliactl.schedule import declared_at\n"
        "from reliactl.state.sqlite import SQLiteStateStore\n"
        "s = SQLiteStateStore(Path(sys.argv[1]))\n"
        "print(declared_at(s, 'new-job', time.time()))\n"
        "s.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    seen = set()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        seen.add(float(out))
    assert len(seen) == 1


def _no_cron_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Schedule, epoch: float) -> float | None:
        raise AssertionError("worked out again instead of read from the job's record")

    monkeypatch.setattr(Schedule, "next_after", refuse)


@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        (JobSettings(schedule="30 2 * * *", tz="Europe/Berlin"), _epoch(2026, 3, 28, 2, 31)),
        (JobSettings(schedule="30 2 * * *", tz="Europe/Berlin"), _epoch(2026, 10, 24, 2, 31)),
        (JobSettings(schedule="*/5 * * * *", grace=120.0), 1_800_000_000.0),
        (JobSettings(schedule="0 0 29 2 *", tz="America/New_York"), 1_800_000_000.0),
    ],
    ids=["berlin spring", "berlin autumn", "local every 5 min", "new york 29 feb"],
)
def test_a_cron_jobs_expected_runs_are_kept_in_its_record_and_equal_worked_out_ones(
    spec: JobSettings, reference: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`job_status` (the `job` health check and `reliactl jobs`) keeps a cron job's next two
    expected runs after its reference (last success, else first declared) in the job's kv
    record, so later checks import neither cronsim nor zoneinfo; what it reports from the kept
    entry (next expected run, default grace, overdue verdict, message) equals what
    `evaluate_job` works out, before and after the grace, across DST changes; a new success
    (another reference) is worked out again and kept too."""
    from reliactl.schedule import job_status

    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        declared_at(store, "j", reference)
        nxt = Schedule.of(spec).next_after(reference)
        assert nxt is not None
        moments = [reference + 1, nxt + 30, nxt + 59 * 60, nxt + 3 * 3600, nxt + 40 * 86400]
        fresh = [evaluate_job("j", spec, [], now=t, first_declared=reference) for t in moments]
        assert job_status(store, "j", spec, [], moments[0]) == fresh[0]
        kept = store.get("kv", "job:j")
        assert kept is not None and kept["declared_at"] == reference
        assert [e["next"] for e in kept["expected"]] == [nxt]
        with monkeypatch.context() as patched:
            _no_cron_evaluation(patched)
            for moment, expected in zip(moments, fresh, strict=True):
                assert job_status(store, "j", spec, [], moment) == expected
        assert {s.status for s in fresh} != {"OK"}  # the kept grace decided some CRITICAL
        ran = [_run("j", nxt + 10, 5, "success")]
        later = nxt + 2 * 86400
        assert job_status(store, "j", spec, ran, later) == evaluate_job(
            "j", spec, ran, now=later, first_declared=reference
        )
        record = store.get("kv", "job:j")
        assert record is not None and len(record["expected"]) == 2
    finally:
        store.close()


def test_kept_expected_runs_are_worked_out_again_when_the_zone_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept entry holds only under the conditions it was worked out in: the zone file
    zoneinfo reads (replaced by another zone's rules under the same name: new inode, size,
    mtime; also within one process, as `health --watch` or `serve` would see it), $TZ for a
    job in local time, and the search path. After each change the job's expected run is the
    new zone's, never the kept one nor zoneinfo's cached one; a zone with no file on the search
    path (the tzdata package's, or none) is not kept at all."""
    import shutil
    import zoneinfo

    from reliactl.schedule import job_status

    zones = tmp_path / "zones"
    (zones / "Test").mkdir(parents=True)
    shutil.copy(Path(zoneinfo.TZPATH[0]) / "Europe" / "Berlin", zones / "Test" / "Zone")
    shutil.copy(Path(zoneinfo.TZPATH[0]) / "Asia" / "Tokyo", zones / "Tokyo")
    shutil.copy(Path(zoneinfo.TZPATH[0]) / "America" / "New_York", zones / "NY")
    store = SQLiteStateStore(tmp_path / "state.db")
    zoneinfo.reset_tzpath([str(zones)])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        reference = 1_800_000_000.0
        declared_at(store, "named", reference)
        declared_at(store, "local", reference)
        named = JobSettings(schedule="0 12 * * *", tz="Test/Zone")
        local = JobSettings(schedule="0 12 * * *")

        def check(name: str, spec: JobSettings) -> float | None:
            got = job_status(store, name, spec, [], reference + 60)
            assert got == evaluate_job(name, spec, [], now=reference + 60, first_declared=reference)
            return got.next_expected_at

        berlin = check("named", named)
        replacement = zones / "Test" / "Zone.new"
        shutil.copy(zones / "NY", replacement)
        replacement.replace(zones / "Test" / "Zone")  # zoneinfo's own cache not cleared:
        new_york = check("named", named)  # a long-running process reads the new rules too
        assert berlin is not None and new_york is not None and new_york - berlin == 6 * 3600

        monkeypatch.setenv("TZ", "Tokyo")
        tokyo = check("local", local)
        monkeypatch.setenv("TZ", "NY")
        assert check("local", local) == new_york
        monkeypatch.setenv("TZ", "Tokyo")
        assert check("local", local) == tokyo  # both kept: each under its own $TZ
        record = store.get("kv", "job:local")
        assert record is not None and len(record["expected"]) == 2

        unknown = JobSettings(schedule="0 12 * * *", tz="Europe/Paris")  # not on this path
        declared_at(store, "paris", reference)
        try:  # unknown without the tzdata package; from it, with the package
            job_status(store, "paris", unknown, [], reference + 60)
        except zoneinfo.ZoneInfoNotFoundError:
            pass
        record = store.get("kv", "job:paris")
        assert record is not None and "expected" not in record
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
        store.close()
