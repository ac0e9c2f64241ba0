"""Whether a URL can be requested: the one rule for every URL reliactl is given (http checks,
alert sinks, job pings, ``reliactl http``), so that ``config validate`` refuses what a request
would later fail on with a lower layer's error.

A host name is refused when the resolver's or the HTTP clients' own encoding of it would fail:
an empty label (``a..b``), a label over 63 octets or a name over 253 (the stdlib ``idna``
codec ``socket.getaddrinfo`` applies to every ``str`` host: "label empty or too long"), a
non-ASCII name the IDNA 2008 rules refuse (httpx and aiohttp encode with the ``idna``
package), and an ``xn--`` label that is not valid punycode (httpx's ``URL.host`` decodes it).
Underscores and other letters DNS itself does not forbid stay allowed (Docker and Compose
service names use them). The ``idna`` package is imported only for a name that needs it.
"""

from __future__ import annotations

__all__ = ["host_problem", "url_problem"]

_MAX_NAME = 253  # octets, without a final dot (RFC 1035 2.3.4's 255 on the wire)
_MAX_LABEL = 63


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an http:// or https:// URL with a usable host (and port), or None."""
    from urllib.parse import urlsplit

    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in ("http", "https") or not rest.startswith("//"):
        shown = f"{scheme[:20]}:" if colon else repr(url[:20])
        return f"expected an http:// or https:// URL, got {shown}"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if not host:
        return "expected an http:// or https:// URL with a host"
    if "[" in parts.netloc:
        return None  # an IPv6 literal: urlsplit checked it
    return host_problem(host)


def host_problem(host: str) -> str | None:
    """Why the host name ``host`` (no brackets, no port) cannot be requested, or None."""
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():
        try:
            import idna

            name = idna.encode(name.lower()).decode("ascii")
        except (UnicodeError, ValueError) as exc:  # idna.IDNAError is a UnicodeError
            return f"host name {host!r} is not a valid international name ({exc})"
    labels = name.split(".")
    if len(name) > _MAX_NAME or not all(0 < len(label) <= _MAX_LABEL for label in labels):
        return (
            f"host name {host!r} is not valid: every dot-separated part needs 1 to"
            f" {_MAX_LABEL} characters, {_MAX_NAME} in all"
        )
    if any(label[:4].lower() == "xn--" for label in labels):
        try:
            import idna

            idna.decode(name)
        except (UnicodeError, ValueError) as exc:
            return f"host name {host!r} is not valid punycode ({exc})"
    return None
