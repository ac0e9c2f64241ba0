"""Frozen dataclasses without compiling code at import (the configuration schema's and the
core's records on the `run` and `health` paths: runner, jobs, locks, errors, state.base,
health.model, health.alertstate).

``@dataclass(frozen=True)`` compiles six small functions per class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``), one ``exec`` each:
for the schema's ~25 classes that was ~150 compilations and most of ``reliactl.config``'s
import time, paid by every command (issue 21); the core's ~30 records cost as much again.
Here the standard decorator still does the bookkeeping (``__dataclass_fields__``, so
``dataclasses.fields``/``replace``/``asdict`` and the schema's introspection work unchanged)
with ``init=False, repr=False, eq=False``, which compiles nothing; ``__repr__``, ``__eq__``,
``__hash__`` and the frozen ``__setattr__`` / ``__delattr__`` are shared closures with the
same behaviour; and ``__init__`` is a closure over the fields that binds its arguments as
Python would (``_make_init``). An earlier version compiled every pending class's
``__init__`` in one ``compile`` at the first instance: ~35 KB of source, 6-12 ms of every
``run`` (25-45 classes) and ``health`` start on this machine; the closure costs ~1 us more
per instance, ~5 ms over the 5,000 sections of a 5,000-check configuration.

The semantics are the standard ones (tests/test_config_records.py compares them, and every
class built here, with real frozen dataclasses): keyword or positional arguments in field
order, defaults and default factories, ``FrozenInstanceError`` on assignment or deletion,
value equality within one class, ``hash`` of the compared fields, ``Name(field=value, ...)``
as repr.

Type checkers see the standard ``dataclasses.dataclass`` (users import this one only at run
time, under ``if TYPE_CHECKING: ... else:``). Mutable dataclasses stay standard (this module
makes frozen ones only), as does a class whose base is a standard dataclass.
"""

from __future__ import annotations

import dataclasses
import reprlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["dataclass", "finish"]

C = TypeVar("C", bound=type)

_processing = threading.local()  # .active: _records itself is processing a class


def dataclass(*, frozen: bool) -> Callable[[C], C]:
    """``dataclasses.dataclass(frozen=True)``, its methods made as the module docstring says."""
    if not frozen:
        raise TypeError("reliactl._records makes frozen dataclasses only")

    def wrap(cls: C) -> C:
        if cls.__doc__ is None:  # else dataclasses derives one with inspect.signature,
            # which for a class without __init__ yet tokenizes object's (~10 ms at import)
            cls.__doc__ = f"{cls.__name__}: a frozen record."
        _processing.active = True  # a base built here reads as not frozen (see _Params)
        try:
            processed: C = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)  # type: ignore[assignment]
        finally:
            _processing.active = False
        return finish(processed)

    return wrap


