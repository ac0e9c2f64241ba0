"""Dataclasses without the dataclasses module: the configuration schema's and the core's
records on the `run` and `health` paths (runner, jobs, locks, errors, state.base,
health.model, health.alertstate, health.checks, health.monitor, the config loader), and the
`breaker`, `state info/sync` and `doctor` commands' (breaker, state.ops, doctor).

``@dataclass(frozen=True)`` compiles six small functions per class, one ``exec`` each (~150
for the schema, as many again for the core), and ``import dataclasses`` imports ``inspect``
(with ``ast``, ``dis``, ``tokenize``): ~7.5 ms of every start; its class processing (405
``_get_field`` calls, each testing the string annotation for ClassVar/InitVar) ~5 ms more,
and the loader's ``typing.get_type_hints`` per section class more again (issue 21).

Here a class is processed by this module alone. It keeps its own field table,
``__record_fields__`` (name, annotation, default or factory, metadata, repr/compare/hash,
the declaring class; the annotation resolved to an object at first ``hints()``, once per
field), read by :func:`fields`, :func:`field_names`, :func:`hints`, :func:`replace` and
:func:`is_record` (the config loader's introspection, without dataclasses or
``get_type_hints``). The standard
view is made when asked: ``__dataclass_fields__`` is a descriptor that imports dataclasses
and builds real ``Field`` objects from the table at first access, so
``dataclasses.fields``/``replace``/``asdict``/``is_dataclass`` and a standard
``@dataclass`` subclass work unchanged. ``__repr__``, ``__eq__``, ``__hash__`` and the
frozen ``__setattr__`` / ``__delattr__`` are shared closures with the standard behaviour,
and ``__init__`` a closure over the fields that binds its arguments as Python would
(``_make_init``; ~1 us more per instance than a compiled one). Nothing is compiled.

The semantics are the standard ones (tests/test_config_records.py compares them, and every
class built here, with real dataclasses): keyword or positional arguments in field order,
defaults and default factories (``field`` here or ``dataclasses.field``), fields inherited
from record or standard dataclass bases, ``__post_init__``, ``FrozenInstanceError`` on
assignment or deletion of a frozen record, value equality within one class, ``hash`` of the
compared fields (``None`` for a mutable record, as ``eq=True`` makes it), the class's own
``__init__``/``__repr__``/``__eq__``/``__hash__`` kept, ``Name(field=value, ...)`` as repr.
What the shared methods do not implement (InitVar, KW_ONLY, ``init=False`` and ``kw_only``
fields, private or reserved field names, a required field after a default one) is refused
with TypeError when the class is defined.

Type checkers see the standard ``dataclasses.dataclass`` and ``field`` (users import these
only at run time, under ``if TYPE_CHECKING: ... else:``).
"""

from __future__ import annotations

import sys
import types
from _thread import get_ident

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import dataclasses
    from collections.abc import Callable
    from typing import Any, TypeVar

    C = TypeVar("C", bound=type)
    R = TypeVar("R")

__all__ = [
    "MISSING",
    "NamedTuple",
    "dataclass",
    "field",
    "field_names",
    "fields",
    "finish",
    "hints",
    "is_record",
    "is_union",
    "replace",
    "type_args",
    "type_origin",
]


