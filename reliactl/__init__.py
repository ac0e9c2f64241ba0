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
    "CommandError": "reliactl.errors",
    "Config": "reliactl.config",
    "ConfigError": "reliactl.errors",
    "ConfigProblem": "reliactl.errors",
    "DurationError": "reliactl.errors",
    "LockBusyError": "reliactl.errors",
    "LockError": "reliactl.errors",
    "RateLimitExceeded": "reliactl.errors",
    "RateLimiter": "reliactl.ratelimit",
    "ReliactlError": "reliactl.errors",
    "RetryError": "reliactl.errors",
    "StateError": "reliactl.errors",
    "format_duration": "reliactl.durations",
    "format_size": "reliactl.durations",
    "get_reliability_config": "reliactl.config",
    "limiter_for": "reliactl.ratelimit",
    "open_state": "reliactl.state",
    "parse_duration": "reliactl.durations",
    "parse_size": "reliactl.durations",
}

__all__ = [
    "CircuitOpenError",
    "CommandError",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DurationError",
    "LockBusyError",
    "LockError",
    "RateLimitExceeded",
    "RateLimiter",
    "ReliactlError",
    "RetryError",
    "StateError",
    "__version__",
    "format_duration",
    "format_size",
    "get_reliability_config",
    "limiter_for",
    "open_state",
    "parse_duration",
    "parse_size",
]

if TYPE_CHECKING:  # pragma: no cover
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
    )
    from reliactl.ratelimit import RateLimiter, limiter_for
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
