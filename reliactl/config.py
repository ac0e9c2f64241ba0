"""reliactl's configuration: typed, frozen sections, loaded as defaults < YAML < env < flags.

Every field carries its documentation and constraints in ``metadata``; the validator, the
environment overrides, ``config show`` and the generated ``config.example.yaml`` all read the
same schema, so a field added here is validated, overridable and documented at once.

Discovery (first found wins): ``--config``, ``$RELIACTL_CONFIG``, ``./reliactl.yaml``,
``$XDG_CONFIG_HOME/reliactl/config.yaml``, ``/etc/reliactl/config.yaml``. No file is fine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reliactl.durations import format_duration, parse_duration, parse_size
from reliactl.errors import ConfigError, ConfigProblem, DurationError
from reliactl.redact import REDACTED, is_secret_name

MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_CONFIG_NAME = "reliactl.yaml"

KeyPath = tuple[str | int, ...]


def _opt(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    kind: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
    example: Any = None,
    factory: Any = None,
) -> Any:
    meta = {
        "doc": doc,
        "kind": kind,
        "gt": gt,
        "ge": ge,
        "le": le,
        "choices": choices,
        "secret": secret,
        "example": example,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class BreakerSettings:
    """Per-breaker overrides of the ``circuit_breaker`` defaults (unset = inherit)."""

    failure_threshold: int | None = _opt(None, doc="consecutive failures that open it", gt=0)
    recovery_timeout: float | None = _opt(
        None, doc="how long it stays open before a trial call", kind="duration", gt=0
    )
    half_open_max_calls: int | None = _opt(None, doc="trial calls admitted while half-open", gt=0)
    success_threshold: int | None = _opt(None, doc="trial successes needed to close", gt=0)
    failure_rate_threshold: float | None = _opt(
        None, doc="failure percent over the sliding window that opens it", gt=0, le=100
    )
    sliding_window_size: int | None = _opt(
        None, doc="calls in the failure-rate sliding window", gt=0
    )
    minimum_calls: int | None = _opt(
        None, doc="calls in the window before the failure rate counts", gt=0
    )
    slow_call_threshold: float | None = _opt(
        None, doc="a call at least this slow counts as a failure", kind="duration", gt=0
    )
    recovery_multiplier: float | None = _opt(
        None, doc="each re-open after a failed trial multiplies the open time by this", ge=1
    )
    max_recovery_timeout: float | None = _opt(
        None, doc="the open time never grows beyond this", kind="duration", gt=0
    )
    trial_timeout: float | None = _opt(
        None,
        doc="a half-open trial reservation expires after this (a killed trial never wedges it)",
        kind="duration",
        gt=0,
    )


@dataclass(frozen=True)
class CircuitBreakerConfig:
    failure_threshold: int = _opt(
        5, doc="consecutive failures that open a breaker (env CB_FAILURE_THRESHOLD)", gt=0
    )
    recovery_timeout: float = _opt(
        60.0,
        doc="how long an open breaker rejects calls before a trial (env CB_RECOVERY_TIMEOUT)",
        kind="duration",
        gt=0,
    )
    half_open_max_calls: int = _opt(1, doc="trial calls admitted while half-open", gt=0)
    success_threshold: int = _opt(1, doc="successful trials needed to close again", gt=0)
    failure_rate_threshold: float | None = _opt(
        None,
        doc="also open when this percent of the last sliding_window_size calls failed"
        " (unset: consecutive failures only)",
        gt=0,
        le=100,
        example=50,
    )
    sliding_window_size: int = _opt(20, doc="calls in the failure-rate sliding window", gt=0)
    minimum_calls: int = _opt(
        10, doc="calls in the window before the failure rate can open a breaker", gt=0
    )
    slow_call_threshold: float | None = _opt(
        None,
        doc="a call at least this slow counts as a failure (unset: never)",
        kind="duration",
        gt=0,
        example="30s",
    )
    recovery_multiplier: float = _opt(
        1.0,
        doc="each re-open after a failed trial multiplies the open time by this (1: constant)",
        ge=1,
    )
    max_recovery_timeout: float | None = _opt(
        None,
        doc="cap of the growing open time (unset: 1h; never below recovery_timeout)",
        kind="duration",
        gt=0,
        example="1h",
    )
    trial_timeout: float | None = _opt(
        None,
        doc="a half-open trial reservation expires after this, so a killed or hung trial never"
        " wedges the breaker (unset: recovery_timeout)",
        kind="duration",
        gt=0,
        example="5m",
    )
    breakers: dict[str, BreakerSettings] = _opt(
        doc="per-breaker overrides, by breaker name",
        factory=dict,
        example={
            "openai": {
                "failure_threshold": 3,
                "recovery_timeout": "2m",
                "half_open_max_calls": 1,
                "success_threshold": 2,
                "failure_rate_threshold": 50,
                "sliding_window_size": 20,
                "minimum_calls": 5,
                "slow_call_threshold": "20s",
                "recovery_multiplier": 2,
                "max_recovery_timeout": "30m",
                "trial_timeout": "1m",
            }
        },
    )

    def settings_for(self, name: str) -> BreakerSettings:
        """The effective settings of breaker ``name``: its overrides over these defaults."""
        own = self.breakers.get(name, BreakerSettings())
        merged = {
            f.name: _first_set(getattr(own, f.name), getattr(self, f.name))
            for f in dataclasses.fields(BreakerSettings)
        }
        return BreakerSettings(**merged)


def _first_set(own: Any, default: Any) -> Any:
    return default if own is None else own


CHECK_KINDS = ("http", "tcp", "command", "file_age", "process", "disk", "python")
SYSTEM_CHECK_NAMES = ("cpu", "memory", "swap", "disk", "file_handles", "process")
ALERT_KINDS = ("webhook", "discord", "slack", "command")


@dataclass(frozen=True)
class CheckSpec:
    """One custom health check; which fields apply depends on ``kind``."""

    name: str = _opt(doc="check name: letters, digits, _ . - (shown, alerted and --check NAME)")
    kind: str = _opt(
        doc="http, tcp, command, file_age, process, disk or python", choices=CHECK_KINDS
    )
    warn: str | None = _opt(
        None,
        doc="WARNING threshold, Nagios range: 10, 10:, ~:10, 10:20, @10:20 (durations allowed)",
        kind="range",
    )
    critical: str | None = _opt(None, doc="CRITICAL threshold, Nagios range", kind="range")
    timeout: float | None = _opt(
        None, doc="give up (UNKNOWN) after this (unset: check_timeout)", kind="duration", gt=0
    )
    debounce: int = _opt(1, doc="consecutive bad results needed before it leaves OK", ge=1)
    url: str = _opt("", doc="http: the URL to request")
    method: str = _opt("GET", doc="http: request method")
    expect_status: list[int] = _opt(
        doc="http: acceptable status codes (empty: any 2xx or 3xx)", factory=list
    )
    body_contains: str = _opt("", doc="http: the response body must contain this text")
    headers: dict[str, str] = _opt(
        doc="http: request headers (Authorization and token values are redacted in output)",
        factory=dict,
    )
    verify_tls: bool = _opt(True, doc="http: verify the server's TLS certificate")
    host: str = _opt("", doc="tcp: host to connect to")
    port: int | None = _opt(None, doc="tcp: port to connect to", gt=0, le=65535)
    command: list[str] = _opt(
        doc="command: a Nagios plugin, argv form (exit 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN)",
        factory=list,
    )
    path: str = _opt("", doc="file_age: the file whose age is checked; disk: a path on the disk")
    pid: int | None = _opt(None, doc="process: a process id", gt=0)
    pidfile: str = _opt("", doc="process: a file holding the process id")
    process_name: str = _opt(
        "", doc="process: a process name (as ps shows it); with pid/pidfile, it must match too"
    )
    target: str = _opt("", doc="python: module:function returning {status, value, message}")


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go when a check changes status (and again after ``cooldown``)."""

    name: str = _opt(doc="sink name (for --test-alert NAME)")
    kind: str = _opt(doc="webhook (JSON POST), discord, slack or command", choices=ALERT_KINDS)
    url: str = _opt("", doc="webhook, discord, slack: the webhook URL (a secret)", secret=True)
    command: list[str] = _opt(
        doc="command: program run with the alert as JSON on stdin, argv form", factory=list
    )
    cooldown: float | None = _opt(
        None,
        doc="repeat an alert for a still-bad check only after this (unset: alert_cooldown)",
        kind="duration",
        gt=0,
    )
    timeout: float = _opt(
        10.0, doc="deadline of one delivery, retries included", kind="duration", gt=0
    )


