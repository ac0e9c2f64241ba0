"""The secret-file rule of `serve --token-file` (reliactl.trust.secret_untrusted): refuse
what lets someone other than root, the owner or the group root chose read or replace the
token. Real files with real owners and modes, as operators and Docker lay them out."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reliactl.trust import secret_untrusted


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory (as /etc/reliactl or /run/secrets)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-secret-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# (mode, file owner uid, file group gid, refused because ... or None when accepted)
CASES = [
    (0o600, 0, 0, None),  # the usual
    (0o640, 0, 65534, None),  # root:svcgroup: how a non-root serve reads root's secret
    (0o440, 0, 65534, None),
    (0o444, 0, 0, None),  # Docker's /run/secrets default
    (0o644, 0, 0, "others can read it"),  # root's, but others read and root may rewrite
    (0o604, 0, 0, "others can read it"),
    (0o644, 65534, 65534, "owned by nobody"),  # another user's
    (0o600, 65534, 65534, "owned by nobody"),
    (0o666, 0, 0, "writable by others"),
    (0o660, 0, 65534, "writable by group"),  # nobody (primary group nogroup) may replace it
]


@pytest.mark.parametrize(("mode", "uid", "gid", "refused"), CASES)
def test_token_file_modes_and_owners(
    shared: Path, mode: int, uid: int, gid: int, refused: str | None
) -> None:
    """Each layout is accepted or refused with its reason (before: 0640 root:group and
    Docker's 0444 were refused, breaking upgrades, with serve exiting 78)."""
    token = shared / "serve.token"
    token.write_text("x" * 32 + "\n", encoding="utf-8")
    os.chown(token, uid, gid)
    token.chmod(mode)
    reason = secret_untrusted(token, os.stat(token))
    if refused is None:
        assert reason is None, reason
    else:
        assert reason is not None and refused in reason, reason


def test_a_read_only_root_secret_in_another_users_directory_is_refused(shared: Path) -> None:
    """0444 root is accepted only where nobody else can swap it: in nobody's directory it
    is refused (they could replace it with their own token)."""
    theirs = shared / "nob"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    token = theirs / "serve.token"
    token.write_text("x" * 32 + "\n", encoding="utf-8")
    token.chmod(0o444)
    reason = secret_untrusted(token, os.stat(token))
    assert reason is not None and "owned by nobody" in reason
