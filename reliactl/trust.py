"""Whose files may steer reliactl: the ownership rule of sudo, ssh (StrictModes) and git.

A configuration file decides which commands ``health`` runs and what ``cleanup`` deletes; a
state store decides whether ``run --breaker`` starts a job. So a file (and the directory that
holds it) is trusted only when it is owned by the invoking user or root and nobody else can
write it. Group write is allowed only for a user-private group (the owner's own primary group
with no other members, the Debian/Ubuntu ``umask 002`` layout, as OpenSSH there allows).
"""

from __future__ import annotations

import os
import stat


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


def _private_group(st: os.stat_result) -> bool:
    """Is the file's group the owner's own primary group, with no other members?"""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(st.st_uid)
        group = grp.getgrgid(st.st_gid)
    except (ImportError, KeyError):
        return False
    return user.pw_gid == st.st_gid and all(m == user.pw_name for m in group.gr_mem)


def untrusted(
    st: os.stat_result, *, euid: int | None = None, sticky_ok: bool = False
) -> str | None:
    """Why a file or directory with this ``stat`` must not be trusted, or None if it may.

    The reason names the owner: "owned by bob (uid 1000)" or "writable by others (mode 0666)".
    ``sticky_ok``: a directory with the sticky bit (``/tmp``, ``/run/lock``: mode 1777) may be
    writable by others, because nobody can unlink or rename another user's entry in it; only
    for callers that judge each entry on its own (``run --lock``'s lock directory).
    """
    uid = os.geteuid() if euid is None else euid
    if st.st_uid not in (uid, 0):
        trusted = owner_name(0) if uid == 0 else f"{owner_name(uid)} or root"
        return f"owned by {owner_name(st.st_uid)}, not by {trusted}"
    mode = stat.S_IMODE(st.st_mode)
    if sticky_ok and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX:
        return None
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not _private_group(st)):
        return (
            f"writable by others (mode {mode:04o}, owner {owner_name(st.st_uid)}, "
            f"group {st.st_gid})"
        )
    return None


def file_untrusted(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str | None:
    """Why the file ``path`` (a configuration file, a secret or CA file it names) must not be
    trusted, or None: the file, the directory holding it and, for a symbolic link, the
    directory of its target must each pass ``untrusted``. None too when it cannot be
    stat'ed: reading it then reports the problem."""
    try:
        info = os.stat(path) if st is None else st
    except OSError:
        return None
    reason = untrusted(info)
    if reason is not None:
        return f"the file is {reason}"
    absolute = os.path.abspath(path)
    for directory in dict.fromkeys(
        (os.path.dirname(absolute), os.path.dirname(os.path.realpath(absolute)))
    ):
        try:
            reason = untrusted(os.stat(directory))
        except OSError:
            continue
        if reason is not None:
            return f"its directory {directory} is {reason}"
    return None


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
