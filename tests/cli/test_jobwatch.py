"""run's job options turned into a RunWatch (reliactl/cli/_jobwatch.py), with real SQLite
history and a real ping server."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliactl.cli._jobwatch import job_settings, record_watch, watch_for_run
from reliactl.config import load
from reliactl.runner import RunOptions, run_command
from reliactl.state.base import RunRecord
from reliactl.state.sqlite import SQLiteStateStore
from tests.pingserver import PingServer

UUID = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"


def _config(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return load(path, environ={}).config


def test_job_picks_up_its_ping_and_an_unknown_job_lists_the_declared(tmp_path: Path) -> None:
    """--job NAME takes the job's ping:; a --ping flag wins; an unknown job is a ValueError
    naming the declared jobs; nothing configured means no watch (no pipes, no threads)."""
    config = _config(
        tmp_path, f"jobs:\n  backup:\n    every: 1d\n    ping:\n      url: https://h/{UUID}\n"
    )
    settings = job_settings(config, "backup")
    watch = watch_for_run(config, "backup", settings, open_store=lambda: None, environ={})
    assert watch is not None and watch.pinger.targets.url == f"https://h/{UUID}"
    flagged = watch_for_run(
        config, "backup", settings, ping="https://other/x", open_store=lambda: None, environ={}
    )
    assert flagged is not None and flagged.pinger.targets.url == "https://other/x"
    with pytest.raises(ValueError, match=r"no job named 'nope' in jobs: \(backup\)"):
        job_settings(config, "nope")
    assert watch_for_run(config, "x", None, open_store=lambda: None, environ={}) is None
    with pytest.raises(ValueError, match="unknown placeholder"):
        watch_for_run(config, "x", None, ping_start="https://h/{x}", open_store=lambda: None)


def test_the_pings_are_added_to_the_runs_history_record(tmp_path: Path) -> None:
    """record_watch merges the (redacted) ping results into the run's own history row."""
    config = _config(tmp_path, "jobs: {}\n")
    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        run_id = store.add_run(RunRecord("backup", "true", 1.0, data={"host": "h"}))
        with PingServer() as server:
            watch = watch_for_run(
                config,
                "backup",
                None,
                ping=f"{server.url}/{UUID}",
                open_store=lambda: store,
                environ={},
            )
            assert watch is not None
            watch.on_start(None)
            result = run_command(RunOptions(command=("true",)), output=watch.output())
            watch.on_finish(result)
        record_watch(watch, store, run_id)
        (record,) = store.runs("backup", 5)
    finally:
        store.close()
    assert record.data["host"] == "h"
    assert [p["event"] for p in record.data["pings"]] == ["start", "success"]
    assert UUID not in repr(record.data) and all(p["ok"] for p in record.data["pings"])
