"""The SQLite store's bounded waits on a store another process holds locked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from storelock import write_lock_held

from reliactl.errors import StateError
from reliactl.state.base import RunRecord, bounded_waits
from reliactl.state.sqlite import BUSY_TIMEOUT_S, SQLiteStateStore

HANG = BUSY_TIMEOUT_S - 5  # generous, yet below one unbounded wait: detects that wait only


def test_bounded_waits_give_up_in_all_then_the_store_waits_again(tmp_path: Path) -> None:
    """Within ``bounded_waits(1)`` every write of the thread fails with "database is locked"
    once the second is spent (not 30 s each, the fast breaker path too), reads still work
    (WAL), and once the lock is released the same store writes (its busy wait restored)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    store.update("kv", "k", lambda r: {"n": 1})
    with write_lock_held(tmp_path / "state.db"):
        started = time.monotonic()
        with bounded_waits(store, 1.0):
            with pytest.raises(StateError, match="database is locked"):
                store.add_run(RunRecord(name="a", command="c", started_at=1.0))
            with pytest.raises(StateError, match="database is locked"):
                store.update("kv", "k", lambda r: {"n": 2})
            with pytest.raises(StateError, match="database is locked"):
                store.breaker_success("b", "id", 10)
            assert store.get("kv", "k") == {"n": 1}
        assert time.monotonic() - started < HANG
    store.update("kv", "k", lambda r: {"n": 3})
    assert store.get("kv", "k") == {"n": 3}
    store.close()


def test_a_bound_is_the_threads_own(tmp_path: Path) -> None:
    """Another thread's operation under no bound keeps waiting for the lock (and succeeds
    once it is released) while this thread's bounded one gave up: one connection, one
    busy_timeout, set per operation for the thread that runs it."""
    store = SQLiteStateStore(tmp_path / "state.db")
    done: list[object] = []
    with write_lock_held(tmp_path / "state.db") as holder:
        with bounded_waits(store, 0.2), pytest.raises(StateError):
            store.update("kv", "mine", lambda r: {"n": 1})
        waiter = threading.Thread(
            target=lambda: done.append(store.update("kv", "theirs", lambda r: {"n": 2}))
        )
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # still waiting: its wait is BUSY_TIMEOUT_S
        holder.kill()
        waiter.join(HANG)
    assert done == [{"n": 2}]
    store.close()


def test_only_the_time_in_store_operations_is_spent(tmp_path: Path) -> None:
    """Time outside the store (a serve round's checks before its writes) spends nothing of
    the bound: after 2.5 s of other work inside ``bounded_waits(2)``, a write still waits
    for a lock held a moment longer, and succeeds once it is released."""
    store = SQLiteStateStore(tmp_path / "state.db")
    with write_lock_held(tmp_path / "state.db") as holder, bounded_waits(store, 2.0):
        time.sleep(2.5)  # the checks of a round
        threading.Timer(0.2, holder.kill).start()
        assert store.update("kv", "k", lambda r: {"n": 1}) == {"n": 1}
    store.close()


def test_a_bound_counts_the_wait_behind_another_thread_of_the_process(tmp_path: Path) -> None:
    """A thread under ``bounded_waits(1)`` whose operation queues behind another thread's
    unbounded write (waiting out BUSY_TIMEOUT_S on another process's lock, with the store's
    one connection) gives up with "database is locked" within its bound, while the other
    still waits (before: it waited the other's 30 s, then ran: serve's requests queued
    behind one another, and its stop behind them)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    store.update("kv", "k", lambda r: {"n": 1})
    done: list[object] = []
    with write_lock_held(tmp_path / "state.db") as holder:
        waiter = threading.Thread(
            target=lambda: done.append(store.update("kv", "theirs", lambda r: {"n": 2}))
        )
        waiter.start()
        time.sleep(0.5)  # it holds the connection, in its busy wait
        with bounded_waits(store, 1.0), pytest.raises(StateError, match="database is locked"):
            store.get("kv", "k")
        assert waiter.is_alive()  # the bounded read did not wait for it
        holder.kill()
        waiter.join(HANG)
    assert done == [{"n": 2}]
    assert store.get("kv", "k") == {"n": 1}
    store.close()