@dataclass(frozen=True)
class HealthMonitorConfig:
    check_interval: float = _opt(
        60.0,
        doc="interval of --watch and start_health_monitoring (env HEALTH_CHECK_INTERVAL)",
        kind="duration",
        gt=0,
        le=7 * 86400.0,
    )
    memory_threshold_mb: float = _opt(
        500.0,
        doc="RSS of this process tree: WARNING above 80% of it, CRITICAL above it"
        " (env HEALTH_MEMORY_THRESHOLD_MB)",
        gt=0,
    )
    cpu_warn: float = _opt(80.0, doc="CPU percent for WARNING", gt=0, le=100)
    cpu_critical: float = _opt(95.0, doc="CPU percent for CRITICAL", gt=0, le=100)
    memory_warn: float = _opt(85.0, doc="system memory used percent for WARNING", gt=0, le=100)
    memory_critical: float = _opt(95.0, doc="system memory used percent for CRITICAL", gt=0, le=100)
    swap_warn: float = _opt(50.0, doc="swap used percent for WARNING", gt=0, le=100)
    swap_critical: float = _opt(80.0, doc="swap used percent for CRITICAL", gt=0, le=100)
    disk_warn: float = _opt(80.0, doc="disk used percent (and inodes) for WARNING", gt=0, le=100)
    disk_critical: float = _opt(
        90.0, doc="disk used percent (and inodes) for CRITICAL", gt=0, le=100
    )
    file_handles_warn: float = _opt(80.0, doc="file handles used percent for WARNING", gt=0, le=100)
    file_handles_critical: float = _opt(
        95.0, doc="file handles used percent for CRITICAL", gt=0, le=100
    )
    disk_paths: list[str] = _opt(
        doc="paths whose disk usage is checked (empty: / and the state directory)",
        factory=list,
        example=["/", "/var"],
    )
    system_checks: list[str] = _opt(
        doc="built-in checks to run: cpu, memory, swap, disk, file_handles, process",
        factory=lambda: list(SYSTEM_CHECK_NAMES),
    )
    check_timeout: float = _opt(10.0, doc="timeout of each check", kind="duration", gt=0)
    jobs_checks: bool = _opt(
        True, doc="a check of kind job (missed, failing, too long) for every declared job"
    )
    max_response_size: int = _opt(
        10 * 1024 * 1024,
        doc="http checks read at most this much of a body (body_contains looks there only)",
        kind="size",
        gt=0,
    )
    max_parallel: int = _opt(
        256,
        doc="checks running at once; the others wait, and a check's timeout starts when it does",
        ge=1,
        le=10000,
    )
    alert_cooldown: float = _opt(
        900.0, doc="repeat an alert for a still-bad check only after this", kind="duration", gt=0
    )
    checks: list[CheckSpec] = _opt(
        doc="custom checks, run with the built-in ones",
        factory=list,
        example=[
            {
                "name": "api",
                "kind": "http",
                "url": "https://example.com/healthz",
                "method": "GET",
                "expect_status": [200],
                "body_contains": "ok",
                "headers": {"Authorization": "Bearer TOKEN"},
                "verify_tls": True,
                "warn": "1s",
                "critical": "3s",
                "timeout": "5s",
                "debounce": 2,
            },
            {"name": "postgres", "kind": "tcp", "host": "127.0.0.1", "port": 5432},
            {
                "name": "load",
                "kind": "command",
                "command": ["/usr/lib/nagios/plugins/check_load", "-w", "4", "-c", "8"],
            },
            {
                "name": "ideasheets-cron",
                "kind": "file_age",
                "path": "/var/lib/ideasheets/heartbeat",
                "warn": "15m",
                "critical": "1h",
            },
            {
                "name": "bot",
                "kind": "process",
                "pidfile": "/run/bot.pid",
                "warn": 800,
                "critical": 1500,
            },
            {"name": "sshd", "kind": "process", "process_name": "sshd"},
            {"name": "init", "kind": "process", "pid": 1},
            {"name": "data-disk", "kind": "disk", "path": "/srv/data", "warn": 70, "critical": 85},
            {"name": "database", "kind": "python", "target": "myapp.health:check_database"},
        ],
    )
    alerts: list[AlertSink] = _opt(
        doc="alert sinks: a message when a check changes status, repeated after the cooldown",
        factory=list,
        example=[
            {
                "name": "ops-discord",
                "kind": "discord",
                "url": "https://discord.com/api/webhooks/ID/TOKEN",
                "cooldown": "15m",
                "timeout": "10s",
            },
            {"name": "ops-slack", "kind": "slack", "url": "https://hooks.slack.com/services/X"},
            {"name": "pager", "kind": "webhook", "url": "https://alerts.example.com/hook"},
            {"name": "log", "kind": "command", "command": ["logger", "-t", "reliactl"]},
        ],
    )


@dataclass(frozen=True)
class RateLimitConfig:
    openai_requests_per_minute: int = _opt(
        60, doc="requests per minute of the OpenAI preset (env RATE_LIMIT_OPENAI_RPM)", gt=0
    )
    limits: dict[str, str] = _opt(
        doc='named limits, e.g. api: "60/minute;1000/hour"',
        factory=dict,
        kind="rates",
        example={"api": "60/minute;1000/hour"},
    )
    max_wait: float = _opt(
        60.0,
        doc="how long a request waits for a token before giving up (`http` exits 75); 0: never",
        kind="duration",
        ge=0,
    )


