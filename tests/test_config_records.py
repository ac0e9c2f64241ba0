"""reliactl.config._records: the schema's frozen dataclasses, made without compiling code at
import (issue 21), behave as the standard ``@dataclass(frozen=True)`` ones."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import subprocess
import sys
from dataclasses import field
from typing import Any

import pytest

from reliactl import _records


@dataclasses.dataclass(frozen=True)
class Standard:
    name: str
    port: int | None = None
    tags: list[str] = field(default_factory=list)
    ratio: float = 0.5


@_records.dataclass(frozen=True)
class Ours:
    name: str
    port: int | None = None
    tags: list[str] = field(default_factory=list)
    ratio: float = 0.5


@_records.dataclass(frozen=True)
class OursChild(Ours):
    extra: bool = False


def test_construction_defaults_factories_and_errors_are_the_standard_ones() -> None:
    """Positional and keyword arguments, defaults, a fresh list per instance from the
    factory, and TypeError for a missing, unknown or doubled argument, as dataclasses."""
    for cls in (Standard, Ours):
        a, b = cls("a"), cls("b", 80, ["x"], ratio=1.0)
        assert (a.name, a.port, a.tags, a.ratio) == ("a", None, [], 0.5)
        assert (b.name, b.port, b.tags, b.ratio) == ("b", 80, ["x"], 1.0)
        assert cls("c").tags is not cls("c").tags
        for args, kwargs in (((), {}), (("a",), {"nope": 1}), (("a",), {"name": "b"})):
            with pytest.raises(TypeError):
                cls(*args, **kwargs)
    child = OursChild("c", extra=True)
    assert (child.name, child.extra) == ("c", True)
    assert [f.name for f in dataclasses.fields(OursChild)] == [
        "name",
        "port",
        "tags",
        "ratio",
        "extra",
    ]


def test_argument_errors_and_factory_order_match_the_standard_init_exactly() -> None:
    """The records' ``__init__`` is a closure, not compiled code (issue 21): for every shape
    of class (no field, required only, defaults, a factory) and every mix of positional and
    keyword arguments, it binds exactly as the standard generated ``__init__``: the same
    values, or a TypeError with the same message (unknown, doubled, too many, missing); no
    factory is called when the call is refused, and factories run in field order."""
    calls: list[str] = []

    def factory(tag: str) -> Any:
        def make() -> list[str]:
            calls.append(tag)
            return [tag]

        return make

    shapes: list[dict[str, Any]] = [
        {},
        {"a": None},
        {"a": None, "b": None},
        {"a": None, "b": 1},
        {"a": 1},
        {"a": None, "b": field(default_factory=factory("b")), "c": 2},
        {"a": field(default_factory=factory("a")), "b": field(default_factory=factory("b"))},
    ]
    keywords: list[dict[str, Any]] = [{}, {"a": 1}, {"b": 2}, {"zz": 3}, {"a": 1, "c": 2}]
    for shape in shapes:
        made = []
        for decorate in (dataclasses.dataclass(frozen=True), _records.dataclass(frozen=True)):
            namespace: dict[str, Any] = {"__annotations__": dict.fromkeys(shape, "Any")}
            namespace.update({k: v for k, v in shape.items() if v is not None})
            made.append(decorate(type("Shape", (), namespace)))
        for positional in range(5):
            for kwargs in keywords:
                outcomes = []
                for cls in made:
                    calls.clear()
                    try:
                        outcomes.append((repr(cls(*range(positional), **kwargs)), calls[:]))
                    except TypeError as exc:
                        outcomes.append((str(exc), calls[:]))
                assert outcomes[0] == outcomes[1], (shape, positional, kwargs)


def test_signature_is_the_standard_one_also_for_a_standard_child() -> None:
    """``inspect.signature`` (help(), IDEs, documentation tools) shows the fields as the
    standard dataclass does, although the records' ``__init__`` takes ``*args, **kwargs``;
    a standard dataclass child of a record shows its own ``__init__``."""
    import inspect

    assert str(inspect.signature(Ours)) == str(inspect.signature(Standard))

    @dataclasses.dataclass(frozen=True)
    class StandardChild(Ours):
        more: int = 1

    assert list(inspect.signature(StandardChild).parameters) == [
        "name",
        "port",
        "tags",
        "ratio",
        "more",
    ]
    assert list(inspect.signature(OursChild).parameters)[-1] == "extra"

    class Plain(Ours):
        pass

    assert str(inspect.signature(Plain)) == str(inspect.signature(Ours))


def test_repr_eq_hash_and_frozenness_are_the_standard_ones() -> None:
    """repr text, value equality within one class only (NaN in the same object compares as
    the tuple comparison of dataclasses does), hash of the fields, and FrozenInstanceError
    on assigning or deleting a field or a new attribute."""
    nan = math.nan
    s1, s2 = Standard("a", 1, ["t"], nan), Standard("a", 1, ["t"], nan)
    o1, o2 = Ours("a", 1, ["t"], nan), Ours("a", 1, ["t"], nan)
    assert repr(o1) == repr(s1).replace("Standard", "Ours")
    assert (o1 == o2) == (s1 == s2)
    assert o1 != Ours("b") and o1 != s1 and o1 != OursChild("a", 1, ["t"], nan)
    assert hash(Ours("a", 1, (), 0.5)) == hash(Standard("a", 1, (), 0.5))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hash(o1)  # a list field: unhashable, as a standard frozen dataclass
    for obj in (o1, OursChild("c")):
        for action in (
            lambda o: setattr(o, "name", "x"),
            lambda o: setattr(o, "new", 1),
            lambda o: delattr(o, "name"),
        ):
            with pytest.raises(dataclasses.FrozenInstanceError):
                action(obj)
    assert o1.name == "a"


def test_dataclass_functions_copy_and_pickle_work() -> None:
    """fields, replace, asdict, copy, deepcopy and pickle (the schema's introspection and
    the library's users rely on them) work on these classes."""
    obj = Ours("a", 2, ["t"])
    assert dataclasses.is_dataclass(obj)
    assert dataclasses.replace(obj, port=3) == Ours("a", 3, ["t"])
    assert dataclasses.asdict(obj) == {"name": "a", "port": 2, "tags": ["t"], "ratio": 0.5}
    for clone in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
        assert clone == obj


def test_importing_the_configuration_compiles_no_dataclass_code() -> None:
    """`import reliactl.config` runs no dataclasses code generation for the schema (it cost
    ~150 compilations, most of the module's import time, every command); Config() loads the
    same defaults (its __init__ is a closure: nothing is compiled at the first instance)."""
    code = (
        "import dataclasses\n"
        "made = []\n"
        "real = dataclasses._create_fn\n"
        "def spy(name, *a, **k):\n"
        "    if k['globals'].get('__name__', '').startswith('reliactl.config'):\n"
        "        made.append(name)\n"
        "    return real(name, *a, **k)\n"
        "dataclasses._create_fn = spy\n"
        "import reliactl._settings\n"
        "before = len(made)\n"
        "import reliactl.config\n"
        "at_import = len(made) - before\n"
        "cfg = reliactl.config.load(environ={}).config\n"
        "print(at_import, cfg.retry.max_retries, cfg.health_monitor.max_parallel)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    # CircuitBreakerConfig and its base, the library's BreakerSettings, are records too
    # (since issue 21 wave 3; they were the six methods left).
    assert int(out[0]) == 0, out
    assert out[1:] == ["3", "256"]


def test_every_schema_section_matches_a_standard_frozen_dataclass() -> None:
    """Each schema class built here, rebuilt as a standard frozen dataclass from the same
    fields, constructs, compares and prints the same from its defaults."""
    from reliactl.config import _schema

    sections: list[Any] = [
        obj
        for obj in vars(_schema).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == _schema.__name__
    ]
    assert len(sections) > 15
    for cls in sections:
        twin = dataclasses.make_dataclass(
            cls.__name__,
            [(f.name, f.type, f) for f in dataclasses.fields(cls)],
            frozen=True,
        )
        required = {
            f.name: "x"
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        ours, theirs = cls(**required), twin(**required)
        assert repr(ours) == repr(theirs)
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)


CORE_MODULES = (
    "reliactl.errors",
    "reliactl.ranges",
    "reliactl.locks",
    "reliactl.jobs",
    "reliactl.runner",
    "reliactl.state.base",
    "reliactl.health.model",
    "reliactl.health.alertstate",
    "reliactl.schedule",
    # the `breaker`, `state info/sync` and `doctor` commands' (issue 21 item 4, brkstart)
    "reliactl.breaker",
    "reliactl.state.ops",
    "reliactl.doctor",
)


def _frozen_records(module_name: str) -> list[Any]:
    import importlib

    module = importlib.import_module(module_name)
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == module_name
        and "__setattr__" in obj.__dict__
    ]


def test_the_core_records_on_the_run_and_health_paths_are_built_by_records() -> None:
    """Every frozen dataclass of the run and health paths' core modules gets its methods
    from reliactl._records (none is compiled by dataclasses at import), and each one, rebuilt
    as a standard frozen dataclass from the same fields, constructs, prints, compares,
    hashes and converts the same."""
    seen = 0
    for module_name in CORE_MODULES:
        for cls in _frozen_records(module_name):
            seen += 1
            code = cls.__dict__["__eq__"].__code__
            assert code.co_filename == _records.__file__, cls
            twin = dataclasses.make_dataclass(
                cls.__name__,
                [(f.name, f.type, f) for f in dataclasses.fields(cls)],
                frozen=True,
            )
            required = {
                f.name: "x"
                for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            }
            ours, theirs = cls(**required), twin(**required)
            assert repr(ours) == repr(theirs), cls
            assert dataclasses.asdict(ours) == dataclasses.asdict(theirs), cls
            assert ours == cls(**required) and ours != theirs
            try:
                expected: Any = hash(theirs)
            except TypeError as exc:
                expected = type(exc)
            try:
                got: Any = hash(ours)
            except TypeError as exc:
                got = type(exc)
            assert got == expected, cls
            with pytest.raises(dataclasses.FrozenInstanceError):
                ours.__setattr__(dataclasses.fields(cls)[0].name, "y")
            assert (
                pickle.loads(pickle.dumps(ours)) == ours
                if not callable(getattr(ours, "open_leases", None))
                else True
            )
    assert seen >= 25, seen


def test_importing_the_run_and_health_core_compiles_no_dataclass_code() -> None:
    """Importing the run and health paths' core modules runs no dataclasses code generation
    for their frozen records (six compilations each, ~0.5 ms apiece: ~20 ms of `run`'s start
    before); only the two mutable dataclasses (runner's _AttemptState, alertstate's
    Snapshot) stay standard."""
    code = (
        "import dataclasses\n"
        "made = []\n"
        "real = dataclasses._create_fn\n"
        "def spy(name, *a, **k):\n"
        "    made.append((k['globals'].get('__name__', ''), name))\n"
        "    return real(name, *a, **k)\n"
        "dataclasses._create_fn = spy\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    __import__(name)\n"
        "print(len([m for m, _ in made if m.startswith('reliactl.')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    # _AttemptState and Snapshot: __init__, __repr__, __eq__ each (198 before)
    assert int(out[0]) <= 6, out


def test_a_standard_frozen_subclass_of_a_built_record_works_as_before() -> None:
    """A library user's ``@dataclasses.dataclass(frozen=True)`` subclass of a record built
    here (a core record, a config section) is accepted and behaves as a standard one, as when
    the parents were standard frozen dataclasses; a non-frozen subclass is still refused, and
    this module's own subclasses (OursChild) still build."""
    from reliactl.config import RetryConfig
    from reliactl.health.model import HealthReport
    from reliactl.runner import RunResult

    for parent in (Ours, RetryConfig, HealthReport, RunResult):
        assert dataclasses.fields(parent)  # a dataclass, seen as a frozen one
        child = dataclasses.make_dataclass(
            "Child", [("extra", int, field(default=7))], bases=(parent,), frozen=True
        )
        assert [f.name for f in dataclasses.fields(child)][-1] == "extra"
        with pytest.raises(TypeError, match="non-frozen dataclass from a frozen one"):
            dataclasses.make_dataclass("Loose", [("extra", int, field(default=7))], bases=(parent,))
    mine = dataclasses.make_dataclass(
        "Mine", [("extra", int, field(default=7))], bases=(Ours,), frozen=True
    )("a")
    assert (mine.name, mine.extra) == ("a", 7) and mine == copy.deepcopy(mine)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.name = "b"  # type: ignore[misc]
    assert "frozen=True" in repr(Ours.__dataclass_params__)  # type: ignore[attr-defined]
    assert OursChild("c").extra is False


def test_what_records_cannot_build_is_refused_at_definition_and_spares_other_records() -> None:
    """A frozen record using what the shared methods do not implement (InitVar, init=False
    or kw_only fields, a field name the generated __init__ cannot take, a required field after
    a default one) raises TypeError when the class is defined. It used to be accepted and
    either misbehave silently (init=False/kw_only taken as positional parameters, InitVar never
    passed) or raise at the first instance of ANY pending record: one bad class made every
    record defined with it unconstructible."""

    @_records.dataclass(frozen=True)
    class Pending:  # defined, never instantiated yet: its __init__ is still to compile
        name: str
        size: int = 1

    bad_bodies = {
        "order": "class Bad:\n  x: int = 1\n  y: int\n",
        "init_false": "class Bad:\n  x: int\n  y: int = field(default=5, init=False)\n",
        "kw_only": "class Bad:\n  x: int = field(kw_only=True, default=0)\n",
        "initvar": "class Bad:\n  x: int\n  z: InitVar[int] = 3\n",
        "private_name": "class Bad:\n  _x: int\n",
        "own_setattr": "class Bad:\n  x: int\n  def __setattr__(self, n, v): pass\n",
    }
    for label, body in bad_bodies.items():
        namespace: dict[str, Any] = {"field": field, "InitVar": dataclasses.InitVar}
        # dont_inherit: annotations evaluated (this file's __future__ import would make
        # InitVar a string that dataclasses cannot resolve outside a module)
        exec(compile(body, "<bad record>", "exec", dont_inherit=True), namespace)
        with pytest.raises(TypeError):
            _records.dataclass(frozen=True)(namespace["Bad"])
            pytest.fail(f"{label}: accepted")
    assert repr(Pending("a")).endswith("Pending(name='a', size=1)")
    assert Pending("a", 2) == Pending(name="a", size=2)


def test_a_records_own_methods_stay_and_a_self_containing_record_prints() -> None:
    """As with the standard decorator, a record's own ``__init__``, ``__repr__``, ``__eq__``
    and ``__hash__`` are kept (they were silently replaced by the shared ones), and a record
    that contains itself prints ``...`` instead of nesting once (dataclasses' recursive_repr)."""

    @_records.dataclass(frozen=True)
    class Own:
        value: int

        def __init__(self, raw: str) -> None:
            object.__setattr__(self, "value", int(raw) * 2)

        def __repr__(self) -> str:
            return f"<Own {self.value}>"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Own)

        def __hash__(self) -> int:
            return 7

    assert Own("2").value == 4
    assert repr(Own("2")) == "<Own 4>"
    assert Own("1") == Own("2") and hash(Own("1")) == 7

    @_records.dataclass(frozen=True)
    class EqOnly:
        value: int

        def __eq__(self, other: object) -> bool:
            return True

    @dataclasses.dataclass(frozen=True)
    class StandardEqOnly:
        value: int

        def __eq__(self, other: object) -> bool:
            return True

    assert EqOnly(1) == EqOnly(2)
    assert hash(EqOnly(1)) == hash(StandardEqOnly(1))  # generated from the fields, as theirs

    @_records.dataclass(frozen=True)
    class Box:
        items: list[Any]

    box = Box([])
    box.items.append(box)
    assert repr(box).endswith(".Box(items=[...])")


def test_defining_a_record_defers_its_method_tables_to_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defining a record does only what its refusals need (issue 21: ~35 schema classes at
    every start): the ``__init__`` binding tables are made at the first instance, the
    repr/eq/hash name tuples at their first call, and then behave as the standard ones."""
    made: list[int] = []
    real_slots = _records._slots

    def counting(table: Any) -> Any:
        made.append(len(table))
        return real_slots(table)

    monkeypatch.setattr(_records, "_slots", counting)

    @_records.dataclass(frozen=True)
    class Late:
        a: int
        b: tuple[int, ...] = field(default_factory=tuple)
        c: str = field(default="x", repr=False, compare=False)

    assert made == []  # nothing built at definition
    first = Late(1)
    assert made == [3]
    assert (repr(first), first == Late(1, (), "y"), hash(first) == hash(Late(1))) == (
        "test_defining_a_record_defers_its_method_tables_to_first_use.<locals>.Late(a=1, b=())",
        True,
        True,
    )
    Late(2)
    assert made == [3]  # once per class
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Late()  # type: ignore[call-arg]


def test_first_instances_made_by_many_threads_at_once_are_all_complete() -> None:
    """The lazy compile of every pending ``__init__`` is safe when several threads make the
    first instances of several fresh records at the same moment (and define another record
    meanwhile): every instance gets its own values, none sees a half-installed __init__."""
    import threading

    classes = []
    for index in range(6):
        namespace: dict[str, Any] = {"field": field}
        exec(f"class R{index}:\n  a: int\n  b: list = field(default_factory=list)\n", namespace)
        classes.append(_records.dataclass(frozen=True)(namespace[f"R{index}"]))
    barrier = threading.Barrier(8)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            if n == 7:
                late = dataclasses.make_dataclass(
                    "Late", [("z", int)], init=False, repr=False, eq=False
                )
                results.append(_records.finish(late)(n))
            for cls in classes:
                made = cls(n)  # and the first repr/eq, whose tables are lazy too
                assert repr(made) == f"{cls.__qualname__}(a={n}, b=[])"
                assert made == cls(n) and made != cls(n + 100)
                results.append(made)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(results) == 8 * 6 + 1
    for obj in results:
        value = obj.z if hasattr(obj, "z") else obj.a
        assert isinstance(value, int) and (hasattr(obj, "z") or obj.b == [])


def test_the_field_table_gives_what_dataclasses_and_get_type_hints_give() -> None:
    """The loader reads a record's own field table (``_records.fields``/``hints``) instead
    of ``dataclasses.fields`` and ``typing.get_type_hints``: for every schema section and
    core record the names, defaults, factories and metadata equal dataclasses' view, and the
    resolved types equal get_type_hints' (also for fields inherited from another module,
    e.g. CircuitBreakerConfig's from reliactl._settings, and the generated BreakerOverrides)."""
    import typing

    from reliactl.config import _schema

    classes: list[Any] = [
        obj for obj in vars(_schema).values() if isinstance(obj, type) and _records.is_record(obj)
    ]
    for module_name in CORE_MODULES:
        classes += _frozen_records(module_name)
    assert _schema.BreakerOverrides in classes and _schema.CircuitBreakerConfig in classes
    for cls in classes:
        ours = _records.fields(cls)
        theirs = dataclasses.fields(cls)
        assert [f.name for f in ours] == [f.name for f in theirs], cls
        for mine, std in zip(ours, theirs, strict=True):
            assert (mine.default is _records.MISSING) == (std.default is dataclasses.MISSING)
            if std.default is not dataclasses.MISSING:
                assert mine.default == std.default
            assert mine.default_factory in (std.default_factory, _records.MISSING)
            assert dict(mine.metadata) == dict(std.metadata), (cls, mine.name)
        try:
            expected: Any = typing.get_type_hints(cls)
        except NameError:  # a core record naming a TYPE_CHECKING-only type: both refuse
            with pytest.raises(NameError):
                _records.hints(cls)
            continue
        assert _records.hints(cls) == expected, cls


# Public records whose annotations name a type imported only when used (so that `run` and
# `health` need not import it): typing.get_type_hints cannot resolve them, and never could.
HINTS_NEED_LAZY_TYPES = {
    "reliactl.cleanup.CleanupReport",  # PruneReport
    "reliactl.health.checks.Check",  # AdaptiveSettings
    "reliactl.health.monitor.MonitoringTask",  # asyncio
    "reliactl.jobs.JobResult",  # RunResult
    "reliactl.jobs.JobSpec",  # RunChaos
    "reliactl.runner.RunOptions",  # RunChaos
}


PUBLIC_MODULES = (
    "reliactl",
    "reliactl.state",
    "reliactl.health",
    "reliactl.jobs",
    "reliactl.cleanup",
    "reliactl.breaker",
    "reliactl.retry",
    "reliactl.backoff",
    "reliactl.chaos",
    "reliactl.ratelimit",
    "reliactl.http",
)


def test_public_records_resolve_with_get_type_hints_and_pydantic() -> None:
    """Every record (or named tuple) a library user gets from reliactl's public names resolves with
    typing.get_type_hints, except those naming a lazily imported type (listed, and they
    never resolved); the run history and health records also build a pydantic schema. Taking
    ``typing`` off the start paths once left RunRecord, HealthMetric and CheckContext naming
    ``Any``/``Records`` that existed for the type checker only (review)."""
    import importlib
    import typing

    import pydantic

    from reliactl.health.model import HealthMetric, Status
    from reliactl.state import RunRecord

    public: dict[str, Any] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and (_records.is_record(obj) or hasattr(obj, "_fields")):
                public[f"{obj.__module__}.{obj.__qualname__}"] = obj
    for name in (
        "reliactl.state.base.RunRecord",
        "reliactl.health.model.HealthMetric",
        "reliactl.cleanup.Removal",
        "reliactl.retry.PlanRow",
    ):
        assert name in public
    unresolved = set()
    for name, cls in public.items():
        try:
            typing.get_type_hints(cls)
        except NameError:
            unresolved.add(name)
    assert unresolved == HINTS_NEED_LAZY_TYPES & set(public)
    record = RunRecord(name="job", command="true", started_at=1.0, data={"k": [1]})
    dumped = pydantic.TypeAdapter(RunRecord).dump_python(record)
    assert dumped["name"] == "job" and dumped["data"] == {"k": [1]}
    metric = HealthMetric("db", Status.OK, 3.0, "fine", details={"ms": 3})
    assert pydantic.TypeAdapter(HealthMetric).dump_python(metric)["details"] == {"ms": 3}


def test_mutable_records_behave_as_standard_mutable_dataclasses() -> None:
    """``dataclass(frozen=False)`` (CheckContext, MonitoringTask, alertstate's Snapshot,
    runner's _AttemptState with repr=False, eq=False) behaves as the standard decorator:
    fields assignable, value equality and no hash with eq, identity equality and hash with
    eq=False, the standard repr, __post_init__ called, a frozen base refused; records of
    both kinds have ``__replace__`` (copy.replace), as dataclasses gives them on 3.13."""

    def build(decorate: Any) -> tuple[Any, Any]:
        @decorate(frozen=False)
        class Box:
            name: str
            items: list[int] = field(default_factory=list)

            def __post_init__(self) -> None:
                self.seen = True

        @decorate(frozen=False, repr=False, eq=False)
        class State:
            pid: int
            killed: bool = False

        return Box, State

    (box, state), (std_box, std_state) = build(_records.dataclass), build(dataclasses.dataclass)
    a, b = box("a"), std_box("a")
    assert repr(a).split(".")[-1] == repr(b).split(".")[-1] and a.seen and b.seen
    a.items.append(1)
    a.name = "z"
    assert (a.name, a.items) == ("z", [1])
    assert box("x", [1]) == box("x", [1]) and box("x") != box("y")
    with pytest.raises(TypeError):
        hash(a)
    s1, s2 = state(1), state(1)
    assert s1 != s2 and s1 == s1 and hash(s1) == object.__hash__(s1)
    assert "object at" in repr(s1) and "object at" in repr(std_state(1))
    s1.killed = True
    assert _records.replace(s1, pid=2).killed is True
    # copy.replace (Python 3.13) goes through __replace__, which dataclasses adds too
    assert box("x").__replace__(name="y") == box("y")
    assert Ours("a").__replace__(port=3) == Ours("a", 3)
    with pytest.raises(TypeError, match="non-frozen dataclass from a frozen one"):
        _records.dataclass(frozen=False)(type("Loose", (Ours,), {"__annotations__": {}}))


def test_records_and_the_config_load_never_import_dataclasses_or_inspect() -> None:
    """Importing the run and health cores and the configuration, and loading a configuration
    that sets values from a file and the environment (the path every `run` and `health`
    start takes), imports neither dataclasses nor inspect (with ast, dis and tokenize,
    ~7.5 ms of each start) nor calls typing.get_type_hints (once per section class at every
    start before); the standard view is built only when asked for, then it works."""
    code = (
        "import os, sys, tempfile, typing, json\n"
        "calls = []\n"
        "real = typing.get_type_hints\n"
        "typing.get_type_hints = lambda *a, **k: calls.append(a) or real(*a, **k)\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    __import__(name)\n"
        "import reliactl.config, reliactl.health.monitor, reliactl.health.checks\n"
        "d = tempfile.mkdtemp()\n"
        "p = os.path.join(d, 'reliactl.yaml')\n"
        "open(p, 'w').write('retry:\\n  max_retries: 4\\ncircuit_breaker:\\n  breakers:\\n"
        "    api:\\n      failure_threshold: 2\\n')\n"
        "env = {'RELIACTL_RUN__TIMEOUT': '5s', 'HOME': d}\n"
        "cfg = reliactl.config.load(p, environ=env).config\n"
        "loaded = sorted(m for m in ('dataclasses', 'inspect', 'ast', 'dis', 'tokenize')"
        " if m in sys.modules)\n"
        "import dataclasses\n"
        "print(json.dumps([loaded, len(calls), cfg.retry.max_retries, cfg.run.timeout,"
        " cfg.circuit_breaker.settings_for('api').failure_threshold,"
        " dataclasses.asdict(cfg)['retry']['max_retries']]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    import json

    assert json.loads(out) == [[], 0, 4, 5.0, 2, 4]


def test_loaded_config_path_is_a_path_made_on_read(tmp_path: Any) -> None:
    """``LoadedConfig.path`` stays a public ``pathlib.Path`` (normalised as ``Path`` does:
    ``a//b/./c.yaml`` -> ``a/b/c.yaml``) in attribute access, ``==``, ``repr``,
    ``dataclasses.fields``/``asdict``/``replace``, ``_records.replace`` and a pickle, while a
    fresh load imports no pathlib until the attribute is read (the loader keeps text), and a
    load without a file has ``path`` None."""
    from pathlib import Path

    from reliactl import _records
    from reliactl.config import LoadedConfig, load

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("retry: {max_retries: 2}\n")
    named = f"{tmp_path}//sub/./c.yaml"
    loaded = load(named, environ={"HOME": str(tmp_path)})
    expected = tmp_path / "sub" / "c.yaml"
    assert isinstance(loaded.path, Path) and loaded.path == expected
    assert str(loaded.path) == str(expected)
    assert f"path={expected!r}" in repr(loaded)
    assert loaded == load(expected, environ={"HOME": str(tmp_path)})
    assert [f.name for f in dataclasses.fields(LoadedConfig)] == [
        "config",
        "path",
        "notes",
        "origins",
    ]
    assert dataclasses.asdict(loaded)["path"] == expected
    assert dataclasses.replace(loaded).path == expected
    assert _records.replace(loaded, notes=("x",)).path == expected
    assert pickle.loads(pickle.dumps(loaded)).path == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.path = Path("/elsewhere")  # type: ignore[misc]
    assert load(environ={"HOME": str(tmp_path)}, search=False).path is None
    built = LoadedConfig(config=loaded.config, path=Path("/x/y.yaml"))
    assert built.path == Path("/x/y.yaml")

    code = (
        "import sys, reliactl.config as c; l = c.load(sys.argv[1], environ={}); "
        "print('pathlib' in sys.modules, type(l.path).__name__, 'pathlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, named], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["False", "PosixPath", "True"]


def test_type_origin_and_args_agree_with_typing_and_need_it_only_for_its_objects() -> None:
    """``_records.type_origin``/``type_args``/``is_union`` (what the config loader reads the
    schema's annotations with, issue 21 wave 5) give what ``typing.get_origin``/``get_args``
    give for every kind of annotation, typing's own included (Optional, Union, Literal,
    ``Callable[[int], str]``, whose arguments typing regroups); and a process that has not
    imported typing answers the builtin generics and ``|`` unions without importing it."""
    import collections.abc
    import typing

    cases: list[Any] = [
        int,
        str | None,
        int | str | None,
        list[str],
        dict[str, list[int]],
        tuple[int, ...],
        typing.Optional[int],  # noqa: UP045 - typing's own union, on purpose
        typing.Union[int, str],  # noqa: UP007
        typing.List[int],  # noqa: UP006
        typing.Literal["a", "b"],
        typing.Any,
        collections.abc.Callable[[int], str],
        collections.abc.Mapping[str, int],
        None,
        "list[int]",
    ]
    for case in cases:
        assert _records.type_origin(case) == typing.get_origin(case), case
        assert _records.type_args(case) == typing.get_args(case), case
        origin = typing.get_origin(case)
        assert _records.is_union(case) == (origin in (typing.Union, type(int | None))), case
    code = (
        "import sys\n"
        "from reliactl import _records as r\n"
        "assert 'typing' not in sys.modules\n"
        "assert r.type_origin(list[str]) is list and r.type_args(dict[str, int]) == (str, int)\n"
        "assert r.is_union(int | None) and not r.is_union(list[int])\n"
        "assert r.type_origin(int) is None and r.type_args(int) == ()\n"
        "print('typing' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_records_named_tuple_makes_the_class_typing_named_tuple_makes() -> None:
    """``reliactl._records.NamedTuple`` (the run-time base of chaos', backoff's and retry's
    NamedTuple classes, so that their commands' starts import no typing, issue 21) makes the
    same class as ``typing.NamedTuple``: a plain namedtuple with the annotated fields, their
    defaults, the body's docstring, methods and properties, the same repr, equality, hash,
    ``_replace``/``_asdict``/``_make``, pickling, and the same refusals (a field without a
    default after one with, a reserved attribute, another base)."""
    import typing

    made = {}
    for base in (typing.NamedTuple, _records.NamedTuple):

        class Row(base):  # type: ignore[misc,valid-type]
            """A row."""

            a: int
            b: str = "x"
            c: float | None = None

            def both(self) -> str:
                return f"{self.a}{self.b}"

            @property
            def double(self) -> int:
                return self.a * 2

        made[base] = Row
    std, ours = made[typing.NamedTuple], made[_records.NamedTuple]
    assert ours.__mro__[1:] == std.__mro__[1:] == (tuple, object)
    assert type(ours) is type(std) is type
    for attr in ("__doc__", "_fields", "_field_defaults", "__qualname__", "__module__"):
        assert getattr(ours, attr) == getattr(std, attr), attr
    assert list(ours.__annotations__) == list(std.__annotations__) == ["a", "b", "c"]
    assert ours.__slots__ == std.__slots__ == ()
    for cls in (std, ours):
        row = cls(1)
        assert repr(row) == "Row(a=1, b='x', c=None)"
        assert row == (1, "x", None) and hash(row) == hash((1, "x", None))
        assert row.both() == "1x" and row.double == 2
        assert row._replace(a=3) == cls(3) and row._asdict() == {"a": 1, "b": "x", "c": None}
        assert cls._make([2, "y", 0.5]) == cls(2, "y", 0.5)
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls(1, "x", None, "extra")
    # pickling finds the class by name: pickle a module-level one
    from reliactl.retry import PlanRow

    plan_row = PlanRow(1, 0.5, 0.5, 0.4, 0.6, False)
    assert pickle.loads(pickle.dumps(plan_row)) == plan_row
    assert type(plan_row).__mro__[1:] == (tuple, object)
    for base in (typing.NamedTuple, _records.NamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field b"):
            exec("class Bad(base):\n a: int = 1\n b: str", {"base": base, "__name__": "t"})
        with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _asdict"):
            exec(
                "class Bad(base):\n a: int\n def _asdict(self): pass",
                {"base": base, "__name__": "t"},
            )