class _MissingType:
    """No default (this module's ``dataclasses.MISSING``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _MissingType()
_EMPTY: Any = types.MappingProxyType({})


class Field:
    """One field of a record: what ``dataclasses.Field`` holds, plus the declaring class
    (whose module the annotation is resolved in) and the resolved annotation."""

    __slots__ = (
        "_resolved",
        "_standard",
        "compare",
        "default",
        "default_factory",
        "hash",
        "init",
        "kw_only",
        "metadata",
        "name",
        "owner",
        "repr",
        "type",
    )

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        hash: bool | None = None,
        compare: bool = True,
        metadata: Any = None,
        kw_only: Any = MISSING,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = _EMPTY if not metadata else types.MappingProxyType(metadata)
        self.kw_only = kw_only
        self.owner: type | None = None
        self._resolved: Any = MISSING
        self._standard: Any = None

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
            f"default_factory={self.default_factory!r},init={self.init!r},repr={self.repr!r},"
            f"hash={self.hash!r},compare={self.compare!r},metadata={self.metadata!r})"
        )

    def resolved(self) -> Any:
        """The annotation as an object: a string evaluated once, in the declaring class's
        module (and, failing that, with the class's namespace too, as get_type_hints)."""
        value = self._resolved
        if value is MISSING:
            value = self.type
            if isinstance(value, str):
                value = _evaluate(value, self.owner)
            self._resolved = value
        return value

    def standard(self) -> dataclasses.Field[Any]:
        """This field as a real ``dataclasses.Field`` (made once; importing dataclasses)."""
        made = self._standard
        if made is None:
            import dataclasses

            def std(value: Any) -> Any:
                return dataclasses.MISSING if value is MISSING else value

            made = dataclasses.field(
                default=std(self.default),
                default_factory=std(self.default_factory),
                init=self.init,
                repr=self.repr,
                hash=self.hash,
                compare=self.compare,
                metadata=self.metadata,
                kw_only=self.kw_only is True,  # a processed field's: False unless set
            )
            made.name = self.name
            made.type = self.type
            made._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
            self._standard = made
        return made  # type: ignore[no-any-return]


_evaluated: dict[tuple[str, str], Any] = {}


def _evaluate(text: str, owner: type | None) -> Any:
    module = getattr(owner, "__module__", None) or "builtins"
    key = (module, text)
    try:
        return _evaluated[key]
    except KeyError:
        pass
    namespace = getattr(sys.modules.get(module), "__dict__", {})
    try:
        value = eval(text, namespace)  # noqa: S307 - the class's own annotation
    except NameError:  # a name of the class's own namespace, as get_type_hints allows
        return eval(text, namespace, dict(vars(owner)) if owner is not None else {})  # noqa: S307
    _evaluated[key] = value
    return value


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    metadata: Any = None,
    kw_only: Any = MISSING,
) -> Any:
    """``dataclasses.field`` for a record (a ``dataclasses.field`` is accepted too)."""
    return Field(default, default_factory, init, repr, hash, compare, metadata, kw_only)


def _from_standard(std: Any) -> Field:
    """A ``dataclasses.Field`` (a class attribute, or a standard base's field) as ours."""
    import dataclasses

    def ours(value: Any) -> Any:
        return MISSING if value is dataclasses.MISSING else value

    made = Field(
        ours(std.default),
        ours(std.default_factory),
        std.init,
        std.repr,
        std.hash,
        std.compare,
        std.metadata,
        ours(std.kw_only),
    )
    made.name = std.name
    made.type = std.type
    made._standard = std if getattr(std, "name", None) else None
    return made


class _Params:
    """The ``__dataclass_params__`` of a record: a standard dataclass's (``init``, ``repr``,
    ``eq`` true, ``order``/``unsafe_hash`` false, ``frozen`` as declared), which a standard
    ``@dataclass`` subclass checks (a frozen child of a mutable parent is refused)."""

    init = match_args = True
    order = unsafe_hash = kw_only = slots = weakref_slot = False

    def __init__(self, frozen: bool, repr: bool = True, eq: bool = True) -> None:
        self.frozen = frozen
        self.repr = repr
        self.eq = eq

    def __repr__(self) -> str:
        return (
            f"_DataclassParams(init=True,repr={self.repr},eq={self.eq},order=False,"
            f"unsafe_hash=False,frozen={self.frozen})"
        )


class _StandardFields:
    """``__dataclass_fields__`` of a record: the standard ``{name: dataclasses.Field}``,
    built from ``__record_fields__`` at first access (so only a caller of the dataclasses
    functions imports dataclasses) and then stored on the class."""

    def __get__(self, instance: Any, owner: type) -> dict[str, Any]:
        made = {f.name: f.standard() for f in owner.__record_fields__}  # type: ignore[attr-defined]
        type.__setattr__(owner, "__dataclass_fields__", made)
        return made


_STANDARD_FIELDS = _StandardFields()


def dataclass(*, frozen: bool, repr: bool = True, eq: bool = True) -> Callable[[C], C]:
    """``dataclasses.dataclass(frozen=..., repr=..., eq=...)`` (``init=True``), processed
    here as the module docstring says."""

    def wrap(cls: C) -> C:
        if cls.__doc__ is None:  # dataclasses derives one from inspect.signature
            cls.__doc__ = f"{cls.__name__}: a {'frozen ' if frozen else ''}record."
        table = _collect(cls, frozen)
        klass: type = cls
        klass.__dataclass_params__ = _Params(frozen, repr, eq)  # type: ignore[attr-defined]
        klass.__dataclass_fields__ = _STANDARD_FIELDS  # type: ignore[attr-defined]
        return _install(cls, table, frozen, repr, eq)

    return wrap


