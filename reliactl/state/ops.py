"""What the operator's `reliactl state` commands do: info, migrate to Redis, sync the outbox.

Each opens what it needs itself (never the fallback of ``state.on_unavailable``: an operator
asking about Redis wants Redis's answer, or its error).
"""

from __future__ import annotations

import os
import time

from reliactl.state.base import RECORD_KINDS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any

    from reliactl.config import Config
    from reliactl.state.fleet import SyncReport
    from reliactl.state.redis import RedisStateStore
    from reliactl.state.sqlite import SQLiteStateStore
    from reliactl.state.url import StateURL
else:  # dataclasses without the dataclasses module (~15 ms of `state info`, issue 21)
    from reliactl._records import dataclass, field

    Any = object  # the records' string annotations name it (see state/base.py)


@dataclass(frozen=True)
class StateInfo:
    """`reliactl state info`: where the state is and how it is doing."""

    backend: str  # sqlite | redis
    location: str  # a path, or the URL without its password
    latency_ms: float  # one round trip (PING; a SELECT on SQLite)
    counts: dict[str, int]  # records per kind, events, runs (and queued, on SQLite)
    on_unavailable: str | None = None  # Redis only
    namespace: str | None = None
    server: dict[str, Any] = field(default_factory=dict)  # Redis: version, persistence, memory
    local: str | None = None  # Redis: this host's fallback store
    queued: int = 0  # Redis: history waiting in the local outbox

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "location": self.location,
            "latency_ms": round(self.latency_ms, 3),
            "counts": self.counts,
            "on_unavailable": self.on_unavailable,
            "namespace": self.namespace,
            "server": self.server,
            "local": self.local,
            "queued": self.queued,
        }


@dataclass(frozen=True)
class MigrateReport:
    """What `state migrate` copied (and what the target already had)."""

    source: str
    target: str
    records: int
    records_present: int
    runs: int
    events: int
    history_present: int


def _parsed_url(config: Config, url: str | None = None) -> StateURL:
    from reliactl.state import _parsed
    from reliactl.state.url import parse_state_url

    if url is None:
        return _parsed(config.state.url, config.state.path, parse_state_url)
    return _parsed(url, config.state.path, parse_state_url, ("flags", "--to"))


def _remote(config: Config, url: StateURL) -> RedisStateStore:
    from reliactl.state import _open_redis

    return _open_redis(config, url)


def _no_url(config: Config) -> bool:
    """``state.url`` is empty: SQLite at ``state.path``, as ``parse_state_url`` says, without
    importing it (urllib.parse and ipaddress, ~3-4 ms of `state info`/`sync`, issue 21)."""
    return not config.state.url.strip()


def _local_path(config: Config) -> str:
    """This host's SQLite store: state.url when it is one, else state.path."""
    if _no_url(config):
        return os.path.expanduser(config.state.path)
    parsed = _parsed_url(config)
    path = parsed.path if parsed.backend == "sqlite" and parsed.path else config.state.path
    return os.path.expanduser(path)


def _open_sqlite(path: str, config: Config) -> SQLiteStateStore:
    from reliactl.state import open_sqlite_store

    return open_sqlite_store(path, max_rows=config.state.max_history, warn=lambda message: None)


def state_info(config: Config) -> StateInfo:
    """Backend, location, latency, record counts; for Redis also its version, persistence and
    this host's queue. Raises StateUnavailableError when Redis does not answer."""
    from reliactl.state import local_store_opener

    parsed = None if _no_url(config) else _parsed_url(config)
    if parsed is None or parsed.backend == "sqlite":
        with _open_sqlite(_local_path(config), config) as store:
            started = time.perf_counter()
            store.conn.execute("SELECT 1").fetchone()
            latency = time.perf_counter() - started
            return StateInfo("sqlite", store.location, latency * 1000, store.counts())
    with _remote(config, parsed) as remote:
        latency = remote.ping()
        counts = remote.counts()
        server = remote.server_info()
    local = os.path.expanduser(config.state.path)
    queued = 0
    if os.path.exists(local + ".queued"):
        with local_store_opener(config)() as store:
            queued = store.queued_count()
    return StateInfo(
        "redis",
        parsed.shown(),
        latency * 1000,
        counts,
        on_unavailable=config.state.on_unavailable,
        namespace=config.state.namespace,
        server=server,
        local=local,
        queued=queued,
    )


def persistence_off(server: dict[str, Any]) -> bool:
    """No RDB snapshots and no append-only file: a restart loses every record."""
    return not server.get("appendonly") and server.get("save") == ""


def migrate(config: Config, to: str) -> MigrateReport:
    """Copy this host's SQLite store (records, runs, breaker events) into the Redis at ``to``.

    Idempotent: a record the target already has is kept (the fleet's state wins), and each
    run and event is copied once (its origin is remembered, as for `state sync`), so running
    it again copies nothing new. Raises ConfigError for a URL that is not Redis.
    """
    from reliactl.errors import ConfigError, ConfigProblem
    from reliactl.state.fleet import event_origin, origin_of

    target = _parsed_url(config, to)
    if target.backend != "redis":
        raise ConfigError(
            [
                ConfigProblem(
                    "flags",
                    None,
                    "--to",
                    f"expected a redis://, rediss:// or unix:// URL, got {target.shown()!r}",
                )
            ]
        )
    source_path = _local_path(config)
    if not os.path.exists(source_path):
        from reliactl.errors import StateError

        raise StateError(f"nothing to migrate: no state store at {source_path}")
    records = present = runs = events = history_present = 0
    with _remote(config, target) as remote, _open_sqlite(source_path, config) as local:
        path = str(local.path)
        for kind in RECORD_KINDS:
            for key, record, updated in local.records_with_times(kind):
                if remote.import_record(kind, key, record, updated):
                    records += 1
                else:
                    present += 1
        for run in local.all_runs():
            assert run.id is not None
            if remote.ship_run(origin_of("run", path, run.id, run.started_at), run):
                runs += 1
            else:
                history_present += 1
        for _event_id, event in local.all_events():
            if remote.ship_event(event_origin(event), event, {}):
                events += 1
            else:
                history_present += 1
        return MigrateReport(path, target.shown(), records, present, runs, events, history_present)


def sync_queued(config: Config) -> SyncReport | None:
    """Ship everything this host queued while Redis was away; None when the store is SQLite.
    Raises StateUnavailableError when Redis does not answer (the queue is kept)."""
    from reliactl.state import local_store_opener
    from reliactl.state.fleet import SyncReport, sync

    if _no_url(config):
        return None
    parsed = _parsed_url(config)
    if parsed.backend == "sqlite":
        return None
    with _remote(config, parsed) as remote:
        if not os.path.exists(os.path.expanduser(config.state.path)):
            return SyncReport(0, 0, 0, 0)
        with local_store_opener(config)() as local:
            return sync(remote, local)
