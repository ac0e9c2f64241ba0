"""serve's access log: what a request path carries never reaches the terminal raw."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from servehelpers import Served, free_port, read_for, start_serve

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


def test_a_stderr_nobody_reads_never_stops_the_probes(tmp_path: Path) -> None:
    """serve's stderr is a pipe the test does not read: requests whose access-log lines
    (4 KiB each: a long query) fill it many times over (the 64 KiB pipe and serve's 1 MiB
    queue) are answered, and then /healthz and /metrics still answer within the deadline.
    The old serve wrote each line to stderr from its event loop: once the pipe was full the
    loop blocked in that write and no request was answered again until someone read. Once
    the pipe is read, the lines kept come out, then one line saying how many were dropped
    because stderr was not read, which /metrics counts too."""
    served = start_serve(tmp_path)
    assert served.proc.stderr is not None
    fd = served.proc.stderr.fileno()
    query = "x=" + "a" * 4096
    try:
        answered = 0
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        for _ in range(600):  # ~2.4 MB of log lines
            try:
                conn.request("GET", f"/livez?{query}")
                response = conn.getresponse()
                response.read()
            except OSError:  # the old serve: stuck in a write to the full pipe
                break
            assert response.status == 200
            answered += 1
        conn.close()
        probe = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            probe.request("GET", "/healthz")
            healthz = probe.getresponse()
            healthz.read()
            probe.request("GET", "/metrics")
            metrics = probe.getresponse().read().decode()
        except OSError as exc:
            pytest.fail(f"no answer within 10 s with stderr unread ({answered} answered): {exc}")
        probe.close()
        assert answered == 600
        assert healthz.status in (200, 503)  # answered: what it says is not the point
        dropped = [
            line
            for line in metrics.splitlines()
            if line.startswith("reliactl_serve_log_lines_dropped_total ")
        ]
        assert len(dropped) == 1 and float(dropped[0].split()[1]) > 0, dropped
        err = read_for(fd, lambda data: b"log lines dropped: stderr not read" in data)
        notes = re.findall(rb"reliactl serve: (\d+) log lines dropped: stderr not read\n", err)
        assert notes, err[-2000:]
        kept = err.count(b" GET /livez?x=aaaa")
        # Every request was either written or counted as dropped (the last few may still
        # be on their way: the note comes as soon as the queue has drained).
        assert kept + sum(int(n) for n in notes) >= answered, (kept, notes)
        assert kept >= 16, kept  # the lines queued before the drop came out
    finally:
        served.stop()


def test_the_error_that_ends_serve_reaches_stderr(tmp_path: Path) -> None:
    """The uvicorn server under serve fails inside (a sitecustomize on PYTHONPATH makes
    ``uvicorn.Server.run`` raise, as a lower layer failing would): serve exits 125 with
    "reliactl: error: internal error: RuntimeError: ..." on its stderr. That line is written
    after serve's own drain of its stderr queue (the exception passes serve's ``finally``
    first), so it reaches the descriptor only through the drain at exit; before, it stayed
    in the queue of a daemon thread the exit froze, and serve died without saying why."""
    (tmp_path / "sitecustomize.py").write_text(
        "import uvicorn\n"
        "def run(self, *args, **kwargs):\n"
        "    raise RuntimeError('the server below serve broke')\n"
        "uvicorn.Server.run = run\n",
        encoding="utf-8",
    )
    config = tmp_path / "c.yaml"
    config.write_text("health_monitor:\n  system_checks: [memory]\n", encoding="utf-8")
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__PATH": str(tmp_path / "state" / "state.db"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    env.pop("RELIACTL_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "reliactl", "serve", "--port", str(free_port()), "-i", "1h"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 125, (proc.returncode, proc.stderr)
    assert "serving on http://127.0.0.1:" in proc.stderr, proc.stderr  # the queue was in use
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(
        "reliactl: error: internal error: RuntimeError: the server below serve broke"
    ), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
