from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl import __version__

HEAVY = ("pydantic", "httpx", "psutil", "filelock")


def reliactl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"reliactl {__version__}"


def test_python_dash_m_works_the_same() -> None:
    result = reliactl("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"reliactl {__version__}"


def test_help_lists_exit_codes_and_only_working_commands(run_cli) -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout and "78" in result.stdout
    assert "config" in result.stdout


def test_unknown_command_is_a_usage_error(run_cli) -> None:
    result = run_cli("frobnicate")
    assert result.exit_code == 2


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("config", "show")])
def test_startup_paths_import_no_heavy_modules(args: tuple[str, ...]) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['reliactl', *{list(args)!r}]\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stderr, result.stderr


def test_internal_errors_are_one_line_without_locals(tmp_path: Path) -> None:
    """A state path under a regular file is a clean error, never a traceback with locals."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state:\n  path: {blocker}/state.db\n")
    code = (
        "import sys\n"
        "from reliactl.cli.context import AppContext\n"
        f"ctx = AppContext(config_path={str(cfg)!r})\n"
        "from reliactl.cli.output import report_error\n"
        "from reliactl.errors import ReliactlError\n"
        "try:\n    ctx.store()\nexcept ReliactlError as e:\n    sys.exit(report_error(e))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 125
    assert "cannot create the state directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_documents_carry_a_version(run_cli) -> None:
    doc = json.loads(run_cli("config", "show", "--json").stdout)
    assert doc["version"] == 1


def test_invoked_command_skips_root_options() -> None:
    from reliactl.cli import invoked_command

    assert invoked_command(["--config", "x.yaml", "run", "--lock", "true"]) == "run"
    assert invoked_command(["-c", "x", "config", "show"]) == "config"
    assert invoked_command(["--help"]) is None
    assert invoked_command(["frobnicate"]) is None


def test_a_lean_app_runs_only_the_named_command(tmp_path: Path) -> None:
    """`reliactl config show` imports no other command module; unknown commands still get help."""
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'config', 'show']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "others = [m for m in ('reliactl.cli.run', 'reliactl.cli.health', 'reliactl.cli.http')"
        " if m in sys.modules]\n"
        "print('OTHERS', others, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "OTHERS []" in result.stderr, result.stderr
    wrong = reliactl("confg", "show")
    assert wrong.returncode == 2 and "config" in wrong.stderr