@dataclass(frozen=True)
class RetryConfig:
    max_retries: int = _opt(3, doc="retries after the first attempt", ge=0)
    base_delay: float = _opt(1.0, doc="first delay", kind="duration", gt=0)
    max_delay: float = _opt(30.0, doc="no delay is longer than this", kind="duration", gt=0)
    multiplier: float = _opt(2.0, doc="growth factor of exponential backoff", ge=1)
    strategy: str = _opt(
        "exponential",
        doc="exponential, linear or fixed",
        choices=("exponential", "linear", "fixed"),
    )
    jitter: str = _opt(
        "full",
        doc="none, full, equal or decorrelated",
        choices=("none", "full", "equal", "decorrelated"),
    )
    max_elapsed: float | None = _opt(
        None,
        doc="give up after this much time in all (unset: no limit)",
        kind="duration",
        gt=0,
        example="10m",
    )


@dataclass(frozen=True)
class RunConfig:
    lock_dir: str = _opt(
        "", doc="where `run --lock` keeps lock files", example="~/.local/state/reliactl/locks"
    )
    log_dir: str = _opt(
        "", doc="default directory of run logs", example="~/.local/state/reliactl/logs"
    )
    timeout: float | None = _opt(
        None,
        doc="default timeout of each attempt (unset: none)",
        kind="duration",
        gt=0,
        example="30m",
    )
    kill_after: float = _opt(
        10.0, doc="SIGKILL this long after the timeout signal", kind="duration", gt=0
    )


@dataclass(frozen=True)
class CleanupRoot:
    path: str = _opt(doc="directory to clean (the root itself is kept)")
    max_age: float = _opt(7 * 86400.0, doc="remove entries older than this", kind="duration", gt=0)
    include: list[str] = _opt(
        doc="only names matching these globs", factory=list, example=["*.tmp"]
    )
    exclude: list[str] = _opt(
        doc="never names matching these globs", factory=list, example=["keep-*"]
    )
    max_total_size: int | None = _opt(
        None, doc="then delete oldest first until the root fits", kind="size", gt=0, example="2GiB"
    )


@dataclass(frozen=True)
class CleanupConfig:
    roots: list[CleanupRoot] = _opt(
        doc="roots cleaned by a bare `reliactl cleanup`",
        factory=list,
        example=[
            {
                "path": "/tmp/reliactl-demo",
                "max_age": "7d",
                "include": ["*.tmp", "*.pdf"],
                "exclude": ["keep-*"],
                "max_total_size": "2GiB",
            }
        ],
    )


@dataclass(frozen=True)
class StateConfig:
    path: str = _opt(
        "",
        doc="the state database (breakers, runs, alert cooldowns, rate limits)",
        example="~/.local/state/reliactl/state.db",
    )
    retention: float = _opt(
        30 * 86400.0, doc="keep run history and breaker events this long", kind="duration", gt=0
    )
    max_history: int = _opt(10_000, doc="keep at most this many rows per history table", gt=0)
    url: str = _opt(
        "",
        doc="empty (SQLite at state.path), a path, sqlite:///path, redis://[user:pw@]host:port/db,"
        " rediss:// (TLS) or unix:///path.sock; Redis needs pip install 'reliactl[redis]'",
        kind="state_url",
    )
    password: str = _opt(
        "",
        doc="Redis password when not in state.url (better: env RELIACTL_STATE__PASSWORD)",
        secret=True,
    )
    password_file: str = _opt(
        "", doc="Redis: a file whose first line is the password (used when none is set)"
    )
    tls_ca_file: str = _opt(
        "", doc="rediss://: CA bundle that signed the server's certificate (empty: system CAs)"
    )
    namespace: str = _opt(
        "reliactl",
        doc="Redis: prefix of every key, so several fleets can share one Redis",
    )
    connect_timeout: float = _opt(
        1.0, doc="Redis: give up connecting after this", kind="duration", gt=0, le=60
    )
    operation_timeout: float = _opt(
        0.5, doc="Redis: give up waiting for one reply after this", kind="duration", gt=0, le=60
    )
    history_raw: float = _opt(
        86400.0,
        doc="health history: keep every check's raw points this long, then 5-minute aggregates",
        kind="duration",
        gt=0,
    )
    history_retention: float = _opt(
        30 * 86400.0,
        doc="health history: keep the aggregates and status changes this long",
        kind="duration",
        gt=0,
    )
    history_bucket: float = _opt(
        300.0,
        doc="health history: the aggregates' bucket (min, max, mean, worst status per bucket)",
        kind="duration",
        ge=10,
        le=86400,
    )
    on_unavailable: str = _opt(
        "error",
        doc="Redis unreachable: error (the store is unusable, as a broken SQLite file);"
        " local, open and closed are reserved",
        choices=("error", "local", "open", "closed"),
    )


@dataclass(frozen=True)
class ResourcesConfig:
    temp_dir: str = _opt(
        "",
        doc="where temporary_file() creates files (empty: the system temp directory)",
        example="/var/tmp/reliactl",
    )
    http_timeout: float = _opt(
        30.0, doc="read/write/pool timeout of get_http_session() clients", kind="duration", gt=0
    )
    http_connect_timeout: float = _opt(
        10.0, doc="connect timeout of get_http_session() clients", kind="duration", gt=0
    )
    http_max_connections: int = _opt(100, doc="connection pool size of each named client", gt=0)
    http_max_keepalive: int = _opt(20, doc="idle keep-alive connections kept per client", ge=0)


@dataclass(frozen=True)
class JobPingSettings:
    """Where `run` sends a job's heartbeats (reliactl.ping). The URLs are secrets."""

    url: str = _opt(
        "",
        doc="healthchecks.io protocol: URL/start, URL, URL/<exit code> (env RELIACTL_PING_URL)",
        kind="ping_url",
    )
    start: str = _opt(
        "", doc="template pinged when the command starts ({name} {host} {rid})", kind="ping_url"
    )
    success: str = _opt(
        "",
        doc="template pinged on success ({name} {host} {exit_code} {duration_ms} {outcome})",
        kind="ping_url",
    )
    failure: str = _opt("", doc="template pinged on failure (same placeholders)", kind="ping_url")
    refusal: str = _opt(
        "log",
        doc="a run refused before it started (lock busy, breaker open, health gate):"
        " log (URL/log), fail (URL/fail, or the failure template) or none",
        choices=("log", "fail", "none"),
    )
    body_limit: int = _opt(
        10 * 1024, doc="POST at most this much of the output's tail", kind="size", ge=0
    )


@dataclass(frozen=True)
class JobSettings:
    """What is expected of one job that `reliactl run --job NAME` runs."""

    schedule: str = _opt(
        "", doc="cron expression of when it runs (5 fields, as crontab)", kind="cron"
    )
    tz: str = _opt("", doc="time zone of schedule, e.g. Europe/Berlin (empty: local time)")
    every: float | None = _opt(
        None, doc="instead of schedule: it runs this often", kind="duration", gt=0
    )
    grace: float | None = _opt(
        None,
        doc="how late a run may be before it counts as missed (unset: half the period,"
        " between 1m and 1h)",
        kind="duration",
        gt=0,
    )
    max_duration: float | None = _opt(
        None, doc="a run taking longer is WARNING (unset: no limit)", kind="duration", gt=0
    )
    max_failures: int = _opt(
        1, doc="consecutive failed runs that make the job CRITICAL (fewer: WARNING)", gt=0
    )
    ping: JobPingSettings = _opt(
        doc="heartbeats sent by `run` (a monitor off the host)", factory=JobPingSettings
    )
    breaker: str = _opt("", doc="`run` goes through this circuit breaker (empty: none)")
    alert: bool = _opt(False, doc="a run that finally fails alerts the health_monitor sinks")


