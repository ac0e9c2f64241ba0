"""Persisted state shared by processes: see ``base.StateStore``.

SQLite is the embedded default; Redis (``state.url`` = redis://, rediss://, unix://) is the
shared backend of a fleet. ``open_state`` is the only place that knows which one is in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from reliactl.state.base import (
    BreakerEvent,
    PruneReport,
    Record,
    RecordKind,
    RunRecord,
    StateStore,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.state.leases import LeaseService
    from reliactl.state.redis import RedisStateStore
    from reliactl.state.sqlite import SQLiteStateStore
    from reliactl.state.url import StateURL

__all__ = [
    "BreakerEvent",
    "PruneReport",
    "Record",
    "RecordKind",
    "RunRecord",
    "StateStore",
    "open_leases",
    "open_sqlite_store",
    "open_state",
]


def open_state(
    config: Config | None = None, *, warn: Callable[[str], None] | None = None
) -> StateStore:
    """Open the store configured by ``state`` (defaults to the process-wide configuration).

    ``state.url`` picks the backend: empty, a path or sqlite:///path is SQLite; redis://,
    rediss:// and unix:// are Redis (``state/redis.py`` and its RESP client are imported only
    then; nothing beyond the standard library is needed).
    """
    if config is None:
        from reliactl._configsource import process_config

        config = process_config()
    state = config.state
    path = state.path
    if state.url:
        from reliactl.state.url import parse_state_url

        parsed = _parsed(state.url, state.path, parse_state_url)
        if parsed.backend == "redis":
            return _open_shared(config, parsed, warn or _log_warning)
        path = os.path.expanduser(parsed.path)
    from reliactl.state.sqlite import open_store

    return open_store(path, max_rows=state.max_history, warn=warn or _log_warning)


def _log_warning(message: str) -> None:
    import logging  # only when there is something to say: `run` starts without it

    logging.getLogger("reliactl.state").warning("%s", message)


def local_store_opener(
    config: Config, warn: Callable[[str], None] | None = None
) -> Callable[[], SQLiteStateStore]:
    """Opens this host's own SQLite store (``state.path``): the fallback of a Redis URL, the
    source of ``state migrate`` and the outbox ``state sync`` ships."""
    path = os.path.expanduser(config.state.path)
    max_rows = config.state.max_history

    def opener() -> SQLiteStateStore:
        from reliactl.state.sqlite import open_store

        return open_store(path, max_rows=max_rows, warn=warn or _log_warning)

    return opener


def _open_shared(config: Config, url: StateURL, warn: Callable[[str], None]) -> StateStore:
    """The Redis store, wrapped by the rule of ``state.on_unavailable`` (see state/fleet.py);
    history queued while Redis was away is shipped first (a bounded part of it)."""
    from reliactl.errors import StateUnavailableError

    mode = config.state.on_unavailable
    open_local = local_store_opener(config, warn)
    try:
        remote = _open_redis(config, url)
    except StateUnavailableError as exc:
        if mode == "error":
            raise
        from reliactl.state.fleet import FleetStore

        return FleetStore(None, open_local, mode=mode, location=url.shown(), warn=warn, reason=exc)
    if os.path.exists(os.path.expanduser(config.state.path) + ".queued"):
        _ship_queued(remote, open_local, warn)
    if mode == "error":
        return remote
    from reliactl.state.fleet import FleetStore

    return FleetStore(remote, open_local, mode=mode, location=url.shown(), warn=warn)


def _ship_queued(
    remote: RedisStateStore,
    open_local: Callable[[], SQLiteStateStore],
    warn: Callable[[str], None],
) -> None:
    from reliactl.errors import StateError
    from reliactl.state.fleet import SHIP_AT_OPEN, sync

    try:
        with open_local() as local:
            sync(remote, local, limit=SHIP_AT_OPEN)
    except StateError as exc:  # never fails the command: `reliactl state sync` says more
        warn(f"queued history not shipped yet: {exc}")


def open_leases(config: Config | None = None) -> LeaseService:
    """The fleet's leases (the lock protocol beside StateStore) in the configured shared store.

    A ConfigError when ``state.url`` is not a shared backend (fleet locks need Redis);
    StateError (StateUnavailableError when it is down or does
    not answer within the timeouts) when it cannot be reached.
    """
    if config is None:
        from reliactl._configsource import process_config

        config = process_config()
    from reliactl.errors import ConfigError, ConfigProblem

    parsed = None
    if config.state.url:
        from reliactl.state.url import parse_state_url

        parsed = _parsed(config.state.url, config.state.path, parse_state_url)
    if parsed is None or parsed.backend != "redis":
        message = (
            "a fleet lock (--lock-scope fleet, run.lock_scope or a job's lock_scope) needs a"
            " store shared by the hosts: set state.url to a redis://, rediss:// or unix:// URL"
        )
        raise ConfigError([ConfigProblem("configuration", None, "state.url", message)])
    store = _open_redis(config, parsed)
    from reliactl.state.redislease import RedisLeaseService

    return RedisLeaseService(store)


def open_sqlite_store(
    path: str | os.PathLike[str], *, max_rows: int, warn: Callable[[str], None]
) -> SQLiteStateStore:
    """The SQLite store at ``path`` (what ``doctor`` inspects: integrity, schema version).

    Code outside ``state/`` names no backend module; it asks here."""
    from reliactl.state.sqlite import open_store

    return open_store(path, max_rows=max_rows, warn=warn)


def _parsed(
    url: str,
    path: str,
    parse: Callable[[str, str], StateURL],
    source: tuple[str, str] = ("configuration", "state.url"),
) -> StateURL:
    from reliactl.errors import ConfigError, ConfigProblem
    from reliactl.state.url import StateURLError

    try:
        return parse(url, path)
    except StateURLError as exc:
        raise ConfigError([ConfigProblem(source[0], None, source[1], str(exc))]) from None


def _open_redis(config: Config, url: StateURL) -> RedisStateStore:
    from reliactl.state.redis import open_redis_store

    s = config.state
    return open_redis_store(
        url,
        namespace=s.namespace,
        max_rows=s.max_history,
        password=s.password,
        password_file=os.path.expanduser(s.password_file) if s.password_file else "",
        tls_ca_file=os.path.expanduser(s.tls_ca_file) if s.tls_ca_file else "",
        connect_timeout=s.connect_timeout,
        operation_timeout=s.operation_timeout,
    )