def finish(cls: C) -> C:
    """Give a class that dataclasses processed with ``init=False, repr=False, eq=False``
    the methods of a frozen one."""
    import dataclasses

    klass: type = cls
    table = tuple(_from_standard(f) for f in dataclasses.fields(klass))
    for f in table:
        f.owner = klass
    _refuse_unsupported(klass, table, frozen=True)
    klass.__dataclass_params__ = _Params(True)  # type: ignore[attr-defined]
    return _install(cls, table, True)


def _is_kind(annotation: Any, *names: str) -> bool:
    """Is the annotation (a string, or an object) ``typing.ClassVar``/``dataclasses.InitVar``
    /``KW_ONLY`` (one of ``names``), bare or subscripted?"""
    if isinstance(annotation, str):
        head = annotation.split("[", 1)[0].strip()
        return head.rsplit(".", 1)[-1] in names and head.split(".")[0] in (
            *names,
            "typing",
            "t",
            "dataclasses",
        )
    dc = sys.modules.get("dataclasses")
    typing = sys.modules.get("typing")  # a ClassVar object exists only once typing is loaded
    if (
        "ClassVar" in names
        and typing is not None
        and (
            annotation is typing.ClassVar
            or getattr(annotation, "__origin__", None) is typing.ClassVar
        )
    ):
        return True
    if (
        dc is not None
        and "InitVar" in names
        and (annotation is dc.InitVar or isinstance(annotation, dc.InitVar))
    ):
        return True
    return dc is not None and "KW_ONLY" in names and annotation is getattr(dc, "KW_ONLY", None)


def _inherited(cls: type, frozen: bool) -> dict[str, Field]:
    """The fields of the class's bases (records or standard dataclasses), in order."""
    table: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        own = base.__dict__
        inherited = own.get("__record_fields__")
        if inherited is None:
            standard = own.get("__dataclass_fields__")
            if not isinstance(standard, dict):
                continue
            inherited = _standard_fields(cls, base, standard)
        params = own.get("__dataclass_params__")
        if params is not None and bool(params.frozen) != frozen:
            if frozen:
                raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
            raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
        for f in inherited:
            table[f.name] = f
    return table


def _standard_fields(cls: type, base: type, standard: dict[str, Any]) -> list[Field]:
    import dataclasses

    out = []
    for std in standard.values():
        kind = std._field_type
        if kind is dataclasses._FIELD_INITVAR:  # type: ignore[attr-defined]
            raise TypeError(
                f"{cls.__qualname__}.{std.name}: InitVar is not supported by reliactl._records"
            )
        if kind is dataclasses._FIELD:  # type: ignore[attr-defined]
            made = _from_standard(std)
            made.owner = base
            out.append(made)
    return out


def _collect(cls: type, frozen: bool) -> tuple[Field, ...]:
    """The class's fields in order: its bases' (records or standard dataclasses), then its
    own annotated names, a name redefined keeping its first place (as dataclasses)."""
    table = _inherited(cls, frozen) if len(cls.__mro__) > 2 else {}
    dc_field = getattr(sys.modules.get("dataclasses"), "Field", None)
    own = cls.__dict__
    for name, annotation in own.get("__annotations__", {}).items():
        # a plain name or a string without ClassVar/InitVar/KW_ONLY in it is a field
        if type(annotation) is not str or (
            "ClassVar" in annotation or "InitVar" in annotation or "KW_ONLY" in annotation
        ):
            if _is_kind(annotation, "ClassVar"):
                continue
            if _is_kind(annotation, "InitVar", "KW_ONLY"):
                raise TypeError(
                    f"{cls.__qualname__}.{name}: InitVar and KW_ONLY are not supported by"
                    " reliactl._records"
                )
        value = own.get(name, MISSING)
        if value is MISSING:
            made = Field()
        elif type(value) is Field:
            made = value
            if value.default is not MISSING:
                type.__setattr__(cls, name, value.default)  # the class attribute, as theirs
            else:
                type.__delattr__(cls, name)
        elif dc_field is not None and isinstance(value, dc_field):
            made = _from_standard(value)
            if made.default is not MISSING:
                type.__setattr__(cls, name, made.default)
            else:
                type.__delattr__(cls, name)
        else:
            made = Field(value)
        default = made.default
        if default is not MISSING and default.__class__.__hash__ is None:
            raise ValueError(
                f"mutable default {type(default)} for field {name} is not allowed:"
                " use default_factory"
            )
        made.name = name
        made.type = annotation
        made.owner = cls
        if made.kw_only is MISSING:  # the class's default, as dataclasses sets it
            made.kw_only = False
        table[name] = made
    fields_ = tuple(table.values())
    _refuse_unsupported(cls, fields_, frozen)
    return fields_


