"""Safe age-based cleanup and the stale-lock sweeper; results are frozen ``CleanupReport``s.

Cleanup deletes files as root from cron, so it keeps the promises of systemd-tmpfiles and
tmpreaper (RELIABILITY.md #13, CVE-2018-6954):

- the walk goes by directory file descriptors: every directory is opened relative to its
  parent's descriptor with ``O_NOFOLLOW|O_DIRECTORY`` and checked to be the inode that was
  listed, and every removal is ``unlinkat``/``rmdir`` relative to that descriptor. A directory
  swapped for a symlink mid-walk is never entered, so nothing outside the root can be reached;
- no symlink is ever followed, not even in the root's own path;
- no other filesystem and no mount point is entered (``st_dev`` compare, plus the mount points
  listed in ``/proc/self/mountinfo`` for bind mounts of the same filesystem, plus each opened
  directory's mount id, which must be the root's: a bind mount made after the table was read;
  the size budget re-opens directories under the same checks);
- an emptied directory is removed by name only while that name still is the directory that
  was entered (an lstat just before the rmdir): one renamed away and replaced is kept;
- only regular files, symlinks themselves and directories that became empty (and are old)
  are removed; FIFOs, sockets and devices are skipped and never opened;
- a regular file another process holds locked is kept. Where the kernel's lock table is
  complete and trustworthy for the root (``/proc/locks`` readable, this process in the initial
  PID namespace, a local filesystem whose ``st_dev``/``st_ino`` are the lock table's: ext2-4,
  xfs, tmpfs), the table is read at the first old file and again whenever the last read is
  older than ``LOCK_TABLE_TTL``, and a file whose inode is in it (flock, POSIX, OFD lock or
  lease, held or waited for) is kept: two syscalls per removed file (lstat, unlinkat), as
  tmpfiles. In a directory others may write to, the name is lstat'ed again just before the
  unlink and must still be the listed file. Elsewhere (NFS, btrfs, overlayfs, a container's PID
  namespace, no /proc) each file is removed only while this process holds a non-blocking
  ``flock`` on it and ``F_OFD_GETLK`` finds no POSIX lock, opened by ``O_PATH`` first and
  re-opened only after checking it is still the regular file that was listed;
- dangerous roots (``/``, ``/etc``, ``/home``, ``/usr``, ``$HOME`` ...) and paths with ``..``
  are refused unless forced; an empty path always is;
- a dry run takes the same decisions (lock probes included) and removes nothing;
- an entry that vanishes or is denied mid-walk is skipped and counted, never fatal.

Age is the newest of mtime, ctime and atime by default (as tmpfiles); for directories ctime is
left out by default, because reading and cleaning a directory changes it. Directory times are
taken before the directory is read, and its atime/mtime are put back afterwards (as tmpfiles
does), so neither a dry run nor a real one makes an old directory look young. Directories are
opened ``O_NOATIME`` where allowed (owner or CAP_FOWNER, as tmpfiles), so one that nothing was
removed from keeps its times untouched and needs nothing put back.

A walk without per-name rules runs in C where the optional extension
``reliactl._cleanupwalk`` was built: the plain entries and the directory recursion (same
rules, same opens and checks, on the same directory fds and lock table; skips, errors and
every other entry come back to this module by callback; ``RELIACTL_CLEANUP_C=0`` turns it
off). This module's walk is the fallback and the reference (docs/DESIGN.md, "Cleanup's walk
in C" and "Cleanup's directory recursion in C").

Memory does not grow with the number of files: files are decided while their directory is
being read; only the subdirectory names of the directories on the current path are held
(and, with a size budget, the files that could be deleted for it).
"""

from __future__ import annotations

import errno
import operator
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType

from reliactl._procfs import unescape_mount
from reliactl.errors import LockError, UnsafeRootError

TYPE_CHECKING = False  # typing.TYPE_CHECKING (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
    from typing import Any, Literal

    from reliactl.config import CleanupRoot
    from reliactl.locks import LockHolder
    from reliactl.state.base import PruneReport

    AgeBy = Literal["newest", "mtime", "atime", "ctime"]
    EntryKind = Literal["file", "symlink", "dir"]
else:  # frozen dataclasses without compiling code at import (issue 21, see _records)
    from reliactl._records import dataclass

    class _LazyLiteral:
        """``typing.Literal`` for the records' annotations, imported when first subscripted.

        The public records spell their Literals out (``Literal["file", "symlink", "dir"]``),
        so typing.get_type_hints and pydantic, which evaluate them in this module's
        namespace, get real ``typing.Literal`` objects; a cleanup run never subscripts it
        and skips typing's import (~2.5 ms of the ``cleanup`` start, issue 21's sixth
        session). The aliases ``AgeBy`` and ``EntryKind`` come from ``__getattr__``, so no
        annotation evaluated at run time names them (get_type_hints evaluates in the
        module's globals, where ``__getattr__`` is not looked up): they spell it out.
        """

        __slots__ = ()

        def __getitem__(self, values: object) -> object:
            import typing

            return typing.Literal[values]

        def __repr__(self) -> str:
            return "typing.Literal"

    # Bound through globals(): to linters and type checkers Literal stays typing's (above).
    globals()["Literal"] = _LazyLiteral()
    _ALIASES = {
        "AgeBy": ("newest", "mtime", "atime", "ctime"),
        "EntryKind": ("file", "symlink", "dir"),
    }

    def __getattr__(name: str) -> object:
        """The public aliases, made (with typing) at first use and then kept."""
        values = _ALIASES.get(name)
        if values is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import typing

        alias = typing.Literal[values]
        globals()[name] = alias
        return alias

    def __dir__() -> list[str]:
        """The module's names with the aliases ``__getattr__`` makes (as ``__all__``)."""
        return sorted({*globals(), *_ALIASES})


AGE_BY: tuple[Literal["newest", "mtime", "atime", "ctime"], ...] = (  # AgeBy
    "newest",
    "mtime",
    "atime",
    "ctime",
)

# Skip reasons (keys of RootReport.skipped).
SKIP_REASONS = (
    "excluded",  # matched an exclude glob (an excluded directory is not entered)
    "not-included",  # include globs given and the name matched none
    "locked",  # a process holds an flock on it (or a lease)
    "fifo",
    "socket",
    "device",
    "other-filesystem",  # another st_dev: never entered or removed
    "mount-point",  # a mount point (bind mounts of the same filesystem too)
    "vanished",  # disappeared between listing and removal
    "denied",  # permission denied while listing, probing or opening
    "changed",  # replaced by something else between listing and removal (e.g. a symlink)
    "too-deep",  # deeper than MAX_DEPTH directories
)

MAX_DEPTH = 256  # one descriptor per level is held open
BUDGET_DIRS_OPEN = 32  # directories the size budget keeps open at once (see apply_budget)
MAX_PROBLEMS = 1000  # errors kept with their path in a report (all are counted)
PROGRESS_EVERY = 4096  # entries between progress callbacks

_DANGEROUS = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/usr",
    "/var",
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# Reading a directory opened O_NOATIME leaves its atime alone (as systemd-tmpfiles opens
# them): with nothing removed its times are as they were, with no fstat or utime to put
# them back. Allowed to its owner and to CAP_FOWNER; elsewhere (EPERM) opened without.
_O_NOATIME: int = getattr(os, "O_NOATIME", 0)
_PROBE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_O_PATH: int = getattr(os, "O_PATH", 0)

LOCK_TABLE = "/proc/locks"
LOCK_TABLE_TTL = 0.01  # seconds a read of the lock table is trusted before it is re-read
_INIT_PID_NS_INO = 0xEFFFFFFC  # PROC_PID_INIT_INO: /proc/self/ns/pid of the initial namespace
# The walk in C (reliactl/_cleanupwalk.c, optional): RELIACTL_CLEANUP_C=0 turns it off.
C_WALK_ENV = "RELIACTL_CLEANUP_C"
C_BATCH = 4096  # entries a call of the C loop reads at most (memory stays flat)
C_WALK_API = 4  # the _cleanupwalk.API this module speaks (a stale build is not used)
# What an item of a C batch says (the OUT_* codes of _cleanupwalk.c).
_C_DEFER, _C_STAT_FAILED, _C_LOCKED, _C_CHANGED = 0, 1, 2, 3
_C_RECHECK_FAILED, _C_UNLINK_FAILED, _C_REMOVED, _C_TABLE_LOST = 4, 5, 6, 7
# What the C recursion reports back by _Walker.c_event (the EV_* codes of _cleanupwalk.c).
_EV_OPEN_FAILED, _EV_OTHER_FS, _EV_TOO_DEEP, _EV_CHANGED = 1, 2, 3, 4
_EV_READ_FAILED, _EV_RMDIR_FAILED, _EV_OTHER_MOUNT = 5, 6, 7
_C_KINDS: tuple[Literal["symlink"], Literal["file"], Literal["dir"]] = ("symlink", "file", "dir")
# Filesystems whose stat() st_dev and st_ino are the superblock device and inode number the
# lock table prints, and whose locks are all local (so all in the table).
_LOCK_TABLE_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs"})
# Local filesystems (disk or memory, in the kernel): the only ones the C walk runs on.
_C_WALK_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "f2fs", "jfs", "reiserfs"}
    | {"vfat", "exfat", "ntfs3", "zfs", "bcachefs", "overlay", "nilfs2", "hfsplus", "udf"}
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CleanupTarget:
    """One root to clean and its rules (``cleanup.roots[]`` in the configuration)."""

    path: str
    max_age: float
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_total_size: int | None = None

    @classmethod
    def from_config(cls, root: CleanupRoot) -> CleanupTarget:
        return cls(
            path=root.path,
            max_age=root.max_age,
            include=tuple(root.include),
            exclude=tuple(root.exclude),
            max_total_size=root.max_total_size,
        )


