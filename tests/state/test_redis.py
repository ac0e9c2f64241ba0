"""The Redis backend: configuration, redaction, lazy import, and the ways Redis fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reliactl.errors import StateError, StateUnavailableError
from reliactl.state.url import StateURLError, parse_state_url, redact_url

HANG_BOUND = 30.0  # generous: only detects a hang, never measures speed


def reliactl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


# --------------------------------------------------------------------------- state.url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", ("sqlite", "/default.db", "", 0)),
        ("/var/lib/x.db", ("sqlite", "/var/lib/x.db", "", 0)),
        ("sqlite:///var/lib/x.db", ("sqlite", "/var/lib/x.db", "", 0)),
        ("redis://h.example:6380/2", ("redis", "", "h.example", 2)),
        ("redis://:pw@10.0.0.1", ("redis", "", "10.0.0.1", 0)),
        ("rediss://user:pw@h:6379/0", ("redis", "", "h", 0)),
        ("unix:///run/redis.sock?db=3", ("redis", "/run/redis.sock", "", 3)),
    ],
)
def test_state_url_forms(url: str, expected: tuple[str, str, str, int]) -> None:
    """Every documented state.url form parses to its backend, path/host and database."""
    parsed = parse_state_url(url, "/default.db")
    assert (parsed.backend, parsed.path, parsed.host, parsed.db) == expected


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "sqlite://relative.db", "redis://:s3cret@host:notaport/0", "redis://h/x"],
)
def test_bad_state_url_is_refused_without_showing_the_password(url: str) -> None:
    """A URL that cannot be used is a StateURLError whose message never holds the password."""
    with pytest.raises(StateURLError) as info:
        parse_state_url(url)
    assert "s3cret" not in str(info.value)


def test_redact_url_hides_passwords_and_named_secrets() -> None:
    """Passwords in any URL of a message, and listed secrets, are replaced by ***."""
    text = "redis://u:p%40ss@h:1/0 and rediss://:x@y then hunter2"
    out = redact_url(text, ("hunter2",))
    assert out == "redis://u:***@h:1/0 and rediss://:***@y then ***"


def test_config_show_redacts_the_state_password(tmp_path: Path) -> None:
    """config show (YAML and JSON) shows the Redis URL without its password, nor the env one."""
    env = {
        "RELIACTL_STATE__URL": "redis://ops:s3cret@127.0.0.1:1/0",
        "RELIACTL_STATE__PASSWORD": "other-s3cret",
    }
    text = reliactl("config", "show", env=env)
    assert text.returncode == 0, text.stderr
    assert "s3cret" not in text.stdout
    assert "redis://ops:***@127.0.0.1:1/0" in text.stdout
    doc = json.loads(reliactl("config", "show", "--json", env=env).stdout)
    state = doc["config"]["state"] if "config" in doc else doc["state"]
    assert state["url"] == "redis://ops:***@127.0.0.1:1/0"
    assert state["password"] == "***"


def test_bad_state_url_is_a_config_error(tmp_path: Path) -> None:
    """An unusable state.url fails validation with exit 78 and names the setting."""
    proc = reliactl("config", "validate", env={"RELIACTL_STATE__URL": "mysql://db/x"})
    assert proc.returncode == 78, proc.stderr
    assert "state.url" in proc.stderr and "Traceback" not in proc.stderr


ERROR_MODE = {"RELIACTL_STATE__ON_UNAVAILABLE": "error"}


def imported_modules(*args: str, env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("command", [["run", "--", "true"], ["health", "--json"]])
def test_sqlite_run_and_health_never_import_redis(command: list[str]) -> None:
    """run and health on the default SQLite store never import redis-py (startup cost)."""
    modules = imported_modules(*command)
    assert "reliactl.cli" in modules  # the probe sees reliactl's own imports
    assert not {m for m in modules if m == "redis" or m.startswith("redis.")}


def test_a_redis_url_imports_our_client_not_redis_py(redis_server: Any, namespace: str) -> None:
    """The same probe sees the Redis store and its RESP client once state.url is a Redis URL
    (the probe can fail), and still no redis-py (issue 21 item 4)."""
    env = {"RELIACTL_STATE__URL": redis_server.url, "RELIACTL_STATE__NAMESPACE": namespace}
    modules = imported_modules("breaker", "list", env=env)
    assert {"reliactl.state.redis", "reliactl.state._resp"} <= modules
    assert not {m for m in modules if m == "redis" or m.startswith("redis.")}


# --------------------------------------------------------------------------- working setups


def open_url(url: str, **kwargs: Any) -> Any:
    from reliactl.state.redis import open_redis_store

    return open_redis_store(parse_state_url(url), **kwargs)


@pytest.mark.usefixtures("redis_client")
def test_unix_socket_url(redis_server: Any, namespace: str) -> None:
    """unix:///path/redis.sock reaches the same Redis as TCP."""
    with open_url(f"unix://{redis_server.socket}", namespace=namespace) as store:
        store.update("kv", "k", lambda r: {"via": "unix"})
        assert store.location == f"unix://{redis_server.socket}"
    with open_url(redis_server.url, namespace=namespace) as store:
        assert store.get("kv", "k") == {"via": "unix"}


