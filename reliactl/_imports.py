"""Importing a third-party package without the parts of it reliactl never uses (issue 21).

One owner for the machinery behind ``reliactl.http.import_httpx`` (httpx without trio, anyio
and its command-line client) and ``reliactl.state.redisimport.import_redis`` (redis-py without
``redis.asyncio``, the OpenTelemetry metrics SDK and ``importlib.metadata``). While reliactl
imports such a package, a :class:`SkipImports` finder sits first on ``sys.meta_path`` for that
one thread and that one import:

- a *refused* name raises ModuleNotFoundError, as if it were not installed. Only for names the
  package imports inside ``try/except ImportError`` and treats as optional; the caller then
  puts back what the package would have had (a :class:`LazyModule`, a flag);
- a *deferred* package is put in ``sys.modules`` as a :class:`DeferredModule`: its
  ``__init__`` does not run until something reads an attribute the package does not have yet
  (``redis.asyncio.Redis``), which imports it for real through the normal import system (its
  locks, its error handling) and forwards every later read. For a name the package binds
  unconditionally (redis-py's ``from redis import asyncio``), where refusing would fail the
  whole import. Its submodules stay importable while it is deferred (``__path__`` is set).

The standard library's ``importlib.util.LazyLoader`` does not fit redis-py: it loads at the
first attribute read of any kind, ``__spec__`` and ``__path__`` included, which the import
system itself reads when redis-py's sync client imports ``redis.asyncio.observability`` during
``import redis``; the package then runs in the middle of that import and fails on the circular
import (tried: redis 8.1.0). Before Python 3.12.3 it is also not thread-safe.

Other threads import normally throughout, and a package that is already in ``sys.modules`` is
never touched: a process that imported it first keeps it as it is.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

import_lock = threading.Lock()  # one trimmed import at a time (the finder is per thread)
_swap_lock = threading.Lock()


class SkipImports:
    """A meta path finder that refuses ``names`` and defers ``defer`` to one thread (the one
    importing the package); install it for the length of that import only."""

    def __init__(self, names: Iterable[str], defer: Iterable[str] = ()) -> None:
        self.names = frozenset(names)
        self.defer = frozenset(defer)
        self.thread = threading.get_ident()
        self.skipped: set[str] = set()
        self.deferred: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if threading.get_ident() != self.thread:
            return None
        if name in self.names:
            self.skipped.add(name)
            raise ModuleNotFoundError(f"No module named {name!r} (deferred by reliactl)", name=name)
        if name in self.defer and name not in self.deferred:
            spec = self._real_spec(name, path, target)
            if spec is None or spec.loader is None or spec.submodule_search_locations is None:
                return spec  # not a package we can stand in for: import it as it is
            self.deferred.add(name)  # once: reading an attribute imports it for real
            spec.loader = _DeferredLoader()
            return spec
        return None

    def finish(self) -> None:
        """Arm the deferred packages for every thread: call when the import is over. Until
        then only the importing thread's reads import one (another thread probing
        ``sys.modules`` meanwhile must not start an import that needs the package being
        imported, whose import-system lock that thread holds)."""
        for name in self.deferred:
            module = sys.modules.get(name)
            if isinstance(module, DeferredModule):
                module.__dict__["_reliactl_armed"] = True

    def _real_spec(self, name: str, path: Any, target: Any) -> Any:
        """The spec the finders after this one give ``name`` (what ``import`` would load)."""
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None


class _DeferredLoader:
    """Makes the :class:`DeferredModule` that stands for a deferred package; runs nothing."""

    def create_module(self, spec: Any) -> types.ModuleType:
        return DeferredModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        # Armed only now, and for the importing thread (SkipImports.finish: for all): until
        # here the import system is still setting the module up and probes attributes it
        # may lack (``getattr(module, "__loader__", None)``).
        module.__dict__["_reliactl_armed"] = threading.get_ident()


class DeferredModule(types.ModuleType):
    """A package whose ``__init__`` runs at the first read of an attribute it lacks.

    It holds the import system's attributes (``__spec__``, ``__path__``, ...) and any submodule
    imported while deferred. The first read of anything else (by the importing thread, or by
    any thread once :meth:`SkipImports.finish` armed it) takes it out of ``sys.modules``,
    imports the package normally (another thread reading at the same time waits on the import
    system's own module lock), re-points the parent package's attribute at the real module,
    copies the submodules over, and forwards this and every later read to it.
    """

    def __getattr__(self, attr: str) -> Any:
        armed = self.__dict__.get("_reliactl_armed")
        if armed is not True and armed != threading.get_ident():
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        return getattr(self._reliactl_load(), attr)

    def _reliactl_load(self) -> types.ModuleType:
        import importlib

        name = self.__name__
        with _swap_lock:
            real = self.__dict__.get("_reliactl_real")
            if real is not None:
                return real  # type: ignore[no-any-return]
            if sys.modules.get(name) is self:
                del sys.modules[name]
        module = importlib.import_module(name)
        with _swap_lock:
            for key, value in list(self.__dict__.items()):
                if isinstance(value, types.ModuleType) and not hasattr(module, key):
                    setattr(module, key, value)  # submodules imported while deferred
            parent, _, child = name.rpartition(".")
            owner = sys.modules.get(parent) if parent else None
            if owner is not None and owner.__dict__.get(child) is self:
                setattr(owner, child, module)
            self.__dict__["_reliactl_real"] = module
        return module

    def __repr__(self) -> str:
        return f"<module {self.__name__!r}, imported on first use>"


class LazyModule:
    """Stands for module ``name`` in ``owner``'s globals until the first attribute read, which
    imports it and puts the module itself there (for a refused optional import that the owner
    had bound to None)."""

    def __init__(self, name: str, owner: Any) -> None:
        self._name = name
        self._owner = owner

    def __getattr__(self, attr: str) -> Any:
        import importlib

        module = importlib.import_module(self._name)
        setattr(self._owner, self._name, module)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
