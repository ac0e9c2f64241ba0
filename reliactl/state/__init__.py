"""Persisted state shared by processes: see ``base.StateStore``.

SQLite is the embedded default; Redis (``state.url`` = redis://, rediss://, unix://) is the
shared backend of a fleet. ``open_state`` is the only place that knows which one is in use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from reliactl.state.base import (
    BreakerEvent,
    PruneReport,
    Record,
    RecordKind,
    RunRecord,
    StateStore,
)

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.state.leases import LeaseService
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
    rediss:// and unix:// are Redis (redis-py is imported only then). A Redis URL without
    redis-py installed is a ConfigError naming the pip command.
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
            return _open_redis(config, parsed)
        path = os.path.expanduser(parsed.path)
    from reliactl.state.sqlite import open_store

    return open_store(
        path,
        max_rows=state.max_history,
        warn=warn or logging.getLogger("reliactl.state").warning,
    )


def open_leases(config: Config | None = None) -> LeaseService:
    """The fleet's leases (the lock protocol beside StateStore) in the configured shared store.

    A ConfigError when ``state.url`` is not a shared backend (fleet locks need Redis), or names
    Redis without redis-py installed; StateError (StateUnavailableError when it is down or does
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

    return RedisLeaseService(store)  # type: ignore[arg-type]


def open_sqlite_store(
    path: str | os.PathLike[str], *, max_rows: int, warn: Callable[[str], None]
) -> SQLiteStateStore:
    """The SQLite store at ``path`` (what ``doctor`` inspects: integrity, schema version).

    Code outside ``state/`` names no backend module; it asks here."""
    from reliactl.state.sqlite import open_store

    return open_store(path, max_rows=max_rows, warn=warn)


def _parsed(url: str, path: str, parse: Callable[[str, str], StateURL]) -> StateURL:
    from reliactl.errors import ConfigError, ConfigProblem
    from reliactl.state.url import StateURLError

    try:
        return parse(url, path)
    except StateURLError as exc:
        raise ConfigError([ConfigProblem("configuration", None, "state.url", str(exc))]) from None


def _open_redis(config: Config, url: StateURL) -> StateStore:
    from reliactl.errors import ConfigError, ConfigProblem
    from reliactl.state.url import INSTALL_HINT

    try:
        from reliactl.state.redis import open_redis_store
    except ImportError:
        message = f"a Redis URL needs the redis extra: {INSTALL_HINT}"
        raise ConfigError([ConfigProblem("configuration", None, "state.url", message)]) from None
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
