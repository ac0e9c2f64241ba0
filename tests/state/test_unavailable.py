"""Redis away: state.on_unavailable (local, open, closed), the local outbox and its shipping,
`state info/migrate/sync`, and the faults (kill -9, full, wrong password) against a real
redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redishelpers import free_port

from reliactl.errors import CircuitOpenError, StateUnavailableError
from reliactl.state.base import BreakerEvent, RunRecord

HANG_BOUND = 60.0  # generous: only detects a hang


def reliactl(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def config_for(tmp_path: Path, url: str, mode: str = "local", **extra: str) -> Any:
    from reliactl.config import load

    env = {
        "RELIACTL_STATE__URL": url,
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_STATE__ON_UNAVAILABLE": mode,
        "RELIACTL_STATE__CONNECT_TIMEOUT": "0.5",
        "RELIACTL_STATE__OPERATION_TIMEOUT": "0.3",
        **extra,
    }
    return load(None, environ=env, search=False).config


def open_with(config: Any) -> tuple[Any, list[str]]:
    from reliactl.state import open_state

    warnings: list[str] = []
    return open_state(config, warn=warnings.append), warnings


def sqlite_at(path: Path) -> Any:
    from reliactl.state import open_sqlite_store

    return open_sqlite_store(path, max_rows=10_000, warn=lambda m: None)


def run(name: str, ended: bool = True, started_at: float | None = None) -> RunRecord:
    now = time.time()
    return RunRecord(
        name=name,
        command="true",
        started_at=now if started_at is None else started_at,
        ended_at=now if ended else None,
        attempts=1 if ended else 0,
        exit_code=0 if ended else None,
        outcome="success" if ended else "running",
        data={"host": "web-1"},
    )


# --------------------------------------------------------------------------- modes


def test_local_mode_falls_back_to_the_host_store_with_one_warning(tmp_path: Path) -> None:
    """Default mode local: Redis unreachable at open gives the host's SQLite store (records
    written there) and exactly one warning naming the mode; nothing raises."""
    config = config_for(tmp_path, dead_url())
    assert config.state.on_unavailable == "local"  # the default for a Redis URL
    store, warnings = open_with(config)
    with store:
        store.update("breaker", "api", lambda r: {"state": "closed", "calls": 1})
        store.update("breaker", "api", lambda r: {**(r or {}), "calls": r["calls"] + 1})
        assert store.get("breaker", "api") == {"state": "closed", "calls": 2}
    assert len(warnings) == 1, warnings
    assert "cannot reach Redis" in warnings[0] and "on_unavailable: local" in warnings[0]
    with sqlite_at(tmp_path / "local.db") as local:
        assert local.get("breaker", "api") == {"state": "closed", "calls": 2}


def test_open_mode_refuses_breaker_calls_and_rate_tokens(tmp_path: Path) -> None:
    """Mode open: every persisted breaker reads as open (calls refused with CircuitOpenError,
    nothing stored) and a shared rate limit hands out no token."""
    from reliactl.breaker import get_persistent_breaker
    from reliactl.ratelimit import RateLimiter

    config = config_for(tmp_path, dead_url(), "open")
    store, warnings = open_with(config)
    with store:
        breaker = get_persistent_breaker("api", config, store)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        limiter = RateLimiter("60/minute", key="openai", store=store)
        with pytest.raises(StateUnavailableError, match="on_unavailable is open"):
            limiter.try_acquire()
    assert len(warnings) == 1 and "on_unavailable: open" in warnings[0]
    with sqlite_at(tmp_path / "local.db") as local:
        assert local.items("breaker") == {}


def test_closed_mode_lets_calls_through_and_keeps_breakers_in_memory(tmp_path: Path) -> None:
    """Mode closed: breaker calls go through (counted in this process only, never written to
    the host's store) and rate limits admit."""
    from reliactl.breaker import get_persistent_breaker
    from reliactl.ratelimit import RateLimiter

    config = config_for(tmp_path, dead_url(), "closed")
    store, _ = open_with(config)
    with store:
        breaker = get_persistent_breaker("api", config, store)
        assert [breaker.call(lambda: 7) for _ in range(3)] == [7, 7, 7]
        assert store.get("breaker", "api")["calls"] == 3
        assert RateLimiter("60/minute", key="openai", store=store).try_acquire()
    with sqlite_at(tmp_path / "local.db") as local:
        assert local.items("breaker") == {}


def test_error_mode_raises_unavailable(tmp_path: Path) -> None:
    """Mode error keeps the first slice's rule: opening raises StateUnavailableError."""
    from reliactl.state import open_state

    with pytest.raises(StateUnavailableError):
        open_state(config_for(tmp_path, dead_url(), "error"))


# --------------------------------------------------------------------------- queue and sync


def test_history_queued_while_away_ships_once_marked_delayed(
    tmp_path: Path, redis_server: Any, namespace: str
) -> None:
    """A run and a breaker event recorded while Redis is away land in the host's store and its
    outbox; sync ships them marked delayed with their host; a second sync, and a crash
    between shipping and dequeuing (simulated by shipping the same origin again), never
    duplicate them."""
    from reliactl.state.fleet import origin_of, sync

    store, _ = open_with(config_for(tmp_path, dead_url()))
    with store:
        rid = store.add_run(run("nightly", ended=False))
        store.finish_run(rid, run("nightly"))
        store.add_event(BreakerEvent("api", "closed", "open", "3 failures", time.time(), "web-1"))
    config = config_for(tmp_path, redis_server.url, RELIACTL_STATE__NAMESPACE=namespace)
    from reliactl.state import _open_redis
    from reliactl.state.url import parse_state_url

    remote = _open_redis(config, parse_state_url(redis_server.url))
    with remote, sqlite_at(tmp_path / "local.db") as local:
        assert local.queued_count() == 2
        first = sync(remote, local)
        assert (first.shipped, first.duplicates, first.left) == (2, 0, 0)
        assert sync(remote, local).shipped == 0
        assert not (tmp_path / "local.db.queued").exists()
        again = local.run_by_id(rid)
        assert again is not None
        assert not remote.ship_run(origin_of("run", str(local.path), rid, again.started_at), again)
        (shipped,) = remote.runs("nightly")
        assert shipped.data["delayed"] is True and shipped.data["host"] == "web-1"
        assert shipped.outcome == "success"
        (event,) = remote.events("api")
        assert event.host == "web-1" and event.to_state == "open"


def test_a_run_started_on_redis_and_ended_while_away_is_finished_in_place(
    tmp_path: Path, own_redis: Any
) -> None:
    """Redis hangs (SIGSTOP) between a run's start and its end: the end is queued with the
    run's Redis id and sync finishes that very record (one run, not two)."""
    from reliactl.state.ops import sync_queued

    server = own_redis()
    config = config_for(tmp_path, server.url)
    store, warnings = open_with(config)
    with store:
        rid = store.add_run(run("nightly", ended=False, started_at=1000.0))
        server.stop_signal()
        try:
            store.finish_run(rid, run("nightly", started_at=1000.0))
        finally:
            server.cont_signal()
    assert len(warnings) == 1 and "did not answer" in warnings[0]
    report = sync_queued(config)
    assert report is not None and report.shipped == 1
    store, _ = open_with(config)
    with store:
        (only,) = store.runs()
        assert only.id == rid and only.outcome == "success" and only.data["delayed"] is True


def test_a_run_whose_id_was_reused_after_data_loss_never_overwrites_another(
    redis_server: Any, namespace: str
) -> None:
    """Redis restarted without its data gives run ids from 1 again: finishing (or shipping the
    end of) a run started before never overwrites the other run that got its id since; the
    end is added as a run of its own (not lost)."""
    from reliactl.state.redis import open_redis_store
    from reliactl.state.url import parse_state_url

    with open_redis_store(parse_state_url(redis_server.url), namespace=namespace) as store:
        before = RunRecord("nightly", "true", 1000.0, data={"host": "web-1"})
        rid = store.add_run(before)
        for key in redis_server.client().scan_iter(match=f"{namespace}:*"):
            redis_server.client().delete(key)  # what a restart without persistence leaves
        other = store.add_run(RunRecord("backup", "true", 2000.0, data={"host": "web-2"}))
        assert other == rid  # the id was handed out again
        ended = RunRecord("nightly", "true", 1000.0, 1001.0, 1, 0, "success", {"host": "web-1"})
        store.finish_run(rid, ended)
        (backup,) = store.runs("backup")
        assert (backup.id, backup.outcome) == (other, "running")
        (nightly,) = store.runs("nightly")
        assert nightly.outcome == "success" and nightly.id != other
        assert store.ship_run("run|web-1|x|1|1000.0", ended, remote_id=rid)  # added, not merged
        (backup,) = store.runs("backup")
        assert (backup.id, backup.outcome) == (other, "running")


def test_next_command_ships_and_runs_shows_host_and_delayed(tmp_path: Path, own_redis: Any) -> None:
    """End to end: `run` with Redis down succeeds with one warning line; once Redis answers,
    the next `runs` ships the queued run and shows it with its HOST and (delayed); JSON has
    host and delayed."""
    env = {
        "RELIACTL_STATE__URL": dead_url(),
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_HOSTNAME": "web-3",
    }
    proc = reliactl("run", "--name", "nightly", "--", "true", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "cannot reach Redis" in warnings[0], proc.stderr
    server = own_redis()
    env["RELIACTL_STATE__URL"] = server.url
    proc = reliactl("runs", env=env)
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()[:2]
    assert "HOST" in header.split()
    assert "web-3" in row.split() and "(delayed)" in row
    doc = json.loads(reliactl("runs", "--json", env=env).stdout)
    assert [(r["host"], r["delayed"]) for r in doc["runs"]] == [("web-3", True)]
    sync = reliactl("state", "sync", "--json", env=env)
    assert json.loads(sync.stdout)["shipped"] == 0  # shipped already, never twice


# --------------------------------------------------------------------------- operator commands


def test_state_info_migrate_and_sync_commands(tmp_path: Path, own_redis: Any) -> None:
    """`state info` names backend, redacted location, server version and persistence;
    `state migrate --to` copies records and history once (a second run copies nothing)."""
    server = own_redis(password="s3cret-pw")
    local_env = {"RELIACTL_STATE__PATH": str(tmp_path / "local.db"), "RELIACTL_HOSTNAME": "h1"}
    assert reliactl("run", "--name", "nightly", "--", "true", env=local_env).returncode == 0
    with sqlite_at(tmp_path / "local.db") as local:
        local.update("breaker", "api", lambda r: {"state": "open", "forced": True})
        local.update("alert", "pager:disk", lambda r: {"last_sent": 1.0})
        local.add_event(BreakerEvent("api", "closed", "open", "tripped", time.time(), "h1"))
    info = json.loads(reliactl("state", "info", "--json", env=local_env).stdout)
    assert info["backend"] == "sqlite" and info["counts"]["runs"] == 1

    first = reliactl("state", "migrate", "--to", server.url, "--json", env=local_env)
    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["records"], json.loads(first.stdout)["runs"]) == (2, 1)
    assert "s3cret-pw" not in first.stdout + first.stderr
    second = json.loads(
        reliactl("state", "migrate", "--to", server.url, "--json", env=local_env).stdout
    )
    assert (second["records"], second["runs"], second["events"]) == (0, 0, 0)
    assert second["records_present"] == 2 and second["history_present"] == 2

    redis_env = {**local_env, "RELIACTL_STATE__URL": server.url}
    proc = reliactl("state", "info", env=redis_env)
    assert proc.returncode == 0, proc.stderr
    assert "redis://:***@127.0.0.1" in proc.stdout and "s3cret-pw" not in proc.stdout
    assert "persistence is off" in proc.stdout
    doc = json.loads(reliactl("state", "info", "--json", env=redis_env).stdout)
    assert doc["server"]["version"].split(".")[0].isdigit()
    assert doc["counts"]["breaker"] == 1 and doc["counts"]["runs"] == 1
    shown = reliactl("breaker", "show", "api", env=redis_env)
    assert "closed -> open: tripped  on h1" in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["state", "migrate", "--to", "mysql://db/x"], 78, "expected a path"),
        (["state", "migrate", "--to", "/tmp/x.db"], 78, "expected a redis://"),
        (["state", "info"], 75, "cannot reach Redis"),
        (["state", "sync"], 75, "cannot reach Redis"),
    ],
)
def test_state_commands_fail_in_one_line(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    """Bad URLs (78: the problem line, then the usual summary line of a configuration error)
    and an unreachable Redis (75: one line) never give a traceback."""
    env = {"RELIACTL_STATE__PATH": str(tmp_path / "local.db")}
    if args[1] != "migrate":
        env["RELIACTL_STATE__URL"] = dead_url()
    else:
        reliactl("run", "--", "true", env=env)
    proc = reliactl(*args, env=env)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == (2 if code == 78 else 1), proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- faults


def test_wrong_password_is_a_config_error(own_redis: Any, tmp_path: Path) -> None:
    """A refused password is one line, exit 78 (fix the configuration), never shown, and
    never a silent fall back to the local store."""
    server = own_redis(password="right-one")
    env = {
        "RELIACTL_STATE__URL": f"redis://:wrong-one@127.0.0.1:{server.port}/0",
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
    }
    proc = reliactl("state", "info", env=env)
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication failed" in lines[0]
    assert "wrong-one" not in proc.stderr


def test_full_redis_is_one_line_from_state_migrate(own_redis: Any, tmp_path: Path) -> None:
    """A full Redis (maxmemory tiny, noeviction) refuses the copy with one clear line."""
    server = own_redis("--maxmemory-policy", "noeviction")
    server.client().config_set("maxmemory", "1")  # below what it uses: writes are refused
    env = {"RELIACTL_STATE__PATH": str(tmp_path / "local.db")}
    assert reliactl("run", "--", "true", env=env).returncode == 0
    proc = reliactl("state", "migrate", "--to", server.url, env=env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Redis is full" in lines[0], proc.stderr


LOOP = """
import os, sys, time
from reliactl.breaker import get_persistent_breaker
from reliactl.config import get_reliability_config
from reliactl.state import open_state
store = open_state()
breaker = get_persistent_breaker("api", get_reliability_config(), store)
print("ready", flush=True)
fail, stop = sys.argv[1], sys.argv[2]
def call():
    if os.path.exists(fail):
        raise OSError("down")
while not os.path.exists(stop):
    try:
        breaker.call(call)
    except Exception:
        pass
    time.sleep(0.005)
print("calls", breaker.snapshot().calls, flush=True)
"""


def test_redis_killed_while_breakers_record_falls_back_and_syncs_later(
    own_redis: Any, tmp_path: Path
) -> None:
    """kill -9 of Redis under a process calling a persisted breaker (mode local): no
    traceback, one warning, the calls go on and are recorded in the host's store, and the
    transition that happened meanwhile reaches Redis with `state sync` once it is back."""
    server = own_redis()
    fail, stop = tmp_path / "fail", tmp_path / "stop"
    env = {
        "RELIACTL_STATE__URL": server.url,
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "RELIACTL_HOSTNAME": "web-9",
        "RELIACTL_CIRCUIT_BREAKER__FAILURE_THRESHOLD": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(fail), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        server.kill()
        deadline = time.monotonic() + HANG_BOUND
        while not (tmp_path / "local.db").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        fail.touch()  # the service fails now: the breaker trips while Redis is away
        with_events = False
        while not with_events and time.monotonic() < deadline:
            time.sleep(0.05)
            with sqlite_at(tmp_path / "local.db") as local:
                with_events = bool(local.events("api"))
        stop.touch()
        out, err = proc.communicate(timeout=HANG_BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.startswith("calls "), out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "on_unavailable: local" in lines[0], err
    with sqlite_at(tmp_path / "local.db") as local:
        record = local.get("breaker", "api")
        assert record is not None and record["state"] == "open"
        assert local.queued_count() >= 1
    back = own_redis()
    env["RELIACTL_STATE__URL"] = back.url
    sync = reliactl("state", "sync", "--json", env=env)
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["shipped"] >= 1
    from reliactl.state.redis import open_redis_store
    from reliactl.state.url import parse_state_url

    with open_redis_store(parse_state_url(back.url)) as remote:
        events = remote.events("api")
    assert any(e.to_state == "open" and e.host == "web-9" for e in events), events


def test_a_store_from_before_the_host_column_keeps_working(tmp_path: Path) -> None:
    """A schema-3 SQLite file (no host column, no outbox) opens, is migrated in place, keeps
    its events (host unknown: None) and records the host of new ones."""
    import sqlite3

    from reliactl.state.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (3)")
    for step in MIGRATIONS[:3]:
        conn.executescript(step)
    conn.execute(
        "INSERT INTO breaker_events (name, from_state, to_state, reason, at)"
        " VALUES ('api', 'closed', 'open', 'old', 1.0)"
    )
    conn.commit()
    conn.close()
    with sqlite_at(path) as store:
        store.add_event(BreakerEvent("api", "open", "closed", "new", 2.0, "web-2"))
        assert [(e.reason, e.host) for e in store.events("api")] == [
            ("new", "web-2"),
            ("old", None),
        ]
        assert store.queued_count() == 0


def _doctor(tmp_path: Path, url: str) -> dict[str, Any]:
    from reliactl.doctor import diagnose

    env = {"RELIACTL_STATE__URL": url, "RELIACTL_STATE__PATH": str(tmp_path / "local.db")}
    report = diagnose(None, environ={**os.environ, **env})
    return {f.check: f for f in report.findings}


def test_doctor_checks_redis_version_and_persistence(tmp_path: Path, own_redis: Any) -> None:
    """doctor: a reachable Redis is ok with its version (6+); with neither RDB saves nor an
    append-only file it warns that breaker state and held locks do not survive a restart; with
    appendonly yes it does not; an unreachable Redis fails in one line."""
    server = own_redis()
    found = _doctor(tmp_path, server.url)
    assert found["redis"].status == "ok", found["redis"]
    assert int(found["redis"].message.split("Redis ")[1].split(".")[0]) >= 6
    assert found["redis persistence"].status == "warn"
    assert "do not survive a Redis restart" in found["redis persistence"].message
    server.client().config_set("appendonly", "yes")
    assert "redis persistence" not in _doctor(tmp_path, server.url)
    down = _doctor(tmp_path, dead_url())["redis"]
    assert down.status == "fail" and "cannot reach Redis" in down.message
    assert "\n" not in down.message


def test_a_long_lived_process_goes_back_to_redis_and_ships_its_queue(
    tmp_path: Path, own_redis: Any
) -> None:
    """A process that fell back (Redis hung) asks Redis again after retry_after: the runs it
    queued meanwhile are shipped, new records go to Redis again, and it says so in one line."""
    from reliactl.state import _open_redis, local_store_opener
    from reliactl.state.fleet import FleetStore
    from reliactl.state.url import parse_state_url

    server = own_redis()
    config = config_for(tmp_path, server.url)
    remote = _open_redis(config, parse_state_url(server.url))
    warnings: list[str] = []
    now = [0.0]
    store = FleetStore(
        remote,
        local_store_opener(config),
        mode="local",
        location=server.url,
        warn=warnings.append,
        retry_after=30.0,
        monotonic=lambda: now[0],
    )
    with store:
        server.stop_signal()
        try:
            rid = store.add_run(run("during", ended=False))
            store.finish_run(rid, run("during"))
            store.update("kv", "k", lambda r: {"where": "local"})
        finally:
            server.cont_signal()
        now[0] = 10.0  # not yet: still local, Redis not asked
        assert store.get("kv", "k") == {"where": "local"}
        now[0] = 31.0
        store.update("kv", "k", lambda r: {"where": "redis"})
        assert [r.name for r in remote.runs()] == ["during"]
        assert remote.runs()[0].data["delayed"] is True
        assert remote.get("kv", "k") == {"where": "redis"}
    assert len(warnings) == 2, warnings
    assert "answers again; 1 queued items shipped, 0 left" in warnings[1]


def test_shipped_history_and_its_origins_stay_bounded(redis_server: Any, namespace: str) -> None:
    """Shipping keeps Redis's history bounded: runs and the events stream stay within
    max_history, and so do the origin sets that make shipping idempotent."""
    from reliactl.state.redis import open_redis_store
    from reliactl.state.url import parse_state_url

    with open_redis_store(
        parse_state_url(redis_server.url), namespace=namespace, max_rows=5
    ) as remote:
        for i in range(12):
            remote.ship_run(f"run|h|p|{i}|0", run(f"r{i}"))
            event = BreakerEvent("api", "closed", "open", str(i), float(i), "h")
            remote.ship_event(f"event|h|p|{i}|0", event, {})
        client = remote.client
        assert [r.name for r in remote.runs()] == [f"r{i}" for i in range(11, 6, -1)]
        assert client.zcard(f"{namespace}:h:{{runs}}:origins") == 5
        assert client.xlen(f"{namespace}:h:{{events}}") == 5
        assert client.zcard(f"{namespace}:h:{{events}}:origins") == 5


def test_state_info_and_migrate_read_the_sqlite_store_state_url_names(tmp_path: Path) -> None:
    """With state.url = sqlite:///path, `state info` describes that file (not state.path)."""
    from reliactl.state.ops import state_info

    named = tmp_path / "named.db"
    with sqlite_at(named) as store:
        store.add_run(run("x"))
    info = state_info(config_for(tmp_path, f"sqlite://{named}"))
    assert info.location == str(named) and info.counts["runs"] == 1
