"""DESIGN.md section 2, "Times in JSON", for the documents that still broke it: `health history
--json` (`t` epoch numbers), `health --json`'s job and process details (epoch numbers),
`silence add/list --json` (`start`/`end`), and the `jobs` table (milliseconds, lower-case
headers). Each runs the console script as users do, against the real SQLite store, and
compares every time with the instant the store (or the kernel) holds.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

SCRIPT = str(Path(sys.executable).parent / "reliactl")  # the console script, as users run it
SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

CONFIG = """\
health_monitor:
  system_checks: [file_handles]
  checks:
    - name: sleeper
      kind: process
      pidfile: {pidfile}
jobs:
  nightly:
    every: 1d
"""


def reliactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )


def _instant(doc: dict[str, Any], key: str, stored: float | None) -> None:
    """``doc[key]`` is ISO 8601 UTC text to the second that ``datetime.fromisoformat`` reads as
    the stored instant (floored to the second), and ``doc[key + "_epoch"]``, right after it, is
    that instant exactly. (Python 3.10's ``fromisoformat`` rejects "Z": read as "+00:00".)"""
    names = list(doc)
    assert names.index(f"{key}_epoch") == names.index(key) + 1, names
    assert doc[f"{key}_epoch"] == stored
    if stored is None:
        assert doc[key] is None
        return
    text = doc[key]
    assert isinstance(text, str) and SECOND.fullmatch(text), text
    parsed = _parse(text)
    assert parsed.tzinfo is not None and parsed.utcoffset() == timezone.utc.utcoffset(None)
    assert parsed.timestamp() == math.floor(stored)


def _parse(text: str) -> datetime:
    """ISO 8601 UTC text as a datetime, on every supported Python (3.10 rejects "Z")."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A configuration with a process check (a sleeping child's pidfile) and a declared job;
    yields the child. The test process and the CLI share the store (XDG_STATE_HOME)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    pidfile = tmp_path / "sleeper.pid"
    pidfile.write_text(f"{child.pid}\n")
    config = tmp_path / "reliactl.yaml"
    config.write_text(CONFIG.format(pidfile=pidfile))
    config.chmod(0o600)
    monkeypatch.setenv("RELIACTL_CONFIG", str(config))
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=30)


def _store() -> Any:
    from reliactl.config import get_reliability_config
    from reliactl.state import open_state

    return open_state(get_reliability_config(reload=True))


def test_health_history_json_times_are_iso_with_epoch_beside_them(configured: Any) -> None:
    """`health history --json` is version 2: each point's and event's `at` and each
    aggregate's `start_at` are ISO 8601 UTC text with `X_epoch` the stored instant (version 1
    had `t` epoch numbers and an aggregate's `start`), and the window is `start_at`/`end_at`
    (it was `since`/`now`, text alone)."""
    from reliactl.state.base import HealthPoint

    assert reliactl("health", "-C", "file_handles", "--no-alerts").returncode == 0
    store = _store()
    try:  # an older point, folded into an aggregate as the retention does it
        now = time.time()
        old = (now - 2 * 86400) // 300 * 300 + 12.75
        store.add_health_points([HealthPoint("file_handles", old, "WARNING", 81.5)])
        assert store.compact_health(now, 86400.0, 30 * 86400.0, 300.0) == 1
        (aggregate,) = store.health_aggregates("file_handles", 0)
        (point,) = store.health_points("file_handles", 0)
        (event,) = store.health_events("file_handles")
    finally:
        store.close()
    before = time.time()
    shown = reliactl("health", "history", "--since", "3d", "--json")
    after = time.time()
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["version"] == 2
    assert not {"since", "now"} & set(doc)
    _instant(doc, "end_at", doc["end_at_epoch"])
    _instant(doc, "start_at", doc["start_at_epoch"])
    assert before <= doc["end_at_epoch"] <= after
    assert doc["end_at_epoch"] - doc["start_at_epoch"] == pytest.approx(3 * 86400)
    (check,) = doc["checks"]
    (shown_aggregate,) = check["aggregates"]
    assert not {"t", "start"} & set(shown_aggregate)
    _instant(shown_aggregate, "start_at", aggregate.start)
    (shown_point,) = check["points"]
    assert "t" not in shown_point
    _instant(shown_point, "at", point.at)
    (shown_event,) = doc["events"]
    assert "t" not in shown_event
    _instant(shown_event, "at", event.at)
    # The text chart reads the same document: the folded WARNING is drawn.
    chart = reliactl("health", "history", "--since", "3d")
    (marks,) = [line for line in chart.stdout.splitlines() if "└" in line]
    assert chart.returncode == 0 and "w" in marks and "81.5" in chart.stdout, chart.stdout


def test_health_json_details_times_are_iso_with_epoch_beside_them(configured: Any) -> None:
    """`health --json` is version 2: a `job` check's details (`last_run_at`,
    `last_success_at`, `next_expected_at`, `declared_at`) were epoch numbers, and a `process`
    check's processes had psutil's `create_time` number; now ISO 8601 UTC text with
    `X_epoch` beside each (the process's start as `started_at`)."""
    import psutil

    ran = reliactl("run", "--job", "nightly", "--", sys.executable, "-c", "pass")
    assert ran.returncode == 0, ran.stderr
    shown = reliactl("health", "--json", "--no-alerts", "-C", "job:nightly", "-C", "sleeper")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["version"] == 2
    checks = {c["name"]: c for c in doc["checks"]}
    (process,) = checks["sleeper"]["details"]["processes"]
    assert process["pid"] == configured.pid and "create_time" not in process
    _instant(process, "started_at", psutil.Process(configured.pid).create_time())
    details = checks["job:nightly"]["details"]
    store = _store()
    try:
        (run,) = store.runs("nightly")
    finally:
        store.close()
    _instant(details, "last_run_at", run.started_at)
    assert details["last_success_at_epoch"] >= run.started_at
    _instant(details, "last_success_at", details["last_success_at_epoch"])
    _instant(details, "next_expected_at", details["last_success_at_epoch"] + 86400)
    _instant(details, "declared_at", details["declared_at_epoch"])
    # The same instants as `jobs --json`, whose form this is.
    (job,) = json.loads(reliactl("jobs", "nightly", "--json").stdout)["jobs"]
    for key in ("last_run_at", "last_success_at", "next_expected_at", "declared_at"):
        assert (details[key], details[f"{key}_epoch"]) == (job[key], job[f"{key}_epoch"])
    # --watch --json lines are whole documents of the same version.
    line = reliactl("health", "--watch", "--json", "-n", "1", "--no-alerts", "-C", "sleeper")
    assert json.loads(line.stdout.splitlines()[0])["version"] == 2


def test_silence_json_window_is_start_at_and_end_at(configured: Any) -> None:
    """`silence add --json` and `silence list --json` are version 2: the window is
    `start_at`/`end_at` (ISO 8601 UTC text, the stored instants in `X_epoch`), named as every
    point in time is; version 1 called them `start`/`end`."""
    from reliactl.health.alertstate import list_silences
    from reliactl.health.records import RecordStore

    added = reliactl("silence", "add", "disk*", "--for", "2h", "--start", "+1h", "--json")
    assert added.returncode == 0, added.stderr
    listed = reliactl("silence", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    store = _store()
    try:
        (stored,) = list_silences(RecordStore(store), time.time())
    finally:
        store.close()
    (entry,) = json.loads(listed.stdout)["silences"]
    for doc in (json.loads(added.stdout), json.loads(listed.stdout)):
        assert doc["version"] == 2
    for shown in (json.loads(added.stdout), entry):
        assert shown["id"] == stored.id and shown["state"] == "pending"
        assert not {"start", "end", "start_epoch", "end_epoch"} & set(shown)
        _instant(shown, "start_at", stored.start)
        _instant(shown, "end_at", stored.end)
        _instant(shown, "created_at", stored.created_at)


def test_jobs_table_has_upper_case_headers_and_times_to_the_second(configured: Any) -> None:
    """The `jobs` table is as `runs` and `breaker list`: upper-case headers and times ISO 8601
    UTC to the second (it had lower-case headers and milliseconds), for the jobs and for one
    job's recent runs."""
    assert reliactl("run", "--job", "nightly", "--", sys.executable, "-c", "pass").returncode == 0
    store = _store()
    try:
        (run,) = store.runs("nightly")
    finally:
        store.close()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at))
    shown = reliactl("jobs", "nightly")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        *("JOB", "STATUS", "EXPECTED", "LAST RUN", "OUTCOME", "LAST SUCCESS", "NEXT"),
        "FAILURES",
    ]
    row = re.split(r"\s{2,}", lines[1])
    assert row[0] == "nightly" and row[3] == started
    assert SECOND.fullmatch(row[5]) and SECOND.fullmatch(row[6]), row
    (header_at,) = [i for i, line in enumerate(lines) if line.startswith("ID ")]
    assert lines[header_at].split() == ["ID", "STARTED", "EXIT", "OUTCOME", "HOST"]
    assert lines[header_at + 1].split()[1] == started
    assert not re.search(r"\.\d{3}Z", shown.stdout)


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (1.999, "1970-01-01T00:00:01Z"),  # floored: not 00:00:02
        (-0.5, "1969-12-31T23:59:59Z"),  # floored toward the past, not to 00:00:00
        (1777604400.25, "2026-05-01T03:00:00Z"),
        (253402300799.9, "9999-12-31T23:59:59Z"),  # the last second ISO 8601 writes
        (-62135596800.0, "0001-01-01T00:00:00Z"),  # the first, zero-padded
        (None, None),
        (1e20, None),  # past time_t
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (253402300800.0, None),  # year 10000: strftime wrote "10000-01-01T00:00:00Z"
        (1e15, None),  # year 31690708: strftime wrote "31690708-07-05T01:46:40Z"
        (-62135596801.0, None),  # year 0: strftime wrote "0-12-31T23:59:59Z"
    ],
)
def test_iso_utc_floors_to_the_second_and_null_for_what_iso_cannot_write(
    epoch: float | None, text: str | None
) -> None:
    """`units.iso_utc` (and so `with_times`) floors to the second, never rounds into the next
    one (`date -d @1.999` shows 00:00:01); an instant ISO 8601 cannot write (NaN, infinity,
    past time_t, a year outside 0001..9999) is null text with the number kept beside it in
    `X_epoch`, never an exception and never text a parser rejects."""
    from reliactl.cli.output import iso_utc as reexported
    from reliactl.units import iso_utc, with_times

    assert reexported is iso_utc
    assert iso_utc(epoch) == text
    if text is not None:
        assert _parse(text).timestamp() == math.floor(epoch or 0)
    shown = with_times({"name": "x", "at": epoch, "value": 1}, "at")
    assert list(shown) == ["name", "at", "at_epoch", "value"]
    assert shown["at"] == text
    kept = shown["at_epoch"]
    assert kept is epoch or (kept != kept and epoch != epoch)  # the very number, NaN too


def test_a_silence_stored_past_year_9999_lists_as_null_text(configured: Any) -> None:
    """A silence an old bug stored at an instant past year 9999 (inside time_t) lists with
    `start_at` null and `start_at_epoch` the stored number, and `silence list` (the table)
    still exits 0; it was "31690708-07-05T01:46:40Z", text no ISO 8601 parser reads."""
    from reliactl.health.alertstate import add_silence
    from reliactl.health.records import RecordStore

    store = _store()
    try:
        add_silence(RecordStore(store), "x", 3600, start=1e15, now=time.time())
    finally:
        store.close()
    listed = reliactl("silence", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (silence,) = json.loads(listed.stdout)["silences"]
    assert silence["start_at"] is None and silence["start_at_epoch"] == 1e15
    assert silence["end_at"] is None and silence["end_at_epoch"] == 1e15 + 3600
    table = reliactl("silence", "list")
    assert table.returncode == 0 and "31690708" not in table.stdout, table.stdout + table.stderr
