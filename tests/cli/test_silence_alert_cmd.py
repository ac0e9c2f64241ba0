"""`reliactl silence` and `reliactl alert`: thin commands over the alert state, their exit
codes for bad input, and what `health` shows of a silenced or acknowledged check."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import CountingServer

CONFIG = """\
health_monitor:
  system_checks: []
  checks:
    - name: broken
      kind: command
      command: [{python}, -c, "raise SystemExit(2)"]
  alerts:
    - name: hook
      kind: webhook
      url: {url}
"""
JOBS = """jobs:
  backup:
    every: 1h
    breaker: nas
"""


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as srv:
        yield srv


@pytest.fixture
def cfg(tmp_path: Path, server: CountingServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "reliactl.yaml"
    path.write_text(CONFIG.format(python=json.dumps(sys.executable), url=server.url + "/hook"))
    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("SUDO_USER", raising=False)
    return path


def test_a_silenced_check_is_shown_with_who_and_why_and_sends_nothing(
    run_cli, cfg: Path, server: CountingServer
) -> None:
    """silence add prints an ID; health (table and --json) marks the check silenced by the
    user with the reason, exits with its real status, and the sink hears nothing; after
    silence remove the problem goes out."""
    added = run_cli(
        "--config", str(cfg), "silence", "add", "brok*", "--for", "2h", "--reason", "disk swap"
    )
    assert added.exit_code == 0, added.stderr
    sid = added.stdout.strip()
    listed = json.loads(run_cli("--config", str(cfg), "silence", "list", "--json").stdout)
    (silence,) = listed["silences"]
    assert silence["id"] == sid and silence["by"] == "alice" and silence["state"] == "active"
    table = run_cli("--config", str(cfg), "health")
    assert table.exit_code == 2
    assert "[silenced by alice: disk swap]" in table.stdout
    doc = json.loads(run_cli("--config", str(cfg), "health", "--json").stdout)
    (check,) = doc["checks"]
    assert check["status"] == "CRITICAL" and check["silenced"]["by"] == "alice"
    assert check["silenced"]["reason"] == "disk swap" and doc["alerts"] == []
    assert server.count == 0
    assert run_cli("--config", str(cfg), "silence", "remove", sid).exit_code == 0
    run_cli("--config", str(cfg), "health", "--quiet")
    assert server.count == 1
    assert "no silences" in run_cli("--config", str(cfg), "silence", "list").stdout


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["silence", "add", "x", "--for", "soon"], 2, "--for: expected a duration"),
        (["silence", "add", "x", "--for", "0s"], 2, "positive duration of at most 366d, got '0s'"),
        (  # attack2 #3: past the 366d bound the option refuses it, in every duration's words
            ["silence", "add", "x", "--for", "36500d"],
            2,
            "--for: expected a positive duration of at most 366d, got '36500d'",
        ),
        (["silence", "add", "x", "--for", "1h", "--start", "yesterday"], 2, "--start: expected"),
        (["silence", "add", "x", "--for", "1h", "--start", "2001-01-01T00:00Z"], 2, "over"),
        (["silence", "add", " ", "--for", "1h"], 2, "TARGET: expected a non-empty value"),
        (["silence", "remove", "nope"], 1, "no silence 'nope'"),
        (["alert", "ack", "nothing*"], 1, "no open problem matches"),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(
    run_cli, cfg: Path, args: list[str], code: int, says: str
) -> None:
    """Bad durations, times and targets are usage errors (2); an unknown ID or a target with
    no open problem is "no" (1); never a traceback."""
    result = run_cli("--config", str(cfg), *args)
    assert result.exit_code == code, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_alert_list_and_ack(run_cli, cfg: Path, server: CountingServer) -> None:
    """After a failing run, `alert list` shows the open problem since then, not acknowledged;
    `alert ack` records who and why, and health shows it."""
    run_cli("--config", str(cfg), "health", "--quiet")
    doc = json.loads(run_cli("--config", str(cfg), "alert", "list", "--json").stdout)
    names = {p["check"]: p for p in doc["problems"]}
    assert names["broken"]["acknowledged"] is False and names["broken"]["since_epoch"] > 0
    acked = run_cli("--config", str(cfg), "alert", "ack", "bro*", "--reason", "on it")
    assert acked.exit_code == 0 and "broken (CRITICAL) acknowledged by alice" in acked.stderr
    text = run_cli("--config", str(cfg), "alert", "list").stdout
    assert "alice: on it" in text
    table = run_cli("--config", str(cfg), "health").stdout
    assert "[acknowledged by alice: on it]" in table


def test_escalation_settings_are_validated_with_file_and_line(run_cli, tmp_path: Path) -> None:
    """alerts.escalate_to must name a configured sink and come with escalate_after: exit 78,
    each problem at its file:line."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "health_monitor:\n"
        "  alerts:\n"
        "    - {name: hook, kind: webhook, url: 'http://127.0.0.1:9/x'}\n"
        "alerts:\n"
        "  escalate_to: [pagr]\n"
    )
    result = run_cli("--config", str(path), "config", "validate")
    assert result.exit_code == 78
    assert f"{path}:5: alerts.escalate_to[0]: no sink named 'pagr'" in result.stderr
    assert f"{path}:5: alerts.escalate_to: needs alerts.escalate_after" in result.stderr


def test_jobs_shows_a_silenced_job(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobs` marks a job whose name (or breaker) is silenced, in the table and in --json."""
    monkeypatch.setenv("USER", "erin")
    cfg = tmp_path / "jobs.yaml"
    cfg.write_text("jobs:\n  backup:\n    every: 1h\n    breaker: nas\n  other:\n    every: 1h\n")
    assert (
        run_cli(
            "--config", str(cfg), "silence", "add", "nas", "--for", "1h", "--reason", "move"
        ).exit_code
        == 0
    )
    table = run_cli("--config", str(cfg), "jobs").stdout
    assert "silenced by erin: move" in table
    doc = json.loads(run_cli("--config", str(cfg), "jobs", "--json").stdout)
    by_name = {j["name"]: j for j in doc["jobs"]}
    assert by_name["backup"]["silenced"]["by"] == "erin" and by_name["other"]["silenced"] is None


def test_run_alert_skips_the_escalation_sinks(tmp_path: Path) -> None:
    """A run's result is one moment: `run --alert` goes to the ordinary sinks only, never to
    alerts.escalate_to (health's job:NAME check escalates a job that stays failed)."""
    from reliactl.cli._jobwatch import watch_for_run
    from reliactl.config import load

    cfg = tmp_path / "esc.yaml"
    cfg.write_text(
        "health_monitor:\n  alerts:\n"
        "    - {name: chat, kind: webhook, url: 'http://127.0.0.1:9/a'}\n"
        "    - {name: pager, kind: webhook, url: 'http://127.0.0.1:9/b'}\n"
        "alerts: {escalate_after: 15m, escalate_to: [pager]}\n"
    )
    config = load(str(cfg)).config
    watch = watch_for_run(config, "backup", None, alert=True, open_store=lambda: None)
    assert watch is not None and [s.name for s in watch.sinks] == ["chat"]
