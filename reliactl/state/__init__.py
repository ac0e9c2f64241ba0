"""Persisted state shared by processes: see ``base.StateStore``; SQLite is the embedded backend."""

from __future__ import annotations

import logging
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

__all__ = [
    "BreakerEvent",
    "PruneReport",
    "Record",
    "RecordKind",
    "RunRecord",
    "StateStore",
    "open_state",
]


def open_state(
    config: Config | None = None, *, warn: Callable[[str], None] | None = None
) -> StateStore:
    """Open the store configured by ``state`` (defaults to get_reliability_config())."""
    from reliactl.state.sqlite import open_store

    if config is None:
        from reliactl.config import get_reliability_config

        config = get_reliability_config()
    return open_store(
        config.state.path,
        max_rows=config.state.max_history,
        warn=warn or logging.getLogger("reliactl.state").warning,
    )
