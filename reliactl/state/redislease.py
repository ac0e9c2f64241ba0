"""Fleet leases on Redis (the lock protocol of ``state/leases.py``).

Keys (``NS`` = ``state.namespace``; one hash tag per lock, so a lock's keys live in one
Redis Cluster slot and its scripts may touch both)::

    NS:l:{lock:NAME}          the lease: the holder's JSON line (with a random token), PX ttl
    NS:l:{lock:NAME}:fence    the fencing counter (INCR), never expires

Every operation is one Lua script (atomic on the server, one round trip):

- acquire: ``SET key owner NX PX ms``; when it took the lease, the fencing counter is raised
  to the server's clock in milliseconds if it is absent or below it, then INCR'd: a token is
  ``max(previous + 1, now_ms + 1)``, so a restart that lost the counter or brought back an
  older one (an RDB or AOF from before later tokens) still hands out tokens above every one
  handed out before, as long as the server's clock did not go back and tokens were not drawn
  faster than one a millisecond. When busy it returns the holder's value and PTTL instead
  (also when the key holds this very owner value: see below);
- renew: ``PEXPIRE`` only while ``GET key == owner`` (compare-and-expire);
- release: ``DEL`` only while ``GET key == owner`` (compare-and-delete). A WATCH/MULTI/EXEC
  transaction would need two round trips and a retry loop for the same effect.

An acquire that fails for want of an answer (``StateUnavailableError``: the reply timed out
or the connection broke) may have taken the lease all the same; it then sends the release
script once for its own owner value (best effort, bounded by one call), so the lease is not
left held by nobody for its whole length (other hosts told "busy" by a dead process, a
``--lock-wait`` retry waiting for its own leftover). That release may itself reach Redis
late, after a later attempt took the lease; so every attempt uses its own owner value
(``locks.acquire_fleet``: a new random token per attempt), and a late release can only ever
delete the lease of the attempt that sent it, which nobody holds. For the same reason an
acquire never takes a key that already holds its owner value: no caller sends one owner
twice, and accepting it is what would let a late release of an earlier attempt delete a
live lease.

Renew and release send the script's text (EVAL, ~100 bytes), never EVALSHA: after a SCRIPT
FLUSH or a restart EVALSHA fails with NOSCRIPT and needs a second round trip (EVAL), which
the renewal rule (``run.lock_lease`` / 3 > ``state.connect_timeout`` +
``state.operation_timeout``, jobs.py; ``call_bound`` in locks.FleetLock) does not allow
for. So every renewal is exactly one round trip, as the rule counts. Acquire keeps EVALSHA
(a slow acquire only shortens the lease it measured from its own start).
"""

from __future__ import annotations

from reliactl.errors import StateError, StateUnavailableError
from reliactl.state.leases import LeaseBusy
from reliactl.state.redis import RedisStateStore

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local fence = redis.call('GET', KEYS[2])
  if not fence or (tonumber(fence) and tonumber(fence) < ms) then
    redis.call('SET', KEYS[2], string.format('%.0f', ms))
  end
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisLease:
    """A lease held on Redis (see the module docstring)."""

    def __init__(self, service: RedisLeaseService, name: str, owner: str, token: int) -> None:
        self._service = service
        self._name = name
        self._owner = owner
        self._token = token

    @property
    def name(self) -> str:
        return self._name

    @property
    def fencing_token(self) -> int:
        return self._token

    def renew(self, seconds: float) -> bool:
        s = self._service
        key = s.key(self._name)
        done = s.store._call(lambda: s.store.client.eval(_RENEW, 1, key, self._owner, _ms(seconds)))
        return bool(done)

    def release(self) -> bool:
        s = self._service
        key = s.key(self._name)
        done = s.store._call(lambda: s.store.client.eval(_RELEASE, 1, key, self._owner))
        return bool(done)


class RedisLeaseService:
    """Leases in the Redis database of a RedisStateStore (its client, timeouts and errors)."""

    def __init__(self, store: RedisStateStore) -> None:
        self.store = store
        client = store.client
        self._acquire = client.register_script(_ACQUIRE)

    @property
    def location(self) -> str:
        return self.store.location

    @property
    def call_bound(self) -> float:
        return float(self.store.connect_timeout + self.store.operation_timeout)

    def key(self, name: str) -> str:
        from reliactl.state.redis import _escape

        return f"{self.store.namespace}:l:{{lock:{_escape(name)}}}"

    def acquire(self, name: str, owner: str, seconds: float) -> RedisLease | LeaseBusy:
        key = self.key(name)
        try:
            reply = self.store._call(
                lambda: self._acquire(keys=[key, key + ":fence"], args=[owner, _ms(seconds)])
            )
        except StateUnavailableError:
            # The script may have run with its reply lost or late: give back what it may have
            # taken (compare-and-delete, one call), or the lease would stay held by nobody.
            try:
                self.store._call(lambda: self.store.client.eval(_RELEASE, 1, key, owner))
            except StateError:
                pass
            raise
        if int(reply[0]) == 1:
            return RedisLease(self, name, owner, int(reply[1]))
        pttl = int(reply[2]) if len(reply) > 2 else -2
        return LeaseBusy(_text(reply[1]), pttl / 1000.0 if pttl >= 0 else None)

    def close(self) -> None:
        self.store.close()
