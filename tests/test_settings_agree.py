"""Settings read by more than one layer are declared once (issue 15 item 5): the breaker's
fields (`reliactl._settings.BreakerSettings`, inherited by the config schema and the library's
BreakerConfig, with per-breaker overrides generated from it) and the backoff strategy and jitter
names (owned by `reliactl.backoff`, read by retry.py, the config schema and the CLI)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from reliactl.backoff import JITTERS, STRATEGIES
from reliactl.breaker import BreakerConfig
from reliactl.cli import app
from reliactl.config import BreakerOverrides, BreakerSettings, CircuitBreakerConfig, RetryConfig
from reliactl.retry import JITTERS as RETRY_JITTERS
from reliactl.retry import STRATEGIES as RETRY_STRATEGIES


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_one_declaration_of_the_breaker_fields() -> None:
    """The schema section and the library class inherit the one declaration; the overrides are
    generated from it with the same docs and constraints, so a field added once appears in all."""
    assert issubclass(CircuitBreakerConfig, BreakerSettings)
    assert issubclass(BreakerConfig, BreakerSettings)
    fields = _names(BreakerSettings)
    assert len(fields) == 11
    assert _names(BreakerOverrides) == fields
    assert _names(CircuitBreakerConfig) == [*fields, "breakers"]
    assert _names(BreakerConfig) == [*fields, "excluded_exceptions", "is_failure"]
    own = {f.name: f.metadata for f in dataclasses.fields(BreakerSettings)}
    for f in dataclasses.fields(BreakerOverrides):
        assert f.default is None
        assert f.metadata == own[f.name]


def test_an_override_is_validated_by_the_shared_constraints(tmp_path: Path) -> None:
    """A per-breaker override breaks the same constraint as the default would: the generated
    overrides carry the schema's `gt` bounds, so the loader names the key and its line."""
    from reliactl.config import load
    from reliactl.errors import ConfigError

    path = tmp_path / "reliactl.yaml"
    path.write_text("circuit_breaker:\n  breakers:\n    api:\n      failure_threshold: 0\n")
    try:
        load(path)
    except ConfigError as exc:
        text = str(exc)
    else:  # pragma: no cover - the assertion below reports it
        text = ""
    assert "failure_threshold" in text and ":4" in text, text


def test_the_library_defaults_are_the_configured_defaults() -> None:
    """BreakerConfig() (library users) behaves as an unconfigured `reliactl breaker`."""
    defaults = CircuitBreakerConfig()
    lib = BreakerConfig()
    assert {n: getattr(lib, n) for n in _names(BreakerSettings)} == {
        n: getattr(defaults, n) for n in _names(BreakerSettings)
    }
    assert BreakerConfig.from_settings(defaults.settings_for("any")) == lib


def test_an_override_replaces_only_what_it_sets() -> None:
    """settings_for(name) is the defaults with that breaker's set fields over them."""
    cb = CircuitBreakerConfig(
        failure_threshold=7, breakers={"api": BreakerOverrides(recovery_timeout=5.0)}
    )
    api = cb.settings_for("api")
    assert (api.failure_threshold, api.recovery_timeout) == (7, 5.0)
    assert cb.settings_for("other").recovery_timeout == 60.0
    assert BreakerConfig.from_settings(api).recovery_timeout == 5.0


def test_importing_the_breaker_does_not_import_the_configuration() -> None:
    """The shared declaration sits below both layers: a library user importing the breaker
    does not pay for the configuration package (YAML, the schema's dataclasses)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, reliactl.breaker; print('reliactl.config' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_strategy_and_jitter_names_have_one_owner() -> None:
    """backoff owns the names; retry re-exports them; the config schema and `run` accept exactly
    those and `run --help` shows them."""
    assert (RETRY_STRATEGIES, RETRY_JITTERS) == (STRATEGIES, JITTERS)
    meta = {f.name: f.metadata for f in dataclasses.fields(RetryConfig)}
    assert tuple(meta["strategy"]["choices"]) == STRATEGIES
    assert tuple(meta["jitter"]["choices"]) == JITTERS
    runner = CliRunner()
    for flag, names in (
        ("--strategy", STRATEGIES),
        ("--backoff", STRATEGIES),
        ("--jitter", JITTERS),
    ):
        bad = runner.invoke(app, ["run", flag, "nope", "--", "true"])
        assert bad.exit_code == 125, bad.output
        assert all(name in bad.output for name in names), bad.output
    helptext = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "|".join(STRATEGIES) in helptext and "|".join(JITTERS) in helptext


def test_the_run_limits_are_declared_once_for_run_and_for_each_job() -> None:
    """`run:` and a `jobs:` entry take the same five limits from one declaration (RunLimits),
    with the same constraints, so a limit added or tightened once holds in both places."""
    from reliactl.config import JobSettings, RunConfig, RunLimits

    limits = _names(RunLimits)
    assert limits == ["memory_max", "cpu_time", "nice", "io_class", "max_output"]
    for cls in (RunConfig, JobSettings):
        assert issubclass(cls, RunLimits)
        assert _names(cls)[: len(limits)] == limits
