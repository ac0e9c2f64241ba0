"""Linux /proc readers: the one owner of reading /proc (and pid liveness) in reliactl.

Used by the built-in health checks (so a cron run need not import psutil), the lock layer
and the stale-lock sweeper (is a recorded holder still the process that took the lock?),
the breaker (is a half-open trial's process gone?), the runner (job processes, cgroups) and
run history (is a "running" record's reliactl gone?).

Every function returns None when /proc does not answer as expected (another OS, a sandbox);
the caller then falls back (to psutil for the checks). Values match psutil's on Linux: CPU
times in seconds, memory in bytes, "used" memory as total minus available.
"""

from __future__ import annotations

import os
from collections import defaultdict

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from collections.abc import Callable

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


def read_bytes(path: str) -> bytes | None:
    """The whole of a /proc (or cgroupfs) file, None if it cannot be read (gone, refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):  # mountinfo on a busy host exceeds one read
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    data = read_bytes(path)
    return None if data is None else data.decode("ascii", "replace")


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


def stat_fields(pid: int | str) -> list[str] | None:
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


_PF_FORKNOEXEC = 0x40  # /proc/PID/stat flags: forked, has not exec'd yet (include/linux/sched.h)


def tree_rss(
    pid: int, *, include_root: bool = True, skip_unexeced: bool = False
) -> tuple[int, int] | None:
    """(RSS bytes, process count) of ``pid`` and its descendants; vanished ones skipped;
    None when no process could be read. The one reader for the health memory check (its
    own tree) and `run --memory-max`'s RSS fallback (the job's tree, whose root is the shim:
    ``include_root=False``, ``skip_unexeced=True``).

    ``skip_unexeced`` leaves out a child of ``pid`` that has not exec'd yet (PF_FORKNOEXEC).
    Between the shim's fork and the command's exec (its limits set, its cgroup joined: long
    on a loaded machine) that child is a copy of reliactl, resident as reliactl is (140 MiB
    inside a test run), and the first sample, taken at once, stopped a 5 MiB job over a
    64 MiB --memory-max. The job's own forks are counted (their parent is not the shim); an
    orphan that never exec'd, reparented to the shim, is the one process this leaves out
    (the cgroup limit, where there is one, still holds it)."""
    total = count = 0
    for current in tree_pids(pid) or ():
        if current == pid and not include_root:
            continue
        if skip_unexeced and current != pid:
            stat = stat_fields(current) or []
            try:
                if int(stat[1]) == pid and int(stat[6]) & _PF_FORKNOEXEC:
                    continue
            except (IndexError, ValueError):
                continue  # gone meanwhile
        rss = _rss(current)
        if rss is not None:
            total += rss
            count += 1
    return (total, count) if count else None


def tree_pids(pid: int) -> list[int] | None:
    """``pid`` and its descendants (pid first), None when /proc cannot be listed.

    Each process's children come from its threads' ``/proc/PID/task/TID/children`` (a few
    small reads for a cron `health`'s own tree); where the kernel has no such file
    (CONFIG_PROC_CHILDREN off) from the parent field of every process's stat, which reads a
    file per process on the machine (~0.6-1 ms with 80 processes, issue 21 item 4)."""
    children_of = _children_from_files if _has_children_files() else _children_by_scan()
    if children_of is None:
        return None
    out: list[int] = []
    todo = [pid]
    seen: set[int] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        out.append(current)
        todo.extend(children_of(current))
    return out


_CHILDREN_FILES: bool | None = None


def _has_children_files() -> bool:
    """Whether the kernel lists a thread's children (checked once, on our own main thread)."""
    global _CHILDREN_FILES
    if _CHILDREN_FILES is None:
        me = os.getpid()
        _CHILDREN_FILES = os.path.exists(f"/proc/{me}/task/{me}/children")
    return _CHILDREN_FILES


def _children_from_files(pid: int) -> list[int]:
    """The children of any thread of ``pid``; none when it is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        for field in (read_bytes(f"/proc/{pid}/task/{tid}/children") or b"").split():
            if field.isdigit():
                out.append(int(field))
    return out


def _children_by_scan() -> Callable[[int], list[int]] | None:
    """The children of a pid by the parent field of every process's stat (one scan)."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    children: dict[int, list[int]] = defaultdict(list)
    for entry in entries:
        fields = stat_fields(entry)
        if fields is None or len(fields) < 2:
            continue  # gone since the listing
        try:
            children[int(fields[1])].append(int(entry))
        except ValueError:
            continue
    return lambda pid: children.get(pid, [])


def boot_time() -> float | None:
    """Epoch seconds the machine booted (btime in /proc/stat)."""
    text = _read("/proc/stat")
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (ValueError, IndexError):
                return None
    return None


def start_time(pid: int) -> float | None:
    """Epoch seconds ``pid`` started (None when unknown or gone): with the pid, names a process
    even if the pid is reused later."""
    fields = stat_fields(pid)
    boot = boot_time()
    if fields is None or boot is None:
        return None
    try:
        return boot + int(fields[19]) / _ticks()
    except (ValueError, IndexError):
        return None


def started_after(pid: int, when: float, slack: float = 2.0, *, this_boot: bool = False) -> bool:
    """Did ``pid`` start after ``when`` (epoch seconds, plus ``slack``)? Then it is not the
    process that was recorded at ``when`` (a lock taken, a pidfile written): the pid was
    reused. False when the start time is unknown.

    Start times are the boot time plus the ticks since boot, and the boot time moves with
    every step of the wall clock (``/proc/stat``'s ``btime`` is now minus the uptime) while
    ``when`` does not: after a step forward (a fake-hwclock Raspberry Pi, a resumed VM set by
    NTP) a live process looks started after its record. ``this_boot``: the record cannot
    predate this boot (a file on tmpfs, as ``/run``), so a ``when`` before the boot time as
    computed now means the clock stepped: not judged (False). Otherwise such a record may be
    from before a reboot (its pid now another process's) and is judged. What remains: a step
    forward smaller than the uptime at which ``when`` was recorded, or any step for a record
    on persistent storage, makes a live process look reused (callers refuse, never act)."""
    started = start_time(pid)
    if started is None:
        return False
    if this_boot:
        boot = boot_time()
        if boot is not None and when < boot:
            return False
    return started > when + slack


def start_ticks(pid: int) -> str | None:
    """The clock ticks since boot at which ``pid`` started (``/proc/PID/stat`` field 22), as
    the kernel writes it: with the pid, names one process whatever the wall clock does."""
    fields = stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def real_uid(pid: int) -> int | None:
    """The real user id of ``pid`` (``/proc/PID/status``' first ``Uid:`` field), or None."""
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("Uid:"):
            try:
                return int(line.split()[1])
            except (ValueError, IndexError):
                return None
    return None


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (on this host); anything but a positive int is
    not a pid, so not alive. Someone else's process (EPERM) is alive."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: exists, another user's
    return True


_OCTAL = frozenset("01234567")


def unescape_mount(text: str) -> str:
    """A path field of /proc/self/mountinfo: the kernel writes space, tab, newline and
    backslash as three octal digits (``\\040``); anything else is left as it is.

    By hand, not ``re``: every ``cleanup`` reads the mount table, and compiling the pattern
    at import imported ``re`` (~2-3 ms) into a start that needs nothing else of it. Equal to
    ``re.sub(r"\\\\([0-7]{3})", ...)`` (tests/test_procfs.py compares them)."""
    if "\\" not in text:
        return text
    parts = text.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) >= 3 and part[0] in _OCTAL and part[1] in _OCTAL and part[2] in _OCTAL:
            out.append(chr(int(part[:3], 8)) + part[3:])
        else:
            out.append("\\" + part)
    return "".join(out)


def self_info() -> dict[str, float | int | str] | None:
    """This process's pid, name, RSS, threads, fds, CPU seconds and start time."""
    fields = stat_fields("self")
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
