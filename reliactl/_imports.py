"""Importing a third-party package without the parts of it reliactl never runs (issue 21).

The machinery behind ``reliactl.http.import_httpx`` (httpx without trio, anyio and its
command-line client; for the command line's own process also certifi, idna, mimetypes and
stdlib modules only their functions use). Until the sixth session it also served
``state/redisimport.import_redis`` (redis-py trimmed), removed when the Redis store moved to
its own RESP client (``state/_resp.py``). While reliactl imports such a package,
an :class:`ImportScope` finder sits first on ``sys.meta_path`` for that one thread and that one
import (``with ImportScope(skip=..., defer=...): import pkg``):

- a *skipped* (refused) name raises ModuleNotFoundError, as if it were not installed. Only
  for names the package imports inside ``try/except ImportError`` and treats as optional; the
  caller then puts back what the package would have had (a :class:`LazyModule`, a flag);
- a *deferred* name is imported without running its code: the import system creates the
  real module object through the real loader (``__spec__``, ``__file__``, ``__path__`` ...
  set as usual, so importing it again, or importing a submodule of a deferred package, runs
  nothing) and its class is swapped to :class:`DeferredModule`. The first read of an
  attribute it lacks runs the loader's ``exec_module`` on that same object, once, under a lock
  per module (threads racing to it wait, then all see the finished module), and the class
  goes back to ``types.ModuleType``. Module identity is kept: whoever bound the module
  (``from redis import asyncio``, ``import certifi``) holds the real one. If its code
  raises, the first read raises that error and the next read runs it again (below). Only
  plain Python source or bytecode found by the other finders, in their order, is deferred
  (:func:`deferring_spec`); a built-in, frozen, extension or zipped module is imported as
  usual. For a name the package binds
  unconditionally (redis-py's ``from redis import asyncio``), where refusing would fail the
  whole import.

A deferred package's submodules import without running it (its ``__path__`` is there), as
Python never does otherwise, so one more rule: while a submodule of a deferred package is being
imported, a read of another submodule's name on the package (``from pkg import other`` inside
``pkg.mod``) imports that submodule and does not run the package, whose code would import the
half-loaded ``pkg.mod`` again (redis-py's ``redis.asyncio.client`` does that).

Modules are deferred only in a process with one thread (:func:`only_thread`, checked by the
callers before the import): with plain imports another thread that needs a module being
imported waits on the import system's lock, while a deferred one it could neither run (its
code may need a module whose import lock the importing thread holds, e.g. ``redis`` while
``import redis`` is still running: a deadlock or a half module) nor wait for (the import
system's deadlock detection does not see our lock). A thread the imported package itself
starts during the import is the one case left: until the scope is left
(:meth:`ImportScope.finish`), only the importing thread's reads run a deferred module, and
another thread's read gets AttributeError and starts nothing.

If a deferred module's first run raises (an error, or KeyboardInterrupt), the module stays
deferred and in ``sys.modules``: the next read runs its code again on the same object, as
``importlib.reload`` would, so whoever bound it while it was deferred never holds a half-run
module.

The standard library's ``importlib.util.LazyLoader`` does not fit: it loads at the first
attribute read of any kind, ``__spec__`` and ``__path__`` included, which the import system
reads at every later import of the name and when redis-py's sync client imports
``redis.asyncio.observability`` during ``import redis``; the package then ran in the middle of
that import and failed on the circular import (tried: redis 8.1.0). Before Python 3.12.3 it
is also not thread-safe.

Other threads import normally throughout, and a module that is already in ``sys.modules`` is
never touched: a process that imported the package first keeps it as it is.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

import_lock = threading.Lock()  # one trimmed import at a time (the finder is per thread)


class ImportScope:
    """A meta path finder for one thread (the one importing the package), for one import:
    refuses the ``skip`` names (ModuleNotFoundError) and imports the ``defer`` names as
    :class:`DeferredModule`. A name already in ``sys.modules`` never reaches a finder, so it
    is neither refused nor deferred. Use it as a context manager around that import:
    entering puts it first on ``sys.meta_path``, leaving removes it and calls
    :meth:`finish`."""

    def __init__(self, skip: Iterable[str] = (), defer: Iterable[str] = ()) -> None:
        self.skip = frozenset(skip)
        self.defer = frozenset(defer)
        self.thread = threading.get_ident()
        self.skipped: set[str] = set()
        self.deferred: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if threading.get_ident() != self.thread:
            return None
        if name in self.skip:
            self.skipped.add(name)
            raise ModuleNotFoundError(f"No module named {name!r} (deferred by reliactl)", name=name)
        if name in self.defer and name not in self.deferred:
            spec = deferring_spec(name, path, target, self)
            if spec is not None:
                self.deferred.add(name)  # once: a failed first run imports it plainly after
            return spec
        return None

    def __enter__(self) -> ImportScope:
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.finish()

    def finish(self) -> None:
        """Arm the deferred modules for every thread: called when the import is over. Until
        then only the importing thread's reads run one."""
        with _guard:
            for pending in _pending.values():
                if pending.scope is self:
                    pending.armed = True


class DeferredModule(types.ModuleType):
    """A module imported but not yet executed: it has the attributes the import system gives
    every module (``__name__``, ``__spec__``, ``__file__``, ``__path__`` ...), so importing it
    (or a submodule) again runs nothing; reading any other attribute runs the module's code
    first (once, under a lock per module), after which it is an ordinary module, the same
    object."""

    def __getattr__(self, attr: str) -> Any:
        submodule = _run_deferred(self, attr)
        return submodule if submodule is not None else getattr(self, attr)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r}, run on first use>"


