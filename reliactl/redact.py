"""Keeping secrets out of every message, log line and ``config show``: the one owner.

What counts as a secret is decided here and nowhere else:

- a header or query parameter whose name :func:`is_secret_name` calls secret: Authorization,
  Cookie, X-Api-Key, Api-Key, X-Goog-Api-Key, X-Access-Key, anything ending in ``-key`` /
  ``_key`` or containing token, secret, password, auth, session, signature, credential...;
- the password of a URL (and a user name given without a password, as a token often is);
- the token in the path of a known webhook form (Discord, Slack, Telegram bots), on any host,
  and of a heartbeat ping URL (a healthchecks.io UUID, an Uptime Kuma push token, ...);
- a URL that is a secret as a whole (an alert sink's webhook): ``path=False`` keeps only
  its scheme, host and port;
- in a command line (:func:`redact_command`: an argv list or a shell string): the value of
  an option with a secret name (``--token X``, ``--token=X``, ``--password X``), a
  ``NAME=VALUE`` word with a secret name, a secret header (``Authorization: Bearer X``,
  ``X-Api-Key: X``) and every URL in it as above; an option naming a place
  (``--token-file PATH``) keeps its value.

Stdlib only, no I/O; imported by ``http``, ``health.alerts``, ``health.checks`` and the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import re
    from typing import Any

# ``re`` (~2-3 ms with enum) is imported by the functions that use it: every start that loads
# the configuration imports this module, and most never redact a URL.

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_argv",
    "redact_command",
    "redact_headers",
    "redact_text",
    "redact_url",
    "redact_urls_in",
    "scrub",
]

REDACTED = "***"

# Names compared lower-cased, with "_" read as "-".
_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "key",
        "sig",
        "code",
        "pwd",
    }
)
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "access-key",
    "accesskey",
    "auth",
    "session",
    "signature",
    "credential",
    "private",
    "cookie",
)
_AUTH_HEADERS = ("authorization", "proxy-authorization")

_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"


# Paths of webhook URLs whose last segments are the credential, recognised by their shape on
# any host (a relay or proxy in front of the service keeps the same path), and Slack's newer
# forms on its own host.
@functools.cache
def _webhook_paths() -> tuple[tuple[re.Pattern[str] | None, re.Pattern[str]], ...]:
    """Compiled at the first URL redacted, not at import (every `run` imports this module
    through the config; ~1 ms of regex compilation it rarely needs)."""
    import re

    return (
        # Discord: /api[/v10]/webhooks/<id>/<token>
        (None, re.compile(r"^(?P<keep>/api(?:/v\d+)?/webhooks/[^/]+/)[^/]+(?P<rest>.*)$")),
        # Slack: /services/T…/B…/<token>
        (None, re.compile(r"^(?P<keep>/services/)T[A-Z0-9]+/B[A-Z0-9]+/[^/]+(?P<rest>.*)$")),
        (re.compile(r"^hooks\.slack\.com$"), re.compile(r"^(?P<keep>/\w+/)[^?#]+(?P<rest>)$")),
        # Telegram bots: /bot<id>:<token>/sendMessage
        (None, re.compile(r"^(?P<keep>/(?:file/)?bot)\d+:[^/]+(?P<rest>.*)$")),
        # Heartbeat pings (reliactl.ping): healthchecks.io's /<uuid> or /ping/<uuid>[/start...] on
        # any host (self-hosted too), its /<ping-key>/<slug> on hc-ping.com; Uptime Kuma's
        # /api/push/<token>; Cronitor's /p/<api-key>/<monitor> on cronitor.link.
        (None, re.compile(rf"^(?P<keep>/(?:ping/)?){_UUID}(?P<rest>.*)$")),
        (
            re.compile(r"(^|\.)hc-ping\.com$"),
            re.compile(r"^(?P<keep>/)[^/?#]+/[^/?#]+(?P<rest>.*)$"),
        ),
        (None, re.compile(r"^(?P<keep>/api/push/)[^/?#]+(?P<rest>.*)$")),
        (re.compile(r"(^|\.)cronitor\.link$"), re.compile(r"^(?P<keep>/p/)[^/?#]+(?P<rest>.*)$")),
    )


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter called ``name`` carries a secret."""
    lowered = name.strip().lower().replace("_", "-")
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith("-key")
        or any(word in lowered for word in _SECRET_WORDS)
    )


def _redact_value(name: str, value: str) -> str:
    if not is_secret_name(name):
        return value
    scheme, sep, rest = value.strip().partition(" ")
    if sep and rest and name.strip().lower() in _AUTH_HEADERS:
        return f"{scheme} {REDACTED}"  # keep "Bearer"/"Basic": it helps, and is no secret
    return REDACTED


def redact_headers(headers: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(name, value) pairs with secret values replaced by "***" (the auth scheme is kept)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), _redact_value(str(name), str(value))) for name, value in pairs]


def _redact_path(host: str, path: str) -> str:
    for host_pattern, path_pattern in _webhook_paths():
        if host_pattern is None or host_pattern.search(host):
            match = path_pattern.match(path)
            if match:
                return f"{match.group('keep')}{REDACTED}{match.group('rest')}"
    return path


