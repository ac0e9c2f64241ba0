"""What a cron `health --json` / `run -- true` with a configuration file no longer imports
(issue 21 item 4, sixth session `trims`): `sqlite3` with `datetime` (the store speaks to the C
module `_sqlite3`), `signal`'s enums (`health` speaks to `_signal`) and the alert state when
the store holds no alert record. Pinned on real interpreters, with what each still does."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from importtime import cron_env, start_reliactl
from test_run_core_imports import TYPICAL_CONFIG

NOT_ON_CRON_PATH = ("sqlite3", "sqlite3.dbapi2", "datetime", "_datetime")


# The typical file without its command check: a program's check imports subprocess, and with
# it signal, as before.
NO_PROGRAM = "".join(
    line for line in TYPICAL_CONFIG.splitlines(True) if "kind: command" not in line
)


def _with_file(tmp_path: Path, text: str = TYPICAL_CONFIG) -> dict[str, str]:
    (tmp_path / "reliactl.yaml").write_text(text.format(home=tmp_path))
    (tmp_path / "heartbeat").write_text("")
    return cron_env(tmp_path)


@pytest.mark.parametrize("argv", [["run", "--", "true"], ["health", "--json"]], ids=" ".join)
def test_cron_starts_import_neither_sqlite3_nor_datetime_and_still_keep_state(
    argv: list[str], tmp_path: Path
) -> None:
    """`run -- true` and `health --json` with a typical file import neither the `sqlite3`
    package nor (at the second start: the first parses the file with PyYAML and cronsim,
    which import it) `datetime` (~1.5-2 ms: the package's default date adapters, which the
    store never uses), and `health` not `signal` (its
    enums, ~0.5 ms; with no command check, whose subprocess imports it) nor
    `reliactl.health.alertstate` while the store holds no alert record;
    the state is still kept: the run's history row and the checks' records are in the
    SQLite file, read back here with the `sqlite3` package."""
    env = _with_file(tmp_path, NO_PROGRAM)
    for start in ("first", "second"):
        out, started = start_reliactl(argv, env=env, cwd=tmp_path)
        assert out.returncode in ((0,) if argv[0] == "run" else (0, 1, 2, 3)), out.stderr[-2000:]
        modules = set(started)
        assert "reliactl.state.sqlite" in modules and "_sqlite3" in modules, start
        # PyYAML and cronsim import datetime themselves: the first start parses the file
        unwanted = set(NOT_ON_CRON_PATH) - (
            {"datetime", "_datetime"} if start == "first" else set()
        )
        assert not unwanted & modules, (start, unwanted & modules)
        if argv[0] == "health":
            assert not {"signal", "reliactl.health.alertstate"} & modules, start
            names = {c["name"] for c in json.loads(out.stdout)["checks"]}
            assert {"heartbeat", "disk_usage:/", "job:backup", "job:report"} <= names, names
    stores = list(tmp_path.rglob("*.db")) + list(tmp_path.rglob("*.sqlite*"))
    assert stores, sorted(str(p) for p in tmp_path.rglob("*"))
    conn = sqlite3.connect(stores[0])
    try:
        kinds = {row[0] for row in conn.execute("SELECT DISTINCT kind FROM records")}
        if argv[0] == "run":
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        else:
            assert "kv" in kinds, kinds  # the jobs' and the debounce records
    finally:
        conn.close()


def test_a_silence_is_still_shown_and_then_the_alert_state_is_read(tmp_path: Path) -> None:
    """With a silence in the store (an alert record), `health --json` imports the alert state
    and shows the silence beside its check, as before; the check without one shows none."""
    env = _with_file(tmp_path)
    added = subprocess.run(
        [sys.executable, "-m", "reliactl", "silence", "add", "heartbeat", "--for", "2h",
         "--reason", "maintenance"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    out, started = start_reliactl(["health", "--json"], env=env, cwd=tmp_path)
    assert out.returncode in (0, 1, 2, 3), out.stderr[-2000:]
    assert "reliactl.health.alertstate" in started
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["heartbeat"]["silenced"]["reason"] == "maintenance"
    assert checks["truth"]["silenced"] is None


STORE_THEN_SQLITE3 = """
import datetime, sys, tempfile, os
import reliactl.state.sqlite as mod
assert "sqlite3" not in sys.modules and "datetime" in sys.modules  # this script's own import
d = tempfile.mkdtemp()
store = mod.open_store(os.path.join(d, "state.db"))
store.update("kv", "k", lambda rec: {"n": 1})
import sqlite3
assert sqlite3.connect is mod.sqlite3.connect and sqlite3.Error is mod.sqlite3.Error
assert sqlite3.OperationalError is mod.sqlite3.OperationalError
conn = sqlite3.connect(":memory:")
print(conn.execute("SELECT ?", (datetime.date(2026, 12, 1),)).fetchone()[0])
print(store.get("kv", "k"))
"""


def test_the_store_uses_sqlite3s_own_objects_and_a_later_import_of_sqlite3_is_whole() -> None:
    """The store's module is `_sqlite3` in a fresh interpreter; an application importing
    `sqlite3` after it gets the very same connect and exception classes (an `except
    sqlite3.OperationalError` catches the store's), and the package's default date adapter
    works as before; the store keeps working. A process that imported `sqlite3` first hands
    the store that package."""
    out = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", STORE_THEN_SQLITE3],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["2026-12-01", "{'n': 1}"]
    first = subprocess.run(
        [sys.executable, "-c",
         "import sqlite3, reliactl.state.sqlite as m; print(m.sqlite3 is sqlite3)"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert first.stdout.strip() == "True"
