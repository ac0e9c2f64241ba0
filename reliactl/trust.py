"""Whose files may steer reliactl: the ownership rule of sudo, ssh (StrictModes) and git.

A configuration file decides which commands ``health`` runs and what ``cleanup`` deletes; a
state store decides whether ``run --breaker`` starts a job. So a file (and every directory
on its path, ``file_untrusted``) is trusted only when it is owned by the invoking user or
root and nobody else can write it. Group write is allowed only when everyone who can write
through the group (its listed members and the users whose primary group it is) is root, the
owner or the caller: a user-private group (the Debian/Ubuntu ``umask 002`` layout, as OpenSSH
there allows), or a group nobody else is in.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)

if TYPE_CHECKING:
    from collections.abc import Callable

    Judge = Callable[[os.stat_result, str, bool], str | None]


def owner_name(uid: int) -> str:
    """``name (uid N)``, or ``uid N`` when the user has no name."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def not_own(st: os.stat_result, *, euid: int | None = None) -> str | None:
    """Why a file reliactl writes into (``run --log-file``) is not the invoking user's own,
    or None when it is: "owned by bob (uid 1000), not by root (uid 0)".

    Stricter than ``untrusted``, which also trusts root's files: what is written there (a
    job's output, a secret it prints) must only go where the invoking user's own file was,
    never into a file another user made (say mode 0666 in a sticky /shared) and can read.
    """
    uid = os.geteuid() if euid is None else euid
    if st.st_uid == uid:
        return None
    return f"owned by {owner_name(st.st_uid)}, not by {owner_name(uid)}"


def _trusted_owner(uid: int, caller: int) -> bool:
    """May ``uid`` own what steers the caller: root, the caller, or (in a user namespace)
    the overflow uid standing for an owner outside it (``_outside_namespace``)?"""
    return uid in (caller, 0) or _outside_namespace(uid)


def _owner_refusal(uid: int, caller: int) -> str:
    """ "owned by bob (uid 1000), not by root (uid 0)": why ``uid`` may not own it."""
    trusted = owner_name(0) if caller == 0 else f"{owner_name(caller)} or root"
    return f"owned by {owner_name(uid)}, not by {trusted}"


_NAMESPACE: dict[str, int] = {}  # read once per process, and only when needed


def _outside_namespace(uid: int) -> bool:
    """Is ``uid`` the kernel's overflow uid (``/proc/sys/kernel/overflowuid``) standing for
    an owner outside this user namespace (``unshare -r``, bwrap, flatpak), where no process
    inside can have it? Then only the host side can change such a file, as root's: it is
    judged like root's. False in the initial namespace (``uid_map`` is ``0 0 4294967295``)
    and when the overflow uid is mapped here (a real nobody inside: an ordinary user).
    ``uid_map`` is read only when an overflow-uid owner is met."""
    if "overflow" not in _NAMESPACE:
        _NAMESPACE["overflow"] = next(iter(_read_ints("/proc/sys/kernel/overflowuid")), -1)
    if uid != _NAMESPACE["overflow"]:
        return False
    if "outside" not in _NAMESPACE:
        numbers = _read_ints("/proc/self/uid_map")
        ranges = [numbers[i : i + 3] for i in range(0, len(numbers) - 2, 3)]
        initial = not ranges or len(numbers) % 3 or ranges == [[0, 0, 4294967295]]
        mapped = any(inside <= uid < inside + count for inside, _, count in ranges)
        _NAMESPACE["outside"] = int(not initial and not mapped)
    return bool(_NAMESPACE["outside"])


