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
same behaviour; and the ``__init__`` of every pending class is compiled together, in one
``compile``, when the first instance is made.

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

_pending: list[type] = []
_lock = threading.Lock()
_processing = threading.local()  # .active: _records itself is processing a class
_FACTORY = object()  # marks "no argument given: call the default factory"


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
    frozen one (its ``__init__`` compiled with the others' at the first instance)."""
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

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _compile_pending()
        klass.__dict__["__init__"](self, *args, **kwargs)

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
    klass.__dataclass_params__ = _Params(klass.__dataclass_params__)  # type: ignore[attr-defined]
    if own["__init__"] is __init__:  # else the class's own: nothing to compile
        _pending.append(cls)
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


def _compile_pending() -> None:
    """The ``__init__`` of every pending class, from one compiled source."""
    with _lock:
        _compile_locked()


def _compile_locked() -> None:
    classes = list(_pending)
    if not classes:
        return
    sources: list[str] = []
    arguments: list[dict[str, Any]] = []
    for index, cls in enumerate(classes):
        source, values = _init_source(cls, index)
        sources.append(source)
        arguments.append(values)
    namespace: dict[str, Any] = {}
    code = compile("\n".join(sources), "<reliactl._records __init__>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source, as dataclasses does
    for index, cls in enumerate(classes):
        init = namespace[f"_make_{index}"](**arguments[index])
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        init.__module__ = cls.__module__
        cls.__init__ = init  # type: ignore[misc]
    del _pending[: len(classes)]


def _init_source(cls: type, index: int) -> tuple[str, dict[str, Any]]:
    """A factory ``_make_<index>(...)`` returning the class's ``__init__``, and its arguments
    (the field defaults and default factories, bound as the factory's parameters)."""
    values: dict[str, Any] = {"_set": object.__setattr__, "_FACTORY": _FACTORY}
    params: list[str] = []
    body: list[str] = []
    seen_default = False
    for f in dataclasses.fields(cls):
        name = f.name
        if not name.isidentifier() or name.startswith("_") or name == "self":
            raise TypeError(f"{cls.__qualname__}.{name}: not a schema field name")
        if f.default is not dataclasses.MISSING:
            values[f"_d_{name}"] = f.default
            params.append(f"{name}=_d_{name}")
            body.append(f"    _set(self, {name!r}, {name})")
            seen_default = True
        elif f.default_factory is not dataclasses.MISSING:
            values[f"_f_{name}"] = f.default_factory
            params.append(f"{name}=_FACTORY")
            body.append(f"    _set(self, {name!r}, _f_{name}() if {name} is _FACTORY else {name})")
            seen_default = True
        else:
            if seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            params.append(name)
            body.append(f"    _set(self, {name!r}, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = (
        f"def _make_{index}({', '.join(values)}):\n"
        f"  def __init__(self, {', '.join(params)}):\n"
        + ("\n".join("  " + line for line in body) or "    pass")
        + "\n  return __init__\n"
    )
    return source, values
