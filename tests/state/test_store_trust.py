"""The state store refuses what is not its own and survives what is (issue 13).

Real SQLite files, the real CLI in a subprocess, and another user via setpriv.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl.errors import StateError
from reliactl.state.base import RunRecord
from reliactl.state.sqlite import KEEP_CORRUPT, open_store


def reliactl(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def config_for(tmp_path: Path, db: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state:\n  path: '{db}'\n")
    return cfg


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"root:x:0:0:root:/root:/bin/bash\n" * 20, id="passwd-copy"),
        pytest.param(os.urandom(8192), id="random-bytes"),
    ],
)
def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes
) -> None:
    """Read-only commands exit 125 and never rename or rewrite a file that is not a store."""
    db = tmp_path / "state.db"
    db.write_bytes(content)
    cfg = config_for(tmp_path, db)
    for args in (["breaker", "list"], ["runs"]):
        result = reliactl(cfg, *args)
        assert result.returncode == 125, result.stderr
        assert "not a reliactl state store" in result.stderr and "Traceback" not in result.stderr
    assert db.read_bytes() == content
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("state.db") and p != db]


def test_run_still_runs_its_job_beside_a_refused_store(tmp_path: Path) -> None:
    """`run` warns that history is off and runs the job; the foreign file is not touched."""
    db = tmp_path / "state.db"
    db.write_text("precious data of another program\n")
    result = reliactl(config_for(tmp_path, db), "run", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr
    assert "not a reliactl state store" in result.stderr
    assert db.read_text() == "precious data of another program\n"


def test_planted_tripped_breaker_in_another_users_store_does_not_stop_roots_job(
    shared_dir: Path, tmp_path: Path
) -> None:
    """nobody plants an open breaker; root's `run --breaker` refuses the store and runs."""
    state_dir = shared_dir / "state"
    db = state_dir / "state.db"
    plant = (
        "import os, sys\n"
        "os.mkdir(sys.argv[1], 0o700)\n"
        "from reliactl.breaker import get_persistent_breaker\n"
        "from reliactl.config import Config\n"
        "from reliactl.state.sqlite import open_store\n"
        "store = open_store(sys.argv[1] + '/state.db')\n"
        "get_persistent_breaker('job', Config(), store).trip()\n"
    )
    subprocess.run([*NOBODY, sys.executable, "-c", plant, str(state_dir)], check=True)
    assert db.stat().st_uid == 65534
    marker = tmp_path / "ran"
    cfg = config_for(tmp_path, db)
    result = reliactl(cfg, "run", "--breaker", "job", "--", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert "owned by nobody (uid 65534)" in result.stderr, result.stderr
    listing = reliactl(cfg, "breaker", "list")
    assert listing.returncode == 125 and "owned by nobody" in listing.stderr


def test_state_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    """A 0777 state directory (anyone could plant a store or -wal there) is a clear error."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(0o777)
    with pytest.raises(StateError, match=r"state directory .* writable by others \(mode 0777"):
        open_store(state_dir / "state.db")


def test_store_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    """A store file anyone may write is refused and not opened."""
    db = tmp_path / "state.db"
    open_store(db).close()
    db.chmod(0o666)
    with pytest.raises(StateError, match="writable by others"):
        open_store(db)


def test_garbage_schema_version_is_corruption_and_the_job_runs(tmp_path: Path) -> None:
    """schema_version 'banana' is moved aside as corruption; `run` then runs and records it."""
    db = tmp_path / "state.db"
    with open_store(db) as store:
        store.conn.execute("UPDATE schema_version SET version = 'banana'")
    cfg = config_for(tmp_path, db)
    result = reliactl(cfg, "run", "--breaker", "b", "--name", "job", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "moved it to" in result.stderr and "banana" in result.stderr
    assert len(list(tmp_path.glob("state.db.corrupt-*"))) >= 1
    assert reliactl(cfg, "runs", "job", "--last").returncode == 0


def test_one_unreadable_record_is_reported_and_skipped(tmp_path: Path) -> None:
    """Bad JSON, non-UTF-8 bytes, wrong column types: listings go on and say what they skip."""
    db = tmp_path / "state.db"
    with open_store(db) as store:
        store.update("breaker", "good", lambda r: {"state": "closed"})
        store.update("breaker", "badjson", lambda r: {"state": "open"})
        store.update("breaker", "badutf8", lambda r: {"state": "open"})
        store.add_run(RunRecord("good-job", "true", 10.0, 11.0, 1, 0, "success"))
        bad_time = store.add_run(RunRecord("bad-time", "true", 10.0, 11.0, 1, 0, "success"))
        bad_data = store.add_run(RunRecord("bad-data", "true", 10.0, 11.0, 1, 0, "success"))
        conn = store.conn
        conn.execute("UPDATE records SET data = '{not json' WHERE key = 'badjson'")
        conn.execute("UPDATE records SET data = CAST(X'7b22ff22' AS TEXT) WHERE key = 'badutf8'")
        conn.execute("UPDATE runs SET started_at = 'noon' WHERE id = ?", (bad_time,))
        conn.execute("UPDATE runs SET data = '[[[' WHERE id = ?", (bad_data,))
    cfg = config_for(tmp_path, db)
    listing = reliactl(cfg, "breaker", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert "good" in listing.stdout
    assert "skipped unreadable breaker record 'badjson'" in listing.stderr
    assert "skipped unreadable breaker record 'badutf8'" in listing.stderr
    runs = reliactl(cfg, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert "good-job" in runs.stdout and "bad-time" not in runs.stdout
    assert f"skipped unreadable run {bad_time}" in runs.stderr
    assert f"skipped unreadable run {bad_data}" in runs.stderr


def test_breaker_show_reads_only_the_breaker_it_shows(tmp_path: Path) -> None:
    """`breaker show NAME` reads NAME's record alone (issue 21: it loaded and snapshotted
    every breaker to show one, ~1 s with 10k): another breaker's unreadable record is not
    even seen, while an unknown name still lists the known ones."""
    db = tmp_path / "state.db"
    with open_store(db) as store:
        store.update("breaker", "good", lambda r: {"state": "open", "opened_at": 1.0})
        store.update("breaker", "other", lambda r: {"state": "closed"})
        store.conn.execute("UPDATE records SET data = '{not json' WHERE key = 'other'")
    cfg = config_for(tmp_path, db)
    shown = reliactl(cfg, "breaker", "show", "good", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["breaker"]["state"] == "open"
    assert "other" not in shown.stderr, shown.stderr
    unknown = reliactl(cfg, "breaker", "show", "goo")
    assert unknown.returncode == 2, unknown.stderr
    assert "did you mean 'good'" in unknown.stderr


def test_corrupt_copies_are_bounded(tmp_path: Path) -> None:
    """Repeated corruption keeps only the newest KEEP_CORRUPT quarantined copies."""
    db = tmp_path / "state.db"
    for round_ in range(KEEP_CORRUPT + 4):
        with open_store(db) as store:
            store.update("kv", "n", lambda r, i=round_: {"n": i})
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.write_bytes(bytes(db.stat().st_size))  # a crash left NUL bytes
        os.utime(db)
        with open_store(db, warn=lambda _m: None) as store:
            assert store.get("kv", "n") is None
    kept = {p.name.split("-wal")[0].split("-shm")[0] for p in tmp_path.glob("state.db.corrupt-*")}
    assert len(kept) == KEEP_CORRUPT, sorted(kept)


def test_a_store_interrupted_before_its_schema_is_reused(tmp_path: Path) -> None:
    """An SQLite file with no tables at all (creation killed early) is taken, not refused."""
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    with open_store(db) as store:
        store.update("kv", "x", lambda r: {"ok": 1})
        assert store.get("kv", "x") == {"ok": 1}
