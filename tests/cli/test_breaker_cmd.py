"""`reliactl breaker`: list, show, reset, trip, close against a real state store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliactl.breaker import CircuitBreaker, get_persistent_breaker
from reliactl.config import load
from reliactl.state import open_state


def persisted(name: str) -> CircuitBreaker:
    """A breaker in the store the CLI uses (the default state path under the test's HOME)."""
    config = load().config
    return get_persistent_breaker(name, config, open_state(config))


def fail(name: str, times: int, reason: str = "exit 1") -> None:
    b = persisted(name)
    for _ in range(times):
        b.admit().failure(reason)


def test_list_with_no_breakers(run_cli) -> None:
    result = run_cli("breaker", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "no breakers yet" in result.stderr
    doc = json.loads(run_cli("breaker", "list", "--json").stdout)
    assert doc["version"] == 2 and doc["breakers"] == [] and doc["open"] == []


def test_list_shows_state_failures_rate_opened_at_and_retry(run_cli) -> None:
    fail("openai", 5)
    b = persisted("db")
    b.admit().success()
    b.admit().failure("exit 3")
    result = run_cli("breaker", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "FAILURES",
        "FAILURE",
        "RATE",
        "OPENED",
        "AT",
        "RETRY",
        "IN",
    ]
    db_row, openai_row = lines[1].split(), lines[2].split()
    assert db_row == ["db", "closed", "1", "50%", "(1/2)", "-", "-"]
    assert openai_row[:5] == ["openai", "open", "5", "100%", "(5/5)"]
    assert openai_row[5].endswith("Z")  # opened at, UTC
    assert openai_row[6] in ("1m", "59s", "58s")  # retry in: the 1m recovery timeout, rounded up
    assert "\x1b[" not in result.stdout  # no color off a terminal


def test_list_json(run_cli) -> None:
    fail("openai", 5)
    result = run_cli("breaker", "list", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (entry,) = doc["breakers"]
    assert entry["name"] == "openai" and entry["state"] == "open"
    assert entry["consecutive_failures"] == 5 and entry["failure_rate"] == 100.0
    assert 0 < entry["retry_after"] <= 60
    assert entry["opened_at_epoch"] == pytest.approx(time.time(), abs=60)
    assert entry["opened_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["opened_at_epoch"])
    )
    assert doc["open"] == ["openai"]


def test_list_fail_on_open_exits_69_only_when_open(run_cli) -> None:
    fail("api", 1)
    assert run_cli("breaker", "list", "--fail-on-open").exit_code == 0
    fail("api", 4)
    result = run_cli("breaker", "list", "--fail-on-open")
    assert result.exit_code == 69, result.output
    assert "api" in result.stdout  # the table is still printed
    assert run_cli("breaker", "list", "--json", "--fail-on-open").exit_code == 69


def test_configured_breakers_are_known_before_first_use(run_cli, tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("circuit_breaker:\n  breakers:\n    nightly:\n      failure_threshold: 2\n")
    result = run_cli("--config", str(conf), "breaker", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:2] == ["nightly", "closed"]
    result = run_cli("--config", str(conf), "breaker", "trip", "nightly", "--for", "1h")
    assert result.exit_code == 0, result.output
    assert "open for 1h" in result.stderr


def test_show_prints_config_counters_and_transitions(run_cli) -> None:
    fail("openai", 5, "exit 7")
    result = run_cli("breaker", "show", "openai")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("breaker openai: open")
    assert "consecutive failures  5" in out
    assert "last failure          exit 7" in out
    assert "failure_threshold     5" in out and "recovery_timeout      1m" in out
    assert "closed -> open: 5 consecutive failures (last: exit 7)" in out


def test_show_json(run_cli) -> None:
    fail("openai", 5)
    doc = json.loads(run_cli("breaker", "show", "openai", "--json").stdout)
    assert doc["breaker"]["state"] == "open" and doc["breaker"]["failures"] == 5
    assert doc["breaker"]["config"]["failure_threshold"] == 5
    assert [(t["from"], t["to"]) for t in doc["transitions"]] == [("closed", "open")]


@pytest.mark.parametrize(
    "args",
    [("show", "opena"), ("reset", "opena"), ("trip", "opena"), ("close", "opena")],
)
def test_unknown_names_are_a_usage_error_listing_known_ones(run_cli, args) -> None:
    fail("openai", 1)
    fail("db", 1)
    result = run_cli("breaker", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "reliactl: error: no breaker named 'opena' (did you mean 'openai'?);"
        " known breakers: db, openai"
    )
    assert "Traceback" not in result.output


def test_unknown_name_when_none_is_known(run_cli) -> None:
    result = run_cli("breaker", "show", "x")
    assert result.exit_code == 2
    assert "no breaker has been used or configured yet" in result.stderr


def test_trip_for_a_duration_then_close(run_cli) -> None:
    fail("db", 1)
    result = run_cli("breaker", "trip", "db", "--for", "30m")
    assert result.exit_code == 0, result.output
    b = persisted("db")
    snap = b.snapshot()
    assert snap.state.value == "open" and snap.forced and snap.open_for == 1800
    assert run_cli("breaker", "list", "--fail-on-open").exit_code == 69
    row = run_cli("breaker", "list").stdout.splitlines()[1].split()
    assert row[-1] in ("30m", "29m59s", "29m58s")
    result = run_cli("breaker", "close", "db")
    assert result.exit_code == 0, result.output
    assert "is closed (was open)" in result.stderr
    assert b.snapshot().state.value == "closed"
    reasons = [e.reason for e in b.events()]
    assert reasons[0].startswith("closed by hand") and reasons[1].startswith("tripped by hand")


def test_trip_without_duration_stays_open_until_closed(run_cli) -> None:
    fail("db", 1)
    assert run_cli("breaker", "trip", "db").exit_code == 0
    row = run_cli("breaker", "list").stdout.splitlines()[1]
    assert row.rstrip().endswith("until closed")
    with pytest.raises(Exception) as info:
        persisted("db").admit()
    assert type(info.value).__name__ == "CircuitOpenError"


@pytest.mark.parametrize("bad", ["soon", "-5m", "0s"])
def test_trip_rejects_a_bad_duration(run_cli, bad: str) -> None:
    fail("db", 1)
    result = run_cli("breaker", "trip", "db", "--for", bad)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("reliactl: error: --for:")
    assert persisted("db").snapshot().state.value == "closed"


def test_reset_one_and_all(run_cli) -> None:
    fail("a", 5)
    fail("b", 5)
    result = run_cli("breaker", "reset", "a")
    assert result.exit_code == 0, result.output
    assert "reset breaker 'a' (was open)" in result.stderr
    snap = persisted("a").snapshot()
    assert snap.state.value == "closed" and snap.failures == 0
    assert persisted("b").snapshot().state.value == "open"
    assert run_cli("breaker", "reset", "--all").exit_code == 0
    assert persisted("b").snapshot().state.value == "closed"
    assert run_cli("breaker", "list", "--fail-on-open").exit_code == 0


@pytest.mark.parametrize("args", [(), ("a", "--all")])
def test_reset_needs_exactly_one_of_name_or_all(run_cli, args) -> None:
    fail("a", 1)
    result = run_cli("breaker", "reset", *args)
    assert result.exit_code == 2, result.output
    assert "name one breaker, or use --all" in result.stderr


def test_help_documents_every_option(run_cli) -> None:
    for command, options in {
        "list": ["--json", "--fail-on-open"],
        "show": ["--json", "--limit", "-n", " N "],
        "reset": ["--all"],
        "trip": ["--for"],
        "close": [],
    }.items():
        result = run_cli("breaker", command, "--help")
        assert result.exit_code == 0, result.output
        for option in options:
            assert option in result.stdout, (command, option)


def test_breaker_list_imports_no_heavy_modules(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'breaker', 'list', '--json']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('pydantic', 'httpx', 'psutil', 'filelock', 'rich')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert "HEAVY []" in result.stderr, result.stderr


def test_list_colors_the_state_on_a_terminal(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from reliactl.cli import output

    fail("down", 5)
    fail("up", 1)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(output, "is_tty", lambda stream=None: True)
    monkeypatch.setattr(
        output,
        "console",
        lambda stderr=False: Console(force_terminal=True, color_system="standard", width=120),
    )
    result = run_cli("breaker", "list")
    assert result.exit_code == 0, result.output
    assert "\x1b[1;31mopen" in result.stdout  # bold red
    assert "\x1b[32mclosed" in result.stdout  # green


def test_five_failing_processes_open_it_for_the_cli(tmp_path: Path) -> None:
    """Five separate "cron runs" each record one failure; a real `reliactl` process sees it."""
    script = (
        "from reliactl.breaker import get_persistent_breaker\n"
        "from reliactl.config import load\n"
        "from reliactl.state import open_state\n"
        "config = load().config\n"
        "get_persistent_breaker('nightly', config, open_state(config)).admit().failure('exit 1')\n"
    )
    env = dict(os.environ)
    for _ in range(5):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "breaker", "list", "--fail-on-open"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 69, result.stderr
    assert result.stdout.splitlines()[1].split()[:3] == ["nightly", "open", "5"]
