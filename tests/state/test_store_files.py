"""Files the Redis state settings name (``state.password_file``, ``state.tls_ca_file``) are
configuration: missing, a directory, unreadable, holding no certificate, or not trusted as
ssh trusts its files (owned by another user, writable by others, in a directory others can
write) is a StateConfigError, one line naming the setting and the path, exit 78 on every
command that opens the store (it was exit 125, "internal error", and `run`/`health` went on
without the store). Real files, a real redis-server, the real CLI, another user via setpriv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redishelpers import free_port
from runhelpers import NOBODY

from reliactl.cli.exitcodes import ExitCode
from reliactl.errors import StateConfigError
from reliactl.state.redis import open_redis_store
from reliactl.state.url import parse_state_url

PASSWORD = "pw-of-the-test"


def _cli(
    argv: list[str], env: dict[str, str], cwd: Path, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "reliactl", *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def _bad_password_file(kind: str, root: Path) -> Path:
    """A password file (holding the right password) made unusable as ``kind`` says."""
    home = root / "secrets"
    home.mkdir(mode=0o700)
    path = home / "redis.pw"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
        return path
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    if kind == "owned-by-nobody":
        os.chown(path, 65534, 65534)
    elif kind == "writable-by-others":
        path.chmod(0o666)
    elif kind == "directory-writable-by-others":
        home.chmod(0o777)
    return path


REASONS = {
    "missing": "No such file",
    "directory": "Is a directory",
    "owned-by-nobody": "owned by",
    "writable-by-others": "writable by others",
    "directory-writable-by-others": "writable by others",
}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_an_unusable_password_file_is_a_configuration_error(
    own_redis: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    """Opening the store with each kind of unusable password file raises StateConfigError
    naming state.password_file and the path, before anything is sent to Redis, and the CLI
    (`breaker list`) exits 78 with that one line (the same file trusted and readable
    authenticates: test_redis.py's test_password_from_env_and_from_file)."""
    server = own_redis(password=PASSWORD)
    path = _bad_password_file(kind, tmp_path)
    url = parse_state_url(f"redis://127.0.0.1:{server.port}/0")
    with pytest.raises(StateConfigError) as caught:
        open_redis_store(url, password_file=str(path), connect_timeout=5, operation_timeout=5)
    text = str(caught.value)
    assert "state.password_file" in text and str(path) in text, text
    assert REASONS[kind] in text, text
    assert "\n" not in text and PASSWORD not in text
    env = {
        "HOME": str(tmp_path),
        "RELIACTL_STATE__URL": f"redis://127.0.0.1:{server.port}/0",
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_STATE__PASSWORD_FILE": str(path),
    }
    result = _cli(["breaker", "list"], env, tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert _one_line(result) == f"reliactl: error: {text}"


def test_every_command_that_opens_the_store_exits_78(
    own_redis: Callable[..., Any], tmp_path: Path
) -> None:
    """A missing state.password_file: `run` (host and fleet lock), `health`, `breaker`,
    `runs` and `state` exit 78 with one line naming the setting and the path (the job is not
    run); `doctor` reports it as a failed check (exit 1)."""
    server = own_redis(password=PASSWORD)
    missing = tmp_path / "no-such.pw"
    marker = tmp_path / "ran"
    env = {
        "HOME": str(tmp_path),
        "RELIACTL_STATE__URL": f"redis://127.0.0.1:{server.port}/0",
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_STATE__PASSWORD_FILE": str(missing),
    }
    job = ["--", "touch", str(marker)]
    for argv in (
        ["run", "--lock-name", "j", *job],
        ["run", "--lock-name", "j", "--lock-scope", "fleet", *job],
        ["run", "--breaker", "b", *job],
        ["health"],
        ["breaker", "trip", "b"],
        ["breaker", "list"],
        ["runs"],
        ["state", "info"],
    ):
        result = _cli(argv, env, tmp_path)
        assert result.returncode == ExitCode.CONFIG, (argv, result.stderr)
        line = _one_line(result)
        assert "state.password_file" in line and str(missing) in line, (argv, line)
    assert not marker.exists()
    doctor = _cli(["doctor"], env, tmp_path)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and str(missing) in failed[0], doctor.stdout
    assert "fix the file the message names" in doctor.stdout


def test_a_password_file_another_user_cannot_read_is_78_for_that_user(
    own_redis: Callable[..., Any], shared_dir: Path
) -> None:
    """nobody's reliactl, pointed at root's 0600 password file (root-owned: trusted), cannot
    read it: exit 78, one line naming the setting, the path and "Permission denied"."""
    server = own_redis(password=PASSWORD)
    secret = shared_dir / "root-only.pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    env = {
        "HOME": str(shared_dir),
        "RELIACTL_STATE__URL": f"redis://127.0.0.1:{server.port}/0",
        "RELIACTL_STATE__PATH": str(shared_dir / "nobody.db"),
        "RELIACTL_STATE__PASSWORD_FILE": str(secret),
    }
    result = _cli(["breaker", "list"], env, shared_dir, user=NOBODY)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    line = _one_line(result)
    assert "state.password_file" in line and str(secret) in line, line
    assert "Permission denied" in line, line


def test_a_ca_file_that_is_missing_untrusted_or_holds_no_certificate_is_78(
    tmp_path: Path,
) -> None:
    """rediss:// with a state.tls_ca_file that is missing, owned by another user, or holds
    no certificate: StateConfigError naming state.tls_ca_file and the path, before any
    connect (no server listens on the port: "cannot reach" would be the wrong diagnosis)."""
    url = parse_state_url(f"rediss://127.0.0.1:{free_port()}/0")
    home = tmp_path / "ca"
    home.mkdir(mode=0o700)
    garbage = home / "garbage.pem"
    garbage.write_text("not a certificate\n")
    foreign = home / "foreign.pem"
    foreign.write_text("not a certificate either\n")
    os.chown(foreign, 65534, 65534)
    for path, reason in (
        (home / "missing.pem", "No such file"),
        (foreign, "owned by"),
        (garbage, "TLS CA file"),
    ):
        with pytest.raises(StateConfigError) as caught:
            open_redis_store(url, tls_ca_file=str(path), connect_timeout=5, operation_timeout=5)
        text = str(caught.value)
        assert "state.tls_ca_file" in text and str(path) in text and reason in text, text
        assert "cannot reach" not in text
