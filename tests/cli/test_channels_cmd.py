"""The new alert channels from the command line: `config validate` names what a sink lacks with
file:line, `config show` hides every channel secret, `health --test-alert` reaches each
provider's local fake, a failing provider never changes health's exit code, and `doctor`
checks every sink without sending anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import FlakyServer, Reply
from smtpserver import smtp_server

from reliactl.doctor import diagnose

ROUTING_KEY = "R0UTING-KEY-s3cr3t"
API_KEY = "0psgenie-KEY-s3cr3t"
BOT_TOKEN = "123456:B0T-t0ken-s3cr3t"
NTFY_TOKEN = "tk_n7fy-s3cr3t"
SMTP_PASSWORD = "smtp-pa55word-s3cr3t"
SECRETS = (ROUTING_KEY, API_KEY, BOT_TOKEN, NTFY_TOKEN, SMTP_PASSWORD, "S1GN", "t0pic-s3cr3t")


@pytest.fixture
def fake() -> Iterator[FlakyServer]:
    with FlakyServer(Reply(202, {"status": "success"})) as srv:
        yield srv


def sinks_yaml(url: str, smtp_port: int) -> str:
    """One sink of every new kind, all pointed at the local fakes."""
    return f"""\
    - name: pd
      kind: pagerduty
      url: {url}/v2/enqueue
      routing_key: {ROUTING_KEY}
    - name: og
      kind: opsgenie
      url: {url}
      api_key: {API_KEY}
    - name: tg
      kind: telegram
      url: {url}
      secret_env: TG_TOKEN
      chat_id: "-100123"
    - name: teams
      kind: teams
      url: {url}/workflows/x/invoke?sig=S1GN
    - name: phone
      kind: ntfy
      url: {url}
      topic: t0pic-s3cr3t
      token: {NTFY_TOKEN}
    - name: mail
      kind: email
      smtp_host: 127.0.0.1
      smtp_port: {smtp_port}
      smtp_security: none
      smtp_user: alerts
      password: {SMTP_PASSWORD}
      mail_from: reliactl@example.com
      mail_to: [oncall@example.com]
"""


def write(tmp_path: Path, alerts: str, status: int = 0) -> Path:
    check = f'[{json.dumps(sys.executable)}, -c, "raise SystemExit({status})"]'
    path = tmp_path / "reliactl.yaml"
    path.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        f"    - name: db\n      kind: command\n      command: {check}\n"
        f"  alerts:\n{alerts}"
    )
    return path


def test_validate_names_each_sink_problem_with_file_and_line(run_cli, tmp_path: Path) -> None:
    """Missing routing key, a bad URL, an unknown kind, missing e-mail keys and a key of
    another channel: each reported as file:line: key: problem, exit 78."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "health_monitor:\n"
        "  alerts:\n"
        "    - name: pd\n"  # 3
        "      kind: pagerduty\n"  # 4
        "    - name: og\n"  # 5
        "      kind: opsgenie\n"
        "      api_key: k\n"
        "      url: ftp://api.opsgenie.com\n"  # 8
        "    - name: mail\n"
        "      kind: email\n"
        "      smtp_host: smtp.example.com\n"
        "      mail_from: not-an-address\n"  # 12
        "      chat_id: '42'\n"  # 13
    )
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78, result.output
    err = result.stderr
    assert (
        f"{cfg}:3: health_monitor.alerts[0].routing_key: is required for pagerduty sinks" in err
        or f"{cfg}:4: health_monitor.alerts[0].routing_key: is required for pagerduty sinks" in err
    ), err
    assert f"{cfg}:8: health_monitor.alerts[1].url: expected an http:// or https:// URL" in err
    assert f"{cfg}:12: health_monitor.alerts[2].mail_from: expected an e-mail address" in err
    assert "health_monitor.alerts[2].mail_to: is required for email sinks" in err
    assert f"{cfg}:13: health_monitor.alerts[2].chat_id: does not apply to email sinks" in err
    cfg.write_text("health_monitor:\n  alerts:\n    - name: x\n      kind: pagerdutty\n")
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78
    assert f"{cfg}:4: health_monitor.alerts[0].kind:" in result.stderr
    assert "did you mean 'pagerduty'" in result.stderr


def test_show_redacts_every_channel_secret(run_cli, tmp_path: Path) -> None:
    """config show (YAML and JSON) hides routing key, API key, tokens, password, the ntfy
    topic and the Teams URL; the output stays loadable."""
    cfg = write(tmp_path, sinks_yaml("https://relay.example.com", 25))
    for args in (("config", "show"), ("config", "show", "--json")):
        result = run_cli("--config", str(cfg), *args)
        assert result.exit_code == 0, result.output
        for secret in SECRETS:
            assert secret not in result.output, (args, secret)
    shown = tmp_path / "shown.yaml"
    shown.write_text(run_cli("--config", str(cfg), "config", "show").stdout)
    assert run_cli("config", "validate", str(shown)).exit_code == 0


