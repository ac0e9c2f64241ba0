from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl.errors import StateError
from reliactl.state.base import BreakerEvent, RunRecord
from reliactl.state.sqlite import MIGRATIONS, SCHEMA_VERSION, open_store

COUNTER_SCRIPT = """
import sys
from reliactl.state.sqlite import open_store
store = open_store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.update("kv", "counter", lambda r: {"n": (r or {"n": 0})["n"] + 1})
store.close()
"""


def test_update_is_atomic_across_8_processes(tmp_path: Path) -> None:
    """8 processes x 200 increments of one counter end at exactly 1600."""
    db = tmp_path / "state.db"
    open_store(db).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", COUNTER_SCRIPT, str(db), "200"]) for _ in range(8)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    with open_store(db) as store:
        assert store.get("kv", "counter") == {"n": 1600}


def test_records_roundtrip_and_delete(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as store:
        store.update("breaker", "api", lambda r: {"state": "open"})
        store.update("alert", "disk", lambda r: {"sent": 1})
        assert store.get("breaker", "api") == {"state": "open"}
        assert store.items("breaker") == {"api": {"state": "open"}}
        assert store.get("alert", "api") is None
        assert store.update("breaker", "api", lambda r: None) is None
        assert store.get("breaker", "api") is None
        assert store.delete("alert", "disk") is True
        assert store.delete("alert", "disk") is False


def test_state_outlives_the_process(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with open_store(db) as store:
        store.update("breaker", "api", lambda r: {"failures": 3})
    with open_store(db) as store:
        assert store.get("breaker", "api") == {"failures": 3}


def test_directories_are_created_0700(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "state.db"
    open_store(db).close()
    assert (db.parent.stat().st_mode & 0o777) == 0o700
    assert (db.stat().st_mode & 0o777) == 0o600


def test_events_and_runs_are_history(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as store:
        store.add_event(BreakerEvent("api", "closed", "open", "5 failures", 100.0))
        store.add_event(BreakerEvent("db", "closed", "open", "x", 101.0))
        assert [e.name for e in store.events()] == ["db", "api"]
        assert store.events("api")[0].reason == "5 failures"
        run_id = store.add_run(RunRecord("job", "./job.sh", started_at=10.0))
        store.finish_run(
            run_id,
            RunRecord("job", "./job.sh", 10.0, 12.0, 2, 0, "success", {"lock_wait": 0.1}),
        )
        (run,) = store.runs("job")
        assert (run.id, run.attempts, run.exit_code, run.outcome) == (run_id, 2, 0, "success")
        assert run.data == {"lock_wait": 0.1}


def test_history_is_bounded_by_max_rows(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db", max_rows=10) as store:
        for i in range(25):
            store.add_run(RunRecord("job", "x", float(i), float(i), 1, 0, "success"))
            store.add_event(BreakerEvent("b", "closed", "open", str(i), float(i)))
        assert len(store.runs(limit=100)) == 10
        assert len(store.events(limit=100)) == 10
        assert store.runs(limit=1)[0].started_at == 24.0


def test_prune_removes_history_past_retention(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as store:
        store.add_run(RunRecord("old", "x", 10.0, 11.0, 1, 0, "success"))
        store.add_run(RunRecord("new", "x", 990.0, 995.0, 1, 0, "success"))
        store.add_run(RunRecord("running", "x", 10.0))
        store.add_event(BreakerEvent("b", "closed", "open", "old", 5.0))
        report = store.prune(now=1000.0, retention=100.0, max_rows=1000)
        assert report.runs_removed == 1 and report.events_removed == 1
        assert sorted(r.name for r in store.runs()) == ["new", "running"]
        assert store.check() == []


def _garble_pages(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    p.write_bytes(bytes(data))


CORRUPTIONS = {
    "garbled_pages": _garble_pages,
    "nul_bytes": lambda p: p.write_bytes(bytes(len(p.read_bytes()))),
    "garbled_header": lambda p: p.write_bytes(os.urandom(100) + p.read_bytes()[100:]),
    "zero_length": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]),
    "header_only": lambda p: p.write_bytes(p.read_bytes()[:100]),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_file_is_moved_aside_and_a_fresh_store_used(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "state.db"
    with open_store(db) as store:
        for i in range(200):
            store.update("kv", f"k{i}", lambda r: {"pad": "x" * 500})
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    CORRUPTIONS[kind](db)
    warnings: list[str] = []
    with open_store(db, warn=warnings.append) as store:
        store.update("kv", "after", lambda r: {"ok": True})
        assert store.get("kv", "after") == {"ok": True}
        assert store.check() == []
    if kind == "zero_length":
        assert warnings == []  # an empty file is simply a new database
    else:
        assert len(warnings) == 1 and ".corrupt-" in warnings[0]
        assert len(list(tmp_path.glob("state.db.corrupt-*"))) >= 1


def test_another_programs_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """Issue 13: state.path naming another program's SQLite database never renames it."""
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    conn.execute("INSERT INTO customers VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StateError, match=r"another program.*left untouched"):
        open_store(db)
    assert db.read_bytes() == before and not list(tmp_path.glob("state.db.corrupt-*"))


def test_symlink_at_the_path_is_refused_and_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    db = tmp_path / "state.db"
    db.symlink_to(victim)
    with pytest.raises(StateError, match="symbolic link"):
        open_store(db)
    assert victim.read_text() == "precious"


def test_fifo_at_the_path_is_refused_without_blocking(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    os.mkfifo(db)
    with pytest.raises(StateError, match="not a regular file"):
        open_store(db)


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    with pytest.raises(StateError, match="cannot create the state directory"):
        open_store(tmp_path / "blocker" / "state.db")


def test_database_at_an_older_schema_migrates(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO runs (name, command, started_at, ended_at, attempts, exit_code, outcome)"
        " VALUES ('old-job', 'x', 1, 2, 1, 0, 'success')"
    )
    conn.commit()
    conn.close()
    with open_store(db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        (run,) = store.runs()
        assert run.name == "old-job" and run.data == {}


def test_database_from_a_newer_reliactl_is_not_destroyed(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with open_store(db) as store:
        store.conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StateError, match="newer"):
        open_store(db)
    assert db.exists() and not list(tmp_path.glob("*.corrupt-*"))


OPEN_SCRIPT = """
import sys
from reliactl.state.sqlite import open_store
store = open_store(sys.argv[1])
store.update("kv", "opened", lambda r: {"n": (r or {"n": 0})["n"] + 1})
store.close()
"""


def test_processes_creating_a_fresh_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Regression: a fresh database switched to WAL by racing processes said 'locked'."""
    for round_ in range(4):
        db = tmp_path / f"round{round_}" / "state.db"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_SCRIPT, str(db)], stderr=subprocess.PIPE, text=True
            )
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        with open_store(db) as store:
            assert store.get("kv", "opened") == {"n": 6}


def test_threads_sharing_one_store_never_lose_an_update(tmp_path: Path) -> None:
    """One connection serves all threads: transactions must not interleave."""
    import threading

    with open_store(tmp_path / "s.db") as store:

        def work() -> None:
            for _ in range(200):
                store.update("kv", "n", lambda r: {"n": (r or {"n": 0})["n"] + 1})
                store.add_event(BreakerEvent("b", "closed", "open", "x", 1.0))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("kv", "n") == {"n": 1200}
        assert len(store.events(limit=5000)) == 1200


def test_a_store_caught_half_written_by_its_creator_is_opened_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torn first page (header prefix, then zeros) seen while another process creates the
    store is looked at again; once the creator's write is whole, the store opens (it was
    refused as 'not a reliactl state store' when six processes raced under load)."""
    from reliactl.state import sqlite as sqlite_mod

    made = tmp_path / "made.db"
    with open_store(made) as store:
        store.update("kv", "k", lambda _r: {"v": 1})
    whole = made.read_bytes()
    db = tmp_path / "racing" / "state.db"
    db.parent.mkdir(mode=0o700)
    db.write_bytes(whole[:9] + bytes(4096 - 9))  # "SQLite fo" and the rest not yet copied
    db.chmod(0o600)
    pauses: list[int] = []

    def creator_finishes() -> None:
        pauses.append(1)
        db.write_bytes(whole)

    monkeypatch.setattr(sqlite_mod, "_settle_pause", creator_finishes)
    with open_store(db) as store:
        assert store.get("kv", "k") == {"v": 1}
    assert pauses == [1]


def test_a_file_that_stays_foreign_is_still_refused_after_looking_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking again does not weaken the refusal: a file that is not SQLite on every look is
    left untouched and named in one error."""
    from reliactl.state import sqlite as sqlite_mod

    pauses: list[int] = []
    monkeypatch.setattr(sqlite_mod, "_settle_pause", lambda: pauses.append(1))
    db = tmp_path / "state.db"
    db.write_bytes(b"my notes, not a database\n" * 10)
    db.chmod(0o600)
    with pytest.raises(StateError, match="not a reliactl state store"):
        open_store(db)
    assert db.read_bytes() == b"my notes, not a database\n" * 10
    assert len(pauses) == sqlite_mod.IDENTIFY_LOOKS - 1