@dataclass(frozen=True)
class Config:
    """The whole configuration; every section has defaults, so ``Config()`` is valid."""

    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    health_monitor: HealthMonitorConfig = field(default_factory=HealthMonitorConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    state: StateConfig = field(default_factory=StateConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    jobs: dict[str, JobSettings] = _opt(
        doc="jobs by name: their schedule, limits and pings",
        factory=dict,
        example={
            "backup": {
                "schedule": "30 2 * * *",
                "tz": "Europe/Berlin",
                "grace": "1h",
                "max_duration": "2h",
                "max_failures": 2,
                "ping": {
                    "url": "https://hc-ping.com/YOUR-CHECK-UUID",
                    "refusal": "log",
                    "body_limit": "10KiB",
                },
                "breaker": "backup-target",
                "alert": True,
            },
            "ideasheets": {
                "every": "15m",
                "max_duration": "10m",
                "ping": {
                    "start": "https://push.example.com/api/push/TOKEN?status=up&msg=start",
                    "success": "https://push.example.com/api/push/TOKEN?status=up&ping={duration_ms}",
                    "failure": "https://push.example.com/api/push/TOKEN?status=down&msg={outcome}",
                },
            },
        },
    )


SECTION_DOCS = {
    "circuit_breaker": "Circuit breakers: fail fast while a service is down.",
    "health_monitor": "reliactl health: thresholds and intervals.",
    "rate_limit": "Rate limits shared by processes through the state store.",
    "retry": "Default retry policy of `reliactl run --retry`, the HTTP client and alerts.",
    "run": "reliactl run: locks, logs and timeouts.",
    "cleanup": "reliactl cleanup: age-based removal under configured roots.",
    "state": "The state store shared by every reliactl process on this host (or fleet, on Redis).",
    "resources": "Library resources: temporary_file() and get_http_session() clients.",
    "jobs": "Jobs run by `reliactl run --job NAME`: when they are expected (health checks of"
    " kind job) and where their heartbeats go.",
}

# The seed's environment variables, kept working.
LEGACY_ENV: dict[str, KeyPath] = {
    "CB_FAILURE_THRESHOLD": ("circuit_breaker", "failure_threshold"),
    "CB_RECOVERY_TIMEOUT": ("circuit_breaker", "recovery_timeout"),
    "HEALTH_CHECK_INTERVAL": ("health_monitor", "check_interval"),
    "HEALTH_MEMORY_THRESHOLD_MB": ("health_monitor", "memory_threshold_mb"),
    "RATE_LIMIT_OPENAI_RPM": ("rate_limit", "openai_requests_per_minute"),
}
ENV_PREFIX = "RELIACTL_"
# --------------------------------------------------------------------------- paths


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(_xdg_dir(env, "XDG_STATE_HOME", os.path.join(".local", "state"))) / "reliactl"


def _xdg_dir(env: Mapping[str, str], var: str, fallback: str) -> str:
    """``$var`` if it is an absolute path; else ``$HOME/fallback`` (the XDG Base Directory
    spec says a relative value is invalid and must be ignored: it would depend on the cwd)."""
    value = env.get(var) or ""
    if os.path.isabs(value):
        return value
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), fallback)


def config_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a configuration file is looked for when none is named, in order."""
    env = os.environ if environ is None else environ
    xdg = _xdg_dir(env, "XDG_CONFIG_HOME", ".config")
    return [
        Path(DEFAULT_CONFIG_NAME),
        Path(xdg) / "reliactl" / "config.yaml",
        Path("/etc/reliactl/config.yaml"),
    ]


def config_untrusted(path: Path, st: os.stat_result | None = None) -> str | None:
    """Why the configuration file ``path`` must not be trusted, or None (see reliactl.trust).

    The file must be owned by the invoking user or root and writable by nobody else, and so
    must the directory holding it (and, for a symbolic link, the directory of its target):
    otherwise another user could make reliactl run their command checks or delete their
    choice of cleanup roots with this user's rights.
    """
    from reliactl.trust import untrusted

    try:
        info = os.stat(path) if st is None else st
    except OSError:
        return None  # reading it reports the problem
    reason = untrusted(info)
    if reason is not None:
        return f"the file is {reason}"
    absolute = os.path.abspath(path)
    for directory in dict.fromkeys(
        (os.path.dirname(absolute), os.path.dirname(os.path.realpath(absolute)))
    ):
        try:
            reason = untrusted(os.stat(directory))
        except OSError:
            continue
        if reason is not None:
            return f"its directory {directory} is {reason}"
    return None


def find_config_file(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    notes: list[str] | None = None,
) -> tuple[Path | None, str]:
    """The file to load and how it was chosen; an explicit or $RELIACTL_CONFIG file must exist.

    A file found by search that is not trusted (``config_untrusted``) is skipped, and why is
    appended to ``notes``; an explicit one is refused when it is read.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit), "--config"
    if env.get("RELIACTL_CONFIG"):
        return Path(env["RELIACTL_CONFIG"]), "RELIACTL_CONFIG"
    for candidate in config_candidates(env):
        try:
            if not candidate.is_file():
                continue
        except OSError:
            continue
        reason = config_untrusted(candidate)
        if reason is not None:
            if notes is not None:
                notes.append(f"skipped configuration file {candidate}: {reason}")
            continue
        return candidate, "search"
    return None, "none"


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration, the file it came from, and the source of every value."""

    config: Config
    path: Path | None
    sources: dict[str, str]
    notes: tuple[str, ...] = ()  # files skipped by the search, and why


class _Origins:
    """Where each key path was set: ("file", line) | ("env", VAR) | ("flag", "--name")."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.by_path: dict[KeyPath, tuple[str, Any]] = {}

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        dotted = dotted_path(path)
        probe = path
        while True:
            origin = self.by_path.get(probe)
            if origin is not None:
                kind, where = origin
                if kind == "file":
                    return ConfigProblem(self.filename, where, dotted, message)
                if kind == "env":
                    return ConfigProblem("environment", None, dotted, message, variable=where)
                return ConfigProblem(f"flag {where}", None, dotted, message)
            if not probe:
                return ConfigProblem(self.filename, None, dotted, message)
            probe = probe[:-1]

    def source_of(self, path: KeyPath) -> str:
        origin = self.by_path.get(path)
        if origin is None:
            return "default"
        kind, where = origin
        if kind == "file":
            return f"{self.filename}:{where}"
        if kind == "env":
            return f"env {where}"
        return f"flag {where}"


