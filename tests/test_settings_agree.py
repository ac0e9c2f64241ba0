"""Settings declared in more than one place agree (issue 15 item 5): the breaker's fields in
the config schema (defaults and per-breaker overrides) and in the library's BreakerConfig, and
the backoff strategy and jitter names in retry.py, the config schema and `run --help`."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from reliactl.breaker import BreakerConfig
from reliactl.cli import app
from reliactl.config import BreakerSettings, CircuitBreakerConfig, RetryConfig
from reliactl.retry import JITTERS, STRATEGIES

LIBRARY_ONLY = {"excluded_exceptions", "is_failure"}  # callables: not configurable from YAML


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_the_breaker_fields_are_the_same_eleven_everywhere() -> None:
    """A field added to one declaration and not the others fails here, not in the field."""
    schema = [n for n in _names(CircuitBreakerConfig) if n != "breakers"]
    assert len(schema) == 11
    assert _names(BreakerSettings) == schema
    assert [n for n in _names(BreakerConfig) if n not in LIBRARY_ONLY] == schema


def test_the_library_defaults_are_the_configured_defaults() -> None:
    """BreakerConfig() (library users) behaves as an unconfigured `reliactl breaker`."""
    defaults = CircuitBreakerConfig()
    lib = BreakerConfig()
    assert {n: getattr(lib, n) for n in _names(BreakerSettings)} == {
        n: getattr(defaults, n) for n in _names(BreakerSettings)
    }
    assert BreakerConfig.from_settings(defaults.settings_for("any")) == lib


def test_strategy_and_jitter_names_agree() -> None:
    """retry.py owns the names; the config schema and `run` accept exactly those."""
    meta = {f.name: f.metadata for f in dataclasses.fields(RetryConfig)}
    assert tuple(meta["strategy"]["choices"]) == STRATEGIES
    assert tuple(meta["jitter"]["choices"]) == JITTERS
    runner = CliRunner()
    for flag, names in (("--backoff", STRATEGIES), ("--jitter", JITTERS)):
        bad = runner.invoke(app, ["run", flag, "nope", "--", "true"])
        assert bad.exit_code == 125, bad.output
        assert all(name in bad.output for name in names), bad.output
