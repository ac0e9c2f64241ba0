"""The shared state store on Redis (or Valkey): one store for a fleet of hosts.

Imported only when ``state.url`` is a Redis URL (``open_state`` decides). It talks to Redis
through ``state/_resp.py``, a small RESP2 client of our own (redis-py's import alone cost
more than a whole ``run`` may; DESIGN section 6). Every command has a connect and a reply
timeout and no client-side retries: a down, hung or partitioned Redis fails a store call
within a stated bound (``connect_timeout + operation_timeout`` for the command it waits on;
a call of n round trips at most ``connect_timeout + n x operation_timeout``: README
"Running on several hosts") with one clear StateError, never hangs.

Keys (``NS`` = ``state.namespace``; braces are Redis Cluster hash tags)::

    NS:r:{KIND:KEY}      one record: JSON {"d": record, "u": updated_at}
    NS:h:{events}        stream of breaker transitions, trimmed to max_history on every add
    NS:h:{events}:origins        sorted set of the events shipped into it (exactly once)
    NS:h:{events}:outbox-index   sorted set of the records whose outbox may hold events,
                                 scored by their last push (store clock); ``prune`` drops
                                 those with an empty outbox idle past the retention
    NS:h:{events}:outboxes       the index before it was scored (a set; read, and folded
                                 into the sorted set by ``prune``)
    NS:o:{KIND:KEY}      a record's outbox: list of its events not yet in the stream
    NS:h:{runs}:seq      run id counter (INCR: unique across hosts)
    NS:h:{runs}:ids      sorted set of run ids (score = id), trimmed to max_history
    NS:h:{runs}:data     hash run id -> JSON run
    NS:h:{health}:checks         set of the checks with health history
    NS:h:{health}:raw:CHECK      sorted set of raw points (score = time, member = JSON)
    NS:h:{health}:agg:CHECK      sorted set of bucket aggregates (score = bucket start)
    NS:h:{health}:compacting     short lock: one compaction at a time across the fleet
    NS:h:{hevents}               stream of health status changes, trimmed to max_history

``update`` is optimistic: WATCH the record, GET, call the Python updater, MULTI/SET/EXEC,
and start again if another client changed the record meanwhile. The updater is arbitrary
Python (a breaker's state machine, a token bucket, an alert claim), which a Lua script could
only run if each were rewritten in Lua; the price is that ``fn`` may run more than once, and
only the last run's result is stored (the protocol says so).

A breaker's transitions (``update_with_events``) are pushed to the record's outbox in the
same MULTI as the record (the outbox has the record's hash tag: one Cluster slot), then
shipped to the stream once (its origin is remembered there) and removed from the outbox. A
kill -9 between the two leaves them in the outbox: the next transition of that breaker, or
the next read of the events, ships them. So the event log never holds a change that did not
commit, and a committed change's event is never lost (DESIGN section 6, "Breaker events on
Redis: an outbox under the breaker's hash tag").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence

from reliactl.errors import StateAuthError, StateConfigError, StateError, StateUnavailableError
from reliactl.hostname import hostname
from reliactl.state import _resp
from reliactl.state.base import (
    RECORD_KINDS,
    BreakerEvent,
    EventUpdater,
    HealthAggregate,
    HealthEvent,
    HealthPoint,
    PruneReport,
    Record,
    RecordKind,
    RunRecord,
    Updater,
)
from reliactl.state.url import StateURL, redact_url

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, NoReturn

CONTENTION_DEADLINE_S = 10.0  # an update that keeps losing races gives up after this
PAGE = 500

_ADD_RUN = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], id, ARGV[1])
redis.call('ZADD', KEYS[2], id, id)
local keep = tonumber(ARGV[2])
if id > keep then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', id - keep, 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREM', KEYS[2], unpack(old))
  end
end
return id
"""

# Whether the record stored under an id is the run being finished (same name, start and host):
# after a restart that lost the data, ids start again at 1 and another host's run may have
# taken that id; it must never be overwritten.
_SAME_RUN = """
local function same_run(raw, payload)
  if not raw then return false end
  local ok1, a = pcall(cjson.decode, raw)
  local ok2, b = pcall(cjson.decode, payload)
  if not (ok1 and ok2) or type(a) ~= 'table' or type(b) ~= 'table' then return false end
  local ha = type(a.data) == 'table' and a.data.host or nil
  local hb = type(b.data) == 'table' and b.data.host or nil
  return a.name == b.name and a.started_at == b.started_at and ha == hb
end
"""

