"""The import layers point one way (docs/DESIGN.md section 1), and names that moved still work.

cli -> commands' core (runner, health, cleanup, http, ...) -> breaker -> config -> patterns
(ratelimit, locks, retry, backoff) -> state -> ground (ranges, durations, errors, units, ...).
The contracts are in pyproject.toml; ``.ci/run`` runs ``lint-imports`` and so does this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_import_contracts_are_kept() -> None:
    """lint-imports (import-linter, a dev dependency) keeps every contract in pyproject.toml:
    layers, no sibling cycles, no backend module named outside state/, no config below it."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]'")
    done = subprocess.run(
        [lint], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_validating_thresholds_does_not_load_health(tmp_path: Path) -> None:
    """config validates Nagios ranges with reliactl.ranges: loading a config with warn/critical
    thresholds imports no reliactl.health module (config used to import health.model)."""
    (tmp_path / "reliactl.yaml").write_text(
        "health_monitor:\n  checks:\n  - name: api\n    kind: tcp\n    host: 127.0.0.1\n"
        "    port: 1\n    warn: '1s'\n    critical: '@2:3'\n"
        "rate_limit:\n  limits:\n    api: 60/minute\n"
    )
    os.chmod(tmp_path, 0o755)
    out = _python(
        """
        import sys
        from reliactl.config import load
        cfg = load("reliactl.yaml").config
        print(cfg.health_monitor.checks[0].critical)
        print(sorted(m for m in sys.modules if m.startswith("reliactl.health")))
        print("reliactl.cli" in sys.modules)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["@2:3", "[]", "False"]


def test_lower_layers_reach_the_process_config_without_importing_config() -> None:
    """@retry() with no settings, open_state() and limiter_for(key) still read the process-wide
    configuration (through the source the package installs), as documented."""
    out = _python(
        """
        import os
        os.environ["RELIACTL_RETRY__MAX_RETRIES"] = "4"
        os.environ["RELIACTL_RATE_LIMIT__OPENAI_REQUESTS_PER_MINUTE"] = "7"
        from reliactl.retry import RetryPolicy
        from reliactl.ratelimit import limiter_for
        print(RetryPolicy().strategy.max_retries)
        print([(r.count, r.per) for r in limiter_for("openai").rates])
        """,
        ROOT,
    )
    assert out.splitlines() == ["4", "[(7, 60.0)]"]


def test_moved_names_still_import_from_where_users_had_them() -> None:
    """parse_rates moved to the rate limiter, range parsing to reliactl.ranges, duration
    formatting to reliactl.units, RecordStore to health.records: the old names still work and
    are the same objects."""
    import reliactl.config as config
    import reliactl.durations as durations
    import reliactl.health.model as model
    import reliactl.health.monitor as monitor
    import reliactl.ranges as ranges
    import reliactl.ratelimit as ratelimit
    import reliactl.units as units
    from reliactl.health import NagiosRange, parse_range
    from reliactl.health.records import RecordStore

    assert ratelimit.parse_rates("60/minute;1000/hour") == [(60, 60.0), (1000, 3600.0)]
    assert config.parse_rates("5/10s") == ratelimit.parse_rates("5/10s") == [(5, 10.0)]
    with pytest.raises(ValueError):
        ratelimit.parse_rates("0/minute")
    assert model.parse_range is ranges.parse_range is parse_range
    assert model.NagiosRange is ranges.NagiosRange is NagiosRange
    assert model.RangeError is ranges.RangeError
    assert durations.format_duration is units.format_duration
    assert durations.format_size is units.format_size
    assert monitor.RecordStore is RecordStore
    assert str(parse_range("@10:20")) == "@10:20"
