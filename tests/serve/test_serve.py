"""`reliactl serve` as a real server: probes, metrics, the API, tokens, secrets, shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from importtime import start_reliactl
from prometheus_client.parser import text_string_to_metric_families
from servehelpers import TOKEN, WEBHOOK, Served, free_port, start_serve


def test_healthz_follows_the_checks_and_api_matches_the_cli(served: Served) -> None:
    """/healthz is 200 while all is OK/WARNING and 503 once a check is CRITICAL (within a
    round); ?check=NAME answers for one check; /api/* are the CLI's --json documents."""
    assert served.get("/healthz")[0] == 200
    status, doc = served.json("/healthz?check=queue")
    assert status == 200 and [c["name"] for c in doc["checks"]] == ["queue"]
    assert served.json("/healthz?check=nope")[0] == 404
    served.flag.touch()
    served.wait_for(lambda: served.get("/healthz")[0] == 503, "/healthz to turn 503")
    status, doc = served.json("/healthz")
    assert doc["status"] == "CRITICAL"
    cli = json.loads(served.cli("health", "--json", "--no-alerts").stdout)
    assert set(doc) == set(cli)
    assert [c["name"] for c in doc["checks"]] == [c["name"] for c in cli["checks"]]
    api = served.json("/api/breakers")[1]
    listed = json.loads(served.cli("breaker", "list", "--json").stdout)
    for entry in api["breakers"]:
        entry.pop("retry_in")
    assert set(api) == set(listed) and api["open"] == listed["open"]
    for ours, theirs in zip(api["breakers"], listed["breakers"], strict=True):
        assert set(ours) == set(theirs)  # "since" of a never-used breaker is "now"
        assert (ours["name"], ours["state"]) == (theirs["name"], theirs["state"])
    served.cli("run", "--name", "nightly", "--", "true")
    runs = served.json("/api/runs")[1]
    assert runs["runs"][0]["name"] == "nightly" and runs["runs"][0]["outcome"] == "success"
    assert set(runs["runs"][0]) == set(json.loads(served.cli("runs", "--json").stdout)["runs"][0])
    history = served.json("/api/history?check=queue&since=1h")[1]
    assert history["version"] == 2 and history["checks"][0]["points"]
    assert any(e["to"] == "CRITICAL" for e in history["events"])
    assert served.json("/api/history?since=forever")[0] == 400
    assert served.json("/livez")[0] == 200


def test_api_history_since_is_checked_as_health_history_since(served: Served) -> None:
    """/api/history?since= has `health history --since`'s one check (`history.parse_since`:
    positive, at most MAX_SINCE, 366d): a bad value is 400 with {"error": "since: ..."} in
    the CLI's words after its flag name, as the other API errors ("limit: ..."). It checked
    `since` itself: 1e20 said "at most 36500d (100 years)", x had no "since:", 0 no value.
    366d, the bound itself, is a history; a max_points that is no number is 400
    "max_points: expected a number, got 'x'", not Python's int() message."""
    for since in ("0", "400d", "1e20", "x"):
        status, doc = served.json(f"/api/history?since={since}")
        cli = served.cli("health", "history", "--since", since)
        assert cli.returncode == 3, cli.stderr
        cli_words = cli.stderr.strip().removeprefix("reliactl: error: --since: ")
        assert (status, doc["error"]) == (400, f"since: {cli_words}")
        assert cli_words.endswith(f"got '{since}'"), cli_words
    status, doc = served.json("/api/history?since=366d")
    assert status == 200 and doc["version"] == 2
    status, doc = served.json("/api/history?max_points=x")
    assert (status, doc["error"]) == (400, "max_points: expected a number, got 'x'")


def test_api_times_are_the_clis_form(served: Served) -> None:
    """/api/history is `health history --json` (version 2): each point's and event's `at`
    ISO 8601 UTC text with `at_epoch` the stored instant (it had `t` epoch numbers), the
    dashboard's folded series (`max_points`) with `start_at`/`start_at_epoch`; /api/health
    and /healthz say the version of `health --json` (2). (Python 3.10's `fromisoformat` rejects
    "Z": read as "+00:00".)"""
    from datetime import datetime

    from reliactl.config import load
    from reliactl.state import open_state

    def points() -> list[Any]:
        doc = served.json("/api/history?check=queue&since=1h")[1]
        return list(doc["checks"][0]["points"]) if doc["checks"] else []

    served.wait_for(lambda: len(points()) >= 3, "three rounds in the history")
    api = served.json("/api/history?check=queue&since=1h")[1]
    cli = json.loads(served.cli("health", "history", "queue", "--since", "1h", "--json").stdout)
    assert api["version"] == cli["version"] == 2
    assert list(api) == list(cli) == ["version", *TIMES_WINDOW, "checks", "events"]
    store = open_state(load(str(served.tmp / "serve.yaml"), environ=served.env).config)
    try:
        stored = {p.at for p in store.health_points("queue", 0)}
        events = {e.at for e in store.health_events("queue")}
    finally:
        store.close()
    (check,) = api["checks"]
    for point in check["points"]:
        assert list(point) == ["at", "at_epoch", "status", "value"]
        assert point["at_epoch"] in stored
        parsed = datetime.fromisoformat(point["at"].replace("Z", "+00:00"))
        assert point["at"].endswith("Z") and parsed.timestamp() == int(point["at_epoch"])
    assert api["events"] and all(e["at_epoch"] in events for e in api["events"])
    assert list(api["events"][0]) == ["check", "at", "at_epoch", "from", "to", "message"]
    folded = served.json("/api/history?check=queue&since=1h&max_points=2")[1]
    (check,) = folded["checks"]
    assert check["aggregates"] and not check["points"]
    for aggregate in check["aggregates"]:
        assert "t" not in aggregate and "start" not in aggregate
        parsed = datetime.fromisoformat(aggregate["start_at"].replace("Z", "+00:00"))
        assert parsed.timestamp() == int(aggregate["start_at_epoch"])
    assert served.json("/api/health")[1]["version"] == 2
    assert served.json("/healthz")[1]["version"] == 2


TIMES_WINDOW = ("start_at", "start_at_epoch", "end_at", "end_at_epoch")


def test_an_endpoints_errors_say_its_documents_version(served: Served) -> None:
    """An endpoint's error body says the "version" its answers say (it said 1 while the
    answers said 2): /api/health and /healthz with an unknown check (404) say `health --json`'s,
    /api/history with a bad `since` or `max_points` (400) `health history --json`'s, /api/runs
    with a bad `limit` (400) `runs --json`'s; the version serve gives a store error on each
    of those endpoints is the one its answer says."""
    served.wait_for(lambda: served.get("/healthz")[0] in (200, 503), "the first round")
    bad = {
        "/api/health": "/api/health?check=nope",
        "/healthz": "/healthz?check=nope",
        "/api/history": "/api/history?since=forever",
        "/api/runs": "/api/runs?limit=many",
        "/api/breakers": None,
    }
    answered: dict[str, int] = {}
    for path, wrong in bad.items():
        status, good = served.json(path)
        assert status in (200, 503) and good["version"] == 2, (path, good)
        answered[path] = good["version"]
        if wrong is None:
            continue
        status, error = served.json(wrong)
        assert status in (400, 404) and "error" in error, (wrong, status, error)
        assert next(iter(error)) == "version" and error["version"] == good["version"], error
    status, error = served.json("/api/history?since=1h&max_points=lots")
    assert status == 400 and error["version"] == 2, error
    assert served.json("/api/history?since=400d")[1]["version"] == 2
    from reliactl.cli.web.app import _endpoint_version  # what a store error on each says

    assert {path: _endpoint_version(path) for path in answered} == answered


def test_metrics_parse_with_hostile_names(served: Served) -> None:
    """/metrics parses with prometheus_client's own parser although a perfdata label holds a
    quote and a backslash and a breaker name a quote, a newline and a backslash; values are
    in base units (5s stays seconds, 3B bytes) and the families follow health/formats.py."""
    from reliactl.breaker import get_persistent_breaker
    from reliactl.config import load
    from reliactl.state import open_state

    loaded = load(str(served.tmp / "serve.yaml"), environ=served.env)
    store = open_state(loaded.config)
    hostile = 'pay"ments\\\nöü'
    get_persistent_breaker(hostile, loaded.config, store).trip(None, "test")
    store.close()
    served.cli("run", "--name", 'job "x"', "--", "false")
    text = served.get("/metrics")[1]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    status = {s.labels["check"]: s.value for s in families["reliactl_health_status"].samples}
    assert status["queue"] == 0
    seconds = families["reliactl_health_value_seconds"].samples
    assert [s.value for s in seconds if s.labels["metric"] == 'perf:we"i rd\\'] == [5.0]
    assert [
        s.value
        for s in families["reliactl_health_value_bytes"].samples
        if s.labels["metric"] == "perf:x_y"
    ] == [3.0]
    states = {
        (s.labels["breaker"], s.labels["state"]): s.value
        for s in families["reliactl_breaker_state"].samples
    }
    assert states[(hostile, "open")] == 1.0 and states[(hostile, "closed")] == 0.0
    assert states[("payments", "closed")] == 1.0
    transitions = families["reliactl_breaker_transitions"]
    assert transitions.type == "counter"
    assert any(s.labels["breaker"] == hostile and s.value >= 1 for s in transitions.samples)
    runs = families["reliactl_job_runs"].samples
    assert any(s.labels == {"job": 'job "x"', "outcome": "failure"} for s in runs)
    assert "reliactl_health_overall_status" in families


def test_writes_need_the_token_in_a_header(served: Served) -> None:
    """A breaker reset or trip without the token (or with a wrong one) is refused and changes
    nothing; with the token it works; the token is never accepted from a cookie."""
    assert served.cli("breaker", "trip", "payments").returncode == 0
    assert served.post("/api/breakers/payments/reset")[0] == 401
    assert served.post("/api/breakers/payments/reset", token="wrong-token-xxxxxxxx")[0] == 401
    assert json.loads(served.cli("breaker", "list", "--json").stdout)["open"] == ["payments"]
    status, doc = served.post("/api/breakers/payments/reset", token=TOKEN)
    assert status == 200 and doc["now"] == "closed"
    assert json.loads(served.cli("breaker", "list", "--json").stdout)["open"] == []
    status, _doc = served.post("/api/breakers/nope/trip", token=TOKEN)
    assert status == 404


def test_no_secret_anywhere_and_a_clean_stop(served: Served) -> None:
    """The Discord webhook of the alert sink (and the token) appear in no page, API answer or
    access-log line; TERM stops serve with exit 0 after one log line per request."""
    served.flag.touch()  # a CRITICAL check: an alert is attempted to the webhook
    served.wait_for(lambda: served.get("/healthz")[0] == 503, "a CRITICAL round")
    paths = [
        "/",
        "/static/app.js",
        "/healthz",
        "/api/health",
        "/api/breakers",
        "/api/runs",
        "/api/history?since=1h",
        "/metrics",
        "/livez",
    ]
    for path in paths:
        body = served.get(path)[1]
        assert "SECRETWEBHOOKTOKEN" not in body and TOKEN not in body, path
    served.get(f"/healthz?token={TOKEN}&hook={WEBHOOK}")
    code, err = served.stop()
    # uvicorn shuts down cleanly, then re-raises TERM: serve dies by it, as a Unix daemon does.
    assert code in (0, -15), err
    assert "stopped (the round in progress finished, the store is closed)" in err
    assert "SECRETWEBHOOKTOKEN" not in err
    assert TOKEN not in err
    log = [line for line in err.splitlines() if " GET " in line]
    assert len(log) >= len(paths) + 1  # one line per request (and the polls before)
    assert "Traceback" not in err


def test_non_loopback_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    """--host 0.0.0.0 without a token exits 2 with one clear line and never listens."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reliactl",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "Traceback" not in proc.stderr


def test_a_short_token_is_refused_from_the_environment_as_from_a_file(tmp_path: Path) -> None:
    """RELIACTL_SERVE_TOKEN shorter than doctor.SERVE_TOKEN_MIN is refused like a short
    --token-file: exit 78 (configuration) with one line naming where it came from, before
    listening (the old code served with a 3-character token)."""
    import os

    from reliactl.doctor import SERVE_TOKEN_MIN

    (tmp_path / "short").write_text("x" * (SERVE_TOKEN_MIN - 1) + "\n", encoding="utf-8")
    (tmp_path / "short").chmod(0o600)  # private: refused for its length alone
    port = str(free_port())
    cases = [
        ({"RELIACTL_SERVE_TOKEN": "x" * (SERVE_TOKEN_MIN - 1)}, [], "RELIACTL_SERVE_TOKEN"),
        ({}, ["--token-file", str(tmp_path / "short")], "--token-file"),
    ]
    for env, extra, named in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "reliactl", "serve", "--port", port, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "RELIACTL_SERVE_TOKEN": "", **env},
        )
        assert proc.returncode == 78, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], lines
        assert f"at least {SERVE_TOKEN_MIN} characters" in lines[0]


def test_a_token_file_another_user_planted_or_others_can_read_is_refused() -> None:
    """--token-file is a secret that resets and trips breakers: one nobody wrote into a
    sticky /tmp-like directory (mode 0644, theirs), and root's own one left mode 0644 (anyone
    could read it), are refused as --config from another user is: exit 78, one line naming
    the reason, before listening (the old code served with either). Root's 0600 file is
    accepted (the other tests serve with one)."""
    import os
    import shutil
    import tempfile

    from runhelpers import NOBODY

    shared = Path(tempfile.mkdtemp(prefix="reliactl-token-", dir="/tmp"))
    try:
        shared.chmod(0o1777)
        planted = shared / "serve.token"
        subprocess.run(
            [*NOBODY, "sh", "-c", f"umask 022; echo {TOKEN} > {planted}"], check=True, timeout=30
        )
        assert planted.stat().st_uid == 65534
        mine = shared / "mine"
        mine.mkdir(mode=0o755)
        readable = mine / "root.token"
        readable.write_text(TOKEN + "\n", encoding="utf-8")
        readable.chmod(0o644)
        port = str(free_port())
        for path, why in ((planted, "owned by nobody"), (readable, "mode 0644")):
            proc = subprocess.run(
                [sys.executable, "-m", "reliactl", "serve", "--port", port, "--token-file",
                 str(path)],
                capture_output=True, text=True, timeout=60, check=False,
                env={**os.environ, "RELIACTL_SERVE_TOKEN": ""},
            )  # fmt: skip
            assert proc.returncode == 78, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and why in lines[0] and "refused" in lines[0], lines
            assert TOKEN not in proc.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_read_only_without_a_token(tmp_path: Path) -> None:
    """Without a configured token every write is refused (403) and reads still work."""
    server = start_serve(tmp_path, token=False)
    try:
        assert server.post("/api/breakers/payments/trip", token=TOKEN)[0] == 403
        assert server.get("/api/breakers")[0] == 200
    finally:
        server.stop()


def imported(*args: str) -> set[str]:
    """The modules a real `reliactl ARGS` process imported."""
    return set(start_reliactl(list(args))[1])


@pytest.mark.parametrize("command", [["run", "--", "true"], ["health", "--json"]])
def test_run_and_health_never_import_the_web_stack(command: list[str]) -> None:
    """run and health never import starlette, uvicorn or prometheus_client (startup cost)."""
    modules = imported(*command)
    assert "reliactl.cli" in modules
    heavy = {
        m
        for m in modules
        if m.split(".")[0] in ("starlette", "uvicorn", "httptools", "prometheus_client")
    }
    assert not heavy
    assert not {m for m in modules if m.startswith("reliactl.cli.web")}


def test_api_jobs_is_the_cli_document_and_metrics_cover_jobs_limits_alerts(
    served: Served,
) -> None:
    """/api/jobs is `reliactl jobs --json` (same keys, one version field, the overdue flag);
    /metrics parses with prometheus_client and has each job's last success, last duration,
    runs_total by outcome and overdue, each stored rate limiter's tokens (hostile key) and
    alert deliveries_total by sink and result (the unreachable webhook: failed)."""
    from reliactl.config import load
    from reliactl.ratelimit import RateLimiter
    from reliactl.state import open_state

    hostile = 'api "v2"\\\nö'
    loaded = load(str(served.tmp / "serve.yaml"), environ=served.env)
    store = open_state(loaded.config)
    assert RateLimiter("5/minute", key=hostile, store=store).try_acquire()
    store.close()
    assert served.cli("run", "--name", "weekly", "--", "true").returncode == 0
    assert served.cli("run", "--name", 'job "x"', "--", "false").returncode != 0

    def overdue() -> Any:
        doc = served.json("/api/jobs")[1]
        jobs = {j["name"]: j for j in doc["jobs"]}
        return doc if jobs["nightly-report"]["overdue"] else None

    api = served.wait_for(overdue, "nightly-report to be overdue")
    cli = json.loads(served.cli("jobs", "--json").stdout)
    assert list(api) == list(cli) == ["version", "jobs"] and api["version"] == cli["version"]
    assert [j["name"] for j in api["jobs"]] == [j["name"] for j in cli["jobs"]]
    for ours, theirs in zip(api["jobs"], cli["jobs"], strict=True):
        assert list(ours) == list(theirs)
    jobs = {j["name"]: j for j in api["jobs"]}
    assert jobs["nightly-report"]["status"] == "CRITICAL"
    assert not jobs["weekly"]["overdue"] and jobs["weekly"]["last_success_at"]

    served.flag.touch()  # a CRITICAL round: an alert to the (unreachable) Discord webhook

    def families() -> Any:
        text = served.get("/metrics")[1]
        found = {f.name: f for f in text_string_to_metric_families(text)}
        return found if found["reliactl_alert_deliveries"].samples else None

    found = served.wait_for(families, "an alert delivery counted", bound=60)
    overdue_of = {s.labels["job"]: s.value for s in found["reliactl_job_overdue"].samples}
    assert overdue_of == {"nightly-report": 1.0, "weekly": 0.0}
    success = {
        s.labels["job"] for s in found["reliactl_job_last_success_timestamp_seconds"].samples
    }
    assert success == {"weekly"}
    took = {s.labels["job"] for s in found["reliactl_job_last_duration_seconds"].samples}
    assert {"weekly", 'job "x"'} <= took
    runs = {
        (s.labels["job"], s.labels["outcome"]): s.value for s in found["reliactl_job_runs"].samples
    }
    assert runs[("weekly", "success")] == 1 and runs[('job "x"', "failure")] == 1
    tokens = {
        (s.labels["limiter"], s.labels["rate"]): s.value
        for s in found["reliactl_ratelimit_tokens_available"].samples
    }
    assert tokens == {(hostile, "5/minute"): 4.0}
    deliveries = found["reliactl_alert_deliveries"]
    assert deliveries.type == "counter"
    assert {(s.labels["sink"], s.labels["result"]) for s in deliveries.samples} == {
        ("chat", "failed")
    }


def test_term_during_a_round_finishes_it_records_it_and_closes_the_store(tmp_path: Path) -> None:
    """TERM while a slow check is running: serve waits for the round (its result is in the
    health history afterwards), closes the store (SQLite's -wal file is gone: no connection
    left open) and exits by the signal without a traceback."""
    import os
    import signal
    import time

    started, finished = tmp_path / "started", tmp_path / "finished"
    (tmp_path / "slowcheck.py").write_text(
        "import os, time\n"
        "def slow():\n"
        f"    open({str(started)!r}, 'w').close()\n"
        "    time.sleep(1.5)\n"
        f"    open({str(finished)!r}, 'w').close()\n"
        "    return {'value': 42.0}\n",
        encoding="utf-8",
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        "    - name: slow\n      kind: python\n      target: slowcheck:slow\n",
        encoding="utf-8",
    )
    state = tmp_path / "state" / "state.db"
    env = {
        **os.environ,
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__PATH": str(state),
        "PYTHONPATH": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reliactl", "serve", "--port", str(free_port()), "-i", "1h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60  # generous: detects a hang only
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert started.exists() and not finished.exists(), proc.poll()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert finished.exists(), "the round in progress was cut short"
    assert "stopped (the round in progress finished, the store is closed)" in err
    assert "Traceback" not in err
    assert not state.with_name(state.name + "-wal").exists()
    history = subprocess.run(
        [sys.executable, "-m", "reliactl", "health", "history", "slow", "--json", "--since", "1h"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    doc = json.loads(history.stdout)
    assert [p["value"] for p in doc["checks"][0]["points"]] == [42.0], history.stderr


NOTE_KEYS = ("silenced", "acknowledged", "flapping")


def test_api_shows_silences_and_acknowledgements_as_the_cli(served: Served) -> None:
    """A check silenced and a check acknowledged with the real CLI (`silence add`, `alert ack`,
    subprocesses on the same store) show in /healthz and /api/health exactly as in
    `health --json` (who, why, until), and a silenced job in /api/jobs exactly as in
    `jobs --json`, without waiting for serve's next round; the documents keep the CLI's keys."""
    add = served.cli("silence", "add", "perf", "--for", "2h", "--reason", "swapping the disk")
    assert add.returncode == 0, add.stderr
    add = served.cli("silence", "add", "nightly-report", "--for", "1h", "--reason", "moved")
    assert add.returncode == 0, add.stderr
    served.flag.touch()
    served.wait_for(lambda: served.get("/healthz")[0] == 503, "/healthz to turn 503")
    ack = served.cli("alert", "ack", "queue", "--reason", "on it")
    assert ack.returncode == 0, ack.stderr

    def noted(doc: dict[str, Any]) -> dict[str, Any]:
        return {c["name"]: {k: c[k] for k in NOTE_KEYS} for c in doc["checks"]}

    def acked(path: str) -> Any:
        doc = served.json(path)[1]
        return doc if noted(doc)["queue"]["acknowledged"] else None

    api = served.wait_for(lambda: acked("/api/health"), "the acknowledgement in /api/health")
    healthz = served.wait_for(lambda: acked("/healthz"), "the acknowledgement in /healthz")
    cli = json.loads(served.cli("health", "--json", "--no-alerts").stdout)
    assert noted(api) == noted(healthz) == noted(cli)
    silenced = noted(cli)["perf"]["silenced"]
    assert silenced["reason"] == "swapping the disk" and silenced["by"] and silenced["until"]
    assert noted(cli)["queue"]["acknowledged"]["reason"] == "on it"
    others = [v for k, v in noted(cli).items() if k not in ("queue", "perf")]
    assert others and all(
        v == {"silenced": None, "acknowledged": None, "flapping": False} for v in others
    )
    for ours in (api, healthz):
        assert set(ours) == set(cli)
        for mine, theirs in zip(ours["checks"], cli["checks"], strict=True):
            assert set(mine) == set(theirs)
    jobs_api = served.json("/api/jobs")[1]
    jobs_cli = json.loads(served.cli("jobs", "--json").stdout)
    assert set(jobs_api) == set(jobs_cli)
    for mine, theirs in zip(jobs_api["jobs"], jobs_cli["jobs"], strict=True):
        assert set(mine) == set(theirs)
        assert {k: mine[k] for k in NOTE_KEYS} == {k: theirs[k] for k in NOTE_KEYS}
    by_name = {j["name"]: j for j in jobs_api["jobs"]}
    assert by_name["nightly-report"]["silenced"]["reason"] == "moved"
    assert by_name["weekly"]["silenced"] is None