def test_namespaces_keep_fleets_apart(redis_server: Any, namespace: str) -> None:
    """Two namespaces on one Redis never see each other's records or history."""
    from reliactl.state.base import RunRecord

    with (
        open_url(redis_server.url, namespace=namespace + "a") as a,
        open_url(redis_server.url, namespace=namespace + "b") as b,
    ):
        a.update("breaker", "api", lambda r: {"state": "open"})
        a.add_run(RunRecord("job", "x", 1.0))
        assert b.items("breaker") == {} and b.runs() == []
        assert a.items("breaker") == {"api": {"state": "open"}}


def test_password_from_env_and_from_file(own_redis: Any, tmp_path: Path) -> None:
    """RELIACTL_STATE__PASSWORD and state.password_file both authenticate to a protected Redis."""
    server = own_redis(password="pw-for-test")
    url = f"redis://127.0.0.1:{server.port}/0"
    env = {"RELIACTL_STATE__URL": url, "RELIACTL_STATE__PASSWORD": "pw-for-test"}
    proc = reliactl("breaker", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    secret = tmp_path / "pw"
    secret.write_text("pw-for-test\n")
    secret.chmod(0o600)
    env = {"RELIACTL_STATE__URL": url, "RELIACTL_STATE__PASSWORD_FILE": str(secret)}
    proc = reliactl("breaker", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr


def test_wrong_password_is_one_line_without_the_password(own_redis: Any) -> None:
    """A wrong password is one line that says authentication failed and never shows it."""
    server = own_redis(password="right-one")
    url = f"redis://:wrong-one@127.0.0.1:{server.port}/0"
    proc = reliactl("breaker", "list", env={"RELIACTL_STATE__URL": url})
    assert proc.returncode != 0
    assert_one_line_error(proc, "authentication failed")
    assert "wrong-one" not in proc.stderr and "redis://:***@" in proc.stderr


def test_nothing_listening_is_a_one_line_tempfail() -> None:
    """A Redis that is not running, with state.on_unavailable error: one line, exit 75 (try
    later), no traceback."""
    from redishelpers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = reliactl("breaker", "list", env={"RELIACTL_STATE__URL": url, **ERROR_MODE})
    assert proc.returncode == 75, proc.stderr
    assert_one_line_error(proc, "cannot reach Redis")


def test_run_and_event_record_the_host_name(redis_server: Any, namespace: str) -> None:
    """RELIACTL_HOSTNAME is the host recorded in runs and breaker events."""
    env = {
        "RELIACTL_STATE__URL": redis_server.url,
        "RELIACTL_STATE__NAMESPACE": namespace,
        "RELIACTL_HOSTNAME": "web-7",
        "RELIACTL_CIRCUIT_BREAKER__FAILURE_THRESHOLD": "1",
    }
    proc = reliactl("run", "--breaker", "api", "--", "false", env=env)
    assert proc.returncode == 1, proc.stderr
    with open_url(redis_server.url, namespace=namespace) as store:
        (run,) = store.runs()
        assert run.data["host"] == "web-7"
        events = store.events("api")
        assert events and events[0].host == "web-7" and events[0].to_state == "open"


def test_health_on_redis_checks_no_disk_named_after_the_url(
    redis_server: Any, namespace: str
) -> None:
    """health on Redis does not mistake the URL for the state directory's disk."""
    env = {"RELIACTL_STATE__URL": redis_server.url, "RELIACTL_STATE__NAMESPACE": namespace}
    proc = reliactl("health", "--json", env=env)
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert not [name for name in json.dumps(doc).split('"') if name.startswith("disk_usage:redis")]


# --------------------------------------------------------------------------- faults


@pytest.mark.usefixtures("redis_client")
def test_full_redis_is_a_clear_error(own_redis: Any) -> None:
    """A Redis at maxmemory with noeviction refuses writes: a StateError that says so."""
    server = own_redis("--maxmemory-policy", "noeviction")
    with open_url(server.url) as store:
        store.update("kv", "before", lambda r: {"ok": 1})
        server.client().config_set("maxmemory", "1")
        with pytest.raises(StateError, match="Redis is full"):
            store.update("kv", "after", lambda r: {"pad": "x" * 1000})
        assert store.get("kv", "before") == {"ok": 1}  # reads still work


def test_full_redis_from_the_cli_is_one_line(own_redis: Any) -> None:
    """breaker reset on a full Redis: one line naming maxmemory, no traceback."""
    server = own_redis("--maxmemory-policy", "noeviction")
    with open_url(server.url) as store:
        store.update("breaker", "api", lambda r: {"state": "open"})
    server.client().config_set("maxmemory", "1")
    proc = reliactl("breaker", "reset", "api", env={"RELIACTL_STATE__URL": server.url})
    assert proc.returncode != 0
    assert_one_line_error(proc, "maxmemory")


def test_sigstopped_redis_fails_within_the_timeouts(own_redis: Any) -> None:
    """A hung Redis (SIGSTOP) makes a command fail with one line instead of hanging (mode
    error; the fallback modes are pinned in test_unavailable.py)."""
    server = own_redis()
    server.stop_signal()
    try:
        started = time.monotonic()
        proc = reliactl(
            "breaker",
            "list",
            env={"RELIACTL_STATE__URL": server.url, **ERROR_MODE},
            timeout=HANG_BOUND,
        )
        assert time.monotonic() - started < HANG_BOUND
    finally:
        server.cont_signal()
    assert proc.returncode == 75, proc.stderr
    assert_one_line_error(proc, "did not answer")


@pytest.mark.usefixtures("redis_client")
def test_sigstop_while_a_store_is_in_use_raises_unavailable(own_redis: Any) -> None:
    """A store already connected gets StateUnavailableError when Redis stops answering."""
    server = own_redis()
    with open_url(server.url, operation_timeout=0.3) as store:
        store.update("kv", "k", lambda r: {"n": 1})
        server.stop_signal()
        try:
            with pytest.raises(StateUnavailableError, match="did not answer"):
                store.update("kv", "k", lambda r: {"n": 2})
        finally:
            server.cont_signal()
        assert store.get("kv", "k") == {"n": 1}  # answers again after SIGCONT


LOOP = """
import sys, time
from reliactl.breaker import get_persistent_breaker
from reliactl.config import get_reliability_config
from reliactl.errors import ReliactlError
from reliactl.state import open_state
store = open_state()
breaker = get_persistent_breaker("api", get_reliability_config(), store)
print("ready", flush=True)
try:
    while True:
        breaker.call(lambda: None)
        time.sleep(0.005)
except ReliactlError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(3)
"""


def test_redis_killed_while_breakers_record(own_redis: Any, tmp_path: Path) -> None:
    """kill -9 of Redis under a process calling a persisted breaker, with
    state.on_unavailable error: it stops with one clear StateError line, promptly, no
    traceback. A kill that lands between a call and the record of its outcome adds one
    warning first (the call's result stands, its outcome is not recorded); nothing else."""
    server = own_redis()
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RELIACTL_STATE__URL": server.url, **ERROR_MODE},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    server.kill()
    _, err = proc.communicate(timeout=HANG_BOUND)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    *warnings, last = err.strip().splitlines()
    assert last.startswith("error: state store redis://127.0.0.1:"), err
    assert len(warnings) <= 1, err
    for line in warnings:
        assert line.startswith("breaker 'api': could not record a call's outcome: state store"), err


def test_redis_killed_during_a_run_never_fails_the_job(own_redis: Any, tmp_path: Path) -> None:
    """kill -9 of Redis while `run --breaker` runs its job: the job's status passes through,
    the lost bookkeeping is a warning, no traceback, no hang."""
    server = own_redis()
    marker = tmp_path / "started"
    env = {"RELIACTL_STATE__URL": server.url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reliactl",
            "run",
            "--breaker",
            "api",
            "--",
            "sh",
            "-c",
            f"touch {marker}; sleep 1; exit 7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + HANG_BOUND
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    _, err = proc.communicate(timeout=HANG_BOUND)
    assert proc.returncode == 7, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- lost races


class RacingStore:
    """A real Redis store where another client writes ``theirs`` inside the first WATCH window
    of each update: the EXEC fails for real and the store must call the updater again."""

    def __init__(self, inner: Any, other: Any, theirs: dict[str, Any]) -> None:
        self.inner, self.other, self.theirs = inner, other, theirs
        self.calls = 0

    def update(self, kind: Any, key: str, fn: Any) -> Any:
        raced = False

        def wrapped(record: Any) -> Any:
            nonlocal raced
            self.calls += 1
            result = fn(record)
            if not raced:
                raced = True
                self.other.update(kind, key, lambda r: dict(self.theirs))
            return result

        return self.inner.update(kind, key, wrapped)

    def get(self, kind: Any, key: str) -> Any:
        return self.inner.get(kind, key)


@pytest.mark.usefixtures("redis_client")
def test_a_lost_race_reruns_the_updater_on_the_winners_record(
    redis_server: Any, namespace: str
) -> None:
    """update() after a lost WATCH race calls fn again with the winner's record and stores
    only that call's result: no increment is lost, none counted twice."""
    with (
        open_url(redis_server.url, namespace=namespace) as mine,
        open_url(redis_server.url, namespace=namespace) as other,
    ):
        racing = RacingStore(mine, other, {"n": 10})
        result = racing.update("kv", "c", lambda r: {"n": (r or {"n": 0})["n"] + 1})
        assert racing.calls == 2
        assert result == {"n": 11} and mine.get("kv", "c") == {"n": 11}


@pytest.mark.usefixtures("redis_client")
def test_an_alert_claim_lost_to_another_host_sends_nothing(
    redis_server: Any, namespace: str
) -> None:
    """Two hosts decide the same alert at once; the one whose claim loses the race sends
    nothing (its first, discarded decision must not leak out of the retried update)."""
    from reliactl.config import AlertSink
    from reliactl.health.alerts import AlertManager
    from reliactl.health.alertstate import Snapshot
    from reliactl.health.model import HealthMetric, Status
    from reliactl.health.records import RecordStore

    sink = AlertSink(name="log", kind="command", command=["true"])
    metric = HealthMetric("api", Status.CRITICAL, None, "down")
    now = time.time()
    entry = {"status": "OK", "claim": "host-b:1:1", "claimed_until": now + 5}
    theirs = {"checks": {"api": entry}}
    with (
        open_url(redis_server.url, namespace=namespace) as mine,
        open_url(redis_server.url, namespace=namespace) as other,
    ):
        racing = RacingStore(mine, other, theirs)
        manager = AlertManager([sink], RecordStore(racing))  # type: ignore[arg-type]
        snap = Snapshot({"api": Status.CRITICAL})
        assert manager._claim(sink, snap, "host-a:1:1", {"api": metric}) == []
        assert racing.calls == 2
        assert mine.get("alert", "notify:log") == theirs


@pytest.mark.usefixtures("redis_client")
def test_a_shared_rate_limit_on_redis_keeps_the_sqlite_semantics(
    redis_server: Any, namespace: str
) -> None:
    """Two connections to one Redis share one budget exactly, like on SQLite: the record is
    format 3 (the limiter's own, the store only moves it), fractional weights count exactly
    and a token comes back one period after its take."""
    from reliactl.ratelimit import RateLimiter
    from reliactl.testing import FakeClock

    clock = FakeClock()
    kwargs: dict[str, Any] = {"clock": clock.monotonic, "wall": clock.time}
    with (
        open_url(redis_server.url, namespace=namespace) as a,
        open_url(redis_server.url, namespace=namespace) as b,
    ):
        first = RateLimiter("3/minute", key="api", store=a, **kwargs)
        second = RateLimiter("3/minute", key="api", store=b, **kwargs)
        assert first.try_acquire(1.5) and second.try_acquire(1)
        assert not second.try_acquire(1) and second.try_acquire(0.5)
        record = a.get("rate", "api")
        assert record is not None and record["v"] == 3
        clock.advance(59.9)
        assert not first.try_acquire(0.5)
        clock.advance(0.2)
        assert first.available() == {"3/minute": 3.0}
