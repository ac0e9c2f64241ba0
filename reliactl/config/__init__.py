"""reliactl's configuration: typed, frozen sections, loaded as defaults < YAML < env < flags.

Every field carries its documentation and constraints in ``metadata``; the validator, the
environment overrides, ``config show`` and the generated ``config.example.yaml`` all read the
same schema, so a field added here is validated, overridable and documented at once.

Discovery (first found wins): ``--config``, ``$RELIACTL_CONFIG``, ``./reliactl.yaml``,
``$XDG_CONFIG_HOME/reliactl/config.yaml``, ``/etc/reliactl/config.yaml``. No file is fine.
"""

from __future__ import annotations

from reliactl._settings import BreakerSettings
from reliactl.config._loading import (
    LoadedConfig,
    config_candidates,
    config_untrusted,
    find_config_file,
    load,
    state_home,
)
from reliactl.config._schema import (
    ALERT_KINDS,
    CHECK_KINDS,
    DEFAULT_CONFIG_NAME,
    ENV_PREFIX,
    LEGACY_ENV,
    MAX_CONFIG_BYTES,
    SECTION_DOCS,
    SMTP_SECURITY,
    SYSTEM_CHECK_NAMES,
    AdaptiveSettings,
    AlertsConfig,
    AlertSink,
    BreakerOverrides,
    ChaosConfig,
    CheckSpec,
    CircuitBreakerConfig,
    CleanupConfig,
    CleanupRoot,
    Config,
    ForecastSettings,
    HealthMonitorConfig,
    JobPingSettings,
    JobSettings,
    KeyPath,
    RateLimitConfig,
    RemediateSpec,
    ResourcesConfig,
    RetryConfig,
    RunConfig,
    RunLimits,
    StateConfig,
)
from reliactl.config._validation import (
    cleanup_root_name,
    dotted_path,
    parse_rates,
    parse_remediation_action,
    sink_problems,
)
from reliactl.redact import REDACTED  # what config show prints for a secret (one owner)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from reliactl.config._views import example_yaml, is_secret_key, scalar_yaml, to_plain

__all__ = [
    "ALERT_KINDS",
    "CHECK_KINDS",
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "LEGACY_ENV",
    "MAX_CONFIG_BYTES",
    "REDACTED",
    "SECTION_DOCS",
    "SMTP_SECURITY",
    "SYSTEM_CHECK_NAMES",
    "AdaptiveSettings",
    "AlertSink",
    "AlertsConfig",
    "BreakerOverrides",
    "BreakerSettings",
    "ChaosConfig",
    "CheckSpec",
    "CircuitBreakerConfig",
    "CleanupConfig",
    "CleanupRoot",
    "Config",
    "ForecastSettings",
    "HealthMonitorConfig",
    "JobPingSettings",
    "JobSettings",
    "KeyPath",
    "LoadedConfig",
    "RateLimitConfig",
    "RemediateSpec",
    "ResourcesConfig",
    "RetryConfig",
    "RunConfig",
    "RunLimits",
    "StateConfig",
    "cleanup_root_name",
    "config_candidates",
    "config_untrusted",
    "dotted_path",
    "example_yaml",
    "find_config_file",
    "get_reliability_config",
    "is_secret_key",
    "load",
    "parse_rates",
    "parse_remediation_action",
    "scalar_yaml",
    "sink_problems",
    "state_home",
    "to_plain",
]


# The views (`config show`, the example YAML) import json and re (~3-5 ms): loaded at their
# first use, so a start that only loads the configuration (`cleanup`, `run`) never pays.
_VIEWS = frozenset({"example_yaml", "is_secret_key", "scalar_yaml", "to_plain"})


def __getattr__(name: str) -> object:
    if name in _VIEWS:
        from reliactl.config import _views

        value = getattr(_views, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reliactl.config' has no attribute {name!r}")


# --------------------------------------------------------------------------- the seed's API

_cached: Config | None = None


def get_reliability_config(*, reload: bool = False) -> Config:
    """The configuration of this process (defaults < file < environment), loaded once.

    Raises ConfigError when the file or environment is invalid.
    """
    global _cached
    if _cached is None or reload:
        _cached = load().config
        if _cached.chaos.rules:
            from reliactl.chaos import apply_config

            apply_config(_cached)
    return _cached