def _refuse_unsupported(cls: type, fields_: tuple[Field, ...], frozen: bool) -> None:
    """Refuse, when the class is defined, what the shared methods do not implement (where the
    standard decorator would do something else): ``init=False`` and ``kw_only`` fields,
    field names the generated ``__init__`` cannot take, a non-default field after a default
    one, a frozen class's own ``__setattr__``/``__delattr__``."""
    where = cls.__qualname__
    if frozen:
        for name in ("__setattr__", "__delattr__"):
            if name in cls.__dict__:
                raise TypeError(f"Cannot overwrite attribute {name} in class {where}")
    seen_default = False
    for f in fields_:
        if not f.init or f.kw_only is True:
            raise TypeError(
                f"{where}.{f.name}: init=False and kw_only fields are not supported by"
                " reliactl._records (use a standard dataclass)"
            )
        if not f.name.isidentifier() or f.name.startswith("_") or f.name == "self":
            raise TypeError(f"{where}.{f.name}: not a schema field name")
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")


def _install(
    cls: C,
    table: tuple[Field, ...],
    frozen: bool,
    with_repr: bool = True,
    with_eq: bool = True,
) -> C:
    """Give the class its field table and the shared methods (its own ones stay)."""
    klass: type = cls
    type.__setattr__(klass, "__record_fields__", table)
    # What the methods read (the field names each uses) is worked out at their first call,
    # not here: defining a record costs only what its refusals need (issue 21).
    # One slot, set whole (threads racing to the first call each set an equal tuple).
    plan: list[Any] = [None]

    def _plan() -> Any:
        made = (
            frozenset(f.name for f in table),
            tuple(f.name for f in table if f.repr),
            tuple(f.name for f in table if f.compare),
            tuple(f.name for f in table if (f.compare if f.hash is None else f.hash)),
        )
        plan[0] = made
        return made

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is klass or name in (plan[0] or _plan())[0]:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(klass, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is klass or name in (plan[0] or _plan())[0]:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(klass, self).__delattr__(name)  # type: ignore[arg-type]

    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        # a record inside its own field shows ``...``, as dataclasses' reprlib.recursive_repr
        key = (id(self), get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            shown = (plan[0] or _plan())[1]
            inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        finally:
            running.discard(key)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:  # tuples, as dataclasses: `is` before `==`
            compared = (plan[0] or _plan())[2]
            mine = tuple(getattr(self, name) for name in compared)
            return mine == tuple(getattr(other, name) for name in compared)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, name) for name in (plan[0] or _plan())[3]))

    __init__ = _make_init(klass, table, frozen)
    _put(klass, table, frozen, with_repr, with_eq, (__init__, __repr__, __eq__, __hash__))
    if frozen:
        for method in (__setattr__, __delattr__):
            _put_one(klass, method)
    return cls


def _put_one(klass: type, method: Any) -> None:
    """Set a shared method on the class unless it defines its own (as dataclasses)."""
    name = method.__name__
    if name not in klass.__dict__:
        method.__qualname__ = f"{klass.__qualname__}.{name}"
        type.__setattr__(klass, name, method)