def dotted_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
    use_env: bool = True,
    search: bool = True,
) -> LoadedConfig:
    """Load and validate: built-in defaults < YAML file < environment < ``flags``.

    ``flags`` maps a dotted key path to (value, flag name). Raises ConfigError listing every
    problem at once. No file at all is fine unless one was named explicitly.
    """
    env = dict(os.environ if environ is None else environ)
    notes: list[str] = []
    if search:
        file_path, how = find_config_file(path, env, notes)
    else:
        file_path, how = (Path(path), "--config") if path else (None, "none")
    filename = str(file_path) if file_path is not None else "<defaults>"
    origins = _Origins(filename)
    problems: list[ConfigProblem] = []
    raw: dict[str, Any] = {}

    if file_path is not None:
        text, error = _read_text(file_path)
        if error is not None:
            how_text = {"RELIACTL_CONFIG": " (named by RELIACTL_CONFIG)"}.get(how, "")
            raise ConfigError([ConfigProblem(filename, None, "", error + how_text)])
        assert text is not None
        from reliactl import _yaml

        doc = _yaml.parse(text)
        for line, kpath, message in doc.problems:
            problems.append(ConfigProblem(filename, line, dotted_path(kpath), message))
        if doc.data is None:
            doc.data = {}
        if not isinstance(doc.data, dict):
            problems.append(
                ConfigProblem(
                    filename, 1, "", f"expected a mapping of sections, got {_kind(doc.data)}"
                )
            )
        else:
            raw = doc.data
            for kpath, line in doc.lines.items():
                origins.by_path[kpath] = ("file", line)

    if use_env:
        _apply_env(raw, env, origins, problems)
    for dotted, (value, flag_name) in (flags or {}).items():
        kpath = tuple(dotted.split("."))
        _set_path(raw, kpath, value)
        origins.by_path[kpath] = ("flag", flag_name)

    _fill_derived_defaults(raw, env, origins, file_path, problems)
    config = _build(Config, raw, (), origins, problems)
    if isinstance(config, Config):
        problems.extend(_cross_checks(config, origins))
    if problems:
        raise ConfigError(problems)
    assert isinstance(config, Config)
    sources = {dotted_path(kp): origins.source_of(kp) for kp in _leaf_paths(config, ())}
    return LoadedConfig(config=config, path=file_path, sources=sources, notes=tuple(notes))


