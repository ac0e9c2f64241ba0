"""Circuit breakers: fail fast while a service is down, with state that can outlive a process.

A breaker is closed (calls pass), open (calls are rejected with ``CircuitOpenError`` until the
recovery timeout has passed) or half-open (at most ``half_open_max_calls`` trial calls run at
once; ``success_threshold`` successes close it, one failure re-opens it, for longer each time
when ``recovery_multiplier`` > 1). It opens after ``failure_threshold`` consecutive failures,
or, with ``failure_rate_threshold``, when that percent of the last ``sliding_window_size``
calls failed (once ``minimum_calls`` are in the window). A call slower than
``slow_call_threshold`` counts as a failure.

Only ``Exception`` subclasses count: KeyboardInterrupt, SystemExit and cancellation release
a trial slot and count as nothing; ``excluded_exceptions`` are ignored the same way; an
exception that ``is_failure`` declines (an HTTP 404, say) counts as a success.

Two backends share one state machine (the ``_admit`` / ``_record`` functions below):

- in memory (the default): a ``threading.Lock`` guards the transitions only, never the
  guarded call; times are ``clock.monotonic()``.
- persisted (``store=``): the state is a record of kind "breaker" keyed by the name in the
  state store, changed only through ``store.update`` (an atomic read-modify-write across
  processes), so counters stay exact under contention and several processes (five cron runs
  in a row) see one breaker. Times are wall-clock epoch seconds; an ``opened_at`` in the future
  written by this host (its clock was set back), or found on a store one host uses
  (SQLite), is clamped to now, so a breaker is open at most one open period after the jump
  is noticed, never forever; on a shared store (Redis) one written by another host (its
  clock is ahead of ours) is never clamped (that would shorten the open period for the
  whole fleet by the skew): this host counts the period from no later than its first sight
  of it plus one period, so at most two periods (``_open_since``). A half-open trial holds a
  reservation with a wall-clock expiry and its owner's pid and host: a reservation expires after
  ``trial_timeout``, or at once when its owner on this host is dead (kill -9).
  Constructing a breaker never writes: it never resets a persisted one.

Transitions are recorded (``events()``; ``store.add_event`` when persisted) and reported to
``on_state_change`` listeners; rejections to ``on_call_rejected`` listeners.

``admit()`` is the low-level gate (used by ``call()`` and by ``reliactl run``): it raises
``CircuitOpenError`` or returns an ``Admission`` whose ``success()`` / ``failure(reason)``
record the outcome (idempotent; a trial reservation is released either way).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import sys
import time
import types
from _thread import allocate_lock
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum

from reliactl import chaos as _chaos
from reliactl._procfs import pid_alive
from reliactl._records import field_names
from reliactl._records import fields as _records_fields
from reliactl._settings import BreakerSettings
from reliactl.errors import CircuitOpenError, ReliactlError, StateError
from reliactl.hostname import hostname
from reliactl.state.base import BreakerEvent

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import contextlib
    import logging
    import threading
    import weakref
    from collections.abc import Coroutine
    from dataclasses import dataclass, field
    from typing import Any, ParamSpec, Protocol, TypeGuard, TypeVar

    from reliactl.config import Config
    from reliactl.state.base import Record, RecordKind, StateStore

    R = TypeVar("R")
    P = ParamSpec("P")
else:
    # Without typing (~3 ms of the `breaker` commands' start, issue 21): the type checker
    # reads Clock as a typing.Protocol; at run time it is a plain base class.
    Protocol = object
    # Without dataclasses (with inspect, ast, dis and tokenize, ~15 ms of every `breaker`
    # start, issue 21): BreakerConfig and BreakerSnapshot are _records classes, as state.base's.
    from reliactl._records import dataclass, field

    # The records' string annotations name Any: at run time it stands for object (any value),
    # so typing.get_type_hints resolves them without this module importing typing.
    Any = object

__all__ = [
    "Admission",
    "BreakerConfig",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitBreakerManager",
    "CircuitState",
    "circuit_breaker",
    "circuit_manager",
    "create_http_circuit_config",
    "get_persistent_breaker",
    "is_http_failure",
    "known_breaker_names",
    "list_breakers",
]


_LOGGER: list[logging.Logger] = []


def _log() -> logging.Logger:
    """The "reliactl.breaker" logger; logging is imported at the first message (with
    traceback, string, textwrap and threading, ~7 ms of every `breaker` start, issue 21)."""
    if not _LOGGER:
        import logging

        _LOGGER.append(logging.getLogger("reliactl.breaker"))
    return _LOGGER[0]


def __getattr__(name: str) -> Any:
    """``reliactl.breaker.log`` (the module's logger, once a plain global) made on access."""
    if name == "log":
        return _log()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RECORD_KIND: RecordKind = "breaker"
DEFAULT_MAX_RECOVERY_TIMEOUT = 3600.0
MAX_REASON = 300


class CircuitState(str, Enum):
    """The three states of a breaker (the value is what JSON and the store hold)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


_CLOSED = CircuitState.CLOSED.value
_OPEN = CircuitState.OPEN.value
_HALF_OPEN = CircuitState.HALF_OPEN.value


class Clock(Protocol):
    """What a breaker needs of time; ``reliactl.testing.FakeClock`` is one."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class _SystemClock:
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM_CLOCK: Clock = _SystemClock()


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BreakerConfig(BreakerSettings):
    """How one breaker behaves: the `BreakerSettings` fields (declared once, the same the
    configuration file sets) plus what only Python can say. ``from_settings`` builds one from
    the YAML configuration."""

    excluded_exceptions: tuple[type[BaseException], ...] = ()
    is_failure: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("sliding_window_size", "minimum_calls"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        positive = ("recovery_timeout", "slow_call_threshold", "max_recovery_timeout")
        for name in (*positive, "trial_timeout"):
            value = getattr(self, name)
            if value is None and name != "recovery_timeout":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        rate = self.failure_rate_threshold
        if rate is not None and not (isinstance(rate, (int, float)) and 0 < rate <= 100):
            raise ValueError(f"failure_rate_threshold must be in (0, 100], got {rate!r}")
        mult = self.recovery_multiplier
        if not isinstance(mult, (int, float)) or not math.isfinite(mult) or mult < 1:
            raise ValueError(f"recovery_multiplier must be at least 1, got {mult!r}")

    @classmethod
    def from_settings(cls, settings: BreakerSettings, **overrides: Any) -> BreakerConfig:
        """The config of a breaker from ``config.circuit_breaker.settings_for(name)``."""
        values: dict[str, Any] = {}
        for name in _SETTINGS_FIELDS:
            value = getattr(settings, name)
            if value is not None:  # unset (an override): the default applies
                values[name] = value
        values.update(overrides)
        return cls(**values)

    def open_duration(self, reopens: int) -> float:
        """How long the breaker stays open after ``reopens`` failed trials in a row."""
        base = float(self.recovery_timeout)
        if reopens <= 0 or self.recovery_multiplier == 1:
            return base
        cap = max(base, self.max_recovery_timeout or DEFAULT_MAX_RECOVERY_TIMEOUT)
        # min() before the power: a long outage never overflows a float.
        return min(cap, base * self.recovery_multiplier ** min(reopens, 64))

    @property
    def trial_ttl(self) -> float:
        """How long a half-open trial reservation lives."""
        return float(self.trial_timeout or self.recovery_timeout)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly view (exception classes by name), as `breaker show` prints it."""
        out: dict[str, Any] = {}
        for name in field_names(self):  # a user's dataclass subclass: its fields too
            value = getattr(self, name)
            if name == "excluded_exceptions":
                value = [c.__name__ for c in value]
            elif name == "is_failure":
                value = None if value is None else getattr(value, "__name__", repr(value))
            out[name] = value
        return out


_SETTINGS_FIELDS = tuple(f.name for f in _records_fields(BreakerSettings))


def _default_settings(name: str) -> BreakerSettings:
    from reliactl.config import get_reliability_config

    return get_reliability_config().circuit_breaker.settings_for(name)


def is_http_failure(exc: BaseException) -> bool:
    """Whether an HTTP call's exception means the service is failing.

    True for connection errors, timeouts and HTTP 5xx (httpx, requests, aiohttp, urllib);
    False for 4xx (the service answered: the request was wrong) and for unrelated errors.
    """
    status = _status_code(exc)
    if status is not None:
        return status >= 500
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    asyncio_mod = sys.modules.get("asyncio")
    if asyncio_mod is not None and isinstance(exc, asyncio_mod.TimeoutError):
        return True
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & _HTTP_FAILURE_NAMES)


_HTTP_FAILURE_NAMES = {
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "ClientConnectionError",
    "ServerTimeoutError",
    "ServerDisconnectedError",
    "URLError",
    "TransportError",
    "RemoteProtocolError",
}


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    for holder, attr in (
        (response, "status_code"),
        (response, "status"),
        (exc, "status_code"),
        (exc, "status"),
        (exc, "code"),
    ):
        if holder is None:
            continue
        try:
            value = getattr(holder, attr, None)
        except Exception:  # a lazy property of some client library that raised
            value = None
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def create_http_circuit_config(name: str | None = None, **overrides: Any) -> BreakerConfig:
    """A breaker config for HTTP calls: counts connection errors, timeouts and 5xx, not 4xx.

    Thresholds come from the configuration (``circuit_breaker``, its ``breakers.NAME``
    overrides when ``name`` is given, and CB_FAILURE_THRESHOLD / CB_RECOVERY_TIMEOUT);
    keyword arguments override them.
    """
    settings = _default_settings(name or "")
    return BreakerConfig.from_settings(settings, **{"is_failure": is_http_failure, **overrides})


# --------------------------------------------------------------------------- the state machine


_HOST = hostname()  # RELIACTL_HOSTNAME overrides it (reliactl/hostname.py)
_token_counter = itertools.count(1)


def _new_token() -> str:
    return f"{_HOST}:{os.getpid()}:{next(_token_counter)}"


_FACTORY: Any = object()  # _Core's ``trials`` not given: a new dict, as default_factory=dict


class _Core:
    """A breaker's state. ``now`` values are in the backend's clock; ``*_wall`` are epoch.

    What ``@dataclass(slots=True)`` made of it (fields and defaults in this order, keyword or
    positional ``__init__``, ``trials`` a new dict by default, repr, value equality, no
    hash), written out: the dataclass decorator imported dataclasses and compiled its
    methods at every `breaker` start (issue 21; tests/test_breaker_startup.py compares the
    two). Fields:

    state, consecutive_failures, trial_successes, opened_at, opened_wall, open_for (None
    while open: tripped until closed by hand), reopens, forced, trials, window ("0" success,
    "1" failure; newest last), calls, successes, failures, rejections, slow_calls, ignored,
    since, last_failure, last_failure_at, last_failure_type, pending_failures, opened_by.

    ``last_failure_type`` is set by the in-memory failure path, which keeps the exception's
    class and its text (``str(exc)``, cut to MAX_REASON) and formats the reason only when it
    is read: ``last_failure`` is then that text; read the reason through ``reason()``.
    ``pending_failures`` (in memory only): failures counted by that path whose "1"s are not
    yet in ``window`` (``CircuitBreaker._settle`` appends them, under the lock, before the
    window is read).
    ``opened_by`` (persisted only): the host whose clock wrote ``opened_at`` (None: not
    known, a record of an older reliactl); only that clock may clamp it (``_open_since``).
    ``seen_ahead`` (persisted only, shared stores): host -> that host's clock when it first
    found this opening's ``opened_at`` ahead of its clock (another host's skew); it counts
    the open period from no later than that plus ``open_for`` (``_open_since``).
    """

    __slots__ = (  # noqa: RUF023 - the fields' order: __init__'s, repr's, equality's
        "state",
        "consecutive_failures",
        "trial_successes",
        "opened_at",
        "opened_wall",
        "open_for",
        "reopens",
        "forced",
        "trials",
        "window",
        "calls",
        "successes",
        "failures",
        "rejections",
        "slow_calls",
        "ignored",
        "since",
        "last_failure",
        "last_failure_at",
        "last_failure_type",
        "pending_failures",
        "opened_by",
        "seen_ahead",
    )

    def __init__(
        self,
        state: str = _CLOSED,
        consecutive_failures: int = 0,
        trial_successes: int = 0,
        opened_at: float | None = None,
        opened_wall: float | None = None,
        open_for: float | None = None,
        reopens: int = 0,
        forced: bool = False,
        trials: dict[str, dict[str, Any]] = _FACTORY,
        window: str = "",
        calls: int = 0,
        successes: int = 0,
        failures: int = 0,
        rejections: int = 0,
        slow_calls: int = 0,
        ignored: int = 0,
        since: float = 0.0,
        last_failure: str | None = None,
        last_failure_at: float | None = None,
        last_failure_type: type[BaseException] | None = None,
        pending_failures: int = 0,
        opened_by: str | None = None,
        seen_ahead: dict[str, float] = _FACTORY,
    ) -> None:
        self.state = state
        self.consecutive_failures = consecutive_failures
        self.trial_successes = trial_successes
        self.opened_at = opened_at
        self.opened_wall = opened_wall
        self.open_for = open_for
        self.reopens = reopens
        self.forced = forced
        self.trials = {} if trials is _FACTORY else trials
        self.window = window
        self.calls = calls
        self.successes = successes
        self.failures = failures
        self.rejections = rejections
        self.slow_calls = slow_calls
        self.ignored = ignored
        self.since = since
        self.last_failure = last_failure
        self.last_failure_at = last_failure_at
        self.last_failure_type = last_failure_type
        self.pending_failures = pending_failures
        self.opened_by = opened_by
        self.seen_ahead = {} if seen_ahead is _FACTORY else seen_ahead

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            names = self.__slots__
            return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass (eq, not frozen)

    def replace(self, **changes: Any) -> _Core:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return _Core(**values)

    _INT_FIELDS = (
        "consecutive_failures",
        "trial_successes",
        "reopens",
        "calls",
        "successes",
        "failures",
        "rejections",
        "slow_calls",
        "ignored",
    )

    @classmethod
    def from_record(cls, record: Record | None, wall: float) -> _Core:
        """Decode a stored record; anything unreadable starts a closed breaker afresh."""
        if not record:
            return cls(since=wall)
        try:
            core = cls(since=wall)
            state = record.get("state")
            core.state = state if state in (_CLOSED, _OPEN, _HALF_OPEN) else _CLOSED
            for name in cls._INT_FIELDS:
                value = record.get(name, 0)
                setattr(core, name, int(value) if isinstance(value, (int, float)) else 0)
            for name in ("opened_at", "open_for", "since", "last_failure_at"):
                value = record.get(name)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    setattr(core, name, float(value))
            core.opened_wall = core.opened_at
            core.forced = bool(record.get("forced", False))
            window = record.get("window", "")
            core.window = window if isinstance(window, str) else ""
            trials = record.get("trials")
            if isinstance(trials, dict):
                core.trials = {str(k): dict(v) for k, v in trials.items() if isinstance(v, Mapping)}
            failure = record.get("last_failure")
            core.last_failure = failure if isinstance(failure, str) else None
            opener = record.get("opened_by")
            core.opened_by = opener if isinstance(opener, str) else None
            seen = record.get("seen_ahead")
            if isinstance(seen, dict):
                core.seen_ahead = {
                    str(k): float(v)
                    for k, v in seen.items()
                    if isinstance(v, (int, float)) and math.isfinite(v)
                }
            if core.state == _OPEN and core.opened_at is None:
                core.opened_at = core.opened_wall = wall
            return core
        except (TypeError, ValueError, OverflowError) as exc:
            _log().warning("breaker record unreadable (%s); starting it closed", exc)
            return cls(since=wall)

    def reason(self) -> str | None:
        """The last failure's reason as `breaker show` prints it ("ValueError: down")."""
        kind = self.last_failure_type
        if kind is None:
            return self.last_failure
        text = self.last_failure
        name = kind.__name__
        return (f"{name}: {text}" if text else name)[:MAX_REASON]

    def to_record(self, config: dict[str, Any] | None, config_id: str | None = None) -> Record:
        record: Record = {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "trial_successes": self.trial_successes,
            "opened_at": self.opened_at,
            "open_for": self.open_for,
            "reopens": self.reopens,
            "forced": self.forced,
            "trials": self.trials,
            "window": self.window,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "rejections": self.rejections,
            "slow_calls": self.slow_calls,
            "ignored": self.ignored,
            "since": self.since,
            "last_failure": self.reason(),
            "last_failure_at": self.last_failure_at,
        }
        if self.opened_by is not None:
            record["opened_by"] = self.opened_by
        if self.seen_ahead:
            record["seen_ahead"] = self.seen_ahead
        if config is not None:
            record["config"] = config
        if config_id is not None:
            record["config_id"] = config_id
        return record


Transitions = list[tuple[str, str, str]]  # (from, to, reason)


def _move(core: _Core, to: str, reason: str, wall: float, out: Transitions) -> None:
    out.append((core.state, to, reason))
    core.state = to
    core.since = wall


def _open(
    core: _Core,
    cfg: BreakerConfig,
    now: float,
    wall: float,
    reason: str,
    out: Transitions,
    *,
    reopen: bool,
) -> None:
    core.reopens = core.reopens + 1 if reopen else 0
    core.open_for = cfg.open_duration(core.reopens)
    core.opened_at = now
    core.opened_wall = wall
    core.opened_by = _HOST
    core.seen_ahead = {}
    core.forced = False
    core.trials.clear()
    core.trial_successes = 0
    _move(core, _OPEN, reason, wall, out)


def _close(core: _Core, reason: str, wall: float, out: Transitions) -> None:
    core.consecutive_failures = 0
    core.trial_successes = 0
    core.window = ""
    core.pending_failures = 0
    core.trials.clear()
    core.reopens = 0
    core.opened_at = core.opened_wall = core.opened_by = None
    core.seen_ahead = {}
    core.open_for = None
    core.forced = False
    if core.state != _CLOSED:
        _move(core, _CLOSED, reason, wall, out)


def _expire_trials(core: _Core, now: float, ttl: float, check_pids: bool) -> None:
    for token, trial in list(core.trials.items()):
        expires = trial.get("expires")
        if not isinstance(expires, (int, float)) or not math.isfinite(expires):
            del core.trials[token]
            continue
        own_ttl = trial.get("ttl")
        if not isinstance(own_ttl, (int, float)) or not math.isfinite(own_ttl):
            own_ttl = ttl
        if expires > now + own_ttl:  # the clock was set back: count from now, never forever
            trial["expires"] = expires = now + own_ttl
        if expires <= now or (
            check_pids and trial.get("host") == _HOST and not pid_alive(trial.get("pid"))
        ):
            del core.trials[token]


def _is_shared(store: object) -> bool:
    """Whether ``store`` is shared by several hosts (``StateStore.shared``: Redis)."""
    return bool(getattr(store, "shared", False))


def _open_since(core: _Core, now: float, shared: bool, *, write: bool) -> float:
    """When this host counts an open breaker's period (``core.open_for``, not None) from,
    on its clock ``now``: admission (``write``: the record is written back) and snapshots
    (``breaker show``, read only) share this one rule.

    - not opened properly (no ``opened_at``): from now;
    - ``opened_at`` in the future, written by this clock (it was set back since), or on a
      store that is not shared (SQLite: one host, whatever its processes call themselves),
      or by a record of an older reliactl (no ``opened_by``): clamped to now and written, so
      a clock set back keeps it open at most one more period, never forever;
    - ``opened_at`` in the future written by another host of a shared store (its clock
      ahead of ours): never clamped (that would move the fleet's open time back by the
      skew); counted from no later than this host's first sight of it plus one period
      (``seen_ahead``, this host's own entry, written once), so a host far ahead keeps it
      open here at most two periods from then, never as long as its clock is off.
    """
    opened = core.opened_at
    if opened is None or (
        opened > now and (not shared or core.opened_by is None or core.opened_by == _HOST)
    ):
        if write:
            core.opened_at = now
        return now
    if opened <= now:
        return opened
    first = core.seen_ahead.get(_HOST)
    if first is None or first > now:  # first sight, or this clock went back since
        first = now
        if write:
            core.seen_ahead[_HOST] = now
    return min(opened, first + (core.open_for or 0.0))


def _admit(
    core: _Core,
    cfg: BreakerConfig,
    now: float,
    wall: float,
    ttl: float,
    persisted: bool,
    out: Transitions,
    *,
    shared: bool = False,
) -> tuple[bool, str | None, float]:
    """(admitted, trial token or None, retry_after) for one call (``shared``: the store is
    shared by several hosts, see ``_open_since``)."""
    if core.state == _CLOSED:
        return True, None, 0.0
    if core.state == _OPEN:
        if core.open_for is None and not core.forced:  # a record without its open time
            core.open_for = cfg.open_duration(core.reopens)
        if core.open_for is None:  # tripped by an operator until closed
            core.rejections += 1
            return False, None, float(cfg.recovery_timeout)
        remaining = core.open_for - (now - _open_since(core, now, shared, write=True))
        if remaining > 0:
            core.rejections += 1
            return False, None, remaining
        _move(
            core,
            _HALF_OPEN,
            f"open for {_fmt(core.open_for)}; admitting trial calls",
            wall,
            out,
        )
        core.trials.clear()
        core.trial_successes = 0
        core.forced = False
    _expire_trials(core, now, ttl, persisted)
    if len(core.trials) < cfg.half_open_max_calls:
        token = _new_token()
        core.trials[token] = {
            "expires": now + ttl,
            "ttl": ttl,
            "pid": os.getpid(),
            "host": _HOST,
        }
        return True, token, 0.0
    core.rejections += 1
    soonest = min(float(t["expires"]) for t in core.trials.values())
    return False, None, max(0.0, soonest - now)


def _record(
    core: _Core,
    cfg: BreakerConfig,
    now: float,
    wall: float,
    token: str | None,
    outcome: str,
    reason: str | None,
    slow: bool,
    out: Transitions,
) -> None:
    """Apply one call's outcome: "success", "failure" or "ignore"."""
    is_trial = token is not None and core.trials.pop(token, None) is not None
    if outcome == "ignore":
        core.ignored += 1
        return
    core.calls += 1
    if slow:
        core.slow_calls += 1
    failed = outcome == "failure"
    window = core.window + ("1" if failed else "0")
    if len(window) > cfg.sliding_window_size:
        window = window[-cfg.sliding_window_size :]
    core.window = window
    if not failed:
        core.successes += 1
        if core.state == _CLOSED:
            core.consecutive_failures = 0
            # resilience4j evaluates the rate after every recorded call: the call that fills
            # the window to minimum_calls may open it even when it succeeded itself.
            if cfg.failure_rate_threshold is not None:
                _check_rate(core, cfg, now, wall, core.reason() or "failure", out)
        elif core.state == _HALF_OPEN and is_trial:
            core.trial_successes += 1
            if core.trial_successes >= cfg.success_threshold:
                n = core.trial_successes
                _close(core, f"{n} trial call{'s' if n != 1 else ''} succeeded", wall, out)
        return
    core.failures += 1
    core.consecutive_failures += 1
    text = (reason or "failure")[:MAX_REASON]
    core.last_failure = text
    core.last_failure_type = None
    core.last_failure_at = wall
    if core.state == _CLOSED:
        if core.consecutive_failures >= cfg.failure_threshold:
            n = core.consecutive_failures
            _open(
                core,
                cfg,
                now,
                wall,
                f"{n} consecutive failure{'s' if n != 1 else ''} (last: {text})",
                out,
                reopen=False,
            )
        else:
            _check_rate(core, cfg, now, wall, text, out)
    elif core.state == _HALF_OPEN and is_trial:
        _open(core, cfg, now, wall, f"trial call failed: {text}", out, reopen=True)


def _check_rate(
    core: _Core, cfg: BreakerConfig, now: float, wall: float, text: str, out: Transitions
) -> None:
    """Open a closed breaker whose failure rate over a full enough window reached the limit."""
    if cfg.failure_rate_threshold is None:
        return
    window = core.window
    n = len(window)
    if n and n >= min(cfg.minimum_calls, cfg.sliding_window_size):
        rate = 100.0 * window.count("1") / n
        if rate >= cfg.failure_rate_threshold:
            _open(
                core,
                cfg,
                now,
                wall,
                f"failure rate {rate:.0f}% over the last {n} calls (last: {text})",
                out,
                reopen=False,
            )


def _fmt(seconds: float | None) -> str:
    from reliactl.durations import format_duration

    return "until closed" if seconds is None else format_duration(seconds)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state and counters at one moment (what `breaker list/show` print)."""

    name: str
    state: CircuitState
    consecutive_failures: int
    calls: int
    successes: int
    failures: int
    rejections: int
    slow_calls: int
    window_calls: int
    window_failures: int
    opened_at: float | None  # wall-clock epoch
    open_for: float | None
    retry_after: float | None  # seconds until a trial may run; None: closed, or until closed
    forced: bool
    since: float  # wall-clock epoch of the last transition
    trials_in_flight: int
    last_failure: str | None
    last_failure_at: float | None
    persistent: bool
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float | None:
        """Percent of failed calls in the sliding window (None before any call)."""
        if not self.window_calls:
            return None
        return 100.0 * self.window_failures / self.window_calls

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON and ``get_health_status()``."""
        return {
            "name": self.name,
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "rejections": self.rejections,
            "slow_calls": self.slow_calls,
            "failure_rate": self.failure_rate,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "opened_at": self.opened_at,
            "open_for": self.open_for,
            "retry_after": self.retry_after,
            "forced": self.forced,
            "since": self.since,
            "trials_in_flight": self.trials_in_flight,
            "last_failure": self.last_failure,
            "last_failure_at": self.last_failure_at,
            "persistent": self.persistent,
            "config": self.config,
        }


def _snapshot(
    name: str,
    core: _Core,
    now: float,
    persistent: bool,
    config: dict[str, Any],
    shared: bool = False,
) -> BreakerSnapshot:
    retry_after: float | None = None
    if core.state == _OPEN and core.open_for is not None:
        # What admission would answer now (one rule: _open_since), written nowhere.
        since = _open_since(core, now, shared, write=False)
        retry_after = max(0.0, core.open_for - (now - since))
    # What the next caller would see: expired reservations and those of dead owners are free.
    probe = _Core(trials={k: dict(v) for k, v in core.trials.items()})
    _expire_trials(probe, now, math.inf, persistent)
    trials = len(probe.trials)
    return BreakerSnapshot(
        name=name,
        state=CircuitState(core.state),
        consecutive_failures=core.consecutive_failures,
        calls=core.calls,
        successes=core.successes,
        failures=core.failures,
        rejections=core.rejections,
        slow_calls=core.slow_calls,
        window_calls=len(core.window),
        window_failures=core.window.count("1"),
        opened_at=core.opened_wall,
        open_for=core.open_for,
        retry_after=retry_after,
        forced=core.forced,
        since=core.since,
        trials_in_flight=trials if core.state == _HALF_OPEN else 0,
        last_failure=core.reason(),
        last_failure_at=core.last_failure_at,
        persistent=persistent,
        config=config,
    )


# --------------------------------------------------------------------------- the breaker

# A store that says it is safe for several threads at once (``thread_safe = True``: the
# SQLite store serialises on its own connection, the Redis store takes a pooled connection
# per operation, FleetStore is built of those) is used without a store-wide lock here, so
# threads on different stores or different breakers never take turns. Only the updates of one
# breaker record from one process take turns (per store location and name): on Redis they
# would otherwise only lose WATCH races to each other (measured: 200 threads in 8 processes
# on one breaker, 826 calls/s with turns, 115/s and a 10 s p99 without). Any other store may
# hold one connection that is not safe for concurrent transactions: all its operations are
# serialised, per store (never process-wide, as they once were).


class _Unguarded:
    """``contextlib.nullcontext()`` (without importing contextlib at every `breaker` start)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_UNGUARDED = _Unguarded()
# Made at the first store that is not thread-safe (weakref is not imported before).
_STORE_LOCKS: list[weakref.WeakKeyDictionary[Any, threading.Lock]] = []
_RECORD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_STORE_LOCKS_GUARD = allocate_lock()
_UNHASHABLE_STORES_LOCK = allocate_lock()  # a store that cannot be a weak key shares this one


def _store_guard(store: Any, updating: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """What a persisted breaker holds around one operation on ``store`` (``updating``: the
    name of the breaker whose record the operation updates)."""
    if getattr(store, "thread_safe", False) is True:
        if updating is None:
            return _UNGUARDED
        key = (str(store.location), updating)
        lock = _RECORD_LOCKS.get(key)
        if lock is None:
            with _STORE_LOCKS_GUARD:
                lock = _RECORD_LOCKS.setdefault(key, allocate_lock())
        return lock
    with _STORE_LOCKS_GUARD:
        if not _STORE_LOCKS:
            import weakref

            _STORE_LOCKS.append(weakref.WeakKeyDictionary())
        locks = _STORE_LOCKS[0]
        try:
            lock = locks.get(store)
            if lock is None:
                lock = locks[store] = allocate_lock()
        except TypeError:
            lock = _UNHASHABLE_STORES_LOCK
    return lock


StateListener = Callable[[BreakerEvent], None]
RejectListener = Callable[[CircuitOpenError], None]


class Admission:
    """One admitted call: report its outcome once with ``success()`` or ``failure(reason)``.

    A context manager too: leaving the block normally is a success, with an exception it is
    classified as ``call()`` does. Reporting twice is harmless (the first report counts).

    An outcome the state store could not take (a store another process holds locked past the
    caller's ``bounded_waits``, or one that broke) never turns the call into an error: it is
    logged ("breaker 'b': could not record a call's outcome: ...") and kept in ``lost``. A
    caller that reports it in its own words sets ``log_lost`` to False first (``run``: one
    ``warning:`` line among its own).
    """

    __slots__ = ("_breaker", "_done", "log_lost", "lost", "started", "token")

    def __init__(self, breaker: CircuitBreaker, token: str | None, started: float) -> None:
        self._breaker = breaker
        self.token = token
        self.started = started
        self._done = False
        self.log_lost = True  # False: the caller reports ``lost`` itself
        self.lost: StateError | None = None  # why the reported outcome was not recorded

    @property
    def trial(self) -> bool:
        """Whether this call is a half-open trial (it holds a reservation)."""
        return self.token is not None

    @property
    def done(self) -> bool:
        return self._done

    def success(self) -> None:
        """The call worked (a slow call still counts as a failure when configured)."""
        if not self._done:
            self._done = True
            self.lost = self._breaker._finish(
                self.token, self.started, "success", None, log=self.log_lost
            )

    def failure(self, reason: str = "failure") -> None:
        """The call failed because of the service; ``reason`` is kept for `breaker show`."""
        if not self._done:
            self._done = True
            self.lost = self._breaker._finish(
                self.token, self.started, "failure", reason, log=self.log_lost
            )

    def ignore(self) -> None:
        """Count the call as nothing (interrupted, cancelled); releases a trial slot."""
        if not self._done:
            self._done = True
            self.lost = self._breaker._finish(
                self.token, self.started, "ignore", None, log=self.log_lost
            )

    def exception(self, exc: BaseException) -> None:
        """Report the call as ending with ``exc``, classified by the breaker's config."""
        if not self._done:
            self._done = True
            self.lost = self._breaker._finish_exc(self.token, self.started, exc, self.log_lost)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.success()
        else:
            self.exception(exc)


class CircuitBreaker:
    """A circuit breaker, in memory (default) or persisted in a state store (``store=``)."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        store: StateStore | None = None,
        clock: Clock | None = None,
        on_state_change: StateListener | None = None,
        on_call_rejected: RejectListener | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("a circuit breaker needs a non-empty name")
        self.name = name
        self.config = config if config is not None else BreakerConfig()
        self.store = store
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self._mono = self.clock.monotonic
        self._wall = self.clock.time
        self._lock = allocate_lock()
        self._core = _Core(since=self.clock.time())
        self._events: deque[BreakerEvent] = deque(maxlen=100)
        self._state_listeners: list[StateListener] = []
        self._reject_listeners: list[RejectListener] = []
        self._config_view = self.config.describe()
        # Persisted: the store's optional fast paths (state/base.py, BreakerFastPath) and the
        # id of this config view, so a success that changes only counters may skip
        # rewriting the view (a record written by another config takes the full path).
        self._config_id = _config_id(self._config_view) if store is not None else ""
        self._peek_state = getattr(store, "breaker_state", None)
        self._count_success = getattr(store, "breaker_success", None)
        self._count_rejection = getattr(store, "breaker_rejection", None)
        self._count_failure = getattr(store, "breaker_failure", None)
        self._update_logged = getattr(store, "update_with_events", None)
        # A hint, never a decision: this process last saw the record open (a peek or a
        # counted rejection), so the next admission tries the rejection statement first (it
        # checks the record itself) and peeks only when that finds no open record.
        self._seen_open = False
        cfg = self.config
        rate = cfg.failure_rate_threshold
        # What the store's failure statement checks (BreakerFastPath.breaker_failure).
        self._failure_limits = (
            cfg.sliding_window_size,
            min(cfg.failure_threshold, _SQL_INT_MAX),
            None if rate is None else float(rate),
            min(cfg.minimum_calls, cfg.sliding_window_size),
        )
        # The in-memory hot path (closed, nothing failed lately, no slow-call timing).
        self._timed = self.config.slow_call_threshold is not None
        self._fast = store is None and not self._timed
        self._all_good = "0" * self.config.sliding_window_size
        # The in-memory failure path (``_finish_exc``): ``_plain``, every Exception is a
        # failure (nothing excluded, no is_failure); ``_inline``, a closed breaker's failure
        # below the threshold is counted there (no rate to check, nothing timed).
        cfg = self.config
        self._plain = not cfg.excluded_exceptions and cfg.is_failure is None
        self._inline = self._fast and cfg.failure_rate_threshold is None
        self._threshold = cfg.failure_threshold
        self._window_from = -cfg.sliding_window_size
        # ``_hot``: in memory, no slow-call timing, closed, and the whole sliding window
        # succeeded (so a success changes nothing but two counters). Set under ``_lock`` by
        # every transition (``_rehot``); read without it. A success that sees it True counts
        # itself with ``next(_hits)`` (one C call, atomic under the GIL) instead of taking the
        # lock; ``_fold`` adds the hits to ``calls``/``successes`` under the lock. Such a
        # success is linearised where it read ``_hot``: before any concurrent failure, which
        # it cannot change (a full window of successes plus one more is the same window).
        self._hot = False
        self._hits = itertools.count()
        self._hits_folded = 0
        if on_state_change is not None:
            self._state_listeners.append(on_state_change)
        if on_call_rejected is not None:
            self._reject_listeners.append(on_call_rejected)

    def __repr__(self) -> str:
        kind = "persisted" if self.store is not None else "in-memory"
        return f"<CircuitBreaker {self.name!r} {kind}>"

    @property
    def persistent(self) -> bool:
        return self.store is not None

    def _fold(self) -> _Core:
        """The in-memory core with the hot path's hits and the failure path's pending
        window entries counted in (hold ``_lock``)."""
        core = self._core
        if core.pending_failures:
            self._settle(core)
        hits = _count_value(self._hits)
        if hits != self._hits_folded:
            core.calls += hits - self._hits_folded
            core.successes += hits - self._hits_folded
            self._hits_folded = hits
        return core

    def _settle(self, core: _Core) -> None:
        """Append the failure path's pending "1"s to the window (hold ``_lock``)."""
        n = core.pending_failures
        core.pending_failures = 0
        core.window = (core.window + "1" * min(n, -self._window_from))[self._window_from :]

    def _rehot(self) -> None:
        """Whether a success may take the hot path now (hold ``_lock``)."""
        core = self._core
        self._hot = (
            self._fast
            and core.state == _CLOSED
            and not core.pending_failures
            and core.window == self._all_good
        )

    # ---- listeners

    def on_state_change(self, listener: StateListener) -> StateListener:
        """Call ``listener(event)`` after each transition this process makes (decorator too)."""
        self._state_listeners.append(listener)
        return listener

    def on_call_rejected(self, listener: RejectListener) -> RejectListener:
        """Call ``listener(error)`` for each call this breaker rejects (decorator too)."""
        self._reject_listeners.append(listener)
        return listener

    # ---- the gate

    def admit(self, *, trial_timeout: float | None = None) -> Admission:
        """Admit one call or raise CircuitOpenError; report the outcome on the Admission.

        While half-open this reserves one of the ``half_open_max_calls`` trial slots; the
        reservation expires after ``trial_timeout`` (default: the config's), so a call that
        never reports (its process was killed) does not wedge the breaker.
        """
        if trial_timeout is not None and not (math.isfinite(trial_timeout) and trial_timeout > 0):
            raise ValueError(f"trial_timeout must be a positive number, got {trial_timeout!r}")
        token = self._acquire(trial_timeout)
        return Admission(self, token, self._mono())

    def _acquire(self, trial_timeout: float | None) -> str | None:
        store = self.store
        if store is not None:
            count = self._count_rejection
            tried = False
            if self._seen_open and count is not None:
                # Open at the last look: the rejection statement alone, if still no
                # transition is due (its WHERE checks state, config and period).
                now = self._wall()
                found = count(self.name, self._config_id, now)
                if found is not None:
                    self._reject_open(found, now)
                self._seen_open = False
                tried = True
            peek = self._peek_state
            state = peek(self.name) if peek is not None else ""
            if state == "":  # no fast path, or a record it could not read: decode it here
                with _store_guard(store):
                    current = store.get(RECORD_KIND, self.name)
                state = None if current is None else current.get("state")
            if state is None or state == _CLOSED:
                return None
            if state == _OPEN and count is not None and not tried:
                # Still open, no transition due: the rejection is one statement.
                now = self._wall()
                found = count(self.name, self._config_id, now)
                if found is not None:
                    self._seen_open = True
                    self._reject_open(found, now)
        elif self._core.state == _CLOSED:
            return None
        cfg = self.config
        ttl = float(trial_timeout) if trial_timeout else cfg.trial_ttl
        out: Transitions = []
        logged = False
        if store is None:
            core = self._core
            with self._lock:
                ok, token, retry_after = _admit(
                    core, cfg, self._mono(), self.clock.time(), ttl, False, out
                )
                judged = core.state
                self._rehot()
        else:
            result: list[Any] = []
            shared = _is_shared(store)

            def update(record: Record | None) -> tuple[Record, Transitions, float]:
                wall = self.clock.time()
                core = _Core.from_record(record, wall)
                local: Transitions = []
                decided = _admit(core, cfg, wall, wall, ttl, True, local, shared=shared)
                result[:] = [(*decided, core.state)]
                return core.to_record(self._config_view, self._config_id), local, wall

            out, logged = self._store_write(update)
            ((ok, token, retry_after, judged),) = result
        if out:
            self._emit(out, logged)
        if not ok:
            self._reject(retry_after, judged)
        return token

    def would_admit(self, *, trial_timeout: float | None = None) -> tuple[bool, bool, float, str]:
        """What ``admit`` would decide, judged on the state read now and writing nothing:
        (admitted, as a trial, retry_after, the state it is judged in: "closed", "open" or
        "half_open", a trial due being half-open). Refused: open with no trial due yet, or
        half-open with every trial slot taken. For a caller whose admission could not write
        (the rejection's count, a trial's reservation: a store another process holds
        locked), so that the breaker is still enforced as read (``jobs._BreakerGate``).
        Raises what the read raises."""
        cfg = self.config
        ttl = float(trial_timeout) if trial_timeout else cfg.trial_ttl
        store = self.store
        if store is None:
            with self._lock:  # a copy: _admit changes what it is given
                core = self._core.replace(trials=dict(self._core.trials))
            now, wall = self._mono(), self.clock.time()
        else:
            with _store_guard(store):
                record = store.get(RECORD_KIND, self.name)
            wall = now = self.clock.time()
            core = _Core.from_record(record, wall)
        ok, token, retry_after = _admit(core, cfg, now, wall, ttl, store is not None, [])
        return ok, token is not None, retry_after, core.state

    def _reject_open(self, found: tuple[float, float | None], now: float) -> None:
        """Raise for a rejection counted by the store's statement (its opened_at, open_for)."""
        opened_at, open_for = found
        if open_for is None:  # tripped until closed
            self._reject(float(self.config.recovery_timeout))
        else:
            self._reject(max(0.0, open_for - (now - opened_at)))

    def _reject(self, retry_after: float, state: str = _OPEN) -> None:
        error = CircuitOpenError(self.name, retry_after, state)
        for listener in self._reject_listeners:
            try:
                listener(error)
            except Exception:
                _log().exception("on_call_rejected listener of breaker %r failed", self.name)
        raise error

    def _finish(
        self,
        token: str | None,
        started: float,
        outcome: str,
        reason: str | None,
        *,
        log: bool = True,
    ) -> StateError | None:
        """Record one call's outcome. A StateError is never raised (the call is over: losing
        its outcome must not turn a success into an error, nor hide the call's own
        exception): it is logged (unless not ``log``) and returned. Admission still raises."""
        cfg = self.config
        slow = False
        threshold = cfg.slow_call_threshold
        if threshold is not None and outcome != "ignore":
            duration = self._mono() - started
            if duration >= threshold:
                slow = True
                if outcome == "success":
                    outcome = "failure"
                    reason = f"slow call: {duration:.3g}s >= {_fmt(threshold)}"
        out: Transitions = []
        logged = False
        if self.store is None:
            core = self._core
            with self._lock:
                if core.pending_failures:
                    self._settle(core)
                _record(
                    core, cfg, self._mono(), self.clock.time(), token, outcome, reason, slow, out
                )
                self._rehot()
        else:
            count = self._count_success
            if count is not None and outcome == "success" and token is None:
                # A closed breaker's success that changes only counters: one statement.
                try:
                    if count(self.name, self._config_id, cfg.sliding_window_size):
                        return None
                except StateError as exc:
                    return self._lost(exc, log)
            count_failure = self._count_failure
            if count_failure is not None and outcome == "failure" and token is None:
                # A closed breaker's failure that opens nothing: one statement too.
                try:
                    if count_failure(
                        self.name,
                        self._config_id,
                        self._failure_limits,
                        slow,
                        (reason or "failure")[:MAX_REASON],
                        self._wall(),
                    ):
                        return None
                except StateError as exc:
                    return self._lost(exc, log)

            def update(record: Record | None) -> tuple[Record, Transitions, float]:
                wall = self.clock.time()
                core = _Core.from_record(record, wall)
                local: Transitions = []
                _record(core, cfg, wall, wall, token, outcome, reason, slow, local)
                return core.to_record(self._config_view, self._config_id), local, wall

            try:
                out, logged = self._store_write(update)
            except StateError as exc:
                return self._lost(exc, log)
        if out:
            self._emit(out, logged)
        return None

    def _lost(self, exc: StateError, log: bool) -> StateError:
        """A call's outcome the store did not take (see ``_finish``)."""
        if log:
            _log().warning("breaker %r: could not record a call's outcome: %s", self.name, exc)
        return exc

    def _finish_exc(
        self, token: str | None, started: float, exc: BaseException, log: bool = True
    ) -> StateError | None:
        if not (self._plain and isinstance(exc, Exception)):
            cfg = self.config
            if not isinstance(exc, Exception) or (
                cfg.excluded_exceptions and isinstance(exc, cfg.excluded_exceptions)
            ):
                return self._finish(token, started, "ignore", None, log=log)
            if cfg.is_failure is not None and not _safe_predicate(cfg.is_failure, exc):
                return self._finish(token, started, "success", None, log=log)
        # The reason is formatted only when read (_Core.reason): here just the text, once.
        try:
            text = str(exc)[:MAX_REASON]
        except Exception:  # its __str__ raised: count the failure, raise the caller's own
            text = "(exception text unavailable)"
        if self._inline and token is None:
            core = self._core
            lock = self._lock
            lock.acquire()
            try:
                failures = core.consecutive_failures + 1
                if failures < self._threshold and core.state == _CLOSED:
                    # A failure that opens nothing, counted here exactly as _record counts
                    # it (reason, wall time; its "1" joins the window at the next read):
                    # the in-memory failure path.
                    core.consecutive_failures = failures
                    core.calls += 1
                    core.failures += 1
                    core.pending_failures += 1
                    core.last_failure = text
                    core.last_failure_type = type(exc)
                    core.last_failure_at = self._wall()
                    self._hot = False
                    return None
            finally:
                lock.release()
        name = type(exc).__name__
        reason = (f"{name}: {text}" if text else name)[:MAX_REASON]
        return self._finish(token, started, "failure", reason, log=log)

    def _store_write(
        self, update: Callable[[Record | None], tuple[Record, Transitions, float]]
    ) -> tuple[Transitions, bool]:
        """This breaker's read-modify-write in its store: ``update`` turns the stored record
        into the new one, with its transitions and the wall time. Returns the transitions
        and whether the store wrote their events in the same transaction as the record (a
        store with ``update_with_events``: events then follow the state changes in order
        across processes); otherwise ``_emit`` adds them after the commit. Raises what the
        store raises."""
        store = self.store
        assert store is not None
        out: Transitions = []
        logged = self._update_logged

        def plain(record: Record | None) -> Record:
            new, out[:], _ = update(record)
            return new

        def with_events(record: Record | None) -> tuple[Record, list[BreakerEvent]]:
            new, out[:], wall = update(record)
            return new, [BreakerEvent(self.name, a, b, why, wall) for a, b, why in out]

        with _store_guard(store, self.name):
            if logged is None:
                store.update(RECORD_KIND, self.name, plain)
            else:
                logged(RECORD_KIND, self.name, with_events)
        return out, logged is not None

    def _emit(self, transitions: Transitions, logged: bool = False) -> None:
        """Tell the listeners (and the log) about ``transitions``; record their events in
        memory, or in the store unless it wrote them with the record (``logged``)."""
        wall = self.clock.time()
        for from_state, to_state, reason in transitions:
            event = BreakerEvent(self.name, from_state, to_state, reason, wall)
            if self.store is None:
                self._events.append(event)
            elif not logged:
                try:
                    with _store_guard(self.store):
                        self.store.add_event(event)
                except Exception as exc:  # the transition itself is already committed
                    _log().warning("breaker %r: could not record a transition: %s", self.name, exc)
            if "logging" in sys.modules:  # else no handler or level is set: INFO goes nowhere
                _log().info("breaker %r: %s -> %s (%s)", self.name, from_state, to_state, reason)
            for listener in self._state_listeners:
                try:
                    listener(event)
                except Exception:
                    _log().exception("on_state_change listener of breaker %r failed", self.name)

    # ---- calls

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` through the breaker.

        For a coroutine function this returns an awaitable (``await breaker.call(fn)``); the
        breaker is consulted when it is awaited. Raises CircuitOpenError when rejected.
        """
        code = getattr(fn, "__code__", None)
        flags = code.co_flags if code is not None else 0
        if flags & _CO_GENERATORS or code is None:
            _refuse_generator(fn)
        if (flags & _CO_COROUTINE) if code is not None else _iscoroutinefunction(fn):
            return self._run_async(fn, args, kwargs)
        return self._run_sync(fn, args, kwargs)

    def call_sync(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run a plain function through the breaker."""
        code = getattr(fn, "__code__", None)
        if code is None or code.co_flags & _CO_GENERATORS:
            _refuse_generator(fn)
        return self._run_sync(fn, args, kwargs)  # type: ignore[no-any-return]

    def _run_sync(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """The body of every synchronous guarded call (``fn`` already checked)."""
        if _chaos.ACTIVE:
            fn = _chaos.wrap("breaker", self.name, fn)
        if self._fast:
            # A closed in-memory breaker admits without a reservation, and with no slow-call
            # threshold the call's start time is never looked at.
            token = None if self._hot or self._core.state == _CLOSED else self._acquire(None)
            started = 0.0
        else:
            token = self._acquire(None)
            started = self._mono() if self._timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_exc(token, started, exc)
            raise
        kind = type(result)
        if kind not in _PLAIN_TYPES and (kind in _AWAITABLE_TYPES or _isawaitable(result)):
            # A plain function that returned a coroutine: the call is only done when awaited.
            return self._await(result, token, started)
        if self._hot and token is None:
            next(self._hits)
            return result
        self._finish(token, started, "success", None)
        return result

    async def _await(self, awaitable: Any, token: str | None, started: float) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            self._finish_exc(token, started, exc)
            raise
        if self._hot and token is None:
            next(self._hits)
            return result
        self._finish(token, started, "success", None)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        code = getattr(fn, "__code__", None)
        if code is None or code.co_flags & _CO_GENERATORS:
            _refuse_generator(fn)
        # The body of _run_async, repeated: one coroutine frame less on every awaited call.
        if _chaos.ACTIVE:
            fn = _chaos.wrap("breaker", self.name, fn)
        if self._fast:
            token = None if self._hot or self._core.state == _CLOSED else self._acquire(None)
            started = 0.0
        else:
            token = self._acquire(None)
            started = self._mono() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_exc(token, started, exc)
            raise
        if self._hot and token is None:
            next(self._hits)
            return result
        self._finish(token, started, "success", None)
        return result

    async def _run_async(self, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any) -> Any:
        """The body of every awaited guarded call (``fn`` already checked)."""
        if _chaos.ACTIVE:
            fn = _chaos.wrap("breaker", self.name, fn)
        if self._fast:
            token = None if self._hot or self._core.state == _CLOSED else self._acquire(None)
            started = 0.0
        else:
            token = self._acquire(None)
            started = self._mono() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_exc(token, started, exc)
            raise
        if self._hot and token is None:
            next(self._hits)
            return result
        self._finish(token, started, "success", None)
        return result

    def __call__(self, fn: Callable[P, R], /, *args: Any, **kwargs: Any) -> Callable[P, R]:
        """Decorate ``fn`` (pybreaker's form, ``@breaker``): each call goes through this
        breaker. To call a function once through it, use ``breaker.call(fn, *args)``."""
        if args or kwargs or not callable(fn):
            raise TypeError(
                f"breaker {self.name!r}: calling the breaker decorates a function "
                "(@breaker); to call one through it, use breaker.call(fn, *args, **kwargs)"
            )
        return _decorate(fn, {self.name: self}, self.name, lambda: self)

    # ---- inspection

    @property
    def state(self) -> CircuitState:
        """The state as last recorded (an open breaker past its timeout still says open)."""
        if self.store is None:
            return CircuitState(self._core.state)
        with _store_guard(self.store):
            record = self.store.get(RECORD_KIND, self.name)
        state = (record or {}).get("state", _CLOSED)
        return CircuitState(state if state in (_CLOSED, _OPEN, _HALF_OPEN) else _CLOSED)

    def snapshot(self) -> BreakerSnapshot:
        """State and counters now."""
        if self.store is None:
            with self._lock:
                core = self._fold()
                core = core.replace(trials=dict(core.trials))
            return _snapshot(self.name, core, self._mono(), False, self._config_view)
        with _store_guard(self.store):
            record = self.store.get(RECORD_KIND, self.name)
        wall = self.clock.time()
        config = (record or {}).get("config") or self._config_view
        core = _Core.from_record(record, wall)
        return _snapshot(self.name, core, wall, True, config, _is_shared(self.store))

    def events(self, limit: int = 20) -> list[BreakerEvent]:
        """The newest transitions first."""
        if self.store is None:
            return list(reversed(self._events))[:limit]
        with _store_guard(self.store):
            return self.store.events(self.name, limit=limit)

    def get_stats(self) -> dict[str, Any]:
        """The snapshot as plain data (the seed's name)."""
        return self.snapshot().to_dict()

    # ---- operator actions

    def _operate(self, action: Callable[[_Core, float, float, Transitions], None]) -> None:
        out: Transitions = []
        logged = False
        if self.store is None:
            with self._lock:
                action(self._fold(), self._mono(), self.clock.time(), out)
                self._rehot()
        else:

            def update(record: Record | None) -> tuple[Record, Transitions, float]:
                wall = self.clock.time()
                core = _Core.from_record(record, wall)
                local: Transitions = []
                action(core, wall, wall, local)
                return core.to_record(self._config_view, self._config_id), local, wall

            out, logged = self._store_write(update)
        if out:
            self._emit(out, logged)

    def trip(self, duration: float | None = None, reason: str | None = None) -> None:
        """Force the breaker open: for ``duration`` seconds, then half-open; None: until closed."""
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"trip duration must be a positive number of seconds: {duration!r}")

        def action(core: _Core, now: float, wall: float, out: Transitions) -> None:
            core.opened_at = now
            core.opened_wall = wall
            core.opened_by = _HOST
            core.seen_ahead = {}
            core.open_for = duration
            core.forced = True
            core.trials.clear()
            core.trial_successes = 0
            text = (
                reason
                or f"tripped by hand {'for ' + _fmt(duration) if duration else 'until closed'}"
            )
            _move(core, _OPEN, text, wall, out)

        self._operate(action)

    def close(self, reason: str = "closed by hand") -> None:
        """Close the breaker now (counters are kept; consecutive failures start again)."""

        def action(core: _Core, now: float, wall: float, out: Transitions) -> None:
            _close(core, reason, wall, out)

        self._operate(action)

    def reset(self, reason: str = "reset by hand") -> None:
        """Forget everything: closed, every counter zero."""

        def action(core: _Core, now: float, wall: float, out: Transitions) -> None:
            previous = core.state
            fresh = _Core(since=wall)
            for name in _Core.__slots__:
                setattr(core, name, getattr(fresh, name))
            out.append((previous, _CLOSED, reason))

        self._operate(action)


# inspect's flags, without importing inspect (with ast, dis and tokenize, ~7 ms of every
# `breaker` start, issue 21); tests/test_breaker_startup.py compares them.
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE
_CO_GENERATORS = 0x20 | 0x200  # inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


def _iscoroutinefunction(fn: object) -> TypeGuard[Callable[..., Coroutine[Any, Any, Any]]]:
    """``inspect.iscoroutinefunction`` (inspect imported when a breaker first needs it)."""
    import inspect

    return inspect.iscoroutinefunction(fn)


def _first_isawaitable(obj: object) -> bool:
    """``inspect.isawaitable``, which replaces this function as ``_isawaitable`` at its first
    call (a guarded call returned an object that is not a plain value)."""
    global _isawaitable
    import inspect

    _isawaitable = inspect.isawaitable
    return _isawaitable(obj)


_isawaitable: Callable[[object], bool] = _first_isawaitable
_AWAITABLE_TYPES: frozenset[type] = frozenset({types.CoroutineType})
_PLAIN_TYPES: frozenset[type] = frozenset(
    {type(None), int, float, str, bytes, bool, dict, list, tuple, set}
)


_SQL_INT_MAX = 2**62  # a failure threshold past it is never reached; SQLite binds int64


def _config_id(view: dict[str, Any]) -> str:
    """A stable id of a config view (the same in every process that has this config)."""
    import json
    import zlib

    text = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
    return f"{zlib.crc32(text.encode()):08x}-{len(text)}"


def _count_value(counter: itertools.count[int]) -> int:
    """The next value ``counter`` would give, without taking it (its repr is ``count(N)``)."""
    return int(repr(counter)[6:-1])


def _safe_predicate(predicate: Callable[[BaseException], bool], exc: BaseException) -> bool:
    try:
        return bool(predicate(exc))
    except Exception:
        _log().exception("is_failure predicate raised; counting the exception as a failure")
        return True


# --------------------------------------------------------------------------- store helpers


def get_persistent_breaker(
    name: str, config: Config, store: StateStore, *, clock: Clock | None = None
) -> CircuitBreaker:
    """A breaker persisted in ``store`` with the settings ``config`` gives ``name``."""
    settings = config.circuit_breaker.settings_for(name)
    return CircuitBreaker(name, BreakerConfig.from_settings(settings), store=store, clock=clock)


def is_known_breaker(store: StateStore, config: Config | None, name: str) -> bool:
    """Whether ``name`` is configured or has a record (reads that one record only)."""
    if config is not None and name in config.circuit_breaker.breakers:
        return True
    with _store_guard(store):
        return store.get(RECORD_KIND, name) is not None


def keep_on_prune(config: Config | None) -> Callable[[str, Record], bool]:
    """For ``StateStore.prune``: keep a breaker record that is configured or not closed.

    A closed breaker nobody used within retention is forgotten (it starts closed again on
    its next use); an open or half-open one, or one named in the configuration, never is.
    """
    configured = frozenset(config.circuit_breaker.breakers) if config is not None else frozenset()

    def keep(name: str, record: Record) -> bool:
        return name in configured or record.get("state") != _CLOSED

    return keep


def known_breaker_names(store: StateStore, config: Config | None = None) -> list[str]:
    """Breakers with a stored record, and those configured in ``circuit_breaker.breakers``."""
    with _store_guard(store):
        names = set(store.items(RECORD_KIND))
    if config is not None:
        names.update(config.circuit_breaker.breakers)
    return sorted(names)


def list_breakers(
    store: StateStore | None, config: Config | None = None, *, clock: Clock | None = None
) -> list[BreakerSnapshot]:
    """Snapshots of every known breaker (configured ones never used show as closed).

    Without a store (none exists yet), only the configured breakers, all closed.
    """
    records: dict[str, Record] = {}
    if store is not None:
        with _store_guard(store):
            records = store.items(RECORD_KIND)
    wall = (clock or SYSTEM_CLOCK).time()
    names = set(records)
    if config is not None:
        names.update(config.circuit_breaker.breakers)
    shared = _is_shared(store)
    return [
        _stored_snapshot(name, records.get(name), config, wall, shared) for name in sorted(names)
    ]


def breaker_snapshot(
    store: StateStore | None, config: Config | None, name: str, *, clock: Clock | None = None
) -> BreakerSnapshot | None:
    """One breaker's snapshot as ``list_breakers`` shows it, or None if it is unknown.

    Reads that breaker's record only: its cost does not grow with the number of breakers.
    """
    record: Record | None = None
    if store is not None:
        with _store_guard(store):
            record = store.get(RECORD_KIND, name)
    if record is None and (config is None or name not in config.circuit_breaker.breakers):
        return None
    wall = (clock or SYSTEM_CLOCK).time()
    return _stored_snapshot(name, record, config, wall, _is_shared(store))


def _stored_snapshot(
    name: str, record: Record | None, config: Config | None, wall: float, shared: bool
) -> BreakerSnapshot:
    view = (record or {}).get("config")
    if not isinstance(view, dict):
        view = (
            BreakerConfig.from_settings(config.circuit_breaker.settings_for(name)).describe()
            if config is not None
            else {}
        )
    return _snapshot(name, _Core.from_record(record, wall), wall, True, view, shared)


# --------------------------------------------------------------------------- the registry


class CircuitBreakerManager:
    """Named breakers of this process: ``circuit_manager.get_breaker("my_service")``."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = allocate_lock()
        self._store: StateStore | None = None
        self._opened_store: StateStore | None = None

    def use_store(self, store: StateStore | None) -> None:
        """Breakers created from now on without ``persistent=False`` are persisted here."""
        self._store = store

    def _default_store(self) -> StateStore:
        if self._store is not None:
            return self._store
        if self._opened_store is None:
            from reliactl.config import get_reliability_config
            from reliactl.state import open_state

            self._opened_store = open_state(get_reliability_config())
        return self._opened_store

    def get_breaker(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        persistent: bool | None = None,
        store: StateStore | None = None,
        clock: Clock | None = None,
    ) -> CircuitBreaker:
        """The breaker called ``name``, created on first use (later arguments are ignored).

        Without ``config`` the settings come from the configuration (``circuit_breaker`` and
        its ``breakers.NAME`` overrides). It is persisted when ``store`` is given, when
        ``persistent=True`` (in the configured state store), or when ``use_store`` set one.
        """
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is not None:
                return breaker
            if config is None:
                config = BreakerConfig.from_settings(_default_settings(name))
            if store is None and (persistent or (persistent is None and self._store is not None)):
                store = self._default_store()
            breaker = CircuitBreaker(name, config, store=store, clock=clock)
            self._breakers[name] = breaker
            return breaker

    def get(self, name: str) -> CircuitBreaker | None:
        return self._breakers.get(name)

    def breakers(self) -> dict[str, CircuitBreaker]:
        return dict(self._breakers)

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._breakers.pop(name, None) is not None

    def clear(self) -> None:
        """Forget every breaker of this process (persisted state stays in the store)."""
        with self._lock:
            self._breakers.clear()

    def reset_all(self) -> None:
        for breaker in self.breakers().values():
            breaker.reset()

    def shared_snapshots(self) -> list[BreakerSnapshot]:
        """Every breaker of the shared state store and of the configuration, as
        ``reliactl breaker list`` shows them: also those this process never touched.

        The store is the one ``use_store`` set, else the configured one if it exists (a
        process that only looks never creates a state database).
        """
        from reliactl.config import get_reliability_config

        config = get_reliability_config()
        store = self._store or self._opened_store
        if store is None and os.path.exists(config.state.path):
            store = self._default_store()
        return list_breakers(store, config)

    def get_health_status(self) -> dict[str, Any]:
        """Counts by state and every breaker's stats, as the seed's /health printed them.

        Lists this process's breakers and every one in the shared state store (a new process
        sees the breakers other processes opened). A store that cannot be read is reported
        as ``store_error``; this process's breakers are still listed.
        """
        found = {b.name: b.snapshot() for b in self.breakers().values()}
        store_error: str | None = None
        try:
            shared = self.shared_snapshots()
        except (ReliactlError, OSError) as exc:
            shared, store_error = [], str(exc)
        for snap in shared:
            found.setdefault(snap.name, snap)
        snapshots = [found[name] for name in sorted(found)]
        by_state = {s: [x.name for x in snapshots if x.state is s] for s in CircuitState}
        status: dict[str, Any] = {
            "total_breakers": len(snapshots),
            "open_breakers": len(by_state[CircuitState.OPEN]),
            "half_open_breakers": len(by_state[CircuitState.HALF_OPEN]),
            "closed_breakers": len(by_state[CircuitState.CLOSED]),
            "open": by_state[CircuitState.OPEN],
            "half_open": by_state[CircuitState.HALF_OPEN],
            "breakers": {s.name: s.to_dict() for s in snapshots},
        }
        if store_error is not None:
            status["store_error"] = store_error
        return status


circuit_manager = CircuitBreakerManager()


def circuit_breaker(
    name: str,
    config: BreakerConfig | None = None,
    *,
    persistent: bool | None = None,
    store: StateStore | None = None,
    manager: CircuitBreakerManager | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function or coroutine function so every call goes through breaker ``name``.

    The breaker comes from ``circuit_manager`` (created on the first call, not at import).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        registry = manager or circuit_manager

        def create() -> CircuitBreaker:
            return registry.get_breaker(name, config, persistent=persistent, store=store)

        return _decorate(fn, registry._breakers, name, create)

    return decorate


def _decorate(
    fn: Callable[P, R],
    breakers: Mapping[str, CircuitBreaker],
    name: str,
    create: Callable[[], CircuitBreaker],
) -> Callable[P, R]:
    """``fn`` with every call going through ``breakers[name]`` (``create()`` when missing,
    as after ``circuit_manager.clear()``); ``.breaker()`` on the wrapper returns it.

    The wrappers repeat ``_run_sync`` / ``_run_async`` for a closed in-memory breaker with no
    slow-call timing (admitted without a reservation; a success counted on the hot path when
    the window is all successes): one Python call less per call, success or failure.
    """
    _refuse_generator(fn)
    lookup = breakers.get

    def breaker() -> CircuitBreaker:
        found = lookup(name)
        return create() if found is None else found

    if _iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            b: Any = lookup(name) or create()  # Any: ``_hot`` may change during the call
            if b._fast and b._core.state == _CLOSED and not _chaos.ACTIVE:
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    b._finish_exc(None, 0.0, exc)
                    raise
                if b._hot:
                    next(b._hits)
                    return result
                b._finish(None, 0.0, "success", None)
                return result
            return await b._run_async(fn, args, kwargs)

        async_wrapper.breaker = breaker  # type: ignore[attr-defined]
        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        b: Any = lookup(name) or create()  # Any: ``_hot`` may change during the call
        if b._fast and b._core.state == _CLOSED and not _chaos.ACTIVE:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                b._finish_exc(None, 0.0, exc)
                raise
            kind = type(result)
            if kind in _PLAIN_TYPES or not (kind in _AWAITABLE_TYPES or _isawaitable(result)):
                if b._hot:
                    next(b._hits)
                    return result
                b._finish(None, 0.0, "success", None)
                return result
            return b._await(result, None, 0.0)  # type: ignore[no-any-return]
        return b._run_sync(fn, args, kwargs)  # type: ignore[no-any-return]

    wrapper.breaker = breaker  # type: ignore[attr-defined]
    return wrapper


def _refuse_generator(fn: Any) -> None:
    """A generator function cannot be guarded by a call: refuse it, as retry does."""
    from reliactl.retry import refuse_generator

    refuse_generator(
        fn,
        "a circuit breaker cannot guard",
        "guard the iteration instead: `with breaker.admit(): items = list(gen())`",
    )