@dataclass(frozen=True)
class Removal:
    """One entry removed (or, in a dry run, that would be removed)."""

    path: str
    kind: Literal["file", "symlink", "dir"]  # EntryKind, spelled out (see _LazyLiteral)
    size: int  # bytes of a regular file; 0 for symlinks and directories
    age: float  # seconds, by the age rule in use
    reason: Literal["age", "size"]  # the age rule, or the size budget


@dataclass(frozen=True)
class CleanupProblem:
    """Something that should have been removed and could not be."""

    path: str
    message: str


@dataclass(frozen=True)
class RootReport:
    """What one root's cleanup did (or would do, when ``dry_run``)."""

    root: str
    dry_run: bool
    max_age: float
    max_total_size: int | None
    missing: bool  # the root does not exist (nothing to do)
    scanned: int
    files_removed: int
    symlinks_removed: int
    dirs_removed: int
    bytes_removed: int
    removed_for_size: int  # entries among the above removed by the size budget
    kept_bytes: int  # bytes of regular files left (the size the budget compares)
    skipped: Mapping[str, int]
    errors: tuple[CleanupProblem, ...]  # the first MAX_PROBLEMS
    error_count: int

    @property
    def removed(self) -> int:
        return self.files_removed + self.symlinks_removed + self.dirs_removed

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def over_budget(self) -> int:
        """Bytes still above ``max_total_size`` (files it may not delete, or errors)."""
        if self.max_total_size is None:
            return 0
        return max(0, self.kept_bytes - self.max_total_size)


@dataclass(frozen=True)
class StaleLock:
    """A lock file found stale: free and without a live holder."""

    path: str
    pid: int | None
    host: str | None
    command: str | None
    reason: Literal["holder-gone", "no-record"]


