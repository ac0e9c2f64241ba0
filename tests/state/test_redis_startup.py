"""Start-up with a Redis state store (issue 21 item 4): no redis-py at all.

The store talks to Redis through its own RESP client (``reliactl/state/_resp.py``). These
tests pin that a cron start with a ``redis://`` state URL (``run --lock`` with a fleet lock,
``health --json``, ``breaker list``) imports no ``redis`` module, and that it still works:
the fleet lock is taken and released on a real redis-server, tracing still exports spans,
and a machine without redis-py installed runs every Redis command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importtime import cron_env, start_reliactl
from redishelpers import RedisServer

HANG = 120.0  # only detects a hang


def _redis_env(server: RedisServer, namespace: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **cron_env(tmp_path),
        "RELIACTL_STATE__URL": server.url,
        "RELIACTL_STATE__NAMESPACE": namespace,
        "RELIACTL_STATE__ON_UNAVAILABLE": "error",
        **extra,
    }


# What the Redis store's own modules no longer pull into a start (sixth session): the
# dataclasses module (state/url.py's StateURL, fleet's SyncReport, leases' LeaseBusy),
# typing, logging (only when a record is unreadable), OpenSSL's _hashlib (EVALSHA digests
# come from the built-in _sha1), asyncio and ssl (a redis:// URL is no TLS).
NOT_AT_START = ("dataclasses", "typing", "logging", "_hashlib", "asyncio", "ssl")


def _redis_py(modules: list[str]) -> list[str]:
    return [name for name in modules if name == "redis" or name.startswith("redis.")]


def _fleet_lock_run(
    server: RedisServer, namespace: str, tmp_path: Path, **extra: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`run --lock --lock-scope fleet` of a job that writes its fencing token, in a fresh
    interpreter under -X importtime: the finished process and what it imported."""
    script = 'echo "$RELIACTL_FENCING_TOKEN" > token'
    argv = ["run", "--lock", "--lock-scope", "fleet", "--lock-name", "startup", "--"]
    env = _redis_env(server, namespace, tmp_path, **extra)
    return start_reliactl([*argv, "sh", "-c", script], env=env, cwd=tmp_path)


def test_fleet_lock_start_imports_no_redis_py(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A cron `run --lock --lock-scope fleet` on a Redis state store takes the lease on the real
    redis-server (the job sees a fencing token), releases it, and imports our RESP client and
    no ``redis`` module at all (redis-py's import alone broke the start-up goal)."""
    result, modules = _fleet_lock_run(redis_server, namespace, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int((tmp_path / "token").read_text()) > 0
    client = redis_server.client()
    assert client.get(f"{namespace}:l:{{lock:startup}}") is None  # released
    assert int(client.get(f"{namespace}:l:{{lock:startup}}:fence")) > 0  # taken on the server
    assert "reliactl.state._resp" in modules and "reliactl.state.redislease" in modules
    assert _redis_py(modules) == []
    assert [name for name in NOT_AT_START if name in modules] == []


@pytest.mark.parametrize(
    ("argv", "cron"),
    [(["health", "--json"], True), (["run", "--", "true"], True), (["breaker", "list"], False)],
)
def test_redis_store_starts_import_no_redis_py(
    argv: list[str], cron: bool, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """`health --json`, a plain `run` and `breaker list` with a redis:// state URL open the
    store through our client (it is imported: the probe sees the path) and import no
    ``redis`` module; the cron lines (`run`, `health`) not even what the store's own modules
    no longer need (NOT_AT_START)."""
    result, modules = start_reliactl(
        argv, env=_redis_env(redis_server, namespace, tmp_path), cwd=tmp_path
    )
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "reliactl.state._resp" in modules
    assert _redis_py(modules) == []
    if cron:  # `breaker list`'s own CLI code needs more (not a cron line)
        assert [name for name in NOT_AT_START if name in modules] == []


def test_fleet_lock_start_with_tracing_on_still_traces(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """With OTEL_* naming an exporter, the same run on Redis still takes and releases the fleet
    lock and exports its spans."""
    result, _modules = _fleet_lock_run(
        redis_server, namespace, tmp_path, OTEL_TRACES_EXPORTER="console"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"name": "run startup"' in result.stderr or '"name": "run startup"' in result.stdout
    assert int((tmp_path / "token").read_text()) > 0
    assert redis_server.client().get(f"{namespace}:l:{{lock:startup}}") is None


WITHOUT_REDIS_PY = (
    "import sys; sys.modules['redis'] = None; sys.argv[0] = 'reliactl';"
    " from reliactl.__main__ import main; main()"
)


def test_every_redis_command_works_without_redis_py_installed(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """With ``import redis`` impossible (redis-py not installed: the ``redis`` extra needs
    nothing now), `state info`, `breaker list` and a fleet-locked `run` work on the real
    redis-server (before: exit 78, "needs the redis extra")."""
    env = {**os.environ, **_redis_env(redis_server, namespace, tmp_path)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_REDIS_PY, *argv],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=HANG,
        )  # fmt: skip

    info = cli("state", "info", "--json")
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["server"]["version"].split(".")[0].isdigit()
    listed = cli("breaker", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    ran = cli("run", "--lock", "--lock-scope", "fleet", "--lock-name", "nopy", "--", "true")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert int(redis_server.client().get(f"{namespace}:l:{{lock:nopy}}:fence")) > 0
