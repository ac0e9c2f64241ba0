"""`reliactl run --ping/--job/--alert` as a real process against a real ping server: pings
never change the exit code, are bounded, and their URL never shows in output or history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from importtime import start_reliactl

from reliactl.state.sqlite import SQLiteStateStore
from tests.pingserver import PingServer, closed_port_url

UUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def _reliactl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _history(name: str) -> list[dict[str, object]]:
    state = Path(os.environ["XDG_STATE_HOME"]) / "reliactl" / "state.db"
    store = SQLiteStateStore(state)
    try:
        return [r.data for r in store.runs(name, 10)]
    finally:
        store.close()


def test_run_pings_start_then_exit_code_with_the_tail_and_keeps_the_exit_code(
    tmp_path: Path,
) -> None:
    """GET URL/start?rid, POST URL/3?rid with the output; exit 3 passes through; the report
    and the history list the pings with the URL redacted."""
    report = tmp_path / "report.json"
    with PingServer() as server:
        url = f"{server.url}/{UUID}"
        result = _reliactl(
            "run", "--name", "pinged", "--ping", url, "--json-report", str(report), "--",
            "sh", "-c", "echo out; echo err >&2; exit 3",
        )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n" and "err" in result.stderr
    start, end = server.pings
    assert (start.method, start.path) == ("GET", f"/{UUID}/start")
    assert (end.method, end.path, end.body) == ("POST", f"/{UUID}/3", b"out\nerr\n")
    assert start.rid == end.rid and start.rid
    doc = json.loads(report.read_text())
    assert [p["event"] for p in doc["pings"]] == ["start", "failure"]
    (data,) = _history("pinged")
    text = report.read_text() + json.dumps(data) + result.stderr
    assert UUID not in text and [p["ok"] for p in data["pings"]] == [True, True]  # type: ignore[index]


def test_a_down_or_failing_ping_server_is_a_warning_and_the_job_still_succeeds() -> None:
    """Connection refused (from RELIACTL_PING_URL) and HTTP 500: exit 0, one warning per ping,
    no UUID on stderr."""
    result = _reliactl(
        "run", "--", "true", env={"RELIACTL_PING_URL": f"{closed_port_url()}/{UUID}"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: ping") == 2 and "connection refused" in result.stderr
    with PingServer("500") as server:
        failing = _reliactl("run", "--ping", f"{server.url}/{UUID}", "--", "true")
    assert failing.returncode == 0 and "HTTP 500" in failing.stderr
    assert UUID not in result.stderr + failing.stderr


def test_a_redirected_ping_is_a_warning_and_recorded_not_delivered(tmp_path: Path) -> None:
    """The review's case: a monitor behind an http->https proxy answers 301. The job's exit
    code stands, but each ping is a warning naming the redirect target and the report and
    history record it not ok (it used to say ok with status 301, and warn nothing)."""
    report = tmp_path / "report.json"
    with PingServer("301") as server:
        result = _reliactl(
            "run", "--name", "moved", "--ping", f"{server.url}/{UUID}",
            "--json-report", str(report), "--", "true",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: ping") == 2, result.stderr
    assert "redirected (HTTP 301) to https://monitor.example/***" in result.stderr
    doc = json.loads(report.read_text())
    assert [(p["ok"], p["status"]) for p in doc["pings"]] == [(False, 301), (False, 301)]
    (data,) = _history("moved")
    assert [p["ok"] for p in data["pings"]] == [False, False]  # type: ignore[index]
    assert UUID not in result.stderr + report.read_text()


def _warning_lines(stderr: str, event: str) -> list[str]:
    return [line for line in stderr.splitlines() if f"reliactl: warning: ping {event} " in line]


@pytest.mark.stress
def test_a_hanging_ping_server_delays_the_run_only_within_the_stated_bounds(
    tmp_path: Path,
) -> None:
    """A server that never answers: the command still runs and its exit code passes
    through; the start waits at most 1 s and the end at most 10 s (generous hang bound).
    Each ping is exactly one warning line, the start's and the end's, and --json-report says
    the same. Which words a hung ping gets depends on which of two things at the same
    deadline comes first: its own socket timeout ("timed out") or the run giving up on it
    ("abandoned"); under load either. (CI once met "timed out" for both: this test then
    looked for "abandoned" alone, and pytest's shortened stderr in the failure hid the end
    ping's line, which read as a missing warning; it was there.)"""
    report = tmp_path / "report.json"
    with PingServer("hang") as server:
        began = time.monotonic()
        result = _reliactl(
            "run", "--ping", f"{server.url}/{UUID}", "--json-report", str(report), "--",
            "sh", "-c", "exit 4",
        )  # fmt: skip
        took = time.monotonic() - began
    assert result.returncode == 4, result.stderr
    assert took < 40, took  # 1 s + 10 s of bounds, and a loaded machine; never the 60 s hang
    (start,) = _warning_lines(result.stderr, "start")
    (end,) = _warning_lines(result.stderr, "failure")
    for line in (start, end):
        assert "timed out" in line or "abandoned" in line, result.stderr
    assert result.stderr.count("warning: ping") == 2 and UUID not in result.stderr
    pings = json.loads(report.read_text())["pings"]
    assert [(p["event"], p["ok"]) for p in pings] == [("start", False), ("failure", False)]
    assert start.endswith(f"failed: {pings[0]['error']}") and end.endswith(
        f"failed: {pings[1]['error']}"
    ), (result.stderr, pings)


@pytest.mark.stress
def test_a_start_ping_hanging_past_the_jobs_end_and_a_refused_end_ping_both_warn() -> None:
    """--ping-start to a server that never answers, --ping-failure to a port where nothing
    listens, a job that ends while the start ping is still pending: one warning line for
    each (the end's "connection refused"), scheme and host only, and the job's exit code."""
    refused = f"{closed_port_url()}/{UUID}"
    with PingServer("hang") as server:
        result = _reliactl(
            "run", "--ping-start", f"{server.url}/{UUID}", "--ping-failure", refused, "--",
            "sh", "-c", "exit 3",
        )  # fmt: skip
    assert result.returncode == 3, result.stderr
    (start,) = _warning_lines(result.stderr, "start")
    (end,) = _warning_lines(result.stderr, "failure")
    assert "timed out" in start or "abandoned" in start, result.stderr
    assert "connection refused" in end, result.stderr
    assert result.stderr.count("warning: ping") == 2 and UUID not in result.stderr


def test_a_busy_lock_sends_a_log_ping_and_no_start(tmp_path: Path) -> None:
    """A tick that finds the lock held reports /log (the default refusal), never /start."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "reliactl", "run", "--lock-name", "busy", "--", "sleep", "30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stderr is not None
        holder.stderr.readline()  # "starting ...": the lock is held
        with PingServer() as server:
            result = _reliactl(
                "run", "--lock-name", "busy", "--ping", f"{server.url}/{UUID}", "--", "true"
            )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert result.returncode == 75, result.stderr
    assert [p.path for p in server.pings] == [f"/{UUID}/log"]


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
def test_a_ping_url_in_the_environment_that_is_not_utf8_is_a_usage_error(
    fast: str, tmp_path: Path
) -> None:
    """RELIACTL_PING_URL with a byte that is not UTF-8 is refused as `--ping` is: exit 125,
    one line naming the variable (the URL a secret as a whole: no UUID, no password), before
    anything runs and with no ping sent, on both dispatchers. The job used to run with every
    ping failing on a UnicodeEncodeError warning."""
    marker = tmp_path / "ran"
    env = {**os.environb, b"RELIACTL_FAST": fast.encode()}
    with PingServer() as server:
        env[b"RELIACTL_PING_URL"] = (
            f"{server.url}/{UUID}".encode().replace(b"//", b"//u:pw@") + b"\xff"
        )
        result = subprocess.run(
            [sys.executable, "-m", "reliactl", "run", "--", "touch", str(marker)],
            capture_output=True,
            timeout=120,
            env=env,
        )
    stderr = result.stderr.decode()
    assert result.returncode == 125, stderr
    assert stderr.startswith("reliactl: error: RELIACTL_PING_URL: expected UTF-8 text, got '")
    assert stderr.count("\n") == 1 and UUID not in stderr and "pw" not in stderr, stderr
    assert not marker.exists() and server.pings == []


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
@pytest.mark.parametrize("flag", ["--ping", "--ping-start"])
def test_a_ping_flag_that_is_not_utf8_shows_no_secret(flag: str, fast: str) -> None:
    """`run --ping URL` whose URL has a byte that is not UTF-8 is refused (exit 125, one
    line) showing the URL as every ping message does, scheme and host alone: the path is
    the credential (the error line printed it whole, token and all)."""
    url = b"https://mon.example/ping/s3cr3t-token\xff"
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"reliactl", b"run", flag.encode(), url, b"--", b"true"],
        capture_output=True,
        timeout=120,
        env={**os.environb, b"RELIACTL_FAST": fast.encode()},
    )
    stderr = result.stderr.decode()
    assert result.returncode == 125, stderr
    assert (
        stderr == f"reliactl: error: {flag}: expected UTF-8 text, got 'https://mon.example/***'\n"
    )


def test_job_picks_up_its_name_and_ping_and_bad_values_are_usage_errors(
    tmp_path: Path,
) -> None:
    """--job JOB runs under the job's name with its ping:; an unknown job or a bad template
    exits 125 before anything runs."""
    with PingServer() as server:
        config = tmp_path / "c.yaml"
        config.write_text(
            f"jobs:\n  nightly:\n    every: 1d\n    ping:\n      url: {server.url}/{UUID}\n"
        )
        config.chmod(0o600)
        result = _reliactl("--config", str(config), "run", "--job", "nightly", "--", "true")
        assert result.returncode == 0, result.stderr
        assert [p.path for p in server.pings] == [f"/{UUID}/start", f"/{UUID}"]
        listed = _reliactl("--config", str(config), "jobs", "nightly", "--json")
        assert json.loads(listed.stdout)["jobs"][0]["last_outcome"] == "success"
        unknown = _reliactl("--config", str(config), "run", "--job", "nope", "--", "true")
        bad = _reliactl("run", "--ping-success", "https://h/{exit}", "--", "touch", "ran")
    assert unknown.returncode == 125 and "no job named 'nope'" in unknown.stderr
    assert bad.returncode == 125 and "unknown placeholder {exit}" in bad.stderr
    assert not Path("ran").exists()


def test_a_run_without_pings_imports_neither_ping_nor_schedule() -> None:
    """Cron pays every import every minute: run without --ping/--job/--alert or
    RELIACTL_PING_URL loads neither reliactl.ping, reliactl.schedule nor cronsim."""
    env = {k: v for k, v in os.environ.items() if k != "RELIACTL_PING_URL"}
    result, modules = start_reliactl(["run", "--", "true"], env=env)
    assert result.returncode == 0, result.stderr
    loaded = set(modules)
    assert not loaded & {"reliactl.ping", "reliactl.schedule", "reliactl.jobwatch", "cronsim"}
