"""serve's access log: what a request path carries never reaches the terminal raw."""

from __future__ import annotations

import socket

from servehelpers import Served

# Percent-encoded: an OSC title change ending in BEL, clear-screen, red text, a CR that
# would let "FAKE LINE" overwrite the start of the line; an RTL override; a byte not UTF-8.
PATHS = {
    "/%1b]0;owned%07%1b[2J%1b[1;31mFAKE%20LINE%0d": r"/\x1b]0;owned\a\x1b[2J\x1b[1;31mFAKE LINE\r",
    "/%e2%80%ae%1b[8m": r"/\xe2\x80\xae\x1b[8m",
    "/caf%c3%a9%ff%5c": "/café\\xff\\",  # a backslash stays one (the display rule)
}


def test_access_log_escapes_controls_and_bidi_in_the_path(served: Served) -> None:
    """Requests whose path decodes to ESC, BEL, CR, an OSC/CSI sequence, U+202E and a byte
    that is not UTF-8: serve's stderr holds none of them raw (the old log printed them, so
    the request could retitle or clear the operator's terminal); each line shows the path
    escaped by the display rule (`units.printable`), printable non-ASCII text and backslashes
    kept as they are."""
    for path in PATHS:
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 404")
    _code, err = served.stop()
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\udcff"):
        assert raw not in err, repr(raw)
    for escaped in PATHS.values():
        lines = [line for line in err.splitlines() if f" GET {escaped} 404 " in line]
        assert len(lines) == 1, (escaped, [x for x in err.splitlines() if " GET /" in x])
