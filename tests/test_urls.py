"""The one URL rule (reliactl._urls): what every URL reliactl is given must pass, so that a
host name the resolver or the HTTP clients cannot encode is refused up front, in one line,
instead of surfacing later as an internal error or a lower layer's exception."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliactl._urls import host_problem, url_problem

BAD_HOSTS = [
    "a..b",  # an empty label: the stdlib idna codec under getaddrinfo refuses it
    ".a",
    "a" * 64 + ".example",  # a label over 63 octets
    ("a" * 60 + ".") * 5 + "example",  # a name over 253 octets: idna refuses it
    "xn--a",  # not punycode: httpx's URL.host fails decoding it
    "caf\u00e9\u200d.example",  # a joiner IDNA 2008 refuses in that place
]
GOOD_HOSTS = [
    "example.com",
    "example.com.",  # a final dot: an absolute name
    "my_service",  # Docker and Compose names: DNS does not forbid underscores
    "127.0.0.1",
    "caf\u00e9.example",  # an international name IDNA 2008 accepts
    "xn--caf-dma.example",  # its punycode
    "a" * 63 + ".example",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_hosts_the_clients_cannot_encode_are_refused(host: str) -> None:
    """Each refused host really fails in the layer the rule stands in for: the stdlib codec
    getaddrinfo applies, or the idna package httpx uses; the rule names the host."""
    import idna

    def fails(encode: object) -> bool:
        try:
            encode(host)  # type: ignore[operator]
        except UnicodeError:  # idna.IDNAError is one
            return True
        return False

    assert fails(lambda h: h.encode("idna")) or fails(idna.encode) or fails(idna.decode)
    problem = host_problem(host)
    assert problem is not None and repr(host) in problem


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_hosts_the_clients_can_encode_are_accepted(host: str) -> None:
    """Ordinary, absolute, underscored, numeric and international names pass."""
    assert host_problem(host) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://host/x", "got ftp:"),
        ("example.com/x", "got 'example.com/x'"),
        ("http:/one-slash", "got http:"),
        ("http:///nohost", "with a host"),
        ("http://h:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("https://a..b/hook", "1 to 63"),
    ],
)
def test_url_problems_say_what_is_wrong(url: str, words: str) -> None:
    """Scheme, host, port and bracket mistakes each get their own reason."""
    problem = url_problem(url)
    assert problem is not None and words in problem


def test_good_urls_pass() -> None:
    """IPv6 literals, ports, user info and paths are left to the clients."""
    for url in (
        "http://[::1]:8080/healthz",
        "https://user:pw@example.com:8443/a?b=c",
        "HTTP://Example.COM",
        "https://hc-ping.com/uuid",
    ):
        assert url_problem(url) is None, url


def test_config_validate_refuses_bad_hosts_in_checks_sinks_and_pings(tmp_path: Path) -> None:
    """`config validate`, as a CI job runs it, names each bad URL with its file and line: an
    http check, an alert sink and a job's ping, all of which it accepted before."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        textwrap.dedent(
            """\
            health_monitor:
              system_checks: []
              jobs_checks: false
              checks:
              - name: web
                kind: http
                url: "http://a..b/"
              alerts:
              - name: hook
                kind: webhook
                url: "https://xn--a/hook"
            jobs:
              nightly:
                schedule: 30 2 * * *
                ping:
                  url: "https://hc..example/ping/x"
            """
        )
    )
    import reliactl

    tree = str(Path(reliactl.__file__).parents[1])  # the tree under test, not an installed one
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": tree}
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "--config", str(cfg), "config", "validate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{cfg}:7: health_monitor.checks[0].url:" in result.stderr
    assert f"{cfg}:11: health_monitor.alerts[0].url:" in result.stderr
    assert "not valid punycode" in result.stderr
    assert f"{cfg}:16: jobs.nightly.ping.url:" in result.stderr


@pytest.mark.parametrize("url", ["http://a..b/", "http://xn--a/"])
def test_library_turns_host_encoding_errors_into_http_error(url: str) -> None:
    """ResilientClient raises its own HTTPError for a host the lower layers cannot encode
    (httpx passes UnicodeError and idna's errors up untranslated), once: it is the caller's
    mistake, not the service's, so it is not retried. The async client meets ``xn--a`` in
    httpx's URL the same way; ``a..b`` it never encodes (anyio hands the ASCII name to the
    resolver, whose "not known" is a connect error like any unknown name's)."""
    from reliactl.errors import HTTPError
    from reliactl.http import AsyncResilientClient, ResilientClient

    with ResilientClient("", retry=3) as client, pytest.raises(HTTPError) as caught:
        client.get(url)
    assert "host name is not valid" in str(caught.value)
    assert caught.value.attempts == 1

    async def go() -> HTTPError:
        async with AsyncResilientClient("", retry=3) as aclient:
            try:
                await aclient.get(url)
            except HTTPError as exc:
                return exc
        raise AssertionError("no error")

    if "xn--" not in url:
        return
    error = asyncio.run(go())
    assert "host name is not valid" in str(error) and error.attempts == 1
