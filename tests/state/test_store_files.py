"""Files the Redis state settings name (``state.password_file``, ``state.tls_ca_file``) are
configuration: missing, a directory, a FIFO, unreadable, holding no certificate, or one that
others could replace is a StateConfigError, one line naming the setting and the path: exit
78 on the commands that need the store (`state`, `breaker`, `runs`; `doctor` fails a check);
`run` and `health` warn in one line and go on without it, as for any other unusable store
(it was exit 125, "internal error"). A password file may have any owner (it only supplies a
secret); only a file or directory writable by others is refused. A CA file must be owned by
this user or root (it decides whom we trust). Real files, a real redis-server, the real
CLI, another user via setpriv.
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
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    user: list[str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "reliactl", *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
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
    if kind == "writable-by-others":
        path.chmod(0o666)
    elif kind == "directory-writable-by-others":
        home.chmod(0o777)
    return path


REASONS = {
    "missing": "No such file",
    "directory": "not a regular file",
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


def test_run_and_health_degrade_the_other_commands_exit_78(
    own_redis: Callable[..., Any], tmp_path: Path
) -> None:
    """A missing state.password_file: `run` (plain, with a host lock, with --breaker) warns
    in one line naming the setting and the path and runs the job, exit 0, as with a wrong
    password in the file; `health` warns the same way and reports the checks (not 78); a
    fleet lock, which cannot be taken without the store, exits 78 as with a wrong password;
    `breaker`, `runs` and `state` exit 78 with one line; `doctor` reports it as a failed
    check (exit 1)."""
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
        ["run", *job],
        ["run", "--lock-name", "j", *job],
        ["run", "--breaker", "b", *job],
    ):
        result = _cli(argv, env, tmp_path)
        assert result.returncode == 0, (argv, result.stderr)
        assert marker.exists(), (argv, result.stderr)
        marker.unlink()
        warned = [line for line in result.stderr.splitlines() if "warning" in line]
        assert len(warned) == 1, (argv, result.stderr)
        assert "state store unusable" in warned[0] and str(missing) in warned[0], warned
        assert "state.password_file" in warned[0] and "No such file" in warned[0], warned
    health = _cli(["health", "--format", "json"], env, tmp_path)
    assert health.returncode != ExitCode.CONFIG, health.stderr
    assert "Traceback" not in health.stderr
    assert "state.password_file" in health.stderr and str(missing) in health.stderr
    assert '"checks"' in health.stdout, health.stdout
    fleet = _cli(["run", "--lock-name", "j", "--lock-scope", "fleet", *job], env, tmp_path)
    assert fleet.returncode == ExitCode.CONFIG, fleet.stderr
    assert not marker.exists()
    for argv in (["breaker", "trip", "b"], ["breaker", "list"], ["runs"], ["state", "info"]):
        result = _cli(argv, env, tmp_path)
        assert result.returncode == ExitCode.CONFIG, (argv, result.stderr)
        line = _one_line(result)
        assert "state.password_file" in line and str(missing) in line, (argv, line)
    doctor = _cli(["doctor"], env, tmp_path)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and str(missing) in failed[0], doctor.stdout
    assert "fix the file the message names" in doctor.stdout


def _accepted_layout(kind: str, root: Path) -> Path:
    """A password file (holding the right password) laid out as upgrades from main have it."""
    home = root / "accepted"
    home.mkdir(mode=0o755, exist_ok=True)
    path = home / f"{kind}.pw"
    path.write_text(PASSWORD + "\n")
    if kind == "compose-secret-uid-1000":  # a docker-compose `file:` secret, bind-mounted
        os.chown(path, 1000, 1000)
        path.chmod(0o600)
    elif kind == "vault-agent-uid-100":  # written by a sidecar's user, read by its group
        os.chown(path, 100, 0)
        path.chmod(0o640)
    elif kind == "root-0660-group-writable":
        os.chown(path, 0, 100)
        path.chmod(0o660)
    elif kind == "sticky-world-writable-directory":
        sticky = root / "sticky"
        sticky.mkdir()
        sticky.chmod(0o1777)
        path = sticky / "redis.pw"
        path.write_text(PASSWORD + "\n")
        path.chmod(0o600)
    elif kind == "kubernetes-data-symlink":
        stamp = home / "..2026_12_01"
        stamp.mkdir()
        (stamp / "redis.pw").write_text(PASSWORD + "\n")
        (home / "..data").symlink_to(stamp.name)
        path.unlink()
        path.symlink_to(Path("..data") / "redis.pw")
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "compose-secret-uid-1000",
        "vault-agent-uid-100",
        "root-0660-group-writable",
        "sticky-world-writable-directory",
        "kubernetes-data-symlink",
    ],
)
def test_a_password_file_of_any_owner_that_others_cannot_replace_authenticates(
    own_redis: Callable[..., Any], tmp_path: Path, kind: str
) -> None:
    """Layouts main accepted (all as root) keep working: a password file owned by another
    user or writable by its group only supplies a secret (its owner could deny service, not
    take over), so only a file or directory writable by *others* is refused; the store opens
    and authenticates."""
    server = own_redis(password=PASSWORD)
    path = _accepted_layout(kind, tmp_path)
    url = parse_state_url(f"redis://127.0.0.1:{server.port}/0")
    store = open_redis_store(url, password_file=str(path), connect_timeout=5, operation_timeout=5)
    try:
        assert store.ping() >= 0
    finally:
        store.close()


def test_a_fifo_as_the_password_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO named as state.password_file (nobody writes it) is refused at once as "not a
    regular file" (exit 78 on `breaker list`): opening it used to block forever."""
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo, 0o600)
    env = {
        "HOME": str(tmp_path),
        "RELIACTL_STATE__URL": f"redis://127.0.0.1:{free_port()}/0",
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_STATE__PASSWORD_FILE": str(fifo),
    }
    try:
        result = _cli(["breaker", "list"], env, tmp_path, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("reliactl blocked opening a FIFO as state.password_file")
    assert result.returncode == ExitCode.CONFIG, result.stderr
    line = _one_line(result)
    assert "state.password_file" in line and "not a regular file" in line, line


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


def test_the_ca_file_is_parsed_once_per_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rediss:// with a state.tls_ca_file: the open's check and the connection share one
    SSL context (ssl.create_default_context runs once, not once to check and again to
    connect); nothing listens, so the open fails as "cannot reach", after connecting."""
    import ssl

    from reliactl.errors import StateUnavailableError
    from reliactl.state import _resp

    ca = tmp_path / "ca.pem"
    ca.write_text(ssl.DER_cert_to_PEM_cert(_a_certificate(tmp_path)))
    getattr(_resp, "_TLS_CONTEXTS", {}).clear()  # a context an earlier test built
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    url = parse_state_url(f"rediss://127.0.0.1:{free_port()}/0")
    with pytest.raises(StateUnavailableError):
        open_redis_store(url, tls_ca_file=str(ca), connect_timeout=5, operation_timeout=5)
    assert built == [str(ca)], built


def _a_certificate(tmp_path: Path) -> bytes:
    """DER bytes of a throwaway self-signed certificate (openssl req)."""
    key, pem = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(pem), "-days", "1", "-subj", "/CN=test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    import ssl

    return ssl.PEM_cert_to_DER_cert(pem.read_text())
