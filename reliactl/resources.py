"""Managed resources of a program (the seed's ``resource_manager``): temp files and HTTP clients.

::

    async with temporary_file(suffix=".pdf") as path:   # 0600, removed on exit, even on
        path.write_bytes(data)                           # an exception or a cancellation
    client = await get_http_session("api_client")        # named, pooled httpx.AsyncClient
    report = await cleanup_resources()                   # close clients, remove leftovers, gc

A registry tracks live temp files and clients; ``cleanup_resources()`` (also run at interpreter
exit for what it can do synchronously) removes the files still registered and closes the
clients. ``get_resource_stats()`` reports them with gc counters and the process RSS.

httpx is imported only when a client is first asked for.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import tempfile
import threading
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from reliactl.config import Config


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ResourceCleanupReport:
    """What ``cleanup_resources()`` did."""

    temp_files_removed: int
    clients_closed: int
    gc_collected: int  # objects the forced collection found unreachable
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceStats:
    """Live resources of this process."""

    temp_files: tuple[str, ...]
    http_clients: tuple[str, ...]  # "name (async)" / "name (sync)"
    gc_counts: tuple[int, int, int]  # objects tracked per generation since its last collection
    gc_collections: tuple[int, ...]  # collections run per generation
    rss_bytes: int | None

    @property
    def open_clients(self) -> int:
        return len(self.http_clients)


# --------------------------------------------------------------------------- registry


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.temp_files: dict[str, int] = {}  # path -> pid that created it
        self.async_clients: dict[str, tuple[Any, asyncio.AbstractEventLoop]] = {}
        self.sync_clients: dict[str, Any] = {}
        self.atexit_registered = False

    def ensure_atexit(self) -> None:
        with self.lock:
            if not self.atexit_registered:
                atexit.register(_at_exit)
                self.atexit_registered = True


_registry = _Registry()


def _at_exit() -> None:
    _remove_temp_files()
    for client in _take_sync_clients():
        try:
            client.close()
        except Exception:  # noqa: S110 - interpreter exit: nothing left to report to
            pass


def _remove_temp_files() -> tuple[int, list[str]]:
    with _registry.lock:
        mine = [p for p, pid in _registry.temp_files.items() if pid == os.getpid()]
        for path in mine:
            _registry.temp_files.pop(path, None)
        # a forked child never removes its parent's files
        for path in [p for p, pid in _registry.temp_files.items() if pid != os.getpid()]:
            _registry.temp_files.pop(path, None)
    removed, errors = 0, []
    for path in mine:
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror}")
    return removed, errors


def _take_sync_clients() -> list[Any]:
    with _registry.lock:
        clients = list(_registry.sync_clients.values())
        _registry.sync_clients.clear()
    return clients


# --------------------------------------------------------------------------- temp files


def _config() -> Config:
    from reliactl.config import get_reliability_config

    return get_reliability_config()


def default_temp_dir() -> str:
    """``resources.temp_dir`` from the configuration, else the system temp directory."""
    configured = _config().resources.temp_dir
    return os.path.expanduser(configured) if configured else tempfile.gettempdir()


class temporary_file:  # the seed's name; a context manager (with and async with)
    """A private (0600) temporary file, removed on exit even on an exception or cancellation.

    Use ``async with`` (the seed's form) or plain ``with``; both yield a ``Path``. The file is
    created (empty) before the body runs, in ``dir`` or the configured temp directory.
    """

    def __init__(
        self, suffix: str = "", prefix: str = "reliactl-", dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.suffix = suffix
        self.prefix = prefix
        self.dir = dir
        self.path: Path | None = None

    def _create(self) -> Path:
        directory = os.fspath(self.dir) if self.dir is not None else default_temp_dir()
        _registry.ensure_atexit()
        fd, name = tempfile.mkstemp(suffix=self.suffix, prefix=self.prefix, dir=directory)
        os.close(fd)
        with _registry.lock:
            _registry.temp_files[name] = os.getpid()
        self.path = Path(name)
        return self.path

    def _remove(self) -> None:
        if self.path is None:
            return
        name = str(self.path)
        with _registry.lock:
            _registry.temp_files.pop(name, None)
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Path:
        return self._create()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()

    async def __aenter__(self) -> Path:
        return self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._remove()


# --------------------------------------------------------------------------- HTTP clients


def _client_kwargs(overrides: dict[str, Any]) -> dict[str, Any]:
    import httpx

    res = _config().resources
    kwargs: dict[str, Any] = {
        "timeout": httpx.Timeout(res.http_timeout, connect=res.http_connect_timeout),
        "limits": httpx.Limits(
            max_connections=res.http_max_connections,
            max_keepalive_connections=res.http_max_keepalive,
        ),
    }
    kwargs.update(overrides)
    return kwargs


class PendingResponse:
    """A request of a session client: ``await`` it for the response, or use it as
    ``async with session.get(url) as response:`` (the seed's aiohttp-style form), which
    closes the response on exit. Either way the body is read, as httpx's ``get`` does."""

    __slots__ = ("_coro", "_response")

    def __init__(self, coro: Coroutine[Any, Any, httpx.Response]) -> None:
        self._coro = coro
        self._response: httpx.Response | None = None

    def __await__(self) -> Generator[Any, None, httpx.Response]:
        return self._coro.__await__()

    async def __aenter__(self) -> httpx.Response:
        self._response = await self._coro
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.aclose()


_session_class: type[httpx.AsyncClient] | None = None


def _session_client_class() -> type[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` whose request methods return a PendingResponse (made once,
    on first use, so importing this module never imports httpx)."""
    global _session_class
    if _session_class is not None:
        return _session_class
    import httpx

    class SessionClient(httpx.AsyncClient):
        """httpx.AsyncClient; ``get``/``post``/... also work under ``async with``."""

        def request(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().request(*args, **kwargs))

        def get(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().get(*args, **kwargs))

        def head(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().head(*args, **kwargs))

        def options(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().options(*args, **kwargs))

        def post(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().post(*args, **kwargs))

        def put(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().put(*args, **kwargs))

        def patch(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().patch(*args, **kwargs))

        def delete(self, *args: Any, **kwargs: Any) -> PendingResponse:  # type: ignore[override]
            return PendingResponse(super().delete(*args, **kwargs))

    _session_class = SessionClient
    return SessionClient


async def get_http_session(name: str = "default", **overrides: Any) -> httpx.AsyncClient:
    """The named, pooled ``httpx.AsyncClient`` of this event loop (created on first use).

    Timeouts and pool limits come from the ``resources`` configuration; ``overrides`` are
    passed to ``httpx.AsyncClient`` when the client is created. The same name returns the
    same client until ``cleanup_resources()`` closes it. Its request methods work both as
    ``response = await session.get(url)`` and, as the seed wrote it,
    ``async with session.get(url) as response:`` (the response is an ``httpx.Response``:
    ``response.json()`` is not awaited).
    """

    loop = asyncio.get_running_loop()
    with _registry.lock:
        found = _registry.async_clients.get(name)
        if found is not None and found[1] is loop and not found[0].is_closed:
            existing: httpx.AsyncClient = found[0]
            return existing
    client = _session_client_class()(**_client_kwargs(overrides))
    spare: httpx.AsyncClient | None = None
    with _registry.lock:
        found = _registry.async_clients.get(name)
        if found is not None and found[1] is loop and not found[0].is_closed:
            spare, client = client, found[0]  # another task created it meanwhile
        else:
            _registry.async_clients[name] = (client, loop)
    if spare is not None:
        await spare.aclose()
    _registry.ensure_atexit()
    return client


def get_http_client(name: str = "default", **overrides: Any) -> httpx.Client:
    """The sync twin of ``get_http_session``: a named, pooled ``httpx.Client``."""
    import httpx

    with _registry.lock:
        existing = _registry.sync_clients.get(name)
        if existing is not None and not existing.is_closed:
            found: httpx.Client = existing
            return found
        client = httpx.Client(**_client_kwargs(overrides))
        _registry.sync_clients[name] = client
    _registry.ensure_atexit()
    return client


# --------------------------------------------------------------------------- cleanup, stats


async def cleanup_resources() -> ResourceCleanupReport:
    """Close every managed HTTP client, remove temp files still registered, run gc."""
    errors: list[str] = []
    closed = 0
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - always called in a loop
        loop = None
    with _registry.lock:
        async_clients = list(_registry.async_clients.items())
        _registry.async_clients.clear()
    for name, (client, owner) in async_clients:
        if client.is_closed:
            continue
        if owner is loop:
            try:
                await client.aclose()
                closed += 1
            except Exception as exc:
                errors.append(f"http client {name}: {exc}")
        # A client of another (finished) loop cannot be awaited here: it is dropped.
    closed_sync, sync_errors = _close_sync_clients()
    removed, file_errors = _remove_temp_files()
    collected = gc.collect()
    return ResourceCleanupReport(
        removed, closed + closed_sync, collected, tuple(errors + sync_errors + file_errors)
    )


def cleanup_resources_sync() -> ResourceCleanupReport:
    """``cleanup_resources`` for code without an event loop (async clients are dropped)."""
    with _registry.lock:
        _registry.async_clients.clear()
    closed, errors = _close_sync_clients()
    removed, file_errors = _remove_temp_files()
    collected = gc.collect()
    return ResourceCleanupReport(removed, closed, collected, tuple(errors + file_errors))


def _close_sync_clients() -> tuple[int, list[str]]:
    closed, errors = 0, []
    for client in _take_sync_clients():
        if client.is_closed:
            continue
        try:
            client.close()
            closed += 1
        except Exception as exc:
            errors.append(f"http client: {exc}")
    return closed, errors


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover
        return None


def get_resource_stats() -> ResourceStats:
    """Live temp files and clients, gc counters and the RSS of this process."""
    with _registry.lock:
        temp_files = tuple(sorted(p for p, pid in _registry.temp_files.items()))
        clients = [
            f"{name} (async)"
            for name, (client, _) in _registry.async_clients.items()
            if not client.is_closed
        ]
        clients += [
            f"{name} (sync)"
            for name, client in _registry.sync_clients.items()
            if not client.is_closed
        ]
    count = gc.get_count()
    return ResourceStats(
        temp_files=temp_files,
        http_clients=tuple(sorted(clients)),
        gc_counts=(count[0], count[1], count[2]),
        gc_collections=tuple(int(s.get("collections", 0)) for s in gc.get_stats()),
        rss_bytes=_rss_bytes(),
    )


__all__ = [
    "PendingResponse",
    "ResourceCleanupReport",
    "ResourceStats",
    "cleanup_resources",
    "cleanup_resources_sync",
    "default_temp_dir",
    "get_http_client",
    "get_http_session",
    "get_resource_stats",
    "temporary_file",
]
