"""Exclusive run locks: a thin ``fcntl.flock`` layer with flock(1)'s semantics.

Why not filelock: measured here, importing it costs ~130 ms and an acquire ~270 us, against
~7 us for a raw ``flock``; ``reliactl run`` starts once a minute from cron, so the import
alone would be most of its budget. More importantly the guarantees below are easier to show
in 150 lines than to verify in a dependency:

- the lock file is opened with ``O_NOFOLLOW | O_CLOEXEC | O_CREAT`` and mode 0600: a planted
  symlink is refused (its target is never opened, truncated or re-moded), and no exec'd child
  inherits the descriptor (a child must never be able to release the parent's lock);
- a lock file with more than one hard link is refused (the holder line would truncate the
  linked file), and so is one owned by another user than the caller or root, or writable by
  others (``reliactl.trust.untrusted``): in a sticky shared lock directory anyone may create
  ``NAME.lock`` first, hold it and forge its holder line; such a file is never locked or read;
- the file is never truncated or chmod'ed before the lock is held, and never unlinked on
  release (unlinking lets a waiter lock a dead inode while a newcomer locks a new one);
- after ``flock`` succeeds the path is checked to still name the same inode (another tool may
  have removed a stale lock file in between); if not, the lock is retaken on the new file;
- the holder writes one JSON line ``{"pid", "host", "started_at", "command"}`` so that a busy
  message can name it and ``cleanup --stale-locks`` can judge it;
- a lock on NFS/CIFS/sshfs is refused (flock there is emulated or local-only) unless the
  caller says it knows (``allow_network_fs``): never a fake success.

The lock is released by closing the descriptor, so it is released however the process ends,
including SIGKILL.

Fleet scope (``acquire_fleet``): the same holder line is the value of a lease in the shared
store (``reliactl.state.leases``; Redis), with a random owner token, a new one for each
acquire attempt (see ``acquire_fleet``). The lease expires unless
renewed: ``FleetLock.renew`` is what the supervisor calls every third of the lease, and it
says when the lock is lost (the lease could not be renewed before it expired, or it is gone
or another owner's). Both kinds offer the same face to the runner: ``name``, ``where``,
``env`` (what the command is told), ``renew_at`` (None: never) and ``renew``, ``release``.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Sequence

from reliactl._procfs import pid_alive, started_after, unescape_mount
from reliactl.errors import LockBusyError, LockError, StateUnavailableError
from reliactl.hostname import hostname

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # frozen dataclasses without compiling code at import (issue 21, see _records)
    from reliactl._records import dataclass

if TYPE_CHECKING:
    from reliactl.state.leases import Lease, LeaseService

NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs", "sshfs"}
)
_NAME_OK = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME = 120


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a lock, as written in the lock file."""

    pid: int | None
    host: str | None
    started_at: float | None
    command: str | None

    def describe(self) -> str:
        from reliactl.durations import format_duration

        if self.pid is None:
            return "an unknown process (no holder information in the lock file)"
        parts = [f"pid {self.pid}"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.started_at is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
            age = max(0.0, time.time() - self.started_at)
            parts.append(f"since {stamp} ({format_duration(age)} ago)")
        if self.command:
            parts.append(f"running {self.command!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class LockAttempt:
    """What acquiring cost: seconds waited and how many times the inode changed under us."""

    waited: float
    retakes: int


class HeldLock:
    """An exclusive flock on ``path``; ``release()`` (or closing) frees it. Never unlinks."""

    renew_at: float | None = None  # a flock needs no renewal

    def __init__(self, path: str, fd: int, attempt: LockAttempt) -> None:
        self.path = path
        self.fd = fd
        self.attempt = attempt

    @property
    def held(self) -> bool:
        return self.fd >= 0

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        return base[: -len(".lock")] if base.endswith(".lock") else base

    @property
    def where(self) -> str:
        return self.path

    @property
    def label(self) -> str:
        return f"lock {self.path}"

    @property
    def env(self) -> dict[str, str]:
        """What the command is told about its lock."""
        return {"RELIACTL_LOCK_NAME": self.name}

    def renew(self) -> str | None:
        return None

    def release(self) -> None:
        """Clear the holder line and unlock. Safe to call twice."""
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        try:
            os.ftruncate(fd, 0)  # still held here: the holder line is ours to clear
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


INTERPRETERS = re.compile(
    r"(sh|bash|dash|zsh|ksh|mksh|busybox|env|python[0-9.]*|pypy[0-9.]*|perl|ruby|node|php)"
)


# Options after which an interpreter runs inline code or a module, not a script file.
# Compiled at the first interpreter seen, not at import (every `run` imports this module).
@functools.cache
def _inline_rules() -> tuple[re.Pattern[str], tuple[tuple[re.Pattern[str], frozenset[str]], ...]]:
    shells = re.compile(r"sh|bash|dash|zsh|ksh|mksh|busybox")
    inline = (
        (re.compile(r"(python|pypy)[0-9.]*"), frozenset({"-c", "-m"})),
        (re.compile(r"perl"), frozenset({"-e", "-E"})),
        (re.compile(r"ruby"), frozenset({"-e"})),
        (re.compile(r"node"), frozenset({"-e", "-p", "--eval", "--print"})),
        (re.compile(r"php"), frozenset({"-r"})),
    )
    return shells, inline


def _inline(interpreter: str, arg: str) -> bool:
    """Does ``arg`` make ``interpreter`` run inline code (``sh -c``, ``sh -ec``, ``python -m``)?"""
    shells, inline = _inline_rules()
    if shells.fullmatch(interpreter):
        return arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]
    return any(p.fullmatch(interpreter) and arg in opts for p, opts in inline)


_ENV_WITH_VALUE = frozenset({"-u", "--unset", "-C", "--chdir"})
_LITERAL = re.compile(r"[A-Za-z0-9._]")


def lock_name_for(command: Sequence[str], *, path_env: str | None = None) -> str:
    """The default lock name of a command (see :func:`derive_lock_name`)."""
    return derive_lock_name(command, path_env=path_env)[0]


def derive_lock_name(
    command: Sequence[str], *, path_env: str | None = None
) -> tuple[str, str | None]:
    """The default lock name of a command, and why it may be ambiguous (None when it is not).

    The name encodes the job's identity injectively (:func:`encode_name`), so unrelated
    commands never share a lock. The identity is the resolved real path of the program, or,
    behind ``env`` (its options and ``VAR=value`` words skipped, ``PATH=`` and ``-C`` honoured)
    and interpreters (``sh job.sh``, ``python3 -u job.py``), the real path of the script: so
    ``./job.sh``, ``/abs/job.sh``, ``sh job.sh`` and ``env TZ=UTC /abs/job.sh`` from any
    working directory are one job. Arguments after the program or script do not count.

    Ambiguous (the caller should warn and suggest ``--lock-name``): a program not found,
    and an interpreter running inline code (``sh -c '...'``, ``python3 -m mod``) or no script
    file, named by a hash of its arguments, whose meaning may depend on the working directory.
    """
    if not command:
        raise LockError("no command to derive a lock name from")
    args = list(command)
    search = path_env if path_env is not None else os.environ.get("PATH", os.defpath)
    cwd = ""
    while True:
        program = args[0]
        resolved = _resolve(program, search, cwd)
        if resolved is None:
            return encode_name("\0" + program), (
                f"{program!r} was not found, so the lock is named after the word itself"
            )
        base = os.path.basename(resolved)
        if base == "env" and len(args) > 1:
            rest, search, cwd, odd = _skip_env(args[1:], search, cwd)
            if odd is not None or not rest:
                return _hashed(resolved, args[1:]), odd or "env without a command"
            args = rest
            continue
        if len(args) == 1 or not INTERPRETERS.fullmatch(base):
            return encode_name(resolved), None
        for arg in args[1:]:
            if _inline(base, arg):
                return _hashed(resolved, args[1:]), (
                    f"{base} {arg} runs inline code, so the lock is named after a hash of the"
                    " arguments (which may mean different things in different directories)"
                )
            if arg.startswith("-") or "=" in arg:
                continue
            candidate = os.path.join(cwd, arg)
            if os.path.isfile(candidate):
                return encode_name(os.path.realpath(candidate)), None
        return _hashed(resolved, args[1:]), (
            f"no script file found among the arguments of {base}, so the lock is named after"
            " a hash of them"
        )


def _hashed(resolved: str, args: Sequence[str]) -> str:
    import hashlib

    digest = hashlib.sha256("\0".join(args).encode("utf-8", "surrogateescape")).hexdigest()
    return encode_name(resolved) + "%00" + digest[:16]


def _resolve(program: str, search: str, cwd: str) -> str | None:
    """The real path of ``program`` as exec would find it, or None when there is none."""
    if "/" in program:
        candidate = os.path.join(cwd, program)
        return os.path.realpath(candidate) if os.path.exists(candidate) else None
    found = _which(program, search)
    return os.path.realpath(found) if found else None


def _skip_env(args: list[str], search: str, cwd: str) -> tuple[list[str], str, str, str | None]:
    """env(1)'s own words skipped: (the command, its PATH, its directory, odd usage or None)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in _ENV_WITH_VALUE and i + 1 < len(args):
            if arg in ("-C", "--chdir"):
                cwd = os.path.join(cwd, args[i + 1])
            i += 2
            continue
        if arg.startswith("--chdir="):
            cwd = os.path.join(cwd, arg.split("=", 1)[1])
        elif arg.startswith(("-S", "--split-string")):
            return [], search, cwd, "env -S splits its argument itself"
        elif not (arg.startswith("-") or "=" in arg):
            break
        elif "=" in arg and not arg.startswith("-"):
            name, _, value = arg.partition("=")
            if name == "PATH":
                search = value
        i += 1
    return args[i:], search, cwd, None


def _which(program: str, path: str) -> str | None:
    """shutil.which without importing shutil (cron pays every import)."""
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def encode_name(identity: str) -> str:
    """An injective, file-name-safe form of ``identity`` (as systemd-escape, with ``%``).

    Letters, digits, ``.`` and ``_`` stay; ``/`` becomes ``-``; every other byte (``-`` and
    ``%`` included) becomes ``%XX``; one leading ``/`` is dropped and a leading ``.`` escaped.
    ``/srv/app_backup/run`` -> ``srv-app_backup-run``, ``/srv/app/backup_run`` ->
    ``srv-app-backup_run``, ``my job.sh`` -> ``my%20job.sh``. Longer than MAX_NAME: cut, with
    ``%%`` and a hash of the whole identity (``%%`` never occurs otherwise).
    """
    text = identity[1:] if identity.startswith("/") else identity
    out = []
    for char in text:
        if _LITERAL.fullmatch(char):
            out.append(char)
        elif char == "/":
            out.append("-")
        else:
            out.extend(f"%{b:02x}" for b in char.encode("utf-8", "surrogateescape"))
    name = "".join(out)
    if name.startswith("."):
        name = "%2e" + name[1:]
    if not name:
        name = "%00"
    if len(name) > MAX_NAME:
        import hashlib

        digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        name = name[: MAX_NAME - 18] + "%%" + digest
    return name


def check_name(name: str) -> str:
    """``name`` if usable as a lock name (letters, digits, ``._-``, not starting with a dot)."""
    if not _NAME_OK.fullmatch(name) or name.startswith(".") or len(name) > MAX_NAME:
        raise LockError(
            f"invalid lock name {name!r}: use letters, digits, '.', '_' and '-' "
            f"(at most {MAX_NAME}, not starting with '.')"
        )
    return name


def lock_path(lock_dir: str, name: str) -> str:
    return os.path.join(lock_dir, check_name(name) + ".lock")


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux), or None if unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mount_point = unescape_mount(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            fstype = right.split()[0] if right.split() else ""
            best = (len(mount_point), fstype)
    return best[1] if best else None


def parse_holder(data: bytes) -> LockHolder | None:
    """The holder line a lock writes (one JSON line: pid, host, started_at, command), read
    strictly: None unless it names a positive integer pid; odd fields are dropped."""
    line = data.split(b"\n", 1)[0].strip()
    try:
        doc = json.loads(line) if line else None
    except ValueError:  # not JSON, or not UTF-8
        return None
    if not isinstance(doc, dict):
        return None
    pid, host, started, command = (doc.get(k) for k in ("pid", "host", "started_at", "command"))
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    return LockHolder(
        pid=pid,
        host=host if isinstance(host, str) else None,
        started_at=float(started)
        if isinstance(started, (int, float)) and not isinstance(started, bool)
        else None,
        command=command if isinstance(command, str) else None,
    )


RECORD_KEYS = ("command", "host", "pid", "started_at")  # what ``_write_holder`` writes
_FILE_NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%-"


def is_lock_file_name(filename: str) -> bool:
    """Could reliactl have named this file: ``NAME.lock``, NAME from ``check_name`` or
    ``encode_name`` (at most MAX_NAME of ``[A-Za-z0-9._%-]``)? Never a dot-file
    (``.s.PGSQL.5432.lock``)."""
    stem = filename[: -len(".lock")] if filename.endswith(".lock") else ""
    return (
        0 < len(stem) <= MAX_NAME
        and not stem.startswith(".")
        and all(c in _FILE_NAME_CHARS for c in stem)
    )


_HEX = frozenset("0123456789abcdef")


def spare_name(name: str) -> str:
    """The dot-file ``swap_in_own`` makes beside lock file ``name`` (a basename or a path):
    ``.NAME.lock.PID.RANDOM`` (12 hex digits), unique to this process and call."""
    head, base = os.path.split(name)
    return os.path.join(head, f".{base}.{os.getpid()}.{os.urandom(6).hex()}")


def spare_pid(filename: str) -> int | None:
    """The pid in a ``spare_name`` (``.NAME.lock.PID.RANDOM``), or None when ``filename``
    is not one (the stale-lock sweep removes those a kill -9 left)."""
    if not filename.startswith("."):
        return None
    rest, _, token = filename[1:].rpartition(".")
    base, _, pid = rest.rpartition(".")
    if len(token) != 12 or not set(token) <= _HEX or not 0 < len(pid) <= 10:
        return None
    if not set(pid) <= set("0123456789") or not is_lock_file_name(base):
        return None
    return int(pid)


def parse_record(data: bytes) -> LockHolder | None:
    """The holder line only when it is exactly the record ``acquire`` writes (one JSON line
    with ``pid``, ``host``, ``started_at`` and ``command``, nothing else, each of its type);
    None for anything else (another program's pid file, a partial or foreign record).
    ``cleanup --stale-locks`` removes only files this recognises (or empty ones)."""
    line, _, rest = data.partition(b"\n")
    if rest:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or sorted(doc) != list(RECORD_KEYS):
        return None
    holder = parse_holder(line)
    if (
        holder is None
        or not isinstance(doc["host"], str)
        or not isinstance(doc["command"], str)
        or holder.started_at is None
    ):
        return None
    return holder


def read_holder(fd_or_path: int | str) -> LockHolder:
    """The holder of a lock file (an open descriptor or a path, never followed); a holder with
    no pid when the file has no readable record."""
    try:
        if isinstance(fd_or_path, int):
            data = os.pread(fd_or_path, 4096, 0)
        else:
            fd = os.open(fd_or_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                data = os.pread(fd, 4096, 0)
            finally:
                os.close(fd)
    except OSError:
        data = b""
    return parse_holder(data) or LockHolder(None, None, None, None)


def holder_alive(holder: LockHolder) -> bool:
    """Is the recorded pid still the process that took the lock? (pid reuse is detected,
    ``_procfs.started_after``, records from before the boot judged too: a lock file from
    before a reboot whose pid is now another process's is gone). After a wall-clock step
    forward a live holder can look reused; nothing unsafe follows: the lock sweep removes a
    lock file only when its flock is free as well, so a held lock is never removed on this
    judgement, and ``run --lock`` decides by the flock alone."""
    if not pid_alive(holder.pid):
        return False
    # A process that started after the lock was taken is a recycled pid.
    return not (
        holder.started_at is not None
        and holder.pid is not None
        and started_after(holder.pid, holder.started_at)
    )


_F_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)
# struct flock {short l_type, l_whence; off_t l_start, l_len; pid_t l_pid;} on 64-bit Linux.
_STRUCT_FLOCK = "hhqqi4x" if sys.maxsize > 2**32 else None


def posix_locked(fd: int) -> bool:
    """Does any other process hold a POSIX (fcntl) or OFD lock on some byte of the file?

    flock and POSIX locks do not see each other on Linux, so an flock probe alone would
    miss a ``lockf``/``fcntl`` lock; F_OFD_GETLK asks without taking anything (and works on
    a read-only descriptor). Shared with ``cleanup``'s probes.
    """
    if _F_OFD_GETLK is None or _STRUCT_FLOCK is None:
        return False
    import struct  # only when a lock file is probed, not by every run

    query = struct.pack(_STRUCT_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        answer = fcntl.fcntl(fd, _F_OFD_GETLK, query)
    except OSError:
        return False  # a kernel or filesystem without OFD locks: the flock probe decides
    return bool(struct.unpack(_STRUCT_FLOCK, answer)[0] != fcntl.F_UNLCK)


def try_flock(fd: int) -> bool:
    """A non-blocking exclusive flock: True when taken, False when someone holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _open_lock_file(path: str) -> tuple[int, int | None]:
    """Open (creating) the lock file: its descriptor, and its owner's uid when that is
    another user than the caller or root (None when it is ours or root's)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(
                f"refusing lock file {path}: it is a symbolic link (possibly planted); "
                "remove it or choose another --lock-name"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            # A lock file we may not write (root's, for another caller; or, with
            # fs.protected_regular, another user's in a sticky directory, refused below
            # by its owner): flock works on a read-only fd.
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as exc2:
                raise LockError(_unopenable(path, exc2)) from None
        else:
            raise LockError(f"cannot open lock file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise LockError(f"cannot stat lock file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LockError(f"refusing lock file {path}: not a regular file")
    from reliactl.trust import untrusted

    # Writable by others (judged as if its owner were the caller): anyone could have written
    # its holder line or could replace its content; never locked or read.
    reason = untrusted(info, euid=info.st_uid)
    if reason is not None:
        os.close(fd)
        raise LockError(
            f"refusing lock file {path}: it is {reason} (possibly planted);"
            " remove it or choose another --lock-name"
        )
    other = info.st_uid if info.st_uid not in (os.geteuid(), 0) else None
    if info.st_nlink > 1:
        # A hard link planted to another file: the holder line would truncate that file.
        os.close(fd)
        raise LockError(
            f"refusing lock file {path}: it has {info.st_nlink} hard links (possibly planted);"
            " remove it or choose another --lock-name"
        )
    return fd, other


def _unopenable(path: str, exc: OSError) -> str:
    """Why a lock file cannot even be read: another user's private file is named as such."""
    from reliactl.trust import owner_name

    try:
        uid = os.stat(path, follow_symlinks=False).st_uid
    except OSError:
        uid = os.geteuid()
    if uid not in (os.geteuid(), 0):
        return (
            f"refusing lock file {path}: it is owned by {owner_name(uid)} and this user may"
            f" not open it ({exc.strerror}); ask its owner or root to remove it, or choose"
            " another --lock-name"
        )
    return f"cannot open lock file {path}: {exc.strerror}"


def _same_file(path: str, fd: int) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _write_holder(fd: int, command: str, started_at: float) -> None:
    line = json.dumps(
        {
            "pid": os.getpid(),
            "host": hostname(),
            "started_at": round(started_at, 3),
            "command": command,
        }
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (line + "\n").encode("utf-8", "surrogateescape"), 0)
    except OSError:
        pass  # read-only lock file (someone else's): the lock itself is what matters


def directory_untrusted(directory: str) -> str | None:
    """Why ``run --lock`` refuses this existing lock directory, or None (``_check_directory``;
    ``doctor`` asks the same). Raises OSError when it cannot be stat'ed."""
    from reliactl.trust import untrusted

    return untrusted(os.stat(directory), sticky_ok=True)


def _check_directory(directory: str) -> None:
    """Create a missing lock directory (0700) and refuse one another user could tamper with.

    Refused (reliactl.trust's rule, as for the state directory): a directory owned by another
    user than us or root, or writable by others (group: unless the owner's private group)
    without the sticky bit: whoever can write it can unlink or replace a held lock file, and
    two runs would each hold "the" lock. Sticky shared directories (/tmp, /run/lock: root's,
    mode 1777) stay usable: nobody can unlink another user's file there.
    """
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        reason = directory_untrusted(directory)
    except OSError as exc:
        raise LockError(f"cannot create the lock directory {directory}: {exc.strerror}") from None
    if reason is not None:
        raise LockError(
            f"refusing the lock directory {directory}: it is {reason}; another user could"
            " replace a held lock file (chmod +t or go-w it, chown it, or set run.lock_dir)"
        )


def acquire(
    path: str,
    *,
    wait: float | None = 0.0,
    command: str = "",
    allow_network_fs: bool = False,
    sleep: Callable[[float], bool] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
) -> HeldLock:
    """Take the exclusive lock at ``path`` (creating the file and directory if needed).

    ``wait``: 0 fails at once when busy, a number waits that many seconds, None waits forever.
    ``sleep(seconds)`` waits between tries and returns False to abandon the wait (a signal
    arrived); it defaults to ``time.sleep``. Raises LockBusyError (with the holder) when busy,
    LockError when the lock cannot be taken safely (symlink, not a regular file, NFS, a lock
    directory another user could tamper with: ``_check_directory``, a lock file another user
    owns or could write: ``_open_lock_file``).
    """
    directory = os.path.dirname(path) or "."
    _check_directory(directory)
    if not allow_network_fs:
        fstype = filesystem_type(directory)
        if fstype in NETWORK_FS_TYPES:
            raise LockError(
                f"refusing to lock {path}: it is on {fstype}, where flock is not reliable "
                "across hosts; use a local lock directory (run.lock_dir) or --lock-on-nfs"
            )
    started = monotonic()
    deadline = None if wait is None else started + wait
    pause = 0.005
    retakes = 0
    extended = False
    while True:
        fd, other = _open_lock_file(path)
        try:
            while True:
                if _take(fd, path, other):
                    break
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    # Held with no record: a sweep removing it, or a run between its flock and
                    # its record write; both let go within milliseconds. (Another user's file
                    # is never read: it gets the grace as if recordless.)
                    if not extended and (other is not None or read_holder(fd).pid is None):
                        extended = True
                        deadline = monotonic() + NO_RECORD_GRACE
                        continue
                    raise _busy_other(path, other) if other is not None else _busy(path, fd)
                step = pause if remaining is None else min(pause, remaining)
                pause = min(pause * 2, 0.1)
                if not (sleep or _plain_sleep)(step):
                    raise LockBusyError(f"gave up waiting for lock {path}")
            same = _same_file(path, fd)
            if same and other is not None:
                # Another user's lock file that nobody holds (the empty leftover of a run
                # under another account, or a squatter's): replaced, while we hold its
                # flock, by a new file of ours already locked (see _take_over).
                taken = _take_over(path, other, fd)
                if taken is not None:
                    os.close(fd)
                    fd, other = taken, None
                    same = _same_file(path, fd)
            if same and other is None:
                _write_holder(fd, command, now())
                return HeldLock(path, fd, LockAttempt(monotonic() - started, retakes))
            # Else replaced or removed while we waited: that inode is not the lock any more.
            os.close(fd)
            fd = -1
            retakes += 1
            if retakes > 100:
                raise LockError(f"lock file {path} keeps being replaced; giving up")
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise


NO_RECORD_GRACE = 0.05
"""Seconds ``acquire`` keeps trying a lock held with no holder record before calling it
busy: ``cleanup --stale-locks`` holds the flock of a file it removes for microseconds, and
a run writes its record just after locking; neither is a job holding the lock."""


def _take(fd: int, path: str, other: int | None) -> bool:
    """Try the flock once; for another user's file also no POSIX/OFD lock may be held."""
    try:
        if not try_flock(fd):
            return False
    except OSError as exc:
        raise LockError(f"cannot lock {path}: {exc.strerror}") from None
    if other is not None and posix_locked(fd):
        fcntl.flock(fd, fcntl.LOCK_UN)  # held by a program using fcntl locks: busy
        return False
    return True


def _busy(path: str, fd: int) -> LockBusyError:
    """Busy on our (or root's) lock file: the holder its record names."""
    holder = read_holder(fd).describe()
    return LockBusyError(f"lock {path} is busy: held by {holder}", holder=holder)


def _busy_other(path: str, uid: int) -> LockBusyError:
    """Busy on another user's lock file: its owner is named, its content never shown."""
    from reliactl.trust import owner_name

    who = f"a process of {owner_name(uid)}"
    return LockBusyError(
        f"lock {path} is busy: held by {who} (the lock file is that user's, so its holder"
        " line is not read)",
        holder=who,
    )


def _take_over(path: str, uid: int, fd: int) -> int | None:
    """Replace another user's unheld lock file (``fd``: the caller holds its flock and saw
    ``path`` name it) by a new file of ours, already locked (``swap_in_own``): its
    descriptor, or None when the name no longer named that file (the caller opens it
    again). LockError when this user may not (a sticky directory lets only root and the
    directory's owner). Where the filesystem cannot exchange names, the old unlink."""
    new, failed = swap_in_own(path, os.fstat(fd))
    if failed in CANNOT_EXCHANGE:
        _unlink_other(path, uid)
        return None
    if failed:
        raise LockError(_may_not_remove(path, uid, os.strerror(failed)))
    return new


CANNOT_EXCHANGE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
"""What ``swap_in_own`` reports where names cannot be exchanged (filesystem, kernel, libc)."""


def swap_in_own(
    name: str, held: os.stat_result, *, dir_fd: int | None = None
) -> tuple[int | None, int]:
    """Swap the entry ``name`` (relative to ``dir_fd``), another user's unheld lock file
    whose flock the caller holds and whose ``fstat`` is ``held``, for a new empty file of
    ours, created 0600 and flocked first: (its descriptor, 0) when what came out was
    ``held`` (then removed); (None, 0) when the name is gone or came out naming another
    file (someone's new lock file: swapped back at once); (None, errno) when the exchange
    failed (``CANNOT_EXCHANGE``, or EPERM: this user may not remove the entry), nothing
    changed. LockError when what came out could not be put back (never seen).

    Not unlink-after-check: between the check that the name names ``held`` and an unlink,
    the file's owner (in a sticky directory nobody else but root and the directory's owner
    may remove it) could remove it and a new run create and lock its own file there, which
    the unlink would then remove while that run holds it: two runs each holding "the" lock.
    ``renameat2(RENAME_EXCHANGE)`` swaps the two names atomically, so the name never names
    an absent or unheld file, and what came out is judged after."""
    exchange = _exchange_function()
    if exchange is None:
        return None, errno.ENOSYS
    spare = spare_name(name)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        new = os.open(spare, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise LockError(f"cannot create {spare} to take {name} over: {exc.strerror}") from None
    keep = False
    try:
        fcntl.flock(new, fcntl.LOCK_EX)  # a new file only we know: taken at once
        at = -100 if dir_fd is None else dir_fd  # AT_FDCWD
        failed = exchange(at, spare, name)
        if failed:
            _remove_quietly(spare, dir_fd)
            return None, 0 if failed == errno.ENOENT else failed
        try:
            displaced = os.stat(spare, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            # Its owner (only they may, in a sticky directory) moved what came out away
            # before we looked: as ``back == ENOENT`` below, the name is ours, held.
            keep = True
            return new, 0
        if (displaced.st_dev, displaced.st_ino) == (held.st_dev, held.st_ino):
            _remove_quietly(spare, dir_fd)  # the other user's file, unheld: gone
            keep = True
            return new, 0
        # Someone's new lock file took the name after the check (its owner removed theirs
        # and a run created one): put it back, and drop ours.
        back = exchange(at, spare, name)
        if back == errno.ENOENT:
            keep = True  # its owner moved it away meanwhile: the name is ours, held
            return new, 0
        if back:  # left where it is: it may be a lock file in use
            raise LockError(
                f"lock file {name} changed while being taken over and could not be put back"
                f" ({os.strerror(back)}): it is now {spare}"
            )
        _remove_quietly(spare, dir_fd)
        return None, 0
    finally:
        if not keep:
            os.close(new)


def _remove_quietly(path: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def _exchange_function() -> Callable[[int, str, str], int] | None:
    """``exchange(dir_fd, a, b)``: atomically swap the two names in that directory
    (``renameat2`` with ``RENAME_EXCHANGE``), returning 0 or the errno; None without
    ``renameat2`` in libc."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    rename_exchange = 2

    def exchange(dir_fd: int, a: str, b: str) -> int:
        if renameat2(dir_fd, os.fsencode(a), dir_fd, os.fsencode(b), rename_exchange) == 0:
            return 0
        return ctypes.get_errno() or errno.EIO

    return exchange


def _may_not_remove(path: str, uid: int, why: str) -> str:
    from reliactl.trust import owner_name

    return (
        f"refusing lock file {path}: it is owned by {owner_name(uid)}, and this user may"
        f" not remove it ({why}); ask its owner or root to remove it, or choose"
        " another --lock-name"
    )


def _unlink_other(path: str, uid: int) -> None:
    """The fallback takeover: unlink another user's unheld lock file (the caller holds its
    flock); LockError when this user may not."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LockError(_may_not_remove(path, uid, exc.strerror or str(exc))) from None


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


# --------------------------------------------------------------------------- fleet scope


class FleetLock:
    """A fleet lease held by this process; the supervisor renews it (``renew_at``/``renew``).

    The lease is known to be ours until ``valid_until`` (monotonic): the moment the last
    successful renewal (or the acquire) was *sent*, plus the lease, so a slow reply never
    stretches it. Renewals are due every third of the lease; a failed one is tried again
    every tenth, as long as another call (``service.call_bound``) could still end before
    ``valid_until``; when none can, the lock is lost, so the job is told to stop before the
    lease can expire in the store and another host take it.
    """

    def __init__(
        self,
        lease: Lease,
        service: LeaseService,
        *,
        seconds: float,
        sent_at: float,
        attempt: LockAttempt,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.service = service
        self.seconds = seconds
        self.attempt = attempt
        self.monotonic = monotonic
        self.valid_until = sent_at + seconds
        self.renew_at: float | None = sent_at + seconds / 3
        self.lost: str | None = None
        self.renewals = 0
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        return self.lease.name

    @property
    def fencing_token(self) -> int:
        return self.lease.fencing_token

    @property
    def where(self) -> str:
        return f"fleet:{self.name}@{self.service.location}"

    @property
    def label(self) -> str:
        return f"fleet lock {self.name} on {self.service.location}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "RELIACTL_LOCK_NAME": self.name,
            "RELIACTL_FENCING_TOKEN": str(self.fencing_token),
        }

    def renew(self) -> str | None:
        """Renew now; None while the lock is ours, else why it is lost (final)."""
        from reliactl.errors import StateError

        if self.lost is not None:
            return self.lost
        sent = self.monotonic()
        try:
            ours = self.lease.renew(self.seconds)
        except StateError as exc:
            self._last_error = str(exc)
            now = self.monotonic()
            last_chance = self.valid_until - self.service.call_bound
            if now >= last_chance:
                return self._lose(
                    f"fleet lock {self.name}: the lease ({_secs(self.seconds)}) could not be"
                    f" renewed before it expires: {exc}"
                )
            self.renew_at = min(now + self.seconds / 10, last_chance)
            return None
        if not ours:
            return self._lose(
                f"fleet lock {self.name}: the lease is gone or held by another owner"
                " (expired, or the store lost it)"
            )
        self.renewals += 1
        self._last_error = None
        self.valid_until = sent + self.seconds
        self.renew_at = sent + self.seconds / 3
        return None

    def _lose(self, why: str) -> str:
        self.lost = why
        self.renew_at = None
        return why

    def release(self) -> None:
        """Give the lease back (compare-and-delete) and close the connection; never raises."""
        from reliactl.errors import StateError

        try:
            if self.lost is None:
                self.lease.release()
        except StateError:
            pass  # it expires by itself
        finally:
            self.renew_at = None
            self.service.close()

    def __enter__(self) -> FleetLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _secs(seconds: float) -> str:
    return f"{seconds:g}s"


def fleet_owner(command: str, started_at: float) -> str:
    """The value of a fleet lease: the holder line of a lock file, plus a random token (a new
    one on every call: one per acquire attempt)."""
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": hostname(),
            "started_at": round(started_at, 3),
            "command": command,
            "token": os.urandom(16).hex(),
        }
    )


def acquire_fleet(
    name: str,
    leases: Callable[[], LeaseService],
    *,
    seconds: float,
    wait: float | None = 0.0,
    command: str = "",
    sleep: Callable[[float], bool] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
) -> FleetLock:
    """Take the fleet lock ``name`` (a lease of ``seconds``) in the store ``leases()`` opens.

    ``wait`` and ``sleep`` as for :func:`acquire`; within the wait an unreachable store is
    waited for like a busy lock. Raises LockBusyError naming the holder when busy, StateError
    (StateUnavailableError when unreachable) when the store cannot answer. On success the
    FleetLock owns the opened store (closed on release).
    """
    from reliactl.state.leases import LeaseBusy

    started = monotonic()
    deadline = None if wait is None else started + wait
    started_at = now()
    pause = 0.02
    service: LeaseService | None = None
    try:
        while True:
            sent = monotonic()
            try:
                if service is None:
                    service = leases()
                # A fresh owner value (random token) per attempt: an unanswered attempt gives
                # back its own lease (compare-and-delete of its owner), and that call may reach
                # Redis late, after a later attempt took the lease: with one owner for every
                # attempt it would delete the lease this run holds.
                got = service.acquire(name, fleet_owner(command, started_at), seconds)
            except StateUnavailableError:
                # Within --lock-wait an unreachable store is waited for like a busy lock.
                if deadline is None or monotonic() + pause < deadline:
                    if not (sleep or _plain_sleep)(pause):
                        raise LockBusyError(f"gave up waiting for fleet lock {name}") from None
                    pause = min(pause * 2, 0.25)
                    continue
                raise
            if not isinstance(got, LeaseBusy):
                return FleetLock(
                    got,
                    service,
                    seconds=seconds,
                    sent_at=sent,
                    attempt=LockAttempt(monotonic() - started, 0),
                    monotonic=monotonic,
                )
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                holder = parse_holder(got.holder.encode("utf-8", "surrogateescape"))
                shown = (holder or LockHolder(None, None, None, None)).describe()
                if holder is None:
                    shown = "an unknown holder (no holder record in the lease)"
                left = got.expires_in
                expiry = f"; its lease expires in {_secs(round(left, 1))}" if left else ""
                raise LockBusyError(
                    f"fleet lock {name} is busy: held by {shown}{expiry}", holder=shown
                )
            step = pause if remaining is None else min(pause, remaining)
            pause = min(pause * 2, 0.25)
            if not (sleep or _plain_sleep)(step):
                raise LockBusyError(f"gave up waiting for fleet lock {name}")
    except BaseException:
        if service is not None:
            service.close()
        raise
