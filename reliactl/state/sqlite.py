"""The embedded state store: one SQLite file (stdlib sqlite3, WAL, busy_timeout).

Read-modify-write goes through ``BEGIN IMMEDIATE`` so concurrent processes never lose an
update. The schema is versioned (``schema_version``) and migrated forward on open. A corrupt
store (truncated, damaged pages, a garbage schema version, NUL bytes left by a crash) is renamed
to ``<name>.corrupt-<timestamp>`` with a warning and a fresh store is used: a cron job must
never die because its state broke. Only the last few such files are kept.

What is moved aside must be recognisably reliactl's: an empty file, a file whose SQLite header
carries reliactl's application id, a file whose first pages hold reliactl's schema, or a file
of NUL bytes. Anything else at the path (another program's database, a copy of /etc/passwd)
is refused with a StateError and left untouched. So is a symlink or FIFO, a store or state
directory owned by another user or writable by others (a planted tripped breaker must not
stop root's job), and an unwritable directory. One unreadable record is reported through
``warn`` and skipped; it never makes a listing fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType

from reliactl.errors import StateBusyError, StateError
from reliactl.hostname import hostname
from reliactl.state.base import (
    BreakerEvent,
    EventUpdater,
    HealthAggregate,
    HealthEvent,
    HealthPoint,
    PruneReport,
    Record,
    RecordKind,
    RunRecord,
    Updater,
    path_text,
)


def _sqlite_module() -> ModuleType:
    """``sqlite3`` if the process has imported it, else the C module it is made of.

    ``_sqlite3``'s ``connect``, connection class and exceptions are the very objects
    ``sqlite3`` exports (``from _sqlite3 import *``); ``import sqlite3`` adds the DB-API
    constants and the default date/datetime adapters, and imports ``datetime`` for them
    (~1.5-2 ms of a cron start, issue 21 item 4). The store binds and reads no dates, so it
    needs neither; an importer of ``sqlite3`` after us gets the whole package (the adapters
    are registered then). Without ``_sqlite3`` (another Python) it is ``sqlite3``. One
    difference for tests: when this module was imported before ``sqlite3``, patching
    ``sqlite3.connect`` does not reach the store (it calls ``_sqlite3.connect``); patch
    ``reliactl.state.sqlite.sqlite3.connect`` instead."""
    import sys

    loaded = sys.modules.get("sqlite3")
    if loaded is not None:
        return loaded
    try:
        import _sqlite3
    except ImportError:  # pragma: no cover - CPython and PyPy both have it
        import sqlite3

        return sqlite3
    return _sqlite3


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path
    from typing import Any
else:
    sqlite3 = _sqlite_module()

BUSY_TIMEOUT_S = 30.0
_BUSY_MS = int(BUSY_TIMEOUT_S * 1000)
_UNBOUNDED = contextlib.nullcontext()
SQLITE_HEADER = b"SQLite format 3\x00"
# PRAGMA application_id of a reliactl store ("RLCT"), at offset 68 of the SQLite header.
APPLICATION_ID = 0x524C4354
# Text that only reliactl's schema puts in the first pages (sqlite_master) of a store.
SCHEMA_MARK = b"CREATE TABLE breaker_events"
IDENTIFY_BYTES = 64 * 1024
KEEP_CORRUPT = 3  # quarantined files kept (newest first); older ones are removed

# Forward migrations: MIGRATIONS[n] takes a database at version n to n + 1.
MIGRATIONS: list[str] = [
    # 0 -> 1: the first schema.
    """
    CREATE TABLE records (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE TABLE breaker_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        command TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        outcome TEXT NOT NULL
    );
    """,
    # 1 -> 2: free-form run details (attempts, lock wait, breaker decision) and lookups by name.
    """
    ALTER TABLE runs ADD COLUMN data TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX runs_by_name ON runs (name, id);
    CREATE INDEX events_by_name ON breaker_events (name, id);
    """,
    # 2 -> 3: health history (raw points, bucket aggregates, status changes).
    """
    CREATE TABLE health_points (
        check_name TEXT NOT NULL,
        at REAL NOT NULL,
        status TEXT NOT NULL,
        value REAL
    );
    CREATE INDEX health_points_by_check ON health_points (check_name, at);
    CREATE INDEX health_points_by_time ON health_points (at);
    CREATE TABLE health_aggregates (
        check_name TEXT NOT NULL,
        start REAL NOT NULL,
        seconds REAL NOT NULL,
        count INTEGER NOT NULL,
        min REAL,
        max REAL,
        mean REAL,
        worst TEXT NOT NULL,
        PRIMARY KEY (check_name, start)
    ) WITHOUT ROWID;
    CREATE TABLE health_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        check_name TEXT NOT NULL,
        at REAL NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX health_events_by_check ON health_events (check_name, id);
    """,
    # 3 -> 4: the host of a breaker event (older rows: NULL), and the outbox of history
    # recorded here while the shared store (Redis) was unreachable, shipped by `state sync`.
    """
    ALTER TABLE breaker_events ADD COLUMN host TEXT;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ref INTEGER NOT NULL,
        remote_id INTEGER,
        queued_at REAL NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_HISTORY_TABLES = frozenset({"health_points", "health_aggregates", "health_events"})


class _Corrupt(Exception):
    """The file at the path is not a usable reliactl database."""


class _Foreign(Exception):
    """The file at the path is not a reliactl store: refuse it, never move it."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock ("database is
    locked", "database table is locked", "database is busy")."""
    text = str(exc)
    return "is locked" in text or "is busy" in text


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def default_warn(message: str) -> None:
    import logging  # only when there is something to say: `run` starts without it

    logging.getLogger("reliactl.state").warning("%s", message)


