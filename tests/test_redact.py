"""reliactl.redact: the one place that decides what is a secret, and how it is hidden."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reliactl import http
from reliactl.health import alerts
from reliactl.redact import (
    is_secret_name,
    redact_argv,
    redact_command,
    redact_headers,
    redact_url,
    redact_urls_in,
    scrub,
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "Api-Key",
        "X-Goog-Api-Key",
        "X-Access-Key",
        "X-Functions-Key",
        "X-Auth-Token",
        "api_key",
        "access_token",
        "client_secret",
        "sig",
        "X-Amz-Signature",
        "password",
    ],
)
def test_secret_names(name: str) -> None:
    """Headers and query parameters that carry credentials are secret, whatever their case."""
    assert is_secret_name(name) and is_secret_name(name.upper())


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "User-Agent", "q", "page", "X-Trace"])
def test_ordinary_names(name: str) -> None:
    """Ordinary headers and parameters stay readable."""
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://discord.com/api/webhooks/123/tok-EN?wait=true",
            "https://discord.com/api/webhooks/123/***?wait=true",
        ),
        (
            "https://discord.com/api/v10/webhooks/1/tok",
            "https://discord.com/api/v10/webhooks/1/***",
        ),
        (
            "https://hooks.slack.com/services/T01AB/B02CD/xyzXYZ",
            "https://hooks.slack.com/services/***",
        ),
        ("https://hooks.slack.com/triggers/T1/2/abc", "https://hooks.slack.com/triggers/***"),
        ("http://relay:8080/services/T01AB/B02CD/xyz", "http://relay:8080/services/***"),
        ("https://api.telegram.org/bot123:ABC-def/send", "https://api.telegram.org/bot***/send"),
        ("https://bob:pw@h/x?token=1&q=2", "https://bob:***@h/x?token=***&q=2"),
        ("https://TOKEN@github.com/x", "https://***@github.com/x"),
        ("http://h/services/status", "http://h/services/status"),
    ],
)
def test_redact_url_hides_passwords_token_params_and_webhook_tokens(url: str, shown: str) -> None:
    """Known webhook forms lose the token in their path; other paths are kept."""
    assert redact_url(url) == shown


def test_a_secret_as_a_whole_url_keeps_only_scheme_and_host() -> None:
    """path=False: an alert sink's URL shows where it goes, nothing more."""
    assert redact_url("https://u:p@hooks.example:8443/x?k=1", path=False) == (
        "https://hooks.example:8443/***"
    )
    assert redact_url("not a url", path=False) == "***"


def test_there_is_one_redaction_owner() -> None:
    """http, alerts and the alert channels use reliactl.redact, not copies with their own idea
    of a secret."""
    from reliactl.health import channels

    assert http.redact_url is redact_url and http.redact_headers is redact_headers
    assert http.is_secret_header is is_secret_name
    assert alerts.scrub is scrub
    assert channels.redact_url is redact_url and channels.scrub is scrub


def test_config_show_hides_what_redact_calls_a_secret() -> None:
    """`config show` asks reliactl.redact which keys are secret (plus webhook URLs): a Cookie
    header or a private_key of a check are hidden (config.py's own word list showed them)."""
    from reliactl import config, redact
    from reliactl.state import url as state_url

    plain = config.to_plain(
        {"Cookie": "sid=s3cr3t", "private_key": "k3y", "webhook_url": "https://x/y", "a": "b"}
    )
    assert plain == {"Cookie": "***", "private_key": "***", "webhook_url": "***", "a": "b"}
    assert config.REDACTED is state_url.REDACTED is redact.REDACTED


def test_redact_headers_keeps_the_auth_scheme() -> None:
    """'Bearer' is no secret and helps; the credential after it is."""
    assert redact_headers({"Authorization": "Bearer abc", "X-Goog-Api-Key": "k", "A": "b"}) == [
        ("Authorization", "Bearer ***"),
        ("X-Goog-Api-Key", "***"),
        ("A", "b"),
    ]


