"""Persisted breakers used by many threads of one process, on both backends (real SQLite file,
real redis-server): counts stay exact under contention, and the breaker serialises store
operations per store (only for a store that is not thread-safe), never process-wide."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reliactl.breaker import BreakerConfig, CircuitBreaker

THREADS = 8
CALLS = 25
HANG = 60.0  # only detects a hang

NEVER_OPENS = BreakerConfig(failure_threshold=100_000)


def _boom() -> None:
    raise ConnectionError("down")


def _hammer(breaker_for: Callable[[int], CircuitBreaker]) -> None:
    """THREADS threads, released together, each failing CALLS calls of its breaker."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        breaker = breaker_for(n)
        barrier.wait(timeout=HANG)
        for _ in range(CALLS):
            try:
                breaker.call(_boom)
            except ConnectionError:
                pass
            except BaseException as exc:  # anything else is a failure of the test
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HANG)
        assert not t.is_alive(), "a breaker call hung"
    assert errors == []


def test_threads_sharing_one_store_count_every_failure(make_store: Callable[..., Any]) -> None:
    """8 threads x 25 failures through one store object (SQLite: one shared connection;
    Redis: one pooled client), each thread with its own breaker: exactly 200 recorded."""
    store = make_store()
    _hammer(lambda n: CircuitBreaker("api", NEVER_OPENS, store=store))
    record = store.get("breaker", "api")
    assert (record["failures"], record["consecutive_failures"], record["calls"]) == (200, 200, 200)


def test_threads_with_a_store_each_count_every_failure(make_store: Callable[..., Any]) -> None:
    """8 threads, each with its own store object on the same file / Redis, share one breaker
    record: exactly 200 failures recorded (the stores' own atomic update, no lock of ours)."""
    stores = [make_store() for _ in range(THREADS)]
    _hammer(lambda n: CircuitBreaker("api", NEVER_OPENS, store=stores[n]))
    record = make_store().get("breaker", "api")
    assert (record["failures"], record["consecutive_failures"], record["calls"]) == (200, 200, 200)


def test_the_built_in_stores_say_they_are_thread_safe(make_store: Callable[..., Any]) -> None:
    """The SQLite and Redis stores (and the fleet wrapper) are used without a breaker lock."""
    from reliactl.state.fleet import FleetStore

    assert make_store().thread_safe is True
    assert FleetStore.thread_safe is True


class _Gated:
    """A store wrapper whose ``get`` can be held (to see who waits for whom) and which
    counts operations running at once."""

    def __init__(self, inner: Any, *, thread_safe: bool) -> None:
        self.inner = inner
        self.thread_safe = thread_safe
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.active = 0
        self.most = 0
        self._count = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.inner.location)

    def _enter(self) -> None:
        with self._count:
            self.active += 1
            self.most = max(self.most, self.active)

    def _leave(self) -> None:
        with self._count:
            self.active -= 1

    def get(self, kind: Any, key: str) -> Any:
        self._enter()
        try:
            if self.hold.is_set():
                self.hold.clear()  # hold one call only
                self.held.set()
                assert self.release.wait(HANG)
            return self.inner.get(kind, key)
        finally:
            self._leave()

    def update(self, kind: Any, key: str, fn: Any) -> Any:
        self._enter()
        try:
            return self.inner.update(kind, key, fn)
        finally:
            self._leave()

    def add_event(self, event: Any) -> None:
        self.inner.add_event(event)

    def events(self, name: str | None = None, limit: int = 50) -> Any:
        return self.inner.events(name, limit)


def _opened(breaker: CircuitBreaker) -> CircuitBreaker:
    breaker.trip(reason="down")  # an open record: admission reads it (get) every call
    return breaker


def _blocked_while(store: _Gated, then: Callable[[], None]) -> bool:
    """Hold one breaker read inside ``store``, run ``then`` in a thread: True when it
    finished while the read was still held."""
    blocked = CircuitBreaker("held", NEVER_OPENS, store=store)
    _opened(blocked)
    store.hold.set()
    holder = threading.Thread(target=lambda: blocked.state)
    holder.start()
    assert store.held.wait(HANG)
    other = threading.Thread(target=then)
    other.start()
    other.join(timeout=10.0)  # generous: the old process-wide lock blocks it until release
    finished = not other.is_alive()
    store.release.set()
    holder.join(timeout=HANG)
    other.join(timeout=HANG)
    return finished


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_slow_store_never_blocks_a_breaker_on_another_store(
    make_store: Callable[..., Any], tmp_path: Path
) -> None:
    """A breaker whose (not thread-safe) store is stuck in a read does not hold up a breaker
    of the same process on another store: the serialisation is per store (it used to be one
    lock for the whole process)."""
    from reliactl.state.sqlite import open_store

    stuck = _Gated(make_store(), thread_safe=False)
    with open_store(tmp_path / "other.db", max_rows=100) as other_store:
        other = _opened(CircuitBreaker("other", NEVER_OPENS, store=other_store))
        assert _blocked_while(stuck, lambda: other.state)


@pytest.mark.parametrize("backend", ["redis"])
def test_a_thread_safe_store_is_used_by_threads_at_once(make_store: Callable[..., Any]) -> None:
    """On a store that says it is thread-safe (Redis's pooled client), one thread's slow
    read does not hold up another thread's breaker on that same store."""
    shared = _Gated(make_store(), thread_safe=True)
    other = _opened(CircuitBreaker("other", NEVER_OPENS, store=shared))
    assert _blocked_while(shared, lambda: other.state)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_store_that_is_not_thread_safe_is_used_by_one_thread_at_a_time(
    make_store: Callable[..., Any],
) -> None:
    """A store without ``thread_safe`` still gets one operation at a time from the breakers
    of a process (per store), and counts stay exact."""
    store = _Gated(make_store(), thread_safe=False)
    _hammer(lambda n: CircuitBreaker("api", NEVER_OPENS, store=store))
    record = store.get("breaker", "api")
    assert record["failures"] == THREADS * CALLS
    assert store.most == 1
