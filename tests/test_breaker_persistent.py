"""Breakers persisted in a real SQLite state store, in one process, on a FakeClock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl.breaker import (
    BreakerConfig,
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitState,
    get_persistent_breaker,
    known_breaker_names,
    list_breakers,
)
from reliactl.config import load
from reliactl.errors import CircuitOpenError
from reliactl.state.sqlite import SQLiteStateStore, open_store
from reliactl.testing import FakeClock

CFG = BreakerConfig(failure_threshold=3, recovery_timeout=10.0)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(db: Path, clock: FakeClock, cfg: BreakerConfig = CFG, name: str = "svc"):
    return CircuitBreaker(name, cfg, store=open_store(db), clock=clock)


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            b.call(boom)


def test_two_breaker_objects_on_two_connections_share_state(db: Path, clock: FakeClock) -> None:
    first, second = breaker(db, clock), breaker(db, clock)
    fail(first, 2)
    fail(second)
    assert first.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        second.call(ok)
    assert first.snapshot().failures == 3 and first.snapshot().rejections == 1


def test_constructing_a_breaker_never_resets_the_stored_one(db: Path, clock: FakeClock) -> None:
    fail(breaker(db, clock), 3)
    again = breaker(db, clock)  # a new process's breaker, same name
    assert again.state is CircuitState.OPEN
    assert again.snapshot().failures == 3
    manager = CircuitBreakerManager()
    from_manager = manager.get_breaker("svc", CFG, store=open_store(db))
    assert from_manager.state is CircuitState.OPEN


def test_five_failing_runs_in_a_row_open_it_for_the_sixth(db: Path, clock: FakeClock) -> None:
    cfg = BreakerConfig(failure_threshold=5)
    for _ in range(5):  # each "cron run" builds its own store and breaker
        b = breaker(db, clock, cfg)
        b.admit().failure("exit 1")
        b.store.close()  # type: ignore[union-attr]
    with pytest.raises(CircuitOpenError):
        breaker(db, clock, cfg).admit()


def test_transitions_are_recorded_in_the_store(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock)
    fail(b, 3)
    clock.advance(10)
    b.call(ok)
    events = open_store(db).events("svc")
    assert [(e.from_state, e.to_state) for e in events] == [
        ("half_open", "closed"),
        ("open", "half_open"),
        ("closed", "open"),
    ]
    assert events[-1].reason.startswith("3 consecutive failures (last: Boom: down)")
    assert events[-1].at == 1_700_000_000.0


def test_opened_at_in_the_future_recovers_within_the_timeout(db: Path, clock: FakeClock) -> None:
    """The wall clock is set back a day: the breaker is open one period more, not a day."""
    b = breaker(db, clock)
    fail(b, 3)
    clock.set_wall(clock.time() - 86400)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)  # the jump is noticed here: opened_at is clamped to now
    assert info.value.retry_after == pytest.approx(10.0)
    assert b.snapshot().retry_after == pytest.approx(10.0)
    clock.advance(10)
    assert b.call(ok) == "ok"
    assert b.state is CircuitState.CLOSED


def test_list_never_shows_more_than_the_period_after_a_jump(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock)
    fail(b, 3)
    clock.set_wall(clock.time() - 86400)
    (snap,) = list_breakers(open_store(db), clock=clock)
    assert snap.retry_after is not None and snap.retry_after <= 10.0


def test_trial_reservation_holds_expiry_pid_and_host(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=1, trial_timeout=30))
    fail(b)
    clock.advance(60)
    adm = b.admit()
    record = open_store(db).get("breaker", "svc")
    assert record is not None
    (trial,) = record["trials"].values()
    assert trial["pid"] == os.getpid()
    assert trial["expires"] == clock.time() + 30
    assert trial["host"]
    adm.success()
    assert open_store(db).get("breaker", "svc")["trials"] == {}  # type: ignore[index]


def test_a_trial_of_a_dead_process_is_reclaimed_at_once(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=1, trial_timeout=3600))
    fail(b)
    clock.advance(60)
    b.admit()  # reserved by this process...
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)

    def hand_over(record):  # ...now owned by a process that has exited
        for trial in record["trials"].values():
            trial["pid"] = dead_pid
        return record

    b.store.update("breaker", "svc", hand_over)  # type: ignore[union-attr]
    assert b.admit().trial  # not rejected for an hour


def test_a_trial_of_a_live_process_expires_after_trial_timeout(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=1, trial_timeout=30))
    fail(b)
    clock.advance(60)
    b.admit()  # this process is alive and never reports
    with pytest.raises(CircuitOpenError) as info:
        b.admit()
    assert info.value.retry_after == pytest.approx(30)
    clock.advance(30)
    assert b.admit().trial


def test_a_reservation_in_the_future_is_clamped(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=1, trial_timeout=30))
    fail(b)
    clock.advance(60)
    b.admit()
    clock.set_wall(clock.time() - 86400)  # the reservation now expires "a day from now"
    with pytest.raises(CircuitOpenError):
        b.admit()
    clock.advance(30)
    assert b.admit().trial


def test_growing_open_time_is_shared(db: Path, clock: FakeClock) -> None:
    cfg = BreakerConfig(failure_threshold=1, recovery_timeout=10, recovery_multiplier=3)
    fail(breaker(db, clock, cfg))
    clock.advance(10)
    fail(breaker(db, clock, cfg))  # a failed trial in "another process"
    snap = breaker(db, clock, cfg).snapshot()
    assert snap.open_for == 30 and snap.state is CircuitState.OPEN


def test_an_unreadable_record_starts_closed(db: Path, clock: FakeClock) -> None:
    store = open_store(db)
    store.update("breaker", "svc", lambda _: {"state": "bogus", "calls": "many", "trials": 3})
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    assert b.call(ok) == "ok"
    assert b.snapshot().state is CircuitState.CLOSED


def test_get_persistent_breaker_uses_settings_for_the_name(
    tmp_path: Path, db: Path, clock: FakeClock
) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "circuit_breaker:\n  failure_threshold: 4\n  breakers:\n"
        "    job:\n      failure_threshold: 2\n      slow_call_threshold: 5s\n"
    )
    config = load(conf, environ={}).config
    store = open_store(db)
    job = get_persistent_breaker("job", config, store, clock=clock)
    other = get_persistent_breaker("other", config, store)
    assert job.config.failure_threshold == 2 and job.config.slow_call_threshold == 5.0
    assert other.config.failure_threshold == 4
    assert job.persistent and isinstance(job.store, SQLiteStateStore)
    assert known_breaker_names(store, config) == ["job"]  # configured, never used
    job.admit().failure("exit 2")
    other.admit().success()
    assert known_breaker_names(store, config) == ["job", "other"]


def test_admit_gate_for_a_whole_command(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=2, recovery_timeout=10))
    for code in (1, 2):
        adm = b.admit()
        assert not adm.trial
        adm.failure(f"exit {code}")
        adm.failure("reported twice")  # idempotent
    snap = b.snapshot()
    assert snap.failures == 2 and snap.last_failure == "exit 2"
    with pytest.raises(CircuitOpenError):
        b.admit()
    clock.advance(10)
    trial = b.admit(trial_timeout=3600)
    assert trial.trial
    record = b.store.get("breaker", "svc")  # type: ignore[union-attr]
    assert next(iter(record["trials"].values()))["expires"] == clock.time() + 3600  # type: ignore[index]
    trial.success()
    assert b.state is CircuitState.CLOSED


def test_operator_actions_are_persisted(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock)
    breaker(db, clock).trip(60)
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == 60
    breaker(db, clock).close()
    assert b.call(ok) == "ok"
    fail(b, 2)
    breaker(db, clock).reset()
    snap = b.snapshot()
    assert snap.failures == 0 and snap.consecutive_failures == 0
    assert open_store(db).events("svc")[0].reason == "reset by hand"


def test_health_status_of_persisted_breakers(db: Path, clock: FakeClock) -> None:
    manager = CircuitBreakerManager()
    manager.use_store(open_store(db))
    b = manager.get_breaker("svc", BreakerConfig(failure_threshold=1))
    assert b.persistent
    fail(b)
    status = manager.get_health_status()
    assert status["open_breakers"] == 1
    assert status["breakers"]["svc"]["persistent"] is True


def test_an_open_record_without_its_open_time_still_recovers(db: Path, clock: FakeClock) -> None:
    store = open_store(db)
    store.update("breaker", "svc", lambda _: {"state": "open", "opened_at": clock.time()})
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    clock.advance(10)
    assert b.call(ok) == "ok"


def test_a_store_failure_after_the_call_never_masks_its_result(db: Path, clock: FakeClock) -> None:
    """A store that cannot record a call's outcome (its full update, or the one-statement
    count of a closed breaker's success or failure) is logged: the call's result or exception
    stands."""
    from reliactl.errors import StateError

    class Failing(SQLiteStateStore):
        broken = False

        def update(self, kind, key, fn):  # type: ignore[no-untyped-def]
            if self.broken:
                raise StateError("disk full")
            return super().update(kind, key, fn)

        def breaker_success(self, key: str, config_id: str, window_size: int) -> bool:
            if self.broken:
                raise StateError("disk full")
            return super().breaker_success(key, config_id, window_size)

        def breaker_failure(self, key, config_id, *failure):  # type: ignore[no-untyped-def]
            if self.broken:
                raise StateError("disk full")
            return super().breaker_failure(key, config_id, *failure)

    store = Failing(db)
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    b.call(ok)
    store.broken = True
    assert b.call(ok) == "ok"
    with pytest.raises(Boom):
        b.call(boom)
    adm = b.admit()  # closed: a read only
    adm.failure("exit 1")  # logged, not raised
    store.broken = False
    assert b.snapshot().calls == 1


def test_a_long_trial_keeps_its_own_timeout_when_others_call(db: Path, clock: FakeClock) -> None:
    """A command gated with admit(trial_timeout=1h) is not cut short by callers using 30s."""
    cfg = BreakerConfig(failure_threshold=1, trial_timeout=30)
    b = breaker(db, clock, cfg)
    fail(b)
    clock.advance(60)
    long_trial = b.admit(trial_timeout=3600)
    other = breaker(db, clock, cfg)
    for _ in range(3):
        clock.advance(40)
        with pytest.raises(CircuitOpenError):
            other.admit()
    long_trial.success()
    assert other.call(ok) == "ok"


def test_persisted_calls_from_two_threads_run_concurrently(db: Path) -> None:
    import threading

    b = CircuitBreaker("svc", CFG, store=open_store(db))
    barrier = threading.Barrier(2, timeout=10)
    met: list[int] = []
    threads = [
        threading.Thread(target=b.call, args=(lambda: met.append(barrier.wait()),))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(met) == [0, 1]
    assert b.snapshot().successes == 2


def test_persistent_true_uses_the_configured_state_store(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "configured" / "state.db"
    monkeypatch.setenv("RELIACTL_STATE__PATH", str(target))
    manager = CircuitBreakerManager()
    b = manager.get_breaker("cfg", BreakerConfig(failure_threshold=1), persistent=True)
    fail(b)
    assert open_store(target).get("breaker", "cfg")["state"] == "open"  # type: ignore[index]
    assert not manager.get_breaker("mem", persistent=False).persistent


def test_snapshot_does_not_count_a_dead_owners_trial(db: Path, clock: FakeClock) -> None:
    b = breaker(db, clock, BreakerConfig(failure_threshold=1, trial_timeout=3600))
    fail(b)
    clock.advance(60)
    b.admit()
    assert b.snapshot().trials_in_flight == 1
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )

    def hand_over(record):
        for trial in record["trials"].values():
            trial["pid"] = int(dead.stdout)
        return record

    b.store.update("breaker", "svc", hand_over)  # type: ignore[union-attr]
    assert b.snapshot().trials_in_flight == 0
    assert b.store.get("breaker", "svc")["trials"]  # type: ignore[index,union-attr]  # read-only


def _statements(store: SQLiteStateStore) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    return seen


def test_a_closed_breakers_success_is_one_read_and_one_statement(
    db: Path, clock: FakeClock
) -> None:
    """Issue 21: once its record is written, a success through a closed persisted breaker is
    one SELECT of the state (no record decoded) and one UPDATE that counts it in SQL (no
    BEGIN ... COMMIT, no rewrite of the record from Python); the counters and the window are
    exactly those of the full path."""
    store = open_store(db)
    b = CircuitBreaker("svc", BreakerConfig(sliding_window_size=3), store=store, clock=clock)
    b.call(ok)  # the first call writes the record (and this config's id) in full
    seen = _statements(store)
    for _ in range(4):
        assert b.call(ok) == "ok"
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"] * 4
    assert "json_set" in seen[1]
    snap = b.snapshot()
    assert (snap.calls, snap.successes, snap.window_calls, snap.window_failures) == (5, 5, 3, 0)
    assert store.get("breaker", "svc")["window"] == "000"


def test_a_failure_in_one_process_takes_the_next_success_off_the_fast_path(
    db: Path, clock: FakeClock
) -> None:
    """A failure counted through one connection (another process) is seen by the next success
    through another: that success goes through the full read-modify-write and resets the
    consecutive count, so the fast path never hides a failure; then the window has a failure
    in it, so successes stay on the full path until it slides out."""
    first = breaker(db, clock, BreakerConfig(failure_threshold=3, sliding_window_size=2))
    second = breaker(db, clock, BreakerConfig(failure_threshold=3, sliding_window_size=2))
    first.call(ok)
    fail(first, 2)
    assert second.snapshot().consecutive_failures == 2
    assert second.call(ok) == "ok"
    snap = first.snapshot()
    assert (snap.consecutive_failures, snap.failures, snap.successes, snap.window_calls) == (
        0,
        2,
        2,
        2,
    )
    assert first.store.get("breaker", "svc")["window"] == "10"  # type: ignore[union-attr]
    fail(second, 2)
    assert first.snapshot().consecutive_failures == 2  # not 3: the success reset it
    fail(first)
    assert second.state is CircuitState.OPEN


def test_a_record_of_the_old_format_or_another_config_is_rewritten_in_full(
    db: Path, clock: FakeClock
) -> None:
    """A record written before the config id existed (an older reliactl), or by a process
    with another config, is read as before; its first success here goes through the full
    path, which writes this config's view and id (what `breaker show` prints), and later
    successes are counted in SQL."""
    store = open_store(db)
    old = {"state": "closed", "calls": 7, "successes": 7, "window": "0000000", "config": {}}
    store.update("breaker", "svc", lambda _r: dict(old))
    b = CircuitBreaker("svc", BreakerConfig(failure_threshold=9), store=store, clock=clock)
    b.call(ok)
    record = store.get("breaker", "svc")
    assert record is not None and record["calls"] == 8
    assert record["config"]["failure_threshold"] == 9 and record["config_id"]
    other = CircuitBreaker("svc", BreakerConfig(failure_threshold=4), store=store, clock=clock)
    other.call(ok)
    record = store.get("breaker", "svc")
    assert record is not None and record["config"]["failure_threshold"] == 4
    assert record["config_id"] != b._config_id
    seen = _statements(store)
    other.call(ok)
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
    assert b.snapshot().calls == 10


def test_a_damaged_record_falls_back_to_the_full_path(db: Path, clock: FakeClock) -> None:
    """A breaker record that is not JSON never makes the SQL fast path fail a call: admission
    and the success fall back to the full path, which reports the record and starts the
    breaker closed afresh (as before the fast path)."""
    warnings: list[str] = []
    store = open_store(db, warn=warnings.append)
    with store.conn:
        store.conn.execute(
            "INSERT INTO records (kind, key, data, updated_at) VALUES ('breaker', 'svc', ?, 0)",
            ("{not json",),
        )
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    assert b.call(ok) == "ok"
    assert any("unreadable breaker record 'svc'" in w for w in warnings)
    assert b.snapshot().calls == 1 and b.state is CircuitState.CLOSED


def test_an_open_breakers_rejection_is_one_read_and_one_statement(
    db: Path, clock: FakeClock
) -> None:
    """Issue 21: while an open breaker's period runs, a refused call is one SELECT of the
    state and one UPDATE ... RETURNING that counts the rejection and gives the retry-after
    (the same as the full path's); when the period is over the next call goes through the
    full path and becomes the half-open trial; a breaker tripped until closed is refused
    with the recovery timeout as its retry-after."""
    store = open_store(db)
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    fail(b, 3)
    clock.advance(4)
    seen = _statements(store)
    with pytest.raises(CircuitOpenError) as refused:
        b.call(ok)
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
    assert "RETURNING" in seen[1]
    assert refused.value.retry_after == pytest.approx(6.0)
    assert b.snapshot().rejections == 1
    clock.advance(6)
    assert b.call(ok) == "ok"  # the trial (full path): closes it
    assert b.state is CircuitState.CLOSED
    b.trip(None)
    clock.advance(1000)
    seen.clear()
    with pytest.raises(CircuitOpenError) as refused:
        b.call(ok)
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"]
    assert refused.value.retry_after == CFG.recovery_timeout
    assert b.snapshot().rejections == 2


def test_show_reads_one_record_whatever_the_number_of_breakers(db: Path) -> None:
    """`breaker show NAME` (breaker_snapshot) and the name check of trip/close/reset
    (is_known_breaker) read that one record: with 2,000 other breakers in the store each is
    one indexed SELECT, never a scan of every breaker (issue 21; benchmarks/breaker_store.py
    measures the CLI)."""
    from reliactl.breaker import breaker_snapshot, is_known_breaker

    store = open_store(db)
    with store.conn:
        store.conn.executemany(
            "INSERT INTO records (kind, key, data, updated_at) VALUES ('breaker', ?, ?, 0)",
            [(f"svc{i}", '{"state":"closed","calls":3}') for i in range(2000)],
        )
    store.update("breaker", "api", lambda _r: {"state": "open", "opened_at": 1.0})
    seen = _statements(store)
    snap = breaker_snapshot(store, None, "api")
    assert snap is not None and snap.state is CircuitState.OPEN
    assert is_known_breaker(store, None, "api")
    assert len(seen) == 2 and all("key = " in s and s.startswith("SELECT") for s in seen)


def test_a_closed_breakers_failure_is_one_read_and_one_statement(
    db: Path, clock: FakeClock
) -> None:
    """Issue 21: a failure of a closed persisted breaker that opens nothing is one SELECT of
    the state and one UPDATE that counts it in SQL (no BEGIN ... COMMIT, no record decoded);
    the failure that reaches the threshold goes through the full path and opens it, with its
    transition event."""
    store = open_store(db)
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    b.call(ok)  # writes the record and this config's id in full
    seen = _statements(store)
    fail(b, 2)
    assert [s.split()[0] for s in seen] == ["SELECT", "UPDATE"] * 2
    assert "json_set" in seen[1]
    record = store.get("breaker", "svc")
    assert record is not None
    assert (record["consecutive_failures"], record["failures"], record["calls"]) == (2, 2, 3)
    assert record["window"] == "011" and record["last_failure"] == "Boom: down"
    seen.clear()
    fail(b)
    assert "BEGIN IMMEDIATE" in seen and b.state is CircuitState.OPEN
    assert [(e.from_state, e.to_state) for e in b.events()] == [("closed", "open")]


@pytest.mark.parametrize(
    "cfg",
    [
        BreakerConfig(failure_threshold=4, sliding_window_size=4),
        BreakerConfig(
            failure_threshold=50, failure_rate_threshold=50, sliding_window_size=6, minimum_calls=4
        ),
        BreakerConfig(failure_threshold=50, failure_rate_threshold=34, sliding_window_size=3),
        BreakerConfig(failure_threshold=3, slow_call_threshold=2.0, sliding_window_size=5),
    ],
    ids=["threshold", "rate", "rate-full-window", "slow"],
)
def test_the_failure_statement_writes_what_the_full_path_writes(
    db: Path, cfg: BreakerConfig
) -> None:
    """The one-statement failure count is the full read-modify-write for that case, field for
    field: two breakers with one config, one with the fast paths and one without, given the
    same calls (failures, successes, slow successes, a rate threshold met exactly at the
    window's edge, waits past the open period) keep identical records and emit the same
    events; and the statement is taken."""
    store = open_store(db)
    clocks = {"fast": FakeClock(), "full": FakeClock()}  # a slow call advances its own
    fast = CircuitBreaker("fast", cfg, store=store, clock=clocks["fast"])
    full = CircuitBreaker("full", cfg, store=store, clock=clocks["full"])
    full._peek_state = full._count_success = full._count_failure = None
    full._count_rejection = None
    seen = _statements(store)
    calling = ["fast"]

    def slow_ok() -> str:
        clocks[calling[0]].advance(3)
        return "ok"

    pattern = "ok fail fail ok fail slow fail fail ok ok fail wait ok fail fail fail wait ok"
    for _ in range(3):
        for op in pattern.split():
            results = []
            for b in (fast, full):
                calling[0] = b.name
                if op == "wait":
                    results.append("waited")
                    continue
                try:
                    results.append(b.call({"ok": ok, "fail": boom, "slow": slow_ok}[op]))
                except (Boom, CircuitOpenError) as exc:
                    results.append(type(exc).__name__)
            if op == "wait":
                for each in clocks.values():
                    each.advance(cfg.recovery_timeout + 1)
            assert results[0] == results[1], op
            a, b_ = store.get("breaker", "fast"), store.get("breaker", "full")
            assert a is not None and b_ is not None
            assert a == b_, op
    assert [(e.from_state, e.to_state, e.reason) for e in fast.events(100)] == [
        (e.from_state, e.to_state, e.reason) for e in full.events(100)
    ]
    assert any("'$.consecutive_failures', json_extract" in s for s in seen)


def test_a_repeated_rejection_of_an_open_breaker_is_one_statement(
    db: Path, clock: FakeClock
) -> None:
    """Issue 21: once a breaker has seen its record open, its next refused call is the
    rejection statement alone (no SELECT of the state first); the statement checks the
    record itself, so when another process closed it meanwhile the call is admitted as
    before (one wasted statement, then the state is read)."""
    store = open_store(db)
    b = CircuitBreaker("svc", CFG, store=store, clock=clock)
    other = breaker(db, clock)
    fail(b, 3)
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    seen = _statements(store)
    for expected in (9.0, 8.0):
        clock.advance(1)
        with pytest.raises(CircuitOpenError) as refused:
            b.call(ok)
        assert refused.value.retry_after == pytest.approx(expected)
    assert [s.split()[0] for s in seen] == ["UPDATE", "UPDATE"]
    assert b.snapshot().rejections == 3
    other.close()
    assert b.call(ok) == "ok"
    assert b.snapshot().calls == 4 and b.state is CircuitState.CLOSED


def test_a_transitions_event_is_written_in_its_state_changes_transaction(
    db: Path, clock: FakeClock
) -> None:
    """Issue 21: on the SQLite store a transition's event is inserted inside the transaction
    that writes the new state (before its COMMIT), never after it, so no other process's
    change can come between the two; listeners still hear it once, and it is stored once."""
    store = open_store(db)
    heard: list[str] = []
    b = CircuitBreaker(
        "svc", CFG, store=store, clock=clock, on_state_change=lambda e: heard.append(e.to_state)
    )
    b.call(ok)
    seen = _statements(store)
    fail(b, 3)
    inserts = [i for i, s in enumerate(seen) if s.startswith("INSERT INTO breaker_events")]
    assert len(inserts) == 1
    begin = max(i for i, s in enumerate(seen[: inserts[0]]) if s == "BEGIN IMMEDIATE")
    assert "COMMIT" not in seen[begin : inserts[0]] and "COMMIT" in seen[inserts[0] :]
    assert any(s.startswith("UPDATE records") for s in seen[begin : inserts[0]])
    assert heard == ["open"]
    assert [(e.from_state, e.to_state) for e in b.events()] == [("closed", "open")]


def test_a_fleet_store_fallen_back_to_this_host_clamps_as_sqlite(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis away (state.on_unavailable: local): the breaker's records are this host's
    SQLite file, so a future opened_at is clamped whoever opened it, as on SQLite (one open
    period, not the shared store's two), and no per-host entry is written into it."""
    from reliactl import breaker as breaker_module
    from reliactl.state.fleet import FleetStore

    fleet = FleetStore(
        None, lambda: open_store(db), mode="local", location="redis://x", warn=lambda _: None
    )
    monkeypatch.setattr(breaker_module, "_HOST", "proc-x")
    b = CircuitBreaker("svc", CFG, store=fleet, clock=clock)
    fail(b, 3)
    clock.set_wall(clock.time() - 86400)  # another "host" on this machine, its clock behind
    monkeypatch.setattr(breaker_module, "_HOST", "proc-y")
    other = CircuitBreaker("svc", CFG, store=fleet, clock=clock)
    with pytest.raises(CircuitOpenError) as info:
        other.call(ok)
    assert info.value.retry_after == pytest.approx(10.0)
    assert "seen_ahead" not in json.dumps(open_store(db).get("breaker", "svc"))


def test_a_persisted_half_open_rejection_says_half_open(db: Path, clock: FakeClock) -> None:
    """In a SQLite store as in memory: a second process's call while the one trial slot is
    taken is refused as half-open (not "open"), with the breaker's name and the time until
    that trial's reservation expires."""
    cfg = BreakerConfig(failure_threshold=1, recovery_timeout=10.0, trial_timeout=30.0)
    first = breaker(db, clock, cfg)
    fail(first)
    clock.advance(10)
    assert first.admit().trial
    other = breaker(db, clock, cfg)  # another caller of the same store
    with pytest.raises(CircuitOpenError) as info:
        other.call(ok)
    assert info.value.state == "half_open" and info.value.name == "svc"
    assert "is half-open with its trial slots taken; retry in 30s" in str(info.value)
    assert "is open" not in str(info.value)