def test_urls_inside_a_message_lose_their_secrets() -> None:
    """A message that quotes URLs (a Redis connection error) shows each without its password
    or token-like query values, and the rest of the message unchanged."""
    from reliactl.redact import redact_urls_in

    text = "cannot reach redis://ops:hunter2@10.0.0.5:6379/0 (see https://x.example/?token=abc1)"
    out = redact_urls_in(text)
    assert "hunter2" not in out and "abc1" not in out
    assert out.startswith("cannot reach redis://ops:***@10.0.0.5:6379/0 (see https://x.example/")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278/start?rid=1",
            "https://hc-ping.com/***/start?rid=1",
        ),
        (
            "https://hc.example.org/ping/5BF66975-D4C7-4BF5-BCC8-B8D8A82EA278/3",
            "https://hc.example.org/ping/***/3",
        ),
        ("https://hc-ping.com/fqOOd6-F4MMNa0/db-backup/fail", "https://hc-ping.com/***/fail"),
        ("https://kuma:3001/api/push/Ab12Cd?status=up", "https://kuma:3001/api/push/***?status=up"),
        (
            "https://cronitor.link/p/KEY123/nightly?state=run",
            "https://cronitor.link/p/***/nightly?state=run",
        ),
        ("https://h/5bf66975", "https://h/5bf66975"),
    ],
)
def test_ping_urls_lose_their_credential_in_text(url: str, shown: str) -> None:
    """A heartbeat URL in any message (the UUID, push token or ping key is the credential)
    is shown without it, also when it is not known to be a ping URL."""
    assert redact_url(url) == shown
    assert redact_urls_in(f"ping to {url} failed") == f"ping to {shown} failed"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["notify", "--token", "t0k3n-x"], ["notify", "--token", "***"]),
        (["notify", "--token=t0k3n-x"], ["notify", "--token=***"]),
        (["db", "--password", "-starts-with-dash"], ["db", "--password", "***"]),
        (["c", "-H", "Authorization: Bearer abc.def"], ["c", "-H", "Authorization: Bearer ***"]),
        (["c", "-H", "X-Api-Key: k3y"], ["c", "-H", "X-Api-Key: ***"]),
        (["c", "https://u:pw@h/x?api_key=z"], ["c", "https://u:***@h/x?api_key=***"]),
        (["env", "API_TOKEN=z", "run"], ["env", "API_TOKEN=***", "run"]),
        # a place, not a secret; ordinary options and a boolean flag before an option
        (["s", "--token-file", "/etc/t"], ["s", "--token-file", "/etc/t"]),
        (["ls", "-l", "--color=auto", "/tmp"], ["ls", "-l", "--color=auto", "/tmp"]),
        (["c", "--auth", "--verbose", "x"], ["c", "--auth", "--verbose", "x"]),
    ],
)
def test_redact_argv_hides_secrets_in_a_command_line(argv: list[str], shown: list[str]) -> None:
    """A configured command's secrets (option values, NAME=VALUE, headers, URL passwords)
    are hidden for display; an option that names a file keeps its value."""
    assert redact_argv(argv) == shown


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        # well-known tools' secret options (reliactl.redact._TOOLS), separate and joined
        (["curl", "-u", "admin:hunter2", "u"], ["curl", "-u", "admin:***", "u"]),
        (["/usr/bin/curl", "--user=admin:hunter2"], ["/usr/bin/curl", "--user=admin:***"]),
        (["curl", "-uadmin:hunter2"], ["curl", "-uadmin:***"]),
        (["mysql", "-phunter2", "db"], ["mysql", "-p***", "db"]),
        (["mysql", "-p", "db"], ["mysql", "-p", "db"]),  # bare -p prompts: db is no secret
        (["mysqldump", "--password=hunter2"], ["mysqldump", "--password=***"]),
        (["redis-cli", "-a", "hunter2", "ping"], ["redis-cli", "-a", "***", "ping"]),
        (["sshpass", "-p", "hunter2", "ssh", "h"], ["sshpass", "-p", "***", "ssh", "h"]),
        (["openssl", "enc", "-pass", "pass:hunter2"], ["openssl", "enc", "-pass", "pass:***"]),
        (["openssl", "rsa", "-passin", "env:PW"], ["openssl", "rsa", "-passin", "env:PW"]),
        (["ssh-keygen", "-N", "hunter2", "-f", "k"], ["ssh-keygen", "-N", "***", "-f", "k"]),
        (
            ["kubectl", "create", "secret", "generic", "s", "--from-literal=password=hunter2"],
            ["kubectl", "create", "secret", "generic", "s", "--from-literal=password=***"],
        ),
        (["kubectl", "--from-literal=user=bob"], ["kubectl", "--from-literal=user=bob"]),
        # joined header forms
        (["curl", "-HAuthorization: Bearer abc1"], ["curl", "-HAuthorization: Bearer ***"]),
        (
            ["wget", "--header=Authorization: Bearer X9"],
            ["wget", "--header=Authorization: Bearer ***"],
        ),
        (
            ["git", "-c", "http.extraHeader=Authorization: Bearer X9", "fetch"],
            ["git", "-c", "http.extraHeader=Authorization: Bearer ***", "fetch"],
        ),
        # options whose value is no secret: a flag, a count, an id, a scheme, a key file
        (["docker", "--password-stdin", "-u", "bob"], ["docker", "--password-stdin", "-u", "bob"]),
        (["t", "--auth", "basic", "h"], ["t", "--auth", "basic", "h"]),
        (["t", "--tokens", "5"], ["t", "--tokens", "5"]),
        (["aws", "--secret-id", "prod/db"], ["aws", "--secret-id", "prod/db"]),
        (["t", "--key", "/etc/ssl/k.pem"], ["t", "--key", "/etc/ssl/k.pem"]),
        (["t", "--key", "s3cr3t"], ["t", "--key", "***"]),
        (["t", "--basic-auth", "u:p"], ["t", "--basic-auth", "***"]),
        (["aws", "--sse-c-key", "k"], ["aws", "--sse-c-key", "***"]),
    ],
)  # fmt: skip
def test_well_known_tools_and_joined_forms(argv: list[str], shown: list[str]) -> None:
    """The review's misses (curl -u, mysql -pX, redis-cli -a, sshpass -p, openssl pass:,
    ssh-keygen -N, kubectl --from-literal, -HAuthorization:, --header=, http.extraHeader=) are
    hidden, and its over-redactions (--password-stdin hid -u's value; --auth basic, --tokens
    5, --secret-id, --key PATH) are not."""
    assert redact_argv(argv) == shown