def _read_text(path: Path) -> tuple[str | None, str | None]:
    # O_NONBLOCK: a FIFO planted at the path must never block the open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, "configuration file not found"
    except OSError as exc:
        return None, f"cannot read configuration file: {exc.strerror}"
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None, "is a directory, expected a YAML file"
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file (a FIFO or device?); refused"
        reason = config_untrusted(path, st)
        if reason is not None:
            return None, f"refused: {reason} (fix its owner or mode: chown/chmod go-w)"
        if st.st_size > MAX_CONFIG_BYTES:
            return None, f"file is larger than {MAX_CONFIG_BYTES} bytes; refused"
        chunks = []
        total = 0
        while total <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        return None, f"cannot read configuration file: {exc.strerror}"
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        return None, f"file is larger than {MAX_CONFIG_BYTES} bytes; refused"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return repr(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _set_path(raw: dict[str, Any], kpath: KeyPath, value: Any) -> None:
    node: Any = raw
    for part in kpath[:-1]:
        nxt = node.get(part) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[kpath[-1]] = value


def _fill_derived_defaults(
    raw: dict[str, Any],
    env: Mapping[str, str],
    origins: _Origins,
    file_path: Path | None,
    problems: list[ConfigProblem],
) -> None:
    """Default the state, lock and log paths; make every configured path absolute.

    A relative path must never make the lock or the store depend on the caller's working
    directory: one from the file is resolved against the file's directory, one from a flag
    against the working directory (where the user typed it), one from the environment is an
    error (there is nothing stable to resolve it against).
    """
    home = state_home(env)
    base = os.path.dirname(os.path.abspath(file_path)) if file_path is not None else None

    def anchored(value: str, kpath: KeyPath) -> str:
        value = os.path.expanduser(value)
        if os.path.isabs(value):
            return value
        origin = origins.by_path.get(kpath)
        kind = origin[0] if origin is not None else None
        if kind == "file" and base is not None:
            return os.path.normpath(os.path.join(base, value))
        if kind == "flag":
            return os.path.abspath(value)
        problems.append(
            origins.problem(
                kpath,
                f"expected an absolute path (a relative one would depend on the working"
                f" directory), got {value!r}",
            )
        )
        return value

    for section, key, default in (
        ("state", "path", home / "state.db"),
        ("run", "lock_dir", home / "locks"),
        ("run", "log_dir", home / "logs"),
    ):
        sect = raw.get(section)
        if sect is None:
            sect = raw[section] = {}
        if isinstance(sect, dict):
            value = sect.get(key)
            if value in (None, ""):
                sect[key] = str(default)
            elif isinstance(value, str):
                sect[key] = anchored(value, (section, key))
    cleanup = raw.get("cleanup")
    roots = cleanup.get("roots") if isinstance(cleanup, dict) else None
    for index, root in enumerate(roots if isinstance(roots, list) else []):
        if isinstance(root, dict) and isinstance(root.get("path"), str):
            kpath: KeyPath = ("cleanup", "roots", index, "path")
            if not root["path"].strip():
                problems.append(origins.problem(kpath, "must not be empty"))
            else:
                root["path"] = anchored(root["path"], kpath)


# ---- environment


def _schema_field(cls: type, name: str) -> tuple[Any, dataclasses.Field[Any]] | None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == name:
            return hints[name], f
    return None


def _apply_env(
    raw: dict[str, Any],
    env: Mapping[str, str],
    origins: _Origins,
    problems: list[ConfigProblem],
) -> None:
    wanted: list[tuple[str, KeyPath]] = [
        (var, kpath) for var, kpath in LEGACY_ENV.items() if var in env
    ]
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        kpath, error = _resolve_env_path(parts)
        if error is not None:
            problems.append(
                ConfigProblem("environment", None, ".".join(parts), error, variable=var)
            )
            continue
        wanted.append((var, kpath))
    for var, kpath in wanted:
        _set_path(raw, kpath, _env_value(env[var], _field_at(kpath)))
        origins.by_path[kpath] = ("env", var)


def _resolve_env_path(parts: list[str]) -> tuple[KeyPath, str | None]:
    cls: Any = Config
    kpath: list[str] = []
    i = 0
    while i < len(parts):
        name = parts[i]
        if not dataclasses.is_dataclass(cls):
            return tuple(kpath), "not a setting"
        found = _schema_field(cls, name)  # type: ignore[arg-type]
        if found is None:
            names = [f.name for f in dataclasses.fields(cls)]
            return tuple(kpath), f"unknown setting '{name}'{_suggest(name, names)}"
        annotation, _ = found
        kpath.append(name)
        base = _strip_optional(annotation)
        origin = typing.get_origin(base)
        if origin is dict:
            value_type = typing.get_args(base)[1]
            if i + 1 < len(parts) and dataclasses.is_dataclass(value_type):
                kpath.append(parts[i + 1])
                cls = value_type
                i += 2
                continue
            if i + 1 < len(parts) and i + 2 == len(parts):
                kpath.append(parts[i + 1])
                return tuple(kpath), None
            return tuple(kpath), "is a mapping; set it in the configuration file"
        if dataclasses.is_dataclass(base):
            cls = base
            i += 1
            continue
        if origin is list:
            return tuple(kpath), "is a list; set it in the configuration file"
        if i + 1 != len(parts):
            return tuple(kpath), "is not a section"
        return tuple(kpath), None
    return tuple(kpath), "names a section, not a setting"


def _field_at(kpath: KeyPath) -> Any:
    """The annotation of the setting at ``kpath`` (str if the path is not in the schema)."""
    cls: Any = Config
    annotation: Any = Config
    i = 0
    while i < len(kpath):
        found = _schema_field(cls, str(kpath[i]))
        if found is None:
            return str
        annotation = found[0]
        base = _strip_optional(annotation)
        if typing.get_origin(base) is dict:
            annotation = typing.get_args(base)[1]
            cls = annotation
            i += 2
            continue
        cls = base
        i += 1
    return annotation


def _env_value(text: str, annotation: Any) -> Any:
    if _strip_optional(annotation) is str:
        return text
    from reliactl import _yaml

    return _yaml.parse_scalar(text)


def _suggest(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---- building and validating


_hint_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _hint_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hint_cache[cls] = hints
    return hints


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_container(annotation: Any) -> bool:
    """A non-optional section, list or mapping (where an empty YAML value means the default)."""
    if _is_optional(annotation):
        return False
    return dataclasses.is_dataclass(annotation) or typing.get_origin(annotation) in (list, dict)


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


T = TypeVar("T")


def _build(
    cls: type[T], raw: Any, path: KeyPath, origins: _Origins, problems: list[ConfigProblem]
) -> T | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(origins.problem(path, f"expected a mapping, got {_kind(raw)}"))
        return None
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in raw:
        if key not in names:
            problems.append(
                origins.problem((*path, key), f"unknown key{_suggest(str(key), names)}")
            )
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    ok = True
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        fpath = (*path, f.name)
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(origins.problem(fpath, "is required"))
                ok = False
            continue
        if raw[f.name] is None and _is_container(hints[f.name]):
            # `retry:` with every key commented out: the section (or list, mapping) is
            # present but empty, which means its defaults.
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(origins.problem(fpath, "is required"))
                ok = False
            continue
        good, value = _convert(hints[f.name], f.metadata, raw[f.name], fpath, origins, problems)
        if good:
            kwargs[f.name] = value
        else:
            ok = False
    if not ok:
        return None
    return cls(**kwargs)


def _convert(  # noqa: C901 - one branch per annotation shape of the schema
    annotation: Any,
    meta: Mapping[str, Any],
    value: Any,
    path: KeyPath,
    origins: _Origins,
    problems: list[ConfigProblem],
) -> tuple[bool, Any]:
    def bad(message: str) -> tuple[bool, Any]:
        problems.append(origins.problem(path, message))
        return False, None

    if value is None:
        if _is_optional(annotation):
            return True, None
        return bad(f"expected {_expected(annotation, meta)}, got nothing")
    base = _strip_optional(annotation)
    kind = meta.get("kind")
    if dataclasses.is_dataclass(base):
        built = _build(base, value, path, origins, problems)  # type: ignore[arg-type]
        return built is not None, built
    origin = typing.get_origin(base)
    if origin is list:
        if not isinstance(value, list):
            return bad(f"expected a list, got {_kind(value)}")
        (item_type,) = typing.get_args(base)
        items, good = [], True
        for index, item in enumerate(value):
            ok, converted = _convert(item_type, {}, item, (*path, index), origins, problems)
            good = good and ok
            items.append(converted)
        return good, items
    if origin is dict:
        if not isinstance(value, dict):
            return bad(f"expected a mapping, got {_kind(value)}")
        _, value_type = typing.get_args(base)
        result, good = {}, True
        item_meta = {"kind": kind} if kind == "rates" else {}
        for key, item in value.items():
            ok, converted = _convert(
                value_type, item_meta, item, (*path, str(key)), origins, problems
            )
            good = good and ok
            result[str(key)] = converted
        return good, result
    if kind == "duration":
        try:
            number: float = parse_duration(value)
        except DurationError as exc:
            return bad(str(exc))
        return _check_range(number, meta, bad, format_duration)
    if kind == "size":
        try:
            size = parse_size(value)
        except DurationError as exc:
            return bad(str(exc))
        return _check_range(size, meta, bad, str)
    if kind == "range":
        from reliactl.ranges import RangeError, parse_range

        try:
            parsed = parse_range(value)
        except RangeError as exc:
            return bad(str(exc))
        return True, str(parsed)
    if kind == "rates":
        if not isinstance(value, str):
            return bad(f'expected a rate such as "60/minute;1000/hour", got {_kind(value)}')
        from reliactl.ratelimit import parse_rates as parse

        try:
            parse(value)
        except ValueError as exc:
            return bad(str(exc))
        return True, value
    if base is bool:
        if not isinstance(value, bool):
            return bad(f"expected true or false, got {_kind(value)}")
        return True, value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return bad(f"expected {_expected(base, meta)}, got {_kind(value)}")
        return _check_range(value, meta, bad, str)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"expected {_expected(base, meta)}, got {_kind(value)}")
        if not math.isfinite(value):
            return bad(f"expected a finite number, got {value}")
        return _check_range(float(value), meta, bad, str)
    if base is str:
        if not isinstance(value, str):
            return bad(f"expected a string, got {_kind(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = _suggest(value, list(choices))
            return bad(f"expected one of {', '.join(choices)}, got {value!r}{hint}")
        return True, value
    return bad(f"unsupported value {_kind(value)}")  # pragma: no cover - schema error


def _expected(annotation: Any, meta: Mapping[str, Any]) -> str:
    base = _strip_optional(annotation)
    if meta.get("kind") == "duration":
        return "a duration such as 30s, 5m or 1h30m"
    if meta.get("kind") == "size":
        return "a size such as 500MB or 2GiB"
    noun = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        base, "a value"
    )
    if meta.get("gt") == 0 and base in (int, float):
        return "a positive " + ("integer" if base is int else "number")
    return noun


def _check_range(value: Any, meta: Mapping[str, Any], bad: Any, show: Any) -> tuple[bool, Any]:
    gt, ge, le = meta.get("gt"), meta.get("ge"), meta.get("le")
    if gt is not None and not value > gt:
        if gt == 0:
            return bad(f"expected a positive value, got {show(value)}")  # type: ignore[no-any-return]
        return bad(f"expected more than {gt}, got {show(value)}")  # type: ignore[no-any-return]
    if ge is not None and not value >= ge:
        return bad(f"expected at least {ge}, got {show(value)}")  # type: ignore[no-any-return]
    if le is not None and not value <= le:
        return bad(f"expected at most {le}, got {show(value)}")  # type: ignore[no-any-return]
    return True, value


def _cross_checks(config: Config, origins: _Origins) -> list[ConfigProblem]:
    problems = []
    r = config.retry
    if r.max_delay < r.base_delay:
        problems.append(
            origins.problem(
                ("retry", "max_delay"),
                f"must not be less than retry.base_delay ({format_duration(r.base_delay)}),"
                f" got {format_duration(r.max_delay)}",
            )
        )
    h = config.health_monitor
    for metric in ("cpu", "memory", "swap", "disk", "file_handles"):
        warn, crit = getattr(h, f"{metric}_warn"), getattr(h, f"{metric}_critical")
        if warn > crit:
            problems.append(
                origins.problem(
                    ("health_monitor", f"{metric}_warn"),
                    f"must not be above {metric}_critical ({crit:g}), got {warn:g}",
                )
            )
    problems.extend(_health_problems(h, origins))
    problems.extend(_state_problems(config.state, origins))
    problems.extend(_job_problems(config.jobs, origins))
    return problems


_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@\-]{0,127}")


