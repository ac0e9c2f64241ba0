"""Failure injection for the library's guarded calls: rehearse what breakers, retries and the
HTTP clients do when a dependency fails, before it fails for real.

Off unless explicitly switched on, by one of:

- ``RELIACTL_CHAOS`` in the environment (read once, at the first guarded call),
- ``chaos.rules`` in the configuration (applied when the configuration is loaded),
- ``reliactl.chaos.enable(rules)`` / ``with reliactl.chaos.injected(rules):`` in code.

A rule is ``SCOPE,key=value,...``; rules are separated by ``;``. ``SCOPE`` is
``KIND:NAME`` with a glob for the name: ``breaker:openai``, ``http:*``, ``retry:fetch*``, ``*``.
Keys: ``error=RATE`` (0..1, the share of calls that fail; default 1 when no ``delay`` is
given, else 0), ``delay=DURATION`` (added before the call), ``exception=NAME`` (the error
raised: ConnectionError (default), TimeoutError, OSError, RuntimeError), ``status=CODE``
(HTTP clients only: an answer with that status instead of an exception). Example::

    RELIACTL_CHAOS='breaker:openai,error=0.3,delay=200ms; http:*,status=503,error=0.5'

When it is on, a WARNING names every rule (Python's last-resort handler prints it on stderr
when the program configured no logging). When the configuration marks its state store as
production (``state.production: true``), injection is refused unless forced
(``chaos.force: true`` or ``RELIACTL_CHAOS_FORCE=1``): a rehearsal must never open the real
breakers a fleet shares.

Names: a breaker's name; a retry policy's ``name`` (else the function's qualified name); an
HTTP client's breaker name, else its base URL's host.

When off, a guarded call pays one module-attribute test (``chaos.ACTIVE``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from reliactl.errors import ChaosError
else:  # NamedTuple classes without importing typing (~3 ms of a start, issue 21)
    from reliactl._records import NamedTuple


__all__ = [
    "ACTIVE",
    "ChaosError",
    "ChaosRule",
    "InjectedFault",
    "RunChaos",
    "disable",
    "enable",
    "injected",
    "parse_rules",
    "parse_run_spec",
    "refuse_on_production",
    "rules",
]


def __getattr__(name: str) -> Any:
    """``ChaosError`` (owned by reliactl.errors) without importing it on every import of retry."""
    if name == "ChaosError":
        from reliactl.errors import ChaosError

        return ChaosError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _log() -> Any:
    """The module's logger, imported on first use (``import reliactl.retry`` stays light)."""
    import logging

    return logging.getLogger("reliactl.chaos")


ENV = "RELIACTL_CHAOS"
FORCE_ENV = "RELIACTL_CHAOS_FORCE"
KINDS = ("breaker", "retry", "http")
EXCEPTIONS: dict[str, type[Exception]] = {
    "ConnectionError": ConnectionError,
    "TimeoutError": TimeoutError,
    "OSError": OSError,
    "RuntimeError": RuntimeError,
}

# True while rules are installed, or while RELIACTL_CHAOS is set and not yet read: the one
# thing a guarded call looks at when chaos is off.
ACTIVE = bool(os.environ.get(ENV, "").strip())
_RULES: tuple[ChaosRule, ...] = ()
_ENV_PENDING = ACTIVE
_lock = threading.Lock()


class InjectedFault:
    """Marks an exception raised by injection (``isinstance(exc, InjectedFault)``)."""


_INJECTED_TYPES: dict[str, type[Exception]] = {}


def _injected_type(name: str) -> type[Exception]:
    """``InjectedConnectionError`` etc.: the named exception, marked as injected."""
    made = _INJECTED_TYPES.get(name)
    if made is None:
        base = EXCEPTIONS[name]
        made = type(f"Injected{name}", (base, InjectedFault), {"__module__": __name__})
        _INJECTED_TYPES[name] = made
    return made


