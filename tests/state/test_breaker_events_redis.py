"""Breaker events on the Redis store commit with the state change (issue 21 hardening).

The record (``NS:r:{breaker:NAME}``) and the event stream (``NS:h:{events}``) are in
different Redis Cluster slots, so one MULTI cannot hold both. Events are pushed to the
breaker's outbox (``NS:o:{breaker:NAME}``, the record's slot) in the record's MULTI, then
shipped to the stream once. These tests stall the real `reliactl breaker trip` at the worst
moments (a hook in the child process holds the first command it would send there) and kill
it with SIGKILL, against a real redis-server: the event log never holds a change that did
not commit, and never loses one that did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redishelpers import RedisServer

from reliactl.state.base import BreakerEvent
from reliactl.state.redis import open_redis_store
from reliactl.state.url import parse_state_url

HANG = 120.0  # only detects a hang

# The child: the real CLI, with a hook on the RESP client's send that stops the process
# (sleeps until killed) before it sends the stage's command: "commit" = the batch holding
# EXEC (the record's transaction); "shipped" = the first command touching the {events} keys
# after that EXEC went out (the old code's XADD, the new code's shipping script).
CHILD = r"""
import os, runpy, sys, time
from reliactl.state import _resp

marker, stage = sys.argv[1], sys.argv[2]
send = _resp.Connection.send
committed = []

def stall():
    with open(marker, "w"):
        pass
    time.sleep(600)

def hooked(self, commands, deadline=None):
    names = [str(c[0]).upper() for c in commands]
    raw = b" ".join(a if isinstance(a, bytes) else str(a).encode() for c in commands for a in c)
    if stage == "commit" and "EXEC" in names:
        stall()
    if stage == "shipped" and committed and b"{events}" in raw:
        stall()
    result = send(self, commands, deadline)
    if "EXEC" in names:
        committed.append(True)
    return result

