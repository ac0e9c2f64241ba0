"""Start-up of the `breaker` commands (issue 21 item 4): `reliactl.breaker` imports neither
dataclasses, inspect, logging nor typing, and what stands in for them behaves as before.

The writers (`breaker trip/close/reset`) were the slowest starts of the "other commands":
``@dataclass`` imported dataclasses (with inspect, ast, dis, tokenize) and compiled three
classes' methods, and the module's logger imported logging (with traceback, string,
textwrap, threading). BreakerConfig and BreakerSnapshot are now `reliactl._records` classes,
the private _Core a written-out slotted class, and the logger is made at the first message.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from importtime import cron_env, start_reliactl

import reliactl.breaker as breaker_module
from reliactl.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    _Core,
    is_http_failure,
)
from reliactl.config import load
from reliactl.state import open_state
from reliactl.testing import FakeClock

# What the module imported at start before (inspect with ast, dis and tokenize; logging with
# traceback, string and textwrap); other modules vary with Python's version.
HEAVY = ("dataclasses", "inspect", "logging", "typing")
BENCH_CONFIG = "circuit_breaker:\n  breakers:\n    bench:\n      failure_threshold: 3\n"


def _bench_site(tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = cron_env(tmp_path)
    config = tmp_path / "reliactl.yaml"
    config.write_text(BENCH_CONFIG)
    return env, config


def test_breaker_writers_start_without_dataclasses_logging_typing_inspect(tmp_path: Path) -> None:
    """`breaker trip`, `close` and `reset` (and `show`/`list`, which share the path), each a
    real start under ``-X importtime`` with a configuration naming the breaker, import none
    of dataclasses, inspect, logging or typing, exit 0, and do their work: the record in the
    SQLite store is open after trip (tripped by hand, until closed), closed after close,
    reset (every counter zero) after reset, and each transition is recorded as an event with
    the command's reason."""
    env, config = _bench_site(tmp_path)
    cfg = load(str(config), environ=env).config
    seed = breaker_module.get_persistent_breaker("bench", cfg, open_state(cfg))
    seed.admit().failure("exit 1")  # a counter that reset must clear (close keeps it)

    steps = [
        (["breaker", "trip", "bench"], "open", "is open until closed"),
        (["breaker", "show", "bench"], "open", "breaker bench: open (tripped by hand)"),
        (["breaker", "list"], "open", "bench"),
        (["breaker", "close", "bench"], "closed", "is closed (was open)"),
        (["breaker", "reset", "bench"], "closed", "reset breaker 'bench' (was closed)"),
    ]
    for argv, state, says in steps:
        done, modules = start_reliactl(["-c", str(config), *argv], env=env, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
        assert says in done.stdout + done.stderr, (argv, done.stdout, done.stderr[-500:])
        assert "reliactl.breaker" in modules, argv
        assert sorted(set(HEAVY) & set(modules)) == [], argv
        record = open_state(cfg).get("breaker", "bench")
        assert record is not None and record["state"] == state, (argv, record)
        if argv[1] == "trip":
            assert record["forced"] is True and record["open_for"] is None
            assert record["consecutive_failures"] == 1
        if argv[1] == "close":
            assert record["failures"] == 1 and record["consecutive_failures"] == 0
    assert record["failures"] == 0 and record["calls"] == 0  # reset: every counter zero
    events = open_state(cfg).events("bench", limit=10)
    assert [(e.from_state, e.to_state) for e in reversed(events)] == [
        ("closed", "open"),
        ("open", "closed"),
        ("closed", "closed"),
    ]
    reasons = [e.reason for e in reversed(events)]
    assert reasons == [
        "tripped by hand until closed (reliactl breaker trip)",
        "closed by hand (reliactl breaker close)",
        "reset by hand (reliactl breaker reset)",
    ]


def test_importing_the_breaker_module_loads_none_of_them() -> None:
    """``import reliactl.breaker`` in a fresh interpreter (what a library user's import and
    every `breaker` command pay) loads none of dataclasses, inspect, logging, typing;
    building, tripping and snapshotting an in-memory breaker loads none either
    (the INFO transition message goes nowhere while logging is not imported, as it did)."""
    code = (
        "import sys\n"
        "from reliactl.breaker import CircuitBreaker, BreakerConfig\n"
        "b = CircuitBreaker('x', BreakerConfig(failure_threshold=1))\n"
        "b.trip(); b.snapshot(); b.close(); b.reset()\n"
        "b.admit().failure('down'); assert b.snapshot().state.value == 'open'\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out


# ---- what stands in for dataclasses, inspect and the logger, against what it replaced


@dataclasses.dataclass(slots=True)
class _OldCore:
    """_Core as it was: the standard ``@dataclass(slots=True)``."""

    state: str = "closed"
    consecutive_failures: int = 0
    trial_successes: int = 0
    opened_at: float | None = None
    opened_wall: float | None = None
    open_for: float | None = None
    reopens: int = 0
    forced: bool = False
    trials: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    window: str = ""
    calls: int = 0
    successes: int = 0
    failures: int = 0
    rejections: int = 0
    slow_calls: int = 0
    ignored: int = 0
    since: float = 0.0
    last_failure: str | None = None
    last_failure_at: float | None = None
    last_failure_type: type[BaseException] | None = None
    pending_failures: int = 0
    opened_by: str | None = None  # added since (the host that wrote opened_at)
    seen_ahead: dict[str, float] = dataclasses.field(default_factory=dict)  # added since


_OldCore.__qualname__ = _OldCore.__name__ = "_Core"
_OldCore.__init__.__qualname__ = "_Core.__init__"  # its errors' wording names the class


def _error(make: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The class and text of the exception ``make(*args, **kwargs)`` raises (None, "" when
    none)."""
    try:
        make(*args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)
    return None, ""


def _sample(name: str, index: int) -> Any:
    """A non-default value for a _Core field, by its default's kind."""
    default = getattr(_OldCore(), name)
    if name == "trials":
        return {f"t{index}": {"expires": float(index)}}
    if name == "seen_ahead":
        return {f"h{index}": float(index)}
    if name == "last_failure_type":
        return ValueError
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return f"v{index}"
    return index + 0.5 if default is None or isinstance(default, float) else index + 1


def test_core_is_the_slotted_dataclass_it_replaced() -> None:
    """_Core has the old dataclass's fields in order with the same defaults (slots, no
    __dict__), ``trials`` a fresh dict per instance, and for every field set alone (by
    keyword and by position) and all at once: the same values, repr and equality; no hash;
    the same TypeErrors for an unknown or doubled argument or too many; ``replace`` is
    ``dataclasses.replace``."""
    names = [f.name for f in dataclasses.fields(_OldCore)]
    assert list(_Core.__slots__) == names
    assert not hasattr(_Core(), "__dict__")
    assert repr(_Core()) == repr(_OldCore()) and _Core().trials is not _Core().trials
    for index, name in enumerate(names):
        value = _sample(name, index)
        ours, theirs = _Core(**{name: value}), _OldCore(**{name: value})
        assert repr(ours) == repr(theirs)
        assert [getattr(ours, n) for n in names] == [getattr(theirs, n) for n in names]
        assert ours == _Core(**{name: value}) and ours != _Core(), name
        positional = [getattr(_OldCore(), n) for n in names[:index]] + [value]
        assert repr(_Core(*positional)) == repr(_OldCore(*positional)), name
    everything = {name: _sample(name, i) for i, name in enumerate(names)}
    ours, theirs = _Core(**everything), _OldCore(**everything)
    assert repr(ours) == repr(theirs) and ours != theirs  # another class: not equal, as theirs
    assert (ours == 1) is False and ours.__eq__(1) is NotImplemented
    assert _Core.__hash__ is None and _OldCore.__hash__ is None
    copied = ours.replace(trials={})
    assert repr(copied) == repr(dataclasses.replace(theirs, trials={}))
    assert ours.trials != {} and copied.window == ours.window
    for bad in ({"nope": 1}, {"stat": 1}):
        assert _error(_Core, **bad) == _error(_OldCore, **bad) != (None, "")
    for args in (("open",), tuple(range(22))):
        assert _error(_Core, *args, state="x") == _error(_OldCore, *args, state="x") != (None, "")


def _old_frozen(cls: type) -> type:
    """``cls`` rebuilt as the standard frozen dataclass it was (same fields, defaults,
    methods of its own), under the same name."""
    twin = dataclasses.make_dataclass(
        cls.__name__,
        [(f.name, f.type, f) for f in dataclasses.fields(cls)],
        frozen=True,
        namespace={
            k: v
            for k, v in vars(cls).items()
            if k in ("__post_init__", "failure_rate", "to_dict", "describe", "open_duration")
        },
    )
    twin.__qualname__ = cls.__qualname__
    return twin


CONFIGS: list[dict[str, Any]] = [
    {},
    {"failure_threshold": 3, "recovery_timeout": 7.5},
    {"failure_rate_threshold": 50, "sliding_window_size": 4, "minimum_calls": 2},
    {"excluded_exceptions": (KeyError, LookupError), "is_failure": is_http_failure},
    {"slow_call_threshold": 0.5, "recovery_multiplier": 2.0, "max_recovery_timeout": 60},
    {"half_open_max_calls": 2, "success_threshold": 2, "trial_timeout": 9},
]
BAD_CONFIGS: list[dict[str, Any]] = [
    {"failure_threshold": 0},
    {"recovery_timeout": math.nan},
    {"failure_rate_threshold": 101},
    {"recovery_multiplier": 0.5},
    {"minimum_calls": True},
]


def test_breaker_config_and_snapshot_are_the_frozen_dataclasses_they_replaced() -> None:
    """BreakerConfig and BreakerSnapshot, now `_records` classes, against their standard
    frozen dataclass twins: the same fields, defaults, signature, repr, equality, hash,
    asdict, describe()/to_dict(), validation errors, FrozenInstanceError, pickle state; the
    same module and name; ``dataclasses.fields``/``replace``/``is_dataclass`` work."""
    old_config = _old_frozen(BreakerConfig)
    for kwargs in CONFIGS:
        ours, theirs = BreakerConfig(**kwargs), old_config(**kwargs)
        assert repr(ours) == repr(theirs)
        assert hash(ours) == hash(theirs)
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
        assert ours.describe() == theirs.describe()
        assert ours == BreakerConfig(**kwargs) and ours != theirs
        assert ours.open_duration(3) == theirs.open_duration(3)
        assert dataclasses.replace(ours, failure_threshold=9) == BreakerConfig(
            **{**kwargs, "failure_threshold": 9}
        )
        reduced, expected = ours.__reduce_ex__(2), theirs.__reduce_ex__(2)
        assert reduced[1][1:] == expected[1][1:] and reduced[2:] == expected[2:]
        assert pickle.loads(pickle.dumps(ours)) == ours
        with pytest.raises(dataclasses.FrozenInstanceError):
            ours.failure_threshold = 2  # type: ignore[misc]
    for kwargs in BAD_CONFIGS:
        assert _error(BreakerConfig, **kwargs) == _error(old_config, **kwargs) != (None, "")
    assert str(inspect.signature(BreakerConfig)) == str(inspect.signature(old_config))

    old_snapshot = _old_frozen(BreakerSnapshot)
    b = CircuitBreaker("api", BreakerConfig(failure_threshold=1), clock=FakeClock())
    for step in (lambda: None, lambda: b.admit().failure("down"), b.close):
        step()
        ours_snap = b.snapshot()
        values = {f.name: getattr(ours_snap, f.name) for f in dataclasses.fields(ours_snap)}
        theirs_snap = old_snapshot(**values)
        assert repr(ours_snap) == repr(theirs_snap)
        assert ours_snap.to_dict() == theirs_snap.to_dict()
        assert ours_snap.failure_rate == theirs_snap.failure_rate
        assert dataclasses.asdict(ours_snap) == dataclasses.asdict(theirs_snap)
        assert ours_snap == BreakerSnapshot(**values)
        with pytest.raises(TypeError):
            hash(ours_snap)  # a dict field: unhashable, as theirs
        with pytest.raises(TypeError):
            hash(theirs_snap)
    assert str(inspect.signature(BreakerSnapshot)) == str(inspect.signature(old_snapshot))
    assert BreakerSnapshot("n", CircuitState.OPEN, *[0] * 17).config == {}
    for cls in (BreakerConfig, BreakerSnapshot):
        assert cls.__module__ == "reliactl.breaker" and dataclasses.is_dataclass(cls)
        assert cls.__qualname__ == cls.__name__


# Pickles written by the old classes (the standard frozen dataclasses of de5519d), protocol 2:
# BreakerConfig(failure_threshold=3, recovery_timeout=7.5, excluded_exceptions=(KeyError,),
# is_failure=is_http_failure) and a BreakerSnapshot of an open breaker.
OLD_CONFIG_PICKLE = bytes.fromhex(
    "80026372656c696163746c2e627265616b65720a427265616b6572436f6e6669670a7100298171017d71"
    "022858110000006661696c7572655f7468726573686f6c6471034b0358100000007265636f766572795f"
    "74696d656f7574710447401e000000000000581300000068616c665f6f70656e5f6d61785f63616c6c73"
    "71054b015811000000737563636573735f7468726573686f6c6471064b0158160000006661696c757265"
    "5f726174655f7468726573686f6c6471074e5813000000736c6964696e675f77696e646f775f73697a65"
    "71084b14580d0000006d696e696d756d5f63616c6c7371094b0a5813000000736c6f775f63616c6c5f74"
    "68726573686f6c64710a4e58130000007265636f766572795f6d756c7469706c696572710b473ff00000"
    "0000000058140000006d61785f7265636f766572795f74696d656f7574710c4e580d000000747269616c"
    "5f74696d656f7574710d4e58130000006578636c756465645f657863657074696f6e73710e6365786365"
    "7074696f6e730a4b65794572726f720a710f857110580a00000069735f6661696c75726571116372656c"
    "696163746c2e627265616b65720a69735f687474705f6661696c7572650a711275622e"
)
OLD_SNAPSHOT_PICKLE = bytes.fromhex(
    "80026372656c696163746c2e627265616b65720a427265616b6572536e617073686f740a710029817101"
    "7d71022858040000006e616d657103580300000061706971045805000000737461746571056372656c69"
    "6163746c2e627265616b65720a4369726375697453746174650a710658040000006f70656e7107857108"
    "5271095814000000636f6e73656375746976655f6661696c75726573710a4b03580500000063616c6c73"
    "710b4b0a5809000000737563636573736573710c4b0758080000006661696c75726573710d4b03580a00"
    "000072656a656374696f6e73710e4b02580a000000736c6f775f63616c6c73710f4b01580c0000007769"
    "6e646f775f63616c6c7371104b05580f00000077696e646f775f6661696c7572657371114b0358090000"
    "006f70656e65645f6174711247408f40000000000058080000006f70656e5f666f72711347403e000000"
    "000000580b00000072657472795f616674657271144740290000000000005806000000666f7263656471"
    "1589580500000073696e6365711647408f4000000000005810000000747269616c735f696e5f666c6967"
    "687471174b00580c0000006c6173745f6661696c7572657118581000000056616c75654572726f723a20"
    "646f776e7119580f0000006c6173745f6661696c7572655f6174711a47408f380000000000580a000000"
    "70657273697374656e74711b885806000000636f6e666967711c7d711d58110000006661696c7572655f"
    "7468726573686f6c64711e4b037375622e"
)


def test_pickles_of_the_old_classes_load_and_new_pickles_are_byte_identical() -> None:
    """A BreakerConfig and a BreakerSnapshot pickled by the old standard dataclasses load
    into equal objects, and pickling the new ones gives the very same bytes."""
    config = BreakerConfig(
        failure_threshold=3,
        recovery_timeout=7.5,
        excluded_exceptions=(KeyError,),
        is_failure=is_http_failure,
    )
    snapshot = BreakerSnapshot(
        "api", CircuitState.OPEN, 3, 10, 7, 3, 2, 1, 5, 3, 1000.0, 30.0, 12.5, False,
        1000.0, 0, "ValueError: down", 999.0, True, {"failure_threshold": 3},
    )  # fmt: skip
    old_config, old_snapshot = OLD_CONFIG_PICKLE, OLD_SNAPSHOT_PICKLE
    assert pickle.loads(old_config) == config
    assert pickle.loads(old_snapshot) == snapshot
    assert pickle.dumps(config, protocol=2) == old_config
    assert pickle.dumps(snapshot, protocol=2) == old_snapshot


def test_describe_keeps_the_fields_of_a_users_dataclass_subclass() -> None:
    """``describe()`` (what `breaker show` prints and the store keeps) lists a library
    user's standard dataclass subclass's own fields after BreakerConfig's, as before."""

    @dataclasses.dataclass(frozen=True)
    class Tagged(BreakerConfig):
        team: str = "db"

    view = Tagged(failure_threshold=2).describe()
    assert list(view)[-3:] == ["excluded_exceptions", "is_failure", "team"]
    assert view["team"] == "db" and view["failure_threshold"] == 2
    assert CircuitBreaker("t", Tagged()).snapshot().config["team"] == "db"


def test_inspect_stand_ins_and_the_lazy_logger_are_the_originals() -> None:
    """The code flags equal inspect's; ``_iscoroutinefunction`` answers as
    inspect.iscoroutinefunction; ``_isawaitable`` becomes inspect.isawaitable at its first
    call; ``reliactl.breaker.log`` is the "reliactl.breaker" logger, and an INFO transition
    is logged there once logging is in use; ``_UNGUARDED`` is a null context manager."""
    assert breaker_module._CO_COROUTINE == inspect.CO_COROUTINE
    assert breaker_module._CO_GENERATORS == inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR

    async def coro() -> None:
        pass

    def plain() -> None:
        pass

    candidates: list[Callable[..., Any]] = [coro, plain, print, len, object]
    for fn in candidates:
        assert breaker_module._iscoroutinefunction(fn) == inspect.iscoroutinefunction(fn)
    made = coro()
    assert breaker_module._isawaitable(made) and not breaker_module._isawaitable(1)
    made.close()
    assert breaker_module._isawaitable is inspect.isawaitable
    assert breaker_module.log is logging.getLogger("reliactl.breaker")
    with pytest.raises(AttributeError):
        breaker_module.nothing_here  # noqa: B018
    with breaker_module._UNGUARDED as entered:
        assert entered is None
    with pytest.raises(KeyError), breaker_module._UNGUARDED:
        raise KeyError("not swallowed")


def test_an_info_transition_is_logged_when_logging_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With logging in use, a transition is logged at INFO on "reliactl.breaker" as before."""
    caplog.set_level(logging.INFO, logger="reliactl.breaker")
    b = CircuitBreaker("logged", BreakerConfig(failure_threshold=1))
    b.admit().failure("down")
    assert any(
        r.name == "reliactl.breaker" and "closed -> open" in r.getMessage() for r in caplog.records
    )


def test_a_store_that_is_not_thread_safe_gets_one_lock_per_store() -> None:
    """A store without ``thread_safe`` is serialised per store (the weak-keyed table made
    at its first use): the same lock for one store, another for another store."""

    class Store:
        pass

    one, two = Store(), Store()
    lock = breaker_module._store_guard(one)
    assert breaker_module._store_guard(one) is lock
    assert breaker_module._store_guard(two) is not lock


# ---- the other commands trimmed the same way (issue 21 item 4: `state info`, `state sync`)


def test_state_info_and_sync_start_without_dataclasses_or_url_parsing(tmp_path: Path) -> None:
    """`state info` and `state sync` on the default SQLite store (no state.url) import
    neither dataclasses/inspect (StateInfo, MigrateReport are `_records` classes) nor
    urllib.parse/ipaddress (an empty state.url is SQLite at state.path without parsing), and
    answer as before: the store's backend and path, "nothing to sync"; a sqlite:/// URL is
    still parsed and its path used."""
    env = cron_env(tmp_path)
    done, modules = start_reliactl(["state", "info", "--json"], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout)
    assert info["backend"] == "sqlite" and info["server"] == {} and info["queued"] == 0
    assert info["location"] == str(tmp_path / "reliactl" / "state.db")
    unwanted = ("dataclasses", "inspect", "urllib.parse", "ipaddress", "typing", "logging")
    assert sorted(set(unwanted) & set(modules)) == []
    done, modules = start_reliactl(["state", "sync"], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nothing to sync: the state store is SQLite" in done.stderr
    assert sorted(set(unwanted) & set(modules)) == []

    config = tmp_path / "url.yaml"
    config.write_text(f"state:\n  url: sqlite://{tmp_path}/other.db\n")
    done, modules = start_reliactl(["-c", str(config), "state", "info", "--json"], env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["location"] == str(tmp_path / "other.db")
    assert "urllib.parse" in modules  # a URL to parse: parsed as before


def test_state_ops_records_are_the_frozen_dataclasses_they_replaced() -> None:
    """StateInfo and MigrateReport (now `_records` classes) print, compare, hash, convert
    and pickle as their standard frozen dataclass twins."""
    from reliactl.state.ops import MigrateReport, StateInfo

    info = StateInfo("sqlite", "/x/state.db", 0.5, {"breaker": 1}, queued=2)
    report = MigrateReport("/x", "redis://h/0", 1, 2, 3, 4, 5)
    for ours in (info, report):
        twin = _old_frozen(type(ours))
        values = {f.name: getattr(ours, f.name) for f in dataclasses.fields(ours)}
        theirs = twin(**values)
        assert repr(ours) == repr(theirs)
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
        assert _error(hash, ours) == _error(hash, theirs)
        assert pickle.loads(pickle.dumps(ours)) == ours
        assert type(ours).__module__ == "reliactl.state.ops"
    assert info.to_dict()["queued"] == 2 and StateInfo("a", "b", 1.0, {}).server == {}


def test_doctor_starts_without_dataclasses_and_reports_as_before(tmp_path: Path) -> None:
    """`doctor` (5.3x `python -c pass` before) imports neither dataclasses nor inspect (its
    Finding and DoctorReport are `_records` classes) and still checks and reports: exit 0,
    the config finding and the state store's; the records equal standard twins."""
    from reliactl.doctor import DoctorReport, Finding

    done, modules = start_reliactl(["doctor"], env=cron_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "no configuration file; using the defaults" in done.stdout
    assert "state store" in done.stdout
    assert sorted({"dataclasses", "inspect", "typing"} & set(modules)) == []
    finding = Finding("config", "warn", "none", "fix it")
    report = DoctorReport((finding, Finding("clock", "fail", "late")))
    for ours in (finding, report):
        twin = _old_frozen(type(ours))
        theirs = twin(**{f.name: getattr(ours, f.name) for f in dataclasses.fields(ours)})
        assert repr(ours) == repr(theirs) and hash(ours) == hash(theirs)
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
        assert pickle.loads(pickle.dumps(ours)) == ours
    assert report.failed and not DoctorReport((finding,)).failed