class ChaosRule(NamedTuple):
    """One rule: which calls (``kind``, ``name`` glob) and what happens to them."""

    kind: str  # breaker, retry, http or *
    name: str  # a glob
    error: float = 1.0
    delay: float = 0.0
    exception: str = "ConnectionError"
    status: int | None = None

    def matches(self, kind: str, name: str) -> bool:
        return self.kind in ("*", kind) and fnmatch.fnmatchcase(name, self.name)

    def describe(self) -> str:
        parts = [f"{self.kind}:{self.name}", f"error={self.error:g}"]
        if self.delay:
            parts.append(f"delay={self.delay:g}s")
        parts.append(f"status={self.status}" if self.status else f"exception={self.exception}")
        return ",".join(parts)


def parse_rules(text: str) -> tuple[ChaosRule, ...]:
    """Rules from ``RELIACTL_CHAOS``'s syntax; ChaosError names the bad part."""
    out = []
    for chunk in text.split(";"):
        if chunk.strip():
            out.append(_parse_rule(chunk.strip()))
    return tuple(out)


def _parse_rule(text: str) -> ChaosRule:  # noqa: C901 - one branch per key, flat
    from reliactl.durations import parse_duration
    from reliactl.errors import ChaosError

    scope, *pairs = [p.strip() for p in text.split(",")]
    kind, sep, name = scope.partition(":")
    if not sep:
        kind, name = (scope, "*") if scope in (*KINDS, "*") else ("", "")
    if kind not in (*KINDS, "*") or not name:
        raise ChaosError(
            f"chaos rule {text!r}: scope must be KIND:NAME with KIND one of"
            f" {', '.join(KINDS)} or *, e.g. breaker:openai"
        )
    values: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise ChaosError(f"chaos rule {text!r}: expected key=value, got {pair!r}")
        if key == "error":
            try:
                rate = float(value)
            except ValueError:
                rate = math.nan
            if not 0 <= rate <= 1:
                raise ChaosError(f"chaos rule {text!r}: error must be a rate in 0..1")
            values["error"] = rate
        elif key == "delay":
            try:
                values["delay"] = parse_duration(value)
            except ValueError as exc:
                raise ChaosError(f"chaos rule {text!r}: delay: {exc}") from None
        elif key == "exception":
            if value not in EXCEPTIONS:
                raise ChaosError(
                    f"chaos rule {text!r}: exception must be one of {', '.join(EXCEPTIONS)}"
                )
            values["exception"] = value
        elif key == "status":
            if not value.isdigit() or not 100 <= int(value) <= 599:
                raise ChaosError(f"chaos rule {text!r}: status must be an HTTP status 100..599")
            values["status"] = int(value)
        else:
            raise ChaosError(
                f"chaos rule {text!r}: unknown key {key!r} (error, delay, exception, status)"
            )
    if "error" not in values:
        values["error"] = 0.0 if values.get("delay") else 1.0
    if values.get("status") is not None and kind not in ("http", "*"):
        raise ChaosError(f"chaos rule {text!r}: status applies to http clients only")
    return ChaosRule(kind, name, **values)


def _production_refusal(force: bool, config: Any = None) -> str | None:
    """Why injection is refused here (a production-marked store), or None."""
    if force or os.environ.get(FORCE_ENV, "").strip() in ("1", "true", "yes"):
        return None
    if config is None:
        try:
            from reliactl._configsource import process_config

            config = process_config()
        except Exception:  # no configuration to ask (or an invalid one): none is marked
            return None
    state = getattr(config, "state", None)
    if getattr(state, "production", False):
        return (
            "the configured state store is marked production (state.production: true);"
            f" set chaos.force: true or {FORCE_ENV}=1 to inject anyway"
        )
    return None


