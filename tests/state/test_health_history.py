"""Health history in the state store (SQLite and Redis): points, aggregates, events, bounds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliactl.config import StateConfig
from reliactl.health.model import HealthMetric, HealthReport, Status
from reliactl.history import history_document, record_report

MakeStore = Callable[..., Any]
T0 = 1_700_000_100.0  # a multiple of 300 s: buckets start on it


def report(at: float, **checks: tuple[str, float | None]) -> HealthReport:
    metrics = {
        name: HealthMetric(name, Status(status), value, f"{name} is {value}", unit="%", warn="80")
        for name, (status, value) in checks.items()
    }
    return HealthReport(Status.OK, metrics, at, 0.01)


def test_points_events_and_aggregates(make_store: MakeStore) -> None:
    """Raw points come back in order, each status change is one event, and points past the raw
    retention are folded into 5-minute aggregates with the right min, max, mean and worst."""
    store = make_store()
    state = StateConfig(history_raw=3600.0, history_retention=86400.0, history_bucket=300.0)
    statuses = ["OK", "OK", "WARNING", "CRITICAL", "OK"]
    for i, status in enumerate(statuses):
        record_report(store, report(T0 + 60 * i, disk=(status, 10.0 * (i + 1))), state)
    points = store.health_points("disk", 0)
    assert [p.value for p in points] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert [p.status for p in points] == statuses
    events = store.health_events("disk")
    assert [(e.from_status, e.to_status) for e in events] == [
        ("CRITICAL", "OK"),
        ("WARNING", "CRITICAL"),
        ("OK", "WARNING"),
        ("", "OK"),
    ]
    # Two hours later the first bucket is past the raw retention: folded, raw points gone.
    folded = store.compact_health(T0 + 7200 + 300, 3600.0, 86400.0, 300.0)
    assert folded == 5
    assert store.health_points("disk", 0) == []
    (agg,) = store.health_aggregates("disk", 0)
    assert (agg.start, agg.count, agg.min, agg.max, agg.mean, agg.worst) == (
        T0,
        5,
        10.0,
        50.0,
        30.0,
        "CRITICAL",
    )
    assert store.health_checks() == ["disk"]
    doc = history_document(store, None, T0 - 1, now=T0 + 8000)
    assert doc["checks"][0]["aggregates"][0]["worst"] == "CRITICAL"
    assert doc["checks"][0]["warn"] == "80" and doc["checks"][0]["unit"] == "%"
    assert len(doc["events"]) == 4


def test_compacting_twice_never_counts_a_point_twice(make_store: MakeStore) -> None:
    """Compaction is idempotent: a second pass (another process) folds nothing again."""
    store = make_store()
    state = StateConfig(history_raw=3600.0, history_retention=86400.0, history_bucket=300.0)
    for i in range(10):
        record_report(store, report(T0 + 30 * i, c=("OK", float(i))), state)
    store.compact_health(T0 + 9000, 3600.0, 86400.0, 300.0)
    store.compact_health(T0 + 9000, 3600.0, 86400.0, 300.0)
    assert sum(a.count for a in store.health_aggregates("c", 0)) == 10


def _size(store: Any, checks: list[str]) -> int:
    return sum(
        len(store.health_points(c, 0)) + len(store.health_aggregates(c, 0)) for c in checks
    ) + len(store.health_events(None, 0, limit=100_000))


def test_a_simulated_week_keeps_the_store_flat(make_store: MakeStore, backend: str) -> None:
    """A week of runs every 5 minutes (3 checks, a flapping one) with 6 h raw retention and
    1 day of aggregates: after the first day and a half the history holds as many rows on
    day 7 as on day 3, and the SQLite file does not grow."""
    store = make_store()
    state = StateConfig(history_raw=6 * 3600.0, history_retention=86400.0, history_bucket=900.0)
    checks = ["cpu", "disk", "flappy"]
    sizes: dict[int, int] = {}
    files: dict[int, int] = {}
    step = 300.0
    for i in range(int(7 * 86400 / step)):
        at = T0 + i * step
        flap = "CRITICAL" if i % 7 == 0 else "OK"
        record_report(
            store,
            report(at, cpu=("OK", float(i % 100)), disk=("OK", 50.0), flappy=(flap, None)),
            state,
        )
        day = int((at - T0) // 86400)
        if int((at + step - T0) // 86400) == day:
            continue  # measure once a day, at its last run
        sizes[day] = _size(store, checks)
        if backend == "sqlite":
            files[day] = os.path.getsize(store.path) + os.path.getsize(f"{store.path}-wal")
    assert sizes[6] <= sizes[2] * 1.02, sizes
    assert sizes[6] >= sizes[2] * 0.98, sizes  # still history, not an emptied store
    if backend == "sqlite":
        assert files[6] <= files[2] * 1.25, files


def reliactl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_health_runs_are_recorded_and_drawn(tmp_path: Path, state_env: dict[str, str]) -> None:
    """Each `reliactl health` run lands in the history; `health history` draws a plain-text
    chart (no ANSI codes, at most 80 columns without a terminal) with the thresholds in it,
    lists the status change, and --json gives the same data; an unknown check exits 3."""
    flag = tmp_path / "bad"
    config = tmp_path / "c.yaml"
    (tmp_path / "queuecheck.py").write_text(
        "import os\n"
        "def depth():\n"
        f"    return {{'value': 99.0 if os.path.exists({str(flag)!r}) else 5.0}}\n",
        encoding="utf-8",
    )
    config.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        "    - name: queue\n      kind: python\n      target: queuecheck:depth\n"
        "      warn: '50'\n      critical: '90'\n",
        encoding="utf-8",
    )
    env = {
        **state_env,
        "RELIACTL_CONFIG": str(config),
        "COLUMNS": "80",
        "PYTHONPATH": str(tmp_path),
    }
    assert reliactl("health", env=env).returncode == 0
    flag.touch()
    assert reliactl("health", env=env).returncode == 2
    shown = reliactl("health", "history", "--since", "1h", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    assert "queue" in shown.stdout and "warn 50" in shown.stdout and "crit 90" in shown.stdout
    assert "=" in shown.stdout and "C" in shown.stdout  # the critical line and the status mark
    assert "OK -> CRITICAL" in shown.stdout
    as_json = reliactl("health", "history", "queue", "--json", env=env)
    import json

    doc = json.loads(as_json.stdout)
    assert doc["version"] == 2  # times as "Times in JSON" (tests/cli/test_json_times.py)
    (check,) = doc["checks"]
    assert [p["status"] for p in check["points"]] == ["OK", "CRITICAL"]
    assert doc["events"][0]["to"] == "CRITICAL"
    missing = reliactl("health", "history", "nope", env=env)
    assert missing.returncode == 3 and "queue" in missing.stderr
    assert "Traceback" not in missing.stderr
