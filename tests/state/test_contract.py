"""The StateStore contract, run unchanged against SQLite and a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliactl.state.base import BreakerEvent, RunRecord

MakeStore = Callable[..., Any]


def test_records_roundtrip_and_delete(make_store: MakeStore) -> None:
    """get/update/items/delete: a record written is read back; None from update deletes it."""
    store = make_store()
    store.update("breaker", "api", lambda r: {"state": "open"})
    store.update("alert", "disk", lambda r: {"sent": 1})
    assert store.get("breaker", "api") == {"state": "open"}
    assert store.items("breaker") == {"api": {"state": "open"}}
    assert store.get("alert", "api") is None
    assert store.update("breaker", "api", lambda r: None) is None
    assert store.get("breaker", "api") is None
    assert store.update("kv", "never", lambda r: None) is None
    assert store.delete("alert", "disk") is True
    assert store.delete("alert", "disk") is False


def test_update_sees_the_current_record(make_store: MakeStore) -> None:
    """The updater gets the stored record (None at first) and its result is returned."""
    store = make_store()
    seen: list[Any] = []

    def bump(record: Any) -> dict[str, int]:
        seen.append(record)
        return {"n": (record or {"n": 0})["n"] + 1}

    assert store.update("kv", "c", bump) == {"n": 1}
    assert store.update("kv", "c", bump) == {"n": 2}
    assert seen == [None, {"n": 1}]


def test_keys_with_braces_and_odd_characters_stay_apart(make_store: MakeStore) -> None:
    """Keys holding braces, colons, globs and percent signs round-trip and never collide."""
    store = make_store()
    keys = ["a{b}c", "a%7Bb%7Dc", "x:*?[y]", "plain", "sink:check.name-1", "ünï"]
    for index, key in enumerate(keys):
        store.update("alert", key, lambda r, i=index: {"i": i})
    assert store.items("alert") == {key: {"i": i} for i, key in enumerate(keys)}
    assert store.items("kv") == {}
    for index, key in enumerate(keys):
        assert store.get("alert", key) == {"i": index}


def test_state_outlives_the_store_object(make_store: MakeStore) -> None:
    """A record written through one store object is read by the next one opened."""
    first = make_store()
    first.update("breaker", "api", lambda r: {"failures": 3})
    first.close()
    assert make_store().get("breaker", "api") == {"failures": 3}


def test_events_and_runs_are_history(make_store: MakeStore) -> None:
    """Events and runs come back newest first, per name; finish_run replaces a run."""
    store = make_store()
    store.add_event(BreakerEvent("api", "closed", "open", "5 failures", 100.0))
    store.add_event(BreakerEvent("db", "closed", "open", "x", 101.0))
    assert [e.name for e in store.events()] == ["db", "api"]
    assert store.events("api")[0].reason == "5 failures"
    assert store.events("api")[0].at == 100.0
    run_id = store.add_run(RunRecord("job", "./job.sh", started_at=10.0))
    store.finish_run(
        run_id,
        RunRecord("job", "./job.sh", 10.0, 12.0, 2, 0, "success", {"lock_wait": 0.1}),
    )
    (run,) = store.runs("job")
    assert (run.id, run.attempts, run.exit_code, run.outcome) == (run_id, 2, 0, "success")
    assert run.data["lock_wait"] == 0.1
    assert store.runs("other") == []


def test_runs_filtered_by_name_reach_past_a_page(make_store: MakeStore) -> None:
    """runs(name) finds a name's runs even when many newer runs of other names came later."""
    store = make_store()
    store.add_run(RunRecord("rare", "x", 1.0, 2.0, 1, 0, "success"))
    for i in range(700):
        store.add_run(RunRecord("busy", "x", float(i), float(i), 1, 0, "success"))
    assert [r.name for r in store.runs("rare")] == ["rare"]
    assert len(store.runs("busy", limit=600)) == 600


