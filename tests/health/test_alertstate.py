"""Issue 19: silences, grouping, group_wait, repeats, escalation, acknowledgements and flap
detection, decided in a real SQLite store and counted by a real HTTP sink."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from httpserver import CountingServer

from reliactl.config import AlertSink
from reliactl.health import alertstate
from reliactl.health.alerts import AlertManager
from reliactl.health.alertstate import AlertPolicy
from reliactl.health.model import HealthMetric, HealthReport, Status, worst
from reliactl.health.records import RecordStore
from reliactl.state.sqlite import open_store
from reliactl.testing import FakeClock

C, W, OK = Status.CRITICAL, Status.WARNING, Status.OK


def report(clock: FakeClock, **statuses: Status) -> HealthReport:
    metrics = {
        name: HealthMetric(name, status, 1.0, f"{name} is {status.value.lower()}")
        for name, status in statuses.items()
    }
    return HealthReport(worst(statuses.values()), metrics, clock.time(), 0.0)


class Rig:
    """An AlertManager on a FakeClock, a real SQLite store and a counting HTTP server whose
    paths are the sinks (/hook, /pager)."""

    def __init__(self, server: CountingServer, tmp_path: Path, **policy: Any) -> None:
        self.server = server
        self.clock = FakeClock()
        self.records = RecordStore(open_store(tmp_path / "state.db"))
        sinks = [AlertSink(name="hook", kind="webhook", url=server.url + "/hook", cooldown=None)]
        if policy.get("escalate_to"):
            sinks.append(AlertSink(name="pager", kind="webhook", url=server.url + "/pager"))
        self.am = AlertManager(
            sinks,
            self.records,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            sleep=self.clock.async_sleep,
            host="testhost",
            default_cooldown=3600,
            policy=AlertPolicy(**policy),
            breakers={"backup": "nas"},
        )

    def run(self, **statuses: Status) -> list[Any]:
        return asyncio.run(self.am.process(report(self.clock, **statuses)))

    def messages(self, path: str = "/hook") -> list[list[tuple[str, str, str]]]:
        """Each message a sink received: its (check, kind, status) lines."""
        out = []
        for seen in self.server.requests:
            if seen.path != path:
                continue
            doc = seen.json()
            alerts = doc["alerts"] if doc.get("kind") == "group" else [doc]
            out.append([(a["check"], a["kind"], a["status"]) for a in alerts])
        return out


def test_a_silenced_problem_sends_nothing_and_goes_out_when_the_silence_ends(
    server: CountingServer, tmp_path: Path
) -> None:
    """A silenced check sends nothing (still reported); after expiry what is still true goes
    out, and a glob silences every matching check."""
    rig = Rig(server, tmp_path)
    now = rig.clock.time()
    silence = alertstate.add_silence(
        rig.records, "disk*", 600, reason="resize", by="alice", now=now
    )
    assert rig.run(disk_root=C, disk_data=C) == []
    notes = alertstate.check_notes(rig.records, ["disk_root", "cpu"], now)
    assert notes["disk_root"].silence == silence and "cpu" not in notes
    assert "silenced by alice: resize" in notes["disk_root"].text()
    rig.clock.advance(601)  # expired by itself
    rig.run(disk_root=C, disk_data=C)
    assert rig.messages() == [
        [("disk_root", "problem", "CRITICAL"), ("disk_data", "problem", "CRITICAL")]
    ]


def test_a_silence_matches_a_job_and_its_breaker_and_a_planned_one_waits(
    server: CountingServer, tmp_path: Path
) -> None:
    """TARGET may be the job name of job:NAME/run:NAME or the job's breaker; a silence with a
    later start silences nothing before it."""
    rig = Rig(server, tmp_path)
    now = rig.clock.time()
    alertstate.add_silence(rig.records, "nas", 600, by="bob", now=now)  # backup's breaker
    alertstate.add_silence(rig.records, "web", 600, start=now + 300, by="bob", now=now)
    rig.run(**{"job:backup": C, "run:web": C})
    assert rig.messages() == [[("run:web", "problem", "CRITICAL")]]
    assert [s.state(now) for s in alertstate.list_silences(rig.records, now)] == [
        "active",
        "pending",
    ]
    sid = alertstate.list_silences(rig.records, now)[0].id
    assert alertstate.remove_silence(rig.records, sid) and not alertstate.remove_silence(
        rig.records, sid
    )


def test_one_grouped_message_per_run_with_every_problem_and_recovery(
    server: CountingServer, tmp_path: Path
) -> None:
    """Three checks failing in one run: one message; two recover while a fourth fails: one."""
    rig = Rig(server, tmp_path)
    outcomes = rig.run(a=C, b=W, c=C, d=OK)
    assert len(rig.messages()) == 1 and len(outcomes) == 3
    assert all(o.delivered for o in outcomes)
    rig.clock.advance(10)
    rig.run(a=OK, b=OK, c=C, d=C)
    assert rig.messages()[1] == [
        ("a", "recovery", "OK"),
        ("b", "recovery", "OK"),
        ("d", "problem", "CRITICAL"),
    ]
    assert server.requests[1].json()["summary"] == "reliactl on testhost: 2 recoveries, 1 problem"


def test_group_wait_holds_a_new_problem_so_later_ones_join_it(
    server: CountingServer, tmp_path: Path
) -> None:
    """With group_wait 30s a problem first seen now waits; one that fails 20 s later joins
    it; the first run after 30 s sends both in one message."""
    rig = Rig(server, tmp_path, group_wait=30)
    rig.run(a=C, b=OK)
    rig.clock.advance(20)
    rig.run(a=C, b=C)
    assert server.count == 0
    rig.clock.advance(15)
    rig.run(a=C, b=C)
    assert rig.messages() == [[("a", "problem", "CRITICAL"), ("b", "problem", "CRITICAL")]]


def test_repeat_every_and_an_acknowledgement_that_lasts_until_recovery(
    server: CountingServer, tmp_path: Path
) -> None:
    """repeat_every re-notifies; `ack` stops repeats; the recovery is still sent and clears
    the acknowledgement, so the next problem repeats again."""
    rig = Rig(server, tmp_path, repeat_every=600)
    rig.run(a=C)
    rig.clock.advance(599)
    rig.run(a=C)
    rig.clock.advance(2)
    rig.run(a=C)
    assert [m[0][1] for m in rig.messages()] == ["problem", "repeat"]
    acked = alertstate.acknowledge(
        rig.records, "a", reason="on it", by="carol", now=rig.clock.time()
    )
    assert [(p.check, p.ack_by, p.ack_reason) for p in acked] == [("a", "carol", "on it")]
    (problem,) = alertstate.open_problems(rig.records)
    assert problem.acknowledged and problem.since is not None
    rig.clock.advance(3600)
    rig.run(a=C)
    assert len(rig.messages()) == 2  # no repeat while acknowledged
    rig.run(a=OK)
    assert rig.messages()[-1] == [("a", "recovery", "OK")]
    assert alertstate.open_problems(rig.records) == []
    rig.run(a=C)
    rig.clock.advance(601)
    rig.run(a=C)
    assert [m[0][1] for m in rig.messages()[-2:]] == ["problem", "repeat"]
    assert alertstate.acknowledge(rig.records, "zzz*", now=rig.clock.time()) == []


def test_escalation_after_the_problem_lasted_and_not_when_acknowledged(
    server: CountingServer, tmp_path: Path
) -> None:
    """The pager hears nothing for 15 minutes, then one escalation, then the recovery; an
    acknowledged problem is never escalated."""
    rig = Rig(server, tmp_path, escalate_after=900, escalate_to=("pager",))
    rig.run(a=C, b=C)
    rig.clock.advance(899)
    rig.run(a=C, b=C)
    assert rig.messages("/pager") == [] and len(rig.messages()) == 1
    alertstate.acknowledge(rig.records, "b", by="dave", now=rig.clock.time())
    rig.clock.advance(2)
    rig.run(a=C, b=C)
    rig.run(a=C, b=C)
    assert rig.messages("/pager") == [[("a", "escalation", "CRITICAL")]]
    rig.run(a=OK, b=OK)
    assert rig.messages("/pager")[-1] == [("a", "recovery", "OK")]
    assert rig.messages()[-1] == [("a", "recovery", "OK"), ("b", "recovery", "OK")]


def test_a_flapping_check_is_notified_once_and_again_when_it_settles(
    server: CountingServer, tmp_path: Path
) -> None:
    """More than 3 changes within the window: one FLAPPING message, silence while it flaps,
    one "settled" message once the changes in the window drop to half."""
    rig = Rig(server, tmp_path, flap_changes=3, flap_window=600)
    for status in (C, OK, C):  # 3 changes
        rig.run(a=status)
        rig.clock.advance(10)
    assert [m[0][1] for m in rig.messages()] == ["problem", "recovery", "problem"]
    rig.run(a=OK)  # the 4th change
    assert rig.messages()[-1] == [("a", "flapping", "OK")]
    notes = alertstate.check_notes(rig.records, ["a"], rig.clock.time(), host="testhost")
    assert notes["a"].problem is not None and notes["a"].problem.flapping
    for status in (OK, C, OK, C, OK, C):
        rig.clock.advance(10)
        rig.run(a=status)
    assert len(rig.messages()) == 4  # nothing while flapping
    (problem,) = alertstate.open_problems(rig.records)
    assert problem.flapping
    rig.clock.advance(601)  # the window forgets the old changes: settled
    rig.run(a=C)
    assert rig.messages()[-1] == [("a", "settled", "CRITICAL")]
    rig.clock.advance(10)
    rig.run(a=OK)
    assert rig.messages()[-1] == [("a", "recovery", "OK")]


def test_a_run_after_upgrade_does_not_resend_what_the_old_records_say_was_sent(
    server: CountingServer, tmp_path: Path
) -> None:
    """An old per-check record (SINK:CHECK) still counts: no second 'problem' after upgrade."""
    rig = Rig(server, tmp_path)
    sent = rig.clock.time() - 60
    rig.records.update("alert", "hook:a", lambda _r: {"status": "CRITICAL", "sent_at": sent})
    rig.run(a=C)
    assert server.count == 0
    rig.run(a=OK)
    assert rig.messages() == [[("a", "recovery", "OK")]]


def test_parse_start() -> None:
    """--start: +2h / 2h from now, ISO with Z as UTC."""
    now = 1_800_000_000.0
    assert alertstate.parse_start("+2h", now) == now + 7200
    assert alertstate.parse_start("90m", now) == now + 5400
    assert alertstate.parse_start("2027-01-15T08:00:00Z", now) == 1_800_000_000.0
    for bad in ("", "tomorrow", "2027-13-01"):
        try:
            alertstate.parse_start(bad, now)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_without_a_state_store_silences_and_grouping_work_in_memory(
    server: CountingServer,
) -> None:
    """The store failed to open (health goes on in memory): a silence added to the same
    RecordStore still holds, and the rest goes out as one message."""
    clock = FakeClock()
    records = RecordStore()
    sink = AlertSink(name="hook", kind="webhook", url=server.url + "/hook")
    am = AlertManager([sink], records, clock=clock.time, host="h", sleep=clock.async_sleep)
    alertstate.add_silence(records, "a", 60, by="x", now=clock.time())
    asyncio.run(am.process(report(clock, a=C, b=C, c=W)))
    (seen,) = server.requests
    assert [x["check"] for x in seen.json()["alerts"]] == ["b", "c"]