def _job_problems(jobs: dict[str, JobSettings], origins: _Origins) -> list[ConfigProblem]:
    """Job names, one schedule each, cron expressions and zones that parse, usable pings."""
    problems: list[ConfigProblem] = []
    for name, job in jobs.items():
        path: KeyPath = ("jobs", name)
        if not _JOB_NAME.fullmatch(name):
            problems.append(
                origins.problem(
                    path, f"expected a job name of letters, digits, _ . @ -, got {name!r}"
                )
            )
        if job.schedule and job.every is not None:
            problems.append(origins.problem((*path, "every"), "give schedule or every, not both"))
        if job.schedule or job.tz:
            from reliactl.schedule import cron_problem, tz_problem

            if job.schedule:
                problem = cron_problem(job.schedule)
                if problem:
                    problems.append(origins.problem((*path, "schedule"), problem))
            if job.tz:
                problem = tz_problem(job.tz)
                if problem:
                    problems.append(origins.problem((*path, "tz"), problem))
        ping = job.ping
        for key in ("url", "start", "success", "failure"):
            value = getattr(ping, key)
            if value:
                from reliactl.ping import check_template, ping_url_problem

                problem = ping_url_problem(value) if key == "url" else check_template(value)
                if problem:
                    from reliactl.redact import redact_url

                    shown = redact_url(value, path=False)
                    problems.append(origins.problem((*path, "ping", key), f"{problem}: {shown}"))
    return problems


_NAMESPACE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def _state_problems(s: StateConfig, origins: _Origins) -> list[ConfigProblem]:
    """state.url must parse; a Redis one needs redis-py (found, never imported, here)."""
    if not s.url:
        return []  # the default: SQLite at state.path (and no import on the startup path)
    from reliactl.state.url import INSTALL_HINT, StateURLError, parse_state_url

    problems: list[ConfigProblem] = []
    try:
        parsed = parse_state_url(s.url, s.path)
    except StateURLError as exc:
        return [origins.problem(("state", "url"), str(exc))]
    if parsed.backend == "redis":
        import importlib.util

        if importlib.util.find_spec("redis") is None:
            problems.append(
                origins.problem(
                    ("state", "url"), f"a Redis URL needs the redis extra: {INSTALL_HINT}"
                )
            )
        if not _NAMESPACE.fullmatch(s.namespace):
            problems.append(
                origins.problem(
                    ("state", "namespace"),
                    f"expected 1-64 letters, digits, _ . : or -, got {s.namespace!r}",
                )
            )
        if s.on_unavailable != "error":
            problems.append(
                origins.problem(
                    ("state", "on_unavailable"),
                    f"{s.on_unavailable!r} is not implemented yet; this version supports"
                    " only 'error'",
                )
            )
    return problems


_CHECK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RESERVED_CHECK_NAMES = (
    "cpu_usage",
    "disk_usage",
    "memory_usage",
    "swap_usage",
    "file_handles",
    "process_health",
)


def _health_problems(h: HealthMonitorConfig, origins: _Origins) -> list[ConfigProblem]:  # noqa: C901 - one branch per check or sink kind's requirement
    """Kind-specific requirements of custom checks and alert sinks; unique names."""
    problems: list[ConfigProblem] = []
    base: KeyPath = ("health_monitor",)
    for index, name in enumerate(h.system_checks):
        if name not in SYSTEM_CHECK_NAMES:
            hint = _suggest(name, list(SYSTEM_CHECK_NAMES))
            problems.append(
                origins.problem(
                    (*base, "system_checks", index),
                    f"expected one of {', '.join(SYSTEM_CHECK_NAMES)}, got {name!r}{hint}",
                )
            )
    seen: set[str] = set()
    required = {
        "http": ("url",),
        "tcp": ("host", "port"),
        "command": ("command",),
        "file_age": ("path",),
        "disk": ("path",),
        "python": ("target",),
    }
    for index, spec in enumerate(h.checks):
        path: KeyPath = (*base, "checks", index)
        if not _CHECK_NAME.fullmatch(spec.name):
            problems.append(
                origins.problem(
                    (*path, "name"), f"expected letters, digits, _ . or -, got {spec.name!r}"
                )
            )
        elif spec.name in seen:
            problems.append(origins.problem((*path, "name"), f"duplicate check name {spec.name!r}"))
        elif spec.name in _RESERVED_CHECK_NAMES or spec.name.startswith("disk_usage:"):
            problems.append(
                origins.problem((*path, "name"), f"{spec.name!r} is a built-in check's name")
            )
        seen.add(spec.name)
        for key in required.get(spec.kind, ()):
            if getattr(spec, key) in ("", None, []):
                problems.append(
                    origins.problem((*path, key), f"is required for {spec.kind} checks")
                )
        if spec.kind == "process" and not (spec.pid or spec.pidfile or spec.process_name):
            problems.append(
                origins.problem(path, "a process check needs pid, pidfile or process_name")
            )
        if spec.kind == "file_age" and spec.warn is None and spec.critical is None:
            problems.append(
                origins.problem(
                    (*path, "critical"), "a file_age check needs warn or critical (a maximum age)"
                )
            )
        if spec.kind == "command" and (spec.warn is not None or spec.critical is not None):
            problems.append(
                origins.problem(
                    (*path, "warn" if spec.warn is not None else "critical"),
                    "does not apply to a command check: the plugin's exit status decides",
                )
            )
        if spec.kind == "python" and spec.target:
            module, _, func = spec.target.partition(":")
            if not module or not func:
                problems.append(
                    origins.problem(
                        (*path, "target"), f"expected module:function, got {spec.target!r}"
                    )
                )
        if spec.kind == "http" and spec.url and not spec.url.startswith(("http://", "https://")):
            problems.append(origins.problem((*path, "url"), "expected an http:// or https:// URL"))
    sinks: set[str] = set()
    for index, sink in enumerate(h.alerts):
        path = (*base, "alerts", index)
        if sink.name in sinks:
            problems.append(origins.problem((*path, "name"), f"duplicate sink name {sink.name!r}"))
        sinks.add(sink.name)
        if sink.kind == "command":
            if not sink.command:
                problems.append(
                    origins.problem((*path, "command"), "is required for command sinks")
                )
        elif not sink.url:
            problems.append(origins.problem((*path, "url"), f"is required for {sink.kind} sinks"))
        elif sink.url != REDACTED and not sink.url.lower().startswith(("http://", "https://")):
            # (REDACTED: `config show` output stays loadable; it cannot be delivered to.)
            scheme = sink.url.split(":", 1)[0] if ":" in sink.url else sink.url[:20]
            problems.append(
                origins.problem(
                    (*path, "url"), f"expected an http:// or https:// URL, got {scheme}:"
                )
            )
    return problems


