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
  an option whose name's last part is a secret's (``--token X``, ``--token=X``,
  ``--api-key X``; not ``--token-file PATH``, ``--secret-id ID``, ``--password-stdin``,
  ``--tokens 5``, ``--auth basic``, ``--key /path``), well-known tools' secret options
  (``_TOOLS``: ``curl -u``, ``mysql -pX``, ``redis-cli -a``, ``sshpass -p``, ``openssl
  -pass pass:X``, ``ssh-keygen -N``, ``kubectl --from-literal=password=X``), a ``NAME=VALUE``
  word with a secret name, a secret header (``Authorization: Bearer X``, ``X-Api-Key: X``,
  also joined: ``-HAuthorization: ...``, ``--header=...``, ``http.extraHeader=...``) and
  every URL in it as above.

Stdlib only, no I/O; imported by ``http``, ``health.alerts``, ``health.checks`` and the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

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

# An option whose name's last part is one of these takes a secret as its value (``--token``,
# ``--api-key``, ``--client-secret``, ``--db-password``), and not when the last part says what
# the value is instead (``--token-file PATH``, ``--secret-id NAME``, ``--password-stdin``,
# ``--tokens 5``): the name's last part decides. NAME=VALUE words without dashes (an
# environment variable: ``PGPASSWORD=x``) use ``is_secret_name``.
_SECRET_LAST = frozenset(
    {
        "token", "secret", "password", "passwd", "passphrase", "pass", "pw", "pwd", "key",
        "apikey", "auth", "bearer", "cookie", "credential", "signature",
    }
)  # fmt: skip
_SECRET_ENDINGS = ("token", "secret", "password", "passwd", "apikey")  # --authtoken
# A secret option whose value may be a place (a key file) or a scheme, not a secret.
_KEY_FILE_LAST = frozenset({"key"})
_AUTH_SCHEMES = frozenset(
    {"basic", "digest", "bearer", "ntlm", "negotiate", "any", "anyauth", "none", "kerberos"}
)
_OPTION = r"^--?[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_WORD_RE = r"""(?:[^\s'"]+|'[^']*'|"(?:\\.|[^"\\])*")+"""
_NAME_VALUE = r"^(?P<name>-{0,2}[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>.*)$"
_HEADER = r"^\s*(?P<name>[A-Za-z][A-Za-z0-9\-]*)\s*:\s*(?P<value>.*)$"
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "|&"})


def _hide(value: str) -> str:
    return REDACTED


def _hide_password_of_user(value: str) -> str:  # curl -u user:password
    user, sep, _ = value.partition(":")
    return f"{user}:{REDACTED}" if sep else value


def _hide_openssl_pass(value: str) -> str:  # openssl -pass pass:X (env:, file:, fd: are places)
    return f"pass:{REDACTED}" if value.startswith("pass:") else value


def _hide_secret_literal(value: str) -> str:  # kubectl --from-literal=password=X
    name, sep, _ = value.partition("=")
    return f"{name}={REDACTED}" if sep and is_secret_name(name) else value


# Well-known tools' secret options: option -> (how its value is hidden, whether a bare option
# takes the next word as its value). A short option's value may also be joined (``-pX``),
# a long one's given with ``=``. The tool is the last word whose base name is in the table.
_MYSQL: dict[str, tuple[Callable[[str], str], bool]] = {
    "-p": (_hide, False)
}  # bare -p prompts; --password=X is the generic rule's
_TOOLS: dict[str, dict[str, tuple[Callable[[str], str], bool]]] = {
    "curl": {
        "-u": (_hide_password_of_user, True),
        "--user": (_hide_password_of_user, True),
        "-U": (_hide_password_of_user, True),
        "--proxy-user": (_hide_password_of_user, True),
    },
    "mysql": _MYSQL,
    "mysqldump": _MYSQL,
    "mysqladmin": _MYSQL,
    "mariadb": _MYSQL,
    "mariadb-dump": _MYSQL,
    "redis-cli": {"-a": (_hide, True), "--pass": (_hide, True)},
    "sshpass": {"-p": (_hide, True)},
    "openssl": {
        "-pass": (_hide_openssl_pass, True),
        "-passin": (_hide_openssl_pass, True),
        "-passout": (_hide_openssl_pass, True),
        "-k": (_hide, True),
    },
    "ssh-keygen": {"-N": (_hide, True), "-P": (_hide, True)},
    "kubectl": {"--from-literal": (_hide_secret_literal, True)},
}