def test_history_is_bounded_by_max_rows(make_store: MakeStore) -> None:
    """Each history keeps at most max_rows entries, the newest ones."""
    store = make_store(max_rows=10)
    for i in range(25):
        store.add_run(RunRecord("job", "x", float(i), float(i), 1, 0, "success"))
        store.add_event(BreakerEvent("b", "closed", "open", str(i), float(i)))
    assert len(store.runs(limit=100)) == 10
    assert len(store.events(limit=100)) == 10
    assert store.runs(limit=1)[0].started_at == 24.0
    assert store.events(limit=1)[0].reason == "24"


def test_prune_removes_history_past_retention(make_store: MakeStore) -> None:
    """prune drops finished runs and events older than retention, never a running run."""
    store = make_store()
    store.add_run(RunRecord("old", "x", 10.0, 11.0, 1, 0, "success"))
    store.add_run(RunRecord("new", "x", 990.0, 995.0, 1, 0, "success"))
    store.add_run(RunRecord("running", "x", 10.0))
    store.add_event(BreakerEvent("b", "closed", "open", "old", 5.0))
    report = store.prune(now=1000.0, retention=100.0, max_rows=1000)
    assert report.runs_removed == 1 and report.events_removed == 1
    assert sorted(r.name for r in store.runs()) == ["new", "running"]
    assert store.check() == []


def test_prune_removes_stale_records_but_never_breakers(make_store: MakeStore) -> None:
    """Records untouched for longer than retention go (alert, rate, kv); breakers stay."""
    store = make_store()
    for kind in ("breaker", "alert", "rate", "kv"):
        store.update(kind, "x", lambda r: {"v": 1})
    import time

    report = store.prune(now=time.time() + 10_000, retention=100.0, max_rows=1000)
    assert report.records_removed == 3
    assert store.get("breaker", "x") == {"v": 1}
    assert store.get("kv", "x") is None


def test_prune_forgets_idle_closed_breakers_but_never_open_or_configured_ones(
    make_store: MakeStore,
) -> None:
    """With keep_on_prune, a closed breaker unused past retention goes; open, half-open and
    configured ones stay, whatever their age, and a recently used one stays (issue 21:
    breaker records were never pruned, so `breaker list` grew without end)."""
    import time

    from reliactl.breaker import keep_on_prune
    from reliactl.config import BreakerSettings, CircuitBreakerConfig, Config

    store = make_store()
    for name, state in [
        ("idle", "closed"),
        ("down", "open"),
        ("probing", "half_open"),
        ("configured", "closed"),
    ]:
        store.update("breaker", name, lambda r, state=state: {"state": state})
    config = Config(
        circuit_breaker=CircuitBreakerConfig(breakers={"configured": BreakerSettings()})
    )
    report = store.prune(
        now=time.time() + 10_000, retention=100.0, max_rows=1000, keep_breaker=keep_on_prune(config)
    )
    assert report.records_removed == 1
    assert sorted(store.items("breaker")) == ["configured", "down", "probing"]
    store.update("breaker", "fresh", lambda r: {"state": "closed"})
    store.prune(now=time.time(), retention=100.0, max_rows=1000, keep_breaker=keep_on_prune(None))
    assert store.get("breaker", "fresh") == {"state": "closed"}


COUNTER = """
import os, sys
from reliactl.state import open_state
store = open_state()
for _ in range(int(sys.argv[1])):
    store.update("kv", "counter", lambda r: {"n": (r or {"n": 0})["n"] + 1})
store.close()
"""


def test_update_is_atomic_across_8_processes(state_env: dict[str, str], tmp_path: Path) -> None:
    """8 processes x 100 increments of one counter through open_state end at exactly 800."""
    env = {**os.environ, **state_env}
    procs = [
        subprocess.Popen([sys.executable, "-c", COUNTER, "100"], env=env, cwd=tmp_path)
        for _ in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    from reliactl.config import load
    from reliactl.state import open_state

    store = open_state(load(environ=env).config)
    try:
        assert store.get("kv", "counter") == {"n": 800}
    finally:
        store.close()
