"""Fixtures of the state tests: a real redis-server, and one store fixture per backend.

The differential tests (issue 21 item 4): the store talks to Redis through our own RESP
client (``reliactl/state/_resp.py``); every store-level test that opens a Redis store runs
twice, once on our client and once on redis-py's ``Redis`` built from the same settings
(``redishelpers.oracle_client``), so both must give the store the same answers. Tests that
take ``make_store`` get a third backend, "redis-py"; other in-process tests take the
``redis_client`` fixture. CLI end-to-end tests run once (on our client, in the subprocess).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redishelpers import REDIS_SERVER, RedisServer, oracle_client

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (tests keep apart by namespace); stopped at the end."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A private redis-server per test (to kill, stop or fill); all stopped afterwards.
    ``directory``: an earlier server's, to restart from what it saved there (its RDB)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    started: list[RedisServer] = []

    def start(
        *extra: str,
        password: str | None = None,
        port: int | None = None,
        directory: Path | None = None,
    ) -> RedisServer:
        server = RedisServer(
            directory or tmp_path / f"redis{len(started)}", *extra, password=password, port=port
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def namespace() -> str:
    return f"t{next(_namespaces)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: sqlite and redis; also redis-py (the oracle) for store-level tests."""
    explicit = any(
        "backend" in mark.args[0] for mark in metafunc.definition.iter_markers("parametrize")
    )
    if "backend" in metafunc.fixturenames and not explicit:
        names = ["sqlite", "redis"]
        if "make_store" in metafunc.fixturenames:
            names.append("redis-py")
        metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["resp", "redis-py"])
def redis_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on our RESP client, then on redis-py with the same settings (the oracle)."""
    if request.param == "redis-py":
        monkeypatch.setattr("reliactl.state.redis.make_client", oracle_client)
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Any]]:
    """Open a store of the parametrised backend (same data each call); closed afterwards."""
    opened: list[Any] = []
    if backend == "redis-py":
        monkeypatch.setattr("reliactl.state.redis.make_client", oracle_client)

    def make(max_rows: int = 10_000) -> Any:
        if backend == "sqlite":
            from reliactl.state.sqlite import open_store

            store: Any = open_store(tmp_path / "s.db", max_rows=max_rows)
        else:
            from reliactl.state.redis import open_redis_store
            from reliactl.state.url import parse_state_url

            server = request.getfixturevalue("redis_server")
            store = open_redis_store(
                parse_state_url(server.url), namespace=namespace, max_rows=max_rows
            )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def state_env(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, namespace: str
) -> dict[str, str]:
    """The environment that points a subprocess at the parametrised backend's shared store."""
    if backend == "sqlite":
        return {"RELIACTL_STATE__URL": f"sqlite://{tmp_path / 'shared.db'}"}
    return {
        "RELIACTL_STATE__URL": str(request.getfixturevalue("redis_server").url),
        "RELIACTL_STATE__NAMESPACE": namespace,
    }
