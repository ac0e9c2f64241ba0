"""Start-up with a Redis state store (issue 21 item 4): redis-py without what reliactl never uses.

reliactl imports redis-py through ``reliactl.state.redisimport.import_redis``: ``redis.asyncio``
(and ``importlib.metadata``) deferred until first used, the OpenTelemetry metrics SDK refused
to that one import. These tests pin that a cron start stays light AND that everything still
works: the fleet lock on a real redis-server, tracing, and a library user's ``redis.asyncio``
and redis-py's own OpenTelemetry metrics in the same process afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from importtime import cron_env, start_reliactl
from redishelpers import RedisServer

HANG = 120.0  # only detects a hang

# Modules that exist only when the package itself ran (not the deferred stand-in, not a
# refused attempt, which -X importtime also lists).
HEAVY = (
    "redis.asyncio.client",
    "redis.asyncio.connection",
    "opentelemetry.metrics._internal",
    "opentelemetry.sdk.metrics._internal",
    "opentelemetry.sdk.resources",
    "psutil",
    "importlib.metadata._meta",
)


def _redis_env(server: RedisServer, namespace: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **cron_env(tmp_path),
        "RELIACTL_STATE__URL": server.url,
        "RELIACTL_STATE__NAMESPACE": namespace,
        **extra,
    }


def _fleet_lock_run(
    server: RedisServer, namespace: str, tmp_path: Path, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`run --lock --lock-scope fleet` of a job that writes its fencing token, in a fresh
    interpreter under -X importtime: the finished process and what it imported."""
    script = 'echo "$RELIACTL_FENCING_TOKEN" > token'
    argv = ["run", "--lock", "--lock-scope", "fleet", "--lock-name", "startup", "--"]
    env = _redis_env(server, namespace, tmp_path, **extra)
    return start_reliactl([*argv, "sh", "-c", script], env=env, cwd=tmp_path)


def test_fleet_lock_start_runs_no_async_client_nor_otel_sdk(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A cron `run --lock --lock-scope fleet` on a Redis state store takes the lease on the real
    redis-server (the job sees a fencing token), releases it, and imports only redis-py's sync
    client: not redis.asyncio's client (redis-py's ``from redis import asyncio`` ran all of it),
    not the OpenTelemetry metrics SDK (redis.observability imported it when installed, with
    psutil), not importlib.metadata (redis-py asked it for its own version per client)."""
    result, modules = _fleet_lock_run(redis_server, namespace, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int((tmp_path / "token").read_text()) > 0
    client = redis_server.client()
    assert client.get(f"{namespace}:l:{{lock:startup}}") is None  # released
    assert int(client.get(f"{namespace}:l:{{lock:startup}}:fence")) > 0  # taken on the server
    assert "redis.client" in modules and "reliactl.state.redis" in modules
    assert [name for name in HEAVY if name in modules] == []


def test_fleet_lock_start_with_tracing_on_still_traces(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """With OTEL_* naming an exporter, the same run on Redis still takes and releases the fleet
    lock and exports its spans (the SDK reliactl's tracing imports is not the one refused)."""
    result, _modules = _fleet_lock_run(
        redis_server, namespace, tmp_path, OTEL_TRACES_EXPORTER="console"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"name": "run startup"' in result.stderr or '"name": "run startup"' in result.stdout
    assert int((tmp_path / "token").read_text()) > 0
    assert redis_server.client().get(f"{namespace}:l:{{lock:startup}}") is None


LIBRARY_USER = """
import asyncio, sys, threading, types
from importlib.util import find_spec

from reliactl.state.redis import open_redis_store
from reliactl.state.url import parse_state_url

URL, NS = sys.argv[1], sys.argv[2]
store = open_redis_store(parse_state_url(URL), namespace=NS)
store.close()
assert "redis.asyncio.client" not in sys.modules, "redis.asyncio ran at import"

# Several threads read redis.asyncio at once: each gets the one real package.
import redis
bound = redis.asyncio  # bound while deferred (as redis/__init__'s own name is)
seen = []
barrier = threading.Barrier(4)
def first_use():
    barrier.wait()
    seen.append(redis.asyncio.Redis)
threads = [threading.Thread(target=first_use) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert len(seen) == 4 and len(set(seen)) == 1, seen

import redis.asyncio
from redis.asyncio import Redis
from redis.asyncio.client import Redis as ClientRedis
assert Redis is ClientRedis is seen[0]
assert sys.modules["redis.asyncio"] is redis.asyncio is bound
assert type(redis.asyncio) is types.ModuleType
assert redis.asyncio.observability.recorder  # imported while deferred: still an attribute

async def round_trip():
    client = Redis.from_url(URL)
    await client.set(NS + ":library", b"async")
    value = await client.get(NS + ":library")
    await client.aclose()
    return value
assert asyncio.run(round_trip()) == b"async"

import importlib.metadata
assert importlib.metadata.version("redis") == redis.__version__
import redis.observability.metrics as m, redis.observability.providers as p
assert m.OTEL_AVAILABLE is (find_spec("opentelemetry.metrics") is not None)
assert p.OTEL_AVAILABLE is (find_spec("opentelemetry.sdk.metrics") is not None)
print("library ok")
"""


def _python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RELIACTL_"))}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG,
    )


def test_library_user_gets_a_working_redis_asyncio_after_reliactl(
    redis_server: RedisServer, namespace: str
) -> None:
    """After reliactl imported redis-py lazily, the application's ``import redis.asyncio`` gets
    the real package (same object everywhere, also to threads reading it at once and to
    whoever bound it before its first use: it runs in place) and an async
    client does a round trip on the real redis-server; ``importlib.metadata`` works and
    redis-py's OTEL_AVAILABLE flags say what is installed."""
    result = _python(LIBRARY_USER, redis_server.url, namespace)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "library ok" in result.stdout


REDIS_METRICS = """
import sys
from reliactl.state.redisimport import import_redis

redis = import_redis()
assert "opentelemetry.sdk.metrics" not in sys.modules
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis.observability.config import OTelConfig
from redis.observability.providers import get_observability_instance

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
get_observability_instance().init(OTelConfig())
client = redis.Redis.from_url(sys.argv[1])
client.ping()
client.close()
data = reader.get_metrics_data()
names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
print(sorted(names))
assert any(name.startswith("db.client.connection") for name in names), names
"""


def test_redis_py_metrics_still_work_when_the_application_enables_them(
    redis_server: RedisServer,
) -> None:
    """An application that enables redis-py's own OpenTelemetry metrics after reliactl imported
    redis-py (the SDK refused at that import) still gets them recorded: redis-py's
    OTEL_AVAILABLE was put back, so its collector is built."""
    result = _python(REDIS_METRICS, redis_server.url)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-1000:]