def finish(cls: C) -> C:
    """Give a dataclass processed with ``init=False, repr=False, eq=False`` the methods of a
    frozen one."""
    klass: type = cls
    fields = dataclasses.fields(klass)
    _refuse_unsupported(klass, fields)
    names = frozenset(f.name for f in fields)
    shown = tuple(f.name for f in fields if f.repr)
    compared = tuple(f.name for f in fields if f.compare)
    hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is klass or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(klass, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is klass or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(klass, self).__delattr__(name)  # type: ignore[arg-type]

    @reprlib.recursive_repr()  # a record inside its own field shows ``...``, as dataclasses
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({inner})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:  # tuples, as dataclasses: `is` before `==`
            mine = tuple(getattr(self, name) for name in compared)
            return mine == tuple(getattr(other, name) for name in compared)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(tuple(getattr(self, name) for name in hashed))

    __init__ = _make_init(klass, fields)

    own = klass.__dict__
    for method in (__setattr__, __delattr__, __repr__, __eq__, __hash__, __init__):
        name = method.__name__
        if name == "__hash__":  # the class's own __hash__ stays (not the None __eq__ implies)
            if own.get("__hash__") is not None:
                continue
        elif name in own:  # the class's own __init__, __repr__ or __eq__ stays, as dataclasses
            continue
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    if own["__init__"] is __init__:  # else the class's own __init__ gives the signature
        klass.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
    klass.__dataclass_params__ = _Params(klass.__dataclass_params__)  # type: ignore[attr-defined]
    return cls


def _refuse_unsupported(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> None:
    """Refuse, when the class is defined, what the shared methods do not implement (where the
    standard decorator would do something else): InitVar, ``init=False`` and ``kw_only``
    fields, field names the generated ``__init__`` cannot take, a non-default field after a
    default one, an own ``__setattr__``/``__delattr__``. Raised here, never at the first
    instance: one class's error there would fail every pending class's first instance."""
    where = cls.__qualname__
    for name in ("__setattr__", "__delattr__"):
        if name in cls.__dict__:
            raise TypeError(f"Cannot overwrite attribute {name} in class {where}")
    for f in cls.__dict__.get("__dataclass_fields__", {}).values():
        if f._field_type is dataclasses._FIELD_INITVAR:  # type: ignore[attr-defined]
            raise TypeError(f"{where}.{f.name}: InitVar is not supported by reliactl._records")
    seen_default = False
    for f in fields:
        if not f.init or f.kw_only is True:
            raise TypeError(
                f"{where}.{f.name}: init=False and kw_only fields are not supported by"
                " reliactl._records (use a standard dataclass)"
            )
        if not f.name.isidentifier() or f.name.startswith("_") or f.name == "self":
            raise TypeError(f"{where}.{f.name}: not a schema field name")
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")


class _Params:
    """The ``__dataclass_params__`` of a class built here: those of a standard frozen dataclass
    (``init``, ``repr``, ``eq``, ``frozen`` true), so that a standard ``@dataclass(frozen=True)``
    subclass is accepted as it was before (dataclasses refuses a frozen child of a non-frozen
    parent). While this module itself processes a subclass (with ``frozen`` false, to compile
    nothing) the parent reads as not frozen, for the same reason."""

    def __init__(self, params: Any) -> None:
        self._params = params

    def __getattr__(self, name: str) -> Any:
        if name in ("init", "repr", "eq"):
            return True
        return getattr(self._params, name)

    @property
    def frozen(self) -> bool:
        return not getattr(_processing, "active", False)

    def __repr__(self) -> str:
        text = repr(self._params).replace("frozen=False", f"frozen={self.frozen}")
        for name in ("init", "repr", "eq"):
            text = text.replace(f"{name}=False", f"{name}=True")
        return text


_REQUIRED, _DEFAULT, _FACTORY = 0, 1, 2
_MISSING = object()  # a field no argument and no plain default gave a value yet


def _make_init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """The class's ``__init__``: a closure over its fields, so nothing is compiled.

    The binding is Python's own for ``__init__(self, f1, f2=d2, ...)``: positional arguments
    in field order, then keywords; a TypeError (with CPython's wording) for an unknown or
    doubled keyword, too many positional arguments or missing required ones, raised before
    any field is set or any default factory called. Fields are then set in order, each
    default factory called at its field's turn, and ``__post_init__`` called last, as the
    standard generated ``__init__`` does."""
    specs = _field_specs(cls, fields)
    count = len(specs)
    names = tuple(name for name, _, _ in specs)
    position = {name: index for index, name in enumerate(names)}
    required = tuple(name for name, kind, _ in specs if kind == _REQUIRED)
    factories = tuple((name, default) for name, kind, default in specs if kind == _FACTORY)
    # Every field's slot, in field order: its default, or _MISSING (required or factory).
    template = {name: default if kind == _DEFAULT else _MISSING for name, kind, default in specs}
    if len(required) == count:
        takes = "1 positional argument" if count == 0 else f"{count + 1} positional arguments"
    else:
        takes = f"from {len(required) + 1} to {count + 1} positional arguments"
    post_init = hasattr(cls, "__post_init__")
    qualname = f"{cls.__qualname__}.__init__"
    # No __slots__ anywhere: the fields live in the instance's __dict__, where the standard
    # object.__setattr__ of each would put them (field names are never data descriptors).
    slotted = any("__slots__" in vars(k) for k in cls.__mro__[:-1])
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
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
        if slotted:
            for name, value in values.items():
                setter(self, name, value)
        else:
            self.__dict__.update(values)
        if post_init:
            self.__post_init__()

    __init__._record_fields = fields  # type: ignore[attr-defined]  # for _Signature
    return __init__


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
        fields = getattr(init, "_record_fields", None)
        if instance is not None or fields is None:
            raise AttributeError("__signature__")
        import inspect

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter("self", kind)]
        for f in fields:
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = dataclasses._HAS_DEFAULT_FACTORY  # type: ignore[attr-defined]
            else:
                default = inspect.Parameter.empty
            params.append(inspect.Parameter(f.name, kind, default=default, annotation=f.type))
        # inspect.signature(cls) drops the first parameter of __init__, as for a real one
        return inspect.Signature(params[1:], return_annotation=None)


_SIGNATURE = _Signature()


def _field_specs(
    cls: type, fields: tuple[dataclasses.Field[Any], ...]
) -> tuple[tuple[str, int, Any], ...]:
    """(name, _REQUIRED/_DEFAULT/_FACTORY, default or factory) per field, in order."""
    spec: list[tuple[str, int, Any]] = []
    seen_default = False
    for f in fields:
        name = f.name
        if not name.isidentifier() or name.startswith("_") or name == "self":
            raise TypeError(f"{cls.__qualname__}.{name}: not a schema field name")
        if f.default is not dataclasses.MISSING:
            spec.append((name, _DEFAULT, f.default))
            seen_default = True
        elif f.default_factory is not dataclasses.MISSING:
            spec.append((name, _FACTORY, f.default_factory))
            seen_default = True
        else:
            if seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            spec.append((name, _REQUIRED, None))
    return tuple(spec)


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
