"""A Redis state store over TLS (issue 16): rediss:// with state.tls_ca_file works against a real
TLS redis-server, and every mismatch (an untrusted certificate, TLS spoken to a plain port,
plain text spoken to a TLS port) is one line on stderr, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redishelpers import free_port

trustme = pytest.importorskip("trustme")  # a dev dependency: .[dev] installs it


def _tls_server(own_redis: Callable[..., Any], tmp_path: Path) -> tuple[Any, int, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    server = own_redis(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert_file),
        "--tls-key-file", str(key_file), "--tls-ca-cert-file", str(ca_file),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    return server, tls_port, ca_file


def _state_info(url: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    env.update(
        RELIACTL_STATE__URL=url,
        RELIACTL_STATE__PATH=str(tmp_path / "local.db"),
        RELIACTL_STATE__ON_UNAVAILABLE="error",
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "reliactl", "state", "info", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_rediss_with_the_ca_file_reaches_a_tls_server(
    own_redis: Callable[..., Any], tmp_path: Path
) -> None:
    """The happy path: the certificate is checked against state.tls_ca_file and the store
    answers (`state info` names the Redis backend)."""
    _, tls_port, ca_file = _tls_server(own_redis, tmp_path)
    result = _state_info(
        f"rediss://127.0.0.1:{tls_port}/0", tmp_path, RELIACTL_STATE__TLS_CA_FILE=str(ca_file)
    )
    assert result.returncode == 0, result.stderr
    assert "redis" in json.dumps(json.loads(result.stdout)).lower()


def test_an_untrusted_certificate_is_one_line(
    own_redis: Callable[..., Any], tmp_path: Path
) -> None:
    """Without the CA that signed it the server's certificate is refused: one line, nonzero."""
    _, tls_port, _ = _tls_server(own_redis, tmp_path)
    result = _state_info(f"rediss://127.0.0.1:{tls_port}/0", tmp_path)
    assert result.returncode != 0
    assert "certificate" in _one_line(result).lower()


def test_tls_to_a_plain_port_and_plain_text_to_a_tls_port_are_one_line(
    own_redis: Callable[..., Any], tmp_path: Path
) -> None:
    """A TLS handshake against a plain server, and plain RESP against a TLS port, both end in
    one line within the store's timeouts: never a hang, never a traceback."""
    server, tls_port, ca_file = _tls_server(own_redis, tmp_path)
    tls_to_plain = _state_info(
        f"rediss://127.0.0.1:{server.port}/0", tmp_path, RELIACTL_STATE__TLS_CA_FILE=str(ca_file)
    )
    assert tls_to_plain.returncode != 0
    _one_line(tls_to_plain)
    plain_to_tls = _state_info(f"redis://127.0.0.1:{tls_port}/0", tmp_path)
    assert plain_to_tls.returncode != 0
    _one_line(plain_to_tls)


def test_a_missing_or_unusable_ca_file_is_named(tmp_path: Path) -> None:
    """A state.tls_ca_file that does not exist is one line naming the file (a setup problem,
    not "cannot reach Redis": on_unavailable must not hide it), checked before any connect;
    a file that holds no certificate is a client error naming it too."""
    from reliactl.state import _resp

    missing = tmp_path / "no-such-ca.pem"
    result = _state_info(
        f"rediss://127.0.0.1:{free_port()}/0", tmp_path, RELIACTL_STATE__TLS_CA_FILE=str(missing)
    )
    line = _one_line(result)
    assert result.returncode != 0
    assert str(missing) in line and "No such file" in line, line
    assert "cannot reach" not in line, line

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    client = _resp.Redis(
        host="127.0.0.1", port=free_port(), ssl=True, ssl_ca_certs=str(garbage),
        socket_connect_timeout=5.0, socket_timeout=5.0,
    )  # fmt: skip
    with pytest.raises(_resp.ConnectionError, match=r"TLS CA file .*garbage\.pem"):
        client.ping()