def redact_url(url: object, *, path: bool = True) -> str:
    """``url`` without its password, secret query values, or a known webhook's token.

    With ``path=False`` (a URL that is a secret as a whole) only ``scheme://host[:port]`` is
    kept, followed by "/***" when anything else was there. Text that is not a URL with a
    scheme and a host comes back as "***" in that mode, unchanged otherwise.
    """
    # imported at first use: urllib.parse (with ipaddress) is ~2-3 ms of every start
    from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a malformed URL (a bad port): still never show its password
        import re

        return REDACTED if not path else re.sub(_USERINFO, rf"\g<scheme>\g<user>:{REDACTED}@", text)
    if not path:
        if not parts.scheme or not host:
            return REDACTED
        hidden = parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc
        shown_host = f"[{host}]" if ":" in host else host
        return (
            f"{parts.scheme}://{shown_host}{f':{port}' if port else ''}{'/***' if hidden else ''}"
        )
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostpart = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostpart}" if ":" in userinfo else f"{REDACTED}@{hostpart}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = "&".join(
                f"{quote(k, safe='')}={REDACTED if is_secret_name(k) else quote(v, safe='')}"
                for k, v in pairs
            )
    return urlunsplit(
        (parts.scheme, netloc, _redact_path(host.lower(), parts.path), query, parts.fragment)
    )


# Compiled at first use by re's own cache (re.sub with the pattern text), not at import.
_USERINFO = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@"
_URL_IN_TEXT = r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+"


def redact_urls_in(text: str) -> str:
    """``text`` (a message, a log line) with every URL in it passed through :func:`redact_url`."""
    import re

    return re.sub(_URL_IN_TEXT, lambda m: redact_url(m.group(0)), text)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (of 4+ characters) replaced by "***"."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with a secret-as-a-whole URL and its parts hidden."""
    from urllib.parse import urlsplit  # at first use, as redact_url

    if not url:
        return text
    out = text.replace(url, redact_url(url, path=False))
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    for secret in (parts.path, parts.query, parts.password or "", parts.username or ""):
        if secret and len(secret) > 1:
            out = out.replace(secret, "/***" if secret.startswith("/") else REDACTED)
    return out


# --------------------------------------------------------------------------- command lines

# An option with a secret name whose value names a place (a file, a variable), not a secret.
_PLACE_SUFFIXES = ("-file", "-path", "-dir", "-env", "-var", "-cmd", "-command")
_WORD_RE = r"""(?:[^\s'"]+|'[^']*'|"(?:\\.|[^"\\])*")+"""
_NAME_VALUE = r"^(?P<name>-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>.*)$"
_HEADER = r"^\s*(?P<name>[A-Za-z][A-Za-z0-9\-]*)\s*:\s*(?P<value>.*)$"


def _secret_option(word: str) -> bool:
    """Is ``word`` an option (``-x``, ``--name``) whose value, the next word, is a secret?"""
    if not word.startswith("-") or "=" in word:
        return False
    name = word.lstrip("-").lower().replace("_", "-")
    return (
        bool(name)
        and not name.startswith("no-")
        and not name.endswith(_PLACE_SUFFIXES)
        and is_secret_name(name)
    )


def _redact_word(word: str) -> str:
    import re

    pair = re.match(_NAME_VALUE, word, re.DOTALL)
    if pair is not None:
        name = pair.group("name").lstrip("-")
        if is_secret_name(name) and not name.lower().replace("_", "-").endswith(_PLACE_SUFFIXES):
            return f"{pair.group('name')}={REDACTED}"
    header = re.match(_HEADER, word, re.DOTALL)
    if header is not None and is_secret_name(header.group("name")):
        value = header.group("value")
        return f"{header.group('name')}: {_redact_value(header.group('name'), value)}"
    if any(c.isspace() for c in word):  # a script (sh -c '...'): its words, as a shell's
        return _redact_shell(word)
    return redact_urls_in(word) if "://" in word else word


def redact_argv(argv: Iterable[str]) -> list[str]:
    """An argv list with its secrets hidden (see the module's rules), for display only."""
    out: list[str] = []
    hide_next = False
    for word in argv:
        text = str(word)
        if hide_next and text and not text.startswith("--"):
            out.append(REDACTED)
            hide_next = False
            continue
        out.append(_redact_word(text))
        hide_next = _secret_option(text)
    return out


def _redact_shell(text: str) -> str:
    """A shell command line with its secrets hidden; its words keep their quoting unless one
    had to change (then it is re-quoted)."""
    import re
    import shlex

    hide_next = False

    def one(match: re.Match[str]) -> str:
        nonlocal hide_next
        raw = match.group(0)
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw]
        word = parts[0] if len(parts) == 1 else raw
        if hide_next and word and not word.startswith("--"):
            hide_next = False
            return REDACTED
        hide_next = _secret_option(word)
        shown = _redact_word(word)
        if shown == word:
            return raw
        if re.fullmatch(r"[\w@%+=:,./*-]+", shown):
            return shown  # "***" is shown, never expanded: no quotes for it
        if raw[:1] == '"' and not any(c in shown for c in '"\\$`'):
            return f'"{shown}"'  # the word's own quoting, when it still fits
        return f"'{shown}'" if "'" not in shown else shlex.quote(shown)

    return redact_urls_in(re.sub(_WORD_RE, one, text))


def redact_command(command: str | Iterable[str]) -> str | list[str]:
    """A configured or given command, an argv list or a shell string, with its secrets
    hidden: what ``config show``, health reports, alerts and run history display."""
    if isinstance(command, str):
        return _redact_shell(command)
    return redact_argv(command)
