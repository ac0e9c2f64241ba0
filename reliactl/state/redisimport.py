"""``import redis`` as the Redis state store needs it (issue 21 item 4).

redis-py's ``__init__`` starts with ``from redis import asyncio``, which runs the whole
asyncio client (``redis.asyncio.client`` and the sync client under it), and
``redis.observability`` imports the OpenTelemetry metrics SDK when it is installed
(``opentelemetry.sdk.metrics`` pulls psutil, the resources detector, ...). The store uses only
the sync client and never enables redis-py's metrics, yet every cron start with a ``redis://``
state URL paid ~160 ms under ``-X importtime`` for them. ``redis.utils`` also imports
``importlib.metadata`` (~15 ms) for one call, ``metadata.version("redis")``, made when a client
is built without ``driver_info``; the store passes ``driver_info`` with ``redis.__version__``
(:func:`driver_info`), so a cron start never needs it.

:func:`import_redis` imports redis-py through :mod:`reliactl._imports`: ``redis.asyncio``
and ``importlib.metadata`` are deferred (imported, their ``__init__`` run at the first read of
one of their names, e.g. a library user's ``redis.asyncio.Redis``), and
``opentelemetry.metrics`` and ``opentelemetry.sdk.metrics`` are refused for that one import.
redis-py imports both inside ``try/except ImportError`` and only records ``OTEL_AVAILABLE``
(its metrics are opt-in: ``OTelConfig``; the SDK is imported again where they are enabled),
so the flags are put back to what they would have been. The standard library's ``asyncio`` is
still imported: redis-py's sync modules import names from it (``redis._parsers.base``: ``from
asyncio import IncompleteReadError``), so deferring it would not defer anything.
"""

from __future__ import annotations

from typing import Any

REFUSED = ("opentelemetry.metrics", "opentelemetry.sdk.metrics")
DEFERRED = ("redis.asyncio", "importlib.metadata")
# redis-py module -> the refused import whose success its OTEL_AVAILABLE records
_FLAGS = {
    "redis.observability.metrics": "opentelemetry.metrics",
    "redis.observability.providers": "opentelemetry.sdk.metrics",
}


def import_redis() -> Any:
    """redis-py without ``redis.asyncio`` and the OpenTelemetry metrics SDK until used.

    A process that imported redis already gets it as it is; other threads import normally
    throughout (the finder is for this thread and this import only), and with other threads
    running nothing is deferred (``reliactl._imports.only_thread``): ``redis.asyncio`` and
    ``importlib.metadata`` are imported as usual, so another thread can use them at once.
    """
    import sys

    module = sys.modules.get("redis")
    if module is not None:
        return module
    from reliactl._imports import ImportScope, import_lock, only_thread

    with import_lock:
        module = sys.modules.get("redis")
        if module is not None:
            return module
        with ImportScope(skip=REFUSED, defer=DEFERRED if only_thread() else ()) as finder:
            try:
                import redis
            except ImportError as exc:
                if exc.name not in finder.skipped:
                    raise
                # A redis-py that needs a refused module after all (not 8.1's try/except):
                # forget its half-run modules and import it whole, as plain ``import redis``
                # would.
                sys.meta_path.remove(finder)
                for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")]:
                    del sys.modules[name]
                import redis

                return redis
        for owner_name, refused in _FLAGS.items():
            owner = sys.modules.get(owner_name)
            if refused in finder.skipped and owner is not None:
                setattr(owner, "OTEL_AVAILABLE", _installed(refused))  # noqa: B010
        return redis


def _installed(name: str) -> bool:
    """Whether ``import name`` would find it (without running it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def driver_info(redis: Any) -> dict[str, Any]:
    """The client keyword that names redis-py's version for CLIENT SETINFO without asking
    ``importlib.metadata`` (what redis-py does when it is not given): ``redis.__version__``,
    the same string. Empty for an older redis-py without ``DriverInfo``, which then behaves
    as it always did."""
    info = getattr(redis, "DriverInfo", None)
    version = getattr(redis, "__version__", None)
    if info is None or not isinstance(version, str):
        return {}
    try:
        return {"driver_info": info(lib_version=version)}
    except TypeError:  # a DriverInfo of another shape: let redis-py find its version itself
        return {}
