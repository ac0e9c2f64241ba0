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


def test_a_bounded_thread_waits_for_another_threads_operation_only_its_bound(
    tmp_path: Path,
) -> None:
    """Another thread's unbounded write holds the store's one connection for its whole busy
    wait (a health check's thread): a thread within ``bounded_waits`` gives up waiting for
    that connection within its bound ("database is locked", not after the other's 30 s), and
    its ``close`` leaves the connection to the thread still using it instead of waiting."""
    store = SQLiteStateStore(tmp_path / "state.db")
    store.update("kv", "k", lambda r: {"n": 1})
    done: list[object] = []
    with write_lock_held(tmp_path / "state.db") as holder:
        waiter = threading.Thread(
            target=lambda: done.append(store.update("kv", "theirs", lambda r: {"n": 2})),
            daemon=True,
        )
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()  # in its busy wait, the connection held
        started = time.monotonic()
        with bounded_waits(store, 0.5):
            with pytest.raises(StateError, match="database is locked"):
                store.update("kv", "mine", lambda r: {"n": 3})
            with pytest.raises(StateError, match="database is locked"):
                store.get("kv", "k")
            store.close()
        assert time.monotonic() - started < HANG
        assert waiter.is_alive()
        holder.kill()
        waiter.join(HANG)
    assert done == [{"n": 2}]  # the other thread's write went through once the lock was free
    assert store.get("kv", "theirs") == {"n": 2}  # still open: the close left it
    store.close()


def test_a_record_view_bounds_every_threads_operations_and_falls_back_to_memory(
    tmp_path: Path,
) -> None:
    """``RecordStore.bounded`` (a health round, its checks in threads of their own): with
    the store locked, a write from another thread and one from the caller both give up
    within the bound in all and are done in memory instead (a debounce streak counts from
    what this process saw); ``given_up`` says why; the store keeps its record; after the
    block the view waits on the store again and its writes reach it."""
    from reliactl.health.records import RecordStore

    store = SQLiteStateStore(tmp_path / "state.db")
    store.update("kv", "streak", lambda r: {"n": 5})
    view = RecordStore(store)

    def bump(record: dict[str, object] | None) -> dict[str, object]:
        return {"n": int(str((record or {}).get("n", 0))) + 1}

    seen: list[object] = []
    with write_lock_held(tmp_path / "state.db") as holder:
        started = time.monotonic()
        with view.bounded(1.0):
            check = threading.Thread(target=lambda: seen.append(view.update("kv", "cpu", bump)))
            check.start()
            seen.append(view.update("kv", "streak", bump))
            check.join(HANG)
            assert view.get("kv", "streak") == {"n": 5}  # reads still work (WAL)
        assert time.monotonic() - started < HANG
        assert sorted(map(str, seen)) == ["{'n': 1}", "{'n': 1}"]
        assert view.given_up is not None and "database is locked" in str(view.given_up)
        threading.Timer(0.3, holder.kill).start()
        assert view.update("kv", "streak", bump) == {"n": 6}
    assert store.get("kv", "cpu") is None
    store.close()


def test_a_check_left_over_from_a_round_writes_in_memory_not_in_the_next_round(
    tmp_path: Path,
) -> None:
    """A check abandoned at its timeout in one bounded round (``RecordStore.bounded``) that
    writes only once the next round is going on, the store locked: its write is done in
    memory at once (its round is over), neither waiting on the store within the next
    round's bound nor reported as that round's ``given_up``; the store is left as it was."""
    from reliactl.health.checks import Check, CheckContext
    from reliactl.health.monitor import run_checks_in_threads
    from reliactl.health.records import RecordStore

    store = SQLiteStateStore(tmp_path / "state.db")
    store.update("kv", "k", lambda r: {"n": 1})
    records = RecordStore(store)
    go = threading.Event()
    wrote: list[object] = []

    def late(ctx: CheckContext) -> dict[str, str]:
        go.wait(HANG)
        wrote.append(ctx.records.update("kv", "late", lambda r: {"n": 1}))
        return {"status": "ok"}

    with write_lock_held(tmp_path / "state.db"):
        with records.bounded(5.0):
            report = run_checks_in_threads([Check("late", "custom", late, 0.2)], records)
        assert "timed out" in report.metrics["late"].message  # abandoned, still waiting
        with records.bounded(5.0):  # the next round, while the left-over check writes
            go.set()
            deadline = time.monotonic() + HANG
            while not wrote:
                assert time.monotonic() < deadline, "the left-over write never returned"
                time.sleep(0.02)
        assert records.given_up is None  # nothing of this round was given up
    assert wrote == [{"n": 1}]
    assert store.get("kv", "late") is None
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
