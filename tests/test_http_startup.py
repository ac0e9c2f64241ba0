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
from httpserver import FlakyServer, Reply, https_server
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


def _python(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh interpreter with :func:`_env` (no RELIACTL_CONFIG, no CA
    variables unless given): the finished process, its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_plain_http_request_loads_no_ca_bundle_nor_trio_nor_httpx_cli(tmp_path: Path) -> None:
    """In a fresh interpreter, a ResilientClient GET of an http:// URL answers 200 without
    importing trio, anyio (httpcore imports both at import when installed: ~75 ms), httpx's
    command-line client (click, rich) or asyncio, and without loading any CA: its TLS
    context still verifies (CERT_REQUIRED, hostnames checked) but holds no CA until an https
    connection is made."""
    with FlakyServer() as server:
        done = _python(tmp_path, "-c", _PLAIN_PROBE, server.url + "/")
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
        done = _python(tmp_path, "-c", _TRIO_PROBE, server.url + "/")
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


# --------------------------------------------------------------------------- deferred modules
#
# The command line's process imports httpx with certifi, idna, mimetypes and some stdlib
# modules deferred (import_httpx(defer_unused=True)): their code runs at the first read of an
# attribute.

_DEFERRED_PROBE = """
import json, sys, threading
from reliactl.http import ResilientClient, import_httpx

httpx = import_httpx(defer_unused=True)
NAMES = {
    "certifi": "where", "idna": "encode", "mimetypes": "guess_type", "email.parser": "Parser",
    "email.header": "decode_header", "email.errors": "MessageError",
    "email.quoprimime": "body_encode", "email.base64mime": "body_encode",
    "locale": "getlocale", "selectors": "DefaultSelector", "shutil": "which",
}

def ran():
    return {name: attr in vars(sys.modules[name]) for name, attr in NAMES.items()}

seen = {"after_import": ran()}
import certifi, idna, mimetypes, email.parser, locale  # importing them again runs nothing
with ResilientClient(retry=0, timeout=30) as client:
    seen["status"] = client.get(sys.argv[1]).status_code
seen["after_get"] = ran()
seen["idn_host"] = httpx.URL("http://B\\u00fccher.example/").raw_host.decode()
try:
    httpx.URL("http://\\u2603.example/")  # a symbol: IDNA 2008 refuses it
    seen["bad_idn"] = "accepted"
except httpx.InvalidURL as exc:
    seen["bad_idn"] = type(exc).__name__
files = {"f": ("notes.txt", b"x")}
seen["multipart"] = b"text/plain" in httpx.Request("POST", "http://a/", files=files).read()
seen["ca_count"] = httpx.create_ssl_context().cert_store_stats()["x509_ca"]
seen["certifi_where"] = certifi.where().endswith("cacert.pem")
import email.base64mime, email.header, http.client, io, subprocess, tempfile, os
parsed = http.client.parse_headers(io.BytesIO(b"X-A: b\\r\\nbroken\\r\\n\\r\\n"))
seen["parsed"] = [parsed["X-A"], [type(d).__name__ for d in parsed.defects]]
seen["decoded"] = [
    email.header.decode_header("=?utf-8?q?caf=C3=A9?=")[0][0].decode(),
    email.base64mime.body_encode(b"x"),
]
seen["locale"] = locale.setlocale(locale.LC_ALL, None)
child = subprocess.run([sys.executable, "-c", "print('hi')"], capture_output=True, timeout=60)
seen["child"] = child.stdout.decode()  # communicate() waits on a selectors selector
with tempfile.TemporaryDirectory() as scratch:
    open(os.path.join(scratch, "f"), "w").close()
seen["scratch_removed"] = not os.path.exists(scratch)  # shutil.rmtree
seen["after_use"] = ran()
seen["types"] = sorted({type(sys.modules[name]).__name__ for name in NAMES})
print(json.dumps(seen))
"""


def test_the_cli_import_defers_what_a_plain_request_never_runs_until_used(
    tmp_path: Path,
) -> None:
    """With import_httpx(defer_unused=True), as the command line imports httpx: certifi, idna,
    mimetypes, email.parser/header/errors/quoprimime/base64mime, locale, selectors and shutil
    are imported but none of their code has run after the import, after importing them
    again, nor after a plain http:// GET; then each works at its first use: a non-ASCII host
    is IDNA-encoded and a symbol refused (idna), a multipart file gets its type (mimetypes),
    httpx's verify=True context loads certifi's CA bundle, http.client parses headers and
    notes a defect (email.parser, errors), an encoded word decodes (header, quoprimime),
    base64mime encodes, the locale is read, a child's output is collected (subprocess waits
    on a selectors selector), a temporary directory is removed (shutil.rmtree); and each is
    then an ordinary module."""
    with FlakyServer() as server:
        done = _python(tmp_path, "-c", _DEFERRED_PROBE, server.url + "/")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    names = ["certifi", "idna", "mimetypes", "email.parser", "email.header", "email.errors"]
    names += ["email.quoprimime", "email.base64mime", "locale", "selectors", "shutil"]
    none_ran = dict.fromkeys(names, False)
    assert seen["after_import"] == none_ran
    assert seen["status"] == 200
    assert seen["after_get"] == none_ran
    assert seen["idn_host"] == "xn--bcher-kva.example"
    assert seen["bad_idn"] == "InvalidURL"
    assert seen["multipart"] is True
    assert seen["ca_count"] > 50
    assert seen["certifi_where"] is True
    assert seen["parsed"] == ["b", ["MissingHeaderBodySeparatorDefect"]]
    assert seen["decoded"] == ["caf\u00e9", "eA==\n"]
    assert isinstance(seen["locale"], str) and seen["locale"]
    assert seen["child"] == "hi\n"
    assert seen["scratch_removed"] is True
    assert seen["after_use"] == dict.fromkeys(names, True)
    assert seen["types"] == ["module"]


def test_cli_http_get_runs_no_certifi_idna_email_parser_nor_shutil_code(tmp_path: Path) -> None:
    """A real `reliactl http GET http://...` start (python -X importtime) prints the body and
    never runs certifi's code (certifi.core, hence importlib.resources), idna's (idna.core:
    its Unicode tables), email.parser's (email.feedparser) nor shutil's (bz2, lzma): httpx
    imports them at import, a plain request uses none."""
    from importtime import start_reliactl

    with FlakyServer() as server:
        done, modules = start_reliactl(
            ["http", "GET", server.url + "/"], env=_env(tmp_path), cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    assert "httpx" in modules
    never = {"certifi.core", "idna.core", "importlib.resources", "email.feedparser", "bz2", "lzma"}
    assert not never & set(modules), modules


def test_cli_http_get_https_with_certifi_refuses_a_ca_it_does_not_hold(tmp_path: Path) -> None:
    """With no SSL_CERT_FILE, `reliactl http GET https://...` verifies against certifi's
    bundle, run on demand from the deferred module: the throwaway CA is refused (exit 7,
    CERTIFICATE_VERIFY_FAILED), not accepted nor crashed on."""
    ca, _ca_file = make_ca(tmp_path)
    with https_server(ca) as url:
        done = _python(tmp_path, "-m", "reliactl", "http", "GET", url, "--max-retries", "0")
    assert done.returncode == 7, done.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert "Traceback" not in done.stderr


def _deferred_module(tmp_path: Path, name: str, body: str) -> Any:
    """Import module ``name`` (written from ``body`` into tmp_path) deferred, as
    import_httpx defers certifi for the command line."""
    import importlib

    from reliactl._imports import ImportScope

    (tmp_path / f"{name}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    try:
        with ImportScope(defer=[name]):
            return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_deferred_module_runs_once_when_threads_race_to_its_first_read(
    tmp_path: Path,
) -> None:
    """Eight threads read a deferred module's attribute at once: its code runs exactly once
    (a lock per module), every thread sees the finished module's value, and the module is an
    ordinary module afterwards; importing it does not run it."""
    import threading
    import types

    name = "reliactl_test_deferred_race"
    body = (
        "import builtins, time\n"
        "builtins.reliactl_test_runs = getattr(builtins, 'reliactl_test_runs', 0) + 1\n"
        "time.sleep(0.2)\n"
        "VALUE = 42\n"
    )
    import builtins

    try:
        module = _deferred_module(tmp_path, name, body)
        assert not hasattr(builtins, "reliactl_test_runs")
        start = threading.Barrier(8)
        values: list[int] = []

        def read() -> None:
            start.wait(30)
            values.append(module.VALUE)

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert values == [42] * 8
        assert builtins.reliactl_test_runs == 1  # type: ignore[attr-defined]
        assert type(module) is types.ModuleType
        assert sys.modules[name] is module
    finally:
        sys.modules.pop(name, None)
        if hasattr(builtins, "reliactl_test_runs"):
            del builtins.reliactl_test_runs


def test_a_deferred_module_that_fails_raises_at_first_read_and_runs_again_in_place(
    tmp_path: Path,
) -> None:
    """A deferred module whose code raises (an error, or Ctrl-C during its first run): the
    first attribute read raises that error (as the import would have) and the module stays
    deferred in sys.modules, so the next read runs its code again on the same object: whoever
    bound it while deferred never holds a half-run module (review: it used to leave
    sys.modules, and the holders kept the half module forever)."""
    import importlib
    import types

    from reliactl._imports import DeferredModule

    name = "reliactl_test_deferred_fails"
    flag = tmp_path / "broken"
    flag.write_text("KeyboardInterrupt")
    body = "import os\nBEFORE = 1\n"
    body += f"if os.path.exists({str(flag)!r}):\n    raise eval(open({str(flag)!r}).read())\n"
    body += "OK = 1\n"
    try:
        held = _deferred_module(tmp_path, name, body)
        with pytest.raises(KeyboardInterrupt):
            held.OK  # noqa: B018 - the first read runs the module
        assert sys.modules[name] is held and type(held) is DeferredModule
        flag.write_text("RuntimeError('broken')")
        with pytest.raises(RuntimeError, match="broken"):
            importlib.import_module(name).OK  # noqa: B018 - the same object, run again
        flag.unlink()
        assert held.OK == 1 and type(held) is types.ModuleType
        assert importlib.import_module(name) is held
    finally:
        sys.modules.pop(name, None)


def test_only_python_source_found_by_the_import_system_is_deferred() -> None:
    """The deferring finder asks the other finders in their order, as the import system
    would: a built-in or frozen module (a frozen one would otherwise be loaded from its
    source file instead) and a name no finder knows are left to the usual import; a module
    the path finder finds as source is deferred with that same loader."""
    import json
    from importlib.machinery import SourceFileLoader

    from reliactl._imports import deferring_spec

    assert deferring_spec("_imp", None, None) is None  # built in
    assert deferring_spec("__hello__", None, None) is None  # frozen
    assert deferring_spec("reliactl_no_such_module", None, None) is None
    spec = deferring_spec("json.tool", json.__path__, None)
    assert spec is not None and isinstance(spec.loader.loader, SourceFileLoader)
    assert spec.origin.endswith("tool.py")


def test_cli_http_get_imports_no_retry_engine_and_a_retried_get_still_retries(
    tmp_path: Path,
) -> None:
    """A real `reliactl http GET` (issue 21 item 4, sixth session) builds its client's backoff
    from reliactl._strategies and waits through a sleep that imports the retry engine at the
    first wait, so a GET that succeeds at once imports neither `reliactl.retry` nor `signal`
    (its enums): ~2-3 ms. A GET answered 503 first still retries (after the configured
    backoff, through reliactl.retry's interruptible sleep, now imported) and prints the
    second answer's body."""
    from importtime import start_reliactl

    env = {**_env(tmp_path), "RELIACTL_RETRY__BASE_DELAY": "0.01"}
    with FlakyServer() as server:
        done, modules = start_reliactl(["http", "GET", server.url + "/"], env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "reliactl._strategies" in modules and "httpx" in modules
        assert not {"reliactl.retry", "signal"} & set(modules), modules
        server.script("/again", 503, 200)
        done, modules = start_reliactl(
            ["http", "GET", server.url + "/again"], env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert "reliactl.retry" in modules
        assert [r.path for r in server.requests if r.path == "/again"] == ["/again"] * 2


WEBHOOK_PATTERNS_AT_EXIT = """
import atexit, sys
import reliactl.redact as redact
size = redact._webhook_paths.cache_info
atexit.register(lambda: print("compiled", size().currsize, file=sys.stderr))
sys.argv = ["reliactl", *sys.argv[1:]]
from reliactl.__main__ import main
main()
"""


def test_cli_http_get_redacts_the_url_only_for_a_message(tmp_path: Path) -> None:
    """`reliactl http GET` that succeeds never redacts its URL, so redact's webhook patterns
    (~1 ms of compiling) are not compiled; when the body breaks off after the headers, the
    message still names the URL with a webhook's token as ***."""
    with FlakyServer() as server:
        ok = _python(tmp_path, "-c", WEBHOOK_PATTERNS_AT_EXIT, "http", "GET", server.url + "/")
        assert ok.returncode == 0, ok.stderr
        assert "compiled 0" in ok.stderr
        path = "/api/webhooks/1/tok3n"
        server.script(path, Reply(body=b"y" * 300, trickle=0.2, trickle_headers=False))
        broke = _python(
            tmp_path, "-c", WEBHOOK_PATTERNS_AT_EXIT, "http", "GET", server.url + path,
            "--timeout", "1s", "--max-retries", "0",
        )  # fmt: skip
    assert broke.returncode == 7, broke.stderr
    assert "then the body broke off after" in broke.stderr
    assert "/api/webhooks/1/***" in broke.stderr and "tok3n" not in broke.stderr