class _Pending:
    """A deferred module's real loader, the lock its first read runs it under, the thread
    running it (that thread's read of a missing attribute meanwhile is a read of a partially
    initialised module), and who may run it: the importing thread's id, or True for every
    thread once the scope finished."""

    __slots__ = ("armed", "loader", "lock", "module", "owner", "scope")

    def __init__(self, module: types.ModuleType, loader: Any, scope: ImportScope | None) -> None:
        self.module = module
        self.loader = loader
        self.scope = scope
        self.lock = threading.Lock()
        self.owner: int | None = None
        self.armed: int | bool = threading.get_ident() if scope is not None else True


_pending: dict[str, _Pending] = {}
_guard = threading.Lock()


def _run_deferred(module: types.ModuleType, attr: str) -> types.ModuleType | None:
    """Run deferred ``module`` for a read of ``attr`` it lacks; or, for a read of one of its
    submodules while a submodule of it is being imported, import that submodule only and
    return it."""
    name = module.__name__
    me = threading.get_ident()
    with _guard:
        pending = _pending.get(name)
    if pending is None or pending.module is not module or pending.owner == me:
        if type(module) is DeferredModule:
            raise AttributeError(f"partially initialized module {name!r} has no attribute {attr!r}")
        return None  # another thread ran it meanwhile
    if pending.armed is not True and pending.armed != me:
        # Another thread while the import that deferred it is still running (see the module
        # docstring): as if the module lacked it; nothing is started.
        raise AttributeError(f"module {name!r} has no attribute {attr!r} (not imported yet)")
    if _importing_submodule_of(module):
        # ``import pkg.mod`` while pkg is deferred loads pkg.mod without running pkg (its
        # ``__path__`` is there); pkg.mod's own ``from pkg import other`` must then not run pkg,
        # whose code would import pkg.mod again, half initialised (redis-py 8.1's
        # redis.asyncio.client: ``from redis.asyncio import _himport_exec``).
        submodule = _import_submodule(module, attr)
        if submodule is not None:
            return submodule
    with pending.lock:
        if type(module) is not DeferredModule:
            return None  # another thread ran it while this one waited
        pending.owner = me
        try:
            pending.loader.exec_module(module)
        except BaseException:
            # Stays deferred, in sys.modules, and the next read runs it again on the same
            # object (as importlib.reload would): whoever bound it while deferred must not be
            # left holding a half-run module (an error, or Ctrl-C, during the first run).
            pending.owner = None
            raise
        module.__class__ = types.ModuleType  # type: ignore[assignment]
        pending.owner = None
        with _guard:
            if _pending.get(name) is pending:
                del _pending[name]
    return None


def only_thread() -> bool:
    """Whether the calling thread is the process's only one (``/proc/self/task`` counts the
    threads no Python code started too). Callers defer modules only then: the first read of a
    deferred module by another thread while the import runs must not fail (see above), and a
    process with one thread has no other thread to read it."""
    import os

    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


def _importing_submodule_of(module: types.ModuleType) -> bool:
    """Whether a submodule of package ``module`` is being imported (by any thread) now."""
    if "__path__" not in vars(module):
        return False
    prefix = module.__name__ + "."
    for key, value in list(sys.modules.items()):
        if key.startswith(prefix):
            spec = vars(value).get("__spec__") if isinstance(value, types.ModuleType) else None
            if getattr(spec, "_initializing", False):
                return True
    return False


def _import_submodule(module: types.ModuleType, attr: str) -> types.ModuleType | None:
    """``module.attr`` imported as a submodule, or None if there is no such submodule."""
    import importlib
    import importlib.util

    if attr.startswith("__"):
        return None
    fullname = f"{module.__name__}.{attr}"
    try:
        if fullname not in sys.modules and importlib.util.find_spec(fullname) is None:
            return None
    except (ImportError, ValueError):
        return None
    return importlib.import_module(fullname)


class _DeferringLoader:
    """Creates the module as ``loader`` would and leaves its code to ``_run_deferred``."""

    def __init__(self, loader: Any, scope: ImportScope | None) -> None:
        self.loader = loader
        self.scope = scope

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = self.loader  # type: ignore[union-attr]
        module.__loader__ = self.loader
        with _guard:
            _pending[module.__name__] = _Pending(module, self.loader, self.scope)
        module.__class__ = DeferredModule


def deferring_spec(name: str, path: Any, target: Any, scope: ImportScope | None = None) -> Any:
    """``name``'s spec as the import system would find it (the other finders, in order), its
    code deferred; None (import it as usual) unless it is plain Python source or bytecode.
    Runnable by the importing thread only until ``scope`` finishes (by any thread without
    one)."""
    from importlib.machinery import SourceFileLoader, SourcelessFileLoader

    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if isinstance(finder, ImportScope) or find_spec is None:
            continue
        spec = find_spec(name, path, target)
        if spec is not None:
            break
    else:
        return None
    if not isinstance(spec.loader, (SourceFileLoader, SourcelessFileLoader)):
        return None  # frozen, built in, an extension, a zip: not deferred
    spec.loader = _DeferringLoader(spec.loader, scope)
    return spec


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