class SQLiteStateStore:
    """A StateStore in one SQLite file. Open with :func:`open_store`."""

    # Safe for several threads at once: one connection, every operation serialised on
    # ``_lock`` (a breaker needs no lock of its own around it).
    thread_safe = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_rows: int = 10_000,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] = default_warn,
    ) -> None:
        # The path as text (what str(Path(path)) gives): opening needs no pathlib (~3-4 ms
        # of every start with urllib.parse and ipaddress); ``path`` makes the Path on demand.
        self._where = path_text(path)
        self.max_rows = max_rows
        self.clock = clock
        self.warn = warn
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        # ``bounded_waits``: what each thread may still spend on a store another process
        # holds (None: BUSY_TIMEOUT_S per statement), and the connection's busy_timeout now.
        self._waits = threading.local()
        self._busy_ms = _BUSY_MS
        self._open()

    # ---- opening and recovery

    @property
    def path(self) -> Path:
        """The store's file."""
        from pathlib import Path

        return Path(self._where)

    @property
    def location(self) -> str:
        return self._where

    def _open(self) -> None:
        for attempt in range(3):
            inode = _check_path(self._where, self.warn)
            ours = True
            try:
                suspicion = None
                if inode is not None:
                    ours, suspicion = _identify_settled(self._where)
                self._conn = _connect(self._where)
                self._busy_ms = _BUSY_MS
                if suspicion is not None:
                    _confirm(self._conn, suspicion)
                _migrate(self._conn)
                return
            except (_Corrupt, _Foreign, sqlite3.DatabaseError) as exc:
                self._close_quietly()
                if isinstance(exc, _Foreign) or (
                    not ours and (isinstance(exc, _Corrupt) or _is_corruption(exc))
                ):
                    raise StateError(
                        f"state store {self._where}: {exc}: not a reliactl state store, so it"
                        " was left untouched; move it yourself or set state.path"
                    ) from exc
                if isinstance(exc, sqlite3.DatabaseError) and not _is_corruption(exc):
                    raise StateError(f"state store {self._where}: {exc}") from exc
                if attempt == 2:
                    raise StateError(f"state store {self._where}: cannot recover: {exc}") from exc
                self._quarantine(inode, str(exc))

    def _quarantine(self, inode: int | None, reason: str) -> None:
        """Move the corrupt file aside (once, even when several processes find it at once)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = _open_nofollow(lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                return
            if inode is not None and st.st_ino != inode:
                return  # another process already replaced it
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
            serial = 0
            while os.path.lexists(target):  # never rename over an earlier copy
                serial += 1
                target = self.path.with_name(
                    f"{self.path.name}.corrupt-{stamp}-{os.getpid()}.{serial}"
                )
            os.rename(self.path, target)
            for suffix in ("-wal", "-shm", "-journal"):
                side = self.path.with_name(self.path.name + suffix)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(side, target.with_name(target.name + suffix))
            _prune_quarantined(self.path, KEEP_CORRUPT)
            self.warn(
                f"state store {self.path} was unreadable ({reason}); moved it to {target}"
                " and started a fresh one"
            )
        finally:
            os.close(fd)

    def _close_quietly(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError("state store is closed")
        return self._conn

    def _recovering(self, operation: Callable[[], Any]) -> Any:
        """Run ``operation``; if the file turns out corrupt, recover once and run it again.

        One connection serves every thread of the process, so operations are serialised
        here: another thread's statements must never land inside this one's transaction.
        """
        with self._held():
            return self._recovering_locked(operation)

    def _recovering_locked(self, operation: Callable[[], Any]) -> Any:
        with self._metered():
            return self._recovering_metered(operation)

    def _recovering_metered(self, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                busy = isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)
                kind = StateBusyError if busy else StateError
                raise kind(f"state store {self.path}: {exc}") from exc
            self._close_quietly()
            try:
                inode: int | None = os.lstat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            self._quarantine(inode, str(exc))
            self._open()
            return operation()

    @contextlib.contextmanager
    def bounded_waits(self, seconds: float) -> Iterator[None]:
        """Within: this thread's operations take at most about ``seconds`` in all while
        another process holds the store's write lock (not ``BUSY_TIMEOUT_S`` each): each
        waits at most what is left, and what it took is spent; once spent they raise
        StateError ("database is locked") at once. Only the time in the store's operations
        counts (a round's checks before its writes spend nothing). A nested bound spends
        from the outer one. Other threads keep their own wait. What ``run`` writes around a
        job and ``serve``'s rounds use it: a busy store delays neither by 30 s a write."""
        outer = getattr(self._waits, "left", None)
        given = max(0.0, seconds) if outer is None else min(outer, max(0.0, seconds))
        self._waits.left = given
        try:
            yield
        finally:
            spent = given - self._waits.left
            self._waits.left = None if outer is None else outer - spent

    def _held(self) -> contextlib.AbstractContextManager[Any]:
        """The store's one connection, this thread's for the block (``_lock``). Another
        thread's operation may hold it for its whole busy wait (a health check's write while
        another process holds the store): a thread within ``bounded_waits`` waits for it only
        what it has left, the wait is spent, and past it StateError ("database is locked")."""
        left = getattr(self._waits, "left", None)
        if left is None:
            return self._lock
        return self._hold_bounded(left)

    @contextlib.contextmanager
    def _hold_bounded(self, left: float) -> Iterator[None]:
        started = time.monotonic()
        got = self._lock.acquire(timeout=max(0.0, left))
        self._waits.left = left - (time.monotonic() - started)
        if not got:
            raise StateBusyError(
                f"state store {self._where}: database is locked (another thread of this"
                " process is waiting on it)"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _metered(self) -> contextlib.AbstractContextManager[None]:
        """Around one operation, the lock held (the connection is this thread's until it is
        released): its busy_timeout is what this thread may still wait (``bounded_waits``)."""
        left = getattr(self._waits, "left", None)
        if left is None:
            if self._busy_ms != _BUSY_MS:
                self._set_busy(_BUSY_MS)
            return _UNBOUNDED
        return self._spend(left)

    @contextlib.contextmanager
    def _spend(self, left: float) -> Iterator[None]:
        self._set_busy(min(_BUSY_MS, max(0, int(left * 1000))))
        started = time.monotonic()
        try:
            yield
        finally:
            self._waits.left = left - (time.monotonic() - started)

    def _set_busy(self, ms: int) -> None:
        if ms != self._busy_ms and self._conn is not None:
            self._conn.execute(f"PRAGMA busy_timeout = {ms}")
            self._busy_ms = ms

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ---- records

    def _unreadable(self, what: str, why: str) -> None:
        self.warn(f"state store {self.path}: skipped unreadable {what} ({why})")

    def _record(self, kind: str, key: str, data: Any) -> Record | None:
        """A stored record's data decoded, or None (reported) if it cannot be read."""
        try:
            return _decode(data)
        except ValueError as exc:
            self._unreadable(f"{kind} record {key!r}", str(exc) or type(exc).__name__)
            return None

    def get(self, kind: RecordKind, key: str) -> Record | None:
        def op() -> Record | None:
            row = self.conn.execute(_SELECT_RECORD, (kind, key)).fetchone()
            return None if row is None else self._record(kind, key, row[0])

        result: Record | None = self._recovering(op)
        return result

    def update(self, kind: RecordKind, key: str, fn: Updater) -> Record | None:
        """Atomic read-modify-write of one record across threads and processes: the read,
        ``fn`` and the write in one BEGIN IMMEDIATE transaction. ``fn`` gets the record (None
        when there is none or it is unreadable, which is reported) and returns the new one,
        or None to delete it. An existing row is rewritten in place by UPDATE (INSERT OR
        REPLACE deleted and re-inserted it, which costs more once the record spills into an
        overflow page); a new one is inserted."""
        with self._held():
            result: Record | None = self._recovering_locked(lambda: self._update(kind, key, fn))
        return result

    def update_with_events(
        self,
        kind: RecordKind,
        key: str,
        fn: EventUpdater,
    ) -> Record | None:
        """``update`` whose ``fn`` also returns breaker events to record: they are inserted
        in the same transaction as the record, so across processes the event log follows
        the order of the state changes (an event added after the commit could land after
        another process's later one), and a kill -9 keeps both or neither."""
        logged: list[BreakerEvent] = []

        def inner(record: Record | None) -> Record | None:
            new, events = fn(record)
            logged[:] = events
            return new

        with self._held():
            result: Record | None = self._recovering_locked(
                lambda: self._update(kind, key, inner, logged)
            )
        return result

    def _update(
        self, kind: str, key: str, fn: Updater, events: Sequence[BreakerEvent] = ()
    ) -> Record | None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(_SELECT_RECORD, (kind, key)).fetchone()
            new = fn(None if row is None else self._record(kind, key, row[0]))
            if new is None:
                if row is not None:
                    conn.execute(_DELETE_RECORD, (kind, key))
            elif row is None:
                conn.execute(_INSERT_RECORD, (kind, key, _encode(new), self.clock()))
            else:
                conn.execute(_UPDATE_RECORD, (_encode(new), self.clock(), kind, key))
            if events:  # fn filled them: update_with_events
                newest = None
                for event in events:
                    newest = _insert_event(conn, event)
                _bound(conn, "breaker_events", newest, self.max_rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return new

    def items(self, kind: RecordKind) -> dict[str, Record]:
        def op() -> dict[str, Record]:
            rows = self.conn.execute(
                "SELECT key, data FROM records WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
            out: dict[str, Record] = {}
            for key, data in rows:
                record = self._record(kind, key, data)
                if record is not None:
                    out[key] = record
            return out

        result: dict[str, Record] = self._recovering(op)
        return result

    def delete(self, kind: RecordKind, key: str) -> bool:
        def op() -> bool:
            with self._write() as conn:
                cur = conn.execute(_DELETE_RECORD, (kind, key))
                return cur.rowcount > 0

        result: bool = self._recovering(op)
        return result

    # ---- breaker fast paths (optional StateStore capabilities, see state/base.py)

    def breaker_state(self, key: str) -> str | None:
        """Breaker ``key``'s ``state`` read in SQL, without decoding its record: None when
        there is no record, "" when it is unreadable or has no state, or the read failed (the
        caller then reads the record with ``get``, which reports, recovers or raises)."""
        with self._held(), self._metered():
            conn = self._conn
            if conn is None:
                raise StateError("state store is closed")
            try:
                row = conn.execute(_PEEK_STATE, (key,)).fetchone()
            except sqlite3.DatabaseError as exc:
                self._fast_path_failed(exc)
                return ""
        if row is None:
            return None
        return row[0] if isinstance(row[0], str) else ""

    def breaker_success(self, key: str, config_id: str, window_size: int) -> bool:
        """Count one success of breaker ``key`` in one UPDATE statement (its own atomic
        write transaction), when that success changes nothing but the counters and the
        window: the record is closed, was last written with config ``config_id``, has no
        consecutive failure and no failure in its window. False, with nothing written, for
        any other record or when the statement failed: the caller then does the full
        read-modify-write (``update``, which recovers or raises)."""
        with self._held(), self._metered():
            conn = self._conn
            if conn is None:
                raise StateError("state store is closed")
            try:
                cursor = conn.execute(
                    _COUNT_SUCCESS,
                    (window_size, self.clock(), key, f'["closed","{config_id}",0]'),
                )
            except sqlite3.DatabaseError as exc:
                self._fast_path_failed(exc)
                return False
            return cursor.rowcount == 1

    def breaker_rejection(
        self, key: str, config_id: str, now: float
    ) -> tuple[float, float | None] | None:
        """Count one rejection of open breaker ``key`` in one UPDATE statement, when the call
        is refused without a transition: the record is open since ``opened_at`` <= ``now``
        (wall clock) for ``open_for`` seconds that have not passed, or tripped until closed
        (``open_for`` null, forced), and was last written with config ``config_id``. Returns
        ``(opened_at, open_for)`` to compute the retry-after from; None, with nothing
        written, for any other record (the caller then does the full read-modify-write)."""
        if not _RETURNING:
            return None
        with self._held(), self._metered():
            conn = self._conn
            if conn is None:
                raise StateError("state store is closed")
            try:
                rows = conn.execute(
                    _COUNT_REJECTION,
                    {"at": self.clock(), "key": key, "now": now, "id": f'["open","{config_id}"]'},
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                self._fast_path_failed(exc)
                return None
        if len(rows) != 1:
            return None
        opened_at, open_for = rows[0]
        return float(opened_at), None if open_for is None else float(open_for)

    def breaker_failure(
        self,
        key: str,
        config_id: str,
        limits: tuple[int, int, float | None, int],
        slow: bool,
        reason: str,
        wall: float,
    ) -> bool:
        """Count one failure of closed breaker ``key`` in one UPDATE statement (its own atomic
        write transaction), when that failure opens nothing: the record is closed, was last
        written with config ``config_id``, and with ``limits`` = (window size, failure
        threshold, rate threshold or None, minimum calls for the rate: min(minimum_calls,
        window size)) its consecutive failures stay under the threshold and the window with
        this "1" appended does not reach the rate (checked in SQL as ``_check_rate`` checks
        it). ``slow`` counts it as a slow call too; ``reason`` and ``wall`` are its last
        failure. False, with nothing written, for any other record or when the statement
        failed: the caller then does the full read-modify-write (``update``, which recovers
        or raises)."""
        size, threshold, rate, min_calls = limits
        with self._held(), self._metered():
            conn = self._conn
            if conn is None:
                raise StateError("state store is closed")
            try:
                cursor = conn.execute(
                    _COUNT_FAILURE,
                    (
                        reason,
                        wall,
                        1 if slow else 0,
                        size,
                        self.clock(),
                        key,
                        f'["closed","{config_id}"]',
                        threshold,
                        rate,
                        min_calls,
                    ),
                )
            except sqlite3.DatabaseError as exc:
                self._fast_path_failed(exc)
                return False
            return cursor.rowcount == 1

    def _fast_path_failed(self, exc: sqlite3.DatabaseError) -> None:
        """A breaker fast path's statement failed: a damaged file or record, or an SQLite
        without JSON functions, is left to the full path (which recovers or reports); any
        other error (the store stayed locked past busy_timeout) is raised as the full path
        would raise it, not waited for twice."""
        if not (_is_corruption(exc) or _json_unusable(exc)):
            raise StateError(f"state store {self.path}: {exc}") from exc

    # ---- history

    def add_event(self, event: BreakerEvent) -> None:
        def op() -> None:
            with self._write() as conn:
                _bound(conn, "breaker_events", _insert_event(conn, event), self.max_rows)

        self._recovering(op)

    def events(self, name: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        def op() -> list[BreakerEvent]:
            sql = "SELECT name, from_state, to_state, reason, at, host FROM breaker_events"
            args: tuple[Any, ...] = ()
            if name is not None:
                sql += " WHERE name = ?"
                args = (name,)
            rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            out = []
            for row in rows:
                event = self._event(row)
                if event is not None:
                    out.append(event)
            return out

        result: list[BreakerEvent] = self._recovering(op)
        return result

    def _event(self, row: tuple[Any, ...]) -> BreakerEvent | None:
        if not (
            all(isinstance(v, str) for v in row[:4])
            and isinstance(row[4], (int, float))
            and (row[5] is None or isinstance(row[5], str))
        ):
            self._unreadable("breaker event", f"unexpected values {row!r}"[:200])
            return None
        return BreakerEvent(*row)

    def add_run(self, run: RunRecord) -> int:
        def op() -> int:
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO runs (name, command, started_at, ended_at, attempts, exit_code,"
                    " outcome, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    _run_row(run),
                )
                run_id = cur.lastrowid
                assert run_id is not None
                _bound(conn, "runs", run_id, self.max_rows)
                return run_id

        result: int = self._recovering(op)
        return result

    def finish_run(self, run_id: int, run: RunRecord) -> None:
        def op() -> None:
            with self._write() as conn:
                conn.execute(
                    "UPDATE runs SET name = ?, command = ?, started_at = ?, ended_at = ?,"
                    " attempts = ?, exit_code = ?, outcome = ?, data = ? WHERE id = ?",
                    (*_run_row(run), run_id),
                )

        self._recovering(op)

    def runs(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        def op() -> list[RunRecord]:
            sql = (
                "SELECT id, name, command, started_at, ended_at, attempts, exit_code, outcome,"
                " data FROM runs"
            )
            args: tuple[Any, ...] = ()
            if name is not None:
                sql += " WHERE name = ?"
                args = (name,)
            rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            out = []
            for row in rows:
                record = self._run(row)
                if record is not None:
                    out.append(record)
            return out

        result: list[RunRecord] = self._recovering(op)
        return result

    def _run(self, row: tuple[Any, ...]) -> RunRecord | None:
        """One runs row as a RunRecord, or None (reported) if its values cannot be read."""
        run_id, name, command, started, ended, attempts, code, outcome, data = row
        number = (int, float)
        try:
            if not (
                isinstance(name, str)
                and isinstance(command, str)
                and isinstance(outcome, str)
                and isinstance(started, number)
                and (ended is None or isinstance(ended, number))
                and isinstance(attempts, int)
                and (code is None or isinstance(code, int))
            ):
                raise ValueError("unexpected column values")
            return RunRecord(
                id=run_id,
                name=name,
                command=command,
                started_at=float(started),
                ended_at=None if ended is None else float(ended),
                attempts=attempts,
                exit_code=code,
                outcome=outcome,
                data=_decode(data),
            )
        except ValueError as exc:
            self._unreadable(f"run {run_id}", str(exc))
            return None

    # ---- the outbox: history recorded here while the shared store was unreachable

    @property
    def queued_marker(self) -> Path:
        """A file that exists while the outbox may hold something (checked without opening)."""
        return queued_marker(self.path)

    def queue_run(self, run: RunRecord, remote_id: int | None = None) -> int:
        """Record a run here and queue it for shipping, in one transaction; ``remote_id`` is
        the id the shared store gave that run at its start (it is finished in place)."""

        def op() -> int:
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO runs (name, command, started_at, ended_at, attempts, exit_code,"
                    " outcome, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    _run_row(run),
                )
                run_id = cur.lastrowid
                assert run_id is not None
                self._enqueue(conn, "run", run_id, remote_id)
                _bound(conn, "runs", run_id, self.max_rows)
                return run_id

        result: int = self._recovering(op)
        self._mark_queued()
        return result

    def queue_event(self, event: BreakerEvent) -> None:
        """Record a breaker event here and queue it for shipping, in one transaction."""

        def op() -> None:
            with self._write() as conn:
                event_id = _insert_event(conn, event)
                self._enqueue(conn, "event", event_id, None)
                _bound(conn, "breaker_events", event_id, self.max_rows)

        self._recovering(op)
        self._mark_queued()

    def _enqueue(
        self, conn: sqlite3.Connection, kind: str, ref: int, remote_id: int | None
    ) -> None:
        conn.execute(
            "INSERT INTO outbox (kind, ref, remote_id, queued_at) VALUES (?, ?, ?, ?)",
            (kind, ref, remote_id, self.clock()),
        )

    def _mark_queued(self) -> None:
        with contextlib.suppress(OSError):
            self.queued_marker.touch()

    def queued(
        self, limit: int = 500, after: int = 0
    ) -> list[tuple[int, str, int, int | None, float]]:
        """The oldest queued items after queue id ``after``: (queue id, kind, ref, remote id,
        queued at)."""

        def op() -> list[tuple[int, str, int, int | None, float]]:
            rows = self.conn.execute(
                "SELECT id, kind, ref, remote_id, queued_at FROM outbox WHERE id > ?"
                " ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
            return [(int(r[0]), str(r[1]), int(r[2]), r[3], float(r[4])) for r in rows]

        result: list[tuple[int, str, int, int | None, float]] = self._recovering(op)
        return result

    def queued_count(self) -> int:
        count: int = self._recovering(
            lambda: self.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        )
        return count

    def dequeue(self, queue_id: int) -> None:
        """Forget a shipped item; the marker goes when the outbox is empty."""

        def op() -> int:
            with self._write() as conn:
                conn.execute("DELETE FROM outbox WHERE id = ?", (queue_id,))
                left: int = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                return left

        if self._recovering(op) == 0:
            with contextlib.suppress(OSError):
                self.queued_marker.unlink()

    def run_by_id(self, run_id: int) -> RunRecord | None:
        row = self._recovering(
            lambda: self.conn.execute(
                "SELECT id, name, command, started_at, ended_at, attempts, exit_code, outcome,"
                " data FROM runs WHERE id = ?",
                (run_id,),
            ).fetchone()
        )
        return None if row is None else self._run(row)

    def event_by_id(self, event_id: int) -> BreakerEvent | None:
        row = self._recovering(
            lambda: self.conn.execute(
                "SELECT name, from_state, to_state, reason, at, host FROM breaker_events"
                " WHERE id = ?",
                (event_id,),
            ).fetchone()
        )
        return None if row is None else self._event(row)

    def all_events(self) -> list[tuple[int, BreakerEvent]]:
        """Every breaker event with its id, oldest first (what `state migrate` copies)."""
        rows = self._recovering(
            lambda: self.conn.execute(
                "SELECT id, name, from_state, to_state, reason, at, host FROM breaker_events"
                " ORDER BY id"
            ).fetchall()
        )
        out = []
        for row in rows:
            event = self._event(tuple(row[1:]))
            if event is not None:
                out.append((int(row[0]), event))
        return out

    def all_runs(self) -> list[RunRecord]:
        """Every run, oldest first (what `state migrate` copies)."""
        rows = self._recovering(
            lambda: self.conn.execute(
                "SELECT id, name, command, started_at, ended_at, attempts, exit_code, outcome,"
                " data FROM runs ORDER BY id"
            ).fetchall()
        )
        return [r for r in (self._run(row) for row in rows) if r is not None]

    def records_with_times(self, kind: RecordKind) -> list[tuple[str, Record, float]]:
        """Every record of a kind with its last update time (what `state migrate` copies)."""
        rows = self._recovering(
            lambda: self.conn.execute(
                "SELECT key, data, updated_at FROM records WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        )
        out = []
        for key, data, updated in rows:
            record = self._record(kind, key, data)
            if record is not None:
                out.append((str(key), record, float(updated)))
        return out

    def counts(self) -> dict[str, int]:
        """Rows per kind of record and history table (for `state info`)."""

        def op() -> dict[str, int]:
            out = dict.fromkeys(("breaker", "alert", "rate", "kv"), 0)
            for kind, n in self.conn.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind"):
                out[str(kind)] = int(n)
            for table, label in (
                ("breaker_events", "events"),
                ("runs", "runs"),
                ("outbox", "queued"),
            ):
                out[label] = int(
                    self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                )
            return out

        result: dict[str, int] = self._recovering(op)
        return result

    # ---- health history

    def add_health_points(self, points: Sequence[HealthPoint]) -> None:
        if not points:
            return

        def op() -> None:
            with self._write() as conn:
                conn.executemany(
                    "INSERT INTO health_points (check_name, at, status, value) VALUES (?, ?, ?, ?)",
                    [(p.check, p.at, p.status, p.value) for p in points],
                )

        self._recovering(op)

    def health_points(self, check: str, since: float) -> list[HealthPoint]:
        def op() -> list[HealthPoint]:
            rows = self.conn.execute(
                "SELECT check_name, at, status, value FROM health_points"
                " WHERE check_name = ? AND at >= ? ORDER BY at",
                (check, since),
            ).fetchall()
            return [HealthPoint(*row) for row in rows if _history_row_ok(row)]

        result: list[HealthPoint] = self._recovering(op)
        return result

    def health_aggregates(self, check: str, since: float) -> list[HealthAggregate]:
        def op() -> list[HealthAggregate]:
            rows = self.conn.execute(
                "SELECT check_name, start, seconds, count, min, max, mean, worst"
                " FROM health_aggregates WHERE check_name = ? AND start + seconds > ?"
                " ORDER BY start",
                (check, since),
            ).fetchall()
            return [HealthAggregate(*row) for row in rows]

        result: list[HealthAggregate] = self._recovering(op)
        return result

    def health_checks(self) -> list[str]:
        def op() -> list[str]:
            rows = self.conn.execute(
                "SELECT DISTINCT check_name FROM health_points UNION"
                " SELECT DISTINCT check_name FROM health_aggregates ORDER BY 1"
            ).fetchall()
            return [str(r[0]) for r in rows]

        result: list[str] = self._recovering(op)
        return result

    def add_health_event(self, event: HealthEvent) -> None:
        def op() -> None:
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO health_events (check_name, at, from_status, to_status, message)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (event.check, event.at, event.from_status, event.to_status, event.message),
                )
                _bound(conn, "health_events", cur.lastrowid, self.max_rows)

        self._recovering(op)

    def health_events(
        self, check: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[HealthEvent]:
        def op() -> list[HealthEvent]:
            sql = (
                "SELECT check_name, at, from_status, to_status, message FROM health_events"
                " WHERE at >= ?"
            )
            args: tuple[Any, ...] = (since,)
            if check is not None:
                sql += " AND check_name = ?"
                args = (since, check)
            rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            return [HealthEvent(*row) for row in rows]

        result: list[HealthEvent] = self._recovering(op)
        return result

    def compact_health(
        self, now: float, raw_retention: float, aggregate_retention: float, bucket: float
    ) -> int:
        from reliactl.state.base import aggregate_points

        # Only whole buckets: a bucket is folded once every point in it is past retention.
        cutoff = ((now - raw_retention) // bucket) * bucket
        oldest = now - aggregate_retention

        def op() -> int:
            with self._write() as conn:
                rows = conn.execute(
                    "SELECT check_name, at, status, value FROM health_points WHERE at < ?",
                    (cutoff,),
                ).fetchall()
                points = [HealthPoint(*row) for row in rows if _history_row_ok(row)]
                conn.executemany(
                    "INSERT OR REPLACE INTO health_aggregates (check_name, start, seconds,"
                    " count, min, max, mean, worst) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (a.check, a.start, a.seconds, a.count, a.min, a.max, a.mean, a.worst)
                        for a in aggregate_points(points, bucket)
                    ],
                )
                conn.execute("DELETE FROM health_points WHERE at < ?", (cutoff,))
                conn.execute("DELETE FROM health_aggregates WHERE start + seconds <= ?", (oldest,))
                conn.execute("DELETE FROM health_events WHERE at < ?", (oldest,))
                return len(rows)

        result: int = self._recovering(op)
        return result

    def prune(
        self,
        now: float,
        retention: float,
        max_rows: int,
        keep_breaker: Callable[[str, Record], bool] | None = None,
    ) -> PruneReport:
        before = _file_size(self.path)
        cutoff = now - retention

        def op() -> tuple[int, int, int]:
            with self._write() as conn:
                events = conn.execute("DELETE FROM breaker_events WHERE at < ?", (cutoff,)).rowcount
                runs = conn.execute(
                    "DELETE FROM runs WHERE COALESCE(ended_at, started_at) < ?"
                    " AND ended_at IS NOT NULL",
                    (cutoff,),
                ).rowcount
                for table in ("breaker_events", "runs"):
                    top = conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0]  # noqa: S608
                    if top is not None:
                        removed = _bound(conn, table, top, max_rows)
                        if table == "runs":
                            runs += removed
                        else:
                            events += removed
                records = conn.execute(
                    "DELETE FROM records WHERE kind IN ('alert', 'rate', 'kv') AND updated_at < ?",
                    (cutoff,),
                ).rowcount
                if keep_breaker is not None:
                    stale = conn.execute(
                        "SELECT key, data FROM records WHERE kind = 'breaker' AND updated_at < ?",
                        (cutoff,),
                    ).fetchall()
                    for key, data in stale:
                        record = self._record("breaker", key, data)
                        if record is None or not keep_breaker(key, record):
                            records += conn.execute(
                                "DELETE FROM records WHERE kind = 'breaker' AND key = ?", (key,)
                            ).rowcount
            return events, runs, records

        events, runs, records = self._recovering(op)
        with self._lock:
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return PruneReport(events, runs, records, before, _file_size(self.path))

    def check(self) -> list[str]:
        with self._lock:
            rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        return problems

    def schema_version(self) -> int:
        with self._lock:
            version = _read_version(self.conn)
        return SCHEMA_VERSION if version is None else version

    def close(self) -> None:
        """Release the connection, never under another thread's statement. Within
        ``bounded_waits`` it waits for that statement only what is left, then leaves the
        connection to the thread that still uses it (the process's exit closes the file)."""
        try:
            with self._held():
                self._close_quietly()
        except StateError:
            pass  # busy past the bound: another thread still uses the connection

    def __enter__(self) -> SQLiteStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


def open_store(
    path: str | os.PathLike[str],
    *,
    max_rows: int = 10_000,
    clock: Callable[[], float] = time.time,
    warn: Callable[[str], None] = default_warn,
) -> SQLiteStateStore:
    """Open (creating, migrating or recovering as needed) the store at ``path``."""
    return SQLiteStateStore(path, max_rows=max_rows, clock=clock, warn=warn)


def queued_marker(path: str | os.PathLike[str]) -> Path:
    """The file beside a store that says its outbox may hold something to ship."""
    from pathlib import Path

    p = Path(path)
    return p.with_name(p.name + ".queued")


def _open_nofollow(path: str | Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open {path}: {exc.strerror}") from exc


def _check_path(path: str, warn: Callable[[str], None] = default_warn) -> int | None:
    """Create the directory (0700) and refuse what must never be opened; returns the inode.

    Refused: a symlink or non-regular file at the path (or its -wal/-shm), a state directory
    or store file owned by another user or writable by others (see reliactl.trust).
    """
    from reliactl.trust import untrusted

    parent = os.path.dirname(path) or "."  # path_text's form: Path(path).parent
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)  # the mode for the last one only
        reason = untrusted(os.stat(parent))
    except OSError as exc:
        raise StateError(
            f"cannot create the state directory {parent}: {exc.strerror}; set state.path"
        ) from exc
    if reason is not None:
        raise StateError(
            f"the state directory {parent} is {reason}; refused, another user could plant or"
            " replace the store (chown/chmod go-w it, or set state.path)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StateError(f"the state directory {parent} is not writable; set state.path")
    for candidate in (path, path + "-wal", path + "-shm"):
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise StateError(
                f"{candidate} is a symbolic link; refused (remove it or set state.path)"
            )
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{candidate} is not a regular file; refused")
        reason = untrusted(st)
        if reason is not None:
            raise StateError(
                f"{candidate} is {reason}; refused, its breakers and history are not"
                " trustworthy (remove it, or set state.path)"
            )
    try:
        return os.lstat(path).st_ino
    except FileNotFoundError:
        fd = _open_nofollow(path, os.O_RDWR | os.O_CREAT)
        os.close(fd)
        return None


def _identify(path: str | Path) -> tuple[bool, str | None]:
    """Is the file at ``path`` recognisably a reliactl store, and is it suspect?

    Returns (ours, suspicion). Raises _Foreign for an SQLite database with another
    application id, and for any file that is neither SQLite, reliactl's schema nor NUL bytes.
    """
    fd = _open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = os.read(fd, IDENTIFY_BYTES)
    finally:
        os.close(fd)
    if not data:
        return True, None  # empty: simply a new database
    marked = SCHEMA_MARK in data
    if data.startswith(SQLITE_HEADER) and len(data) >= 72:
        app = int.from_bytes(data[68:72], "big")
        if app not in (0, APPLICATION_ID):
            raise _Foreign(f"an SQLite database of another program (application id {app:#x})")
        suspicion = _check_header(path)
        if app == APPLICATION_ID or marked:
            return True, suspicion
        return _probe_tables(path), suspicion
    if marked:
        return True, "not an SQLite database (a damaged reliactl store)"
    if data.count(0) == len(data):
        return True, "only NUL bytes (what a crash can leave)"
    if data.startswith(SQLITE_HEADER):
        return False, "truncated SQLite header"
    raise _Foreign("not an SQLite database")


# How often, and how far apart, a file that does not look like ours is looked at again.
IDENTIFY_LOOKS = 3
IDENTIFY_PAUSE_S = 0.02


def _settle_pause() -> None:
    time.sleep(IDENTIFY_PAUSE_S)


def _identify_settled(path: str | Path) -> tuple[bool, str | None]:
    """:func:`_identify`, asked again while its answer is "not ours".

    The bytes are read without SQLite's locks, so a file another process is creating right
    now can show a torn first page (a prefix of the header, then zeros), which reads as "not
    an SQLite database". A torn page is whole again within microseconds; another program's
    file holds still. So a refusal stands only when every one of ``IDENTIFY_LOOKS`` looks,
    ``IDENTIFY_PAUSE_S`` apart, agrees.
    """
    for look in range(IDENTIFY_LOOKS):
        try:
            ours, suspicion = _identify(path)
        except _Foreign:
            if look == IDENTIFY_LOOKS - 1:
                raise
        else:
            if ours or look == IDENTIFY_LOOKS - 1:
                return ours, suspicion
        _settle_pause()
    raise AssertionError("unreachable")


def _probe_tables(path: str | Path) -> bool:
    """An SQLite file without reliactl's marks: look at its tables without changing a byte.

    True when it has no tables (a store whose creation was interrupted) or only reliactl's;
    raises _Foreign when it has others; False when it cannot be read (not recognisable).
    """
    quoted = str(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    try:
        probe = sqlite3.connect(f"file:{quoted}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return False
    try:
        tables = [
            r[0]
            for r in probe.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
    except sqlite3.Error:
        return False
    finally:
        probe.close()
    if {"schema_version", "records", "breaker_events", "runs", *_HISTORY_TABLES}.issuperset(tables):
        return True
    raise _Foreign(f"another program's database (tables: {', '.join(tables[:5])})")


def _prune_quarantined(path: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` ``<name>.corrupt-*`` sets (file, -wal, -shm)."""
    prefix = path.name + ".corrupt-"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return
    sides = ("-wal", "-shm", "-journal")
    bases = sorted({_strip_side(n, sides) for n in names})
    for base in bases[: max(0, len(bases) - keep)]:
        for name in (base, *(base + s for s in sides)):
            with contextlib.suppress(OSError):
                if not stat.S_ISDIR(os.lstat(path.parent / name).st_mode):
                    os.unlink(path.parent / name)


def _strip_side(name: str, sides: tuple[str, ...]) -> str:
    for side in sides:
        if name.endswith(side):
            return name[: -len(side)]
    return name


def _check_header(path: str | Path) -> str | None:
    """Cheap look at the raw header for garbage and truncation; returns a suspicion or None.

    The bytes are read without SQLite's locks, so a write or checkpoint by another process
    can make a healthy file look torn for a moment: a suspicion is only confirmed by
    ``_confirm`` (SQLite's own check, under its locks) before anything is moved aside.
    """
    fd = _open_nofollow(path, os.O_RDONLY)
    try:
        header = os.read(fd, 100)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size == 0:
        return None
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    change = int.from_bytes(header[24:28], "big")
    if pages and valid_for == change and size < pages * page_size:
        return f"truncated: {size} bytes, header says {pages * page_size}"
    return None


def _confirm(conn: sqlite3.Connection, suspicion: str) -> None:
    """Raise _Corrupt if SQLite agrees the file is damaged; a torn read of a busy file is not."""
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if [tuple(r) for r in rows] != [("ok",)]:
        raise _Corrupt(f"{suspicion}; {rows[0][0]}")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    # A text value that is not UTF-8 (a damaged record) must not make a whole listing fail.
    conn.text_factory = _text
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    # Switching a new database to WAL needs an exclusive lock, and SQLite does not always run
    # the busy handler for it: two processes creating the store at once can see "database is
    # locked" here. Retry until the busy timeout, as the busy handler would.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.005)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = _read_version(conn)
    if version == SCHEMA_VERSION:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # a store made before it
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _read_version(conn)
        if version is None:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            if tables:
                ours = {"records", "breaker_events", "runs"}
                listed = ", ".join(tables[:5])
                if ours.issuperset(tables) or _HISTORY_TABLES.issuperset(tables):
                    raise _Corrupt(f"schema_version table missing (tables: {listed})")
                raise _Foreign(f"another program's database (tables: {listed})")
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database is at schema version {version}, newer than this reliactl"
                f" understands ({SCHEMA_VERSION}); upgrade reliactl or set state.path"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _read_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        raise _Corrupt("schema_version table is empty")
    version = row[0]
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise _Corrupt(f"schema_version holds {str(version)[:40]!r}, not a version number")
    return version


def _bound(conn: sqlite3.Connection, table: str, newest_id: int | None, max_rows: int) -> int:
    if newest_id is None or newest_id <= max_rows:
        return 0
    cur = conn.execute(f"DELETE FROM {table} WHERE id <= ?", (newest_id - max_rows,))  # noqa: S608
    return cur.rowcount


def _history_row_ok(row: Any) -> bool:
    return (
        isinstance(row[0], str)
        and isinstance(row[1], (int, float))
        and isinstance(row[2], str)
        and (row[3] is None or isinstance(row[3], (int, float)))
    )


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.name,
        run.command,
        run.started_at,
        run.ended_at,
        run.attempts,
        run.exit_code,
        run.outcome,
        json.dumps(run.data, separators=(",", ":")),
    )


# The generic record statements (update): one text each, so sqlite3's statement cache
# prepares each once per connection.
_SELECT_RECORD = "SELECT data FROM records WHERE kind = ? AND key = ?"
_DELETE_RECORD = "DELETE FROM records WHERE kind = ? AND key = ?"
_UPDATE_RECORD = "UPDATE records SET data = ?, updated_at = ? WHERE kind = ? AND key = ?"
# A new record: nothing to replace inside the transaction that found no row, but OR REPLACE
# keeps the write from failing if a damaged index hid one (and needs no UPSERT, SQLite 3.24).
_INSERT_RECORD = "INSERT OR REPLACE INTO records (kind, key, data, updated_at) VALUES (?, ?, ?, ?)"

# One encoder for every write: json.dumps with separators builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode

# The breaker fast paths' statements. json_valid first (CASE / AND evaluate in order), so a
# damaged record is never an error here; any JSON error falls back to the full path anyway.
_PEEK_STATE = (
    "SELECT CASE WHEN json_valid(data) THEN json_extract(data, '$.state') END"
    " FROM records WHERE kind = 'breaker' AND key = ?"
)
# A success of a closed breaker with no failure in its window (the breaker's _record, for
# that case): calls and successes + 1, "0" appended to the window (kept to its size),
# consecutive_failures stays 0; no failure rate can be reached with no failure in the window.
# The state, config id and consecutive failures are compared as one JSON array (one parse).
# A window that is not text makes instr() NULL: no match.
_COUNT_SUCCESS = (
    "UPDATE records SET data = json_set(data,"
    " '$.calls', json_extract(data, '$.calls') + 1,"
    " '$.successes', json_extract(data, '$.successes') + 1,"
    " '$.window', substr(json_extract(data, '$.window') || '0', -?)),"
    " updated_at = ?"
    " WHERE kind = 'breaker' AND key = ? AND json_valid(data)"
    " AND json_extract(data, '$.state', '$.config_id', '$.consecutive_failures') = ?"
    " AND json_type(data, '$.calls') = 'integer'"
    " AND json_type(data, '$.successes') = 'integer'"
    " AND instr(json_extract(data, '$.window'), '1') = 0"
)

# A failure of a closed breaker that opens nothing (the breaker's _record, for that case):
# calls, failures and consecutive_failures + 1 (slow_calls + ?3), "1" appended to the
# window (kept to its size), the reason and its wall time. Only when consecutive failures
# stay under the threshold and, with a rate threshold, the new window does not reach it:
# the same arithmetic as _check_rate (its length below min(minimum_calls, window size), or
# 100.0 * its "1"s / its length under the threshold), so every opening goes the full path.
_COUNT_FAILURE = (
    "UPDATE records SET data = json_set(data,"
    " '$.calls', json_extract(data, '$.calls') + 1,"
    " '$.failures', json_extract(data, '$.failures') + 1,"
    " '$.consecutive_failures', json_extract(data, '$.consecutive_failures') + 1,"
    " '$.last_failure', ?1,"
    " '$.last_failure_at', ?2,"
    " '$.slow_calls', json_extract(data, '$.slow_calls') + ?3,"
    " '$.window', substr(json_extract(data, '$.window') || '1', -?4)),"
    " updated_at = ?5"
    " WHERE kind = 'breaker' AND key = ?6 AND json_valid(data)"
    " AND json_extract(data, '$.state', '$.config_id') = ?7"
    " AND json_type(data, '$.consecutive_failures') = 'integer'"
    " AND json_extract(data, '$.consecutive_failures') + 1 < ?8"
    " AND json_type(data, '$.calls') = 'integer'"
    " AND json_type(data, '$.failures') = 'integer'"
    " AND json_type(data, '$.slow_calls') = 'integer'"
    " AND json_type(data, '$.window') = 'text'"
    # The rate over the new window W: no threshold ?9, or W shorter than ?10, or
    # 100.0 * (W's "1"s) / len(W) under ?9 (W holds at least this "1": never empty).
    " AND (?9 IS NULL OR length(substr(json_extract(data, '$.window') || '1', -?4)) < ?10"
    " OR 100.0 * (length(substr(json_extract(data, '$.window') || '1', -?4))"
    " - length(replace(substr(json_extract(data, '$.window') || '1', -?4), '1', '')))"
    " / length(substr(json_extract(data, '$.window') || '1', -?4)) < ?9)"
)

# A rejection of an open breaker that makes no transition (the breaker's _admit, for that
# case, with its arithmetic): rejections + 1. UPDATE ... RETURNING needs SQLite 3.35.
_RETURNING = tuple(int(part) for part in sqlite3.sqlite_version.split(".")[:3]) >= (3, 35, 0)
_COUNT_REJECTION = (
    "UPDATE records SET data = json_set(data,"
    " '$.rejections', json_extract(data, '$.rejections') + 1),"
    " updated_at = :at"
    " WHERE kind = 'breaker' AND key = :key AND json_valid(data)"
    " AND json_extract(data, '$.state', '$.config_id') = :id"
    " AND json_type(data, '$.rejections') = 'integer'"
    " AND json_type(data, '$.opened_at') IN ('integer', 'real')"
    " AND json_extract(data, '$.opened_at') <= :now"
    " AND (json_type(data, '$.open_for') IN ('integer', 'real')"
    " AND json_extract(data, '$.open_for') - (:now - json_extract(data, '$.opened_at')) > 0"
    " OR json_type(data, '$.open_for') = 'null' AND json_type(data, '$.forced') = 'true')"
    " RETURNING json_extract(data, '$.opened_at'), json_extract(data, '$.open_for')"
)


def _json_unusable(exc: sqlite3.DatabaseError) -> bool:
    """An SQLite built without JSON functions, or a record that is not JSON."""
    text = str(exc)
    return "no such function" in text or "JSON" in text


def _decode(text: Any) -> Record:
    """A record's JSON text as a dict; ValueError if it is not readable JSON."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not isinstance(text, str):
        raise ValueError(f"expected JSON text, got {type(text).__name__}")
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _file_size(path: str | Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.stat(str(path) + suffix).st_size
    return total


def _insert_event(conn: sqlite3.Connection, event: BreakerEvent) -> int:
    """One breaker event row (this host's name when the event carries none); its id."""
    cur = conn.execute(
        "INSERT INTO breaker_events (name, from_state, to_state, reason, at, host)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (event.name, event.from_state, event.to_state, event.reason, event.at,
         event.host or hostname()),
    )  # fmt: skip
    assert cur.lastrowid is not None
    return cur.lastrowid