_FINISH_RUN = (
    _SAME_RUN
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1])
    and same_run(redis.call('HGET', KEYS[2], ARGV[1]), ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
"""
)

# Ship one run recorded elsewhere (the local outbox, `state migrate`) exactly once: ARGV[1] is
# its origin (host, local store, local id, start), remembered in a sorted set scored by the
# run id it got, trimmed with the runs. ARGV[4] is the id this store gave the run at its start
# (0 when it started while Redis was away): that record is finished in place.
_SHIP_RUN = (
    _SAME_RUN
    + """
if redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  return 0
end
local rid = tonumber(ARGV[4])
if rid > 0 and redis.call('ZSCORE', KEYS[2], rid)
    and same_run(redis.call('HGET', KEYS[3], rid), ARGV[2]) then
  redis.call('HSET', KEYS[3], rid, ARGV[2])
  redis.call('ZADD', KEYS[4], rid, ARGV[1])
  return rid
end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('ZADD', KEYS[2], id, id)
redis.call('ZADD', KEYS[4], id, ARGV[1])
local keep = tonumber(ARGV[3])
if id > keep then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', id - keep, 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREM', KEYS[2], unpack(old))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', id - keep)
end
return id
"""
)

# The origin sets of the events stream are scored by shipping order, not by the event's
# time: the XADD's own ID (ms * 1000 + sequence, as a decimal string: exact in a double), so
# trimming them to the newest max_history by rank drops the origins shipped longest ago, as
# the stream's MAXLEN drops the entries added longest ago. Scored by the event's time, an
# old event shipped late (a crashed writer's outbox) ranked below the newest max_history:
# its origin was trimmed right after it was added, and a second flusher holding the same
# outbox snapshot shipped it again. Now an origin stays known for the next max_history ships.
_SHIP_SCORE = """
local function ship_score(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. string.format('%03d', math.min(tonumber(seq), 999))
end
"""

# Ship one breaker event exactly once (ARGV[1] its origin; ARGV[2] the stream's MAXLEN; the
# rest field/value pairs).
_SHIP_EVENT = (
    _SHIP_SCORE
    + """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', unpack(fields))
redis.call('ZADD', KEYS[2], ship_score(id), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return 1
"""
)

# Ship breaker events from a breaker's outbox (below) into the stream, each once: ARGV[1] the
# stream's MAXLEN, then per event its origin, the number of field/value items and those
# items. Only {events} keys: one Cluster slot.
_SHIP_EVENTS = (
    _SHIP_SCORE
    + """
local maxlen = ARGV[1]
local i = 2
local shipped = 0
while i <= #ARGV do
  local origin, n = ARGV[i], tonumber(ARGV[i + 1])
  if not redis.call('ZSCORE', KEYS[2], origin) then
    local fields = {}
    for j = i + 2, i + 1 + n do
      fields[#fields + 1] = ARGV[j]
    end
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', unpack(fields))
    redis.call('ZADD', KEYS[2], ship_score(id), origin)
    shipped = shipped + 1
  end
  i = i + 2 + n
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(maxlen) + 1))
return shipped
"""
)

# Fold the outbox index of earlier versions (a set, KEYS[2]) into the scored one (KEYS[1]),
# every member scored ARGV[1] (the prune's time), also one already there: a host of an
# earlier version may have added it to the set just before (it does not WATCH the outbox),
# so it must not count as idle in this prune. One slot, atomic against such a host.
_FOLD_OLD_INDEX = """
local members = redis.call('SMEMBERS', KEYS[2])
for i = 1, #members, 1000 do
  local args = {}
  for j = i, math.min(i + 999, #members) do
    args[#args + 1] = ARGV[1]
    args[#args + 1] = members[j]
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
redis.call('DEL', KEYS[2])
return #members
"""

# Mark the members ARGV[3..] of the outbox index still scored at or below ARGV[1] with this
# prune's mark ARGV[2] (a negative score no clock gives and no other prune uses); returns
# those marked. They stay in the index: a writer that scores one since, or another prune
# that marks it, changes the score, and only a member still bearing this mark is removed.
_MARK_IDLE = """
local marked = {}
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
    marked[#marked + 1] = ARGV[i]
  end
end
return marked
"""

# One marked member's outbox (KEYS[1], its slot): 1 when it must stay indexed as it holds
# events, 2 when it must as Redis refused the write below (full); else 0, after writing the key and
# removing it again, so a writer that WATCHes it (between its ZADD to the index and its
# EXEC) fails its EXEC and retries, scoring its member anew.
_RELEASE_OUTBOX = """
if redis.call('LLEN', KEYS[1]) > 0 then
  return 1
end
local pushed = redis.pcall('RPUSH', KEYS[1], '')
if type(pushed) == 'table' and pushed.err then
  return 2
end
redis.call('DEL', KEYS[1])
return 0
"""

# Remove from the outbox index the members ARGV[2..] still bearing this prune's mark
# ARGV[1] (nobody scored or marked them since); returns how many went. Frees, never
# allocates: a full Redis runs it.
_UNINDEX_MARKED = """
local gone = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[1]) then
    gone = gone + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return gone
"""

_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _escape(key: str) -> str:
    """A record key inside a hash tag: no brace may end the tag early."""
    return key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _unescape(text: str) -> str:
    return text.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _random() -> Any:
    """The ``random`` module, imported at first use (a start that loses no race never does)."""
    import random

    return random


def _errors() -> tuple[type[BaseException], ...]:
    """The client errors ``_call`` translates: ours, and redis-py's when a process (the
    differential tests, an application passing its own client) imported it; never imports it."""
    import sys

    theirs = sys.modules.get("redis.exceptions")
    base = getattr(theirs, "RedisError", None)
    if isinstance(base, type) and issubclass(base, BaseException):
        return (_resp.RedisError, base)
    return (_resp.RedisError,)


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is a client error of that name (ours and redis-py's share names and
    hierarchy: AuthenticationError is a ConnectionError, ReadOnlyError a ResponseError)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


class RedisStateStore:
    """A StateStore on one Redis database. Open with :func:`open_redis_store`."""

    # Safe for several threads at once: the client takes a pooled connection per command or
    # pipeline (WATCH/MULTI/EXEC holds its own), and the store keeps no other state.
    thread_safe = True
    shared = True  # several hosts: breakers count skew by ``opened_by`` (breaker.py)

    def __init__(
        self,
        client: _resp.Redis,
        url: StateURL,
        *,
        namespace: str = "reliactl",
        max_rows: int = 10_000,
        operation_timeout: float = 0.5,
        connect_timeout: float = 1.0,
        clock: Callable[[], float] = time.time,
        secrets: tuple[str, ...] = (),
    ) -> None:
        # Our RESP client (``_resp.Redis``), or redis-py's ``Redis`` in the differential tests:
        # typed as Any here, and every reply is checked as it is read.
        self.client: Any = client
        self.url = url
        self.namespace = namespace
        self.max_rows = max_rows
        self.operation_timeout = operation_timeout
        self.connect_timeout = connect_timeout
        self.clock = clock
        self._secrets = secrets
        self._events_key = f"{namespace}:h:{{events}}"
        self._runs_seq = f"{namespace}:h:{{runs}}:seq"
        self._runs_ids = f"{namespace}:h:{{runs}}:ids"
        self._runs_data = f"{namespace}:h:{{runs}}:data"
        self._runs_origins = f"{namespace}:h:{{runs}}:origins"
        self._events_origins = f"{namespace}:h:{{events}}:origins"
        self._health = f"{namespace}:h:{{health}}"
        self._hevents_key = f"{namespace}:h:{{hevents}}"
        self._add_run = client.register_script(_ADD_RUN)
        self._finish_run = client.register_script(_FINISH_RUN)
        self._delete_if_same = client.register_script(_DELETE_IF_SAME)
        self._ship_run = client.register_script(_SHIP_RUN)
        self._ship_event = client.register_script(_SHIP_EVENT)
        self._ship_events = client.register_script(_SHIP_EVENTS)
        self._outbox_index = f"{namespace}:h:{{events}}:outbox-index"
        self._old_outbox_index = f"{namespace}:h:{{events}}:outboxes"
        self._fold_old_index = client.register_script(_FOLD_OLD_INDEX)
        self._mark_idle = client.register_script(_MARK_IDLE)
        self._release_outbox = client.register_script(_RELEASE_OUTBOX)
        self._unindex_marked = client.register_script(_UNINDEX_MARKED)

    @property
    def location(self) -> str:
        return self.url.shown()

    # ---- errors: one line, no password, the right class

    def _fail(self, exc: BaseException) -> NoReturn:
        where = f"state store {self.location}"
        text = redact_url(_one_line(str(exc)), self._secrets) or type(exc).__name__
        lowered = text.lower()
        if _is(exc, "AuthenticationError") or any(
            word in lowered for word in ("wrongpass", "noauth", "invalid password", "invalid user")
        ):
            raise StateAuthError(
                f"{where}: authentication failed ({text}); check state.password,"
                " RELIACTL_STATE__PASSWORD or state.password_file"
            ) from None
        if _is(exc, "NoPermissionError") or lowered.startswith("noperm"):
            raise StateAuthError(
                f"{where}: the Redis user may not run a command reliactl needs ({text});"
                " grant it, or use a user with the commands, keys and scripting it uses"
            ) from None
        if _is(exc, "TimeoutError"):
            raise StateUnavailableError(
                f"{where}: Redis did not answer within {self.connect_timeout:g}s to connect /"
                f" {self.operation_timeout:g}s to reply (down, hung or partitioned?): {text}"
            ) from None
        if _is(exc, "ConnectionError"):
            raise StateUnavailableError(f"{where}: cannot reach Redis: {text}") from None
        if lowered.startswith("oom") or "maxmemory" in lowered:
            raise StateError(
                f"{where}: Redis is full and refuses writes (maxmemory reached with a"
                f" noeviction policy): {text}"
            ) from None
        if _is(exc, "ReadOnlyError") or lowered.startswith("readonly"):
            raise StateError(f"{where}: Redis is a read-only replica: {text}") from None
        raise StateError(f"{where}: {text}") from None

    def _call(self, op: Callable[[], Any]) -> Any:
        try:
            return op()
        except _errors() as exc:
            self._fail(exc)

    def ping(self) -> float:
        """Seconds of one PING round trip (raises StateError when Redis is unusable)."""

        def op() -> float:
            started = time.perf_counter()
            self.client.ping()
            return time.perf_counter() - started

        result: float = self._call(op)
        return result

    # ---- records

    def _key(self, kind: RecordKind, key: str) -> str:
        return f"{self.namespace}:r:{{{kind}:{_escape(key)}}}"

    def _encode(self, record: Record) -> str:
        return json.dumps({"d": record, "u": self.clock()}, separators=(",", ":"))

    def get(self, kind: RecordKind, key: str) -> Record | None:
        raw = self._call(lambda: self.client.get(self._key(kind, key)))
        return _decode_record(raw)

    def update(self, kind: RecordKind, key: str, fn: Updater) -> Record | None:
        def with_none(record: Record | None) -> tuple[Record | None, Sequence[BreakerEvent]]:
            return fn(record), ()

        new, _pushed = self._update(kind, key, with_none)
        return new

    def update_with_events(
        self,
        kind: RecordKind,
        key: str,
        fn: EventUpdater,
    ) -> Record | None:
        """``update`` whose ``fn`` also returns breaker events: they are pushed to the
        record's outbox in the record's own MULTI (both commit, or neither), then shipped to
        the stream. A failure after the commit (Redis away, kill -9) leaves them in the
        outbox, shipped by the next transition of this record or read of the events; it
        never fails the update, whose change is committed (a caller falling back to another
        store would apply it twice)."""
        new, pushed = self._update(kind, key, fn)
        if pushed is not None:
            entries, whole = pushed
            try:
                self._call(lambda: self._flush_outbox(self._outbox_key(kind, key), entries, whole))
            except StateError as exc:
                import logging  # only when there is something to say

                logging.getLogger("reliactl.state").warning(
                    "state store: breaker events kept in the outbox, shipped later: %s", exc
                )
        return new

    def _outbox_key(self, kind: str, key: str) -> str:
        return f"{self.namespace}:o:{{{kind}:{_escape(key)}}}"

    def _update(
        self,
        kind: RecordKind,
        key: str,
        fn: EventUpdater,
    ) -> tuple[Record | None, tuple[list[bytes], bool] | None]:
        """WATCH/GET/fn/MULTI/EXEC until no other client changed the record meanwhile; the
        events of the last run of ``fn`` go to the outbox in the same MULTI. Returns the new
        record and, when events were pushed, their outbox entries and whether they were all
        the outbox held (nothing older is waiting).

        An attempt with events WATCHes the outbox too, then scores the record in the outbox
        index (both before the MULTI, on the WATCH connection), so the index holds every
        outbox that may hold events: ``prune`` drops a member and then writes the outbox key
        if it is empty, which fails this EXEC when it came after the ZADD; the retry scores
        the member again (``_prune_outbox_index``)."""
        rkey = self._key(kind, key)
        okey = self._outbox_key(kind, key)

        def op() -> tuple[Record | None, tuple[list[bytes], bool] | None]:
            deadline = time.monotonic() + CONTENTION_DEADLINE_S
            attempt = 0
            member = f"{kind}:{key}"
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(rkey)
                        raw = pipe.get(rkey)
                        new, events = fn(_decode_record(raw))
                        if new is None and raw is None and not events:
                            pipe.unwatch()
                            return None, None
                        entries = [_outbox_entry(event) for event in events]
                        if entries:  # every attempt: a superset of the outboxes, never less
                            # on the WATCH connection (immediate until multi()): no second
                            # connection per transition; the WATCH before the ZADD
                            pipe.watch(okey)
                            pipe.zadd(self._outbox_index, {member: self.clock()})
                        pipe.multi()
                        if new is None:
                            pipe.delete(rkey)
                        else:
                            pipe.set(rkey, self._encode(new))
                        if entries:
                            pipe.rpush(okey, *entries)
                        replies = pipe.execute()
                        if not entries:
                            return new, None
                        return new, (entries, int(replies[-1]) == len(entries))
                    except _errors() as exc:
                        if not _is(exc, "WatchError"):
                            raise
                        attempt += 1
                        if time.monotonic() > deadline:
                            raise StateError(
                                f"state store {self.location}: record {kind}/{key} is changed"
                                f" by other clients too often ({attempt} lost races in"
                                f" {CONTENTION_DEADLINE_S:g}s)"
                            ) from None
                        pause = min(0.02, 0.0005 * 2 ** min(attempt, 10))
                        time.sleep(_random().uniform(0, pause))

        result: tuple[Record | None, tuple[list[bytes], bool] | None] = self._call(op)
        return result

    def _flush_outbox(self, okey: str, known: Sequence[bytes] = (), whole: bool = False) -> int:
        """Ship an outbox's events to the stream, oldest first, each once, then remove them
        from the outbox; ``known`` with ``whole``: its oldest entries, already read (no
        LRANGE: the outbox held just these when pushed, or a pipelined LRANGE read them).
        Client errors propagate (the caller's ``_call`` translates them)."""
        entries = list(known) if whole else list(self.client.lrange(okey, 0, PAGE - 1))
        if not entries:
            return 0
        args: list[Any] = [self.max_rows]
        for raw in entries:
            origin, flat = _decode_outbox_entry(raw)
            if origin:
                args += [origin, len(flat), *flat]
        shipped = 0
        if len(args) > 1:
            shipped = int(
                self._ship_events(keys=[self._events_key, self._events_origins], args=args)
            )
        pipe = self.client.pipeline(transaction=False)  # one key: one slot, one round trip
        for raw in entries:
            pipe.lrem(okey, 1, raw)
        pipe.execute()
        return shipped

    def _flush_outboxes_best_effort(self, name: str | None) -> None:
        """``_flush_outboxes`` for a read: a Redis that refuses writes (maxmemory with
        noeviction, a read-only replica, an ACL without write) answers every flush with an
        error reply, and that must not fail the read (``breaker show``, ``/metrics``,
        ``Breaker.history`` are what an operator looks at exactly then): the error is logged
        at debug level and the events stay in their outboxes for a later read. A lost
        connection still propagates (the read would fail on it anyway)."""
        try:
            self._flush_outboxes(name)
        except _errors() as exc:
            if not _is(exc, "ResponseError"):
                raise
            import logging  # only when there is something to say

            logging.getLogger("reliactl.state").debug(
                "state store: pending breaker events not shipped (writes refused): %s", exc
            )

    def _flush_outboxes(self, name: str | None) -> None:
        """Ship what crashed writers left in outboxes (of ``name``, or of every breaker that
        ever pushed to one: their LRANGEs in one pipelined round trip, one key each)."""
        if name is not None:
            self._flush_outbox(self._outbox_key("breaker", name))
            return
        pipe = self.client.pipeline(transaction=False)  # one slot, one round trip
        pipe.zrange(self._outbox_index, 0, -1)
        pipe.smembers(self._old_outbox_index)  # written by earlier versions
        scored, old = pipe.execute()
        keys = sorted(
            {
                self._outbox_key("breaker", key)
                for kind, _, key in (_text(m).partition(":") for m in [*scored, *old])
                if kind == "breaker"
            }
        )
        for start in range(0, len(keys), PAGE):
            chunk = keys[start : start + PAGE]
            pipe = self.client.pipeline(transaction=False)
            for okey in chunk:
                pipe.lrange(okey, 0, PAGE - 1)
            for okey, entries in zip(chunk, pipe.execute(), strict=True):
                if entries:
                    self._flush_outbox(okey, entries, whole=True)

    def items(self, kind: RecordKind) -> dict[str, Record]:
        prefix = f"{self.namespace}:r:{{{kind}:"

        def op() -> dict[str, Record]:
            keys = sorted(
                k.decode() if isinstance(k, bytes) else str(k)
                for k in self.client.scan_iter(match=prefix + "*", count=1000)
            )
            out: dict[str, Record] = {}
            for start in range(0, len(keys), PAGE):
                chunk = keys[start : start + PAGE]
                for full, raw in zip(chunk, self.client.mget(chunk), strict=True):
                    record = _decode_record(raw)
                    if record is not None and full.endswith("}"):
                        out[_unescape(full[len(prefix) : -1])] = record
            return dict(sorted(out.items()))

        result: dict[str, Record] = self._call(op)
        return result

    def delete(self, kind: RecordKind, key: str) -> bool:
        removed = self._call(lambda: self.client.delete(self._key(kind, key)))
        return bool(removed)

    # ---- history

    def add_event(self, event: BreakerEvent) -> None:
        fields = _event_fields(event)
        self._call(
            lambda: self.client.xadd(
                self._events_key, fields, maxlen=self.max_rows, approximate=False
            )
        )

    def events(self, name: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        def op() -> list[BreakerEvent]:
            self._flush_outboxes_best_effort(name)
            out: list[BreakerEvent] = []
            top: str = "+"
            while len(out) < limit:
                count = limit if name is None else PAGE
                entries = self.client.xrevrange(self._events_key, max=top, min="-", count=count)
                for _entry_id, fields in entries:
                    event = _decode_event(fields)
                    if event is not None and (name is None or event.name == name):
                        out.append(event)
                        if len(out) >= limit:
                            break
                if len(entries) < count:
                    break
                last = entries[-1][0]
                top = "(" + (last.decode() if isinstance(last, bytes) else str(last))
            return out

        result: list[BreakerEvent] = self._call(op)
        return result

    def add_run(self, run: RunRecord) -> int:
        payload = _encode_run(run)
        run_id = self._call(
            lambda: self._add_run(
                keys=[self._runs_seq, self._runs_ids, self._runs_data],
                args=[payload, self.max_rows],
            )
        )
        return int(run_id)

    def finish_run(self, run_id: int, run: RunRecord) -> None:
        payload = _encode_run(run)
        finished = self._call(
            lambda: self._finish_run(keys=[self._runs_ids, self._runs_data], args=[run_id, payload])
        )
        if not int(finished):  # its record is gone (trimmed, or lost by a restart): add it
            self.add_run(run)

    def runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        def op() -> list[RunRecord]:
            out: list[RunRecord] = []
            start = 0
            while len(out) < limit:
                count = limit if name is None else PAGE
                ids = self.client.zrevrange(self._runs_ids, start, start + count - 1)
                if not ids:
                    break
                raws = self.client.hmget(self._runs_data, ids)
                for rid, raw in zip(ids, raws, strict=True):
                    run = _decode_run(int(rid), raw)
                    if run is not None and (name is None or run.name == name):
                        out.append(run)
                        if len(out) >= limit:
                            break
                if len(ids) < count:
                    break
                start += count
            return out

        result: list[RunRecord] = self._call(op)
        return result

    # ---- shipping history recorded elsewhere, and copying records (`state sync`, `migrate`)

    def ship_run(self, origin: str, run: RunRecord, remote_id: int | None = None) -> bool:
        """Add (or finish, given ``remote_id``) a run recorded elsewhere, once per ``origin``;
        False when that origin was shipped before."""
        payload = _encode_run(run)
        shipped = self._call(
            lambda: self._ship_run(
                keys=[self._runs_seq, self._runs_ids, self._runs_data, self._runs_origins],
                args=[origin, payload, self.max_rows, int(remote_id or 0)],
            )
        )
        return bool(int(shipped))

    def ship_event(self, origin: str, event: BreakerEvent, extra: dict[str, str]) -> bool:
        """Append a breaker event recorded elsewhere, once per ``origin``."""
        fields = {**_event_fields(event), **extra}
        flat = [item for pair in fields.items() for item in pair]
        shipped = self._call(
            lambda: self._ship_event(
                keys=[self._events_key, self._events_origins],
                args=[origin, self.max_rows, *flat],
            )
        )
        return bool(int(shipped))

    def import_record(self, kind: RecordKind, key: str, record: Record, updated_at: float) -> bool:
        """Store a record only if this store has none under that key (never overwrites the
        fleet's own state); True when it was copied."""
        value = json.dumps({"d": record, "u": updated_at}, separators=(",", ":"))
        copied = self._call(lambda: self.client.set(self._key(kind, key), value, nx=True))
        return bool(copied)

    def counts(self) -> dict[str, int]:
        """Records per kind and history sizes (for `state info`)."""

        def op() -> dict[str, int]:
            out: dict[str, int] = {}
            for kind in RECORD_KINDS:
                prefix = f"{self.namespace}:r:{{{kind}:"
                out[kind] = sum(1 for _ in self.client.scan_iter(match=prefix + "*", count=1000))
            out["events"] = int(self.client.xlen(self._events_key))
            out["runs"] = int(self.client.zcard(self._runs_ids))
            return out

        result: dict[str, int] = self._call(op)
        return result

    def server_info(self) -> dict[str, Any]:
        """Server version, persistence and memory settings (for `state info` and doctor)."""

        def op() -> dict[str, Any]:
            server = self.client.info("server")
            persistence = self.client.info("persistence")
            memory = self.client.info("memory")
            save: str | None
            try:
                reply = self.client.config_get("save")
                save = str(reply.get("save", "")) if isinstance(reply, dict) else None
            except _errors() as exc:
                if not _is(exc, "ResponseError"):
                    raise
                save = None  # CONFIG renamed or forbidden by an ACL
            return {
                "version": str(server.get("redis_version", "?")),
                "mode": str(server.get("redis_mode", "standalone")),
                "save": save,
                "appendonly": bool(persistence.get("aof_enabled", 0)),
                "rdb_last_save": persistence.get("rdb_last_save_time"),
                "maxmemory": int(memory.get("maxmemory", 0) or 0),
                "maxmemory_policy": str(memory.get("maxmemory_policy", "?")),
                "used_memory": int(memory.get("used_memory", 0) or 0),
            }

        result: dict[str, Any] = self._call(op)
        return result

    # ---- health history

    def _raw_key(self, check: str) -> str:
        return f"{self._health}:raw:{_escape(check)}"

    def _agg_key(self, check: str) -> str:
        return f"{self._health}:agg:{_escape(check)}"

    def add_health_points(self, points: Sequence[HealthPoint]) -> None:
        if not points:
            return
        host = hostname()

        def op() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(f"{self._health}:checks", *{p.check for p in points})
            for p in points:
                member = json.dumps(
                    {"t": p.at, "s": p.status, "v": p.value, "h": host}, separators=(",", ":")
                )
                pipe.zadd(self._raw_key(p.check), {member: p.at})
            pipe.execute()

        self._call(op)

    def health_points(self, check: str, since: float) -> list[HealthPoint]:
        raws = self._call(lambda: self.client.zrangebyscore(self._raw_key(check), since, "+inf"))
        out = []
        for raw in raws:
            point = _decode_point(check, raw)
            if point is not None:
                out.append(point)
        return out

    def health_aggregates(self, check: str, since: float) -> list[HealthAggregate]:
        # A bucket may hold more than one member (a late point folded by a later compaction):
        # they are merged here. The widest bucket is a day, so start from since - 1d.
        raws = self._call(
            lambda: self.client.zrangebyscore(self._agg_key(check), since - 86400, "+inf")
        )
        merged: dict[float, HealthAggregate] = {}
        for raw in raws:
            agg = _decode_aggregate(check, raw)
            if agg is None or agg.start + agg.seconds <= since:
                continue
            prev = merged.get(agg.start)
            merged[agg.start] = agg if prev is None else _merge_aggregates(prev, agg)
        return [merged[k] for k in sorted(merged)]

    def health_checks(self) -> list[str]:
        names = self._call(lambda: self.client.smembers(f"{self._health}:checks"))
        return sorted(_text(n) for n in names)

    def add_health_event(self, event: HealthEvent) -> None:
        fields = {
            "check": event.check,
            "at": repr(float(event.at)),
            "from": event.from_status,
            "to": event.to_status,
            "message": event.message,
            "host": event.host or hostname(),
        }
        self._call(
            lambda: self.client.xadd(
                self._hevents_key, fields, maxlen=self.max_rows, approximate=False
            )
        )

    def health_events(
        self, check: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[HealthEvent]:
        def op() -> list[HealthEvent]:
            out: list[HealthEvent] = []
            top = "+"
            while len(out) < limit:
                entries = self.client.xrevrange(self._hevents_key, max=top, min="-", count=PAGE)
                for _entry_id, fields in entries:
                    event = _decode_health_event(fields)
                    if event is None:
                        continue
                    if event.at < since:
                        return out
                    if check is None or event.check == check:
                        out.append(event)
                        if len(out) >= limit:
                            return out
                if len(entries) < PAGE:
                    break
                last = entries[-1][0]
                top = "(" + (last.decode() if isinstance(last, bytes) else str(last))
            return out

        result: list[HealthEvent] = self._call(op)
        return result

    def compact_health(
        self, now: float, raw_retention: float, aggregate_retention: float, bucket: float
    ) -> int:
        from reliactl.state.base import aggregate_points

        cutoff = ((now - raw_retention) // bucket) * bucket
        oldest = now - aggregate_retention
        lock = f"{self._health}:compacting"
        token = f"{hostname()}:{_random().random()}"

        def op() -> int:
            if not self.client.set(lock, token, nx=True, px=30_000):
                return 0  # another process is compacting; the next run catches up
            try:
                folded = 0
                for check in self.health_checks():
                    raw_key, agg_key = self._raw_key(check), self._agg_key(check)
                    raws = self.client.zrangebyscore(raw_key, "-inf", f"({cutoff!r}")
                    points = [p for p in (_decode_point(check, r) for r in raws) if p]
                    pipe = self.client.pipeline(transaction=True)
                    for agg in aggregate_points(points, bucket):
                        pipe.zadd(agg_key, {_encode_aggregate(agg): agg.start})
                    pipe.zremrangebyscore(raw_key, "-inf", f"({cutoff!r}")
                    pipe.zremrangebyscore(agg_key, "-inf", repr(oldest - bucket))
                    pipe.execute()
                    folded += len(raws)
                    if not self.client.exists(raw_key, agg_key):
                        self.client.srem(f"{self._health}:checks", check)
                self._trim_health_events(oldest)
                return folded
            finally:
                self._delete_if_same(keys=[lock], args=[token])

        result: int = self._call(op)
        return result

    def _trim_health_events(self, oldest: float) -> None:
        """Remove the oldest events while they are older than ``oldest`` (they come in order)."""
        while True:
            entries = self.client.xrange(self._hevents_key, min="-", max="+", count=PAGE)
            old = []
            for entry_id, fields in entries:
                event = _decode_health_event(fields)
                if event is not None and event.at >= oldest:
                    break
                old.append(entry_id)
            if old:
                self.client.xdel(self._hevents_key, *old)
            if len(old) < PAGE:
                return

    # ---- maintenance

    def _used_memory(self) -> int:
        info = self.client.info("memory")
        return int(info.get("used_memory", 0)) if isinstance(info, dict) else 0

    def prune(
        self,
        now: float,
        retention: float,
        max_rows: int,
        keep_breaker: Callable[[str, Record], bool] | None = None,
    ) -> PruneReport:
        cutoff = now - retention

        def op() -> PruneReport:
            before = self._used_memory()
            events = self._prune_events(cutoff, max_rows)
            runs = self._prune_runs(cutoff, max_rows)
            records = 0
            for kind in RECORD_KINDS:
                if kind == "breaker" and keep_breaker is None:
                    continue
                prefix = f"{self.namespace}:r:{{{kind}:"
                for key in list(self.client.scan_iter(match=prefix + "*", count=1000)):
                    raw = self.client.get(key)
                    updated = _updated_at(raw)
                    if raw is None or updated is None or updated >= cutoff:
                        continue
                    if kind == "breaker" and keep_breaker is not None:
                        full = key.decode() if isinstance(key, bytes) else str(key)
                        record = _decode_record(raw)
                        name = _unescape(full[len(prefix) : -1])
                        if record is not None and keep_breaker(name, record):
                            continue
                    records += int(self._delete_if_same(keys=[key], args=[raw]))
            self._prune_index_or_warn(now, cutoff)
            return PruneReport(events, runs, records, before, self._used_memory())

        result: PruneReport = self._call(op)
        return result

    def _prune_index_or_warn(self, now: float, cutoff: float) -> None:
        """The outbox index's prune, last and best-effort: a Redis that refuses it (full,
        which is when an operator runs cleanup) or fails midway leaves every member
        indexed, and the prune of the events, runs and records stands; a warning says so."""
        try:
            self._call(lambda: self._prune_outbox_index(now, cutoff))
        except StateError as exc:
            import logging  # only when there is something to say

            logging.getLogger("reliactl.state").warning(
                "state store: the breaker outbox index was not (fully) pruned (the next"
                " cleanup tries again): %s",
                exc,
            )

    def _prune_outbox_index(self, now: float, cutoff: float) -> int:
        """Drop from the outbox index the records whose last push is older than ``cutoff``
        and whose outbox is empty; returns how many left. The index and an outbox are in
        different Cluster slots, so no one script sees both; three single-slot steps, each
        leaving every member indexed whatever fails after it (Redis full, a timeout, a
        dropped connection): (1) the idle members are marked with a score unique to this
        prune (they stay); (2) each one's outbox is checked and, empty, written and removed
        in one script (a writer between its ZADD and its EXEC WATCHes the outbox: its EXEC
        fails, its retry scores the member anew); events there, or a refused write, keep it;
        (3) the members released by (2) and still bearing the mark leave (a writer's ZADD
        or another prune's mark since changed it: they stay). So an outbox that holds events
        is in the index when this returns or fails (what ``events()`` relies on to ship a
        crashed writer's events), whatever the writers' clocks. The set of earlier versions
        is folded in first (scored ``now``: this host's clock; a second cleanup on a host
        whose clock runs ahead of this one by more than the retention could see a member
        folded here as idle while a host of an earlier version, which does not WATCH, is
        between its SADD and its EXEC: a window assumed away, as the retention is 30 days
        by default)."""
        self._fold_old_index(keys=[self._outbox_index, self._old_outbox_index], args=[now])
        idle = list(self.client.zrangebyscore(self._outbox_index, "-inf", repr(cutoff)))
        mark = -1 - int.from_bytes(os.urandom(6), "big")  # < 0, exact as a double
        removed = refused = 0
        for start in range(0, len(idle), PAGE):
            chunk = idle[start : start + PAGE]
            marked = self._mark_idle(keys=[self._outbox_index], args=[cutoff, mark, *chunk])
            members = [_text(m) for m in marked or []]
            if not members:
                continue
            held = [int(h) for h in self._release_outboxes(members)]
            refused += held.count(2)
            released = [m for m, keep in zip(members, held, strict=True) if not keep]
            if released:
                gone = self._unindex_marked(keys=[self._outbox_index], args=[mark, *released])
                removed += int(gone)
        if refused:
            import logging  # only when there is something to say

            logging.getLogger("reliactl.state").warning(
                "state store %s: %d breaker outboxes stay in the outbox index, Redis refused"
                " the write that releases them (full: maxmemory with noeviction?); the next"
                " cleanup tries again",
                self.location,
                refused,
            )
        return removed

    def _release_outboxes(self, members: list[str]) -> list[Any]:
        """``_RELEASE_OUTBOX`` on each member's outbox, pipelined (one key each: Cluster-safe)
        by EVALSHA; after a SCRIPT FLUSH or a restart (NOSCRIPT), once more by EVAL, which
        caches it (the script may run twice on an outbox: harmless)."""
        keys = [self._outbox_key(kind, key) for kind, _, key in (m.partition(":") for m in members)]
        script = self._release_outbox
        try:
            pipe = self.client.pipeline(transaction=False)
            for okey in keys:
                pipe.execute_command("EVALSHA", script.sha, 1, okey)
            return list(pipe.execute())
        except _errors() as exc:
            if not _is(exc, "NoScriptError"):
                raise
        pipe = self.client.pipeline(transaction=False)
        for okey in keys:
            pipe.execute_command("EVAL", script.script, 1, okey)
        return list(pipe.execute())

    def _prune_events(self, cutoff: float, max_rows: int) -> int:
        old: list[Any] = []
        low = "-"
        while True:
            entries = self.client.xrange(self._events_key, min=low, max="+", count=PAGE)
            for entry_id, fields in entries:
                event = _decode_event(fields)
                if event is None or event.at < cutoff:
                    old.append(entry_id)
            if len(entries) < PAGE:
                break
            last = entries[-1][0]
            low = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        removed = 0
        for start in range(0, len(old), PAGE):
            removed += int(self.client.xdel(self._events_key, *old[start : start + PAGE]))
        removed += int(self.client.xtrim(self._events_key, maxlen=max_rows, approximate=False))
        return removed

    def _prune_runs(self, cutoff: float, max_rows: int) -> int:
        doomed: list[Any] = []
        for rid, raw in self.client.hscan_iter(self._runs_data, count=1000):
            run = _decode_run(int(rid), raw)
            if run is None or (run.ended_at is not None and run.ended_at < cutoff):
                doomed.append(rid)
        extra = self.client.zrange(self._runs_ids, 0, -max_rows - 1)
        doomed_set = {int(r) for r in doomed} | {int(r) for r in extra}
        ids = sorted(doomed_set)
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self._runs_data, *chunk)
            pipe.zrem(self._runs_ids, *chunk)
            pipe.execute()
        oldest = self.client.zrange(self._runs_ids, 0, 0)
        if oldest:  # shipped origins of runs no longer kept are forgotten with them
            self.client.zremrangebyscore(self._runs_origins, "-inf", f"({int(oldest[0])}")
        else:
            self.client.delete(self._runs_origins)
        return len(ids)

    def check(self) -> list[str]:
        """Problems that make Redis unfit to hold reliactl's state (empty when fine)."""

        def op() -> list[str]:
            problems: list[str] = []
            info = self.client.info("memory")
            policy = str(info.get("maxmemory_policy", "noeviction")) if info else "noeviction"
            if policy not in ("noeviction",) and not policy.startswith("volatile"):
                problems.append(
                    f"maxmemory-policy is {policy}: Redis may evict breaker state and"
                    " history when full; use noeviction"
                )
            return problems

        result: list[str] = self._call(op)
        return result

    def close(self) -> None:
        try:
            self.client.close()
        except _errors():
            pass

    def __enter__(self) -> RedisStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- opening


def open_redis_store(
    url: StateURL,
    *,
    namespace: str = "reliactl",
    max_rows: int = 10_000,
    password: str = "",
    password_file: str = "",
    tls_ca_file: str = "",
    connect_timeout: float = 1.0,
    operation_timeout: float = 0.5,
    clock: Callable[[], float] = time.time,
) -> RedisStateStore:
    """Connect (one PING, within the timeouts) and return the store; StateError otherwise."""
    secret = url.password or password or _read_password(password_file)
    settings: dict[str, Any] = {
        "db": url.db,
        "username": url.username,
        "password": secret or None,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": operation_timeout,
        "client_name": f"reliactl@{hostname()}"[:100].replace(" ", "_"),
    }
    if url.scheme == "unix":
        settings["unix_socket_path"] = url.path
    else:
        settings["host"] = url.host
        settings["port"] = url.port
        if url.tls:
            settings["ssl"] = True
            if tls_ca_file:
                _check_ca_file(tls_ca_file)
                settings["ssl_ca_certs"] = tls_ca_file
    client = make_client(**settings)
    store = RedisStateStore(
        client,
        url,
        namespace=namespace,
        max_rows=max_rows,
        operation_timeout=operation_timeout,
        connect_timeout=connect_timeout,
        clock=clock,
        secrets=(secret,) if secret else (),
    )
    try:
        store.ping()
    except StateError:
        store.close()
        raise
    return store


def make_client(**settings: Any) -> Any:
    """The Redis client for these settings (redis-py's keyword names). The differential
    tests replace it with one that builds redis-py's ``Redis`` from the same settings."""
    return _resp.Redis(**settings)


def _setting_file(
    path: str, key: str, limit: int, trust: Callable[[str, Any], str | None]
) -> bytes:
    """The first ``limit`` bytes of a file the settings name (``key``): it must be there,
    readable, a regular file (a FIFO or device is refused, never waited on: it is opened
    with O_NONBLOCK, then fstat'ed) and pass ``trust`` (the reason it fails, or None), else
    the configuration is wrong: a StateConfigError naming the setting and the path (exit 78
    where the store is required; ``run`` and ``health`` warn and go on without it), never
    "cannot reach Redis". Symbolic links are followed (a Kubernetes secret is a ``..data``
    link); ``trust`` judges every directory on the path, through the links."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise StateConfigError(f"cannot read {key} {path}: {_oserror_text(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateConfigError(f"{key} {path} is not a regular file")
        reason = trust(path, st)
        if reason is not None:
            raise StateConfigError(f"{key} {path}: {reason}")
        chunks = []
        left = limit
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise StateConfigError(f"cannot read {key} {path}: {_oserror_text(exc)}") from None
    finally:
        os.close(fd)


def _secret_untrusted(path: str, st: Any) -> str | None:
    """Why a password file must be refused, or None. It only supplies a secret: whoever owns
    the file could read or replace it anyway, which denies service but takes nothing over,
    so any owner of the file is accepted (a compose ``file:`` secret owned by uid 1000, a
    vault-agent file owned by its user with mode 0640, a root-owned 0660 file its group
    writes). Not so for a symbolic link on its path: whoever owns the link chooses which file
    is read, and a link to ``/etc/shadow`` would have root send its first line to Redis. So
    refused: the file writable by others (o+w), a directory anywhere on its path (resolved
    through links) writable by others without the sticky bit, a link on it that is not root's
    or this user's, and a path that no longer leads to the opened file
    (``trust.path_open_to_everyone``)."""
    import stat

    from reliactl.trust import owner_name, path_open_to_everyone

    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return (
            f"the file is writable by others (mode {mode:04o}, owner {owner_name(st.st_uid)});"
            " refused (chmod o-w it)"
        )
    reason = path_open_to_everyone(path, st)
    if reason is not None:
        return f"{reason}; refused (chmod o-w or +t a directory, or use root's or your own link)"
    return None


def _ca_untrusted(path: str, st: Any) -> str | None:
    """Why a CA file must be refused, or None: it decides whom this host trusts to be Redis,
    so another user who can replace it can read and forge everything the store sends and
    receives (a takeover, not a denial). So it is trusted as ssh trusts its files
    (``reliactl.trust.file_untrusted``): owned by this user or root, not writable by others,
    nor any directory on its path (resolved through links)."""
    from reliactl.trust import file_untrusted

    reason = file_untrusted(path, st)
    if reason is None:
        return None
    return (
        f"{reason}; refused: the CA file decides whom this host trusts (chown it to this user"
        " or root and chmod go-w it and its directory)"
    )


def _oserror_text(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _read_password(path: str) -> str:
    if not path:
        return ""
    data = _setting_file(path, "state.password_file", 4096, _secret_untrusted)
    try:
        first = data.split(b"\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise StateConfigError(f"state.password_file {path} is not UTF-8 text") from None
    return first.rstrip("\r\n")


def _check_ca_file(path: str) -> None:
    """The CA file is a trusted, readable file that holds at least one certificate (the
    context built here is the one the connections use: ``_resp._tls_context`` keeps it)."""
    _setting_file(path, "state.tls_ca_file", 0, _ca_untrusted)
    try:
        _resp._tls_context(path)
    except _resp.ConnectionError as exc:
        raise StateConfigError(f"state.tls_ca_file {path}: {exc}") from None


# --------------------------------------------------------------------------- codecs


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decode_record(raw: Any) -> Record | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        import logging  # only when there is something to say (a start never loads it)

        logging.getLogger("reliactl.state").warning("state store: an unreadable record was ignored")
        return None
    data = value.get("d") if isinstance(value, dict) else None
    return data if isinstance(data, dict) else None


def _updated_at(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        return 0.0  # unreadable: as old as can be
    updated = value.get("u") if isinstance(value, dict) else None
    return float(updated) if isinstance(updated, (int, float)) else 0.0


def _decode_event(fields: Any) -> BreakerEvent | None:
    if not isinstance(fields, dict):
        return None
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        return BreakerEvent(
            f["name"], f["from"], f["to"], f["reason"], float(f["at"]), host=f.get("host")
        )
    except (KeyError, ValueError):
        return None


def _event_fields(event: BreakerEvent) -> dict[str, str]:
    return {
        "name": event.name,
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "at": repr(float(event.at)),
        "host": event.host or hostname(),
    }


def _outbox_entry(event: BreakerEvent) -> bytes:
    """One outbox entry: the event's fields and its origin (``fleet.event_origin``: host,
    breaker, transition, exact time), what makes shipping it idempotent, also against the
    copy a fleet store queues locally when an EXEC's reply is lost."""
    from reliactl.state.fleet import event_origin

    origin = event_origin(event)
    return json.dumps({"o": origin, "f": _event_fields(event)}, separators=(",", ":")).encode()


def _decode_outbox_entry(raw: Any) -> tuple[str, list[str]]:
    """(origin, flat fields) of an outbox entry; an empty origin when unreadable (it is
    dropped)."""
    try:
        value = json.loads(raw)
        fields = value["f"]
        flat = [str(item) for pair in fields.items() for item in pair]
        return str(value["o"]), flat
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", []


def _encode_run(run: RunRecord) -> str:
    data = {"host": hostname(), **run.data}
    return json.dumps(
        {
            "name": run.name,
            "command": run.command,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "attempts": run.attempts,
            "exit_code": run.exit_code,
            "outcome": run.outcome,
            "data": data,
        },
        separators=(",", ":"),
    )


def _decode_run(run_id: int, raw: Any) -> RunRecord | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        data = value.get("data")
        return RunRecord(
            id=run_id,
            name=str(value["name"]),
            command=str(value["command"]),
            started_at=float(value["started_at"]),
            ended_at=None if value.get("ended_at") is None else float(value["ended_at"]),
            attempts=int(value.get("attempts") or 0),
            exit_code=None if value.get("exit_code") is None else int(value["exit_code"]),
            outcome=str(value.get("outcome") or "running"),
            data=data if isinstance(data, dict) else {},
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _decode_point(check: str, raw: Any) -> HealthPoint | None:
    try:
        value = json.loads(raw)
        v = value.get("v")
        return HealthPoint(
            check, float(value["t"]), str(value["s"]), None if v is None else float(v)
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _encode_aggregate(agg: HealthAggregate) -> str:
    return json.dumps(
        [agg.start, agg.seconds, agg.count, agg.min, agg.max, agg.mean, agg.worst],
        separators=(",", ":"),
    )


def _decode_aggregate(check: str, raw: Any) -> HealthAggregate | None:
    try:
        start, seconds, count, low, high, mean, worst = json.loads(raw)
        return HealthAggregate(
            check, float(start), float(seconds), int(count), low, high, mean, str(worst)
        )
    except (ValueError, TypeError):
        return None


def _merge_aggregates(a: HealthAggregate, b: HealthAggregate) -> HealthAggregate:
    from reliactl.state.base import worst_status

    lows = [x for x in (a.min, b.min) if x is not None]
    highs = [x for x in (a.max, b.max) if x is not None]
    means = [(m, c) for m, c in ((a.mean, a.count), (b.mean, b.count)) if m is not None]
    total = sum(c for _m, c in means)
    return HealthAggregate(
        a.check,
        a.start,
        a.seconds,
        a.count + b.count,
        min(lows) if lows else None,
        max(highs) if highs else None,
        round(sum(m * c for m, c in means) / total, 6) if total else None,
        worst_status((a.worst, b.worst)),
    )


def _decode_health_event(fields: Any) -> HealthEvent | None:
    if not isinstance(fields, dict):
        return None
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        return HealthEvent(
            f["check"], float(f["at"]), f["from"], f["to"], f.get("message", ""), f.get("host")
        )
    except (KeyError, ValueError):
        return None