def _put(
    klass: type,
    table: tuple[Field, ...],
    frozen: bool,
    with_repr: bool,
    with_eq: bool,
    made: tuple[Any, Any, Any, Any],
) -> None:
    __init__, __repr__, __eq__, __hash__ = made
    own = klass.__dict__
    # dataclasses' rule: a __hash__ of the class's own counts unless it is the None that
    # defining __eq__ implies
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    for method, wanted in ((__init__, True), (__repr__, with_repr), (__eq__, with_eq)):
        if wanted:  # the class's own __init__, __repr__ or __eq__ stays, as dataclasses
            _put_one(klass, method)
    if with_eq and not explicit_hash:  # eq=False: the inherited (identity) hash, as theirs
        if frozen:
            __hash__.__qualname__ = f"{klass.__qualname__}.__hash__"
            type.__setattr__(klass, "__hash__", __hash__)
        else:
            type.__setattr__(klass, "__hash__", None)
    if "__match_args__" not in own:
        type.__setattr__(klass, "__match_args__", tuple(f.name for f in table))
    if "__replace__" not in own:  # copy.replace (Python 3.13), as dataclasses adds it
        type.__setattr__(klass, "__replace__", _replace_method)
    if own["__init__"] is __init__:  # else the class's own __init__ gives the signature
        type.__setattr__(klass, "__signature__", _SIGNATURE)