def test_a_joined_header_in_a_shell_string_hides_the_token_not_the_url() -> None:
    """`curl '-HAuthorization: Bearer abc123' URL` (before: `-HAuthorization: *** abc123`
    and the URL hidden)."""
    assert redact_command("curl '-HAuthorization: Bearer abc123' https://h/x") == (
        "curl '-HAuthorization: Bearer ***' https://h/x"
    )
    assert redact_command("mysql -phunter2 db && redis-cli -a x2 ping") == (
        "mysql -p*** db && redis-cli -a *** ping"
    )


def test_redact_command_hides_secrets_in_a_shell_string_and_an_sh_c_script() -> None:
    """A shell string (remediate with shell: true) and the script of `sh -c` lose the same
    secrets, keeping their quoting readable; the argv run is not changed (a copy is shown)."""
    text = "curl -H 'X-Api-Key: k-1' --token t-2 --password=\"p 3\" 'https://a:b-4@h/'"
    assert redact_command(text) == (
        "curl -H 'X-Api-Key: ***' --token *** --password=*** https://a:***@h/"
    )
    argv = ["/bin/sh", "-c", 'curl -H "Authorization: Basic abc" --secret=q x']
    assert redact_command(argv) == [
        "/bin/sh", "-c", 'curl -H "Authorization: Basic ***" --secret=*** x'
    ]  # fmt: skip
    assert argv[2].endswith("--secret=q x")


def test_a_run_shows_its_token_in_no_event_and_no_lock_file(tmp_path: Path) -> None:
    """A real run with a lock: the job gets the real token, but the "starting" event and the
    lock file (read by `cleanup --stale-locks` and by whoever waits on the lock) show "***"."""
    from reliactl.runner import LockOptions, RunOptions, run_command

    lock, copy, got = tmp_path / "job.lock", tmp_path / "copy", tmp_path / "got"
    script = f'cp "$0" {copy}; printf %s "$2" > {got}'
    events: list[Any] = []
    result = run_command(
        RunOptions(
            command=("/bin/sh", "-c", script, str(lock), "--token", "tok-4c1d9e"),
            lock=LockOptions(str(lock)),
        ),
        on_event=events.append,
    )
    assert result.exit_code == 0 and got.read_text() == "tok-4c1d9e"
    shown = copy.read_text() + " ".join(str(e.message) for e in events)
    assert "tok-4c1d9e" not in shown and "--token ***" in copy.read_text()
