"""reliactl.resources: managed temp files and HTTP clients (the seed's resource_manager)."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import FlakyServer, Reply

from reliactl import config as config_module
from reliactl.resources import (
    cleanup_resources,
    cleanup_resources_sync,
    get_http_client,
    get_http_session,
    get_resource_stats,
    temporary_file,
)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    yield
    cleanup_resources_sync()


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("RELIACTL_RESOURCES__TEMP_DIR", str(d))
    config_module._cached = None
    return d


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer(Reply(200, "hello")) as srv:
        yield srv


@pytest.fixture
def server(flaky: FlakyServer) -> str:
    return flaky.url


# --------------------------------------------------------------------------- temp files


def test_temporary_file_is_private_in_the_configured_dir_and_removed(temp_dir: Path) -> None:
    async def body() -> Path:
        async with temporary_file(suffix=".pdf") as path:
            assert path.parent == temp_dir and path.name.endswith(".pdf")
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            path.write_text("content")
            assert str(path) in get_resource_stats().temp_files
        return path

    path = asyncio.run(body())
    assert not path.exists()
    assert str(path) not in get_resource_stats().temp_files


def test_temporary_file_is_removed_on_an_exception(temp_dir: Path) -> None:
    seen: list[Path] = []

    async def body() -> None:
        async with temporary_file() as path:
            seen.append(path)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        asyncio.run(body())
    assert seen and not seen[0].exists()


def test_temporary_file_is_removed_on_cancellation(temp_dir: Path) -> None:
    seen: list[Path] = []

    async def holder(entered: asyncio.Event) -> None:
        async with temporary_file() as path:
            seen.append(path)
            entered.set()
            await asyncio.sleep(3600)

    async def main() -> None:
        entered = asyncio.Event()
        task = asyncio.create_task(holder(entered))
        await entered.wait()
        assert seen[0].exists()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not seen[0].exists()


def test_temporary_file_works_with_plain_with(tmp_path: Path) -> None:
    with temporary_file(dir=tmp_path, prefix="x-") as path:
        assert path.exists() and path.name.startswith("x-")
    assert not path.exists()


def test_cleanup_resources_removes_temp_files_still_registered(temp_dir: Path) -> None:
    leaked = temporary_file().__enter__()  # never exited: a leak
    assert leaked.exists()
    report = asyncio.run(cleanup_resources())
    assert report.temp_files_removed == 1 and not leaked.exists()
    assert get_resource_stats().temp_files == ()


def test_leaked_temp_files_are_removed_at_interpreter_exit(temp_dir: Path) -> None:
    code = (
        "from reliactl.resources import temporary_file\n"
        "p = temporary_file().__enter__()\n"
        "print(p)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    path = Path(result.stdout.strip())
    assert path.parent == temp_dir
    assert not path.exists()


# --------------------------------------------------------------------------- HTTP clients


def test_same_name_same_async_client_and_cleanup_closes_it(server: str) -> None:
    async def main() -> None:
        client = await get_http_session("api_client")
        assert await get_http_session("api_client") is client
        other = await get_http_session("other")
        assert other is not client
        response = await client.get(server)
        assert response.text == "hello"
        assert "api_client (async)" in get_resource_stats().http_clients
        report = await cleanup_resources()
        assert report.clients_closed == 2
        assert client.is_closed and other.is_closed
        assert get_resource_stats().open_clients == 0
        fresh = await get_http_session("api_client")
        assert fresh is not client and not fresh.is_closed
        await cleanup_resources()

    asyncio.run(main())


def test_session_requests_work_awaited_and_in_the_seeds_async_with_form(
    server: str, flaky: FlakyServer
) -> None:
    """`async with session.get(url) as response:` (the seed's form) and `await session.get(url)`
    both give the response (a real server); the async-with form closes it on exit."""
    import httpx

    async def main() -> None:
        session = await get_http_session("api_client")
        assert isinstance(session, httpx.AsyncClient)
        flaky.script("/json", Reply(body={"ok": True}))
        async with session.get(server + "/json") as response:
            assert isinstance(response, httpx.Response)
            assert response.status_code == 200 and response.json() == {"ok": True}
        assert response.is_closed
        awaited = await session.get(server)
        assert awaited.text == "hello"
        flaky.script("/made", Reply(201, b"made"))
        async with session.post(server + "/made", content=b"payload") as posted:
            assert posted.status_code == 201 and posted.content == b"made"
        assert flaky.requests[-1].body == b"payload"
        assert (await session.request("GET", server)).text == "hello"
        async with session.stream("GET", server) as streamed:  # httpx's own form still works
            assert await streamed.aread() == b"hello"
        await cleanup_resources()

    asyncio.run(main())


def test_async_clients_belong_to_their_event_loop() -> None:
    """A client from a finished asyncio.run is never handed to a new loop."""

    async def get() -> object:
        return await get_http_session("loopy")

    first = asyncio.run(get())
    second = asyncio.run(get())
    assert first is not second


def test_client_timeouts_and_limits_come_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIACTL_RESOURCES__HTTP_TIMEOUT", "5s")
    monkeypatch.setenv("RELIACTL_RESOURCES__HTTP_CONNECT_TIMEOUT", "2s")
    config_module._cached = None
    client = get_http_client("timed")
    assert client.timeout.read == 5.0 and client.timeout.connect == 2.0
    custom = get_http_client("custom", timeout=1.0)
    assert custom.timeout.read == 1.0


def test_sync_twin_is_named_pooled_and_closed_by_cleanup(server: str) -> None:
    client = get_http_client("sync_api")
    assert get_http_client("sync_api") is client
    assert client.get(server).text == "hello"
    report = cleanup_resources_sync()
    assert report.clients_closed == 1 and client.is_closed


# --------------------------------------------------------------------------- stats and gc


def test_stats_report_gc_and_rss() -> None:
    stats = get_resource_stats()
    assert stats.rss_bytes is not None and stats.rss_bytes > 1024 * 1024
    assert len(stats.gc_counts) == 3 and len(stats.gc_collections) == 3


def test_cleanup_runs_gc_and_reports_what_it_freed() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            Node()  # unreachable cycles only gc can free
        report = cleanup_resources_sync()
    finally:
        gc.enable()
    assert report.gc_collected >= 10


def test_importing_resources_does_not_import_httpx() -> None:
    code = "import sys, reliactl.resources; print('httpx' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_public_names_are_exported() -> None:
    import reliactl

    for name in ("temporary_file", "get_http_session", "cleanup_resources", "CleanupReport"):
        assert name in reliactl.__all__
        assert getattr(reliactl, name) is not None
    assert os.path.basename(reliactl.__file__ or "") == "__init__.py"