def is_record(obj: Any) -> bool:
    """Is ``obj`` a class built here (with ``dataclass`` of this module), or an instance of
    one? (A plain or standard subclass is not: its fields may differ.)"""
    cls = obj if isinstance(obj, type) else type(obj)
    return "__record_fields__" in cls.__dict__


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order (``dataclasses.fields``)."""
    cls = obj if isinstance(obj, type) else type(obj)
    table = cls.__dict__.get("__record_fields__")
    if table is None:
        raise TypeError(f"{cls.__qualname__} is not a reliactl._records class")
    return table  # type: ignore[no-any-return]


def field_names(obj: Any) -> tuple[str, ...]:
    """The field names of a record, or of any dataclass (a standard subclass of a record
    too: ``dataclasses.fields``, importing dataclasses), class or instance, in order."""
    cls = obj if isinstance(obj, type) else type(obj)
    table = cls.__dict__.get("__record_fields__")
    if table is None:
        import dataclasses

        return tuple(f.name for f in dataclasses.fields(obj))
    return tuple(f.name for f in table)


def hints(cls: type) -> dict[str, Any]:
    """The record's resolved annotations by field name (``typing.get_type_hints`` of its
    fields), worked out once per class."""
    made = cls.__dict__.get("__record_hints__")
    if made is None:
        made = {f.name: f.resolved() for f in fields(cls)}
        type.__setattr__(cls, "__record_hints__", made)
    return made


def replace(obj: R, /, **changes: Any) -> R:
    """``dataclasses.replace`` for a record instance (any other dataclass: the standard one)."""
    cls = type(obj)
    table = cls.__dict__.get("__record_fields__")
    if table is None:
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = {f.name: getattr(obj, f.name) for f in table}
    values.update(changes)  # an unknown name: the __init__'s own TypeError
    return cls(**values)


def _replace_method(self: Any, /, **changes: Any) -> Any:
    """``__replace__`` of a record: ``copy.replace(obj, ...)`` is ``replace(obj, ...)``."""
    return replace(self, **changes)


_MISSING = object()  # a field no argument and no plain default gave a value yet


def _make_init(cls: type, table: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """The class's ``__init__``: a closure over its fields, so nothing is compiled.

    The binding is Python's own for ``__init__(self, f1, f2=d2, ...)``: positional arguments
    in field order, then keywords; a TypeError (with CPython's wording) for an unknown or
    doubled keyword, too many positional arguments or missing required ones, raised before
    any field is set or any default factory called. Fields are then set in order, each
    default factory called at its field's turn, and ``__post_init__`` called last, as the
    standard generated ``__init__`` does."""
    post_init = hasattr(cls, "__post_init__")  # decided here, as the standard __init__
    qualname = f"{cls.__qualname__}.__init__"
    plan: list[Any] = [None]  # the binding's tables, set whole at the first instance

    def _plan() -> Any:
        made = _init_plan(cls, table, frozen)
        plan[0] = made
        return made

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        template, required, factories, names, count, takes, one_by_one, setter, position = (
            plan[0] or _plan()
        )
        given = len(args)
        if kwargs and (
            not kwargs.keys() <= position.keys()
            or (given and any(position[name] < given for name in kwargs))
        ):
            _refuse_keywords(qualname, kwargs, position, given)
        if given > count:
            raise TypeError(f"{qualname}() takes {takes} but {given + 1} were given")
        if given < len(required):
            missing = [name for name in required[given:] if name not in kwargs]
            if missing:
                raise TypeError(_missing_message(qualname, missing))
        values = template.copy()
        if given:
            values.update(zip(names, args, strict=False))
        if kwargs:
            values.update(kwargs)  # an existing key keeps its place: field order stays
        for name, factory in factories:
            if values[name] is _MISSING:
                values[name] = factory()
        if one_by_one:
            for name, value in values.items():
                setter(self, name, value)
        else:
            self.__dict__.update(values)
        if post_init:
            self.__post_init__()

    __init__._record_fields = table  # type: ignore[attr-defined]  # for _Signature
    return __init__


def _init_plan(cls: type, table: tuple[Field, ...], frozen: bool) -> Any:
    """What a record's ``__init__`` binds with (see ``_make_init``), made at its first call."""
    template, required, factories = _slots(table)
    names = tuple(template)
    count = len(names)
    if len(required) == count:
        takes = "1 positional argument" if count == 0 else f"{count + 1} positional arguments"
    else:
        takes = f"from {len(required) + 1} to {count + 1} positional arguments"
    # The fields go straight into the instance's __dict__, where the standard
    # object.__setattr__ (frozen) or ``self.name = value`` would put them, unless a
    # slot, a data descriptor named as a field or (mutable) the class's own __setattr__
    # must see each one: then one by one, as the standard __init__ does.
    one_by_one = any("__slots__" in vars(k) for k in cls.__mro__[:-1]) or any(
        hasattr(type(_class_attribute(cls, name)), "__set__") for name in names
    )
    setter: Callable[[Any, str, Any], None] = object.__setattr__
    if not frozen:
        setter = setattr
        one_by_one = one_by_one or cls.__setattr__ is not object.__setattr__  # type: ignore[comparison-overlap]
    position = {name: index for index, name in enumerate(names)}
    return (template, required, factories, names, count, takes, one_by_one, setter, position)


def _slots(
    table: tuple[Field, ...],
) -> tuple[dict[str, Any], tuple[str, ...], tuple[tuple[str, Any], ...]]:
    """Every field's slot in field order (its default, or _MISSING for a required or
    factory field), the required names, and (name, factory) of the factory fields."""
    template: dict[str, Any] = {}
    required: list[str] = []
    factories: list[tuple[str, Any]] = []
    for f in table:
        if f.default is not MISSING:
            template[f.name] = f.default
        else:
            template[f.name] = _MISSING
            if f.default_factory is not MISSING:
                factories.append((f.name, f.default_factory))
            else:
                required.append(f.name)
    return template, tuple(required), tuple(factories)


def _class_attribute(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


class _Signature:
    """``inspect.signature(cls)`` of a class built here: the standard dataclass's
    ``(name: str, port: int | None = None, tags: list[str] = <factory>) -> None``, worked
    out when asked (``__init__`` itself takes ``*args, **kwargs``), for the class whose
    ``__init__`` an instance of ``owner`` runs (a plain subclass runs its record base's); a
    subclass with an ``__init__`` of its own (a standard dataclass child) gets its own."""

    def __get__(self, instance: Any, owner: type) -> Any:
        init = next(
            (k.__dict__["__init__"] for k in owner.__mro__ if "__init__" in k.__dict__), None
        )
        table = getattr(init, "_record_fields", None)
        if instance is not None or table is None:
            raise AttributeError("__signature__")
        import dataclasses
        import inspect

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter("self", kind)]
        for f in table:
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = dataclasses._HAS_DEFAULT_FACTORY  # type: ignore[attr-defined]
            else:
                default = inspect.Parameter.empty
            params.append(inspect.Parameter(f.name, kind, default=default, annotation=f.type))
        # inspect.signature(cls) drops the first parameter of __init__, as for a real one
        return inspect.Signature(params[1:], return_annotation=None)


_SIGNATURE = _Signature()


def _refuse_keywords(
    qualname: str, kwargs: dict[str, Any], position: dict[str, int], given: int
) -> None:
    """The TypeError CPython raises for the first unknown or doubled keyword argument."""
    for name in kwargs:
        at = position.get(name)
        if at is None:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {name!r}")
        if at < given:
            raise TypeError(f"{qualname}() got multiple values for argument {name!r}")


def _missing_message(qualname: str, missing: list[str]) -> str:
    """CPython's wording: "f() missing 2 required positional arguments: 'a' and 'b'"."""
    quoted = [repr(name) for name in missing]
    names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    plural = "argument" if len(missing) == 1 else "arguments"
    return f"{qualname}() missing {len(missing)} required positional {plural}: {names}"


def type_origin(annotation: Any) -> Any:
    """``typing.get_origin(annotation)``, without importing typing (~3 ms of every start,
    issue 21) for the builtin generics (``list[str]``) and unions (``X | None``) the schema
    is written in; any other annotation goes to typing (a typing object exists only once
    typing is loaded, so with typing not loaded there is no origin)."""
    kind = type(annotation)
    if kind is types.GenericAlias:
        return annotation.__origin__
    if kind is types.UnionType:
        return types.UnionType
    if "typing" not in sys.modules:
        return None
    import typing

    return typing.get_origin(annotation)


def type_args(annotation: Any) -> tuple[Any, ...]:
    """``typing.get_args(annotation)``, as ``type_origin``: without typing for a builtin
    generic (but ``Callable[...]``, whose arguments typing regroups) or a ``|`` union."""
    kind = type(annotation)
    if kind is types.UnionType or (
        kind is types.GenericAlias and annotation.__origin__ is not _abc_callable()
    ):
        return annotation.__args__  # type: ignore[no-any-return]
    if "typing" not in sys.modules:
        return ()
    import typing

    return typing.get_args(annotation)


def is_union(annotation: Any) -> bool:
    """Is the annotation a union (``X | Y``, or ``typing.Union``/``Optional``)?"""
    origin = type_origin(annotation)
    if origin is types.UnionType:
        return True
    typing = sys.modules.get("typing")
    return typing is not None and origin is typing.Union


def _abc_callable() -> Any:
    import collections.abc

    return collections.abc.Callable


# ---- NamedTuple without typing ---------------------------------------------------------------
#
# ``class Row(NamedTuple): ...`` needs typing at import (~3 ms of a `breaker` or `retry plan`
# start, issue 21). The stand-in below makes the same class: ``collections.namedtuple`` of the
# annotated fields (a field with a value is a default, as typing requires after the first
# one), with the body's methods, properties and docstring, and the same refusals. What
# differs: ``__annotations__`` holds the annotation strings (modules using it have ``from
# __future__ import annotations``) where typing holds ForwardRefs of them. Type checkers see
# ``typing.NamedTuple`` (users import this one only at run time, under ``if TYPE_CHECKING:
# ... else:``); tests/test_config_records.py compares the two.

_NT_PROHIBITED = frozenset(
    {
        "__new__",
        "__init__",
        "__slots__",
        "__getnewargs__",
        "_fields",
        "_field_defaults",
        "_make",
        "_replace",
        "_asdict",
        "_source",
    }
)
_NT_SPECIAL = frozenset({"__module__", "__name__", "__annotations__", "__qualname__"})


class _NamedTupleMeta(type):
    def __new__(mcs, typename: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, typename, bases, ns)
        if bases != (NamedTuple,):
            raise TypeError("can only inherit from a NamedTuple type")
        import collections

        namedtuple: Any = collections.namedtuple  # its name and fields are the class's

        annotations = ns.get("__annotations__", {})
        defaults: list[str] = []
        for name in annotations:
            if name in ns:
                defaults.append(name)
            elif defaults:
                raise TypeError(
                    f"Non-default namedtuple field {name} cannot follow default field"
                    f"{'s' if len(defaults) > 1 else ''} {', '.join(defaults)}"
                )
        made = namedtuple(
            typename,
            list(annotations),
            defaults=[ns[name] for name in defaults],
            module=ns["__module__"],
        )
        made.__annotations__ = made.__new__.__annotations__ = dict(annotations)
        for key, value in ns.items():
            if key in _NT_PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _NT_SPECIAL and key not in made._fields:
                setattr(made, key, value)
        made.__qualname__ = ns.get("__qualname__", typename)
        return made


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base of a record class at run time: ``class Row(NamedTuple)`` makes a plain
    ``collections.namedtuple`` class, as ``typing.NamedTuple`` does (see above)."""
