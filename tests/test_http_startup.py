"""Start-up of the HTTP client (issue 21): what it defers, and that TLS stays as safe."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httpserver import FlakyServer, https_server
from smtpserver import make_ca

from reliactl.errors import HTTPError
from reliactl.http import AsyncResilientClient, ResilientClient

_PLAIN_PROBE = """
import importlib.util, json, sys
from reliactl.http import ResilientClient

with ResilientClient(retry=0, timeout=30) as client:
    status = client.get(sys.argv[1]).status_code
    context = client._client._transport._pool._ssl_context
    print(json.dumps({
        "status": status,
        "trio_installed": importlib.util.find_spec("trio") is not None,
        "imported": [m for m in ("trio", "anyio", "httpx._main", "click", "rich", "asyncio")
                     if m in sys.modules],
        "cas": context.cert_store_stats()["x509_ca"],
        "verifies": [context.verify_mode == __import__("ssl").CERT_REQUIRED,
                     context.check_hostname],
    }))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env["XDG_STATE_HOME"] = str(tmp_path)
    for name in ("RELIACTL_CONFIG", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        env.pop(name, None)
    return {**env, **extra}


def test_a_plain_http_request_loads_no_ca_bundle_nor_trio_nor_httpx_cli(tmp_path: Path) -> None:
    """In a fresh interpreter, a ResilientClient GET of an http:// URL answers 200 without
    importing trio, anyio (httpcore imports both at import when installed: ~75 ms), httpx's
    command-line client (click, rich) or asyncio, and without loading any CA: its TLS
    context still verifies (CERT_REQUIRED, hostnames checked) but holds no CA until an https
    connection is made."""
    with FlakyServer() as server:
        done = subprocess.run(
            [sys.executable, "-c", _PLAIN_PROBE, server.url + "/"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["status"] == 200
    assert seen["imported"] == [], seen
    assert seen["cas"] == 0
    assert seen["verifies"] == [True, True]


def _get(url: str, **kwargs: Any) -> Any:
    with ResilientClient(retry=0, timeout=30, **kwargs) as client:
        return client.get(url)


def test_https_verifies_against_httpx_ca_sources_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deferred TLS context trusts exactly what httpx's default does: a CA named by
    SSL_CERT_FILE (trust_env) is trusted; certifi's bundle alone refuses the throwaway CA;
    trust_env=False ignores SSL_CERT_FILE and refuses it; a certificate another CA signed is
    refused; a caller's verify=False still accepts it (its choice, passed on untouched)."""
    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other, other_file = make_ca(tmp_path / "other")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with https_server(ca) as url:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
            _get(url)  # certifi's bundle
        assert _get(url, verify=False).status_code == 200
        monkeypatch.setenv("SSL_CERT_FILE", str(other_file))
        with pytest.raises(HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
            _get(url)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        response = _get(url)
        assert (response.status_code, response.text) == (200, "ok")
        with pytest.raises(HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
            _get(url, trust_env=False)


def test_concurrent_first_https_requests_share_one_verifying_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads make a fresh client's first https requests at once: the CA bundle is
    loaded once, under a lock, and every request is verified with it (all 200 with the
    trusted CA; with another CA every one is refused, none slips through half-built)."""
    import threading

    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other, other_file = make_ca(tmp_path / "other")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    def burst(url: str) -> list[Any]:
        outcomes: list[Any] = []
        start = threading.Barrier(8)
        with ResilientClient(retry=0, timeout=30) as client:

            def one() -> None:
                start.wait(30)
                try:
                    outcomes.append(client.get(url).status_code)
                except HTTPError as exc:
                    outcomes.append("CERTIFICATE_VERIFY_FAILED" in str(exc))

            threads = [threading.Thread(target=one) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        return outcomes

    with https_server(ca) as url:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        assert burst(url) == [200] * 8
        monkeypatch.setenv("SSL_CERT_FILE", str(other_file))
        assert burst(url) == [True] * 8


def test_the_async_client_verifies_https_with_the_deferred_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AsyncResilientClient (anyio's TLS path, wrap_bio) uses the same deferred context:
    the trusted CA passes, an untrusted one is refused."""
    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other, other_file = make_ca(tmp_path / "other")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def get(url: str) -> int:
        async with AsyncResilientClient(retry=0, timeout=30) as client:
            return (await client.get(url)).status_code

    with https_server(ca) as url:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        assert asyncio.run(get(url)) == 200
        monkeypatch.setenv("SSL_CERT_FILE", str(other_file))
        with pytest.raises(HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(get(url))


_TRIO_PROBE = """
import asyncio, sys
from reliactl.http import AsyncResilientClient, ResilientClient, import_httpx

httpx = import_httpx()  # reliactl imports httpx first: trio and anyio deferred
import trio

async def with_trio():
    async with httpx.AsyncClient() as client:
        return (await client.get(sys.argv[1])).status_code

async def with_asyncio():
    async with AsyncResilientClient(retry=0, timeout=30) as client:
        return (await client.get(sys.argv[1])).status_code

with ResilientClient(retry=0, timeout=30) as client:
    sync = client.get(sys.argv[1]).status_code
print(sync, trio.run(with_trio), asyncio.run(with_asyncio()), httpx.main.__name__)
"""


def test_httpx_still_runs_under_trio_and_asyncio_once_reliactl_imported_it(
    tmp_path: Path,
) -> None:
    """Deferring httpcore's trio and anyio imports changes nothing for their users: after
    reliactl imported httpx, another httpx.AsyncClient in the process works under trio, the
    async client under asyncio, and httpx.main is still callable (httpx's CLI, on demand)."""
    pytest.importorskip("trio")
    with FlakyServer() as server:
        done = subprocess.run(
            [sys.executable, "-c", _TRIO_PROBE, server.url + "/"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "200", "200", "_httpx_main"]


def test_cli_http_get_https_trusts_ssl_cert_file_and_refuses_a_bad_certificate(
    tmp_path: Path,
) -> None:
    """End to end: `reliactl http GET https://...` prints the body when SSL_CERT_FILE names
    the CA that signed the server's certificate, and exits 7 (no answer) with a certificate
    error when it names another CA."""
    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other, other_file = make_ca(tmp_path / "other")
    results = {}
    with https_server(ca) as url:
        for name, trust in (("trusted", ca_file), ("untrusted", other_file)):
            results[name] = subprocess.run(
                [sys.executable, "-m", "reliactl", "http", "GET", url, "--max-retries", "0"],
                env=_env(tmp_path, SSL_CERT_FILE=str(trust)),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    trusted, untrusted = results["trusted"], results["untrusted"]
    assert (trusted.returncode, trusted.stdout) == (0, "ok"), trusted.stderr
    assert untrusted.returncode == 7, untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert untrusted.stdout == ""
