"""reliactl: keep scripts, cron jobs and services alive.

The public library API. Names are imported lazily on first use, so ``import reliactl`` (and
every CLI start) costs nothing for the parts a program does not touch.
"""

from __future__ import annotations

import importlib

from reliactl import _configsource
from reliactl._version import __version__

# public name -> module that defines it. The decorator ``retry`` is not here: ``reliactl.retry``
# is its module (``from reliactl.retry import retry``), and a lazy attribute would shadow it.
_EXPORTS: dict[str, str] = {
    "AsyncResilientClient": "reliactl.http",
    "BackoffStrategy": "reliactl.retry",
    "BreakerConfig": "reliactl.breaker",
    "BreakerSnapshot": "reliactl.breaker",
    "CircuitBreaker": "reliactl.breaker",
    "CircuitBreakerManager": "reliactl.breaker",
    "CircuitOpenError": "reliactl.errors",
    "CircuitState": "reliactl.breaker",
    "CleanupReport": "reliactl.cleanup",
    "CleanupTarget": "reliactl.cleanup",
    "Config": "reliactl.config",
    "ConfigError": "reliactl.errors",
    "ConfigProblem": "reliactl.errors",
    "DurationError": "reliactl.errors",
    "ExponentialBackoffStrategy": "reliactl.retry",
    "FixedDelayStrategy": "reliactl.retry",
    "HTTPError": "reliactl.errors",
    "HTTPStatusError": "reliactl.errors",
    "HealthError": "reliactl.errors",
    "HealthMonitor": "reliactl.health.monitor",
    "HealthReport": "reliactl.health.model",
    "JobHooks": "reliactl.jobs",
    "JobResult": "reliactl.jobs",
    "JobSpec": "reliactl.jobs",
    "LinearBackoffStrategy": "reliactl.retry",
    "LockBusyError": "reliactl.errors",
    "LockError": "reliactl.errors",
    "LockSweepReport": "reliactl.cleanup",
    "OpenAIWrapper": "reliactl.http",
    "RateLimitExceeded": "reliactl.errors",
    "RateLimiter": "reliactl.ratelimit",
    "ReliactlError": "reliactl.errors",
    "ResilientClient": "reliactl.http",
    "ResourceCleanupReport": "reliactl.resources",
    "ResourceStats": "reliactl.resources",
    "RetryBudget": "reliactl.retry",
    "RetryError": "reliactl.errors",
    "RetryPolicy": "reliactl.retry",
    "RetryStats": "reliactl.retry",
    "RootReport": "reliactl.cleanup",
    "RunOptions": "reliactl.runner",
    "RunResult": "reliactl.runner",
    "StateError": "reliactl.errors",
    "StateUnavailableError": "reliactl.errors",
    "UnsafeRootError": "reliactl.errors",
    "circuit_breaker": "reliactl.breaker",
    "circuit_manager": "reliactl.breaker",
    "clean": "reliactl.cleanup",
    "cleanup_resources": "reliactl.resources",
    "cleanup_resources_sync": "reliactl.resources",
    "create_http_circuit_config": "reliactl.breaker",
    "format_duration": "reliactl.durations",
    "format_size": "reliactl.durations",
    "get_http_client": "reliactl.resources",
    "get_http_session": "reliactl.resources",
    "get_persistent_breaker": "reliactl.breaker",
    "get_reliability_config": "reliactl.config",
    "get_resource_stats": "reliactl.resources",
    "get_system_health": "reliactl.health.monitor",
    "health_monitor": "reliactl.health.monitor",
    "limiter_for": "reliactl.ratelimit",
    "make_strategy": "reliactl.retry",
    "open_state": "reliactl.state",
    "parse_duration": "reliactl.durations",
    "parse_size": "reliactl.durations",
    "plan_schedule": "reliactl.retry",
    "retry_async": "reliactl.retry",
    "retrying": "reliactl.retry",
    "retrying_async": "reliactl.retry",
    "run_command": "reliactl.runner",
    "run_job": "reliactl.jobs",
    "start_health_monitoring": "reliactl.health.monitor",
    "strategy_from_config": "reliactl.retry",
    "sweep_stale_locks": "reliactl.cleanup",
    "temporary_file": "reliactl.resources",
}