def _read_ints(path: str) -> list[int]:
    """The whitespace-separated integers of a /proc file ([] when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return [int(word) for word in f.read(4096).split()]
    except (OSError, ValueError):
        return []


_MEMBERS_SHOWN = 5


def _group_refusal(st: os.stat_result, caller: int) -> str | None:
    """Why the group that may write this file or directory may not, or None: everyone who
    can write through it is root, its owner or the caller. Those are the group's listed
    members and every user whose primary group it is (``sync`` and ``_apt`` are in Debian's
    ``nogroup``; SUSE's shared ``users``): ``pwd.getpwall`` enumerates all users (NSS: LDAP
    too), so it is only called for a group-writable file or directory, which is rare."""
    try:
        import grp
        import pwd
    except ImportError:
        return f"writable by group {st.st_gid}"
    try:
        group = grp.getgrgid(st.st_gid)
    except KeyError:
        return f"writable by group {st.st_gid} (a group with no name here: its members are unknown)"
    trusted = {0, st.st_uid, caller}
    others: list[str] = []
    for name in group.gr_mem:
        try:
            uid: int | None = pwd.getpwnam(name).pw_uid
        except KeyError:
            uid = None
        if uid not in trusted and name not in others:
            others.append(name)
    for user in pwd.getpwall():
        if user.pw_gid == st.st_gid and user.pw_uid not in trusted and user.pw_name not in others:
            others.append(user.pw_name)
    if not others:
        return None
    shown = ", ".join(others[:_MEMBERS_SHOWN])
    if len(others) > _MEMBERS_SHOWN:
        shown += f" and {len(others) - _MEMBERS_SHOWN} more"
    return f"writable by group {group.gr_name} (members: {shown})"


def _write_refusal(st: os.stat_result, caller: int) -> str | None:
    """Why someone but root, the owner and the caller can write this file or directory, or
    None: "writable by others (mode 0666, owner ...)" or "writable by group staff (members:
    alice, bob; mode 2775, owner ...)". The sticky bit is the caller's to judge."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return f"writable by others (mode {mode:04o}, owner {owner_name(st.st_uid)})"
    if not mode & stat.S_IWGRP:
        return None
    reason = _group_refusal(st, caller)
    if reason is None:
        return None
    owner = owner_name(st.st_uid)
    if reason.endswith(")"):
        return f"{reason[:-1]}; mode {mode:04o}, owner {owner})"
    return f"{reason} (mode {mode:04o}, owner {owner})"


def untrusted(
    st: os.stat_result, *, euid: int | None = None, sticky_ok: bool = False
) -> str | None:
    """Why a file or directory with this ``stat`` must not be trusted, or None if it may.

    The reason names the owner: "owned by bob (uid 1000)", "writable by others (mode 0666,
    ...)" or "writable by group staff (members: alice, bob; ...)" (``_write_refusal``). In a
    user namespace an owner outside it counts as root (``_trusted_owner``).
    ``sticky_ok``: a directory with the sticky bit (``/tmp``, ``/run/lock``: mode 1777) may be
    writable by others, because nobody can unlink or rename another user's entry in it; only
    for callers that judge each entry on its own (``run --lock``'s lock directory).
    """
    uid = os.geteuid() if euid is None else euid
    if not _trusted_owner(st.st_uid, uid):
        return _owner_refusal(st.st_uid, uid)
    if sticky_ok and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None
    return _write_refusal(st, uid)


