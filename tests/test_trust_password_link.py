"""The Redis password file's looser rule (any owner of the file) does not extend to links:
whoever owns a symbolic link on its path chooses which file root reads and sends to Redis
as the password. Before, ``trust.path_open_to_everyone`` passed every link, so nobody's link
``/tmp/s/nbshadow -> /etc/shadow`` in a sticky directory had root send /etc/shadow's first
line to Redis. Now a link must be root's or the caller's, and the path must still lead to
the opened file. Real files, a real sticky directory, a link made by nobody (setpriv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl.errors import StateConfigError
from reliactl.state.redis import _read_password
from reliactl.trust import path_open_to_everyone


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-pwlink-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_password_file_through_another_users_link_is_refused(shared: Path) -> None:
    """root's secret (0600 in root's 0700 directory, as /etc/shadow) and a sticky 1777
    directory: nobody's link there to the secret is refused naming the link and its owner,
    and the secret is never returned; root's own link to it reads its first line."""
    secrets = shared / "etc"
    secrets.mkdir(mode=0o700)
    shadow = secrets / "shadow"
    shadow.write_text("root:$6$secret-hash:19000:0:99999:7:::\nother\n")
    shadow.chmod(0o600)
    sticky = shared / "s"
    sticky.mkdir()
    sticky.chmod(0o1777)
    theirs = sticky / "nbshadow"
    subprocess.run([*NOBODY, "ln", "-s", str(shadow), str(theirs)], check=True, timeout=60)
    assert theirs.lstat().st_uid == 65534
    with pytest.raises(StateConfigError) as caught:
        _read_password(str(theirs))
    text = str(caught.value)
    assert text.startswith(f"state.password_file {theirs}: the symbolic link {theirs} on its")
    assert "owned by nobody (uid 65534), not by root (uid 0)" in text
    assert "secret-hash" not in text and "\n" not in text
    mine = sticky / "mine"
    mine.symlink_to(shadow)
    assert _read_password(str(mine)) == "root:$6$secret-hash:19000:0:99999:7:::"


def test_a_password_file_whose_path_leads_elsewhere_is_refused(shared: Path) -> None:
    """The walk-end check of ``file_untrusted`` applies to the password file too: the
    opened file's fstat and what the path leads to now differ (swapped meanwhile):
    refused as changed; the same file passes."""
    first, second = shared / "pw", shared / "pw.new"
    for path in (first, second):
        path.write_text("pw\n")
    st = os.stat(first)
    assert path_open_to_everyone(str(first), st) is None
    second.rename(first)
    assert "changed while it was being checked" in (path_open_to_everyone(str(first), st) or "")