_resp.Connection.send = hooked
sys.argv = ["reliactl", "--config", sys.argv[3], "breaker", "trip", "b"]
runpy.run_module("reliactl", run_name="__main__")
"""


def _trip_and_kill(server: RedisServer, namespace: str, tmp_path: Path, stage: str) -> None:
    """Run `reliactl breaker trip b`, stalled at ``stage``, and kill -9 it there."""
    marker = tmp_path / f"stalled-{stage}"
    config = tmp_path / "reliactl.yaml"
    config.write_text("circuit_breaker:\n  breakers:\n    b:\n      failure_threshold: 3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    env.update(
        HOME=str(tmp_path),
        RELIACTL_STATE__URL=server.url,
        RELIACTL_STATE__NAMESPACE=namespace,
        RELIACTL_STATE__PATH=str(tmp_path / "local.db"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), stage, str(config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + HANG
        while not marker.exists():
            if proc.poll() is not None:
                _out, err = proc.communicate()
                pytest.fail(f"the writer ended before the stall ({proc.returncode}): {err!r}")
            assert time.monotonic() < deadline, "the writer never reached the stall"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=HANG)
    assert proc.returncode == -signal.SIGKILL


def _store(server: RedisServer, namespace: str) -> Any:
    return open_redis_store(
        parse_state_url(server.url), namespace=namespace, connect_timeout=5, operation_timeout=5
    )


def test_killed_after_the_commit_the_event_is_not_lost(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """kill -9 after the trip's transaction committed and before its event reached the
    stream: the breaker is open and the next read of the events shows the trip (the old
    code, XADD after the commit, lost it for good)."""
    _trip_and_kill(redis_server, namespace, tmp_path, "shipped")
    with _store(redis_server, namespace) as store:
        record = store.get("breaker", "b")
        assert record is not None and record["state"] == "open"
        events = store.events("b")
        assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")], events
        assert "tripped by hand" in events[0].reason
        assert store.events("b") == events  # shipped once: a second read adds nothing
        assert store.events() == events


def test_killed_before_the_commit_no_event_claims_the_change(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """kill -9 just before the trip's transaction is sent: the breaker did not change, and
    no event (now, nor after a later read or another breaker's transition) says it did."""
    _trip_and_kill(redis_server, namespace, tmp_path, "commit")
    with _store(redis_server, namespace) as store:
        record = store.get("breaker", "b")
        assert record is None or record.get("state") != "open"
        assert store.events("b") == [] and store.events() == []
        store.update_with_events(
            "breaker",
            "other",
            lambda r: ({"state": "open"}, [BreakerEvent("other", "closed", "open", "t", 1.0)]),
        )
        assert [e.name for e in store.events()] == ["other"]


@pytest.mark.usefixtures("redis_client")
def test_events_commit_with_the_record_in_its_slot_and_ship_once(
    redis_server: RedisServer, namespace: str
) -> None:
    """update_with_events: the outbox shares the record's hash tag (one Cluster slot for the
    MULTI), is empty once shipped, and an entry left by a crashed writer (pushed again by
    hand, as the MULTI pushes it) is shipped exactly once, before the newer transition."""
    from reliactl.state.redis import _outbox_entry

    with _store(redis_server, namespace) as store:
        client = redis_server.client()
        rkey, okey = store._key("breaker", "x{y}"), store._outbox_key("breaker", "x{y}")
        from redis.crc import key_slot  # what a Cluster client computes (CRC16 of the tag)

        assert key_slot(rkey.encode()) == key_slot(okey.encode())
        first = BreakerEvent("x{y}", "closed", "open", "one", 1.0)
        store.update_with_events("breaker", "x{y}", lambda r: ({"state": "open"}, [first]))
        assert client.llen(okey) == 0
        left = _outbox_entry(BreakerEvent("x{y}", "open", "half_open", "two", 2.0))
        client.rpush(okey, left)
        store._call(lambda: store._flush_outbox(okey))  # shipped; then the same entry again
        client.rpush(okey, left)
        third = BreakerEvent("x{y}", "half_open", "closed", "three", 3.0)
        store.update_with_events("breaker", "x{y}", lambda r: ({"state": "closed"}, [third]))
        got = [e.reason for e in reversed(store.events("x{y}"))]
        assert got == ["one", "two", "three"], got
        assert client.llen(okey) == 0


@pytest.mark.usefixtures("redis_client")
def test_a_failure_after_the_commit_keeps_the_change_and_its_event(
    redis_server: RedisServer, namespace: str
) -> None:
    """The stream refuses the shipping script (a key of the wrong type where the stream
    goes: WRONGTYPE): update_with_events still returns the committed record, without an
    error (a fleet store would otherwise apply the change again to the host's store), the
    event waits in the outbox, and once the stream can take it the next read ships it."""
    with _store(redis_server, namespace) as store:
        client = redis_server.client()
        client.set(store._events_key, "not a stream")
        event = BreakerEvent("w", "closed", "open", "waits", 1.0)
        new = store.update_with_events("breaker", "w", lambda r: ({"state": "open"}, [event]))
        assert new == {"state": "open"} and store.get("breaker", "w") == {"state": "open"}
        assert client.llen(store._outbox_key("breaker", "w")) == 1
        client.delete(store._events_key)
        assert [e.reason for e in store.events()] == ["waits"]
        assert client.llen(store._outbox_key("breaker", "w")) == 0


def test_fleet_store_with_redis_away_queues_the_events_with_the_change(tmp_path: Path) -> None:
    """FleetStore (state.on_unavailable local) while Redis is away: update_with_events
    updates the host's record and queues the transition in the host's outbox (shipped by
    `state sync`), as add_event did; nothing is lost for want of Redis."""
    from reliactl.errors import StateUnavailableError
    from reliactl.state.fleet import FleetStore
    from reliactl.state.sqlite import open_store

    warnings: list[str] = []
    store = FleetStore(
        None,
        lambda: open_store(tmp_path / "local.db", max_rows=100),
        mode="local",
        location="redis://127.0.0.1:1/0",
        warn=warnings.append,
        reason=StateUnavailableError("away"),
    )
    with store:
        event = BreakerEvent("f", "closed", "open", "local", 1.0)
        new = store.update_with_events("breaker", "f", lambda r: ({"state": "open"}, [event]))
        assert new == {"state": "open"}
        local = store.local()
        assert local.get("breaker", "f") == {"state": "open"}
        assert [e.reason for e in local.events("f")] == ["local"]
        assert local.queued_count() == 1


@pytest.mark.parametrize("refusal", ["maxmemory-noeviction", "read-only-replica"])
def test_reading_events_works_when_redis_refuses_writes(
    own_redis: Any, namespace: str, refusal: str
) -> None:
    """A transition whose shipping was cut off (its event waits in the outbox), then Redis
    refuses writes (maxmemory reached with noeviction, or it became a read-only replica):
    events() and events(name) still return the stream's history (the shipping flush they
    try first is best-effort); once writes are accepted again the next read ships the
    waiting event."""
    from redishelpers import free_port

    server = own_redis()
    with _store(server, namespace) as store:
        client = server.client()
        shipped = BreakerEvent("a", "closed", "open", "shipped", 1.0)
        store.update_with_events("breaker", "a", lambda r: ({"state": "open"}, [shipped]))
        waiting = BreakerEvent("b", "closed", "open", "waiting", 2.0)
        store._update("breaker", "b", lambda r: ({"state": "open"}, [waiting]))  # not shipped
        assert client.llen(store._outbox_key("breaker", "b")) == 1
        if refusal == "maxmemory-noeviction":
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", "1")
        else:
            client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        assert [e.reason for e in store.events()] == ["shipped"]
        assert [e.reason for e in store.events("a")] == ["shipped"]
        assert store.events("b") == []
        if refusal == "maxmemory-noeviction":
            client.config_set("maxmemory", "0")
        else:
            client.execute_command("REPLICAOF", "NO", "ONE")
        assert [e.reason for e in store.events()] == ["waiting", "shipped"]
        assert client.llen(store._outbox_key("breaker", "b")) == 0


def test_a_transition_uses_one_connection(own_redis: Any, namespace: str) -> None:
    """Opening the store and committing a transition with its event open one connection
    (one CLIENT SETNAME on the server): the outbox index's ZADD goes on the connection that
    holds the WATCH, not on a second one taken from the pool while the first is busy."""
    server = own_redis()
    client = server.client()
    client.config_resetstat()
    with _store(server, namespace) as store:
        event = BreakerEvent("c", "closed", "open", "one", 1.0)
        store.update_with_events("breaker", "c", lambda r: ({"state": "open"}, [event]))
        assert [e.reason for e in store.events("c")] == ["one"]
    stats = client.info("commandstats")
    assert stats["cmdstat_client|setname"]["calls"] == 1, stats.get("cmdstat_client|setname")


@pytest.mark.usefixtures("redis_client")
def test_an_old_waiting_event_is_shipped_once_by_two_flushers(
    redis_server: RedisServer, namespace: str
) -> None:
    """max_history 5, already full of newer shipped events; an hour-old transition waits in
    its outbox (its writer died after the commit) and two flushers read the same outbox
    snapshot: it reaches the stream once (its origin is kept by shipping order, so it is not
    trimmed right after being added, as when origins were scored by the event's time)."""
    store = open_redis_store(
        parse_state_url(redis_server.url),
        namespace=namespace,
        max_rows=5,
        connect_timeout=5,
        operation_timeout=5,
    )
    with store:
        now = time.time()
        old = BreakerEvent("slow", "closed", "open", "old", now - 3600)
        store._update("breaker", "slow", lambda r: ({"state": "open"}, [old]))  # not shipped
        for i in range(5):
            ev = BreakerEvent(f"b{i}", "closed", "open", "new", now + i)
            store.update_with_events("breaker", f"b{i}", lambda r, ev=ev: ({"state": "open"}, [ev]))
        okey = store._outbox_key("breaker", "slow")
        snapshot = list(store.client.lrange(okey, 0, -1))
        first = store._call(lambda: store._flush_outbox(okey, snapshot, whole=True))
        second = store._call(lambda: store._flush_outbox(okey, snapshot, whole=True))
        assert (first, second) == (1, 0)
        assert [e.reason for e in store.events("slow")] == ["old"]


@pytest.mark.usefixtures("redis_client")
def test_ship_event_keeps_an_origin_for_the_next_max_history_ships(
    redis_server: RedisServer, namespace: str
) -> None:
    """`state sync`'s ship_event: an old event (by its time) shipped after newer ones is
    still recognised when shipped again, until max_history later ships pushed it out."""
    store = open_redis_store(
        parse_state_url(redis_server.url),
        namespace=namespace,
        max_rows=3,
        connect_timeout=5,
        operation_timeout=5,
    )
    with store:
        for i in range(3):
            ev = BreakerEvent("n", "closed", "open", f"new{i}", 2_000_000_000.0 + i)
            assert store.ship_event(f"new{i}", ev, {})
        old = BreakerEvent("n", "open", "closed", "old", 1.0)
        assert store.ship_event("old", old, {})
        assert not store.ship_event("old", old, {})
        assert len(store.client.zrange(store._events_origins, 0, -1)) == 3


def test_a_lost_exec_reply_on_a_fleet_store_leaves_one_event(
    redis_server: RedisServer, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FleetStore (on_unavailable local): the transition's EXEC reaches Redis and commits,
    but its reply is lost (a timeout), so the fleet store falls back and queues the event in
    the host's store too. The two copies carry the same origin: after `state sync` and a
    read of the events, the stream holds the transition once."""
    from reliactl.state import _resp
    from reliactl.state.fleet import FleetStore, sync
    from reliactl.state.sqlite import open_store

    remote = _store(redis_server, namespace)
    local_path = tmp_path / "local.db"
    fleet = FleetStore(
        remote, lambda: open_store(local_path), mode="local", location="redis", warn=lambda m: None
    )
    send = _resp.Connection.send
    armed = [True]

    def lose_exec_reply(self: Any, commands: Any, deadline: Any = None) -> Any:
        result = send(self, commands, deadline)
        if armed[0] and any(str(c[0]).upper() == "EXEC" for c in commands):
            armed[0] = False
            raise _resp.TimeoutError("Timeout reading from socket")  # EXEC ran; reply lost
        return result

    monkeypatch.setattr(_resp.Connection, "send", lose_exec_reply)
    counter = iter(range(1, 100))

    def trip(record: Any) -> Any:  # as the breaker does: a new event (new time) per run
        return {"state": "open"}, [BreakerEvent("b", "closed", "open", "t", 1000.0 + next(counter))]

    fleet.update_with_events("breaker", "b", trip)
    monkeypatch.setattr(_resp.Connection, "send", send)
    assert not armed[0]
    with open_store(local_path) as local:
        report = sync(remote, local)
    assert report.left == 0
    events = remote.events("b")
    assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")], events
    remote.close()
