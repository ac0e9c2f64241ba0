"""Trusted files inside a user namespace (``unshare -r``, bwrap, flatpak): files owned by
users not mapped into it, root included, show as the kernel's overflow uid (65534). Before,
every path then failed at ``/`` ("owned by nobody (uid 65534)"), a refusal nobody inside can
act on; `config show` exited 78 where main's base exited 0. Now, in a namespace where the
overflow uid is not mapped (no process inside can have it), such an owner is outside the
namespace and judged like root (only the host side can change the file); where it is mapped
(a real nobody inside) it stays an ordinary other user, and in the initial namespace nothing
changes. Real namespaces: the real ``unshare -r`` as root; for nobody (whose setpriv'd
process may not exec this venv's interpreter from inside a namespace here) the same
unshare(CLONE_NEWUSER) and self-map ``unshare -r`` does, from Python, then the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl.trust import file_untrusted

# argv[1]: "self" maps this process's own uid/gid to 0 (what `unshare -r` does); "mapped"
# forks a child into a new namespace whose map root (the parent) writes as "0 0 1" plus
# "65534 65534 1" (a real nobody inside). Then the real CLI runs with argv[2:].
IN_NAMESPACE = r"""
import ctypes, os, runpy, sys

libc = ctypes.CDLL(None, use_errno=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def unshare():
    if libc.unshare(0x10000000):  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")


if sys.argv[1] == "self":
    uid, gid = os.geteuid(), os.getegid()
    unshare()
    write("/proc/self/setgroups", "deny")
    write("/proc/self/uid_map", f"0 {uid} 1\n")
    write("/proc/self/gid_map", f"0 {gid} 1\n")
else:
    ready, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid:
        os.read(ready[0], 1)
        for kind in ("uid", "gid"):
            write(f"/proc/{pid}/{kind}_map", "0 0 1\n65534 65534 1\n")
        os.write(go[1], b"x")
        sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    unshare()
    os.write(ready[1], b"x")
    os.read(go[0], 1)
print(open("/proc/self/uid_map").read().split(), file=sys.stderr)
sys.argv = ["reliactl", *sys.argv[2:]]
runpy.run_module("reliactl", run_name="__main__", alter_sys=True)
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp holding root's 0644 config.yaml."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-userns-", dir="/tmp"))
    path.chmod(0o755)
    (path / "config.yaml").write_text("retry: {}\n")
    (path / "config.yaml").chmod(0o644)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def cli(prefix: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    return subprocess.run(
        [*prefix, *args],
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nobody_in_its_own_namespace_trusts_roots_config(shared: Path) -> None:
    """nobody, namespaced as `unshare -r` does (uid_map "0 65534 1": root and everyone else
    show as the overflow uid 65534): `config show` of root's config in root's directories
    exits 0 (before: 78, "the directory / on its path is owned by nobody (uid 65534)")."""
    result = cli(
        [*NOBODY, sys.executable, "-c", IN_NAMESPACE, "self"],
        "-c",
        str(shared / "config.yaml"),
        "config",
        "show",
        cwd=shared,
    )
    assert "'0', '65534', '1'" in result.stderr, result.stderr  # really namespaced
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_root_under_unshare_r_still_trusts_its_config(shared: Path) -> None:
    """The real `unshare -r` as root (uid_map "0 0 1": root stays root, others show as the
    overflow uid): `config show` exits 0, and a directory of nobody's on the path (shown as
    65534, outside the namespace) is trusted there like root's, as only the host can change
    it; in the initial namespace the same directory is refused."""
    cfg = str(shared / "config.yaml")
    result = cli(
        ["unshare", "-r", sys.executable, "-m", "reliactl"], "-c", cfg, "config", "show", cwd=shared
    )
    assert result.returncode == 0, result.stderr
    theirs = shared / "theirs"
    theirs.mkdir(mode=0o755)
    shutil.copy(cfg, theirs / "config.yaml")
    os.chown(theirs, 65534, 65534)
    assert "owned by nobody (uid 65534)" in (file_untrusted(theirs / "config.yaml") or "")
    inside = cli(
        ["unshare", "-r", sys.executable, "-m", "reliactl"],
        "-c",
        str(theirs / "config.yaml"),
        "config",
        "show",
        cwd=shared,
    )
    assert inside.returncode == 0, inside.stderr


def test_a_nobody_mapped_into_the_namespace_stays_another_user(shared: Path) -> None:
    """A namespace that maps 65534 too ("0 0 1" and "65534 65534 1": a real nobody can run
    inside): nobody's directory on the path is another user's, refused (78) naming nobody,
    as in the initial namespace."""
    theirs = shared / "theirs"
    theirs.mkdir(mode=0o755)
    shutil.copy(shared / "config.yaml", theirs / "config.yaml")
    os.chown(theirs, 65534, 65534)
    result = cli(
        [sys.executable, "-c", IN_NAMESPACE, "mapped"],
        "-c",
        str(theirs / "config.yaml"),
        "config",
        "show",
        cwd=shared,
    )
    assert "'65534', '65534', '1'" in result.stderr, result.stderr  # really namespaced
    assert result.returncode == 78, result.stderr
    assert f"the directory {theirs} on its path is owned by nobody (uid 65534)" in result.stderr