FIRST_IMPORTER = """
import sys, types
import redis

import reliactl.state.redis  # noqa: F401
assert type(sys.modules["redis.asyncio"]) is types.ModuleType
assert "redis.asyncio.client" in sys.modules
print("untouched")
"""


def test_a_process_that_imported_redis_first_keeps_it_as_it_is() -> None:
    """When the application imported redis-py before reliactl, reliactl uses that module and
    changes nothing in it (redis.asyncio is the real, fully run package)."""
    result = _python(FIRST_IMPORTER)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "untouched" in result.stdout


UNGUARDED = """
import sys
from reliactl.state.redisimport import import_redis

redis = import_redis()
assert redis.__file__.startswith(sys.argv[1]), redis.__file__
assert redis.get_meter_provider is not None and redis.asyncio.MARK == 1
print("imported whole")
"""


def test_a_redis_py_that_needs_a_refused_module_is_imported_whole(tmp_path: Path) -> None:
    """A redis-py whose import does not survive the refusal (a future version importing
    opentelemetry.metrics outside try/except) is imported whole instead of failing: the
    half-run modules are forgotten and ``import redis`` runs again without the finder."""
    pytest.importorskip("opentelemetry.metrics")  # the [otel] extra, in the dev venv
    package = tmp_path / "redis"
    (package / "asyncio").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from redis import asyncio\nfrom opentelemetry.metrics import get_meter_provider\n"
    )
    (package / "asyncio" / "__init__.py").write_text("MARK = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RELIACTL_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-c", UNGUARDED, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported whole" in result.stdout


def test_a_deferred_package_loads_for_other_threads_only_after_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machinery itself (reliactl/_imports.py): while the import that deferred a package
    runs, another thread probing it in ``sys.modules`` gets AttributeError and starts no
    import (it could need a module whose import lock the importing thread holds); once the
    import is over, any thread's first read runs the package in place, and ``sys.modules``, the
    parent's attribute and whoever bound it while deferred hold the one real module."""
    import threading
    import types

    from reliactl._imports import DeferredModule, ImportScope

    (tmp_path / "rl_deferpkg" / "sub").mkdir(parents=True)
    (tmp_path / "rl_deferpkg" / "__init__.py").write_text(
        "from rl_deferpkg import sub\nimport rl_deferhook\nrl_deferhook.during()\n"
    )
    (tmp_path / "rl_deferpkg" / "sub" / "__init__.py").write_text("X = 42\n")
    (tmp_path / "rl_deferhook.py").write_text("def during():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("rl_deferpkg", "rl_deferpkg.sub", "rl_deferhook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import rl_deferhook  # type: ignore[import-not-found]

    seen: dict[str, object] = {}

    def in_other_thread(key: str, read: Callable[[], object]) -> None:
        thread = threading.Thread(target=lambda: seen.setdefault(key, read()))
        thread.start()
        thread.join(HANG)

    def during() -> None:
        sub = sys.modules["rl_deferpkg.sub"]
        assert isinstance(sub, DeferredModule)
        in_other_thread("during", lambda: getattr(sub, "X", "absent"))

    monkeypatch.setattr(rl_deferhook, "during", during)
    with ImportScope(defer=["rl_deferpkg.sub"]):
        import rl_deferpkg  # type: ignore[import-not-found]
    try:
        assert seen == {"during": "absent"}
        bound = rl_deferpkg.sub
        in_other_thread("after", lambda: rl_deferpkg.sub.X)
        assert seen["after"] == 42
        real = sys.modules["rl_deferpkg.sub"]
        assert type(real) is types.ModuleType and rl_deferpkg.sub is real
        assert bound is real and bound.X == 42  # the module bound while deferred ran in place
    finally:
        for name in ("rl_deferpkg", "rl_deferpkg.sub", "rl_deferhook"):
            sys.modules.pop(name, None)


OTHER_THREAD = """
import sys, threading, types
assert "importlib.metadata" not in sys.modules and "redis" not in sys.modules
import reliactl.state  # reliactl itself, as a library user would have it
errors, versions, stop = [], [], threading.Event()

def other():
    # Uses importlib.metadata and redis.asyncio the moment they appear in sys.modules, that
    # is while the main thread is still inside `import redis`.
    while not stop.is_set() and "importlib.metadata" not in sys.modules:
        pass
    try:
        from importlib.metadata import version
        versions.append(version("redis"))
        while not stop.is_set() and "redis.asyncio" not in sys.modules:
            pass
        from redis.asyncio import Redis
        versions.append(Redis.__name__)
    except Exception as exc:
        errors.append(repr(exc))

thread = threading.Thread(target=other)
thread.start()
import reliactl.state.redis
stop.set()
thread.join(60)
assert errors == [], errors
assert len(versions) == 2 and versions[1] == "Redis", versions
for name in ("importlib.metadata", "redis.asyncio"):
    assert type(sys.modules[name]) is types.ModuleType, name  # nothing deferred
print("ok")
"""


def test_with_other_threads_running_nothing_is_deferred() -> None:
    """A threaded library user: while one thread imports the Redis store, another that uses
    ``importlib.metadata`` or ``redis.asyncio`` the moment they appear gets working modules.
    With another thread running, import_redis defers nothing (review: that thread got
    ImportError/AttributeError from the half-imported deferred modules)."""
    done = subprocess.run(
        [sys.executable, "-c", OTHER_THREAD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


SUBMODULE_FIRST = """
import sys, types
from reliactl.state.redisimport import import_redis

redis = import_redis()
from redis.asyncio.client import Redis  # the application's first use: a submodule
assert Redis.__module__ == "redis.asyncio.client"
import redis.asyncio
assert redis.asyncio.Redis is Redis and redis.asyncio.from_url
assert type(sys.modules["redis.asyncio"]) is types.ModuleType
print("submodule first ok")
"""


def test_importing_a_submodule_of_the_deferred_package_first_works() -> None:
    """After reliactl imported redis-py, an application whose first use of the async client
    is ``from redis.asyncio.client import Redis`` gets it: redis-py's client module imports
    ``from redis.asyncio import _himport_exec`` while it loads, which must import that
    submodule, not run ``redis.asyncio``'s ``__init__`` (it would import the half-loaded
    client again and fail on the circular import); the package then runs at its own first
    read and names the same class."""
    result = _python(SUBMODULE_FIRST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submodule first ok" in result.stdout


def test_a_submodule_imported_first_loads_its_siblings_without_running_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machinery itself: with package ``rl_circpkg`` deferred (its ``__init__`` imports
    ``rl_circpkg.mod``), importing ``rl_circpkg.mod`` first (which does ``from rl_circpkg
    import helper``) loads mod and helper without running the package; the package's first
    read of one of its own names then runs it, in place, once."""
    import types

    from reliactl._imports import DeferredModule, ImportScope

    package = tmp_path / "rl_circpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import builtins\nbuiltins.rl_circpkg_runs = getattr(builtins, 'rl_circpkg_runs', 0) + 1\n"
        "from rl_circpkg.mod import X\n"
    )
    (package / "mod.py").write_text("from rl_circpkg import helper\nX = helper.Y\n")
    (package / "helper.py").write_text("Y = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("rl_circpkg", "rl_circpkg.mod", "rl_circpkg.helper")
    import builtins

    try:
        with ImportScope(defer=["rl_circpkg"]):
            import rl_circpkg  # type: ignore[import-not-found]
        assert type(rl_circpkg) is DeferredModule
        from rl_circpkg.mod import X  # type: ignore[import-not-found]

        assert X == 7 and not hasattr(builtins, "rl_circpkg_runs")
        assert rl_circpkg.X == 7  # the package's own name: runs it
        assert builtins.rl_circpkg_runs == 1  # type: ignore[attr-defined]
        assert type(rl_circpkg) is types.ModuleType and sys.modules["rl_circpkg"] is rl_circpkg
    finally:
        for name in names:
            sys.modules.pop(name, None)
        if hasattr(builtins, "rl_circpkg_runs"):
            del builtins.rl_circpkg_runs