def parse_rates(text: str) -> list[tuple[int, float]]:
    """ "60/minute;1000/hour" -> [(60, 60.0), (1000, 3600.0)]: kept here for callers; the rate
    limiter owns the syntax (``reliactl.ratelimit.parse_rates``)."""
    from reliactl.ratelimit import parse_rates as parse

    return parse(text)


# --------------------------------------------------------------------------- views


def _leaf_paths(obj: Any, path: KeyPath) -> list[KeyPath]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: list[KeyPath] = []
        for f in dataclasses.fields(obj):
            out.extend(_leaf_paths(getattr(obj, f.name), (*path, f.name)))
        return out
    if isinstance(obj, dict) and obj:
        out = []
        for key, value in obj.items():
            out.extend(_leaf_paths(value, (*path, key)))
        return out
    if isinstance(obj, list) and obj and any(dataclasses.is_dataclass(v) for v in obj):
        out = []
        for index, value in enumerate(obj):
            out.extend(_leaf_paths(value, (*path, index)))
        return out
    return [path]


def is_secret_key(key: str) -> bool:
    """A key whose value ``config show`` hides: what ``reliactl.redact`` calls a secret name,
    and webhook URLs (the URL is the credential)."""
    return is_secret_name(key) or "webhook" in key.lower()


def to_plain(obj: Any, *, redact: bool = True, human: bool = True) -> Any:
    """Plain data (dicts, lists, scalars) for YAML/JSON output; secrets redacted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if (
                redact
                and value not in (None, "")
                and (f.metadata.get("secret") or is_secret_key(f.name))
            ):
                out[f.name] = REDACTED
            elif redact and value and f.metadata.get("kind") == "ping_url":
                from reliactl.redact import redact_url as redact_whole

                out[f.name] = redact_whole(value, path=False)  # the path is the credential
            elif redact and value and f.metadata.get("kind") == "state_url":
                from reliactl.state.url import redact_url

                out[f.name] = redact_url(value)
            elif human and value is not None and f.metadata.get("kind") == "duration":
                out[f.name] = format_duration(value)
            else:
                out[f.name] = to_plain(value, redact=redact, human=human)
        return out
    if isinstance(obj, dict):
        return {
            k: REDACTED
            if redact and is_secret_key(str(k)) and v not in (None, "")
            else to_plain(v, redact=redact, human=human)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, redact=redact, human=human) for v in obj]
    return obj


# --------------------------------------------------------------------------- the seed's API

_cached: Config | None = None


def get_reliability_config(*, reload: bool = False) -> Config:
    """The configuration of this process (defaults < file < environment), loaded once.

    Raises ConfigError when the file or environment is invalid.
    """
    global _cached
    if _cached is None or reload:
        _cached = load().config
    return _cached


def example_yaml(*, starter: bool = False) -> str:
    """A commented configuration: config.example.yaml, or (``starter``) what `config init` writes.

    The reference sets every option, example values included (example checks, sinks,
    breakers). The starter has the same layout and comments but is only the defaults: each
    example is there, commented out, so `reliactl health` in a fresh directory runs the
    built-in checks and alerts no placeholder URL.
    """
    import yaml

    defaults = to_plain(Config(), redact=False)
    if starter:
        lines = [
            "# reliactl starter configuration: the built-in defaults. Examples (checks, alert",
            "# sinks, breakers...) are commented out: uncomment and edit what you need.",
            "# The full reference of every option is config.example.yaml in reliactl's sources.",
        ]
    else:
        lines = ["# reliactl configuration: every option, with its default or an example value."]
    lines += [
        "# Precedence: built-in defaults < this file < environment < command-line flags.",
        "# Every scalar can be set from the environment as RELIACTL_<SECTION>__<KEY>,",
        "# e.g. RELIACTL_RETRY__MAX_RETRIES=5. Durations: 500ms, 30s, 5m, 1h30m, 7d.",
        "# Sizes: 500MB, 2GiB. Check a change with: reliactl config validate FILE",
    ]
    hints = _hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        if typing.get_origin(cls) is dict:  # `jobs:` (a mapping of named entries)
            lines += ["", f"# {SECTION_DOCS[section.name]}", "# Keys of each entry:"]
            lines += _entry_docs(typing.get_args(cls)[1], "")
            dumped = yaml.safe_dump(
                {section.name: section.metadata["example"]},
                default_flow_style=False,
                sort_keys=False,
            ).rstrip()
            if starter:
                lines.append(f"{section.name}: {{}}")
            lines += [("# " if starter else "") + line for line in dumped.splitlines()]
            continue
        lines += ["", f"# {SECTION_DOCS[section.name]}", f"{section.name}:"]
        for f in dataclasses.fields(cls):
            value = defaults[section.name][f.name]
            example = f.metadata.get("example")
            commented = False
            if example is not None and value in (None, "", [], {}):
                value = example
                commented = starter  # the starter keeps the default: the example is a comment
            lines.append(f"  # {f.metadata.get('doc', '')}")
            if commented and isinstance(value, (dict, list)):
                lines.append(f"  {f.name}: {'{}' if isinstance(value, dict) else '[]'}")
            if isinstance(value, (dict, list)):
                dumped = yaml.safe_dump({f.name: value}, default_flow_style=False, sort_keys=False)
                body = dumped.rstrip().splitlines()
            else:
                body = [f"{f.name}: {scalar_yaml(value)}"]
            lines += [("  # " if commented else "  ") + line for line in body]
    return "\n".join(lines) + "\n"


def _entry_docs(cls: Any, prefix: str) -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        sub = _strip_optional(_hints(cls)[f.name])
        if dataclasses.is_dataclass(sub):
            out.append(f"#   {prefix}{f.name}: {f.metadata.get('doc', '')}")
            out += _entry_docs(sub, f"{prefix}{f.name}.")
        else:
            out.append(f"#   {prefix}{f.name}: {f.metadata.get('doc', '')}")
    return out


_PLAIN = re.compile(r"[A-Za-z0-9_./~@%+$][A-Za-z0-9_./~@%+$:;,()=*?! -]*")
_RESERVED = re.compile(
    r"(?i:y|n|yes|no|true|false|on|off|null|~)|[-+]?(\d[\d_]*(\.\d*)?|\.\d+)(e[-+]?\d+)?"
    r"|[-+]?\.(inf|nan)|0x[0-9a-f]+|0o?[0-7]+|\d+(:[0-5]?\d)+(\.\d*)?|\d{4}-\d\d?-\d\d?.*",
    re.IGNORECASE,
)


def scalar_yaml(value: Any) -> str:
    """One scalar as YAML text, quoted only where plain YAML would misread it (no yaml import)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if (
        _PLAIN.fullmatch(text)
        and not _RESERVED.fullmatch(text)
        and ": " not in text
        and " #" not in text
        and not text.endswith((" ", ":"))
    ):
        return text
    return json.dumps(text)