__all__ = [
    "AsyncResilientClient",
    "BackoffStrategy",
    "BreakerConfig",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitBreakerManager",
    "CircuitOpenError",
    "CircuitState",
    "CleanupReport",
    "CleanupTarget",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DurationError",
    "ExponentialBackoffStrategy",
    "FixedDelayStrategy",
    "HTTPError",
    "HTTPStatusError",
    "HealthError",
    "HealthMonitor",
    "HealthReport",
    "JobHooks",
    "JobResult",
    "JobSpec",
    "LinearBackoffStrategy",
    "LockBusyError",
    "LockError",
    "LockSweepReport",
    "OpenAIWrapper",
    "RateLimitExceeded",
    "RateLimiter",
    "ReliactlError",
    "ResilientClient",
    "ResourceCleanupReport",
    "ResourceStats",
    "RetryBudget",
    "RetryError",
    "RetryPolicy",
    "RetryStats",
    "RootReport",
    "RunOptions",
    "RunResult",
    "StateError",
    "StateUnavailableError",
    "UnsafeRootError",
    "__version__",
    "circuit_breaker",
    "circuit_manager",
    "clean",
    "cleanup_resources",
    "cleanup_resources_sync",
    "create_http_circuit_config",
    "format_duration",
    "format_size",
    "get_http_client",
    "get_http_session",
    "get_persistent_breaker",
    "get_reliability_config",
    "get_resource_stats",
    "get_system_health",
    "health_monitor",
    "limiter_for",
    "make_strategy",
    "open_state",
    "parse_duration",
    "parse_size",
    "plan_schedule",
    "retry_async",
    "retrying",
    "retrying_async",
    "run_command",
    "run_job",
    "start_health_monitoring",
    "strategy_from_config",
    "sweep_stale_locks",
    "temporary_file",
]

# `typing.TYPE_CHECKING` without importing typing (~5 ms): `import reliactl` and the CLI's
# fast `--help`/`--version` need nothing of it (issue 21 item 4). Type checkers treat any
# name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from reliactl.breaker import (
        BreakerConfig,
        BreakerSnapshot,
        CircuitBreaker,
        CircuitBreakerManager,
        CircuitState,
        circuit_breaker,
        circuit_manager,
        create_http_circuit_config,
        get_persistent_breaker,
    )
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
        ConfigError,
        ConfigProblem,
        DurationError,
        HealthError,
        HTTPError,
        HTTPStatusError,
        LockBusyError,
        LockError,
        RateLimitExceeded,
        ReliactlError,
        RetryError,
        StateError,
        StateUnavailableError,
        UnsafeRootError,
    )
    from reliactl.health.model import HealthReport
    from reliactl.health.monitor import (
        HealthMonitor,
        get_system_health,
        health_monitor,
        start_health_monitoring,
    )
    from reliactl.http import AsyncResilientClient, OpenAIWrapper, ResilientClient
    from reliactl.jobs import JobHooks, JobResult, JobSpec, run_job
    from reliactl.ratelimit import RateLimiter, limiter_for
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
    from reliactl.retry import (
        BackoffStrategy,
        ExponentialBackoffStrategy,
        FixedDelayStrategy,
        LinearBackoffStrategy,
        RetryBudget,
        RetryPolicy,
        RetryStats,
        make_strategy,
        plan_schedule,
        retry_async,
        retrying,
        retrying_async,
        strategy_from_config,
    )
    from reliactl.runner import RunOptions, RunResult, run_command
    from reliactl.state import open_state


def _process_config() -> Config:
    """``get_reliability_config()``; config is imported at the first call, not here."""
    from reliactl.config import get_reliability_config

    return get_reliability_config()


# retry, ratelimit and state read the process-wide configuration through this source (they
# never import config: the layers point one way).
_configsource.install(_process_config)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reliactl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
