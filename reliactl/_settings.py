"""Settings declared once and read by two layers: the configuration schema (which adds the
YAML loading, validation and docs) and the library (``reliactl.breaker.BreakerConfig``
inherits `BreakerSettings`). A ground-level module, so importing the breaker does not import
the configuration package."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import MISSING, dataclass, field
    from typing import Any
else:  # the same frozen dataclass, without the dataclasses module (see _records)
    from reliactl._records import MISSING, dataclass, field

__all__ = ["JITTERS", "MAX_RETRIES", "STRATEGIES", "BreakerSettings", "_opt", "max_retries_error"]

# The names of the backoff strategies and jitters (re-exported by reliactl.backoff, whose
# strategies and reliactl.retry's use them): here so that the configuration schema and `run`'s
# command line read them without importing the backoff module at every start.
STRATEGIES = ("exponential", "linear", "fixed")
JITTERS = ("none", "full", "equal", "decorrelated")
# The most retries a policy may ask for, the one cap of retry.max_retries and of every
# --max-retries (`run`, `http`, `retry plan`): 10,000 retries at a 30s max_delay is 3.5 days.
MAX_RETRIES = 10_000


def max_retries_error(value: int) -> str | None:
    """Why ``value`` cannot be a max_retries (one line), or None."""
    if 0 <= value <= MAX_RETRIES:
        return None
    return f"expected 0 to {MAX_RETRIES}, got {value}"


def _opt(
    default: Any = MISSING,
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
    """How one breaker behaves: the one declaration of the breaker's settings.

    ``circuit_breaker`` holds them as the defaults of every breaker, each entry of
    ``circuit_breaker.breakers`` overrides some of them (`BreakerOverrides`, generated from
    these fields), and the library's ``reliactl.breaker.BreakerConfig`` inherits them.
    """

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