@dataclass(frozen=True)
class LockSweepReport:
    """What a stale-lock sweep removed (or would remove) and why it kept the rest."""

    lock_dir: str
    dry_run: bool
    missing: bool
    removed: tuple[StaleLock, ...]
    kept: Mapping[str, int]  # reason -> count: held, holder-alive, other-host, new, not-a-file,
    # foreign (not reliactl's), other-user (another user's) ...
    errors: tuple[CleanupProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class CleanupReport:
    """Everything one cleanup did: per root, the stale-lock sweep and the state prune."""

    dry_run: bool
    roots: tuple[RootReport, ...] = ()
    locks: LockSweepReport | None = None
    state: PruneReport | None = None

    @property
    def ok(self) -> bool:
        """True when nothing that should have been removed was left behind by an error."""
        return all(r.ok for r in self.roots) and (self.locks is None or self.locks.ok)

    @property
    def files_removed(self) -> int:
        return sum(r.files_removed + r.symlinks_removed for r in self.roots)

    @property
    def dirs_removed(self) -> int:
        return sum(r.dirs_removed for r in self.roots)

    @property
    def bytes_removed(self) -> int:
        return sum(r.bytes_removed for r in self.roots)


@dataclass(frozen=True)
class Progress:
    """Passed to ``on_progress`` every few thousand entries of a long walk."""

    root: str
    scanned: int
    removed: int
    bytes_removed: int


# --------------------------------------------------------------------------- roots


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _dangerous_identities(home: str | None) -> dict[tuple[int, int], str]:
    names = list(_DANGEROUS)
    home = os.environ.get("HOME") if home is None else home
    if home and home.startswith("/"):
        # $HOME itself and every directory above it.
        parts = _components(home)
        names += ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out: dict[tuple[int, int], str] = {}
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue
        out.setdefault((st.st_dev, st.st_ino), name)
    return out


def absolute_root(path: str) -> str:
    """``path`` made absolute (against the working directory) without resolving anything."""
    if not path:
        raise UnsafeRootError("refusing to clean an empty path")
    if "\0" in path:
        raise UnsafeRootError(f"refusing to clean {path!r}: it contains a NUL byte")
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    parts = _components(path)
    return "/" + "/".join(parts)


def open_root(path: str, *, force: bool = False, home: str | None = None) -> tuple[int, str]:
    """Open a cleanup root safely: (directory fd, absolute path). The caller closes the fd.

    Every component is opened relative to the previous one with O_NOFOLLOW, so a symlink
    anywhere in the path is refused. Raises UnsafeRootError for an empty path, a symlink, a
    non-directory, ``..`` and (unless ``force``) a dangerous root such as ``/`` or ``$HOME``;
    FileNotFoundError when it does not exist.
    """
    held: list[int] = []
    shown = _open_root(path, held, force=force, home=home)
    return held[0], shown


def _open_root(path: str, held: list[int], *, force: bool, home: str | None) -> str:
    """open_root, the root's fd appended to ``held`` (the caller closes it): no Ctrl-C can
    leave an fd it opens on the way, or the root's, unowned (see _open_held)."""
    shown = absolute_root(path)
    parts = _components(shown)
    if ".." in parts and not force:
        raise UnsafeRootError(
            f"refusing to clean {path}: it contains '..'; give the path without it"
            " (or --force-root)"
        )
    if not force:
        _refuse_by_name(path, shown, home)
    mine: list[int] = []  # the component open now (and, for an instant, the next one)
    closing = map(os.close, mine)  # built before the try: see _open_held
    try:
        _open_held(mine, "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for index, part in enumerate(parts):
            try:
                _open_held(mine, part, _DIR_FLAGS, mine[-1])
            except OSError as exc:
                prefix = "/" + "/".join(parts[: index + 1])
                problem = _root_open_problem(exc, part, mine[-1], prefix)
                if exc.errno == errno.ENOENT:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", shown) from None
                raise UnsafeRootError(f"refusing to clean {path}: {problem}") from None
            _close_held(mine, -2)  # the parent
        fd = mine[-1]
        st = os.fstat(fd)
        danger = _dangerous_identities(home).get((st.st_dev, st.st_ino))
        if danger is not None and not force:
            what = "the home directory" if danger not in _DANGEROUS else danger
            raise UnsafeRootError(
                f"refusing to clean {path}: it is {what}; pass --force-root if you mean it"
            )
        if ".." in parts:
            shown = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self") else shown
        held.extend(map(list.pop, (mine,)))  # handed over in one step (see _close_held)
    finally:
        any(closing)  # one C call: a signal is checked after it returns
    return shown


def _refuse_by_name(path: str, shown: str, home: str | None) -> None:
    """Refuse a dangerous root by its name too (it may not exist on this machine)."""
    home = os.environ.get("HOME") if home is None else home
    home_parts = _components(home) if home and home.startswith("/") else None
    parts = _components(shown)
    if shown in _DANGEROUS:
        raise UnsafeRootError(
            f"refusing to clean {path}: it is {shown}; pass --force-root if you mean it"
        )
    if home_parts is not None and home_parts[: len(parts)] == parts:
        what = "the home directory" if parts == home_parts else "above the home directory"
        raise UnsafeRootError(
            f"refusing to clean {path}: it is {what}; pass --force-root if you mean it"
        )


def _root_open_problem(exc: OSError, part: str, parent_fd: int, prefix: str) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        try:
            st = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
        except OSError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            target = ""
            try:
                target = f" (to {os.readlink(part, dir_fd=parent_fd)})"
            except OSError:
                pass
            return f"{prefix} is a symlink{target}; cleanup never follows symlinks"
        return f"{prefix} is not a directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot open {prefix}: permission denied"
    return f"cannot open {prefix}: {exc.strerror}"


def check_root(path: str, *, force: bool = False, home: str | None = None) -> str:
    """The absolute path of a root that may be cleaned; raises UnsafeRootError otherwise.

    A root that does not exist passes (there is nothing to clean in it).
    """
    held: list[int] = []
    closing = map(os.close, held)  # built before the try: see _open_held
    try:
        return _open_root(path, held, force=force, home=home)
    except FileNotFoundError:
        return absolute_root(path)
    finally:
        any(closing)  # one C call: a signal is checked after it returns


# --------------------------------------------------------------------------- mounts


def _mount_points_under(root: str) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every mount point strictly below ``root`` (empty when unknown)."""
    prefix = root.rstrip("/") + "/"
    found: set[tuple[int, int]] = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = unescape_mount(fields[4])
        if not point.startswith(prefix):
            continue
        try:
            st = os.lstat(point)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


# --------------------------------------------------------------------------- the walk


_FILE_TIME: dict[str, Callable[[os.stat_result], float]] = {
    "newest": lambda st: max(st.st_mtime, st.st_atime, st.st_ctime),
    "mtime": operator.attrgetter("st_mtime"),
    "atime": operator.attrgetter("st_atime"),
    "ctime": operator.attrgetter("st_ctime"),
}
# A directory's ctime changes when it is cleaned: "newest" leaves it out, as tmpfiles.
_DIR_TIME: dict[str, Callable[[os.stat_result], float]] = {
    **_FILE_TIME,
    "newest": lambda st: max(st.st_mtime, st.st_atime),
}


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}
_AGE_CODE = {"newest": 0, "mtime": 1, "atime": 2, "ctime": 3}  # list_dir's inline age rule
_S_IFMT = 0o170000
_S_IFREG = stat.S_IFREG
_S_IFDIR = stat.S_IFDIR
_S_IFLNK = stat.S_IFLNK
_REMOVABLE = frozenset({_S_IFREG, _S_IFLNK})


def c_walk() -> ModuleType | None:
    """The C walk's module, or None: not built (no compiler), built from another version of
    the source, or turned off by the operator (``RELIACTL_CLEANUP_C=0``). The Python walk is
    the fallback and the reference."""
    from reliactl._switches import switched_off

    if switched_off(C_WALK_ENV):
        return None
    try:
        from reliactl import _cleanupwalk
    except ImportError:
        return None
    if getattr(_cleanupwalk, "API", None) != C_WALK_API:
        return None  # built from another version of the source: reinstall to rebuild
    if not _built_from_source_here(_cleanupwalk):
        return None  # the .c next to it changed since the build (a checkout updated)
    return _cleanupwalk


def _built_from_source_here(module: ModuleType) -> bool:
    """Was ``module`` compiled from the ``_cleanupwalk.c`` next to it (where there is one)?

    hatch_build.py compiles the sha256 of the source into the module: a checkout updated
    without reinstalling (an editable install) walks in Python rather than calling C built
    from other source, even when nobody bumped ``API``.
    """
    from reliactl._switches import built_from_source

    source = os.path.join(os.path.dirname(module.__file__ or ""), "_cleanupwalk.c")
    return built_from_source(source, getattr(module, "SOURCE_SHA256", None))


def _errno_reason(err: int) -> str:
    return _reason_for(OSError(err, os.strerror(err)))


def _matches(patterns: Sequence[str], name: str, rel: str) -> bool:
    import fnmatch  # only with include/exclude globs (it compiles regexes)

    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


_NO_STAT = os.stat_result((0,) * 10)  # a frame c_items makes: its times are C's


def _open_held(held: list[int], path: str, flags: int, dir_fd: int | None = None) -> int:
    """``os.open`` whose fd is in ``held`` before any bytecode runs; returns it.

    A signal handler's exception (Ctrl-C's KeyboardInterrupt) is raised between two
    bytecodes, e.g. just after ``fd = os.open(...)``'s call returns and before the fd is
    stored, and that fd would leak. ``list.extend`` over ``map`` calls ``os.open`` from C
    (``methodcaller`` passes ``dir_fd``) and stores what it returns in C, so once the open
    succeeded the fd is in ``held``, whose owner closes it on every way out. That owner
    builds ``closing = map(os.close, held)`` before its ``try`` (while ``held`` is empty)
    and its ``finally`` runs ``any(closing)``: one call, which closes them all in C before
    the interpreter checks for a signal after it. ``any(map(os.close, held))`` in the
    ``finally`` leaked: the check after ``map(...)`` returns comes before ``any`` runs. A
    Python function called there could be interrupted at its start, and a loop at each turn.
    """
    held.extend(map(operator.methodcaller("open", path, flags, dir_fd=dir_fd), (os,)))
    return held[-1]


def _close_all_held(held: list[int]) -> None:
    """Close every fd of ``held`` and empty it, one at a time (see _close_held)."""
    while held:
        _close_held(held)


def _close_held(held: list[int], index: int = -1) -> None:
    """Close ``held[index]`` and drop it from ``held`` in one step (no bytecode between the
    two, see _open_held): an fd is either in ``held`` and open, or closed and gone."""
    any(map(os.close, map(list.pop, (held,), (index,))))


class _Frame:
    """One directory on the current path of the walk."""

    __slots__ = (
        "age",
        "fd",
        "gone",
        "name",
        "noatime",
        "pending",
        "pre",
        "rel",
        "shared",
        "total",
    )

    def __init__(
        self, fd: int, rel: str, name: str, pre: os.stat_result, age: float, shared: bool
    ) -> None:
        self.fd = fd
        self.shared = shared  # others may write to it (see _Probe.open)
        self.rel = rel  # path below the root ("" for the root)
        self.name = name  # name in the parent
        self.pre = pre  # times before it was read
        self.age = age
        self.total = 0  # entries listed
        self.gone = 0  # entries removed (or, in a dry run, that would be)
        self.pending: list[tuple[str, os.stat_result]] = []  # subdirectories to visit
        self.noatime = False  # opened O_NOATIME: reading it left its atime alone


class _Probe:
    """Open a listed regular file for an flock probe without ever opening anything else."""

    def __init__(self) -> None:
        self.use_proc = bool(_O_PATH) and os.path.isdir("/proc/self/fd")

    def open(
        self,
        dir_fd: int,
        name: str,
        st: os.stat_result,
        shared: bool = True,
        held: list[int] | None = None,
    ) -> int | str:
        """A read-only fd on that very inode (also appended to ``held``, whose owner closes
        it however the caller is interrupted), or a skip reason.

        In a directory others may write to (``shared``), the name could be swapped for a
        FIFO or a device after it was listed: the file is then opened by O_PATH (which opens
        nothing), checked, and that very inode re-opened through /proc, so nothing but the
        listed regular file is ever opened. In a directory only its owner (this user or
        root) can change, no one else can swap it, and a direct O_NOFOLLOW|O_NONBLOCK open
        does the same for less than half the kernel time.
        """
        held = [] if held is None else held
        if shared and self.use_proc:
            path_held: list[int] = []
            closing = map(os.close, path_held)  # built before the try: see _open_held
            try:
                pfd = _open_held(path_held, name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd)
                pst = os.fstat(pfd)
                if not _same_file(pst, st):
                    return "changed"
                try:
                    return _open_held(held, f"/proc/self/fd/{pfd}", _PROBE_FLAGS)
                except OSError as exc:
                    if exc.errno == errno.ENOENT and not os.path.isdir("/proc/self/fd"):
                        self.use_proc = False
                        return self.open(dir_fd, name, st, shared, held)
                    return _reason_for(exc)
            except OSError as exc:
                return _reason_for(exc)
            finally:
                any(closing)  # one C call: a signal is checked after it returns
        try:  # O_NONBLOCK: even a FIFO swapped in (no /proc) could not block the open
            fd = _open_held(held, name, _PROBE_FLAGS | os.O_NOFOLLOW, dir_fd)
        except OSError as exc:
            return _reason_for(exc)
        fst = os.fstat(fd)
        if not _same_file(fst, st):
            _close_held(held)
            return "changed"
        return fd


class _LockTable:
    """The inodes other processes hold locked, read from ``/proc/locks``; or None where untrusted.

    ``held(st)`` answers from a read at most ``ttl`` seconds old. The kernel prints every
    flock, POSIX (fcntl) and OFD lock, lease and blocked waiter as ``MAJ:MIN:INODE`` (device
    numbers in hex) of the superblock; a filesystem not in ``_LOCK_TABLE_FILESYSTEMS`` (its
    st_dev or st_ino may differ, or its locks live on a server) and a process outside the
    initial PID namespace (the table hides other namespaces' lockers) get None: the caller
    then probes each file with flock, as before.
    """

    def __init__(self, path: str, ttl: float) -> None:
        self.path = path
        self.ttl = ttl
        self.read_at = -1.0e9  # never read: the first held() reads it
        self.inodes: frozenset[tuple[int, int]] = frozenset()
        self.reads = 0

    @classmethod
    def for_root(cls, shown: str, root_dev: int) -> _LockTable | None:
        """A table trusted for the files of the root at ``shown`` (st_dev ``root_dev``), or None."""
        try:
            if os.stat("/proc/self/ns/pid").st_ino != _INIT_PID_NS_INO:
                return None
        except OSError:
            return None
        if _filesystem_of(shown, root_dev) not in _LOCK_TABLE_FILESYSTEMS:
            return None
        # Opening the table takes no lock; reading it does (the kernel's file-lock rwsem, for
        # writing, once per page read). The first read is left to the first file that needs
        # it: a walk that finds nothing old reads nothing, and a first read that fails or
        # cannot be parsed falls back to the flock probe as a failed re-read does.
        held: list[int] = []
        closing = map(os.close, held)  # built before the try: see _open_held
        try:
            _open_held(held, LOCK_TABLE, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        finally:
            any(closing)  # one C call: a signal is checked after it returns
        return cls(LOCK_TABLE, LOCK_TABLE_TTL)

    def refresh(self, now: float) -> None:
        held: list[int] = []
        closing = map(os.close, held)  # built before the try: see _open_held
        try:
            fd = _open_held(held, self.path, os.O_RDONLY | os.O_CLOEXEC)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            any(closing)  # one C call: a signal is checked after it returns
        self.inodes = _parse_lock_table(b"".join(chunks))
        self.read_at = now
        self.reads += 1

    def held(self, st: os.stat_result) -> bool:
        """Does any process hold (or wait for) a lock on this inode? Raises OSError."""
        now = time.monotonic()
        if now - self.read_at > self.ttl:
            self.refresh(now)
        return (st.st_dev, st.st_ino) in self.inodes


def _parse_lock_table(data: bytes) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of every line of /proc/locks; ValueError on a line it cannot read."""
    found = set()
    for line in data.splitlines():
        for field in line.split():
            if field.count(b":") == 2:  # MAJ:MIN:INODE, the only field with two colons
                major, minor, ino = field.split(b":")
                found.add((os.makedev(int(major, 16), int(minor, 16)), int(ino)))
                break
        else:
            if line.strip():
                raise ValueError(f"unexpected line in the lock table: {line[:80]!r}")
    return frozenset(found)


def _filesystem_of(path: str, dev: int) -> str | None:
    """The filesystem type of the mount holding ``path`` (device ``dev``), from mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    best: tuple[int, str | None] = (-1, None)
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields = head.split(" ")
        if not sep or len(fields) < 5:
            continue
        point = unescape_mount(fields[4])
        inside = point in ("/", path) or path.startswith(point.rstrip("/") + "/")
        if not inside or len(point) < best[0]:
            continue
        try:
            major, minor = (int(x) for x in fields[2].split(":"))
        except ValueError:
            continue
        fstype = tail.split(" ")[0]
        # The last (topmost) mount on the deepest mount point holds the path; its device
        # must be the root's, or this is not the mount we think it is.
        best = (len(point), fstype if os.makedev(major, minor) == dev else None)
    return best[1]


def _local_filesystem(fstype: str | None) -> bool:
    """Is this a filesystem whose stat and unlink never wait on a network or a user daemon?

    The C walk holds the GIL across up to ``C_BATCH`` syscalls: on NFS, CIFS, FUSE (a
    server or a daemon that may hang) every thread of the process would stop with it. An
    unknown type (None: not found in mountinfo) is not local.
    """
    return fstype in _C_WALK_FILESYSTEMS


def _mount_id(fd: int) -> int | None:
    """The mount id of open ``fd`` (``mnt_id:`` of /proc/self/fdinfo).

    None when this kernel does not tell (no /proc/self/fdinfo, no ``mnt_id:`` line); raises
    OSError when it does but the read failed (no descriptor left for it: EMFILE): the
    caller cannot tell the mount then, and must not take it for the root's.
    A bind mount of a directory of the same filesystem has the root's st_dev: only the mount
    id tells it apart. Python has no statx before 3.15; this costs ~3 syscalls a directory.
    """
    held: list[int] = []
    closing = map(os.close, held)  # built before the try: see _open_held
    try:
        info = _open_held(held, f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        data = os.read(info, 4096)
    except FileNotFoundError:
        if os.path.isdir("/proc/self/fdinfo"):
            raise
        return None
    finally:
        any(closing)  # one C call: a signal is checked after it returns
    at = data.find(b"mnt_id:")
    if at < 0:
        return None
    end = data.find(b"\n", at)
    try:
        return int(data[at + 7 : end if end >= 0 else None])
    except ValueError:
        raise OSError(errno.EINVAL, f"bad mnt_id in fdinfo: {data[at:end]!r}") from None


def _same_file(now: os.stat_result, listed: os.stat_result) -> bool:
    """Still the regular file that was listed (and judged)?

    A freed inode number is reused at once (ext4 hands it to the next new file), so the
    inode alone cannot tell a newcomer from the listed file: its ctime, which nobody can
    set, must match too. A file changed since it was listed is left for the next run.
    """
    return (
        stat.S_ISREG(now.st_mode)
        and now.st_ino == listed.st_ino
        and now.st_dev == listed.st_dev
        and now.st_ctime_ns == listed.st_ctime_ns
    )


def _shared(st: os.stat_result, euid: int) -> bool:
    """May someone other than this user (or root) change entries of this directory?"""
    return bool(st.st_mode & 0o022) or st.st_uid not in (0, euid)


def _reason_for(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "vanished"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "denied"
    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
        return "locked"  # a lease: someone has it open
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
        return "changed"
    return f"error: {exc.strerror}"


class _Walker:
    def __init__(
        self,
        target: CleanupTarget,
        shown: str,
        *,
        dry_run: bool,
        now: float,
        age_by: Literal["newest", "mtime", "atime", "ctime"],  # AgeBy, spelled out
        on_remove: Callable[[Removal], None] | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.target = target
        self.shown = shown.rstrip("/") or "/"
        self.dry_run = dry_run
        self.now = now
        self.age_by = age_by
        self.cutoff = now - target.max_age
        self.on_remove = on_remove
        self.on_progress = on_progress
        self.include = target.include
        self.exclude = target.exclude
        self.budget = target.max_total_size
        self.restore = age_by != "ctime"
        self.probe = _Probe()
        self.euid = os.geteuid()
        self.file_time: Callable[[os.stat_result], float] = _FILE_TIME[age_by]
        self.dir_time: Callable[[os.stat_result], float] = _DIR_TIME[age_by]
        self.scanned = 0
        self.files = self.symlinks = self.dirs = 0
        self.bytes = 0
        self.for_size = 0
        self.kept_bytes = 0
        self.skipped: dict[str, int] = {}
        self.errors: list[CleanupProblem] = []
        self.error_count = 0
        self.every = PROGRESS_EVERY
        # Without a callback the walk never calls tick() (a method call per entry saved).
        self.next_progress = self.every if on_progress is not None else 1 << 62
        self.root_dev = 0
        self.mounts: set[tuple[int, int]] = set()
        self.root_mnt: int | None = None  # the root's mount id (None: unknown)
        self.root_mnt_error: OSError | None = None  # why it could not be read (see _mount_id)
        self.root_mnt_read = False
        self.locks: _LockTable | None = None  # None: probe each file with flock
        self.simple = False  # set by run(): see list_dir
        self.c_walk: ModuleType | None = None  # set by run(): see list_dir_c
        self.lister: Any = None  # the C walk's one Lister (run() makes and closes it)
        self.c_dirs = 0  # directories the C walk listed
        # The Python walk's directory fds below the root, in the order of its stack: their
        # one owner from the instant each is opened to the instant it is closed, so a Ctrl-C
        # landing anywhere leaves none open (see _open_held).
        self.held: list[int] = []
        # size-budget candidates: (age time, size, dir rel, name, dev, ino, ctime_ns)
        self.candidates: list[tuple[float, int, str, str, int, int, int]] = []

    # ---- bookkeeping

    def path_of(self, rel: str, name: str) -> str:
        inner = f"{rel}/{name}" if rel else name
        return f"{self.shown}/{inner}" if self.shown != "/" else f"/{inner}"

    def read_failed(self, rel: str, err: int) -> None:
        """The directory at ``rel`` could not be read (to its end): a skip reason ("denied",
        "vanished" ...) or, for any other failure (EMFILE, EIO), an error with its path."""
        reason = _errno_reason(err)
        if reason.startswith("error: "):
            path = self.path_of("", rel) if rel else self.shown
            self.error(path, f"cannot read: {os.strerror(err)}")
        self.skip(reason)

    def skip(self, reason: str) -> None:
        if reason.startswith("error: "):
            return
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def error(self, path: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_PROBLEMS:
            self.errors.append(CleanupProblem(path, message))

    def removed(
        self,
        rel: str,
        name: str,
        kind: Literal["file", "symlink", "dir"],  # EntryKind, spelled out
        size: int,
        t: float,
        reason: str,
    ) -> None:
        if kind == "file":
            self.files += 1
            self.bytes += size
        elif kind == "symlink":
            self.symlinks += 1
        else:
            self.dirs += 1
        if reason == "size":
            self.for_size += 1
        if self.on_remove is not None:
            self.on_remove(
                Removal(
                    self.path_of(rel, name),
                    kind,
                    size,
                    max(0.0, self.now - t),
                    "size" if reason == "size" else "age",
                )
            )

    def tick(self) -> None:
        if self.on_progress is not None and self.scanned >= self.next_progress:
            self.next_progress = self.scanned + self.every
            self.on_progress(
                Progress(
                    self.shown, self.scanned, self.files + self.symlinks + self.dirs, self.bytes
                )
            )

    # ---- the walk

    def run(self, root_fd: int) -> None:
        root_st = os.fstat(root_fd)
        self.root_dev = root_st.st_dev
        self.mounts = _mount_points_under(self.shown)
        self.locks = _LockTable.for_root(self.shown, self.root_dev)
        # list_dir decides a file inline only when no per-name rule or budget applies.
        self.simple = not (self.include or self.exclude or self.mounts) and self.budget is None
        self.c_walk = c_walk() if self.simple else None
        if self.c_walk is not None and not _local_filesystem(
            _filesystem_of(self.shown, self.root_dev)
        ):
            self.c_walk = None  # C holds the GIL across its syscalls: no hung NFS stat there
        # One directory costs a few microseconds of Python around the syscalls (issue 21:
        # the deep tree's 11,111 directories), so the loop binds what it calls once.
        list_dir = self.list_dir if self.c_walk is None else self.list_dir_c
        if self.c_walk is not None:
            self.lister = self.c_walk.Lister(
                self.dry_run,
                self.cutoff,
                self.root_dev,
                _AGE_CODE[self.age_by],
                self.on_remove is not None,
            )
        if self.lister is not None and self.on_progress is None:
            self.run_c(root_fd, root_st)
            return
        self.read_root_mnt(root_fd)  # the C walk statx'es it itself
        enter = self.enter
        leave = self.leave
        root_age = self.dir_time(root_st)
        stack = [_Frame(root_fd, "", "", root_st, root_age, _shared(root_st, self.euid))]
        closing = map(os.close, self.held)  # built before the try: see _open_held
        try:
            list_dir(stack[0])
            while stack:
                frame = stack[-1]
                pending = frame.pending
                if pending:
                    name, st = pending.pop()
                    child = enter(frame, name, st, len(stack))
                    if child is not None:
                        stack.append(child)
                        list_dir(child)
                    continue
                stack.pop()
                leave(frame, stack[-1] if stack else None)
        finally:
            any(closing)  # one C call: a signal is checked after it returns
            self.held.clear()
            if self.lister is not None:
                self.lister.close()
                self.lister = None

    def run_c(self, root_fd: int, root_st: os.stat_result) -> None:
        """The whole walk in C (``Lister.walk``): run()'s loop, enter() and leave() with
        the same opens, checks and order; every rare outcome comes back by ``c_event``,
        ``c_items`` and ``c_removed``, so skips, errors and their paths are this module's.
        Used without an ``on_progress`` callback (with one, C lists and Python recurses)."""
        self.c_dirs = 1  # the root is listed by C (the count is exact once walk() returns)
        try:
            scanned, files, symlinks, dirs, nbytes, kept, listed = self.lister.walk(
                root_fd,
                root_st,
                self,
                MAX_DEPTH,
                self.euid,
                self.restore,
                _AGE_CODE[self.age_by],
                C_BATCH,
            )
        finally:
            self.lister.close()
            self.lister = None
        self.c_dirs = listed
        self.scanned += scanned
        self.files += files
        self.symlinks += symlinks
        self.dirs += dirs
        self.bytes += nbytes
        self.kept_bytes += kept

    def c_items(
        self, fd: int, rel: str, shared: int, items: list[tuple[str, int, int, int, float]]
    ) -> tuple[int, list[tuple[str, os.stat_result]]]:
        """A batch's entries the C recursion did not settle: (entries gone, subdirectories
        found on a fresh lstat, which C then enters as its own)."""
        frame = _Frame(fd, rel, rel.rpartition("/")[2], _NO_STAT, 0.0, bool(shared))
        for name, code, value, size, t in items:
            self.c_item(frame, name, code, value, size, t)
        return frame.gone, frame.pending

    def c_event(self, code: int, rel: str, name: str, err: int) -> int:
        """A rare outcome of the C recursion, counted as enter()/leave()/list_dir count it;
        ``rel`` is the directory ``name`` is in. Returns the entries gone (0 or 1)."""
        if code == _EV_OPEN_FAILED:  # enter()'s open failed
            reason = _errno_reason(err)
            if reason.startswith("error: "):
                self.error(self.path_of(rel, name), f"cannot open: {os.strerror(err)}")
            self.skip(reason)
            return 1 if reason == "vanished" else 0
        if code == _EV_RMDIR_FAILED:  # leave()'s rmdir failed
            if err == errno.ENOENT:
                self.skip("vanished")
                return 1
            if err == errno.ENOTDIR:
                self.skip("changed")  # the name is now something else (a symlink)
            elif err not in (errno.ENOTEMPTY, errno.EEXIST):
                self.error(self.path_of(rel, name), os.strerror(err))
            return 0
        if code == _EV_READ_FAILED:
            self.read_failed(rel, err)
        elif code == _EV_OTHER_FS:
            self.skip("other-filesystem")
        elif code == _EV_TOO_DEEP:
            self.skip("too-deep")
        elif code == _EV_CHANGED:
            self.skip("changed")  # swapped for another directory (or a mount) since listed
        elif code == _EV_OTHER_MOUNT:
            self.skip("mount-point")  # a bind mount made after the mount table was read
        else:
            raise ValueError(f"unknown event {code} from the C walk")
        return 0

    def c_removed(self, kind: int, rel: str, name: str, size: int, t: float) -> None:
        """An entry the C recursion removed (counted there): the on_remove callback."""
        if self.on_remove is not None:
            path = self.path_of(rel, name)
            self.on_remove(Removal(path, _C_KINDS[kind], size, max(0.0, self.now - t), "age"))

    def enter(self, parent: _Frame, name: str, st: os.stat_result, depth: int) -> _Frame | None:
        if st.st_dev != self.root_dev:
            self.skip("other-filesystem")
            return None
        if self.mounts and (st.st_dev, st.st_ino) in self.mounts:
            self.skip("mount-point")
            return None
        if depth > MAX_DEPTH:
            self.skip("too-deep")
            return None
        noatime = bool(_O_NOATIME) and self.euid in (0, st.st_uid)
        held = self.held  # owns fd from its open on; leave() or run() closes it
        try:
            try:
                flags = (_DIR_FLAGS | _O_NOATIME) if noatime else _DIR_FLAGS
                fd = _open_held(held, name, flags, parent.fd)
            except PermissionError as exc:
                if not noatime or exc.errno != errno.EPERM:
                    raise
                noatime = False  # root without CAP_FOWNER: read it as anyone would
                fd = _open_held(held, name, _DIR_FLAGS, parent.fd)
        except OSError as exc:
            reason = _reason_for(exc)
            if reason == "vanished":
                parent.gone += 1
            elif reason.startswith("error: "):
                self.error(self.path_of(parent.rel, name), f"cannot open: {exc.strerror}")
            self.skip(reason)
            return None
        # An exception from here on leaves fd in self.held, which run() closes.
        now_st = os.fstat(fd)
        if now_st.st_ino != st.st_ino or now_st.st_dev != st.st_dev:
            reason = "changed"  # swapped for another directory (or a mount) since listed
        elif (other := self.mount_reason(fd)) is not None:  # a bind mount since the scan
            reason = other
            if reason.startswith("error: "):
                self.error(self.path_of(parent.rel, name), reason[len("error: ") :])
        else:
            rel = f"{parent.rel}/{name}" if parent.rel else name
            frame = _Frame(fd, rel, name, st, self.dir_time(st), _shared(now_st, self.euid))
            frame.noatime = noatime
            return frame
        _close_held(held)
        self.skip(reason)
        return None

    def read_root_mnt(self, root_fd: int) -> None:
        """Read the root's mount id once (a failure is kept: every check then fails closed)."""
        if self.root_mnt_read:
            return
        self.root_mnt_read = True
        try:
            self.root_mnt = _mount_id(root_fd)
        except OSError as exc:
            self.root_mnt_error = exc

    def mount_reason(self, fd: int) -> str | None:
        """None when the directory open on ``fd`` is on the root's mount; "mount-point" for
        another (a bind mount of the same filesystem, same st_dev, made after the mount
        table was read); "error: ..." when it cannot tell (no descriptor left to read the
        mount id, say): such a directory is never entered (fails closed). When this kernel
        gives no mount id at all (no /proc), only the device was checked."""
        if self.root_mnt_error is not None:
            return f"error: cannot tell its mount: {self.root_mnt_error.strerror}"
        if self.root_mnt is None:
            return None
        try:
            mnt = _mount_id(fd)
        except OSError as exc:
            return f"error: cannot tell its mount: {exc.strerror}"
        if mnt is None:
            return "error: cannot tell its mount: no mount id for it"
        return None if mnt == self.root_mnt else "mount-point"

    def leave(self, frame: _Frame, parent: _Frame | None) -> None:
        """After a directory's entries: put its times back, remove it if emptied and old."""
        try:
            if self.restore:
                self.restore_times(frame)
        finally:
            held = self.held
            if parent is not None and held and held[-1] == frame.fd:
                _close_held(held)  # the last fd held is its own: its children are closed
        if parent is None:
            return
        if frame.gone < frame.total or frame.age > self.cutoff:
            return
        if self.include and not _matches(self.include, frame.name, frame.rel):
            return
        if not self.dry_run:
            try:
                # The name must still be the directory entered: one renamed away and
                # replaced by another (empty, young) directory is not removed in its place.
                cur = os.stat(frame.name, dir_fd=parent.fd, follow_symlinks=False)
                if cur.st_ino != frame.pre.st_ino or cur.st_dev != frame.pre.st_dev:
                    self.skip("changed")
                    return
                os.rmdir(frame.name, dir_fd=parent.fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    parent.gone += 1
                    self.skip("vanished")
                elif exc.errno == errno.ENOTDIR:
                    self.skip("changed")  # the name is now something else (a symlink)
                elif exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    self.error(self.path_of(parent.rel, frame.name), exc.strerror or str(exc))
                return  # ENOTEMPTY: something new arrived; it stays
        parent.gone += 1
        self.removed(parent.rel, frame.name, "dir", 0, frame.age, "age")

    def restore_times(self, frame: _Frame) -> None:
        pre = frame.pre
        if frame.noatime and (self.dry_run or not frame.gone):
            return  # read without touching its atime and nothing removed: times unchanged
        # Something in it was removed (or vanished): its mtime moved, no need to look.
        if self.dry_run or not frame.gone:
            try:
                cur = os.fstat(frame.fd)
            except OSError:
                return
            if cur.st_atime_ns == pre.st_atime_ns and cur.st_mtime_ns == pre.st_mtime_ns:
                return
        try:
            os.utime(frame.fd, ns=(pre.st_atime_ns, pre.st_mtime_ns))
        except OSError:
            pass  # not ours to change (read-only filesystem, another owner): harmless

    def list_dir(self, frame: _Frame) -> None:  # noqa: C901 - the per-entry hot loop, kept flat on purpose
        """Decide every entry of a directory while it is being read.

        The common entry (a regular file or symlink on the root's filesystem, with no
        include/exclude globs, size budget or mount point below the root) is decided inline
        with local counters: Python's cost per entry is most of a walk's CPU (DESIGN.md,
        cleanup). Every other entry, and every outcome but a removal or a young file, goes
        through ``decide``, which applies the same rules one by one.
        """
        try:
            it = os.scandir(frame.fd)
        except OSError as exc:
            self.read_failed(frame.rel, exc.errno or errno.EIO)
            frame.total += 1  # unknown contents: never "emptied"
            return
        dir_fd = frame.fd
        shared = frame.shared
        dry_run = self.dry_run
        cutoff = self.cutoff
        root_dev = self.root_dev
        age_code = _AGE_CODE[self.age_by]
        simple = self.simple
        on_remove = self.on_remove
        monotonic = time.monotonic
        unlink = os.unlink
        lstat = os.stat
        table = self.locks
        exclude = self.exclude
        pending = frame.pending
        next_entry = it.__next__
        listed = gone = files = symlinks = nbytes = kept = 0
        scanned = self.scanned
        next_progress = self.next_progress
        try:
            with it:
                while True:
                    if scanned >= next_progress:  # after the entry that reached it
                        self.scanned = scanned
                        self.flush(frame, listed, gone, files, symlinks, nbytes, kept)
                        listed = gone = files = symlinks = nbytes = kept = 0
                        self.tick()
                        next_progress = self.next_progress
                    try:
                        entry = next_entry()
                    except StopIteration:
                        break
                    except OSError as exc:
                        self.read_failed(frame.rel, exc.errno or errno.EIO)
                        listed += 1
                        break
                    scanned += 1
                    listed += 1
                    name = entry.name
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        reason = _reason_for(exc)
                        if reason == "vanished":
                            gone += 1
                        self.skip(reason)
                        continue
                    fmt = st.st_mode & _S_IFMT
                    if fmt == _S_IFDIR and not exclude:
                        pending.append((name, st))  # entered (or not) by enter()
                        continue
                    if fmt not in _REMOVABLE or not simple or st.st_dev != root_dev:
                        # directories, special files, other filesystems, globs, budget
                        gone += self.decide(frame, name, st)
                        continue
                    if age_code == 1:
                        t = st.st_mtime
                    elif age_code == 0:
                        t = max(st.st_mtime, st.st_atime, st.st_ctime)
                    elif age_code == 2:
                        t = st.st_atime
                    else:
                        t = st.st_ctime
                    is_reg = fmt == _S_IFREG
                    size = st.st_size if is_reg else 0
                    if t > cutoff:
                        kept += size
                        continue
                    outcome: str | None = None
                    if not is_reg:
                        if not dry_run:
                            try:
                                unlink(name, dir_fd=dir_fd)
                            except OSError as exc:
                                outcome = _unlink_reason(exc)
                    elif table is None:
                        outcome = self.remove_file(dir_fd, name, st, shared)
                        table = self.locks  # None still (it never comes back)
                    else:
                        now = monotonic()
                        if now - table.read_at > table.ttl:
                            try:
                                table.refresh(now)
                            except (OSError, ValueError):
                                self.locks = table = None  # probe each file from now on
                        if table is None:
                            outcome = self.remove_file(dir_fd, name, st, shared)
                        elif (st.st_dev, st.st_ino) in table.inodes:
                            outcome = "locked"
                        else:
                            if shared:  # someone else may have put another file here
                                try:
                                    again = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
                                except OSError as exc:
                                    outcome = _reason_for(exc)
                                else:
                                    if not _same_file(again, st):
                                        outcome = "changed"
                            if outcome is None and not dry_run:
                                try:
                                    unlink(name, dir_fd=dir_fd)
                                except OSError as exc:
                                    outcome = _unlink_reason(exc)
                    if outcome is None:
                        gone += 1
                        if is_reg:
                            files += 1
                            nbytes += size
                        else:
                            symlinks += 1
                        if on_remove is not None:
                            kind: EntryKind = "file" if is_reg else "symlink"
                            on_remove(
                                Removal(
                                    self.path_of(frame.rel, name),
                                    kind,
                                    size,
                                    max(0.0, self.now - t),
                                    "age",
                                )
                            )
                        continue
                    gone += self.not_removed(frame, name, outcome)
                    kept += size
        finally:
            self.scanned = scanned
            self.flush(frame, listed, gone, files, symlinks, nbytes, kept)

    def list_dir_c(self, frame: _Frame) -> None:
        """list_dir's inline decisions, made by the C loop (reliactl/_cleanupwalk.c).

        C removes or keeps the plain entries (the same age, lock-table and shared-directory
        rules as list_dir's inline path) in batches of at most ``C_BATCH`` entries and hands
        back the subdirectories with their lstat (queued as list_dir queues them), every
        other entry, which ``decide`` judges on a fresh lstat, and every outcome but
        "removed" or "young". With an ``on_remove`` callback a batch ends at each
        removal (the callback sees it as it happens); with ``on_progress`` at the next tick.
        Called once per directory: one Lister serves the whole walk (``list`` starts a
        directory and returns its first batch), and the bookkeeping is inline (no
        flush/tick call when there is no progress callback).
        """
        lister = self.lister
        self.c_dirs += 1
        progress = self.on_progress is not None
        limit = C_BATCH
        if progress:
            limit = min(C_BATCH, max(1, self.next_progress - self.scanned))
        batch = lister.list(frame.fd, frame.shared, limit, self.locks)
        while True:
            listed, gone, files, symlinks, nbytes, kept, items, subdirs, end, read_errno = batch
            self.scanned += listed
            frame.total += listed
            if gone:
                frame.gone += gone
                self.files += files
                self.symlinks += symlinks
                self.bytes += nbytes
            if kept:
                self.kept_bytes += kept
            if subdirs:
                frame.pending += subdirs  # (name, lstat), queued as list_dir queues them
            for name, code, value, size, t in items:
                self.c_item(frame, name, code, value, size, t)
            if read_errno:
                self.read_failed(frame.rel, read_errno)
                frame.total += 1
            if progress:
                self.tick()
            if end:
                return
            if progress:
                limit = min(C_BATCH, max(1, self.next_progress - self.scanned))
            batch = lister.batch(limit, self.locks)

    def c_item(self, frame: _Frame, name: str, code: int, value: int, size: int, t: float) -> None:
        """One entry the C loop did not settle alone (see list_dir_c)."""
        if code == _C_REMOVED:  # counted by C; only the callback is left
            if self.on_remove is not None:
                kind: EntryKind = "file" if value else "symlink"
                self.on_remove(
                    Removal(
                        self.path_of(frame.rel, name), kind, size, max(0.0, self.now - t), "age"
                    )
                )
            return
        if code in (_C_DEFER, _C_TABLE_LOST):
            if code == _C_TABLE_LOST:
                self.locks = None  # probe each file from now on, as list_dir does
            try:
                st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
            except OSError as exc:
                value = exc.errno or 0
                code = _C_STAT_FAILED
            else:
                frame.gone += self.decide(frame, name, st)
                return
        if code == _C_STAT_FAILED:
            reason = _errno_reason(value)
            if reason == "vanished":
                frame.gone += 1
            self.skip(reason)
            return
        if code == _C_LOCKED:
            outcome = "locked"
        elif code == _C_CHANGED:
            outcome = "changed"
        elif code == _C_RECHECK_FAILED:
            outcome = _errno_reason(value)
        else:  # _C_UNLINK_FAILED
            outcome = _unlink_reason(OSError(value, os.strerror(value)))
        frame.gone += self.not_removed(frame, name, outcome)

    def flush(
        self,
        frame: _Frame,
        listed: int,
        gone: int,
        files: int,
        symlinks: int,
        nbytes: int,
        kept: int,
    ) -> None:
        """Add list_dir's local counters to the walk's and the directory's."""
        frame.total += listed
        frame.gone += gone
        self.files += files
        self.symlinks += symlinks
        self.bytes += nbytes
        self.kept_bytes += kept

    def not_removed(self, frame: _Frame, name: str, outcome: str) -> int:
        """Count an entry that was to be removed and was not; 1 if it is gone anyway."""
        if outcome.startswith("error: "):
            self.error(self.path_of(frame.rel, name), outcome[len("error: ") :])
        self.skip(outcome)
        return 1 if outcome == "vanished" else 0

    def decide(self, frame: _Frame, name: str, st: os.stat_result) -> int:
        """Every rule for one listed entry, one by one; 1 if it is gone (removed, vanished)."""
        fmt = stat.S_IFMT(st.st_mode)
        is_reg = fmt == stat.S_IFREG
        if fmt == stat.S_IFDIR:
            if self.exclude and _matches(self.exclude, name, f"{frame.rel}/{name}".lstrip("/")):
                self.skip("excluded")
                return 0
            frame.pending.append((name, st))
            return 0
        if not is_reg and fmt != stat.S_IFLNK:
            self.skip(_SPECIAL.get(fmt, "device"))
            return 0
        size = st.st_size if is_reg else 0
        if st.st_dev != self.root_dev:
            self.skip("other-filesystem")
            self.kept_bytes += size
            return 0
        if self.mounts and (st.st_dev, st.st_ino) in self.mounts:
            self.skip("mount-point")
            return 0
        if self.exclude or self.include:
            rel = f"{frame.rel}/{name}" if frame.rel else name
            if self.exclude and _matches(self.exclude, name, rel):
                self.skip("excluded")
                self.kept_bytes += size
                return 0
            if self.include and not _matches(self.include, name, rel):
                self.skip("not-included")
                self.kept_bytes += size
                return 0
        t = self.file_time(st)
        if t > self.cutoff:
            self.kept_bytes += size
            if is_reg and self.budget is not None:
                self.candidates.append(
                    (t, size, frame.rel, name, st.st_dev, st.st_ino, st.st_ctime_ns)
                )
            return 0
        if is_reg:
            outcome = self.remove_file(frame.fd, name, st, frame.shared)
        else:
            outcome = self.unlink(frame.fd, name)
        if outcome is None:
            self.removed(frame.rel, name, "file" if is_reg else "symlink", size, t, "age")
            return 1
        self.kept_bytes += size
        return self.not_removed(frame, name, outcome)

    def remove_file(
        self, dir_fd: int, name: str, st: os.stat_result, shared: bool = True
    ) -> str | None:
        """Remove a listed regular file nobody holds locked; None or a skip reason.

        With the lock table: kept when its inode is in a fresh read of the table; in a
        shared directory the name must still be the listed file just before the unlink.
        Without it: removed only while this process holds a non-blocking flock on it and
        no POSIX lock is held on it.
        """
        locks = self.locks
        if locks is not None:
            try:
                held = locks.held(st)
            except (OSError, ValueError):
                self.locks = None  # the table went away: probe each file from now on
                return self.remove_file(dir_fd, name, st, shared)
            if held:
                return "locked"
            if shared:  # someone else may have put another file under this name
                try:
                    now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    return _reason_for(exc)
                if not _same_file(now, st):
                    return "changed"
            return self.unlink(dir_fd, name)
        from reliactl.locks import posix_locked, try_flock  # the flock-probe mode only

        probe_held: list[int] = []
        closing = map(os.close, probe_held)  # built before the try: see _open_held
        try:
            fd = self.probe.open(dir_fd, name, st, shared, probe_held)
            if isinstance(fd, str):
                return fd
            if not try_flock(fd) or posix_locked(fd):
                return "locked"
            return self.unlink(dir_fd, name)
        finally:
            any(closing)  # one C call: a signal is checked after it returns

    def unlink(self, dir_fd: int, name: str) -> str | None:
        """Unlink ``name`` (nothing under --dry-run); None or a skip reason."""
        if self.dry_run:
            return None
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError as exc:
            return _unlink_reason(exc)
        return None

    # ---- the size budget

    def apply_budget(self, root_fd: int) -> None:
        """Delete the oldest remaining files until the root fits ``max_total_size``."""
        budget = self.budget
        if budget is None or self.kept_bytes <= budget:
            return
        self.candidates.sort(key=lambda c: (c[0], c[2], c[3]))
        self.read_root_mnt(root_fd)
        dir_fds: dict[str, int | str] = {"": root_fd}
        held: list[int] = []  # the directories re-opened below the root (see _open_held)
        closing = map(os.close, held)  # built before the try: see _open_held
        try:
            for t, size, rel, name, dev, ino, ctime_ns in self.candidates:
                if self.kept_bytes <= budget:
                    break
                if len(held) >= BUDGET_DIRS_OPEN:  # oldest first jumps between directories
                    _close_all_held(held)
                    dir_fds = {"": root_fd}
                dfd = self.budget_dir(dir_fds, held, rel)
                if isinstance(dfd, str):
                    if dfd == "vanished":
                        self.kept_bytes -= size
                    elif dfd.startswith("error: "):
                        self.error(self.path_of(rel, name), dfd[len("error: ") :])
                    self.skip(dfd)
                    continue
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError as exc:
                    reason = _reason_for(exc)
                    if reason == "vanished":
                        self.kept_bytes -= size
                    self.skip(reason)
                    continue
                if (st.st_dev, st.st_ino, st.st_ctime_ns) != (dev, ino, ctime_ns):
                    self.skip("changed")
                    continue
                outcome = self.remove_file(dfd, name, st)
                if outcome is None:
                    self.kept_bytes -= size
                    self.removed(rel, name, "file", size, t, "size")
                    continue
                if outcome == "vanished":
                    self.kept_bytes -= size
                elif outcome.startswith("error: "):
                    self.error(self.path_of(rel, name), outcome[len("error: ") :])
                self.skip(outcome)
        finally:
            any(closing)  # one C call: a signal is checked after it returns

    def budget_dir(self, cache: dict[str, int | str], held: list[int], rel: str) -> int | str:
        """Re-open directory ``rel`` below the root, component by component, never following,
        and never into another mount (by device, the mount table, and its mount id as enter()
        checks it: a bind mount may have been made since the walk); its fd (in ``held`` and
        ``cache``) or a skip reason ("error: ..." ones are not cached: EMFILE may pass).

        An ancestor not in ``cache`` is open only until its child is: re-opening one
        directory holds at most two descriptors more than ``cache`` does, however deep."""
        got = cache.get(rel)
        if got is not None:
            return got
        parts = rel.split("/")
        at = len(parts) - 1
        while at > 0 and "/".join(parts[:at]) not in cache:
            at -= 1
        got = cache["/".join(parts[:at])]  # "" (the root) is always there
        own = False  # got is an ancestor opened here (not cached): closed once past it
        for index in range(at, len(parts)):
            if isinstance(got, str):
                return got
            child = self.budget_open(held, got, parts[index])
            if own:
                _close_held(held, held.index(got))
            got, own = child, True
        if not (isinstance(got, str) and got.startswith("error: ")):
            cache[rel] = got
        return got

    def budget_open(self, held: list[int], parent: int, name: str) -> int | str:
        """Open directory ``name`` of ``parent`` for the budget, into ``held``; its fd, or a
        skip reason (then nothing of it is left in ``held``)."""
        try:
            fd = _open_held(held, name, _DIR_FLAGS, parent)
        except OSError as exc:
            reason = _reason_for(exc)
            return f"error: cannot open: {exc.strerror}" if reason.startswith("error: ") else reason
        try:
            st = os.fstat(fd)
        except OSError as exc:
            _close_held(held)
            return f"error: cannot open: {exc.strerror}"
        if st.st_dev != self.root_dev:
            reason = "other-filesystem"  # as the walk says it
        elif (st.st_dev, st.st_ino) in self.mounts:
            reason = "mount-point"
        else:
            other = self.mount_reason(fd)
            if other is None:
                return fd
            reason = other
        _close_held(held)
        return reason

    def report(self, missing: bool = False) -> RootReport:
        return RootReport(
            root=self.shown,
            dry_run=self.dry_run,
            max_age=self.target.max_age,
            max_total_size=self.budget,
            missing=missing,
            scanned=self.scanned,
            files_removed=self.files,
            symlinks_removed=self.symlinks,
            dirs_removed=self.dirs,
            bytes_removed=self.bytes,
            removed_for_size=self.for_size,
            kept_bytes=self.kept_bytes,
            skipped=dict(sorted(self.skipped.items())),
            errors=tuple(self.errors),
            error_count=self.error_count,
        )


def _unlink_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "vanished"
    return f"error: cannot remove: {exc.strerror}"


# --------------------------------------------------------------------------- public API


def clean_root(
    target: CleanupTarget,
    *,
    dry_run: bool = False,
    now: float | None = None,
    age_by: Literal["newest", "mtime", "atime", "ctime"] = "newest",  # AgeBy
    force_root: bool = False,
    on_remove: Callable[[Removal], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    home: str | None = None,
) -> RootReport:
    """Clean one root; see the module docstring for the rules. Raises UnsafeRootError.

    ``on_remove`` is called for each entry removed (or that would be, in a dry run), as it
    happens, so a caller can stream the list without the report holding it.
    """
    if age_by not in AGE_BY:
        raise ValueError(f"age_by must be one of {', '.join(AGE_BY)}, got {age_by!r}")
    when = time.time() if now is None else now
    held: list[int] = []  # the root's fd, from its open on (see _open_held)
    closing = map(os.close, held)  # built before the try: see _open_held
    try:
        try:
            shown, missing = _open_root(target.path, held, force=force_root, home=home), False
        except FileNotFoundError:
            shown, missing = absolute_root(target.path), True
        walker = _Walker(
            target,
            shown,
            dry_run=dry_run,
            now=when,
            age_by=age_by,
            on_remove=on_remove,
            on_progress=on_progress,
        )
        if missing:
            return walker.report(missing=True)
        walker.run(held[0])
        walker.apply_budget(held[0])
    finally:
        any(closing)  # one C call: a signal is checked after it returns
    return walker.report()


def clean(
    targets: Iterable[CleanupTarget],
    *,
    dry_run: bool = False,
    now: float | None = None,
    age_by: Literal["newest", "mtime", "atime", "ctime"] = "newest",  # AgeBy
    force_root: bool = False,
    on_remove: Callable[[Removal], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    home: str | None = None,
) -> CleanupReport:
    """Clean every target. All roots are checked before anything is removed."""
    targets = list(targets)
    for target in targets:
        check_root(target.path, force=force_root, home=home)
    reports = tuple(
        clean_root(
            target,
            dry_run=dry_run,
            now=now,
            age_by=age_by,
            force_root=force_root,
            on_remove=on_remove,
            on_progress=on_progress,
            home=home,
        )
        for target in targets
    )
    return CleanupReport(dry_run=dry_run, roots=reports)


# --------------------------------------------------------------------------- stale locks


def _swap_out(dfd: int, name: str, held: os.stat_result) -> int | None:
    """Before root removes another user's stale lock file (``held``, its flock held): swap
    it for a new, locked file of root's (``locks.swap_in_own``), so the unlink that follows
    removes root's own file, which nobody else can replace in a sticky directory. Without
    it, the file's owner could remove theirs after the check and a new run create and lock
    its own, which the unlink would remove while held. Returns the new file's descriptor
    (close it only after the unlink), -1 when the filesystem cannot exchange names (the
    plain unlink, as before), or None when the name came out naming another file (swapped
    back: keep it). OSError when root may not; LockError when it could not be put back."""
    from reliactl.locks import CANNOT_EXCHANGE, swap_in_own

    new, failed = swap_in_own(name, held, dir_fd=dfd)
    if new is not None:
        return new
    if failed in CANNOT_EXCHANGE:
        return -1
    if failed:
        raise OSError(failed, os.strerror(failed))
    return None


def _sweep_spare(
    dfd: int, name: str, pid: int, *, now: float, grace: float, dry_run: bool, probe: _Probe
) -> str | None:
    """Remove ``name``, a spare file ``locks.swap_in_own`` left (``.NAME.lock.PID.RANDOM``:
    a kill -9 between making it and removing it), or say why it is kept. Removed only
    when it is this user's own empty regular file (what ``swap_in_own`` creates; after the
    exchange the name holds the other user's file, kept as ``other-user``), no lock is held
    on it (a live swap holds its flock from just after creating it) and its pid is gone
    or it is older than ``grace``; under its flock, after a same-inode re-check."""
    from reliactl._procfs import pid_alive
    from reliactl.locks import posix_locked, try_flock

    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError as exc:
        return _reason_for(exc)
    if not stat.S_ISREG(st.st_mode):
        return "not-a-file"
    if st.st_uid != os.geteuid():
        return "other-user"
    if st.st_size:
        return "foreign"
    if now - st.st_mtime < grace and pid_alive(pid):
        return "holder-alive"
    fd = probe.open(dfd, name, st)
    if isinstance(fd, str):
        return fd
    try:
        if posix_locked(fd) or not try_flock(fd):
            return "held"
        cur = os.fstat(fd)
        again = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if cur.st_size or (again.st_dev, again.st_ino) != (cur.st_dev, cur.st_ino):
            return "changed"
        if not dry_run:
            os.unlink(name, dir_fd=dfd)  # while holding the flock
        return None
    except FileNotFoundError:
        return "vanished"
    finally:
        os.close(fd)


def sweep_stale_locks(  # noqa: C901 - a branch per keep reason, judged before the flock
    lock_dir: str,
    *,
    dry_run: bool = False,
    now: float | None = None,
    hostname: str | None = None,
    grace: float = 5.0,
    is_alive: Callable[[LockHolder], bool] | None = None,
) -> LockSweepReport:
    """Remove reliactl's ``<name>.lock`` files in ``lock_dir`` that nobody holds and whose
    holder is gone.

    Only reliactl's own lock files are judged (the lock directory may be shared: /tmp,
    /run/lock): a name ``run`` could have made (``locks.is_lock_file_name``: never a
    dot-file) holding reliactl's exact holder record (``locks.parse_record``) or nothing.
    Anything else is kept as ``foreign``. A file owned by another user is kept
    (``other-user``), except that root removes another user's file when it holds a reliactl
    record whose holder is gone (never an empty one: that could be anybody's).

    A lock file is stale when nobody holds any lock on it (not in the kernel's lock table
    where that is trusted, as the cleanup walk reads it; a non-blocking flock succeeds; no
    POSIX or OFD lock: ``locks.posix_locked``) AND its recorded pid is not alive on this host (or
    it is empty and older than ``grace`` seconds). It is removed while this process holds that
    flock, so a newcomer that opened the old inode finds it unlinked after locking and
    retries. A held lock is never removed. The spare dot-files a takeover killed mid-swap
    left (``.NAME.lock.PID.RANDOM``) are removed too when this user's, empty and unheld
    (``_sweep_spare``), reported as ``no-record`` with that pid.
    """
    # Imported here: a plain cleanup walk needs neither (json, re and /proc readers).
    from reliactl.hostname import hostname as recorded_hostname
    from reliactl.locks import (
        holder_alive,
        is_lock_file_name,
        parse_record,
        posix_locked,
        spare_pid,
        try_flock,
    )

    if is_alive is None:
        is_alive = holder_alive
    when = time.time() if now is None else now
    host = recorded_hostname() if hostname is None else hostname
    euid = os.geteuid()
    kept: dict[str, int] = {}
    removed: list[StaleLock] = []
    errors: list[CleanupProblem] = []
    try:
        dfd, shown = open_root(lock_dir, force=True)
    except FileNotFoundError:
        return LockSweepReport(absolute_root(lock_dir), dry_run, True, (), {}, ())
    probe = _Probe()

    def keep(reason: str) -> None:
        kept[reason] = kept.get(reason, 0) + 1

    def foreign(data: bytes, owner: int) -> str | None:
        """Why this content is not ours to judge, or None (empty, or reliactl's record)."""
        if data and parse_record(data) is None:
            return "foreign"
        # Empty is the normal state of a released lock file (release() truncates): root
        # judges another user's like its own (the leftover of a run under that account).
        return None if euid in (owner, 0) else "other-user"

    def judge(
        data: bytes, cur: os.stat_result
    ) -> str | tuple[Literal["holder-gone", "no-record"], LockHolder | None]:
        """Why to keep this content, or why it is stale (and its record)."""
        why = foreign(data, cur.st_uid)
        if why is not None:
            return why
        holder = parse_record(data)
        if holder is None:
            return "new" if when - cur.st_mtime < grace else ("no-record", None)
        if holder.host and holder.host != host:
            return "other-host"
        if is_alive(holder):
            return "holder-alive"
        return ("holder-gone", holder)

    try:
        table = _LockTable.for_root(shown, os.fstat(dfd).st_dev)
        with os.scandir(dfd) as it:
            listed = [e.name for e in it]
        names = [name for name in listed if name.endswith(".lock")]
        for name in sorted(listed):  # what a takeover killed mid-swap left
            spare = spare_pid(name)
            if spare is None:
                continue
            path = f"{shown.rstrip('/')}/{name}"
            try:
                why = _sweep_spare(
                    dfd, name, spare, now=when, grace=grace, dry_run=dry_run, probe=probe
                )
            except OSError as exc:
                errors.append(CleanupProblem(path, f"cannot remove: {exc.strerror}"))
                continue
            if why is None:
                removed.append(StaleLock(path, spare, None, None, "no-record"))
            else:
                keep(why)
        for name in sorted(names):
            path = f"{shown.rstrip('/')}/{name}"
            if not is_lock_file_name(name):
                keep("foreign")
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError as exc:
                keep(_reason_for(exc))
                continue
            if not stat.S_ISREG(st.st_mode):
                keep("not-a-file")
                continue
            if euid not in (st.st_uid, 0):
                keep("other-user")
                continue
            fd = probe.open(dfd, name, st)
            if isinstance(fd, str):
                keep(fd)
                continue
            try:
                # Everything is judged before the flock is taken (another program's lock file
                # is never locked, and a run starting now never finds it held by the sweep);
                # the flock is taken only for a file about to be removed, and then the file
                # is judged again under it (a run may have come and gone meanwhile).
                data = os.pread(fd, 4097, 0)
                first = os.fstat(fd)
                verdict = judge(data, first)
                if isinstance(verdict, str):
                    keep(verdict)
                    continue
                if table is not None:
                    try:
                        busy = table.held(st)
                    except (OSError, ValueError):
                        table, busy = None, False  # the flock and OFD probes still decide
                    if busy:
                        keep("held")
                        continue
                if posix_locked(fd) or not try_flock(fd):
                    keep("held")
                    continue
                again_data = os.pread(fd, 4097, 0)
                cur = os.fstat(fd)
                if again_data != data or cur.st_mtime_ns != first.st_mtime_ns:
                    verdict = judge(again_data, cur)
                if isinstance(verdict, str) or posix_locked(fd):
                    keep(verdict if isinstance(verdict, str) else "held")
                    continue
                reason, holder = verdict
                # Still the inode we hold? (nobody replaced the name meanwhile)
                try:
                    again = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    keep("vanished")
                    continue
                if (again.st_dev, again.st_ino) != (cur.st_dev, cur.st_ino):
                    keep("changed")
                    continue
                if not dry_run:
                    placeholder = -1
                    try:
                        if cur.st_uid != euid:
                            swapped = _swap_out(dfd, name, cur)
                            if swapped is None:
                                keep("changed")
                                continue
                            placeholder = swapped
                        os.unlink(name, dir_fd=dfd)  # while holding the flock
                    except FileNotFoundError:
                        keep("vanished")
                        continue
                    except OSError as exc:
                        errors.append(CleanupProblem(path, f"cannot remove: {exc.strerror}"))
                        continue
                    except LockError as exc:
                        errors.append(CleanupProblem(path, str(exc)))
                        continue
                    finally:
                        if placeholder >= 0:
                            os.close(placeholder)  # unlinked: its waiters retry
                removed.append(
                    StaleLock(
                        path,
                        holder.pid if holder else None,
                        holder.host if holder else None,
                        holder.command if holder else None,
                        reason,
                    )
                )
            finally:
                os.close(fd)
    finally:
        os.close(dfd)
    return LockSweepReport(
        shown, dry_run, False, tuple(removed), dict(sorted(kept.items())), tuple(errors)
    )


def removal_paths(removals: Iterable[Removal]) -> list[str]:
    """Sorted paths of removals (handy to compare a dry run with a real one)."""
    return sorted(r.path for r in removals)


__all__ = [
    "AGE_BY",
    "SKIP_REASONS",
    "AgeBy",
    "CleanupProblem",
    "CleanupReport",
    "CleanupTarget",
    "LockSweepReport",
    "Progress",
    "Removal",
    "RootReport",
    "StaleLock",
    "absolute_root",
    "check_root",
    "clean",
    "clean_root",
    "open_root",
    "removal_paths",
    "sweep_stale_locks",
]
