"""The configuration schema: frozen sections whose fields carry their docs and constraints
(``metadata``), and the introspection every other role reads them through."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

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
        "local",
        doc="Redis unreachable: local (use this host's state.path, warn), closed (calls go"
        " through), open (breakers refuse) or error (store unusable)",
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
