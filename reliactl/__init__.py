"""reliactl: keep scripts, cron jobs and services alive.

The public library API. Names are imported lazily on first use, so ``import reliactl`` (and
every CLI start) costs nothing for the parts a program does not touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reliactl._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CircuitOpenError": "reliactl.errors",
    "CleanupReport": "reliactl.cleanup",
    "CleanupTarget": "reliactl.cleanup",
    "CommandError": "reliactl.errors",
    "Config": "reliactl.config",
    "ConfigError": "reliactl.errors",
    "ConfigProblem": "reliactl.errors",
    "DurationError": "reliactl.errors",
    "LockBusyError": "reliactl.errors",
    "LockError": "reliactl.errors",
    "LockSweepReport": "reliactl.cleanup",
    "RateLimitExceeded": "reliactl.errors",
    "ReliactlError": "reliactl.errors",
    "ResourceCleanupReport": "reliactl.resources",
    "ResourceStats": "reliactl.resources",
    "RetryError": "reliactl.errors",
    "RootReport": "reliactl.cleanup",
    "StateError": "reliactl.errors",
    "UnsafeRootError": "reliactl.errors",
    "clean": "reliactl.cleanup",
    "cleanup_resources": "reliactl.resources",
    "cleanup_resources_sync": "reliactl.resources",
    "format_duration": "reliactl.durations",
    "format_size": "reliactl.durations",
    "get_http_client": "reliactl.resources",
    "get_http_session": "reliactl.resources",
    "get_reliability_config": "reliactl.config",
    "get_resource_stats": "reliactl.resources",
    "open_state": "reliactl.state",
    "parse_duration": "reliactl.durations",
    "parse_size": "reliactl.durations",
    "sweep_stale_locks": "reliactl.cleanup",
    "temporary_file": "reliactl.resources",
}

__all__ = [
    "CircuitOpenError",
    "CleanupReport",
    "CleanupTarget",
    "CommandError",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DurationError",
    "LockBusyError",
    "LockError",
    "LockSweepReport",
    "RateLimitExceeded",
    "ReliactlError",
    "ResourceCleanupReport",
    "ResourceStats",
    "RetryError",
    "RootReport",
    "StateError",
    "UnsafeRootError",
    "__version__",
    "clean",
    "cleanup_resources",
    "cleanup_resources_sync",
    "format_duration",
    "format_size",
    "get_http_client",
    "get_http_session",
    "get_reliability_config",
    "get_resource_stats",
    "open_state",
    "parse_duration",
    "parse_size",
    "sweep_stale_locks",
    "temporary_file",
]

if TYPE_CHECKING:  # pragma: no cover
    from reliactl.cleanup import (
        CleanupReport,
        CleanupTarget,
        LockSweepReport,
        RootReport,
        clean,
        sweep_stale_locks,
    )
    from reliactl.config import Config, get_reliability_config
    from reliactl.durations import format_duration, format_size, parse_duration, parse_size
    from reliactl.errors import (
        CircuitOpenError,
        CommandError,
        ConfigError,
        ConfigProblem,
        DurationError,
        LockBusyError,
        LockError,
        RateLimitExceeded,
        ReliactlError,
        RetryError,
        StateError,
        UnsafeRootError,
    )
    from reliactl.resources import (
        ResourceCleanupReport,
        ResourceStats,
        cleanup_resources,
        cleanup_resources_sync,
        get_http_client,
        get_http_session,
        get_resource_stats,
        temporary_file,
    )
    from reliactl.state import open_state


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reliactl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
