"""Health checks: the built-in system checks and the custom kinds declared in configuration.

A :class:`Check` is a name, a function and its limits. The function takes a
:class:`CheckContext` and returns a :class:`HealthMetric`, a seed-style dict
(``{"status", "value", "message"}``) or an awaitable of either; sync functions run in a
daemon thread, so one that hangs is abandoned at its timeout and never blocks exit.

psutil, aiohttp and httpx are imported inside the functions that need them: importing this
module is cheap, and a run without HTTP checks never loads an HTTP stack.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence

from reliactl import _procfs
from reliactl.durations import format_duration, format_size
from reliactl.health.model import HealthMetric, PerfData, Status, evaluate, worst
from reliactl.ranges import NagiosRange, parse_range
from reliactl.units import printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import asyncio
    from dataclasses import dataclass, replace
    from typing import Any, Protocol

    import aiohttp
    import httpx

    from reliactl.config import (
        AdaptiveSettings,
        CheckSpec,
        ForecastSettings,
        HealthMonitorConfig,
    )
    from reliactl.state.base import RunRecord
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, replace

    # The records' string annotations name Any and Records (a protocol): at run time both
    # stand for object, so typing.get_type_hints and pydantic resolve them without typing.
    Any = Records = object

DEFAULT_TIMEOUT = 10.0
CPU_FIRST_SAMPLE = 0.1  # seconds: only the first run ever (no stored sample) waits this long
CPU_MIN_WINDOW = 1.0  # seconds of wall time a CPU sample must cover to be worth a new figure


if TYPE_CHECKING:  # a protocol is the type checker's only: no typing at run time

    class Records(Protocol):
        """The part of the state store checks use (thread-safe wrappers in monitor.py)."""

        def get(self, kind: Any, key: str) -> dict[str, Any] | None: ...

        def update(
            self, kind: Any, key: str, fn: Callable[[dict[str, Any] | None], dict[str, Any] | None]
        ) -> dict[str, Any] | None: ...

        def runs(self, name: str, limit: int) -> list[RunRecord]: ...


USER_AGENT = "reliactl-health"


def _ssl_setting(verify: bool) -> Any:
    """What the http checks verify TLS against: the system's CAs, as curl and aiohttp's
    default context do (``SSL_CERT_FILE``/``SSL_CERT_DIR`` win; aiohttp loads that context
    once, at import), or certifi's bundle when the system has none; ``False`` for
    ``verify_tls: false``."""
    import ssl

    if not verify:
        return False
    paths = ssl.get_default_verify_paths()
    if (paths.cafile and os.path.exists(paths.cafile)) or (
        paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath)
    ):
        return True
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return True
    return ssl.create_default_context(cafile=certifi.where())


_ca_lock = threading.Lock()


def _import_aiohttp() -> Any:
    """``import aiohttp`` without loading the system CA bundle at import time.

    aiohttp's connector builds two module-level SSL contexts when it is imported, and
    ``set_default_verify_paths`` (reading /etc/ssl/certs/ca-certificates.crt, or whatever
    ``SSL_CERT_FILE`` names) cost 70-140 ms of a 0.3-0.45 s import here (OpenSSL 3 is slow at
    it), for runs that mostly check plain http. While reliactl is the first to import aiohttp,
    the contexts built during that import load their CAs on first use instead (see
    :func:`_defer_default_certs`). It fails closed: a context used by any path that bypasses
    the deferral has no CA at all and rejects every certificate; it never accepts one.
    """

    if "aiohttp.connector" in sys.modules:
        import aiohttp

        return aiohttp
    import ssl

    with _ca_lock:
        real = ssl.SSLContext.set_default_verify_paths
        patched: Any = _defer_default_certs
        ssl.SSLContext.set_default_verify_paths = patched  # type: ignore[method-assign]
        try:
            import aiohttp
        finally:
            ssl.SSLContext.set_default_verify_paths = real  # type: ignore[method-assign]
    return aiohttp


def _defer_default_certs(ctx: Any) -> None:
    """Stand-in for ``SSLContext.set_default_verify_paths`` while aiohttp is imported: the
    context loads the system's default CAs (exactly the real call) the first time it wraps a
    connection, under a lock, before any handshake; ``load_default_cas`` forces it now."""
    import ssl

    base: Any = ssl.SSLContext.__mro__[1]  # _ssl._SSLContext: its method is never patched
    real = base.set_default_verify_paths

    def ensure() -> None:
        if ctx.verify_mode == ssl.CERT_NONE:
            return  # verifies nothing (aiohttp's verify_tls: false context): needs no CA yet
        with _ca_lock:
            if ctx.__dict__.pop("_reliactl_ca_pending", False):
                real(ctx)
                ctx.__dict__.pop("wrap_bio", None)
                ctx.__dict__.pop("wrap_socket", None)

    def wrap_bio(*args: Any, **kwargs: Any) -> Any:
        ensure()
        return ssl.SSLContext.wrap_bio(ctx, *args, **kwargs)

    def wrap_socket(*args: Any, **kwargs: Any) -> Any:
        ensure()
        return ssl.SSLContext.wrap_socket(ctx, *args, **kwargs)

    ctx._reliactl_ca_pending = True
    ctx._reliactl_load_cas = ensure
    ctx.wrap_bio = wrap_bio
    ctx.wrap_socket = wrap_socket


def load_default_cas(ctx: Any) -> None:
    """Load the CAs a context's creation deferred (a no-op for any other context)."""
    ensure = getattr(ctx, "_reliactl_load_cas", None)
    if ensure is not None:
        ensure()


def _proxied() -> bool:
    """Whether the environment names an HTTP proxy: only then does the session read it (and
    NO_PROXY, as httpx did), since aiohttp's ``trust_env`` costs two thread hand-offs per
    request (the proxy and .netrc look-ups)."""
    return any(
        value and name.lower() in ("http_proxy", "https_proxy", "all_proxy")
        for name, value in os.environ.items()
    )


