"""A configuration handed over as an open descriptor (``/dev/stdin``, ``/dev/fd/N``,
``/proc/self/fd/N``) is judged on the opened file alone: whoever opened it chose that file
(``sudo -u app reliactl -c /dev/stdin < /root-only/config.yaml``; ``exec 7<f; rm f;
reliactl -c /dev/fd/7``). Main accepted these; the whole-path rule refused them with a
misleading "its path changed while it was being checked". A walk that stops early for
another reason (a directory the caller cannot search, a removed file) now says so. Real
descriptors passed to the real CLI, nobody via setpriv."""

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


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-fds-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def config(directory: Path) -> Path:
    path = directory / "config.yaml"
    path.write_text("retry:\n  max_retries: 7\n")
    path.chmod(0o644)
    return path


def cli(*args: str, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*args],
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_a_config_on_stdin_from_a_directory_the_caller_cannot_reach_is_accepted(
    shared: Path,
) -> None:
    """root opens its config in a 0700 directory and hands it to nobody as stdin:
    `reliactl -c /dev/stdin config show` exits 0 showing its value (before: 78, "its path
    changed while it was being checked")."""
    private = shared / "private"
    private.mkdir(mode=0o700)
    cfg = config(private)
    with open(cfg, "rb") as stdin:
        result = cli(
            *NOBODY,
            sys.executable,
            "-m",
            "reliactl",
            "-c",
            "/dev/stdin",
            "config",
            "show",
            cwd=shared,
            stdin=stdin,
        )
    assert result.returncode == 0, result.stderr
    assert "max_retries: 7" in result.stdout


def test_a_removed_file_handed_over_as_dev_fd_is_accepted(shared: Path) -> None:
    """`exec 7<config.yaml; rm config.yaml; reliactl -c /dev/fd/7 config show` exits 0;
    /proc/self/fd/N is judged the same way; a descriptor of nobody's file is still refused
    by the file's own rule (owner)."""
    cfg = config(shared)
    fd = os.open(cfg, os.O_RDONLY)
    try:
        cfg.unlink()
        script = f"exec {sys.executable} -m reliactl -c /dev/fd/{fd} config show"
        result = cli("sh", "-c", script, cwd=shared, pass_fds=(fd,))
        assert result.returncode == 0, result.stderr
        assert "max_retries: 7" in result.stdout
        assert file_untrusted(f"/proc/self/fd/{fd}", os.fstat(fd)) is None
        assert file_untrusted(f"/dev/fd/{fd}", os.fstat(fd)) is None
    finally:
        os.close(fd)
    theirs = config(shared)
    os.chown(theirs, 65534, 65534)
    fd = os.open(theirs, os.O_RDONLY)
    try:
        reason = file_untrusted(f"/dev/fd/{fd}", os.fstat(fd)) or ""
        assert reason.startswith("the file is owned by nobody (uid 65534)"), reason
    finally:
        os.close(fd)


def test_a_walk_that_stops_early_says_why(shared: Path) -> None:
    """Not a descriptor: a file removed after it was opened is refused saying the path
    cannot be followed to it (removed or renamed), and nobody in a working directory
    under root's 0700 directory (`reliactl -c config.yaml` opens it relative) is told the
    directory cannot be searched; neither says "changed"."""
    cfg = config(shared)
    st = os.stat(cfg)
    cfg.unlink()
    reason = file_untrusted(cfg, st) or ""
    assert reason == (
        f"its path cannot be followed to the file: {cfg}: No such file or directory"
        " (removed or renamed while it was being checked?)"
    )
    private = shared / "private"
    private.mkdir(mode=0o700)
    app = private / "app"
    app.mkdir(mode=0o755)
    config(app)
    code = "from reliactl.trust import file_untrusted as f; print(f('config.yaml'))"
    result = cli(*NOBODY, sys.executable, "-c", code, cwd=app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"its path cannot be followed to the file: {app}: Permission denied (this user may"
        " not search the directory holding it)"
    )
