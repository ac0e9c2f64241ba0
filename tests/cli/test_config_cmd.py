from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD = "retry:\n  max_retries: 5\nrun:\n  kill_after: 3s\n"
BAD = "retry:\n  max_retries: lots\n  jitter: sometimes\nbogus: 1\n"


def test_validate_valid_file(run_cli, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    result = run_cli("config", "validate", str(f))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"valid: {f}"


def test_validate_reports_every_problem_and_exits_78(run_cli, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(BAD)
    result = run_cli("config", "validate", str(f))
    assert result.exit_code == 78, result.output
    lines = result.stderr.strip().splitlines()
    assert f"reliactl: {f}:2: retry.max_retries: expected an integer, got 'lots'" in lines
    assert any(f"{f}:3: retry.jitter: expected one of" in line for line in lines)
    assert any(f"{f}:4: bogus: unknown key" in line for line in lines)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_validate_json_lists_problems(run_cli, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(BAD)
    result = run_cli("config", "validate", str(f), "--json")
    assert result.exit_code == 78
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["valid"] is False
    assert {
        "file": str(f),
        "line": 2,
        "path": "retry.max_retries",
        "variable": None,
        "message": "expected an integer, got 'lots'",
    } in doc["problems"]
    assert len(doc["problems"]) == 3


def test_validate_without_any_file_is_fine(run_cli) -> None:
    result = run_cli("config", "validate")
    assert result.exit_code == 0, result.output
    assert "defaults" in result.stdout


def test_validate_names_an_env_problem(run_cli) -> None:
    result = run_cli("config", "validate", env={"HEALTH_MEMORY_THRESHOLD_MB": "-1"})
    assert result.exit_code == 78
    assert (
        "environment HEALTH_MEMORY_THRESHOLD_MB: health_monitor.memory_threshold_mb"
        in result.stderr
    )


def test_any_command_with_a_bad_config_exits_78(run_cli, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(BAD)
    result = run_cli("--config", str(f), "config", "show")
    assert result.exit_code == 78
    assert "retry.max_retries" in result.stderr and "Traceback" not in result.output


def test_show_annotates_sources(run_cli, tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    result = run_cli("--config", str(f), "config", "show", env={"CB_FAILURE_THRESHOLD": "9"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"max_retries: 5  # {f}:2" in out
    assert "failure_threshold: 9  # env CB_FAILURE_THRESHOLD" in out
    assert "base_delay: 1s  # default" in out
    body = yaml.safe_load(out)
    assert body["retry"]["max_retries"] == 5


def test_show_json_redacts_secrets(run_cli) -> None:
    result = run_cli(
        "config",
        "show",
        "--json",
        env={"RELIACTL_RATE_LIMIT__LIMITS__API": "5/second"},
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1
    assert doc["config"]["rate_limit"]["limits"] == {"api": "5/second"}
    assert doc["sources"]["rate_limit.limits.api"] == "env RELIACTL_RATE_LIMIT__LIMITS__API"


def test_show_output_of_example_is_loadable_yaml(run_cli, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    result = run_cli("--config", str(example), "config", "show")
    assert result.exit_code == 0, result.output
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.stdout)
    again = run_cli("config", "validate", str(shown), "--no-env")
    assert again.exit_code == 0, again.output


def test_init_writes_a_valid_file_and_refuses_to_overwrite(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "new.yaml"
    result = run_cli("config", "init", str(target))
    assert result.exit_code == 0, result.output
    assert (target.stat().st_mode & 0o777) == 0o600
    assert run_cli("config", "validate", str(target)).exit_code == 0
    target.write_text("# mine\n")
    again = run_cli("config", "init", str(target))
    assert again.exit_code == 1
    assert "exists" in again.stderr
    assert target.read_text() == "# mine\n"
    forced = run_cli("config", "init", str(target), "--force")
    assert forced.exit_code == 0
    assert "circuit_breaker:" in target.read_text()


def test_init_refuses_a_planted_symlink(run_cli, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "reliactl.yaml"
    link.symlink_to(victim)
    result = run_cli("config", "init", str(link), "--force")
    assert result.exit_code != 0
    assert victim.read_text() == "keep"
    assert os.path.islink(link)


def test_init_writes_the_defaults_with_every_example_commented_out(run_cli, tmp_path: Path) -> None:
    """`config init` is a starter: it loads to exactly the defaults (no example check, sink,
    breaker or root is active), while each example is still there as a comment."""
    from reliactl import config as cfgmod

    target = tmp_path / "reliactl.yaml"
    assert run_cli("config", "init", str(target)).exit_code == 0
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    loaded = cfgmod.load(target, environ={}).config
    defaults = cfgmod.load(empty, environ={}).config
    assert cfgmod.to_plain(loaded, redact=False) == cfgmod.to_plain(defaults, redact=False)
    text = target.read_text()
    for commented in ("  # checks:", "  #   kind: http", "  # alerts:", "  # breakers:"):
        assert commented in text
    reference = (Path(__file__).resolve().parents[2] / "config.example.yaml").read_text()
    assert text != reference and "  checks:\n  - name: api" in reference


INVALID_CONFIG_COMMANDS = [
    ["health"],
    ["cleanup"],
    ["cleanup", ".", "--older-than", "1d"],
    ["cleanup", ".", "--older-than", "1d", "--dry-run"],
    ["cleanup", "--stale-locks"],
    ["breaker", "list"],
    ["breaker", "reset", "x"],
    ["runs"],
    ["run", "true"],
    ["retry", "plan"],
    ["http", "GET", "http://127.0.0.1:9/"],
    ["config", "show"],
    ["config", "validate"],
]


@pytest.mark.parametrize("args", INVALID_CONFIG_COMMANDS, ids=" ".join)
def test_every_command_refuses_an_invalid_configuration_with_78(
    run_cli, tmp_path: Path, args: list[str]
) -> None:
    """An invalid configuration is exit 78 with the problem named, whatever the command and
    even where its settings go unused (cleanup with PATHs used to ignore it and exit 0)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("retry:\n  max_retries: lots\n")
    (tmp_path / "old").write_text("x")
    result = run_cli("--config", str(bad), *args)
    assert result.exit_code == 78, result.output
    assert f"{bad}:2: retry.max_retries: expected an integer" in result.stderr
    assert (tmp_path / "old").exists()


SECRET_CHECKS = """\
health_monitor:
  system_checks: []
  checks:
    - name: api
      kind: http
      url: https://bob:pw-verysecret@api.example/health?api_key=k-verysecret&verbose=1
      headers:
        X-Api-Key: xk-verysecret
        Api-Key: ak-verysecret
        Cookie: sid=c-verysecret
        X-Goog-Api-Key: g-verysecret
        X-Access-Key: a-verysecret
        Authorization: Bearer b-verysecret
        Accept: text/plain
    - name: relay
      kind: http
      url: https://discord.com/api/webhooks/42/d-verysecret
"""


@pytest.mark.parametrize("args", [(), ("--json",), ("--no-sources",), ("--json", "--no-sources")])
def test_show_redacts_what_http_treats_as_secret(run_cli, tmp_path: Path, args: tuple) -> None:
    """Check URLs lose passwords, token params and webhook tokens; secret headers show ***."""
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(SECRET_CHECKS)
    result = run_cli("--config", str(cfg), "config", "show", *args)
    assert result.exit_code == 0, result.output
    assert "verysecret" not in result.output
    out = result.stdout
    assert "https://bob:***@api.example/health?api_key=***&verbose=1" in out
    assert "https://discord.com/api/webhooks/42/***" in out
    assert "text/plain" in out  # an ordinary header stays readable


def test_init_that_cannot_write_it_whole_leaves_nothing_behind(tmp_path: Path) -> None:
    """A full disk or a file-size limit while `config init` writes: one line naming the file
    (not "cannot write to stdout"), exit 125, and neither a truncated starter nor, with
    --force, a half-overwritten configuration (the old file stays as it was)."""
    where = tmp_path / "out"
    where.mkdir()
    script = "trap '' XFSZ; ulimit -f 1; exec \"$@\""
    argv = ["sh", "-c", script, "sh", sys.executable, "-m", "reliactl", "config", "init"]
    new = subprocess.run([*argv, "x.yaml"], cwd=where, capture_output=True, text=True)
    assert new.returncode == 125, new.stderr
    assert new.stderr.strip() == "reliactl: error: cannot write x.yaml: File too large"
    assert sorted(os.listdir(where)) == []
    (where / "x.yaml").write_text("keep: me\n")
    forced = subprocess.run([*argv, "--force", "x.yaml"], cwd=where, capture_output=True, text=True)
    assert forced.returncode == 125, forced.stderr
    assert (where / "x.yaml").read_text() == "keep: me\n"
    assert sorted(os.listdir(where)) == ["x.yaml"]
