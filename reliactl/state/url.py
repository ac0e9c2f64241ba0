"""``state.url``: which backend holds the state, parsed without importing any backend.

Accepted forms::

    /path/state.db  or  sqlite:///path/state.db      the embedded SQLite store (the default)
    redis://[user:password@]host[:port][/db]         Redis (or Valkey) over TCP
    rediss://[user:password@]host[:port][/db]        the same over TLS (state.tls_ca_file)
    unix:///path/redis.sock[?db=N]                   Redis over a Unix socket

Parsing is pure (no I/O, no client import) so ``config validate`` checks a URL without
connecting, and ``run``/``health`` on SQLite never load the Redis store.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from reliactl.redact import REDACTED

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # without the dataclasses module (~10 ms of every Redis start, issue 21; see _records)
    from reliactl._records import dataclass

REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class StateURL:
    """A parsed ``state.url``; ``backend`` is "sqlite" or "redis"."""

    backend: str
    scheme: str = "sqlite"
    path: str = ""  # sqlite: the database file; unix: the socket
    host: str = ""
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def shown(self) -> str:
        """The URL as it may be shown anywhere (config show, errors, logs): no password."""
        if self.backend == "sqlite":
            return self.path
        if self.scheme == "unix":
            return f"unix://{self.path}" + (f"?db={self.db}" if self.db else "")
        user = self.username or ""
        auth = f"{user}:{REDACTED}@" if self.password else (f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"


class StateURLError(ValueError):
    """``state.url`` cannot be understood; the message never contains a password."""


def parse_state_url(text: str, default_path: str = "") -> StateURL:
    """Parse ``state.url``; empty means SQLite at ``default_path`` (``state.path``)."""
    text = text.strip()
    if not text:
        return StateURL("sqlite", path=default_path)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        return StateURL("sqlite", path=text)
    if scheme == "sqlite":
        path = text.split("://", 1)[1]
        if not path.startswith("/"):
            raise StateURLError(
                f"expected sqlite:///absolute/path (three slashes), got {redact_url(text)!r}"
            )
        return StateURL("sqlite", path=unquote(path))
    if scheme not in REDIS_SCHEMES:
        raise StateURLError(
            "expected a path, sqlite:///path, redis://host:port/db, rediss://... or"
            f" unix:///path/redis.sock, got {redact_url(text)!r}"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise StateURLError(f"{exc}: {redact_url(text)!r}") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    query = parse_qs(parts.query)
    db_text = (query.get("db") or [""])[0]
    if scheme == "unix":
        if not parts.path.startswith("/"):
            raise StateURLError(f"expected unix:///path/redis.sock, got {redact_url(text)!r}")
        return StateURL(
            "redis",
            scheme,
            path=unquote(parts.path),
            db=_db(db_text or "0", text),
            username=username,
            password=password,
        )
    if not parts.hostname:
        raise StateURLError(f"no host in {redact_url(text)!r}")
    if ":" not in parts.hostname and any(
        not 0 < len(label) <= 63 for label in parts.hostname.removesuffix(".").split(".")
    ):  # DNS's limit (RFC 1035); the resolver's IDNA encoding fails on it with a UnicodeError
        raise StateURLError(
            f"a host name label must be 1 to 63 characters, got {redact_url(text)!r}"
        )
    path_db = parts.path.lstrip("/")
    return StateURL(
        "redis",
        scheme,
        host=parts.hostname,
        port=port or 6379,
        db=_db(path_db or db_text or "0", text),
        username=username,
        password=password,
    )


def _db(value: str, text: str) -> int:
    if not value.isdigit() or int(value) > 10_000:
        raise StateURLError(f"the database must be a number such as /0, got {redact_url(text)!r}")
    return int(value)


def redact_url(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every URL's password (and other secrets, see ``reliactl.redact``) and
    ``secrets`` hidden: the one call site through which the state backend shows URLs and
    error messages."""
    from reliactl.redact import redact_urls_in

    out = redact_urls_in(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, REDACTED)
    return out
