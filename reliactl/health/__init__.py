"""Health checks: system and custom checks, a monitor that runs them, alerts with cooldowns.

The seed's API::

    from reliactl.health import health_monitor, start_health_monitoring, get_system_health

    health_monitor.register_custom_check("database", check_database)   # sync or async
    report = await health_monitor.check_all_health()
    report.overall_status, report.metrics["memory_usage"].message
    task = await start_health_monitoring(interval=60)   # ... await task.stop()

Names are imported lazily: ``import reliactl.health`` costs nothing until one is used, and
psutil/httpx load only inside the checks that need them.
"""

from __future__ import annotations

import importlib

_EXPORTS: dict[str, str] = {
    "Alert": "reliactl.health.alerts",
    "AlertManager": "reliactl.health.alerts",
    "AlertOutcome": "reliactl.health.alerts",
    "Check": "reliactl.health.checks",
    "CheckContext": "reliactl.health.checks",
    "HealthMetric": "reliactl.health.model",
    "HealthMonitor": "reliactl.health.monitor",
    "HealthReport": "reliactl.health.model",
    "MonitoringTask": "reliactl.health.monitor",
    "NagiosRange": "reliactl.ranges",
    "PerfData": "reliactl.health.model",
    "RangeError": "reliactl.ranges",
    "Status": "reliactl.health.model",
    "get_system_health": "reliactl.health.monitor",
    "health_monitor": "reliactl.health.monitor",
    "parse_range": "reliactl.ranges",
    "start_health_monitoring": "reliactl.health.monitor",
    "stop_health_monitoring": "reliactl.health.monitor",
}

__all__ = [
    "Alert",
    "AlertManager",
    "AlertOutcome",
    "Check",
    "CheckContext",
    "HealthMetric",
    "HealthMonitor",
    "HealthReport",
    "MonitoringTask",
    "NagiosRange",
    "PerfData",
    "RangeError",
    "Status",
    "get_system_health",
    "health_monitor",
    "parse_range",
    "start_health_monitoring",
    "stop_health_monitoring",
]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from reliactl.health.alerts import Alert, AlertManager, AlertOutcome
    from reliactl.health.checks import Check, CheckContext
    from reliactl.health.model import HealthMetric, HealthReport, PerfData, Status
    from reliactl.health.monitor import (
        HealthMonitor,
        MonitoringTask,
        get_system_health,
        health_monitor,
        start_health_monitoring,
        stop_health_monitoring,
    )
    from reliactl.ranges import NagiosRange, RangeError, parse_range


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reliactl.health' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
