"""Group write on a trusted file or a directory on its path (``reliactl.trust.untrusted``):
accepted only when everyone who can write through the group is root, the owner or the
caller. Those are the group's listed members AND the users whose primary group it is:
before, only the listed members were read, so Debian's ``nogroup`` (the primary group of
nobody, ``sync`` and ``_apt``, none listed) counted as private and a 0775 nobody:nogroup
directory with a 0664 configuration was trusted by nobody while ``sync`` could rewrite it.
Real files, real writes through the group by another uid (setpriv), this host's real
passwd and group databases."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl.trust import file_untrusted

NOGROUP = grp.getgrgid(65534).gr_name


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-groups-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def judged_as(uid: int, path: Path) -> str:
    """What ``file_untrusted`` says of ``path`` in a process running as ``uid``:65534."""
    code = "import sys; from reliactl.trust import file_untrusted as f; print(f(sys.argv[1]))"
    who = ["setpriv", "--reuid", str(uid), "--regid", "65534", "--clear-groups"]
    result = subprocess.run(
        [*who, sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def nobody_tree(shared: Path) -> Path:
    """``x/`` nobody:nogroup 0775 holding ``config.yaml`` nobody:nogroup 0664."""
    directory = shared / "x"
    directory.mkdir()
    cfg = directory / "config.yaml"
    cfg.write_text("retry: {}\n")
    for path, mode in ((directory, 0o775), (cfg, 0o664)):
        os.chown(path, 65534, 65534)
        path.chmod(mode)
    return cfg


def test_a_user_whose_primary_group_it_is_can_write_so_the_group_is_refused(
    shared: Path,
) -> None:
    """As root: root's 0664 config root:nogroup in a 0755 directory is refused, naming
    the group and nobody (primary group nogroup, listed nowhere), who really can append to
    it through the group. Before: nogroup has no listed members, so it was accepted."""
    cfg = shared / "config.yaml"
    cfg.write_text("retry: {}\n")
    os.chown(cfg, 0, 65534)
    cfg.chmod(0o664)
    subprocess.run([*NOBODY, "sh", "-c", f"echo '# x' >> {cfg}"], check=True, timeout=60)
    assert cfg.read_text().endswith("# x\n")  # the write through the primary group is real
    reason = file_untrusted(cfg) or ""
    assert reason.startswith(f"the file is writable by group {NOGROUP} (members: "), reason
    assert "nobody" in reason and reason.endswith("; mode 0664, owner root (uid 0))")
    assert "writable by others" not in reason and "\n" not in reason


def test_other_users_of_the_same_primary_group_make_nobodys_own_tree_untrusted(
    shared: Path,
) -> None:
    """The review's repro: x/ nobody:nogroup 0775, config.yaml 0664. Judged by nobody
    (owner and caller), the only other writers are the users whose primary group is
    nogroup (Debian: sync uid 4, _apt): refused naming them when there are any (and one
    of them really appends to the file), trusted when nobody is alone in nogroup."""
    cfg = nobody_tree(shared)
    others = sorted(
        (u for u in pwd.getpwall() if u.pw_gid == 65534 and u.pw_uid not in (0, 65534)),
        key=lambda u: u.pw_uid,
    )
    verdict = judged_as(65534, cfg)
    if not others:
        assert verdict == "None"
        return
    assert verdict.startswith(f"the file is writable by group {NOGROUP} (members: "), verdict
    assert all(u.pw_name in verdict for u in others[:5])
    peer = others[0].pw_uid
    append = f"echo '# {peer}' >> {cfg}"
    subprocess.run(
        ["setpriv", "--reuid", str(peer), "--regid", "65534", "--clear-groups", "sh", "-c", append],
        check=True,
        timeout=60,
    )
    assert cfg.read_text().endswith(f"# {peer}\n")


def test_a_group_with_listed_members_is_refused_and_an_empty_one_accepted(
    shared: Path,
) -> None:
    """root:GROUP 0775 directory: refused for a group with a listed member other than
    root (Debian's ssl-cert lists postgres; a deploy group its people), naming the group and
    the member; accepted for a group nobody can write through (Debian's /usr/local,
    root:staff 2775, staff empty). Before: the empty one was refused too ("group 50")."""
    app = shared / "app"
    app.mkdir()
    cfg = app / "config.yaml"
    cfg.write_text("retry: {}\n")
    cfg.chmod(0o644)

    def writers(g: grp.struct_group) -> set[str]:
        primary = {u.pw_name for u in pwd.getpwall() if u.pw_gid == g.gr_gid}
        return (set(g.gr_mem) | primary) - {"root"}

    empty = next(g for g in grp.getgrall() if g.gr_gid != 0 and not writers(g))
    os.chown(app, 0, empty.gr_gid)
    app.chmod(0o2775)
    assert file_untrusted(cfg) is None
    listed = [g for g in grp.getgrall() if set(g.gr_mem) - {"root"}]
    if not listed:  # no group on this host lists a member: the primary-group tests pin it
        return
    os.chown(app, 0, listed[0].gr_gid)
    app.chmod(0o775)
    reason = file_untrusted(cfg) or ""
    member = sorted(set(listed[0].gr_mem) - {"root"})[0]
    assert reason.startswith(
        f"the directory {app} on its path is writable by group {listed[0].gr_name} (members: "
    ), reason
    assert member in reason and "mode 0775, owner root (uid 0))" in reason