@dataclass(frozen=False)
class CheckContext:
    """What a check may use: persisted records, clocks, a shared HTTP connection pool.

    The ``http`` checks of a run share one aiohttp session (per TLS-verification setting)
    whose pool holds up to ``max_parallel`` connections, so a check that got its slot never
    queues for a connection. aiohttp, not httpx: on 500 checks httpx/httpcore spent 4-5x
    the CPU per request and the run took 2.8x curl's time (issue 21, DESIGN.md).
    :meth:`http_client` still lends an ``httpx.AsyncClient`` to checks that want one.
    """

    records: Records
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    max_parallel: int = 256

    def __post_init__(self) -> None:
        # the run's clients, by TLS-verification setting: state, not fields (a record's
        # fields are public), so neither compared nor printed
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._httpx: dict[bool, httpx.AsyncClient] = {}

    def prepare_http(self, verify: bool = True) -> None:
        """Import aiohttp and build the session now (before any check's clock starts).

        Call it from a coroutine: the session belongs to the running event loop."""
        if verify in self._sessions:
            return
        aiohttp = _import_aiohttp()
        connector = aiohttp.TCPConnector(
            limit=max(1, self.max_parallel), limit_per_host=0, ssl=_ssl_setting(verify)
        )
        self._sessions[verify] = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),  # one check's cookies never reach another
            trust_env=_proxied(),
            timeout=aiohttp.ClientTimeout(total=None),  # each request sets its own
        )

    def http_session(self, verify: bool = True) -> aiohttp.ClientSession:
        """The run's aiohttp session for this TLS-verification setting (the http checks')."""
        self.prepare_http(verify)
        return self._sessions[verify]

    @contextlib.asynccontextmanager
    async def http(self, verify: bool = True) -> AsyncIterator[httpx.AsyncClient]:
        """An httpx client of the run, for one request (kept for checks written against it)."""
        yield await self.http_client(verify)

    async def http_client(self, verify: bool = True) -> httpx.AsyncClient:
        """An httpx client of the run (for a check making its own requests), closed with it."""
        if verify not in self._httpx:
            import httpx

            self._httpx[verify] = httpx.AsyncClient(
                verify=verify,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._httpx[verify]

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        clients, self._httpx = list(self._httpx.values()), {}
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


CheckFunc = Callable[[CheckContext], "Any"]  # the string: no typing at run time

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


def is_coroutine_function(fn: Any) -> bool:
    """``inspect.iscoroutinefunction(fn)``, answered without importing inspect (~5 ms of
    every `health` start: ast, dis, tokenize) for a plain function, the usual check."""
    if type(fn) is types.FunctionType and not hasattr(fn, "_is_coroutine_marker"):
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    import inspect  # methods, partials, marked functions: its full rules

    return inspect.iscoroutinefunction(fn)


@dataclass(frozen=True)
class Check:
    """One check to run: ``func(ctx)`` within ``timeout`` seconds."""

    name: str
    kind: str
    func: CheckFunc
    timeout: float = DEFAULT_TIMEOUT
    debounce: int = 1
    warn: str | None = None
    critical: str | None = None
    adaptive: AdaptiveSettings | None = None  # limits learnt from history (health.adaptive)
    forecast: ForecastSettings | None = None  # warn before the value reaches its limit

    @property
    def is_async(self) -> bool:
        return is_coroutine_function(self.func)


# --------------------------------------------------------------------------- coercion


def coerce_result(check: Check, raw: Any) -> HealthMetric:
    """A check's return value as a HealthMetric named after the check."""
    if isinstance(raw, HealthMetric):
        return replace(
            raw,
            name=check.name,
            kind=raw.kind if raw.kind != "custom" else check.kind,
            warn=raw.warn if raw.warn is not None else check.warn,
            critical=raw.critical if raw.critical is not None else check.critical,
        )
    if isinstance(raw, Mapping):
        return _from_mapping(check, raw)
    if isinstance(raw, bool):
        status = Status.OK if raw else Status.CRITICAL
        return HealthMetric(check.name, status, None, "ok" if raw else "failed", kind=check.kind)
    return HealthMetric(
        check.name,
        Status.UNKNOWN,
        None,
        f"check returned {type(raw).__name__}, expected a dict with status, value and message",
        kind=check.kind,
    )


def _from_mapping(check: Check, raw: Mapping[str, Any]) -> HealthMetric:
    value = raw.get("value")
    number: float | None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        number = float(value)
    else:
        number = None
    message = str(raw.get("message", ""))
    word = raw.get("status")
    status = Status.from_word(word) if word is not None else None
    if status is None and word is not None:
        status = Status.UNKNOWN
        message = f"unknown status {word!r}: {message}".rstrip(": ")
    if status is None:
        warn = parse_range(check.warn) if check.warn else None
        crit = parse_range(check.critical) if check.critical else None
        status = evaluate(number, warn, crit) if number is not None else Status.UNKNOWN
    perf: tuple[PerfData, ...] = ()
    unit = str(raw.get("unit", ""))
    if number is not None:
        perf = (
            PerfData(
                check.name,
                number,
                unit if unit in _NAGIOS_UOM else "",
                check.warn or "",
                check.critical or "",
            ),
        )
    details = {k: v for k, v in raw.items() if k not in ("status", "value", "message", "unit")}
    return HealthMetric(
        check.name,
        status,
        number,
        message or status.value.lower(),
        unit=unit,
        kind=check.kind,
        warn=check.warn,
        critical=check.critical,
        perfdata=perf,
        details=details,
    )


_NAGIOS_UOM = ("", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c")


# --------------------------------------------------------------------------- helpers


def _ranges(
    warn: object, critical: object
) -> tuple[NagiosRange | None, NagiosRange | None, str | None, str | None]:
    w = parse_range(warn) if warn not in (None, "") else None
    c = parse_range(critical) if critical not in (None, "") else None
    return w, c, (str(w) if w else None), (str(c) if c else None)


def _pct(part: float, whole: float) -> float:
    return 0.0 if whole <= 0 else round(100.0 * part / whole, 2)


# --------------------------------------------------------------------------- cpu


def _busy(prev: Mapping[str, float], cur: Mapping[str, float]) -> tuple[float, float] | None:
    """(busy percent, total seconds across cores) between two cpu_times samples, or None."""
    keys = set(prev) & set(cur)
    if not keys or any(cur[k] < prev[k] - 1e-6 for k in keys):
        return None  # a reboot, or a different machine's sample
    # guest time is already counted in user/nice on Linux (psutil does the same)
    total = sum(cur[k] - prev[k] for k in keys if k not in ("guest", "guest_nice"))
    idle = sum(cur[k] - prev[k] for k in keys if k in ("idle", "iowait"))
    if total <= 0:
        return 0.0, 0.0  # no time passed between the samples: no figure of its own
    return round(max(0.0, min(100.0, 100.0 * (total - idle) / total)), 2), total


def _cpu_times() -> dict[str, float]:
    times = _procfs.cpu_times()
    if times is not None:
        return times
    import psutil

    return {k: float(v) for k, v in psutil.cpu_times()._asdict().items()}


def cpu_check(warn: object, critical: object, name: str = "cpu_usage") -> Check:
    w, c, ws, cs = _ranges(warn, critical)

    def run(ctx: CheckContext) -> HealthMetric:
        ncpu = os.cpu_count() or 1
        now = ctx.clock()
        cur = _cpu_times()
        found: list[tuple[float, float]] = []

        def advance(prev: dict[str, Any] | None) -> dict[str, Any] | None:
            found.clear()  # the store may call this again (Redis: a lost WATCH race)
            if prev is None or not isinstance(prev.get("times"), dict):
                return prev
            result = _busy(prev["times"], cur)
            if result is None:
                return None  # from before a reboot: discard it and sample afresh
            window = result[1] / ncpu
            if window < CPU_MIN_WINDOW:
                if isinstance(prev.get("percent"), (int, float)):
                    found.append((float(prev["percent"]), float(prev.get("window", window))))
                    return prev  # too recent to measure: report the last figure, keep the sample
                if window <= 0:
                    return prev
            found.append((result[0], window))
            return {"at": now, "times": cur, "percent": result[0], "window": window}

        ctx.records.update("kv", "cpu_times", advance)
        if found:
            percent, window = found[0]
            over = f"over the last {format_duration(window)}"
        else:  # the first run ever on this store (or in memory): sample briefly
            first = _cpu_times()  # not ``cur``: the update may have waited on a busy store
            ctx.sleep(CPU_FIRST_SAMPLE)
            later = _cpu_times()
            measured = _busy(first, later)
            percent = measured[0] if measured else 0.0
            window = measured[1] / ncpu if measured else CPU_FIRST_SAMPLE
            record = {"at": ctx.clock(), "times": later, "percent": percent, "window": window}
            ctx.records.update("kv", "cpu_times", lambda _prev: record)
            over = f"over a first {format_duration(window)} sample"
        status = evaluate(percent, w, c)
        if window < CPU_MIN_WINDOW and status is Status.CRITICAL:
            # A 100 ms sample is one moment, not a trend: it may warn, never page. This holds
            # for a run that reports the stored first sample again (a second run within a
            # second of the first), not only for the run that took it.
            status = Status.WARNING
            over += " (a short sample is never CRITICAL)"
        perf = [PerfData("cpu_usage", percent, "%", ws or "", cs or "", 0, 100)]
        load_text = ""
        with contextlib.suppress(OSError, AttributeError):
            load1, load5, _load15 = os.getloadavg()
            per_core = round(load1 / ncpu, 2)
            perf.append(PerfData("cpu_load1_per_core", per_core, "", "", "", 0))
            perf.append(PerfData("cpu_load5_per_core", round(load5 / ncpu, 2), "", "", "", 0))
            load_text = f"; load {per_core:g} per core ({ncpu} cores)"
        return HealthMetric(
            name,
            status,
            percent,
            f"CPU {percent:.1f}% {over}{load_text}",
            unit="%",
            kind="cpu",
            warn=ws,
            critical=cs,
            perfdata=tuple(perf),
            details={"cores": ncpu, "window": window},
        )

    return Check(name, "cpu", run, warn=ws, critical=cs)


# --------------------------------------------------------------------------- memory


def tree_rss(pid: int | None = None) -> tuple[int, int]:
    """(RSS bytes, process count) of a process and its descendants; vanished ones skipped."""
    fast = _procfs.tree_rss(os.getpid() if pid is None else pid)
    if fast is not None:
        return fast
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0, 0
    total = count = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total, count


def memory_check(
    warn: object, critical: object, threshold_mb: float, name: str = "memory_usage"
) -> Check:
    w, c, ws, cs = _ranges(warn, critical)
    rss_warn = parse_range(round(threshold_mb * 0.8, 3))
    rss_crit = parse_range(threshold_mb)

    def run(ctx: CheckContext) -> HealthMetric:
        total, available = _memory()
        percent = round(100.0 * (total - available) / total, 2) if total else 0.0
        rss, procs = tree_rss()
        rss_mb = round(rss / 1024 / 1024, 2)
        status = worst([evaluate(percent, w, c), evaluate(rss_mb, rss_warn, rss_crit)])
        return HealthMetric(
            name,
            status,
            percent,
            f"memory {percent:.1f}% used ({format_size(available)} available);"
            f" this process tree {rss_mb:.1f}MB RSS in {procs} process"
            f"{'es' if procs != 1 else ''} (limit {threshold_mb:g}MB)",
            unit="%",
            kind="memory",
            warn=ws,
            critical=cs,
            perfdata=(
                PerfData("memory_usage", percent, "%", ws or "", cs or "", 0, 100),
                PerfData("memory_available", float(available), "B", "", "", 0, total),
                PerfData("process_tree_rss", rss_mb, "MB", str(rss_warn), str(rss_crit), 0),
            ),
            details={
                "total": total,
                "available": available,
                "process_tree_rss_mb": rss_mb,
                "threshold_mb": threshold_mb,
            },
        )

    return Check(name, "memory", run, warn=ws, critical=cs)


def _memory() -> tuple[int, int]:
    """(total, available) bytes of system memory."""
    info = _procfs.meminfo()
    if info is not None:
        return info["MemTotal"], info["MemAvailable"]
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.total), int(vm.available)


def _swap() -> tuple[int, int]:
    """(total, used) bytes of swap."""
    info = _procfs.meminfo()
    if info is not None and "SwapTotal" in info and "SwapFree" in info:
        return info["SwapTotal"], info["SwapTotal"] - info["SwapFree"]
    import psutil

    sm = psutil.swap_memory()
    return int(sm.total), int(sm.used)


def swap_check(warn: object, critical: object, name: str = "swap_usage") -> Check:
    w, c, ws, cs = _ranges(warn, critical)

    def run(ctx: CheckContext) -> HealthMetric:
        total, used = _swap()
        if not total:
            return HealthMetric(
                name, Status.OK, 0.0, "no swap configured", unit="%", kind="swap", warn=ws,
                critical=cs, perfdata=(PerfData("swap_usage", 0, "%", ws or "", cs or "", 0, 100),),
            )  # fmt: skip
        percent = round(100.0 * used / total, 2)
        return HealthMetric(
            name,
            evaluate(percent, w, c),
            percent,
            f"swap {percent:.1f}% used ({format_size(used)} of {format_size(total)})",
            unit="%",
            kind="swap",
            warn=ws,
            critical=cs,
            perfdata=(PerfData("swap_usage", percent, "%", ws or "", cs or "", 0, 100),),
        )

    return Check(name, "swap", run, warn=ws, critical=cs)


# --------------------------------------------------------------------------- disk


def disk_check(
    path: str, warn: object, critical: object, name: str | None = None, timeout: float = 10.0
) -> Check:
    w, c, ws, cs = _ranges(warn, critical)
    check_name = name or f"disk_usage:{path}"

    def run(ctx: CheckContext) -> HealthMetric:
        try:
            st = os.statvfs(path)
        except FileNotFoundError:
            return HealthMetric(
                check_name, Status.CRITICAL, None, f"{path}: no such file or directory",
                kind="disk", warn=ws, critical=cs,
            )  # fmt: skip
        except OSError as exc:
            return HealthMetric(
                check_name, Status.UNKNOWN, None, f"{path}: {exc.strerror}", kind="disk",
                warn=ws, critical=cs,
            )  # fmt: skip
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        percent = _pct(used, used + avail)
        perf = [
            PerfData(f"disk_used:{path}", percent, "%", ws or "", cs or "", 0, 100),
            PerfData(f"disk_free:{path}", float(avail), "B", "", "", 0, st.f_blocks * st.f_frsize),
        ]
        statuses = [evaluate(percent, w, c)]
        text = f"{path}: {percent:.1f}% used, {format_size(avail)} free"
        if st.f_files:
            inode_pct = _pct(st.f_files - st.f_ffree, st.f_files)
            statuses.append(evaluate(inode_pct, w, c))
            perf.append(PerfData(f"disk_inodes:{path}", inode_pct, "%", ws or "", cs or "", 0, 100))
            text += f", inodes {inode_pct:.1f}% used"
        return HealthMetric(
            check_name,
            worst(statuses),
            percent,
            text,
            unit="%",
            kind="disk",
            warn=ws,
            critical=cs,
            perfdata=tuple(perf),
            details={"path": path, "free": avail, "used": used},
        )

    return Check(check_name, "disk", run, timeout=timeout, warn=ws, critical=cs)


# --------------------------------------------------------------------------- file handles


def _system_file_handles() -> tuple[int, int] | None:
    # bytes, not text: an "ascii" decoder is a codec lookup and an import on every start
    # (~0.4 ms of `health`); non-digits are a ValueError from int() as they were from decoding
    try:
        with open("/proc/sys/fs/file-nr", "rb") as fh:
            allocated, _unused, maximum = (int(x) for x in fh.read().split()[:3])
    except (OSError, ValueError):
        return None
    return allocated, maximum


def soft_nofile_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` without importing ``resource`` (~0.2 ms of every round):
    on Linux ``sysconf(_SC_OPEN_MAX)`` is that limit (glibc and musl read it with
    getrlimit; the kernel keeps it below ``fs.nr_open``, so it fits an int). None when it is
    unlimited or not known that way: the caller asks ``resource``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        value = os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):  # pragma: no cover - not available
        return None
    return value if value > 0 else None


def _own_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own fd
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.Process().num_fds())
    except Exception:
        return None


def file_handles_check(warn: object, critical: object, name: str = "file_handles") -> Check:
    w, c, ws, cs = _ranges(warn, critical)

    def run(ctx: CheckContext) -> HealthMetric:
        statuses: list[Status] = []
        perf: list[PerfData] = []
        parts: list[str] = []
        value: float | None = None
        system = _system_file_handles()
        if system is not None:
            used, maximum = system
            pct = _pct(used, maximum)
            value = pct
            statuses.append(evaluate(pct, w, c))
            perf.append(PerfData("file_handles_system", pct, "%", ws or "", cs or "", 0, 100))
            parts.append(f"system {used} of {maximum} ({pct:g}%)")
        own = _own_fds()
        soft = soft_nofile_limit()
        if soft is None:  # unlimited, or not Linux: as resource reports it
            import resource

            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft == resource.RLIM_INFINITY:
                soft = 0
        if own is not None and soft != 0:
            pct = _pct(own, soft)
            statuses.append(evaluate(pct, w, c))
            perf.append(PerfData("file_handles_process", pct, "%", ws or "", cs or "", 0, 100))
            parts.append(f"this process {own} of soft limit {soft} ({pct:g}%)")
            value = pct if value is None else max(value, pct)
        if not statuses:
            return HealthMetric(
                name, Status.UNKNOWN, None, "file handle counts are not available",
                kind="file_handles",
            )  # fmt: skip
        return HealthMetric(
            name,
            worst(statuses),
            value,
            "file handles: " + "; ".join(parts),
            unit="%",
            kind="file_handles",
            warn=ws,
            critical=cs,
            perfdata=tuple(perf),
        )

    return Check(name, "file_handles", run, warn=ws, critical=cs)


# --------------------------------------------------------------------------- processes


def _describe_process(proc: Any) -> dict[str, Any]:
    """RSS, threads, fds, CPU and uptime of one process; fields it may not read are left out."""
    import psutil

    info: dict[str, Any] = {"pid": proc.pid}
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return {**info, "vanished": True}  # exited, not yet reaped: not running
    except psutil.NoSuchProcess:
        return {**info, "vanished": True}
    except (psutil.AccessDenied, OSError):
        pass
    getters: dict[str, Callable[[], Any]] = {
        "name": proc.name,
        "rss": lambda: proc.memory_info().rss,
        "threads": proc.num_threads,
        "fds": proc.num_fds,
        "create_time": proc.create_time,
        "cpu_seconds": lambda: sum(proc.cpu_times()[:2]),
    }
    for key, getter in getters.items():
        try:
            info[key] = getter()
        except psutil.NoSuchProcess:
            info["vanished"] = True
            break
        except (psutil.AccessDenied, psutil.ZombieProcess, OSError, AttributeError):
            continue
    return _with_uptime(info)


def _with_uptime(info: dict[str, Any]) -> dict[str, Any]:
    if "create_time" in info:
        uptime = max(0.0, time.time() - info["create_time"])
        info["uptime"] = uptime
        if "cpu_seconds" in info and uptime > 0:
            info["cpu_percent"] = round(100.0 * info["cpu_seconds"] / uptime, 2)
    return info


def find_processes(
    pid: int | None = None, pidfile: str | None = None, name: str | None = None
) -> tuple[list[Any], str]:
    """The matching psutil.Process objects and a description of what was looked for.

    A pidfile needs no trust rule here (a daemon's own ``/run/X/X.pid`` is the usual case;
    the worst a planted one can do is a wrong status): it is opened ``O_NONBLOCK``, must be a
    regular file (``reliactl.trust.open_regular``: else ``Untrusted``, the check UNKNOWN),
    and its content is never quoted (it could be a link to a secret)."""
    import psutil

    if pidfile:
        from reliactl.trust import open_regular

        try:
            fd = open_regular(pidfile)
            try:
                text = os.read(fd, 64).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
        except OSError as exc:
            return [], f"pidfile {pidfile}: {exc.strerror}"
        if not text.isdigit() or int(text) <= 0:
            return [], f"pidfile {pidfile} does not hold a pid"
        pid = int(text)
    if pid is not None:
        try:
            proc = psutil.Process(pid)
            # with a name too, a recycled pid (a stale pidfile) is not mistaken for the service
            if name and not _named(proc.name(), proc.cmdline(), name):
                return [], f"pid {pid} (not {name!r}: a stale pidfile?)"
            return [proc], f"pid {pid}"
        except (psutil.NoSuchProcess, ValueError):
            return [], f"pid {pid}"
        except psutil.AccessDenied:
            return [], f"pid {pid} (access denied)"
    found = []
    for proc in psutil.process_iter(["name", "cmdline"], ad_value=None):
        try:
            if _named(proc.info.get("name"), proc.info.get("cmdline"), name or ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found, f"process {name!r}"


def _named(proc_name: str | None, cmdline: list[str] | None, name: str) -> bool:
    exe = os.path.basename(cmdline[0]) if cmdline else ""
    return name in (proc_name, exe)


def process_check(
    name: str,
    *,
    pid: int | None = None,
    pidfile: str | None = None,
    process_name: str | None = None,
    warn: object = None,
    critical: object = None,
    timeout: float = DEFAULT_TIMEOUT,
    debounce: int = 1,
    own: bool = False,
) -> Check:
    """Process health: RSS, threads, fds, CPU, uptime; "not running" is CRITICAL.

    ``warn``/``critical`` apply to the RSS in MB (summed over every matching process).
    """
    w, c, ws, cs = _ranges(warn, critical)

    def run(ctx: CheckContext) -> HealthMetric:
        own_info = _procfs.self_info() if own else None
        if own_info is not None:
            infos, what = [_with_uptime(dict(own_info))], "this process"
        else:
            if own:
                import psutil

                procs, what = [psutil.Process()], "this process"
            else:
                from reliactl.trust import Untrusted

                try:
                    procs, what = find_processes(pid, pidfile, process_name)
                except Untrusted as exc:
                    return HealthMetric(
                        name, Status.UNKNOWN, None, f"pidfile {exc}; refused", kind="process",
                        warn=ws, critical=cs,
                    )  # fmt: skip
            infos = [i for i in map(_describe_process, procs) if not i.get("vanished")]
        if not infos:
            return HealthMetric(
                name, Status.CRITICAL, 0.0, f"{what} is not running", kind="process",
                warn=ws, critical=cs, perfdata=(PerfData(f"{name}:count", 0, "", "", "", 0),),
            )  # fmt: skip
        rss_mb = round(sum(i.get("rss", 0) for i in infos) / 1024 / 1024, 2)
        threads = sum(i.get("threads", 0) for i in infos)
        perf = [
            PerfData(f"{name}:rss", rss_mb, "MB", ws or "", cs or "", 0),
            PerfData(f"{name}:count", len(infos), "", "", "", 0),
            PerfData(f"{name}:threads", threads, "", "", "", 0),
        ]
        text = f"{what}: {len(infos)} running, {rss_mb:.1f}MB RSS, {threads} threads"
        fds = [i["fds"] for i in infos if "fds" in i]
        if fds:
            perf.append(PerfData(f"{name}:fds", sum(fds), "", "", "", 0))
            text += f", {sum(fds)} fds"
        cpu = [i["cpu_percent"] for i in infos if "cpu_percent" in i]
        if cpu:
            perf.append(PerfData(f"{name}:cpu", round(sum(cpu), 2), "%", "", "", 0))
            text += f", {sum(cpu):.1f}% CPU on average"
        uptimes = [i["uptime"] for i in infos if "uptime" in i]
        if uptimes:
            perf.append(PerfData(f"{name}:uptime", round(min(uptimes), 1), "s", "", "", 0))
            text += f", up {format_duration(min(uptimes))}"
        return HealthMetric(
            name,
            evaluate(rss_mb, w, c),
            rss_mb,
            text,
            unit="MB",
            kind="process",
            warn=ws,
            critical=cs,
            perfdata=tuple(perf),
            details={"processes": infos},
        )

    return Check(name, "process", run, timeout=timeout, debounce=debounce, warn=ws, critical=cs)


# --------------------------------------------------------------------------- custom kinds


DEFAULT_MAX_RESPONSE = 10 * 1024 * 1024


def http_check(
    spec: CheckSpec, timeout: float, max_response_size: int = DEFAULT_MAX_RESPONSE
) -> Check:
    """Request ``spec.url``; the status, the latency and (``body_contains``) the body decide.

    The timeout bounds the whole request, the body included, whatever the server does (a
    trickling answer is cut off). The body is read only for ``body_contains``, and then at
    most ``max_response_size`` bytes of it: a huge answer costs no more memory than that."""
    w, c, ws, cs = _ranges(spec.warn, spec.critical)
    expected = tuple(spec.expect_status)
    # answer "no answer" (CRITICAL) ourselves before the monitor's backstop (UNKNOWN)
    inner = timeout * 0.8 if timeout < 2 else timeout - 0.3
    tls = spec.verify_tls and spec.url.lower().startswith("https:")

    async def run(ctx: CheckContext) -> HealthMetric:
        import asyncio

        session = ctx.http_session(spec.verify_tls)
        import aiohttp

        if tls:  # the CAs aiohttp's import did not load, once per run, before the clock
            load_default_cas(getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None))
        started = time.monotonic()  # the check's clock: this request's start, not the queue's

        async def fetch() -> tuple[int, float, str, bool]:
            async with session.request(
                spec.method.upper(),
                spec.url,
                headers=dict(spec.headers),
                allow_redirects=False,  # no per-request ClientTimeout: the deadline below
            ) as response:  # bounds it all, and aiohttp's timer cost ~5% of a check's CPU
                latency = round(time.monotonic() - started, 6)
                body, cut = await _read_bounded(response, max_response_size, spec.body_contains)
                return response.status, latency, body, cut

        try:
            # One deadline for all of it, the body included, whatever the server trickles;
            # asyncio.timeout (3.11+) cancels in place, where wait_for makes a task a check.
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(inner):
                    status_code, latency, body, cut = await fetch()
            else:  # pragma: no cover - Python 3.10
                status_code, latency, body, cut = await asyncio.wait_for(fetch(), inner)
        except asyncio.TimeoutError:  # aiohttp's own timeouts derive from it
            return _metric(
                spec, Status.CRITICAL, None, f"no answer within {format_duration(inner)}"
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _metric(spec, Status.CRITICAL, None, f"{type(exc).__name__}: {exc}".rstrip(": "))
        perf = (PerfData(f"{spec.name}:time", latency, "s", ws or "", cs or "", 0),)
        ok_status = status_code in expected if expected else 200 <= status_code < 400
        statuses = [evaluate(latency, w, c)]
        text = f"HTTP {status_code} in {latency * 1000:.0f}ms"
        if not ok_status:
            statuses.append(Status.CRITICAL)
            want = ", ".join(map(str, expected)) if expected else "2xx or 3xx"
            text += f" (expected {want})"
        if spec.body_contains and spec.body_contains not in body:
            statuses.append(Status.CRITICAL)
            text += f"; body does not contain {spec.body_contains!r}"
            if cut:
                text += f" in its first {format_size(max_response_size)}"
        return _metric(spec, worst(statuses), latency, text, "s", perf)

    return Check(spec.name, "http", run, timeout, spec.debounce, ws, cs)


async def _read_bounded(
    response: aiohttp.ClientResponse, limit: int, wanted: str
) -> tuple[str, bool]:
    """(text of the body's first ``limit`` bytes, whether there was more); "" unless wanted."""
    if not wanted:
        return "", False
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)[:limit]
    return data.decode(response.charset or "utf-8", "replace"), size > limit


def _metric(
    spec: CheckSpec,
    status: Status,
    value: float | None,
    message: str,
    unit: str = "",
    perf: tuple[PerfData, ...] = (),
) -> HealthMetric:
    return HealthMetric(
        spec.name,
        status,
        value,
        message,
        unit=unit,
        kind=spec.kind,
        warn=str(parse_range(spec.warn)) if spec.warn is not None else None,
        critical=str(parse_range(spec.critical)) if spec.critical is not None else None,
        perfdata=perf,
    )


def tcp_check(spec: CheckSpec, timeout: float) -> Check:
    w, c, ws, cs = _ranges(spec.warn, spec.critical)
    inner = max(0.05, timeout * 0.95)
    host, port = spec.host, spec.port

    async def run(ctx: CheckContext) -> HealthMetric:
        import asyncio

        started = time.monotonic()
        where = f"{host}:{port}"
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), inner)
        except asyncio.TimeoutError:
            return _metric(spec, Status.CRITICAL, None, f"{where}: no answer within {inner:g}s")
        except OSError as exc:
            return _metric(spec, Status.CRITICAL, None, f"{where}: {exc.strerror or exc}")
        latency = round(time.monotonic() - started, 6)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        perf = (PerfData(f"{spec.name}:time", latency, "s", ws or "", cs or "", 0),)
        text = f"{where} accepted a connection in {latency * 1000:.1f}ms"
        return _metric(spec, evaluate(latency, w, c), latency, text, "s", perf)

    return Check(spec.name, "tcp", run, timeout, spec.debounce, ws, cs)


MAX_PERF_TEXT = 64 * 1024  # characters of perfdata looked at (MAX_OUTPUT is the same bound)
MAX_PERF_ITEMS = 1000  # items kept: each becomes a perfdata field and a Prometheus series
_PERF_VALUE = (
    r"(?:([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)|(U))([a-zA-Z%]*)"  # value or U, UOM
)


def _perf_items(text: str) -> Iterator[tuple[str, str]]:
    """(label, ``value[UOM];warn;crit;min;max``) of each item, in one left-to-right pass.

    Each character is looked at a bounded number of times (str.find from a position that only
    moves forward), so hostile output (an unclosed quote, one 60 KB word) costs as much as
    ordinary output of the same size. A quoted label ends at a quote not doubled (``''`` is a
    literal quote, as the plugin guidelines say); an unclosed quote ends the perfdata.
    """
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        if text[pos] == "'":
            parts: list[str] = []
            look = pos + 1
            while True:
                close = text.find("'", look)
                if close < 0:
                    return  # an unclosed quote: nothing after it can be read reliably
                if close + 1 < end and text[close + 1] == "'":
                    parts.append(text[look : close + 1])
                    look = close + 2
                    continue
                break
            label = "".join(parts) + text[look:close]
            pos = close + 1
            if pos >= end or text[pos] != "=":
                pos = _next_space(text, pos)
                continue
            field_end = _next_space(text, pos)
            yield label, text[pos + 1 : field_end]
            pos = field_end
        else:
            field_end = _next_space(text, pos)
            label, eq, rest = text[pos:field_end].partition("=")
            if eq:
                yield label, rest
            pos = field_end


def _next_space(text: str, pos: int) -> int:
    """The index of the first whitespace at or after ``pos`` (``len(text)`` if none)."""
    match = _pattern(r"\s").search(text, pos)
    return match.start() if match else len(text)


_COMPILED: dict[str, re.Pattern[str]] = {}


def _pattern(source: str) -> re.Pattern[str]:
    """``re.compile(source)``, at its first use: plugin perfdata's patterns are compiled only
    by a start that parses plugin output (not every `health` start, ~0.4 ms)."""
    compiled = _COMPILED.get(source)
    if compiled is None:
        compiled = _COMPILED[source] = re.compile(source)
    return compiled


def parse_perfdata(text: str, prefix: str = "") -> list[PerfData]:
    """Nagios plugin perfdata (``'label'=value[UOM];warn;crit;min;max ...``); bad items skipped.

    Linear in the input, of which at most MAX_PERF_TEXT characters are read (cut at a space,
    never inside an item) and at most MAX_PERF_ITEMS items kept. A value of ``U`` (the
    guidelines' "unknown") is kept as NaN, not dropped. A label is foreign text: its control,
    separator and bidi characters are escaped here (``units.printable``: ESC is ``\\x1b``),
    once, so the Nagios line, tables, JSON and Prometheus all carry the same clean label.
    """
    perf_value = _pattern(_PERF_VALUE)
    number_re = _pattern(_NUMBER)
    if len(text) > MAX_PERF_TEXT:
        cut = text.rfind(" ", 0, MAX_PERF_TEXT + 1)
        text = text[: cut if cut > 0 else MAX_PERF_TEXT]

    def num(x: str) -> float | None:
        if not number_re.fullmatch(x):
            return None
        number = float(x)
        return number if math.isfinite(number) else None

    out: list[PerfData] = []
    for label, item in _perf_items(text):
        if not label:
            continue
        value_text, _, thresholds = item.partition(";")
        match = perf_value.fullmatch(value_text)
        if match is None:
            continue
        number, unknown, uom = match.groups()
        value = math.nan if unknown else float(number)
        warn, crit, low, high = ([*thresholds.split(";", 4), "", "", "", ""])[:4]
        name = printable(f"{prefix}{label}")
        out.append(PerfData(name, value, uom or "", warn, crit, num(low), num(high)))
        if len(out) >= MAX_PERF_ITEMS:
            break
    return out


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def split_plugin_output(output: str) -> tuple[str, str]:
    """(message, perfdata text) of Nagios plugin output (first line, then ``|`` sections)."""
    lines = output.splitlines()
    if not lines:
        return "", ""
    first, _, perf = lines[0].partition("|")
    perfs = [perf]
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perfs.append(line)
        elif "|" in line:
            in_perf = True
            perfs.append(line.partition("|")[2])
    return first.strip(), " ".join(perfs)


MAX_OUTPUT = 64 * 1024
# Programs run_program is waiting for: a CLI stopped by a signal kills them at once (each runs
# in its own session, so a signal to ours never reaches them; kill -9 of reliactl is their
# lifeline's job, see reliactl.runner.Contained).
_RUNNING: set[Any] = set()


def kill_running_programs() -> int:
    """SIGKILL every process of every program still running; how many programs there were.

    Called from a signal handler (Python runs it on the main thread between bytecodes; set
    operations are atomic under the GIL). A program whose shim may already be reaped is
    skipped, so no recycled pid is hit. Imports nothing: every ``health`` calls this on its way
    out, and with no program run, the runner was never loaded."""
    running = list(_RUNNING)
    for program in running:
        program.kill()
    return len(running)


def run_program(
    argv: Sequence[str], timeout: float, stdin: bytes | None = None, *, leave_running: bool = False
) -> tuple[int | None, str]:
    """(exit code or None on timeout, output) of a program contained as ``run`` contains a job.

    At the timeout the program and every process it started are killed, also ones that
    called setsid or double-forked (it runs under a shim that is their subreaper); if
    reliactl dies, even by SIGKILL, they die too (the shim's lifeline). A descendant that keeps
    the pipe open cannot make this wait past the timeout: once the program has exited, what
    it left running is killed when the output has been quiet for a moment, except with
    ``leave_running`` (command alert sinks): once the program exits on its own within its
    timeout, reliactl stops reading and what it started in the background runs on.
    """
    from reliactl.runner import Contained

    program = Contained(argv, stdin, leave_running=leave_running)
    _RUNNING.add(program)
    try:
        code, out = program.communicate(timeout, MAX_OUTPUT)
    finally:
        _RUNNING.discard(program)
    return code, out.decode("utf-8", "replace")


_EXIT_STATUS = {0: Status.OK, 1: Status.WARNING, 2: Status.CRITICAL, 3: Status.UNKNOWN}


def command_check(spec: CheckSpec, timeout: float) -> Check:
    inner = max(0.05, timeout - 0.2) if timeout > 0.5 else timeout * 0.8

    def run(ctx: CheckContext) -> HealthMetric:
        try:
            code, output = run_program(spec.command, inner)
        except FileNotFoundError:
            return _metric(spec, Status.UNKNOWN, None, f"{spec.command[0]}: command not found")
        except PermissionError:
            return _metric(spec, Status.UNKNOWN, None, f"{spec.command[0]}: permission denied")
        except OSError as exc:
            return _metric(spec, Status.UNKNOWN, None, f"{spec.command[0]}: {exc.strerror}")
        message, perf_text = split_plugin_output(output)
        perf = tuple(parse_perfdata(perf_text, prefix=f"{spec.name}:"))
        if code is None:
            return _metric(
                spec, Status.UNKNOWN, None, f"timed out after {format_duration(inner)}", "", perf
            )
        status = _EXIT_STATUS.get(code)
        if status is None:
            status = Status.UNKNOWN
            message = f"exit status {code} is not a Nagios status (0-3): {message}".rstrip(": ")
        known = bool(perf) and math.isfinite(perf[0].value)  # a plugin's U is no value
        value = perf[0].value if known else None
        unit = perf[0].uom if known else ""
        return _metric(spec, status, value, message or f"exit status {code}", unit, perf)

    return Check(spec.name, "command", run, timeout, spec.debounce, None, None)


def file_age_check(spec: CheckSpec, timeout: float) -> Check:
    w, c, ws, cs = _ranges(spec.warn, spec.critical)
    path = spec.path

    def run(ctx: CheckContext) -> HealthMetric:
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return _metric(spec, Status.CRITICAL, None, f"{path} does not exist")
        except OSError as exc:
            return _metric(spec, Status.UNKNOWN, None, f"{path}: {exc.strerror}")
        age = ctx.clock() - mtime
        note = ""
        if age < 0:
            note = " (its time is in the future)"
            age = 0.0
        age = round(age, 3)
        perf = (PerfData(f"{spec.name}:age", age, "s", ws or "", cs or "", 0),)
        text = f"{path} modified {format_duration(age)} ago{note}"
        return _metric(spec, evaluate(age, w, c), age, text, "s", perf)

    return Check(spec.name, "file_age", run, timeout, spec.debounce, ws, cs)


def python_check(spec: CheckSpec, timeout: float) -> Check:
    module_name, _, func_name = spec.target.partition(":")

    async def run(ctx: CheckContext) -> Any:
        fn = await _in_daemon_thread(lambda: _load_target(module_name, func_name))
        if is_coroutine_function(fn):
            return await fn()
        return await _in_daemon_thread(fn)

    _w, _c, ws, cs = _ranges(spec.warn, spec.critical)
    return Check(spec.name, "python", run, timeout, spec.debounce, ws, cs)


def _load_target(module_name: str, func_name: str) -> Callable[[], Any]:
    import importlib

    module = importlib.import_module(module_name)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise TypeError(f"{module_name}:{func_name} is not a function")
    return fn  # type: ignore[no-any-return]


async def _in_daemon_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` in a daemon thread: if it hangs past the timeout, exit is not blocked."""
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = fn()
            outcome = (True, result)
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop may be gone by now
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="reliactl-check", daemon=True).start()
    return await future


def run_sync_check(check: Check, ctx: CheckContext) -> Awaitable[Any]:
    return _in_daemon_thread(lambda: check.func(ctx))


def custom_check(spec: CheckSpec, config: HealthMonitorConfig) -> Check:
    """The Check of one configured custom check (with its adaptive/forecast settings)."""
    check = _custom_check(spec, config)
    if spec.adaptive is not None or spec.forecast is not None:
        check = replace(check, adaptive=spec.adaptive, forecast=spec.forecast)
    return check


def _custom_check(spec: CheckSpec, config: HealthMonitorConfig) -> Check:
    timeout = spec.timeout if spec.timeout is not None else config.check_timeout
    kind = spec.kind
    if kind == "http":
        return http_check(spec, timeout, config.max_response_size)
    if kind == "tcp":
        return tcp_check(spec, timeout)
    if kind == "command":
        return command_check(spec, timeout)
    if kind == "file_age":
        return file_age_check(spec, timeout)
    if kind == "python":
        return python_check(spec, timeout)
    if kind == "disk":
        warn = spec.warn if spec.warn is not None else config.disk_warn
        crit = spec.critical if spec.critical is not None else config.disk_critical
        return replace(
            disk_check(spec.path, warn, crit, name=spec.name, timeout=timeout),
            debounce=spec.debounce,
        )
    if kind == "process":
        return process_check(
            spec.name,
            pid=spec.pid,
            pidfile=spec.pidfile or None,
            process_name=spec.process_name or None,
            warn=spec.warn,
            critical=spec.critical,
            timeout=timeout,
            debounce=spec.debounce,
        )
    raise ValueError(f"unknown check kind {kind!r}")  # config validation prevents this


def system_checks(config: HealthMonitorConfig, state_dir: str | None = None) -> list[Check]:
    """The built-in checks enabled by ``system_checks``, with the configured thresholds."""
    enabled = set(config.system_checks)
    out: list[Check] = []
    t = config.check_timeout
    if "cpu" in enabled:
        out.append(replace(cpu_check(config.cpu_warn, config.cpu_critical), timeout=t))
    if "memory" in enabled:
        out.append(
            replace(
                memory_check(
                    config.memory_warn, config.memory_critical, config.memory_threshold_mb
                ),
                timeout=t,
            )
        )
    if "swap" in enabled:
        out.append(replace(swap_check(config.swap_warn, config.swap_critical), timeout=t))
    if "disk" in enabled:
        for path in disk_paths(config, state_dir):
            disk = disk_check(path, config.disk_warn, config.disk_critical, timeout=t)
            out.append(replace(disk, forecast=config.disk_forecast))
    if "file_handles" in enabled:
        out.append(
            replace(
                file_handles_check(config.file_handles_warn, config.file_handles_critical),
                timeout=t,
            )
        )
    if "process" in enabled:
        out.append(process_check("process_health", own=True, timeout=t))
    return out


def disk_paths(config: HealthMonitorConfig, state_dir: str | None) -> list[str]:
    """Configured paths, or / and the state directory: one per filesystem."""
    candidates = list(config.disk_paths) or ["/", *([state_dir] if state_dir else [])]
    out: list[str] = []
    seen: set[int] = set()
    for path in candidates:
        try:
            dev = os.stat(path).st_dev
        except OSError:
            out.append(path)  # reported as missing by the check itself
            continue
        if dev in seen and not config.disk_paths:
            continue
        seen.add(dev)
        out.append(path)
    return out


def hostname() -> str:
    from reliactl.hostname import hostname as recorded_hostname

    return recorded_hostname()
