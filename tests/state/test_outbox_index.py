"""The Redis store's outbox index (``NS:h:{events}:outbox-index``) stays bounded.

Every breaker that ever changed state used to stay a member of the index for ever (a fleet
naming breakers after URLs grew it without bound, and every ``events()`` paid one LRANGE
per member). Now ``prune`` (``reliactl cleanup --state``) drops the members whose outbox is
empty and whose last push is older than the retention, and never one whose outbox holds or
is about to hold events: against a real redis-server, with a writer held between its index
ZADD and its EXEC while the prune runs.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from redishelpers import RedisProxy, RedisServer, _pump

from reliactl.errors import StateUnavailableError
from reliactl.state.base import BreakerEvent
from reliactl.state.redis import _outbox_entry, open_redis_store
from reliactl.state.url import parse_state_url

HANG = 60.0  # only detects a hang
DAY = 86400.0
T0 = 1_700_000_000.0


def _indexed(server: RedisServer, namespace: str) -> set[str]:
    """The members of every outbox index key of the namespace (the scored one, and the set
    earlier versions wrote)."""
    client = server.client()
    members: set[str] = set()
    for key in client.scan_iter(match=f"{namespace}:h:{{events}}:outbox*"):
        kind = client.type(key)
        raw = client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key)
        members |= {m.decode() for m in raw}
    return members


def _trip(store: Any, name: str, at: float) -> None:
    event = BreakerEvent(name, "closed", "open", "failures", at)
    store.update_with_events("breaker", name, lambda r: ({"state": "open"}, [event]))


@pytest.mark.usefixtures("redis_client")
def test_prune_drops_idle_drained_outboxes_and_keeps_live_ones(
    redis_server: RedisServer, namespace: str
) -> None:
    """Thirty writers trip their own breaker once (outbox shipped and drained) and are never
    seen again; one writer died after its commit (its event waits in its outbox); one trips
    a day later. A prune with a one-day retention, a day and a minute after the first trips,
    leaves the index holding only the waiting outbox and the recent one; `events()` still
    ships the waiting event, and once it has, the next prune past its retention drops it."""
    clock = [T0]
    url = parse_state_url(redis_server.url)
    with open_redis_store(url, namespace=namespace, clock=lambda: clock[0]) as store:
        for i in range(30):
            _trip(store, f"gone-{i}", T0)
        waiting = BreakerEvent("crashed", "closed", "open", "waiting", T0)
        store._update("breaker", "crashed", lambda r: ({"state": "open"}, [waiting]))  # no ship
        clock[0] = T0 + DAY
        _trip(store, "recent", T0 + DAY)
        assert len(_indexed(redis_server, namespace)) == 32

        store.prune(T0 + DAY + 60, DAY, 10_000)

        assert _indexed(redis_server, namespace) == {"breaker:crashed", "breaker:recent"}
        assert "waiting" in [e.reason for e in store.events()]
        store.prune(T0 + 2 * DAY + 60, DAY, 10_000)
        assert _indexed(redis_server, namespace) == set()


def test_an_index_of_an_earlier_version_is_read_then_folded_in(
    redis_server: RedisServer, namespace: str
) -> None:
    """An index written by an earlier version (a set, ``NS:h:{events}:outboxes``) is still
    read by `events()` (a crashed writer's event there is shipped), and a prune folds it
    into the scored index, counting its retention from then."""
    url = parse_state_url(redis_server.url)
    client = redis_server.client()
    with open_redis_store(url, namespace=namespace) as store:
        waiting = BreakerEvent("old", "closed", "open", "from-before", T0)
        store._update("breaker", "old", lambda r: ({"state": "open"}, [waiting]))
        index = f"{namespace}:h:{{events}}:outbox-index"
        client.delete(index)
        client.sadd(f"{namespace}:h:{{events}}:outboxes", "breaker:old", "breaker:idle")
        assert [e.reason for e in store.events()] == ["from-before"]
        store.prune(T0, DAY, 10_000)
        assert client.type(f"{namespace}:h:{{events}}:outboxes") == b"none"
        assert {m.decode(): s for m, s in client.zrange(index, 0, -1, withscores=True)} == {
            "breaker:old": T0,
            "breaker:idle": T0,
        }
        store.prune(T0 + DAY + 1, DAY, 10_000)
        assert _indexed(redis_server, namespace) == set()


class _HeldExecProxy(RedisProxy):
    """A TCP proxy in front of redis-server that holds the first request holding an EXEC
    until ``release`` is set (``holding`` is set meanwhile), and cuts the connection instead
    of answering an EXEC that committed: its client is a writer that died right after its
    commit, before it could ship its events. An aborted EXEC (a WATCH failed) is answered."""

    def __init__(self, port: int) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        self._held = False
        super().__init__(port)

    def _pumps(self, client: Any, upstream: Any) -> None:
        exec_sent = threading.Event()

        def request(data: bytes) -> None:
            if b"EXEC" in data:
                if not self._held:
                    self._held = True
                    self.holding.set()
                    assert self.release.wait(HANG)
                exec_sent.set()

        buffered = bytearray()

        def reply(data: bytes) -> bytes:
            if not exec_sent.is_set():
                return data
            buffered.extend(data)
            if b"*" not in buffered:  # MULTI's and QUEUED's replies: EXEC's is to come
                return b""
            exec_sent.clear()
            out = bytes(buffered)
            buffered.clear()
            if b"*-1\r\n" in out:
                return out  # aborted: the writer retries
            client.shutdown(2)  # committed: the writer dies before it hears so
            return b""

        threading.Thread(target=_pump, args=(client, upstream, request), daemon=True).start()
        threading.Thread(
            target=_pump, args=(upstream, client), kwargs={"rewrite": reply}, daemon=True
        ).start()


def test_a_writer_committing_during_a_prune_stays_in_the_index(
    own_redis: Any, namespace: str
) -> None:
    """A breaker idle for a day trips again: its writer has scored it in the index and
    sent its MULTI/EXEC, which is held while a prune (retention: a day) drops the member and
    finds its outbox empty; the writer then commits and dies before shipping. Its outbox
    holds the event and the index still lists it (the prune failed the held EXEC; the
    retry scored the member again), so `events()` on another host ships it."""
    server = own_redis()
    url = parse_state_url(server.url)
    proxy = _HeldExecProxy(server.port)
    with open_redis_store(url, namespace=namespace, clock=lambda: T0) as other:
        _trip(other, "flaky", T0)  # indexed at T0, shipped
        failed: list[BaseException] = []

        def writer() -> None:
            with open_redis_store(
                parse_state_url(proxy.url),
                namespace=namespace,
                clock=lambda: T0,  # a host whose clock is a day behind: scored as idle
                connect_timeout=HANG,
                operation_timeout=HANG,
            ) as store:
                event = BreakerEvent("flaky", "open", "closed", "again", T0 + DAY)
                try:
                    store.update_with_events(
                        "breaker", "flaky", lambda r: ({"state": "closed"}, [event])
                    )
                except StateUnavailableError as exc:
                    failed.append(exc)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            assert proxy.holding.wait(HANG)
            other.prune(T0 + DAY + 60, DAY, 10_000)
            proxy.release.set()
            thread.join(HANG)
            assert not thread.is_alive()
        finally:
            proxy.release.set()
            proxy.close()
        assert failed, "the writer should have lost its connection after the commit"
        assert server.client().llen(other._outbox_key("breaker", "flaky")) == 1
        assert _indexed(server, namespace) == {"breaker:flaky"}
        assert [e.reason for e in other.events()] == ["again"]  # "failures": past the retention


@pytest.mark.usefixtures("redis_client")
def test_a_host_of_an_earlier_version_pushing_during_a_prune_stays_indexed(
    redis_server: RedisServer, namespace: str
) -> None:
    """A mixed fleet while upgrading: a breaker idle for a day in the scored index trips on
    a host of the earlier version, which adds it to the old set before its MULTI (and does
    not WATCH the outbox); a prune folds the set in, then that host's EXEC pushes its event
    and the host dies before shipping. The outbox stays listed (the fold scored the member
    at the prune's time, so the prune did not take it as idle), and `events()` ships it."""
    url = parse_state_url(redis_server.url)
    client = redis_server.client()
    with open_redis_store(url, namespace=namespace, clock=lambda: T0) as store:
        _trip(store, "x", T0)  # scored T0, shipped: its outbox is empty
        client.sadd(f"{namespace}:h:{{events}}:outboxes", "breaker:x")  # the old host's SADD
        store.prune(T0 + DAY + 60, DAY, 10_000)
        late = BreakerEvent("x", "open", "closed", "old-host", T0 + DAY)
        client.rpush(store._outbox_key("breaker", "x"), _outbox_entry(late))  # its EXEC
        assert _indexed(redis_server, namespace) == {"breaker:x"}
        assert [e.reason for e in store.events()] == ["old-host"]


def _with_waiting_outbox(store: Any) -> None:
    """Three breakers tripped and shipped at T0, one whose writer died after its commit (its
    event waits in its outbox), and a kv record written at T0: all idle a day later."""
    for i in range(3):
        _trip(store, f"gone-{i}", T0)
    waiting = BreakerEvent("crashed", "closed", "open", "waiting", T0)
    store._update("breaker", "crashed", lambda r: ({"state": "open"}, [waiting]))  # no ship
    store.update("kv", "old", lambda r: {"n": 1})


ALL = {"breaker:crashed", *(f"breaker:gone-{i}" for i in range(3))}


@pytest.mark.usefixtures("redis_client")
def test_a_full_redis_still_prunes_and_keeps_every_outbox_indexed(
    own_redis: Any, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On a Redis at maxmemory with noeviction (when an operator runs cleanup) the prune
    still removes the old events and records, as it did before the index was pruned, and
    says the index was not pruned; the index stays whole, the outbox holding a crashed
    writer's event included, which `events()` ships once Redis has room again."""
    server = own_redis("--maxmemory-policy", "noeviction")
    url = parse_state_url(server.url)
    with open_redis_store(url, namespace=namespace, clock=lambda: T0) as store:
        _with_waiting_outbox(store)
        server.client().config_set("maxmemory", "1")
        with caplog.at_level("WARNING", logger="reliactl.state"):
            report = store.prune(T0 + DAY + 60, DAY, 10_000)
        assert (report.events_removed, report.records_removed) == (3, 1)
        assert "outbox index was not (fully) pruned" in caplog.text
        assert "Redis is full" in caplog.text
        assert _indexed(server, namespace) == ALL
        server.client().config_set("maxmemory", "0")
        assert [e.reason for e in store.events()] == ["waiting"]


class _TripwireProxy(RedisProxy):
    """A TCP proxy in front of redis-server that calls ``action`` before forwarding the
    first request holding ``trigger`` (``action`` may raise OSError: that connection is
    cut, the request never reaches Redis)."""

    def __init__(self, port: int, trigger: bytes, action: Any) -> None:
        self.trigger = trigger
        self.action = action
        self.fired = threading.Event()
        super().__init__(port)

    def _request(self, data: bytes) -> None:
        if self.trigger in data and not self.fired.is_set():
            self.fired.set()
            self.action()


@pytest.mark.usefixtures("redis_client")
@pytest.mark.parametrize("failure", ["redis-fills", "connection-drops"])
def test_a_prune_failing_between_its_steps_keeps_every_outbox_indexed(
    own_redis: Any, namespace: str, failure: str
) -> None:
    """The prune's check of the idle members' outboxes meets a Redis that just filled up
    (maxmemory reached with noeviction: it refuses the write that releases an empty outbox)
    or a connection cut: the prune of the events and records stands, no error escapes, and
    every member stays indexed, the outbox holding a crashed writer's event included
    (`events()` ships it); a later prune on a healthy Redis drops the drained ones."""
    server = own_redis("--maxmemory-policy", "noeviction")
    url = parse_state_url(server.url)

    def fail() -> None:
        if failure == "redis-fills":
            server.client().config_set("maxmemory", "1")
        else:
            raise OSError("cut")

    proxy = _TripwireProxy(server.port, f"{namespace}:o:{{breaker:".encode(), fail)
    try:
        with open_redis_store(url, namespace=namespace, clock=lambda: T0) as store:
            _with_waiting_outbox(store)
        via = parse_state_url(proxy.url)
        with open_redis_store(via, namespace=namespace, clock=lambda: T0) as store:
            report = store.prune(T0 + DAY + 60, DAY, 10_000)
            assert proxy.fired.is_set()
            assert (report.events_removed, report.records_removed) == (3, 1)
            assert _indexed(server, namespace) == ALL
            server.client().config_set("maxmemory", "0")
            assert [e.reason for e in store.events()] == ["waiting"]
            store.prune(T0 + DAY + 60, DAY, 10_000)
            assert _indexed(server, namespace) == set()
    finally:
        proxy.close()