def file_untrusted(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str | None:
    """Why the file ``path`` (a configuration file, a secret or CA file it names) must not be
    trusted, or None. ``st``: the ``fstat`` of the descriptor the caller opened (else the
    path is ``stat``'ed). None too when it cannot be stat'ed: reading it then reports it.

    OpenSSH's ``safe_path``, resolved through links (``_walk``): the file passes
    ``untrusted``, and so does every directory on its path from ``/`` (each one owned by this
    user or root, not writable by others unless sticky as ``/tmp``), and every symbolic link
    followed is this user's or root's. A directory anyone can write further up (``/srv``
    0777) would let them rename the file's directory away and put their own in its place.
    Refused too when the path no longer leads to the file ``st`` describes (it was swapped
    while being judged) or cannot be followed to it (a directory this user cannot search,
    the file removed). A path naming a descriptor the caller handed over (``/dev/stdin``,
    ``/dev/fd/N``, ``/proc/self/fd/N``: ``sudo -u app reliactl -c /dev/stdin < FILE``) is
    judged on the opened file alone: whoever opened it chose that file."""
    try:
        info = os.stat(path) if st is None else st
    except OSError:
        return None
    reason = untrusted(info)
    if reason is not None:
        return f"the file is {reason}"
    uid = os.geteuid()

    def judge(st: os.stat_result, what: str, link: bool) -> str | None:
        if link:
            return _link_refusal(st, what, uid)
        reason = untrusted(st, sticky_ok=True)
        if reason is None:
            return None
        return f"the directory {what} on its path is {reason}"

    return _walk_end(_walk(os.fspath(path), judge), info)


def _link_refusal(st: os.stat_result, what: str, uid: int) -> str | None:
    """Why a symbolic link on a judged path must not be followed (its owner chooses what is
    read), or None: only root's and this user's links (and owners outside a user namespace)."""
    if _trusted_owner(st.st_uid, uid):
        return None
    return f"the symbolic link {what} on its path is {_owner_refusal(st.st_uid, uid)}"


def _walk_end(walk: _Walked, st: os.stat_result | None) -> str | None:
    """Why a walk that judged every directory and link must still be refused, or None: it
    stopped before the file, or led to another file than ``st`` (the opened one)."""
    if walk.reason is not None or walk.handed:
        return walk.reason
    if walk.final is None:
        return f"its path cannot be followed to the file: {walk.stopped}"
    if st is not None and (walk.final.st_dev, walk.final.st_ino) != (st.st_dev, st.st_ino):
        return "its path changed while it was being checked (is someone replacing it?)"
    return None


def path_open_to_everyone(path: str, st: os.stat_result | None = None) -> str | None:
    """Why anyone at all could replace what ``path`` leads to, or None: a directory on its
    path (resolved through links, from ``/``) writable by others without the sticky bit, or
    a symbolic link on it that is not root's or this user's (its owner chooses what is read:
    a link to ``/etc/shadow`` would send root's first line to Redis as the password). The
    looser rule for a file whose own owner does not matter (the Redis password file: whoever
    owns it could only deny service); ``file_untrusted`` is the rule for one that steers.
    With ``st`` (the opened file's ``fstat``), refused too when the path does not lead to it
    (``file_untrusted``'s end-of-walk check); a descriptor handed over is judged alone."""
    uid = os.geteuid()

    def judge(st: os.stat_result, what: str, link: bool) -> str | None:
        if link:
            return _link_refusal(st, what, uid)
        mode = stat.S_IMODE(st.st_mode)
        if not mode & stat.S_IWOTH or mode & stat.S_ISVTX:
            return None
        return (
            f"the directory {what} on its path is writable by others without the sticky bit"
            f" (mode {mode:04o})"
        )

    walk = _walk(path, judge)
    return walk.reason if st is None else _walk_end(walk, st)


def secret_untrusted(path: str | os.PathLike[str], st: os.stat_result) -> str | None:
    """Why the secret file ``path`` (``serve --token-file``) with this ``fstat`` must not be
    used, or None. Refused: anything but a regular file; ``file_untrusted``'s rule (a file
    or directory another user owns or others can write: they could pick the secret); and a
    file others (not owner, not group) can read, unless it is root's and read-only for
    everyone (``0444``: Docker's ``/run/secrets``, published on purpose by root). Group read
    is accepted: the owner (root or this user) chose that group (``root:svcgroup 0640`` is how
    a non-root ``serve`` reads root's secret); group write as ``untrusted`` allows."""
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    reason = file_untrusted(path, st)
    if reason is not None:
        return reason
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007 and not (st.st_uid == 0 and not mode & 0o222):
        return (
            f"the file is mode {mode:04o}: others can read it (only a root-owned read-only"
            " file, mode 0444, may be)"
        )
    return None


class Untrusted(Exception):
    """A file refused by the trust rule; the message is the one-line reason."""


_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def _open_to_others(st: os.stat_result, what: str) -> str | None:
    """Why ``what`` (a directory on a pidfile's path) lets others change what it holds."""
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None
    reason = _write_refusal(st, os.geteuid())
    return None if reason is None else f"{what} is {reason}"


class _Walked:
    """What ``_walk`` found: the physical path reached, why it must not be used (or None),
    the ``lstat`` of the last component (None when the walk stopped early), why it stopped
    early ("PATH: Permission denied ..."), and whether the path named a descriptor this
    process holds (``/dev/stdin``, ``/dev/fd/N``, ``/proc/self/fd/N``: the walk ends there)."""

    __slots__ = ("final", "handed", "physical", "reason", "stopped")

    def __init__(
        self,
        physical: str,
        reason: str | None = None,
        final: os.stat_result | None = None,
        *,
        stopped: str | None = None,
        handed: bool = False,
    ) -> None:
        self.physical, self.reason, self.final = physical, reason, final
        self.stopped, self.handed = stopped, handed


def _stopped(path: str, exc: OSError) -> str:
    """Why the walk could not go on at ``path``, in words an operator can act on."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: {why} (this user may not search the directory holding it)"
    if exc.errno == errno.ENOENT:
        return f"{path}: {why} (removed or renamed while it was being checked?)"
    return f"{path}: {why}"


def _handed_descriptor(candidate: str) -> bool:
    """Is ``candidate`` (a physical path, links resolved) one of this process's descriptors
    in /proc (``/proc/PID/fd/N`` or ``/proc/PID/task/TID/fd/N``, where ``/dev/stdin``,
    ``/dev/fd/N`` and ``/proc/self/fd/N`` lead)?"""
    parts = candidate.split("/")
    if len(parts) == 7 and parts[3] == "task" and parts[4].isdigit():
        parts = parts[:3] + parts[5:]
    return (
        len(parts) == 5
        and parts[:2] == ["", "proc"]
        and parts[2] == str(os.getpid())
        and parts[3] == "fd"
        and parts[4].isdigit()
    )


def _walk(path: str, judge: Judge) -> _Walked:  # noqa: C901 - the kernel's walk, one branch per component kind
    """``path`` resolved component by component as the kernel does (``..`` after a link is
    the target's parent), as a ``_Walked``: the first reason ``judge`` gives (or too many
    links). ``judge(st, path, is_link)`` sees ``/``, every directory entered with more
    components to go, and every symbolic link followed (its own ``lstat``). A component
    that cannot be ``lstat``'ed (or a link read) ends the walk with no reason (``stopped``
    says why); so does a last component that is one of this process's descriptors
    (``handed``: what it names was opened and handed over, not looked up by name)."""
    # Not abspath: it folds "link/.." lexically, where the kernel goes to the link target's
    # parent; getcwd is the physical working directory.
    full = path if path.startswith("/") else os.path.join(os.getcwd(), path)
    pending = full.split("/")[::-1]
    current, links = "/", 0
    root = os.stat("/")  # as the kernel's own walk, which starts there
    reason = judge(root, "/", False)
    if reason is not None:
        return _Walked(current, reason)
    st: os.stat_result | None = root
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current, st = os.path.dirname(current), None
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except OSError as exc:
            return _Walked(
                os.path.join(candidate, *pending[::-1]), stopped=_stopped(candidate, exc)
            )
        last = not any(p not in ("", ".") for p in pending)
        if stat.S_ISLNK(st.st_mode):
            if last and _handed_descriptor(candidate):
                return _Walked(candidate, handed=True)
            reason = judge(st, candidate, True)
            if reason is not None:
                return _Walked(candidate, reason)
            links += 1
            try:
                target = os.readlink(candidate)
            except OSError as exc:
                return _Walked(candidate, stopped=_stopped(candidate, exc))
            if links > _MAX_LINKS:
                return _Walked(candidate, f"{path} has too many levels of symbolic links")
            if target.startswith("/"):
                current = "/"
            pending.extend(target.split("/")[::-1])
            continue
        current = candidate
        if not last and stat.S_ISDIR(st.st_mode):
            reason = judge(st, current, False)
            if reason is not None:
                return _Walked(current, reason)
    if st is None:  # the path ended in ".."
        try:
            st = os.lstat(current)
        except OSError as exc:
            return _Walked(current, stopped=_stopped(current, exc))
    return _Walked(current, final=st)


def resolve_owners(path: str) -> tuple[str, str | None, frozenset[int]]:
    """``path`` resolved component by component (``_walk``): the physical path (no links
    left in it, for an ``O_NOFOLLOW`` open), why it must not be used at all (or None), and
    the owners, other than root and this user, of the directories it enters and the links
    it follows.

    Refused outright: a directory writable by others that is not sticky (anyone could rename
    what is in it; ``/tmp``'s 1777 is fine, each entry then has its own owner), and a path
    too deep in links. The last component itself is not judged here (the caller judges the
    opened file's ``fstat``). A component that cannot be ``lstat``'ed ends the walk with no
    reason: opening the path then reports the problem."""
    uid = os.geteuid()
    owners: set[int] = set()

    def judge(st: os.stat_result, what: str, link: bool) -> str | None:
        if not _trusted_owner(st.st_uid, uid):
            owners.add(st.st_uid)
        return None if link else _open_to_others(st, f"the directory {what}")

    walk = _walk(path, judge)
    return walk.physical, walk.reason, frozenset(owners)


def open_regular(path: str, *, follow: bool = True) -> int:
    """A read-only descriptor of the regular file ``path``: ``O_NONBLOCK`` (a FIFO is never
    waited on) and refused (``Untrusted``) when it is anything but a regular file. OSError
    when it cannot be opened. For a read whose worst outcome is a wrong status (the
    ``process`` health check's pidfile): no trust rule, and callers never quote the content."""
    fd = os.open(path, _OPEN_FLAGS | (0 if follow else os.O_NOFOLLOW))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Untrusted(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_pidfile(path: str) -> tuple[int, int | None]:
    """A read-only descriptor of the pidfile ``path`` whose process reliactl will signal, and
    the one user (uid) the pid must belong to, or None when any process may be named.

    systemd's rule for ``PIDFile=``: a path that is all root's or this user's (directories,
    links, the file) is trusted for any pid (``/run/nginx.pid``). A path through something
    owned by one other user U (``/run/mysqld/`` of ``RuntimeDirectory=`` with ``User=mysql``,
    or U's file) may only name U's processes (U could signal those anyway), which the caller
    checks (``_procfs.real_uid``). Refused (``Untrusted``): two or more such users on the
    path, or anything on it writable by others (a directory only when not sticky), or a file
    that is not regular. OSError when it cannot be opened."""
    physical, reason, owners = resolve_owners(path)
    if reason is not None:
        raise Untrusted(f"{path}: {reason}")
    fd = open_regular(physical, follow=False)
    try:
        st = os.fstat(fd)
        if not _trusted_owner(st.st_uid, os.geteuid()):
            owners |= {st.st_uid}
        reason = _write_refusal(st, os.geteuid())
        if reason is not None:
            raise Untrusted(f"{path}: the file is {reason}")
        if len(owners) > 1:
            names = ", ".join(owner_name(u) for u in sorted(owners))
            raise Untrusted(f"{path}: its path is owned by more than one other user ({names})")
    except BaseException:
        os.close(fd)
        raise
    return fd, next(iter(owners), None)


def not_regular(path: str) -> str | None:
    """Why ``path`` cannot be an output file (it exists and is a FIFO, device, socket or
    directory), or None when it is a regular file or does not exist. Checked before a job
    starts, so a FIFO nobody reads never blocks reliactl."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # absent (or a dangling link): creating it reports any problem
    if stat.S_ISREG(st.st_mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    what = next((name for test, name in kinds if test(st.st_mode)), "not a regular file")
    return f"{path} is {what}, not a regular file; refused"