def refuse_on_production(config: Any = None, *, force: bool | None = None) -> None:
    """Raise ChaosError ("chaos refused: ...") when ``config`` (default: the process
    configuration) marks its store production and injection is not forced: ``force``, else
    the configuration's ``chaos.force``, or RELIACTL_CHAOS_FORCE=1.

    The one owner of the refusal: ``enable`` (rules) and ``jobs.prepare_job`` (`run --chaos`)
    ask it, so no way of injecting can open a breaker a fleet shares.
    """
    if force is None:
        force = bool(getattr(getattr(config, "chaos", None), "force", False))
    refused = _production_refusal(force, config)
    if refused is not None:
        from reliactl.errors import ChaosError

        raise ChaosError(f"chaos refused: {refused}")


def enable(
    new_rules: Sequence[ChaosRule] | str,
    *,
    force: bool = False,
    source: str = "code",
    config: Any = None,
) -> None:
    """Install ``new_rules`` (or a rule string): from now on matching calls fail or slow down.

    Raises ChaosError when a rule is bad or the store is marked production (``config``'s, by
    default the process configuration's) unless ``force``.
    """
    global ACTIVE, _RULES, _ENV_PENDING
    parsed = parse_rules(new_rules) if isinstance(new_rules, str) else tuple(new_rules)
    if not parsed:
        disable()
        return
    refuse_on_production(config, force=force)
    with _lock:
        _RULES = parsed
        _ENV_PENDING = False
        ACTIVE = True
    _log().warning(
        "CHAOS ON (%s): injecting failures: %s", source, "; ".join(r.describe() for r in parsed)
    )


def disable() -> None:
    """Remove every rule (and forget RELIACTL_CHAOS until ``enable`` is called again)."""
    global ACTIVE, _RULES, _ENV_PENDING
    with _lock:
        _RULES = ()
        _ENV_PENDING = False
        ACTIVE = False


def rules() -> tuple[ChaosRule, ...]:
    """The rules in force (after reading RELIACTL_CHAOS if it is pending)."""
    _load_env()
    return _RULES


@contextlib.contextmanager
def injected(new_rules: Sequence[ChaosRule] | str, *, force: bool = False) -> Iterator[None]:
    """Inject within a ``with`` block (tests, drills); the previous rules come back after."""
    global ACTIVE, _RULES
    before, was_active = _RULES, ACTIVE
    enable(new_rules, force=force)
    try:
        yield
    finally:
        with _lock:
            _RULES, ACTIVE = before, bool(before) or (was_active and _ENV_PENDING)


def _load_env() -> None:
    """Read RELIACTL_CHAOS once; a bad or refused value is logged as an error and stays off."""
    if not _ENV_PENDING:
        return
    text = os.environ.get(ENV, "")
    from reliactl.errors import ChaosError

    try:
        enable(text, source=ENV)
    except ChaosError as exc:
        _log().error("%s ignored: %s", ENV, exc)
        disable()


def _rule_for(kind: str, name: str) -> ChaosRule | None:
    _load_env()
    for rule in _RULES:
        if rule.matches(kind, name):
            return rule
    return None


def _fault(rule: ChaosRule, kind: str, name: str) -> Exception:
    cls = _injected_type(rule.exception)
    return cls(f"chaos: injected {rule.exception} into {kind} {name!r}")


def _fails(rule: ChaosRule) -> bool:
    if rule.error >= 1 or rule.error <= 0:
        return rule.error >= 1
    import random  # only when injecting: not on the import path of every guarded module

    return random.random() < rule.error


