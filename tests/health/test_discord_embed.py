"""The Discord /health embed (`health --format discord`): colours, fields, Discord's limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from reliactl.breaker import CircuitState
from reliactl.health.formats import DISCORD_LIMITS, discord_embed
from reliactl.health.model import HealthMetric, HealthReport, Status, worst


def make(*metrics: HealthMetric) -> HealthReport:
    return HealthReport(worst(m.status for m in metrics), {m.name: m for m in metrics}, 1e9, 0.1)


class Snap:
    """What discord_embed reads of a BreakerSnapshot."""

    def __init__(self, name: str, state: CircuitState, failures: int) -> None:
        self.name, self.state, self.consecutive_failures = name, state, failures


def assert_within_discord_limits(embed: dict[str, Any]) -> None:
    """Every limit Discord enforces on one embed, and no empty name or value (refused too)."""
    limits = DISCORD_LIMITS
    assert 0 < len(embed["title"]) <= limits["title"]
    assert 0 < len(embed["description"]) <= limits["description"]
    assert len(embed["fields"]) <= limits["fields"]
    for f in embed["fields"]:
        assert 0 < len(f["name"]) <= limits["field_name"], f["name"]
        assert 0 < len(f["value"]) <= limits["field_value"], f["name"]
        assert isinstance(f["inline"], bool)
    assert len(embed["footer"]["text"]) <= limits["footer"]
    total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= limits["total"], total
    assert 0 <= embed["color"] <= 0xFFFFFF


def test_colour_by_status_and_a_field_per_check_worst_first() -> None:
    """The colour follows the overall status (the alert sink's colours); each check is a
    field with its status in words, worst first; the description counts them."""
    report = make(
        HealthMetric("disk", Status.OK, 41.0, "41% used", unit="%", kind="disk"),
        HealthMetric("api", Status.CRITICAL, None, "connection refused"),
        HealthMetric("queue", Status.WARNING, 60.0, "deep", warn="50", critical="90"),
    )
    embed = discord_embed(report)
    assert embed["color"] == 0xE74C3C and "CRITICAL" in embed["title"]
    names = [f["name"] for f in embed["fields"]]
    assert names == [":red_circle: api: CRITICAL", ":warning: queue: WARNING",
                     ":white_check_mark: disk: OK"]  # fmt: skip
    assert embed["description"] == "1 of 3 checks OK (1 critical, 1 warning)"
    assert "Resources" not in names  # only when detailed
    ok = discord_embed(make(HealthMetric("disk", Status.OK, 41.0, "fine", unit="%")))
    assert ok["color"] == 0x2ECC71
    assert_within_discord_limits(embed)


def test_detailed_adds_thresholds_breakers_and_resources() -> None:
    """--detailed: each check's thresholds and time, a breakers field (open first, with
    failures) and a resources field with the system checks' figures."""
    report = make(
        HealthMetric("memory_usage", Status.OK, 12.5, "ok", unit="%", kind="memory", warn="85"),
        HealthMetric("queue", Status.WARNING, 60.0, "deep", warn="50", critical="90"),
    )
    breakers = [Snap("mail", CircuitState.CLOSED, 0), Snap("payments", CircuitState.OPEN, 5)]
    embed = discord_embed(report, detailed=True, breakers=breakers, host="host-a")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert "warn 50 · crit 90 · took" in fields[":warning: queue: WARNING"]
    assert fields["Circuit breakers"] == "payments: open (5 failures)\nmail: closed"
    assert fields["Resources"] == "memory_usage: 12.5%"
    assert embed["footer"]["text"] == "reliactl health · host-a"
    assert_within_discord_limits(embed)


def test_many_checks_and_long_messages_stay_within_discords_limits() -> None:
    """60 checks with 300-character names and 5000-character messages, 200 breakers with long
    names: at most 25 fields, no field over 1024, 6000 characters in total; the checks that
    did not fit are counted in a last "and N more" field (none lost silently)."""
    metrics = [
        HealthMetric(
            f"check-{i:02d}-" + "n" * 300,
            (Status.CRITICAL, Status.OK, Status.WARNING)[i % 3],
            float(i),
            "m" * 5000,
            unit="%",
            kind="disk" if i % 5 == 0 else "custom",
            warn="80",
            critical="90",
        )
        for i in range(60)
    ]
    breakers = [Snap("b" * 200 + str(i), CircuitState.OPEN, i) for i in range(200)]
    for detailed in (False, True):
        embed = discord_embed(make(*metrics), detailed=detailed, breakers=breakers)
        assert_within_discord_limits(embed)
        more = [f for f in embed["fields"] if f["name"].startswith("…and ")]
        assert len(more) == 1
        shown = [f for f in embed["fields"] if ": " in f["name"] and "check-" in f["name"]]
        hidden = int(more[0]["name"].split()[1])
        assert len(shown) + hidden == 60
        assert shown and "CRITICAL" in shown[0]["name"]  # the worst are the ones shown
    few = discord_embed(make(*metrics[:3]))  # fits: no summary field, values cut at 1024
    assert_within_discord_limits(few)
    assert not [f for f in few["fields"] if f["name"].startswith("…and ")]
    assert all(f["value"].endswith("…") for f in few["fields"])


def test_the_cli_prints_the_librarys_embed(tmp_path: Path) -> None:
    """`reliactl health --format discord --detailed` prints the embed as JSON (a configured
    breaker listed, the python check's field present) and exits with health's exit code."""
    (tmp_path / "qcheck.py").write_text("def depth():\n    return {'value': 99.0}\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "health_monitor:\n  system_checks: [memory]\n  checks:\n"
        "    - name: queue\n      kind: python\n      target: qcheck:depth\n"
        "      warn: '50'\n      critical: '90'\n"
        "circuit_breaker:\n  breakers:\n    payments: {failure_threshold: 3}\n",
        encoding="utf-8",
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(tmp_path),
        "RELIACTL_CONFIG": str(config),
        "RELIACTL_STATE__PATH": str(tmp_path / "state" / "s.db"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "reliactl", "health", "--format", "discord", "--detailed"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr  # CRITICAL, as `health` itself
    embed = json.loads(proc.stdout)
    assert_within_discord_limits(embed)
    assert embed["color"] == 0xE74C3C
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields[":red_circle: queue: CRITICAL"].startswith("99 · ")
    assert fields["Circuit breakers"] == "payments: closed"
    assert "memory_usage: " in fields["Resources"]


def test_the_example_bot_builds_the_embed_without_discord(tmp_path: Path, monkeypatch: Any) -> None:
    """examples/discord/bot.py's health_embed runs the configured checks through the library
    and returns discord_embed's dict (discord.py is imported only by main(), not needed)."""
    import importlib.util

    from reliactl import config as config_module

    (tmp_path / "c.yaml").write_text(
        "health_monitor:\n  system_checks: [memory, disk]\n"
        "circuit_breaker:\n  breakers:\n    payments: {failure_threshold: 3}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("RELIACTL_CONFIG", str(tmp_path / "c.yaml"))
    monkeypatch.setenv("RELIACTL_STATE__PATH", str(tmp_path / "state" / "s.db"))
    config_module._cached = None
    path = Path(__file__).parents[2] / "examples" / "discord" / "bot.py"
    spec = importlib.util.spec_from_file_location("example_discord_bot", path)
    assert spec is not None and spec.loader is not None
    bot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bot)
    assert "discord" not in sys.modules
    embed = bot.health_embed(True)
    assert_within_discord_limits(embed)
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Circuit breakers"] == "payments: closed"
    assert "memory_usage: " in fields["Resources"]
    config_module._cached = None
