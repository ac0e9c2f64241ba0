"""Alert state in a fleet (attack2 #9): on a shared store (a real redis-server, and one SQLite
file two "hosts" share) a host-local check's problem is each host's own, keyed HOST/CHECK: a
healthy host sends no false recovery for an unhealthy one, nor wipes its acknowledgement; a
`job:NAME` check (judged from the shared run history, the same on every host) stays one
problem for the fleet; records of the old form (keyed by check name only) are taken over by
their host on upgrade without a flood of false recoveries. Deliveries are counted at a real
127.0.0.1 webhook server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from httpserver import CountingServer

from reliactl.config import AlertSink
from reliactl.health import alertstate
from reliactl.health.alerts import AlertManager
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.health.records import RecordStore
from reliactl.testing import FakeClock

C, OK = Status.CRITICAL, Status.OK

CONFIG = """\
health_monitor:
  system_checks: []
  checks:
    - name: disk-data
      kind: command
      command: [{python}, -c, "import os; exit(2 * (os.environ['RELIACTL_HOSTNAME'] == 'web-1'))"]
  alerts:
    - name: hook
      kind: webhook
      url: {url}/hook
      timeout: 20s
"""


def _cli(env: dict[str, str], host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        env={**env, "RELIACTL_HOSTNAME": host},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _posted(server: CountingServer) -> list[tuple[str, str, str, str]]:
    """(host, check, kind, status) of every alert delivered (a grouped message's each)."""
    alerts = [a for p in server.posted() for a in (p["alerts"] if p["kind"] == "group" else [p])]
    return [(a["host"], a["check"], a["kind"], a["status"]) for a in alerts]


class _Finished:
    """What a finished run hands a job watch: its outcome and exit code."""

    def __init__(self, code: int) -> None:
        self.outcome = "success" if code == 0 else "failure"
        self.exit_code = code


def test_two_hosts_one_check_name_each_keep_their_own_problem_and_ack(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """The repro: disk-data CRITICAL on web-1, OK on web-2, `health` alternating on both
    (real processes on one shared store): one problem delivered for web-1 and nothing else;
    `alert list` after web-2's OK run still shows web-1's problem (HOST web-1); web-1's ack
    survives web-2's next run; `alert ack web-2/disk-data` finds nothing; web-1's recovery is
    the one second delivery."""
    with CountingServer() as server:
        cfg = tmp_path / "reliactl.yaml"
        cfg.write_text(CONFIG.format(python=json.dumps(sys.executable), url=server.url))
        env = {**os.environ, **state_env, "RELIACTL_CONFIG": str(cfg)}
        for _ in range(2):
            assert _cli(env, "web-1", "health", "--quiet").returncode == 2
            assert _cli(env, "web-2", "health", "--quiet").returncode == 0
        assert _posted(server) == [("web-1", "disk-data", "problem", "CRITICAL")]
        listed = json.loads(_cli(env, "web-2", "alert", "list", "--json").stdout)["problems"]
        assert [(p["host"], p["check"], p["scope"]) for p in listed] == [
            ("web-1", "disk-data", "host")
        ]
        acked = _cli(env, "web-1", "alert", "ack", "disk-data", "--reason", "web-1 on it")
        assert acked.returncode == 0 and "acknowledged by" in acked.stderr
        assert "on web-1" in acked.stderr
        assert _cli(env, "web-2", "alert", "ack", "web-2/disk-data").returncode == 1
        assert _cli(env, "web-2", "health", "--quiet").returncode == 0
        table = _cli(env, "web-1", "alert", "list").stdout
        assert "HOST" in table and "web-1" in table and "web-1 on it" in table, table
        cfg.write_text(cfg.read_text().replace("'web-1'", "'nobody'"))  # web-1 heals
        assert _cli(env, "web-1", "health", "--quiet").returncode == 0
        assert _posted(server) == [
            ("web-1", "disk-data", "problem", "CRITICAL"),
            ("web-1", "disk-data", "recovery", "OK"),
        ]
        assert _cli(env, "web-1", "alert", "list").stdout.strip() == "no open problems"


# ---------------------------------------------------------------------------- in process


def _report(clock: FakeClock, **statuses: Status) -> HealthReport:
    """A report of the named checks (``job_nightly`` is the check ``job:nightly``)."""
    metrics = {
        name.replace("_", ":"): HealthMetric(name.replace("_", ":"), st, 1.0, f"{name} {st.value}")
        for name, st in statuses.items()
    }
    return HealthReport(worst(statuses.values()), metrics, clock.time(), 0.0)


class Fleet:
    """Hosts (one AlertManager each, as separate processes would have) on one shared store,
    a FakeClock, and a real HTTP sink."""

    def __init__(self, store: Any, server: CountingServer, **kw: Any) -> None:
        self.records = RecordStore(store)
        self.server = server
        self.clock = FakeClock()
        self.kw = kw

    def run(self, host: str, **statuses: Status) -> list[Any]:
        am = AlertManager(
            [AlertSink(name="hook", kind="webhook", url=self.server.url + "/hook")],
            self.records,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            sleep=self.clock.async_sleep,
            host=host,
            default_cooldown=3600,
            **self.kw,
        )
        return asyncio.run(am.process(_report(self.clock, **statuses)))


@pytest.fixture
def fleet(
    backend: str, make_store: Callable[..., Any], server: CountingServer
) -> Callable[..., Fleet]:
    return lambda **kw: Fleet(make_store(), server, **kw)


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as running:
        yield running


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
def test_a_job_check_is_one_problem_for_the_fleet(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """job:NAME (judged from the shared history) failing on two hosts is one problem, one
    message, one recovery; `alert list` shows it once as fleet-wide; a run:NAME alert is
    per host unless the job runs under a fleet lock (``fleet``)."""
    f = fleet(fleet=("run:sync",))
    f.run("web-1", job_nightly=C, run_sync=C, run_local=C)
    f.run("web-2", job_nightly=C, run_sync=C, run_local=OK)
    assert sorted(_posted(server)) == [
        ("web-1", "job:nightly", "problem", "CRITICAL"),
        ("web-1", "run:local", "problem", "CRITICAL"),
        ("web-1", "run:sync", "problem", "CRITICAL"),
    ]
    problems = alertstate.open_problems(f.records)
    assert sorted((p.label, p.scope) for p in problems) == [
        ("job:nightly", "fleet"),
        ("run:sync", "fleet"),
        ("web-1/run:local", "host"),
    ]
    f.run("web-2", job_nightly=OK, run_sync=OK)
    f.run("web-1", job_nightly=OK, run_sync=OK)
    kinds = sorted(k for _, c, k, _ in _posted(server) if c != "run:local")
    assert kinds == ["problem", "problem", "recovery", "recovery"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
def test_an_upgraded_store_takes_old_records_over_without_false_recoveries(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """A store written before per-host state: `problem:disk` (CRITICAL, acknowledged, last
    seen by web-1) and the sink told CRITICAL under the check's bare name. After the upgrade
    web-2 and web-3 (OK) send nothing (no false recovery), web-1 (still CRITICAL) sends no
    second problem and keeps its ack; web-1's recovery then goes out exactly once."""
    f = fleet()
    now = f.clock.time()
    f.records.update(
        "alert",
        "problem:disk",
        lambda _r: {
            "status": "CRITICAL",
            "since": now - 600,
            "changes": [now - 600],
            "flapping": False,
            "host": "web-1",
            "ack": {"by": "alice", "reason": "on it", "at": now - 60},
        },
    )
    f.records.update("alert", "notify:hook", lambda r: {**(r or {}), "checks": {
        "disk": {"status": "CRITICAL", "sent_at": now - 600}}})  # fmt: skip
    f.run("web-2", disk=OK)
    f.run("web-3", disk=OK)
    assert server.count == 0
    (problem,) = alertstate.open_problems(f.records)
    assert (problem.label, problem.ack_by) == ("disk", "alice")  # not web-2's to take
    f.run("web-1", disk=C)
    assert server.count == 0
    (problem,) = alertstate.open_problems(f.records)
    assert (problem.label, problem.ack_by, problem.scope) == ("web-1/disk", "alice", "host")
    f.clock.advance(7200)  # past the cooldown: an acknowledged problem does not repeat
    f.run("web-1", disk=C)
    assert server.count == 0
    f.run("web-1", disk=OK)
    f.run("web-1", disk=OK)
    assert _posted(server) == [("web-1", "disk", "recovery", "OK")]
    assert alertstate.open_problems(f.records) == []


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
def test_a_single_host_upgraded_in_place_sends_its_recovery_once(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """One host, old-form records (the sink told CRITICAL): its OK run after the upgrade is
    the real recovery, delivered once; a plain `alert ack NAME` still finds its problem."""
    f = fleet()
    f.records.update("alert", "problem:disk", lambda _r: {"status": "CRITICAL", "host": "h"})
    f.records.update("alert", "problem:cpu", lambda _r: {"status": "CRITICAL", "host": "h"})
    f.records.update("alert", "notify:hook", lambda _r: {"checks": {
        "disk": {"status": "CRITICAL", "sent_at": 1.0},
        "cpu": {"status": "CRITICAL", "sent_at": 1.0}}})  # fmt: skip
    acked = alertstate.acknowledge(f.records, "cpu", now=f.clock.time(), by="bob")
    assert [p.label for p in acked] == ["cpu"]  # old form: addressed as before
    f.run("h", disk=OK, cpu=C)
    f.run("h", disk=OK, cpu=C)
    assert _posted(server) == [("h", "disk", "recovery", "OK")]
    (problem,) = alertstate.open_problems(f.records)
    assert (problem.label, problem.ack_by) == ("h/cpu", "bob")
    entries = f.records.get("alert", "notify:hook")["checks"]  # type: ignore[index]
    assert sorted(entries) == ["h/cpu"]  # moved; h/disk's went with its recovery


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_silences_and_acks_address_one_host_or_every_host(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """`web-1/*` silences all of web-1 and nothing of web-2; a bare name acknowledges the
    check on every host, `web-2/disk` only web-2's."""
    f = fleet()
    alertstate.add_silence(f.records, "web-1/*", 600, by="ops", now=f.clock.time())
    f.run("web-1", disk=C, cpu=C)
    f.run("web-2", disk=C)
    assert _posted(server) == [("web-2", "disk", "problem", "CRITICAL")]
    now = f.clock.time()
    assert [p.label for p in alertstate.acknowledge(f.records, "web-2/disk", now=now)] == [
        "web-2/disk"
    ]
    done = alertstate.acknowledge(f.records, "disk", now=now, by="x")
    assert sorted(p.label for p in done) == ["web-1/disk", "web-2/disk"]
    notes = alertstate.check_notes(f.records, ["disk", "cpu"], now, host="web-2")
    assert notes["disk"].problem is not None and notes["disk"].problem.ack_by == "x"
    assert "cpu" not in notes  # web-1's silence and problem are not web-2's


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_run_alerts_of_a_fleet_locked_job_are_the_fleets_of_a_host_job_each_hosts(
    make_store: Callable[..., Any],
    server: CountingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run --job` with alert: true on two hosts: a job declared lock_scope: fleet failing on
    web-1 recovers with its next success on web-2 (one sequence of runs); a host-scoped job's
    success on web-2 is no recovery of web-1's failure."""
    from reliactl.cli._jobwatch import watch_for_run
    from reliactl.config import load

    cfg = tmp_path / "jobs.yaml"
    cfg.write_text(
        f"health_monitor:\n  alerts:\n    - {{name: hook, kind: webhook, url: '{server.url}/h'}}\n"
        "jobs:\n  sync: {every: 1h, lock_scope: fleet, alert: true}\n"
        "  logs: {every: 1h, lock_scope: host, alert: true}\n"
    )
    config = load(str(cfg), use_env=False, search=False).config
    store = make_store()

    def run(host: str, job: str, code: int) -> None:
        monkeypatch.setenv("RELIACTL_HOSTNAME", host)
        watch = watch_for_run(config, job, config.jobs[job], open_store=lambda: store)
        assert watch is not None
        assert watch.finish(_Finished(code)) == []

    run("web-1", "sync", 1)
    run("web-1", "logs", 1)
    run("web-2", "sync", 0)
    run("web-2", "logs", 0)
    assert _posted(server) == [
        ("web-1", "run:sync", "problem", "CRITICAL"),
        ("web-1", "run:logs", "problem", "CRITICAL"),
        ("web-2", "run:sync", "recovery", "OK"),
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_target_without_a_slash_never_matches_a_host_name(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """Review finding 1: host web-1 with disk bad; `silence add 'web*'` does not silence
    web-1's disk and `alert ack 'web*'` acknowledges nothing (fnmatch's * matches "/", so
    matching 'web*' against 'web-1/disk' did both); `web*/disk` (a slash) still reaches it, a
    host part equal to the host matches literally (`web[1]/disk` on host web[1]), and a
    check named with a slash is still matched by its whole name."""
    f = fleet()
    alertstate.add_silence(f.records, "web*", 600, by="ops", now=f.clock.time())
    f.run("web-1", disk=C)
    assert _posted(server) == [("web-1", "disk", "problem", "CRITICAL")]
    now = f.clock.time()
    assert alertstate.acknowledge(f.records, "web*", now=now) == []
    assert [p.host for p in alertstate.acknowledge(f.records, "web*/disk", now=now)] == ["web-1"]
    assert alertstate.target_matches("web[1]/disk", "disk", "web[1]", False)
    assert not alertstate.target_matches("web[1]/disk", "disk", "web-1", False)
    assert alertstate.target_matches("http/api", "http/api", "web-1", False)
    assert not alertstate.target_matches("web-1/disk", "disk", "web-1", True)  # fleet-wide


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_fleet_problem_opened_by_one_host_is_resolved_by_another_at_the_provider(
    make_store: Callable[..., Any],
) -> None:
    """Review finding 2: job:nightly fails seen from web-1 and recovers seen from web-2; at a
    real 127.0.0.1 PagerDuty and Opsgenie, web-2's resolve/close names the incident web-1
    triggered (dedup key / alias `reliactl:*:job:nightly`; before, web-2 resolved
    `reliactl:web-2:job:nightly` and the incident stayed open forever). A host-local check
    keeps its host in the key."""
    from httpserver import FlakyServer, Reply

    records = RecordStore(make_store())
    clock = FakeClock()
    with FlakyServer(Reply(202, {"status": "success"})) as fake:
        sinks = [
            AlertSink(name="pd", kind="pagerduty", url=fake.url + "/v2/enqueue", routing_key="r"),
            AlertSink(name="og", kind="opsgenie", url=fake.url, api_key="k"),
        ]

        def run(host: str, **statuses: Status) -> None:
            am = AlertManager(
                sinks, records, clock=clock.time, monotonic=clock.monotonic, host=host
            )
            outcomes = asyncio.run(am.process(_report(clock, **statuses)))
            assert all(o.delivered for o in outcomes), [o.error for o in outcomes]

        run("web-1", job_nightly=C, disk=C)
        run("web-2", job_nightly=OK, disk=OK)
        run("web-1", job_nightly=OK, disk=OK)
        pd = [(e["event_action"], e["dedup_key"]) for e in fake.posted("/v2/enqueue")]
        assert sorted(pd) == [
            ("resolve", "reliactl:*:job:nightly"),
            ("resolve", "reliactl:web-1:disk"),
            ("trigger", "reliactl:*:job:nightly"),
            ("trigger", "reliactl:web-1:disk"),
        ]
        created = {e["alias"] for e in fake.posted("/v2/alerts")}
        closed = {r.path for r in fake.requests if r.path.endswith("/close?identifierType=alias")}
        assert created == {"reliactl:*:job:nightly", "reliactl:web-1:disk"}
        assert closed == {
            "/v2/alerts/reliactl%3A%2A%3Ajob%3Anightly/close?identifierType=alias",
            "/v2/alerts/reliactl%3Aweb-1%3Adisk/close?identifierType=alias",
        }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_job_has_one_run_key_however_the_run_names_it(
    make_store: Callable[..., Any],
    server: CountingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review finding 3: `run --name sync --alert` (no --job) of the job declared
    `lock_scope: fleet` is the same fleet-wide run:sync as `run --job sync`: web-1's failure
    by name is recovered by web-2's success by --job (before, one was HOST/run:sync and the
    other run:sync: two problems, no recovery). An undeclared name run with `--lock-scope
    fleet` is fleet-wide too; without it, each host's."""
    from reliactl.cli._jobwatch import watch_for_run
    from reliactl.config import load

    cfg = tmp_path / "jobs.yaml"
    cfg.write_text(
        f"health_monitor:\n  alerts:\n    - {{name: hook, kind: webhook, url: '{server.url}/h'}}\n"
        "jobs:\n  sync: {every: 1h, lock_scope: fleet}\n"
    )
    config = load(str(cfg), use_env=False, search=False).config
    store = make_store()

    def run(host: str, name: str, code: int, by_job: bool, scope: str | None = None) -> None:
        monkeypatch.setenv("RELIACTL_HOSTNAME", host)
        settings = config.jobs[name] if by_job else None
        watch = watch_for_run(
            config, name, settings, alert=True, open_store=lambda: store, lock_scope=scope
        )
        assert watch is not None
        assert watch.finish(_Finished(code)) == []

    run("web-1", "sync", 1, by_job=False)
    run("web-2", "sync", 0, by_job=True)
    run("web-1", "adhoc", 1, by_job=False, scope="fleet")
    run("web-2", "adhoc", 0, by_job=False, scope="fleet")
    run("web-1", "local", 1, by_job=False)
    run("web-2", "local", 0, by_job=False)
    assert _posted(server) == [
        ("web-1", "run:sync", "problem", "CRITICAL"),
        ("web-2", "run:sync", "recovery", "OK"),
        ("web-1", "run:adhoc", "problem", "CRITICAL"),
        ("web-2", "run:adhoc", "recovery", "OK"),
        ("web-1", "run:local", "problem", "CRITICAL"),
    ]
    assert alertstate.fleet_run("sync", config.jobs) and not alertstate.fleet_run("x", {})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_recovered_problem_leaves_no_sink_entry(
    fleet: Callable[..., Fleet], server: CountingServer
) -> None:
    """Review finding 5 (second half): after web-1's and web-2's disk recover, notify:hook
    holds no entry for either (they stayed forever: one per host and check ever bad), and a
    later failure is still a new problem."""
    f = fleet()
    f.run("web-1", disk=C, job_nightly=C)
    f.run("web-2", disk=C)
    f.run("web-1", disk=OK, job_nightly=OK)
    f.run("web-2", disk=OK)
    entries = f.records.get("alert", "notify:hook")["checks"]  # type: ignore[index]
    assert entries == {}
    f.run("web-2", disk=C)
    assert _posted(server)[-1] == ("web-2", "disk", "problem", "CRITICAL")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_alert_resolve_closes_a_gone_hosts_problem_at_the_provider(
    make_store: Callable[..., Any],
) -> None:
    """Review finding 5: web-1 (since replaced) left disk CRITICAL open at a real
    127.0.0.1 PagerDuty. `resolve('disk')` (no host) closes nothing of one host's;
    `resolve('web-1/disk')` resolves web-1's incident (its dedup key) and removes the problem
    and its sink entry; a failed delivery keeps both for a retry. A fleet-wide problem
    resolves by its name."""
    from httpserver import FlakyServer, Reply

    records = RecordStore(make_store())
    clock = FakeClock()
    with FlakyServer(Reply(202, {"status": "success"})) as fake:
        sinks = [
            AlertSink(name="pd", kind="pagerduty", url=fake.url + "/v2/enqueue", routing_key="r")
        ]

        def manager(host: str) -> AlertManager:
            return AlertManager(
                sinks,
                records,
                clock=clock.time,
                monotonic=clock.monotonic,
                sleep=clock.async_sleep,
                host=host,
                max_attempts=1,
            )

        asyncio.run(manager("web-1").process(_report(clock, disk=C, job_nightly=C)))
        ops = manager("ops")
        assert asyncio.run(ops.resolve("disk")) == []
        fake.script("/v2/enqueue", 500)
        ((problem, (failed,)),) = asyncio.run(ops.resolve("web-1/disk"))
        assert problem.host == "web-1" and not failed.delivered
        assert len(alertstate.open_problems(records)) == 2  # kept for a retry
        ((problem, (sent,)),) = asyncio.run(ops.resolve("web-1/disk", by="ann"))
        assert sent.delivered and sent.kind == "recovery"
        ((problem, (sent,)),) = asyncio.run(ops.resolve("job:nightly"))
        assert sent.delivered
        assert alertstate.open_problems(records) == []
        assert records.get("alert", "notify:pd")["checks"] == {}  # type: ignore[index]
        resolves = [
            e["dedup_key"] for e in fake.posted("/v2/enqueue") if e["event_action"] == "resolve"
        ]
        assert resolves == ["reliactl:web-1:disk", "reliactl:web-1:disk", "reliactl:*:job:nightly"]


def test_alert_resolve_command_closes_a_replaced_hosts_problem(
    state_env: dict[str, str], tmp_path: Path
) -> None:
    """`reliactl alert resolve` (real processes on one store): web-1 left disk-data
    CRITICAL and is gone; `alert resolve disk-data` refuses (exit 1, says HOST/CHECK),
    `alert resolve web-1/disk-data` sends web-1's recovery to the webhook, says so, and
    `alert list` is empty after it."""
    with CountingServer() as server:
        cfg = tmp_path / "reliactl.yaml"
        cfg.write_text(CONFIG.format(python=json.dumps(sys.executable), url=server.url))
        env = {**os.environ, **state_env, "RELIACTL_CONFIG": str(cfg)}
        assert _cli(env, "web-1", "health", "--quiet").returncode == 2
        bare = _cli(env, "ops", "alert", "resolve", "disk-data")
        assert bare.returncode == 1 and "HOST/CHECK" in bare.stderr, bare.stderr
        done = _cli(env, "ops", "alert", "resolve", "web-1/disk-data", "--reason", "replaced")
        assert done.returncode == 0, done.stderr
        assert "web-1/disk-data (CRITICAL) resolved; recovery: hook" in done.stderr
        assert _posted(server) == [
            ("web-1", "disk-data", "problem", "CRITICAL"),
            ("web-1", "disk-data", "recovery", "OK"),
        ]
        assert _cli(env, "ops", "alert", "list").stdout.strip() == "no open problems"


def test_run_alert_refuses_a_run_name_with_a_slash(tmp_path: Path) -> None:
    """Review finding 6: `run --name x/y --alert` is a one-line usage error (exit 125, as
    run's other bad flags) and the command never runs: its alert run:x/y could not be
    told apart from host x's check y/... in HOST/CHECK targets. Without --alert the name
    is fine."""
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-m", "reliactl", "run", "--name", "x/y"]
    touch = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    env = dict(os.environ)  # isolated_env: a private HOME and state
    refused = subprocess.run(
        [*cmd, "--alert", *touch], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 125, refused.stderr
    assert refused.stderr.count("\n") == 1 and "has a '/'" in refused.stderr
    assert not marker.exists()
    ok = subprocess.run([*cmd, *touch], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and marker.exists(), ok.stderr
