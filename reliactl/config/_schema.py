"""The configuration schema: frozen sections whose fields carry their docs and constraints
(``metadata``), and the introspection every other role reads them through."""

from __future__ import annotations

from reliactl import _records
from reliactl._settings import JITTERS, MAX_RETRIES, STRATEGIES, BreakerSettings, _opt

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:  # the same frozen dataclasses, without the dataclasses module (see _records)
    from reliactl._records import dataclass, field

MAX_CONFIG_BYTES = 1024 * 1024


DEFAULT_CONFIG_NAME = "reliactl.yaml"


KeyPath = tuple[str | int, ...]


def _overrides_of(cls: type, name: str, doc: str) -> type:
    """A frozen dataclass with every field of ``cls``, optional and unset by default."""
    hints = _records.hints(cls)
    namespace: dict[str, Any] = {
        "__doc__": doc,
        "__module__": __name__,
        "__qualname__": name,
        "__annotations__": {f.name: hints[f.name] | None for f in _records.fields(cls)},
    }
    for f in _records.fields(cls):
        namespace[f.name] = field(default=None, metadata=f.metadata)
    made: type = _records.dataclass(frozen=True)(type(name, (), namespace))
    return made


if TYPE_CHECKING:

    class BreakerOverrides:
        """Per-breaker overrides: every `BreakerSettings` field, unset = inherit."""

        def __init__(self, **overrides: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...

else:
    BreakerOverrides = _overrides_of(
        BreakerSettings,
        "BreakerOverrides",
        "Per-breaker overrides of the ``circuit_breaker`` defaults (unset = inherit).",
    )


@dataclass(frozen=True)  # as BreakerSettings, its base, since issue 21 wave 3
class CircuitBreakerConfig(BreakerSettings):
    """The breakers' defaults (the `BreakerSettings` fields) and per-breaker overrides."""

    breakers: dict[str, BreakerOverrides] = _opt(
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
        own = self.breakers.get(name, BreakerOverrides())
        merged = {
            f.name: _first_set(getattr(own, f.name), getattr(self, f.name))
            for f in _records.fields(BreakerSettings)
        }
        return BreakerSettings(**merged)


def _first_set(own: Any, default: Any) -> Any:
    return default if own is None else own


CHECK_KINDS = ("http", "tcp", "command", "file_age", "process", "disk", "python")


SYSTEM_CHECK_NAMES = ("cpu", "memory", "swap", "disk", "file_handles", "process")


ALERT_KINDS = (
    "webhook",
    "discord",
    "slack",
    "command",
    "email",
    "pagerduty",
    "opsgenie",
    "telegram",
    "teams",
    "ntfy",
)
SMTP_SECURITY = ("starttls", "tls", "none")


REMEDIATION_ACTIONS = ("cleanup", "restart", "signal")


@dataclass(frozen=True)
class RemediateSpec:
    """What `health` runs when a check fails (a command or a built-in action) and its limits."""

    command: list[str] | str = _opt(
        doc="argv list run when the check fails; a shell string only with shell: true",
        kind="argv",
        factory=list,
    )
    shell: bool = _opt(False, doc="run command, one string, with /bin/sh -c (never implied)")
    action: str = _opt(
        "",
        doc="a built-in action instead of command: cleanup:ROOT (a cleanup root's name),"
        " restart:UNIT (systemctl) or signal:PIDFILE:SIGNAL (e.g. signal:/run/app.pid:HUP)",
    )
    after: int = _opt(
        1,
        doc="remediate after this many consecutive CRITICAL runs (1: when it turns CRITICAL)",
        ge=1,
    )
    verify_after: float = _opt(
        5.0,
        doc="re-run the check this long after the remediation; that result is the check's status",
        kind="duration",
        ge=0,
    )
    timeout: float = _opt(
        60.0, doc="stop the remediation (its whole process tree) after this", kind="duration", gt=0
    )
    max_attempts: int = _opt(
        3, doc="at most this many remediations within window; then one alert and no more", gt=0
    )
    window: float = _opt(
        3600.0,
        doc="the window max_attempts counts in (Monit: 3 restarts within 5 cycles)",
        kind="duration",
        gt=0,
    )


ADAPTIVE_SEASONS = ("none", "weekly")


@dataclass(frozen=True)
class AdaptiveSettings:
    """Thresholds learnt from a check's own history (reliactl.health.adaptive).

    WARNING above median + k MAD, CRITICAL above median + 2k MAD of the history in the
    window; never looser than the check's fixed warn/critical (the worse status wins)."""

    window: float = _opt(
        7 * 86400.0, doc="history the baseline is taken from", kind="duration", gt=0
    )
    k: float = _opt(3.0, doc="WARNING above median + k MAD, CRITICAL above median + 2k MAD", gt=0)
    min_points: int = _opt(
        100,
        doc="history (5-minute buckets; per hour of the week when seasonal) needed before"
        " the baseline applies; fewer: the fixed thresholds only, and the report says so",
        ge=1,
    )
    seasonal: str = _opt(
        "none",
        doc="weekly: a baseline per hour of the week (local time) instead of one",
        choices=ADAPTIVE_SEASONS,
    )
    min_spread: float = _opt(
        0.0,
        doc="the MAD is taken as at least this (and at least 1% of the median), so a"
        " perfectly steady history does not alert on the smallest rise",
        ge=0,
    )


@dataclass(frozen=True)
class ForecastSettings:
    """Warn before a growing value reaches its limit (``forecast: 24h`` sets the horizon)."""

    horizon: float = _opt(
        86400.0,
        doc="WARNING when the value is predicted to reach its limit within this",
        kind="duration",
        gt=0,
    )
    window: float = _opt(
        6 * 3600.0, doc="recent history the trend is fitted on (Theil-Sen)", kind="duration", gt=0
    )
    min_points: int = _opt(10, doc="history points needed before a forecast is made", ge=3)
    limit: float | None = _opt(
        None,
        doc="the value that counts as full (unset: 100 for a percent value, else the upper"
        " bound of critical)",
    )


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
    remediate: RemediateSpec | None = _opt(
        None, doc="what to run when the check fails, with its safeguards (see Healing in README)"
    )
    adaptive: AdaptiveSettings | None = _opt(
        None, doc="thresholds from the check's own history (see AdaptiveSettings)"
    )
    forecast: ForecastSettings | None = _opt(
        None,
        doc="warn before the value reaches its limit at the current rate: a horizon"
        " (forecast: 24h) or a mapping",
        kind="shorthand:horizon",
    )


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go when a check changes status (and again after ``cooldown``).

    Which keys each kind needs: ``reliactl.health.channels`` (and README's table)."""

    name: str = _opt(doc="sink name (for --test-alert NAME)")
    kind: str = _opt(
        doc="webhook (JSON POST), discord, slack, command, email (SMTP), pagerduty, opsgenie,"
        " telegram, teams or ntfy",
        choices=ALERT_KINDS,
    )
    url: str = _opt(
        "",
        doc="webhook, discord, slack, teams: the webhook URL (a secret); pagerduty, opsgenie,"
        " telegram, ntfy: the API's address (unset: the provider's public one)",
        secret=True,
    )
    command: list[str] = _opt(
        doc="command: program run with the alert as JSON on stdin, argv form", factory=list
    )
    routing_key: str = _opt(
        "", doc="pagerduty: the Events API v2 integration (routing) key", secret=True
    )
    api_key: str = _opt("", doc="opsgenie: the API integration's key (GenieKey)", secret=True)
    token: str = _opt(
        "", doc="telegram: the bot token; ntfy: an access token (tk_...)", secret=True
    )
    password: str = _opt("", doc="email: the SMTP password (with smtp_user)", secret=True)
    secret_file: str = _opt(
        "",
        doc="a file whose first line is the sink's secret (routing_key, api_key, token or"
        " password) when it is not set inline",
    )
    secret_env: str = _opt(
        "", doc="an environment variable holding the sink's secret when it is not set inline"
    )
    chat_id: str = _opt("", doc="telegram: the chat, group or @channel to post to")
    topic: str = _opt(
        "", doc="ntfy: the topic (anyone who knows it can read it: a secret)", secret=True
    )
    smtp_host: str = _opt("", doc="email: the SMTP server")
    smtp_port: int | None = _opt(
        None, doc="email: its port (unset: 587 starttls, 465 tls, 25 none)", gt=0, le=65535
    )
    smtp_security: str = _opt(
        "starttls",
        doc="email: starttls (upgrade, the default), tls (implicit TLS) or none (plain text)",
        choices=SMTP_SECURITY,
    )
    smtp_user: str = _opt(
        "", doc="email: log in as this user (password from password, secret_file or secret_env)"
    )
    mail_from: str = _opt("", doc="email: the From address")
    mail_to: list[str] = _opt(doc="email: the recipients", factory=list)
    tls_ca_file: str = _opt(
        "", doc="email: CA bundle that signed the SMTP server's certificate (empty: system CAs)"
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
    disk_forecast: ForecastSettings | None = _opt(
        None,
        doc="built-in disk checks also warn when full within this at the current rate"
        " (24h, or a mapping as a check's forecast)",
        kind="shorthand:horizon",
        example={"horizon": "24h", "window": "6h", "min_points": 10, "limit": 100},
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
                "remediate": {"action": "signal:/run/bot.pid:HUP"},
            },
            {"name": "sshd", "kind": "process", "process_name": "sshd"},
            {"name": "init", "kind": "process", "pid": 1},
            {
                "name": "data-disk",
                "kind": "disk",
                "path": "/srv/data",
                "warn": 70,
                "critical": 85,
                "remediate": {
                    "action": "cleanup:tmp",
                    "after": 1,
                    "verify_after": "10s",
                    "timeout": "5m",
                    "max_attempts": 3,
                    "window": "1h",
                },
                "forecast": {"horizon": "24h", "window": "6h", "min_points": 10, "limit": 98},
            },
            {
                "name": "web",
                "kind": "http",
                "url": "http://127.0.0.1:8080/healthz",
                "remediate": {"action": "restart:web.service", "after": 2},
            },
            {
                "name": "queue",
                "kind": "file_age",
                "path": "/var/lib/app/queue.stamp",
                "critical": "30m",
                "remediate": {
                    "command": "pkill -HUP -f queue-worker && touch /var/lib/app/queue.stamp",
                    "shell": True,
                    "max_attempts": 2,
                    "window": "30m",
                },
            },
            {
                "name": "api-latency",
                "kind": "http",
                "url": "https://example.com/api/ping",
                "critical": "5s",
                "adaptive": {
                    "window": "28d",
                    "k": 3,
                    "min_points": 12,
                    "seasonal": "weekly",
                    "min_spread": 0.05,
                },
            },
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
            {
                "name": "mail",
                "kind": "email",
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
                "smtp_security": "starttls",
                "smtp_user": "alerts@example.com",
                "password": "CHANGE-ME",
                "tls_ca_file": "/etc/ssl/certs/ca-certificates.crt",
                "mail_from": "alerts@example.com",
                "mail_to": ["oncall@example.com"],
            },
            {"name": "pagerduty", "kind": "pagerduty", "routing_key": "YOUR-INTEGRATION-KEY"},
            {
                "name": "pagerduty-eu",
                "kind": "pagerduty",
                "url": "https://events.eu.pagerduty.com/v2/enqueue",
                "secret_env": "PAGERDUTY_ROUTING_KEY",
            },
            {"name": "opsgenie", "kind": "opsgenie", "api_key": "YOUR-API-KEY"},
            {
                "name": "telegram",
                "kind": "telegram",
                "token": "123456:BOT-TOKEN",
                "chat_id": "-1001234567890",
            },
            {
                "name": "teams",
                "kind": "teams",
                "url": "https://example.webhook.office.com/workflows/ID",
            },
            {
                "name": "phone",
                "kind": "ntfy",
                "url": "https://ntfy.sh",
                "topic": "reliactl-CHANGE-ME",
                "secret_file": "/etc/reliactl/ntfy-token",
            },
        ],
    )


@dataclass(frozen=True)
class AlertsConfig:
    """How alerts to the health_monitor.alerts sinks are grouped, repeated and escalated."""

    group_wait: float = _opt(
        0.0,
        doc="a new problem waits this long (from when a run first saw it) so that checks"
        " failing together go out in one message; a later run sends it (0: at once)",
        kind="duration",
        ge=0,
        le=86400.0,
        example="30s",
    )
    repeat_every: float | None = _opt(
        None,
        doc="re-notify a problem this often while it lasts, unless acknowledged (unset: the"
        " sink's cooldown, else health_monitor.alert_cooldown)",
        kind="duration",
        gt=0,
        example="1h",
    )
    escalate_after: float | None = _opt(
        None,
        doc="a problem lasting this long, unacknowledged, also goes to the escalate_to sinks",
        kind="duration",
        gt=0,
        example="15m",
    )
    escalate_to: list[str] = _opt(
        doc="sink names (of health_monitor.alerts) that only hear of escalated problems",
        factory=list,
        example=["pager"],
    )
    flap_changes: int = _opt(
        0,
        doc="more status changes than this within flap_window mark a check FLAPPING (0: off)",
        ge=0,
        example=5,
    )
    flap_window: float = _opt(
        3600.0, doc="the window flap_changes counts in", kind="duration", gt=0
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
    max_retries: int = _opt(3, doc="retries after the first attempt", ge=0, le=MAX_RETRIES)
    base_delay: float = _opt(
        1.0,
        doc="first delay (0: every retry at once, whatever the strategy; max_delay then has"
        " no effect)",
        kind="duration",
        ge=0,
    )
    max_delay: float = _opt(30.0, doc="no delay is longer than this", kind="duration", ge=0)
    multiplier: float = _opt(2.0, doc="growth factor of exponential backoff", ge=1)
    strategy: str = _opt(
        "exponential",
        doc="exponential, linear or fixed",
        choices=STRATEGIES,
    )
    jitter: str = _opt(
        "full",
        doc="none, full, equal or decorrelated",
        choices=JITTERS,
    )
    max_elapsed: float | None = _opt(
        None,
        doc="give up after this much time in all (unset: no limit)",
        kind="duration",
        gt=0,
        example="10m",
    )


@dataclass(frozen=True)
class RunLimits:
    """Limits of a supervised job, declared once: the ``run`` section holds the defaults and a
    ``jobs`` entry its own (which win); ``run``'s flags win over both."""

    memory_max: int | None = _opt(
        None,
        doc="memory limit of the job's whole process tree (a cgroup v2 or v1 memory limit"
        " where available, and its RSS polled); exceeding it stops the job (exit 121)",
        kind="size",
        gt=0,
        example="2GiB",
    )
    cpu_time: float | None = _opt(
        None,
        doc="CPU time limit of each process of the job (RLIMIT_CPU; exit 121)",
        kind="duration",
        gt=0,
        example="10m",
    )
    nice: int | None = _opt(None, doc="nice value of the job, -20..19", ge=-20, le=19)
    io_class: str | None = _opt(
        None,
        doc="I/O class of the job (ioprio)",
        choices=("idle", "best-effort"),
    )
    max_output: int | None = _opt(
        None,
        doc="stop a job whose stdout + stderr exceed this (exit 121)",
        kind="size",
        gt=0,
        example="100MB",
    )


@dataclass(frozen=True)
class RunConfig(RunLimits):
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
    lock_scope: str = _opt(
        "host",
        doc="scope of `run --lock`: host (a lock file in lock_dir) or fleet (a lease in the"
        " Redis state.url, one holder across every host)",
        choices=("host", "fleet"),
    )
    lock_lease: float = _opt(
        30.0,
        doc="fleet locks: the lease, renewed every third of it; a holder that cannot renew it"
        " in time stops its job (lock_lost, exit 75)",
        kind="duration",
        ge=0.5,
        le=86400,
    )


@dataclass(frozen=True)
class CleanupRoot:
    path: str = _opt(doc="directory to clean (the root itself is kept)")
    name: str = _opt(
        "",
        doc="the name a check's remediate action cleanup:NAME uses (default: path's last part)",
    )
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
                "name": "tmp",
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
        " rediss:// (TLS) or unix:///path.sock (Redis 6+ or Valkey; no extra to install)",
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
    production: bool = _opt(
        False,
        doc="this store is production: failure injection (chaos) is refused unless chaos.force",
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
class JobSettings(RunLimits):
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
    lock_scope: str = _opt(
        "",
        doc="`run --job` holds a lock of this scope: host or fleet (empty: only with --lock,"
        " of scope run.lock_scope)",
        choices=("", "host", "fleet"),
    )
    alert: bool = _opt(False, doc="a run that finally fails alerts the health_monitor sinks")


@dataclass(frozen=True)
class ChaosConfig:
    # No example on purpose: a copied reference file must never switch failure injection on.
    rules: list[str] = _opt(
        doc="failure injection rules, e.g. 'breaker:openai,error=0.3,delay=200ms' or"
        " 'http:*,status=503,error=0.5' (see reliactl.chaos); empty: off",
        factory=list,
    )
    force: bool = _opt(False, doc="inject even when state.production is true")


@dataclass(frozen=True)
class Config:
    """The whole configuration; every section has defaults, so ``Config()`` is valid."""

    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    health_monitor: HealthMonitorConfig = field(default_factory=HealthMonitorConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    state: StateConfig = field(default_factory=StateConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    chaos: ChaosConfig = field(default_factory=ChaosConfig)
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
                "lock_scope": "fleet",
                "alert": True,
                "memory_max": "4GiB",
                "cpu_time": "1h",
                "nice": 10,
                "io_class": "idle",
                "max_output": "50MB",
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
    "alerts": "Alert grouping, repeats, escalation and flap detection (sinks:"
    " health_monitor.alerts; silences and acknowledgements: `reliactl silence`, `reliactl alert`).",
    "rate_limit": "Rate limits shared by processes through the state store.",
    "retry": "Default retry policy of `reliactl run --retry`, the HTTP client and alerts.",
    "run": "reliactl run: locks, logs and timeouts.",
    "cleanup": "reliactl cleanup: age-based removal under configured roots.",
    "state": "The state store shared by every reliactl process on this host (or fleet, on Redis).",
    "resources": "Library resources: temporary_file() and get_http_session() clients.",
    "chaos": "Failure injection for rehearsals (off unless rules are given; see `reliactl drill`).",
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
        # a record's own table (resolved once per field); typing.get_type_hints otherwise
        if _records.is_record(cls):
            hints = _records.hints(cls)
        else:
            import typing

            hints = typing.get_type_hints(cls)
        _hint_cache[cls] = hints
    return hints


def _strip_optional(annotation: Any) -> Any:
    if _records.is_union(annotation):
        args = [a for a in _records.type_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_container(annotation: Any) -> bool:
    """A non-optional section, list or mapping (where an empty YAML value means the default)."""
    if _is_optional(annotation):
        return False
    return _records.is_record(annotation) or _records.type_origin(annotation) in (list, dict)


def _is_optional(annotation: Any) -> bool:
    return _records.is_union(annotation) and type(None) in _records.type_args(annotation)


def _leaf_paths(obj: Any, path: KeyPath) -> list[KeyPath]:
    if _records.is_record(obj) and not isinstance(obj, type):
        out: list[KeyPath] = []
        for f in _records.fields(obj):
            out.extend(_leaf_paths(getattr(obj, f.name), (*path, f.name)))
        return out
    if isinstance(obj, dict) and obj:
        out = []
        for key, value in obj.items():
            out.extend(_leaf_paths(value, (*path, key)))
        return out
    if isinstance(obj, list) and obj and any(_records.is_record(v) for v in obj):
        out = []
        for index, value in enumerate(obj):
            out.extend(_leaf_paths(value, (*path, index)))
        return out
    return [path]
