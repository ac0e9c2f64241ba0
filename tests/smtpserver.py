"""A real SMTP server on 127.0.0.1 (aiosmtpd) for the e-mail alert channel's tests:
plain, STARTTLS or implicit TLS under a throwaway CA (trustme), optionally requiring AUTH.

``smtp_server(ca)`` yields ``(inbox, port)``; ``inbox.messages`` keeps (from, to, raw bytes)
of every message accepted; set ``inbox.reply`` ("451 ...") to make DATA answer that instead.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PASSWORD = "smtp-pa55word-s3cr3t"  # the only password the AUTH-requiring server accepts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """aiosmtpd handler keeping every message; ``reply`` makes DATA answer that instead."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.reply: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply:
            return self.reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def make_ca(directory: Path) -> tuple[trustme.CA, Path]:
    """A throwaway CA and the path of its certificate (PEM) for a client's tls_ca_file."""
    authority = trustme.CA()
    path = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@contextlib.contextmanager
def smtp_server(
    ca: tuple[trustme.CA, Path] | None = None, *, implicit: bool = False, auth: bool = False
) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    kw: dict[str, Any] = {}
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca[0].issue_cert("127.0.0.1").configure_cert(context)
        if implicit:
            kw["ssl_context"] = context
        else:
            kw.update(tls_context=context, require_starttls=True)
    if auth:
        kw.update(authenticator=_authenticator, auth_required=True, auth_require_tls=ca is not None)
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
