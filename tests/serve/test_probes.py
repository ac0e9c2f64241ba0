"""/healthz and /livez of a real `reliactl serve` never wait on the state store, and /healthz
stops vouching for results no round has refreshed for --stale-after."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from servehelpers import TOKEN, Served, free_port, start_serve
from storelock import write_lock_held

from reliactl.cli.web.core import JOBS_MAX_AGE

PROBE_BOUND = 10.0  # generous: detects a probe waiting on the store (30 s a write before)


def _start(tmp: Path, checks: str, *extra: str) -> Served:
    config = tmp / "serve.yaml"
    config.write_text(
        f"health_monitor:\n  system_checks: []\n  jobs_checks: false\n  checks:\n{checks}",
        encoding="utf-8",
    )
    port = free_port()
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__PATH": str(tmp / "state" / "state.db"),
    }
    args = ["serve", "--port", str(port), "--interval", "1s", *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reliactl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = Served(proc, port, env, tmp / "flag", tmp)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.communicate()[1]}")
        try:
            return probe(served, "/livez")[1]["rounds"] >= 1
        except OSError:
            return False

    served.wait_for(ready, "serve's first round")
    return served


def probe(served: Served, path: str) -> tuple[int, Any]:
    """One probe that must be answered within PROBE_BOUND (a timeout fails the test)."""
    try:
        with urllib.request.urlopen(served.base + path, timeout=PROBE_BOUND) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_probes_answer_and_follow_the_checks_while_another_process_locks_the_store(
    tmp_path: Path,
) -> None:
    """While another process holds the store's write lock, /livez and /healthz (and
    ?check=) answer from memory within the bound, rounds go on (their store writes give up
    with a warning instead of waiting 30 s each), and a check turning CRITICAL shows as 503
    CRITICAL while the store is still locked (before: no answer, then the old OK for as long
    as the lock was held)."""
    beat = tmp_path / "beat"
    beat.touch()
    check = f"    - {{name: beat, kind: file_age, path: {beat}, critical: 1h}}\n"
    served = _start(tmp_path, check)
    try:
        assert probe(served, "/healthz")[0] == 200
        with write_lock_held(tmp_path / "state" / "state.db"):
            rounds = probe(served, "/livez")[1]["rounds"]
            beat.unlink()

            def critical() -> bool:
                status, doc = probe(served, "/healthz")
                return status == 503 and doc["status"] == "CRITICAL"

            # Within 20 s: generous (~2 s here), yet below the 30 s one write used to wait.
            served.wait_for(critical, "/healthz to turn CRITICAL under the lock", bound=20)
            status, doc = probe(served, "/healthz?check=beat")
            assert (status, doc["status"]) == (503, "CRITICAL")
            status, live = probe(served, "/livez")
            assert status == 200 and live["last_round_age"] is not None
            # A second round under the lock: the first one's writes were given up.
            served.wait_for(
                lambda: probe(served, "/livez")[1]["rounds"] >= rounds + 2,
                "rounds to go on under the lock",
                bound=60,
            )
    finally:
        _code, err = served.stop()
    assert "health history not recorded" in err and "database is locked" in err
    assert "Traceback" not in err


def test_healthz_turns_not_ready_when_no_round_finishes_within_stale_after(
    tmp_path: Path,
) -> None:
    """A round that does not finish (a check hung past --stale-after) makes /healthz 503
    UNKNOWN with ``stale`` true and the last known checks, instead of the last OK for ever;
    /livez stays 200 (a restart would not help); the next finished round is trusted again."""
    flag = tmp_path / "hang"
    hang = f"while [ -e {flag} ]; do sleep 0.05; done"
    check = (
        "    - name: slow\n      kind: command\n      timeout: 5m\n"
        f"      command: [sh, -c, {json.dumps(hang)}]\n"
    )
    served = _start(tmp_path, check, "--stale-after", "2s")
    try:
        assert probe(served, "/healthz")[0] == 200
        flag.touch()

        def stale() -> Any:
            status, doc = probe(served, "/healthz")
            return status == 503 and doc.get("stale") and doc

        doc = served.wait_for(stale, "/healthz to turn stale", bound=60)
        assert doc["status"] == "UNKNOWN" and "no check round has finished" in doc["message"]
        assert [c["name"] for c in doc["checks"]] == ["slow"]
        assert probe(served, "/healthz?check=slow")[1]["stale"] is True
        assert probe(served, "/livez")[0] == 200
        flag.unlink()
        served.wait_for(lambda: probe(served, "/healthz")[0] == 200, "a fresh round again")
    finally:
        flag.unlink(missing_ok=True)
        served.stop()


def test_stale_after_is_checked() -> None:
    """--stale-after takes a positive duration of at most 7d, one line otherwise (usage, exit 2)."""
    for value in ("0s", "nope", "8d"):
        done = subprocess.run(
            [sys.executable, "-m", "reliactl", "serve", "--stale-after", value],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "--stale-after" in done.stderr


STOP_BOUND = 20.0  # generous (~5 s here), below the 30 s one locked write used to hold it


def test_term_stops_serve_promptly_while_requests_wait_on_a_locked_store(
    tmp_path: Path,
) -> None:
    """Three breaker trips wait on a store another process holds locked when serve gets
    TERM: each gets 503 "state store busy; try again" with Retry-After: 5 and no path in
    it (anyone may GET /metrics) once its 5 s are spent (REQUEST_STORE_WAIT,
    the wait behind the others included), and serve stops within the bound by its signal,
    as always, no traceback, its port closed. Before, each request held the store's one
    connection for its 30 s busy wait, one after the other, and the stop waited for them
    (uvicorn cancelled them after 10 s with a traceback; the round and the store's close
    still waited)."""
    served = start_serve(tmp_path)
    try:
        with write_lock_held(tmp_path / "state" / "state.db"):
            trips = []
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", served.port))
                sock.settimeout(60)  # generous: detects a hang only
                sock.sendall(
                    b"POST /api/breakers/payments/trip HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
                trips.append(sock)
            served.wait_for(lambda: probe(served, "/livez")[0] == 200, "serve to take the requests")
            served.proc.send_signal(signal.SIGTERM)
            try:
                _out, err = served.proc.communicate(timeout=STOP_BOUND)
            except subprocess.TimeoutExpired:
                raise AssertionError("serve did not stop on TERM within the bound") from None
            answers = []
            for sock in trips:
                with sock:
                    answers.append(sock.recv(65536))
            busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
            # Known (DESIGN, "Slow and many clients"): about one run in four, one trip is
            # still waiting when uvicorn's 10 s grace ends and gets its plain 500; never a
            # success, never the path.
            assert len(busy) >= 2, [a[:200] for a in answers]
            for answer in answers:
                assert answer.startswith((b"HTTP/1.1 503", b"HTTP/1.1 500")), answer[:300]
                assert str(tmp_path).encode() not in answer, answer[:500]  # no path
            for answer in busy:
                assert b"state store busy; try again" in answer, answer[:500]
                assert b"\r\nretry-after: 5\r\n" in answer.lower(), answer[:500]
    finally:
        served.stop()
    assert served.proc.returncode in (0, -signal.SIGTERM), err
    assert "stopped (the round in progress finished, the store is closed)" in err, err

    with socket.socket() as again:
        assert again.connect_ex(("127.0.0.1", served.port)) != 0, "serve's port is still open"


def test_metrics_and_jobs_answer_while_another_process_holds_the_store_locked(
    tmp_path: Path,
) -> None:
    """With the configured jobs declared (serve's first round), /metrics and /api/jobs
    answer 200 while another process holds the store's write lock: they only read. Before,
    each evaluation of a job rewrote its declared record (BEGIN IMMEDIATE) though nothing
    changed, so both waited out the 5 s request bound and answered 503."""
    served = start_serve(tmp_path)
    try:
        assert served.get("/api/jobs")[0] == 200  # declares the jobs
        time.sleep(JOBS_MAX_AGE + 0.5)  # the statuses are evaluated again, not cached
        with write_lock_held(tmp_path / "state" / "state.db"):
            for path in ("/metrics", "/api/jobs"):
                status, body = served.get(path)
                assert status == 200, (path, body[:500])
    finally:
        _code, err = served.stop()
    assert "Traceback" not in err, err[:3000]
