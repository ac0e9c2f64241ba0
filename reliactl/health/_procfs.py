"""Linux /proc readers for the built-in checks, so a cron run need not import psutil.

Every function returns None when /proc does not answer as expected (another OS, a sandbox);
the caller then falls back to psutil. Values match psutil's on Linux: CPU times in seconds,
memory in bytes, "used" memory as total minus available.
"""

from __future__ import annotations

import os
from collections import defaultdict

_CPU_FIELDS = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def cpu_times() -> dict[str, float] | None:
    """System-wide CPU times in seconds, as psutil.cpu_times()._asdict() on Linux."""
    text = _read("/proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    values = text.split("\n", 1)[0].split()[1:]
    ticks = _ticks()
    try:
        return {name: int(v) / ticks for name, v in zip(_CPU_FIELDS, values, strict=False)}
    except ValueError:
        return None


def meminfo() -> dict[str, int] | None:
    """/proc/meminfo in bytes (MemTotal, MemAvailable, SwapTotal, SwapFree, ...)."""
    text = _read("/proc/meminfo")
    if not text:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            number = int(parts[0])
        except ValueError:
            continue
        out[key] = number * 1024 if len(parts) > 1 and parts[1] == "kB" else number
    if "MemTotal" not in out or "MemAvailable" not in out:
        return None
    return out


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    end = text.rfind(")")
    if end < 0:
        return None
    return text[end + 2 :].split()


def _rss(pid: int | str) -> int | None:
    text = _read(f"/proc/{pid}/statm")
    if not text:
        return None
    try:
        return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, IndexError, OSError):
        return None


def tree_rss(pid: int) -> tuple[int, int] | None:
    """(RSS bytes, process count) of ``pid`` and its descendants; vanished ones skipped."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    children: dict[int, list[int]] = defaultdict(list)
    for entry in entries:
        fields = _stat_fields(entry)
        if fields is None or len(fields) < 2:
            continue  # gone since the listing
        try:
            children[int(fields[1])].append(int(entry))
        except ValueError:
            continue
    total = count = 0
    todo = [pid]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        rss = _rss(current)
        if rss is not None:
            total += rss
            count += 1
        todo.extend(children.get(current, ()))
    return (total, count) if count else None


def boot_time() -> float | None:
    text = _read("/proc/stat")
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (ValueError, IndexError):
                return None
    return None


def self_info() -> dict[str, float | int | str] | None:
    """This process's pid, name, RSS, threads, fds, CPU seconds and start time."""
    fields = _stat_fields("self")
    status = _read("/proc/self/status")
    rss = _rss("self")
    boot = boot_time()
    if fields is None or status is None or rss is None or boot is None or len(fields) < 20:
        return None
    info: dict[str, float | int | str] = {"pid": os.getpid(), "rss": rss}
    for line in status.splitlines():
        if line.startswith("Name:"):
            info["name"] = line.split(":", 1)[1].strip()
        elif line.startswith("Threads:"):
            info["threads"] = int(line.split()[1])
    try:
        info["fds"] = len(os.listdir("/proc/self/fd")) - 1
    except OSError:
        pass
    times = os.times()
    info["cpu_seconds"] = times.user + times.system
    try:
        info["create_time"] = boot + int(fields[19]) / _ticks()
    except ValueError:
        pass
    return info