def _option_secret(name: str) -> bool:
    """Is ``name`` (an option's, without its dashes) one whose value is a secret?"""
    parts = name.lower().replace("_", "-").split("-")
    last = parts[-1]
    return parts[0] != "no" and (last in _SECRET_LAST or last.endswith(_SECRET_ENDINGS))


def _generic_hider(word: str) -> Callable[[str], str] | None:
    """How the next word is hidden when ``word`` is an option whose value is a secret."""
    import re

    if not re.match(_OPTION, word):
        return None
    name = word.lstrip("-")
    if not _option_secret(name):
        return None
    last = name.lower().replace("_", "-").rsplit("-", 1)[-1]

    def hide(value: str) -> str:
        if last == "auth" and value.lower() in _AUTH_SCHEMES:
            return value  # --auth basic: a scheme
        if last in _KEY_FILE_LAST and value.startswith(("/", "./", "../", "~/")):
            return value  # --key /etc/ssl/k.pem: a place
        return REDACTED

    return hide


def _redact_header(word: str) -> str | None:
    import re

    header = re.match(_HEADER, word, re.DOTALL)
    if header is None or not is_secret_name(header.group("name")):
        return None
    return f"{header.group('name')}: {_redact_value(header.group('name'), header.group('value'))}"


def _redact_word(word: str) -> str:
    import re

    if word.startswith("-H") and len(word) > 2 and not word.startswith("-H-"):
        header = _redact_header(word[2:])  # curl -HAuthorization: Bearer X
        if header is not None:
            return "-H" + header
    pair = re.match(_NAME_VALUE, word, re.DOTALL)
    if pair is not None:
        name, value = pair.group("name"), pair.group("value")
        plain = name.lstrip("-")
        if name.startswith("-"):
            hider = _generic_hider(name)
            if hider is not None:
                return f"{name}={hider(value)}"
        elif is_secret_name(plain) and not plain.lower().replace("_", "-").endswith(
            ("-file", "-path", "-dir", "-env", "-var", "-cmd", "-command")
        ):
            return f"{name}={REDACTED}"
        header = _redact_header(value)  # --header=Authorization: X, http.extraHeader=...
        if header is not None:
            return f"{name}={header}"
    header = _redact_header(word)
    if header is not None:
        return header
    if any(c.isspace() for c in word):  # a script (sh -c '...'): its words, as a shell's
        return _redact_shell(word)
    return redact_urls_in(word) if "://" in word else word


class _Words:
    """Redacts a command line's words in order: remembers the tool being run (``_TOOLS``) and
    whether this word is the secret value of the option before it."""

    def __init__(self) -> None:
        self.tool: dict[str, tuple[Callable[[str], str], bool]] | None = None
        self.pending: Callable[[str], str] | None = None

    def shown(self, word: str) -> str:
        pending, self.pending = self.pending, None
        if pending is not None and word and not word.startswith("--"):
            return pending(word)
        if word in _SEPARATORS or word.endswith(";"):
            self.tool = None
            return word
        base = word.rsplit("/", 1)[-1]
        if base in _TOOLS:
            self.tool = _TOOLS[base]
            return word
        if self.tool is not None and word.startswith("-"):
            shown = self._tool_option(word)
            if shown is not None:
                return shown
        self.pending = _generic_hider(word)
        return _redact_word(word)

    def _tool_option(self, word: str) -> str | None:
        assert self.tool is not None
        entry = self.tool.get(word)
        if entry is not None:
            self.pending = entry[0] if entry[1] else None
            return word
        for option, (hide, _) in self.tool.items():
            if option.startswith("--") and word.startswith(option + "="):
                return f"{option}={hide(word[len(option) + 1 :])}"
            if len(option) == 2 and word.startswith(option) and len(word) > 2:
                return option + hide(word[2:])
        return None


def redact_argv(argv: Iterable[str]) -> list[str]:
    """An argv list with its secrets hidden (see the module's rules), for display only."""
    words = _Words()
    return [words.shown(str(word)) for word in argv]


def _redact_shell(text: str) -> str:
    """A shell command line with its secrets hidden; its words keep their quoting unless one
    had to change (then it is re-quoted)."""
    import re
    import shlex

    words = _Words()

    def one(match: re.Match[str]) -> str:
        raw = match.group(0)
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw]
        word = parts[0] if len(parts) == 1 else raw
        shown = words.shown(word)
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
