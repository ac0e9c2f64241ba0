"""The SQLite store's generic ``update``: which statements it writes, and that every outcome
of the updater (new record, changed record, unreadable record, delete) still lands."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reliactl.state.sqlite import SQLiteStateStore, open_store


def _writes(store: SQLiteStateStore) -> list[str]:
    """The statements the store's connection runs from now on, upper-cased (writes only)."""
    seen: list[str] = []

    def trace(statement: str) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
            seen.append(statement.strip().upper())

    store.conn.set_trace_callback(trace)
    return seen


def test_update_of_an_existing_record_rewrites_it_in_place(tmp_path: Path) -> None:
    """Changing an existing record issues one UPDATE of its row, never INSERT OR REPLACE
    (which on a WITHOUT ROWID table deletes the row and inserts it again), and the record
    reads back changed."""
    with open_store(tmp_path / "state.db") as store:
        store.update("kv", "k", lambda r: {"n": 1})
        writes = _writes(store)
        assert store.update("kv", "k", lambda r: {"n": (r or {})["n"] + 1}) == {"n": 2}
        assert len(writes) == 1, writes
        assert writes[0].startswith("UPDATE RECORDS SET DATA"), writes
        assert store.get("kv", "k") == {"n": 2}


def test_update_inserts_a_new_record_and_deletes_on_none(tmp_path: Path) -> None:
    """A record that does not exist is inserted; an updater returning None deletes an
    existing record and writes nothing for an absent one; other keys are untouched."""
    with open_store(tmp_path / "state.db") as store:
        store.update("kv", "other", lambda r: {"keep": True})
        writes = _writes(store)
        assert store.update("kv", "k", lambda r: {"new": r is None}) == {"new": True}
        assert len(writes) == 1 and writes[0].startswith("INSERT"), writes
        writes.clear()
        assert store.update("kv", "k", lambda r: None) is None
        assert len(writes) == 1 and writes[0].startswith("DELETE"), writes
        writes.clear()
        assert store.update("kv", "absent", lambda r: None) is None
        assert writes == []
        assert store.get("kv", "k") is None
        assert store.items("kv") == {"other": {"keep": True}}


def test_update_replaces_an_unreadable_record_and_reports_it(tmp_path: Path) -> None:
    """A stored record that is not JSON reaches the updater as None (reported through
    ``warn``) and is overwritten in place by what the updater returns."""
    db = tmp_path / "state.db"
    warnings: list[str] = []
    store = SQLiteStateStore(db, warn=warnings.append)
    try:
        store.update("kv", "bad", lambda r: {"n": 0})
        raw = sqlite3.connect(db)
        with raw:
            raw.execute("UPDATE records SET data = 'not json{' WHERE key = 'bad'")
        raw.close()
        seen: list[object] = []

        def fn(record: object) -> dict[str, int]:
            seen.append(record)
            return {"n": 5}

        assert store.update("kv", "bad", fn) == {"n": 5}
        assert seen == [None]
        assert any("skipped unreadable kv record 'bad'" in w for w in warnings), warnings
        assert store.get("kv", "bad") == {"n": 5}
    finally:
        store.close()


def test_update_of_a_record_larger_than_a_page_stays_exact(tmp_path: Path) -> None:
    """A record past a page (overflow pages) is rewritten in place as many times as it is
    updated and reads back whole: nothing of the old text survives a shorter write."""
    with open_store(tmp_path / "state.db") as store:
        store.update("kv", "big", lambda r: {"n": 0, "pad": "x" * 20_000})
        for _ in range(50):
            store.update("kv", "big", lambda r: {"n": (r or {})["n"] + 1, "pad": (r or {})["pad"]})
        assert store.update("kv", "big", lambda r: {"n": (r or {})["n"]}) == {"n": 50}
        assert store.get("kv", "big") == {"n": 50}


def test_update_that_raises_writes_nothing_and_keeps_the_store_usable(tmp_path: Path) -> None:
    """An updater that raises rolls the transaction back: the record is unchanged and the
    next update works (the store is not left inside a transaction)."""
    with open_store(tmp_path / "state.db") as store:
        store.update("kv", "k", lambda r: {"n": 1})

        def boom(record: object) -> dict[str, int]:
            raise RuntimeError("updater failed")

        try:
            store.update("kv", "k", boom)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the updater's error was swallowed")
        assert store.get("kv", "k") == {"n": 1}
        assert store.update("kv", "k", lambda r: {"n": 2}) == {"n": 2}
        assert not store.conn.in_transaction