@pytest.mark.parametrize("sink", ["pd", "og", "tg", "teams", "phone", "mail"])
def test_test_alert_reaches_every_new_sink(
    run_cli, tmp_path: Path, fake: FlakyServer, sink: str
) -> None:
    """`health --test-alert NAME` delivers a test alert to each channel's fake (exit 0); a
    provider answering 500 makes it exit 1 with a redacted one-line error (PagerDuty here)."""
    with smtp_server(auth=False) as (inbox, port):
        cfg = write(
            tmp_path,
            sinks_yaml(fake.url, port)
            .replace("      smtp_user: alerts\n", "")
            .replace(f"      password: {SMTP_PASSWORD}\n", ""),
        )
        env = {"TG_TOKEN": BOT_TOKEN}
        result = run_cli("--config", str(cfg), "health", "--test-alert", sink, env=env)
        assert result.exit_code == 0, result.output
        assert f"test alert delivered to {sink!r}" in result.stderr + result.stdout
        if sink == "mail":
            assert len(inbox.messages) == 1 and fake.count() == 0
            return
        (seen,) = fake.requests
        body = seen.json()
    expected = {
        "pd": lambda: body["event_action"] == "trigger" and body["payload"]["severity"] == "info",
        "og": lambda: body["priority"] == "P5" and seen.path == "/v2/alerts",
        "tg": lambda: seen.path == f"/bot{BOT_TOKEN}/sendMessage" and body["chat_id"] == "-100123",
        "teams": lambda: body["attachments"][0]["content"]["type"] == "AdaptiveCard",
        "phone": lambda: body["topic"] == "t0pic-s3cr3t" and body["priority"] == 3,
    }[sink]
    assert expected(), body
    if sink != "pd":
        return  # the 500 path of every channel: tests/health/test_channels.py
    fake.default = Reply(500)
    result = run_cli("--config", str(cfg), "health", "--test-alert", sink, env=env)
    assert result.exit_code == 1 and "HTTP 500" in result.stderr
    for secret in SECRETS:
        assert secret not in result.output


def test_a_failing_provider_warns_once_and_keeps_the_exit_code(run_cli, tmp_path: Path) -> None:
    """PagerDuty answering 500: health still exits with the checks' status (2), prints one
    warning line for the sink and no secret anywhere (stdout, stderr, --json)."""
    with FlakyServer(Reply(500)) as srv:
        alerts = (
            "    - name: pd\n      kind: pagerduty\n"
            f"      url: {srv.url}/v2/enqueue\n      routing_key: {ROUTING_KEY}\n"
        )
        cfg = write(tmp_path, alerts, status=2)
        result = run_cli("--config", str(cfg), "health", "--json")
        assert srv.count() == 3  # max_attempts, then given up
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if "alert sink 'pd'" in line]
    assert len(lines) == 1 and "HTTP 500" in lines[0]
    assert ROUTING_KEY not in result.output


def test_doctor_checks_every_sink_without_sending(tmp_path: Path, fake: FlakyServer) -> None:
    """doctor reports each sink ok when its settings are complete, fails one whose secret
    variable is unset or whose secret file is missing, and nothing reaches any fake."""
    with smtp_server() as (inbox, port):
        alerts = sinks_yaml(fake.url, port) + (
            "    - name: pd-file\n      kind: pagerduty\n"
            f"      secret_file: {tmp_path / 'missing'}\n"
        )
        cfg = write(tmp_path, alerts)
        report = diagnose(str(cfg), environ={"TG_TOKEN": BOT_TOKEN})
        found = {f.check: f for f in report.findings if f.check.startswith("alert sink")}
        assert {k: f.status for k, f in found.items()} == {
            "alert sink pd": "ok",
            "alert sink og": "ok",
            "alert sink tg": "ok",
            "alert sink teams": "ok",
            "alert sink phone": "ok",
            "alert sink mail": "ok",
            "alert sink pd-file": "fail",
        }, [f.message for f in found.values()]
        assert "cannot read secret_file" in found["alert sink pd-file"].message
        unset = diagnose(str(cfg), environ={})
        tg = next(f for f in unset.findings if f.check == "alert sink tg")
        assert tg.status == "fail" and "TG_TOKEN is not set" in tg.message
        assert "--test-alert tg" in tg.fix
        for finding in (*report.findings, *unset.findings):
            for secret in SECRETS:
                assert secret not in finding.message + finding.fix
        assert fake.count() == 0 and inbox.messages == []


def test_doctor_cli_exits_1_on_a_bad_sink(run_cli, tmp_path: Path) -> None:
    """The doctor command shows the failing sink and exits 1."""
    cfg = write(tmp_path, "    - name: og\n      kind: opsgenie\n      secret_env: NOPE_KEY\n")
    result = run_cli("--config", str(cfg), "doctor", env={"NOPE_KEY": ""})
    assert result.exit_code == 1, result.output
    assert "alert sink og" in result.stdout and "NOPE_KEY is not set" in result.stdout
