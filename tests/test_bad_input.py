"""Bad input is a one-line error with the right exit code, never a traceback (issue 13).

Also: relative paths in the configuration never make the lock or the store depend on the
caller's working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl.config import load, state_home
from reliactl.errors import ConfigError


def reliactl(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 700)), 101, id="block"
        ),
        pytest.param("x: " + "[" * 5000 + "]" * 5000 + "\n", 1, id="flow"),
        pytest.param("retry:\n  max_retries: 3\n  base_delay: 1s\x00\n", 3, id="nul"),
    ],
)
def test_deep_or_nul_yaml_is_a_config_error_with_a_line(
    tmp_path: Path, text: str, line: int
) -> None:
    """5,000 levels of nesting or a NUL: exit 78 naming file:line, from any command."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    for args in (["config", "validate", str(cfg)], ["--config", str(cfg), "breaker", "list"]):
        result = reliactl(*args)
        assert result.returncode == 78, result.stderr
        assert f"{cfg}:{line}:" in result.stderr and "Traceback" not in result.stderr


def test_a_section_with_every_key_commented_out_means_defaults(tmp_path: Path) -> None:
    """`retry:` (and a list like `checks:`) with nothing under it: the defaults, valid."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "retry:\n  # max_retries: 5\n  # base_delay: 2s\n"
        "health_monitor:\n  checks:\n  # - name: x\n  system_checks:\n"
    )
    loaded = load(cfg)
    assert loaded.config.retry.max_retries == 3
    assert loaded.config.health_monitor.checks == []
    assert "cpu" in loaded.config.health_monitor.system_checks


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y", "gopher://h", "hooks.slack"])
def test_config_validate_rejects_alert_urls_that_are_not_http(tmp_path: Path, url: str) -> None:
    """A webhook/discord/slack sink with a non-http(s) URL fails `config validate` (78)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"health_monitor:\n  alerts:\n    - name: x\n      kind: webhook\n      url: '{url}'\n"
    )
    result = reliactl("config", "validate", str(cfg))
    assert result.returncode == 78, result.stderr
    assert f"{cfg}:5: health_monitor.alerts[0].url: expected an http" in result.stderr


def test_config_validate_rejects_an_empty_cleanup_root(tmp_path: Path) -> None:
    """`path: ""` under cleanup.roots would mean the working directory: refused (78)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cleanup:\n  roots:\n    - path: ''\n      max_age: 1d\n")
    result = reliactl("config", "validate", str(cfg))
    assert result.returncode == 78, result.stderr
    assert "cleanup.roots[0].path: must not be empty" in result.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["runs", "-n", "99999999999999999999"], 2),
        (["runs", "-n", "\u0663"], 2),
        (["health", "--watch", "--interval", "1e12"], 3),
        (["run", "--timeout", "\u0665", "true"], 125),
        (["run", "--retries", "1_000", "true"], 125),
        (["run", "--lock-name", "", "true"], 125),
    ],
)
def test_bad_numbers_in_options_are_usage_errors(args: list[str], code: int) -> None:
    """Overflowing, non-ASCII and underscored numbers are refused with the command's usage code."""
    result = reliactl(*args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "rror" in result.stderr


def test_relative_paths_in_the_file_resolve_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state.path, run.lock_dir and cleanup roots from the file do not follow the cwd."""
    confdir = tmp_path / "conf"
    confdir.mkdir()
    cfg = confdir / "reliactl.yaml"
    cfg.write_text(
        "state:\n  path: data/state.db\nrun:\n  lock_dir: ./locks\n"
        "cleanup:\n  roots:\n    - path: ../spool\n"
    )
    for cwd in (tmp_path, confdir, Path("/")):
        monkeypatch.chdir(cwd)
        config = load(cfg).config
        assert config.state.path == str(confdir / "data" / "state.db")
        assert config.run.lock_dir == str(confdir / "locks")
        assert config.cleanup.roots[0].path == str(tmp_path / "spool")


def test_relative_paths_from_the_environment_are_refused(tmp_path: Path) -> None:
    """RELIACTL_STATE__PATH=state.db has nothing stable to resolve against: exit 78."""
    result = reliactl("runs", RELIACTL_STATE__PATH="state.db", RELIACTL_RUN__LOCK_DIR="locks")
    assert result.returncode == 78, result.stderr
    assert "RELIACTL_STATE__PATH" in result.stderr and "absolute path" in result.stderr
    with pytest.raises(ConfigError):
        load(environ={"RELIACTL_RUN__LOCK_DIR": "locks"})


def test_a_relative_xdg_state_home_is_ignored(tmp_path: Path) -> None:
    """XDG_STATE_HOME=rel is invalid per the XDG spec: the store is under $HOME, not the cwd."""
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": "relative/state"}
    assert state_home(env) == tmp_path / ".local" / "state" / "reliactl"
    config = load(environ={**env, "XDG_CONFIG_HOME": "rel"}).config
    assert config.state.path == str(tmp_path / ".local" / "state" / "reliactl" / "state.db")
    assert config.run.lock_dir.startswith(str(tmp_path))