def wrap(kind: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, or a stand-in that adds the matching rule's delay and raises its fault."""
    rule = _rule_for(kind, name)
    if rule is None:
        return fn
    import inspect  # only while injecting: `import reliactl.retry` stays light

    if inspect.iscoroutinefunction(fn):

        async def async_faulty(*args: Any, **kwargs: Any) -> Any:
            if rule.delay:
                import asyncio

                await asyncio.sleep(rule.delay)
            if _fails(rule):
                raise _fault(rule, kind, name)
            return await fn(*args, **kwargs)

        return async_faulty

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if rule.delay:
            time.sleep(rule.delay)
        if _fails(rule):
            raise _fault(rule, kind, name)
        return fn(*args, **kwargs)

    return faulty


def http_fault(name: str) -> tuple[float, Exception | int | None]:
    """For an HTTP attempt of client ``name``: (delay to add, then an exception to raise, a
    status to answer with, or None to send the request as usual)."""
    rule = _rule_for("http", name)
    if rule is None:
        return 0.0, None
    if not _fails(rule):
        return rule.delay, None
    if rule.status is not None:
        return rule.delay, rule.status
    return rule.delay, _fault(rule, "http", name)


def apply_config(config: Any) -> None:
    """Switch injection on when the configuration's ``chaos.rules`` say so (else nothing)."""
    section = getattr(config, "chaos", None)
    given = getattr(section, "rules", None)
    if given:
        force = bool(getattr(section, "force", False))
        enable(";".join(given), force=force, source="configuration", config=config)


class RunChaos(NamedTuple):
    """``run --chaos SPEC``: faults injected into a supervised job's attempts.

    ``fail`` is the share of attempts that fail without starting the command (exit ``exit``);
    ``delay`` is added before every attempt; ``kill_after`` kills the command's whole tree with
    SIGKILL that long after it started (a crash). Each injected outcome is marked in the run's
    history (``attempts[].injected``: ``fail`` or ``kill``).
    """

    fail: float = 0.0
    delay: float = 0.0
    exit: int = 1
    kill_after: float | None = None

    def describe(self) -> str:
        parts = [f"fail={self.fail:g}", f"exit={self.exit}"]
        if self.delay:
            parts.append(f"delay={self.delay:g}s")
        if self.kill_after is not None:
            parts.append(f"kill-after={self.kill_after:g}s")
        return ",".join(parts)

    def attempt_fails(self) -> bool:
        return _fails(ChaosRule("run", "*", error=self.fail))


def _kill_after(value: str) -> float:
    """``kill-after=`` of a ``--chaos`` spec: a positive duration of at most 7d (a timer thread
    waits for it; ``durations.parse_bounded``'s wording). 0 is refused, not read as `run
    --kill-after 0`'s "never": here the kill is the injected fault, so "no kill" is spelled
    by leaving the key out, and a 0 that meant "at once" must not silently inject nothing."""
    from reliactl.durations import MAX_INTERVAL, parse_bounded
    from reliactl.errors import DurationError

    try:
        return parse_bounded(value, most=MAX_INTERVAL)
    except DurationError as exc:
        hint = ""
        with contextlib.suppress(DurationError):
            if parse_bounded(value, most=MAX_INTERVAL, zero=True) == 0:
                hint = " (to inject no kill, leave kill-after out)"
        raise ValueError(f"kill-after: {exc}{hint}") from None


def parse_run_spec(text: str) -> RunChaos:
    """``fail=0.3,delay=2s,exit=75,kill-after=5s`` (any subset); ChaosError names the bad part."""
    from reliactl.durations import parse_duration
    from reliactl.errors import ChaosError

    values: dict[str, Any] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        key, eq, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise ChaosError(f"--chaos {text!r}: expected key=value, got {pair!r}")
        try:
            if key == "fail":
                rate = float(value)
                if not 0 <= rate <= 1:
                    raise ValueError("fail must be a rate in 0..1")
                values["fail"] = rate
            elif key == "delay":
                values["delay"] = parse_duration(value)
            elif key == "exit":
                if not value.isdigit() or not 1 <= int(value) <= 255:
                    raise ValueError("exit must be 1..255")
                values["exit"] = int(value)
            elif key in ("kill-after", "kill_after"):
                values["kill_after"] = _kill_after(value)
            else:
                raise ValueError(f"unknown key {key!r} (fail, delay, exit, kill-after)")
        except ValueError as exc:
            raise ChaosError(f"--chaos {text!r}: {exc}") from None
    if not values:
        raise ChaosError(f"--chaos {text!r}: give at least one of fail, delay, exit, kill-after")
    if "exit" in values and "fail" not in values:
        values["fail"] = 1.0
    return RunChaos(**values)
