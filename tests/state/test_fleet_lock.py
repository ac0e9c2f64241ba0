"""Fleet locks (`run --lock-scope fleet`) on a real redis-server.

"Hosts" are processes with distinct RELIACTL_HOSTNAME and distinct local state directories.
Leases are short (2-3 s) so that losing one takes seconds; every wait is bounded generously
(load on the test machine), never asserted tightly.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redishelpers import LateReplyProxy, RedisServer

from reliactl import locks
from reliactl.errors import LockBusyError, StateUnavailableError

HANG = 120.0  # only detects a hang

# The job body of the overlap tests: an O_EXCL marker held while it runs (removed on TERM),
# the fencing token appended to a shared file while the lock is held.
BODY = """
trap 'rm -f "$MARK"; exit 143' TERM
set -C
if ! : > "$MARK"; then echo overlap >> "$OUT/overlaps"; exit 99; fi
set +C
echo "$RELIACTL_FENCING_TOKEN $RELIACTL_LOCK_NAME $RELIACTL_HOSTNAME" >> "$OUT/tokens"
[ -n "$STARTED" ] && : > "$STARTED"
sleep "${HOLD:-0.05}" & wait $!
rm -f "$MARK"
"""


def _service(server: RedisServer, namespace: str, timeout: float = 2.0) -> Any:
    from reliactl.state.redis import open_redis_store
    from reliactl.state.redislease import RedisLeaseService
    from reliactl.state.url import parse_state_url

    store = open_redis_store(
        parse_state_url(server.url),
        namespace=namespace,
        connect_timeout=timeout,
        operation_timeout=timeout,
    )
    return RedisLeaseService(store)


def _host_env(
    server: RedisServer, namespace: str, tmp_path: Path, host: int, **extra: str
) -> dict[str, str]:
    local = tmp_path / f"host{host}"
    local.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "RELIACTL_STATE__URL": server.url,
        "RELIACTL_STATE__NAMESPACE": namespace,
        "RELIACTL_STATE__CONNECT_TIMEOUT": "0.3s",
        "RELIACTL_STATE__OPERATION_TIMEOUT": "0.3s",
        "RELIACTL_RUN__LOCK_LEASE": "2s",
        "RELIACTL_RUN__LOCK_DIR": str(local / "locks"),
        "RELIACTL_HOSTNAME": f"host-{host}",
        "XDG_STATE_HOME": str(local / "state"),
        "HOME": str(local),
        "OUT": str(tmp_path),
        "MARK": str(tmp_path / "marker"),
    }
    env.update(extra)
    return env


def _run(*args: str) -> list[str]:
    return [sys.executable, "-m", "reliactl", "run", *args]


def _wait_for(path: Path, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + HANG
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} first: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _tokens(tmp_path: Path) -> list[int]:
    lines = (tmp_path / "tokens").read_text().splitlines()
    return [int(line.split()[0]) for line in lines]


# --------------------------------------------------------------------------- the protocol


@pytest.mark.usefixtures("redis_client")
def test_release_is_compare_and_delete_never_another_owners_key(
    redis_server: RedisServer, namespace: str
) -> None:
    """An owner whose lease expired and was taken by another neither renews nor deletes it."""
    service = _service(redis_server, namespace)
    try:
        first = service.acquire("job", '{"token": "a"}', 30.0)
        key = service.key("job")
        client = redis_server.client()
        client.delete(key)  # as if the lease had expired
        second = service.acquire("job", '{"token": "b"}', 30.0)
        assert not hasattr(second, "holder"), "the free lease was not taken"
        assert first.release() is False
        assert first.renew(30.0) is False
        assert client.get(key) == b'{"token": "b"}'
        assert second.release() is True
        assert client.get(key) is None
    finally:
        service.close()


@pytest.mark.usefixtures("redis_client")
def test_keys_of_one_lock_share_a_cluster_hash_tag(
    redis_server: RedisServer, namespace: str
) -> None:
    """The lease and its fencing counter hash to one Cluster slot (one script touches both)."""
    service = _service(redis_server, namespace)
    try:
        lease = service.acquire("nightly", "{}", 30.0)
        client = redis_server.client()
        keys = sorted(k.decode() for k in client.keys(f"{namespace}:l:*"))
        assert keys == [f"{namespace}:l:{{lock:nightly}}", f"{namespace}:l:{{lock:nightly}}:fence"]
        from redis.crc import key_slot  # what a Cluster client computes (CRC16 of the tag)

        assert len({key_slot(k.encode()) for k in keys}) == 1
        lease.release()
    finally:
        service.close()


@pytest.mark.usefixtures("redis_client")
def test_fencing_tokens_increase_also_after_a_restart_that_lost_the_data(
    own_redis: Callable[..., RedisServer], namespace: str
) -> None:
    """Tokens strictly increase per lock name, and keep increasing after Redis restarts empty
    (the counter is seeded from the server's clock in milliseconds)."""
    server = own_redis()
    service = _service(server, namespace)
    seen = []
    for _ in range(5):
        lease = service.acquire("job", f'{{"n": {len(seen)}}}', 30.0)
        seen.append(lease.fencing_token)
        lease.release()
    service.close()
    port = server.port
    server.kill()  # no persistence: everything is lost
    restarted = own_redis(port=port)
    assert restarted.client().keys("*") == []
    service = _service(restarted, namespace)
    try:
        for _ in range(3):
            lease = service.acquire("job", '{"again": 1}', 30.0)
            seen.append(lease.fencing_token)
            lease.release()
    finally:
        service.close()
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


@pytest.mark.usefixtures("redis_client")
def test_fencing_tokens_increase_after_a_restart_from_an_older_snapshot(
    own_redis: Callable[..., RedisServer], namespace: str
) -> None:
    """A Redis restarted from an RDB saved before later tokens were drawn brings back a
    smaller counter; the next tokens are still above every token handed out before (the
    counter is raised to the server's clock on every acquire), so no two holders share one."""
    server = own_redis()
    service = _service(server, namespace)
    seen: list[int] = []

    def take(times: int) -> None:
        for _ in range(times):
            lease = service.acquire("job", f'{{"n": {len(seen)}}}', 30.0)
            seen.append(lease.fencing_token)
            lease.release()

    take(2)
    fence = service.key("job") + ":fence"
    assert server.client().save()  # the snapshot holds the counter at the second token
    take(3)
    service.close()
    port, directory = server.port, server.directory
    server.kill()  # kill -9: only the snapshot survives
    restarted = own_redis(port=port, directory=directory)
    assert int(restarted.client().get(fence)) == seen[1]  # the older counter is back
    service = _service(restarted, namespace)
    try:
        take(3)
    finally:
        service.close()
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


@pytest.mark.usefixtures("redis_client")
def test_busy_fleet_lock_names_its_holder(redis_server: RedisServer, namespace: str) -> None:
    """A second acquirer is refused with the holder's host, pid, start and command."""
    held = locks.acquire_fleet(
        "report",
        lambda: _service(redis_server, namespace),
        seconds=30.0,
        command="/srv/report.sh --all",
    )
    try:
        with pytest.raises(LockBusyError) as busy:
            locks.acquire_fleet("report", lambda: _service(redis_server, namespace), seconds=30.0)
        text = str(busy.value)
        assert f"pid {os.getpid()}" in text
        assert "since " in text and "'/srv/report.sh --all'" in text
        assert "lease expires in" in text
        assert held.env["RELIACTL_FENCING_TOKEN"] == str(held.fencing_token)
        assert held.env["RELIACTL_LOCK_NAME"] == "report"
    finally:
        held.release()
    again = locks.acquire_fleet("report", lambda: _service(redis_server, namespace), seconds=30.0)
    assert again.fencing_token > held.fencing_token
    again.release()


@pytest.mark.usefixtures("redis_client")
def test_renewal_keeps_the_lease_and_says_when_it_is_lost(
    redis_server: RedisServer, namespace: str
) -> None:
    """Renewing extends the lease; once the key is another owner's, renew reports the loss."""
    held = locks.acquire_fleet("renew", lambda: _service(redis_server, namespace), seconds=30.0)
    client = redis_server.client()
    key = held.service.key("renew")
    try:
        client.pexpire(key, 5000)
        assert held.renew() is None
        assert client.pttl(key) > 10_000  # back to a full lease
        assert held.renew_at is not None
        client.set(key, '{"token": "someone else"}')
        why = held.renew()
        assert why is not None and "another owner" in why
        assert held.renew_at is None
    finally:
        held.release()
    assert client.get(key) == b'{"token": "someone else"}'  # not ours: never deleted


@pytest.mark.usefixtures("redis_client")
def test_unreachable_store_is_waited_for_within_lock_wait_only(
    redis_server: RedisServer, namespace: str
) -> None:
    """Without --lock-wait an unreachable store is StateUnavailableError at once; within a
    lock wait it is waited for like a busy lock."""
    from redishelpers import free_port

    from reliactl.state.redis import open_redis_store
    from reliactl.state.redislease import RedisLeaseService
    from reliactl.state.url import parse_state_url

    down = parse_state_url(f"redis://127.0.0.1:{free_port()}/0")
    tries = []

    def leases() -> Any:
        tries.append(1)
        if len(tries) < 3:  # the first two opens find Redis down
            return RedisLeaseService(open_redis_store(down))
        return _service(redis_server, namespace)

    with pytest.raises(StateUnavailableError):
        locks.acquire_fleet("x", leases, seconds=30.0)
    assert len(tries) == 1
    held = locks.acquire_fleet("x", leases, seconds=30.0, wait=60.0)
    assert len(tries) == 3
    held.release()


@pytest.mark.usefixtures("redis_client")
def test_an_acquire_never_takes_a_lease_that_exists_even_with_its_own_owner(
    redis_server: RedisServer, namespace: str
) -> None:
    """A held lease is busy for every acquire, one with the very owner value it holds too
    (no caller sends one owner twice: each attempt has its own, see the late-release test),
    and the holder is named."""
    service = _service(redis_server, namespace)
    try:
        first = service.acquire("again", '{"token": "a"}', 30.0)
        for owner in ('{"token": "a"}', '{"token": "b"}'):
            busy = service.acquire("again", owner, 30.0)
            assert busy.holder == '{"token": "a"}'
        assert first.release() is True
    finally:
        service.close()


def test_a_late_give_back_of_an_unanswered_attempt_never_deletes_the_lease_held(
    own_redis: Callable[..., RedisServer], namespace: str
) -> None:
    """Within --lock-wait, attempt 1's acquire and the give-back (compare-and-delete) it sends
    after timing out both reach Redis late, after attempt 2 took the lease: the lease stays
    the run's (each attempt has its own owner value, so neither late script matches it), its
    renewal succeeds and another host is told busy, naming this run."""
    from redishelpers import LateRequestProxy

    from reliactl.state.redislease import _ACQUIRE, _RELEASE

    server = own_redis()
    sha = server.client().script_load(_ACQUIRE)  # so EVALSHA runs it (no NOSCRIPT round trip)
    triggers = [sha.encode(), _ACQUIRE.encode(), _RELEASE.encode()]
    proxy = LateRequestProxy(server.port, triggers, delay=1.5, times=2)

    def through_proxy() -> Any:
        from reliactl.state.redis import open_redis_store
        from reliactl.state.redislease import RedisLeaseService
        from reliactl.state.url import parse_state_url

        store = open_redis_store(
            parse_state_url(proxy.url),
            namespace=namespace,
            connect_timeout=0.5,
            operation_timeout=0.5,
        )
        return RedisLeaseService(store)

    try:
        held = locks.acquire_fleet("race", through_proxy, seconds=30.0, wait=60.0, command="a")
        key = f"{namespace}:l:{{lock:race}}"
        owner = server.client().get(key)
        try:
            assert json.loads(owner)["command"] == "a"
            deadline = time.monotonic() + HANG
            while proxy.forwarded < 2:  # both late scripts sent on to Redis
                assert time.monotonic() < deadline, (proxy.held, proxy.forwarded)
                time.sleep(0.02)
            time.sleep(0.5)  # and run there
            assert server.client().get(key) == owner
            assert held.renew() is None
            other = _service(server, namespace)
            try:
                busy = other.acquire("race", '{"host": "b", "token": "b"}', 30.0)
                assert busy.holder == owner.decode()
            finally:
                other.close()
        finally:
            held.release()
    finally:
        proxy.close()
    assert proxy.held == 2


# --------------------------------------------------------------------------- reliactl run


def _run_with_late_acquire(
    server: RedisServer, namespace: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`reliactl run ARGS` as host 0 (a 60 s lease) through a proxy that answers its first
    acquire script 3 s late, after it ran in Redis; checks that reply was the one held."""
    from reliactl.state.redislease import _ACQUIRE

    sha = server.client().script_load(_ACQUIRE)  # so EVALSHA runs it (no NOSCRIPT round trip)
    proxy = LateReplyProxy(server.port, [sha.encode(), _ACQUIRE.encode()], delay=3.0)
    env = _host_env(
        server,
        namespace,
        tmp_path,
        0,
        RELIACTL_STATE__URL=proxy.url,
        RELIACTL_RUN__LOCK_LEASE="60s",
    )
    try:
        done = subprocess.run(_run(*args), env=env, capture_output=True, text=True, timeout=HANG)
    finally:
        proxy.close()
    assert proxy.held == 1
    return done


_LATE_JOB = ("--lock-scope", "fleet", "--lock-name", "late")


def test_an_acquire_answered_too_late_leaves_no_lease_behind(
    own_redis: Callable[..., RedisServer], namespace: str, tmp_path: Path
) -> None:
    """The acquire took the lease in Redis but its reply came after state.operation_timeout:
    `run` exits 75 saying Redis did not answer, does not run the job, and gives the lease
    back, so another host takes the lock at once (not "busy: held by" a process that never
    ran the job, for the whole lease)."""
    server = own_redis()
    body = ("--", "sh", "-c", "echo $0 >> $OUT/ran")
    late = _run_with_late_acquire(server, namespace, tmp_path, *_LATE_JOB, *body, "late")
    assert late.returncode == 75, late.stderr
    assert "did not answer" in late.stderr
    assert server.client().get(f"{namespace}:l:{{lock:late}}") is None
    other = subprocess.run(
        _run(*_LATE_JOB, *body, "other"),
        env=_host_env(server, namespace, tmp_path, 1, RELIACTL_RUN__LOCK_LEASE="60s"),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "ran").read_text().split() == ["other"]


def test_lock_wait_after_a_late_acquire_reply_takes_the_lock(
    own_redis: Callable[..., RedisServer], namespace: str, tmp_path: Path
) -> None:
    """Within --lock-wait, an acquire whose reply came too late is tried again and takes the
    lock (it never waits for the lease its own unanswered attempt left: that lease is 60 s,
    the wait 20 s), and the job runs once."""
    server = own_redis()
    done = _run_with_late_acquire(
        server, namespace, tmp_path, *_LATE_JOB, "--lock-wait", "20s",
        "--", "sh", "-c", "echo ran >> $OUT/ran",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran").read_text().split() == ["ran"]
    assert server.client().get(f"{namespace}:l:{{lock:late}}") is None  # released at the end


def test_run_fleet_lock_end_to_end(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """`run --lock-scope fleet` gives the command its lock name and fencing token, renews the
    lease while the job outlives it (another host is busy meanwhile, told who holds it), and
    releases it at the end (here: stopped by SIGTERM, forwarded to the job)."""
    started = tmp_path / "started"
    holder = subprocess.Popen(
        _run("--lock-scope", "fleet", "--lock-name", "e2e", "--", "sh", "-c", BODY),
        env=_host_env(redis_server, namespace, tmp_path, 0, HOLD="100", STARTED=str(started)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, holder)
    time.sleep(2.5)  # past the first lease (2s): only renewal can still hold it
    busy = subprocess.run(
        _run("--lock-scope", "fleet", "--lock-name", "e2e", "--", "true"),
        env=_host_env(redis_server, namespace, tmp_path, 1),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    holder.terminate()
    _out, err = holder.communicate(timeout=HANG)
    assert holder.returncode == -15, err  # reliactl dies by the signal it forwarded
    assert busy.returncode == 75, busy.stderr
    assert "fleet lock e2e is busy: held by pid" in busy.stderr
    assert "on host-0" in busy.stderr and "running 'sh -c" in busy.stderr
    token, name, host = (tmp_path / "tokens").read_text().split()
    assert int(token) > 0 and name == "e2e" and host == "host-0"
    assert redis_server.client().get(f"{namespace}:l:{{lock:e2e}}") is None  # released


def test_host_lock_tells_the_command_its_name(tmp_path: Path) -> None:
    """Host-scope locks set RELIACTL_LOCK_NAME too (and no fencing token)."""
    env = {**os.environ, "RELIACTL_RUN__LOCK_DIR": str(tmp_path), "HOME": str(tmp_path)}
    env.pop("RELIACTL_FENCING_TOKEN", None)
    done = subprocess.run(
        _run("--lock-name", "hostjob", "--no-history", "--", "sh", "-c", "env"),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stderr
    assert "RELIACTL_LOCK_NAME=hostjob" in done.stdout
    assert "RELIACTL_FENCING_TOKEN" not in done.stdout


def test_redis_unreachable_at_start_does_not_run_the_job(tmp_path: Path) -> None:
    """A fleet-locked job whose Redis cannot be reached does not start: exit 75, one clear
    line about the lock, no traceback."""
    from redishelpers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        **os.environ,
        "RELIACTL_STATE__URL": url,
        "HOME": str(tmp_path),
        "RELIACTL_STATE__CONNECT_TIMEOUT": "0.5s",
    }
    done = subprocess.run(
        _run("--lock-scope", "fleet", "--no-history", "--", "touch", str(tmp_path / "ran")),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 75, done.stderr
    assert not (tmp_path / "ran").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not run: fleet lock" in lines[0] and "cannot reach" in lines[0]
    assert "Traceback" not in done.stderr


def test_redis_unreachable_at_start_with_history_is_one_line(tmp_path: Path) -> None:
    """History on (the store falls back to this host's, state.on_unavailable: local): Redis
    unreachable at a fleet-locked start is still one line, the lock's refusal naming the
    unreachable store; the store's fallback warning is not repeated. The run is recorded on
    this host as not run (lock_unavailable)."""
    from redishelpers import free_port

    env = {
        **os.environ,
        "RELIACTL_STATE__URL": f"redis://127.0.0.1:{free_port()}/0",
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "HOME": str(tmp_path),
        "RELIACTL_STATE__CONNECT_TIMEOUT": "0.5s",
    }
    done = subprocess.run(
        _run("--lock-scope", "fleet", "--name", "nightly", "--", "touch", str(tmp_path / "ran")),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 75, done.stderr
    assert not (tmp_path / "ran").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not run: fleet lock" in lines[0] and "cannot reach" in lines[0]
    from reliactl.state import open_sqlite_store

    with open_sqlite_store(tmp_path / "local.db", max_rows=100, warn=print) as local:
        (recorded,) = local.runs("nightly")
        assert recorded.outcome == "lock_unavailable" and recorded.exit_code == 75


def _hung_run(url: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """A fleet-locked `run` (history on: the store opens first) against a Redis that accepts
    and never answers, state.connect_timeout 3 s; its result and how long it took."""
    env = {
        **os.environ,
        "RELIACTL_STATE__URL": url,
        "RELIACTL_STATE__PATH": str(tmp_path / "local.db"),
        "HOME": str(tmp_path),
        "RELIACTL_STATE__CONNECT_TIMEOUT": "3s",
    }
    started = time.monotonic()
    done = subprocess.run(
        _run("--lock-scope", "fleet", "--", "touch", str(tmp_path / "ran")),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    return done, time.monotonic() - started


def test_a_stopped_redis_costs_a_fleet_locked_run_one_connect_timeout(
    own_redis: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """redis-server stopped (SIGSTOP: the kernel still accepts, nothing answers): the run's
    store and then its lock each waited the whole connect timeout (2 x 3 s); the lock now
    fails with the reason the store just met, so the run ends (75, one line naming the
    lock and the hung store, job not run) before twice the timeout."""
    server = own_redis()
    server.stop_signal()
    try:
        done, took = _hung_run(server.url, tmp_path)
    finally:
        server.cont_signal()
    assert done.returncode == 75, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not run: fleet lock" in lines[0] and "did not answer within 3s" in lines[0]
    assert not (tmp_path / "ran").exists()
    assert took < 6.0, f"{took:.2f}s: the connect timeout was paid twice"


def test_a_hung_redis_is_connected_to_once_by_a_fleet_locked_run(tmp_path: Path) -> None:
    """A listener that accepts and never answers: a fleet-locked run with history connects
    to it once (the store), not a second time for the lock; exit 75, one line."""
    import socket
    import threading

    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        done, _took = _hung_run(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", tmp_path)
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert done.returncode == 75, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert len(accepted) == 1


def test_store_fallback_warning_still_shown_once_the_fleet_lock_is_taken(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """The store's fallback warning is only held back, not lost: a fleet-locked run that takes
    its lock (Redis answers for the lease) while its history store fell back gets the
    warning exactly once, before the command starts."""
    from redishelpers import free_port

    from reliactl.config import load
    from reliactl.jobs import JobSpec, StoreWarnings, prepare_job
    from reliactl.state import open_state

    env = _host_env(redis_server, namespace, tmp_path, 0)
    config = load(None, environ=env, search=False).config
    dead = load(
        None,
        environ={**env, "RELIACTL_STATE__URL": f"redis://127.0.0.1:{free_port()}/0"},
        search=False,
    ).config
    seen: list[str] = []
    held = StoreWarnings(lambda m: seen.append(f"store: {m}"))
    marker = tmp_path / "ran"
    spec = JobSpec(
        command=("sh", "-c", f'echo "$RELIACTL_FENCING_TOKEN" > {marker}'),
        lock=True,
        lock_name="held",
        lock_scope="fleet",
    )

    def on_event(event: Any) -> None:
        if event.kind == "start":
            seen.append("started")

    done = prepare_job(spec, config).run(
        store=lambda: open_state(dead, warn=held), on_event=on_event, store_warnings=held
    )
    assert done.run.exit_code == 0 and marker.read_text().strip().isdigit()
    store_lines = [line for line in seen if line.startswith("store:")]
    assert len(store_lines) == 1 and "cannot reach Redis" in store_lines[0], seen
    assert seen.index(store_lines[0]) < seen.index("started")


def test_fleet_scope_without_redis_is_a_config_error(tmp_path: Path) -> None:
    """`--lock-scope fleet` on the SQLite store is a one-line configuration error (78)."""
    env = {**os.environ, "HOME": str(tmp_path), "RELIACTL_STATE__URL": ""}
    done = subprocess.run(
        _run("--lock-scope", "fleet", "--", "true"),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 78, done.stderr
    assert "needs a store shared by the hosts" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_job_taken_over_is_stopped_as_lock_lost(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """When the lease becomes another owner's, the supervisor stops the job (TERM), the
    outcome is lock_lost, exit 75, and the log says why."""
    started = tmp_path / "started"
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        _run(
            "--lock-scope",
            "fleet",
            "--lock-name",
            "taken",
            "--kill-after",
            "5s",
            "--json-report",
            str(report),
            "--",
            "sh",
            "-c",
            BODY,
        ),
        env=_host_env(redis_server, namespace, tmp_path, 0, HOLD="100", STARTED=str(started)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, proc)
    redis_server.client().set(f"{namespace}:l:{{lock:taken}}", '{"token": "intruder"}')
    _out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 75, err
    assert "held by another owner" in err and "Traceback" not in err
    doc = json.loads(report.read_text())
    assert doc["outcome"] == "lock_lost"
    assert doc["attempts"][0]["exit_code"] == 143  # its TERM trap ran: stopped, not finished
    assert not (tmp_path / "marker").exists()


def test_job_lock_scope_from_config_implies_a_fleet_lock(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """`run --job NAME` takes a fleet lock when the job declares lock_scope: fleet."""
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("jobs:\n  nightly:\n    every: 1h\n    lock_scope: fleet\n")
    os.chmod(cfg, 0o600)
    env = _host_env(redis_server, namespace, tmp_path, 0, RELIACTL_CONFIG=str(cfg))
    done = subprocess.run(
        _run("--job", "nightly", "--lock-name", "nightly", "--", "sh", "-c", "env"),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stderr
    assert "RELIACTL_FENCING_TOKEN=" in done.stdout
    assert "fleet lock nightly on" in done.stderr


# --------------------------------------------------------------------------- faults (stress)


@pytest.mark.stress
def test_hosts_racing_a_fleet_locked_job_never_overlap(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """3 hosts x 4 processes run one fleet-locked job (waiting for the lock): no two bodies
    ever run at once (O_EXCL marker), and fencing tokens strictly increase in lock order."""
    procs = []
    for host in range(3):
        env = _host_env(redis_server, namespace, tmp_path, host, HOLD="0.05")
        env["RELIACTL_STATE__OPERATION_TIMEOUT"] = "1s"
        env["RELIACTL_RUN__LOCK_LEASE"] = "10s"
        for _ in range(4):
            procs.append(
                subprocess.Popen(
                    _run(
                        "--lock-scope",
                        "fleet",
                        "--lock-name",
                        "race",
                        "--lock-wait",
                        "100s",
                        "--",
                        "sh",
                        "-c",
                        BODY,
                    ),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    for proc in procs:
        _out, err = proc.communicate(timeout=HANG)
        assert proc.returncode == 0, err
    assert not (tmp_path / "overlaps").exists()
    tokens = _tokens(tmp_path)
    assert len(tokens) == 12
    assert all(a < b for a, b in itertools.pairwise(tokens)), tokens


@pytest.mark.stress
def test_redis_killed_while_a_job_holds_the_lock(
    own_redis: Callable[..., RedisServer], namespace: str, tmp_path: Path
) -> None:
    """kill -9 of redis-server while a job holds the fleet lock: once the lease is over the
    job is stopped as lock_lost (exit 75), the log says why, no traceback."""
    server = own_redis()
    started = tmp_path / "started"
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        _run(
            "--lock-scope",
            "fleet",
            "--lock-name",
            "killed",
            "--kill-after",
            "1s",
            "--json-report",
            str(report),
            "--",
            "sh",
            "-c",
            BODY,
        ),
        env=_host_env(server, namespace, tmp_path, 0, HOLD="100", STARTED=str(started)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, proc)
    server.kill()
    _out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 75, err
    assert "lock lost" in err and "could not be renewed before it expires" in err
    assert "Traceback" not in err
    assert json.loads(report.read_text())["outcome"] == "lock_lost"


@pytest.mark.stress
def test_redis_stopped_longer_than_the_lease_gives_no_overlap(
    own_redis: Callable[..., RedisServer], namespace: str, tmp_path: Path
) -> None:
    """SIGSTOP of redis-server (a partition) for longer than the lease, then SIGCONT: the
    holder stops its job as lock_lost; another host waiting for the lock runs the job only
    after, never at the same time (O_EXCL marker); its fencing token is higher."""
    server = own_redis()
    started = tmp_path / "started"
    holder = subprocess.Popen(
        [
            *_run("--lock-scope", "fleet", "--lock-name", "part", "--kill-after", "1s", "--"),
            "sh",
            "-c",
            BODY,
        ],
        env=_host_env(server, namespace, tmp_path, 0, HOLD="100", STARTED=str(started)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, holder)
    server.stop_signal()
    try:
        waiter = subprocess.Popen(
            [
                *_run("--lock-scope", "fleet", "--lock-name", "part", "--lock-wait", "100s", "--"),
                "sh",
                "-c",
                BODY,
            ],
            env=_host_env(server, namespace, tmp_path, 1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _out, err = holder.communicate(timeout=HANG)  # stopped while Redis is still stopped
        assert holder.returncode == 75, err
        assert "lock lost" in err and "Traceback" not in err
        time.sleep(1.0)  # the lease has expired in Redis's clock too by now
    finally:
        server.cont_signal()
    _out, err = waiter.communicate(timeout=HANG)
    assert waiter.returncode == 0, err
    assert not (tmp_path / "overlaps").exists()
    first, second = _tokens(tmp_path)
    assert second > first


def test_run_lock_scope_in_config_makes_lock_a_fleet_lock(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """With run.lock_scope: fleet a plain `--lock` takes the lease; the fencing token is in
    the --json-report and the run's history."""
    report = tmp_path / "r.json"
    env = _host_env(redis_server, namespace, tmp_path, 0, RELIACTL_RUN__LOCK_SCOPE="fleet")
    done = subprocess.run(
        _run("--lock", "--lock-name", "cfg", "--json-report", str(report), "--", "true"),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stderr
    lock = json.loads(report.read_text())["lock"]
    assert lock["scope"] == "fleet" and lock["fencing_token"] > 0
    from reliactl.state.redis import open_redis_store
    from reliactl.state.url import parse_state_url

    with open_redis_store(parse_state_url(redis_server.url), namespace=namespace) as store:
        (run,) = store.runs("cfg")
    assert run.data["fencing_token"] == lock["fencing_token"]


def test_a_lease_too_short_for_the_store_timeouts_is_refused() -> None:
    """A lease whose third does not outlast one Redis call is a job spec error, not a lock
    that could expire between two renewals."""
    from reliactl.config import Config, RunConfig, StateConfig
    from reliactl.errors import JobSpecError
    from reliactl.jobs import JobSpec, prepare_job

    config = Config(
        run=RunConfig(lock_lease=1.0),
        state=StateConfig(url="redis://127.0.0.1:1/0", connect_timeout=1.0),
    )
    with pytest.raises(JobSpecError, match="too short"):
        prepare_job(JobSpec(command=("true",), lock_scope="fleet"), config)
    prepared = prepare_job(JobSpec(command=("true",), lock_scope="host"), config)
    assert prepared.options.lock is not None and prepared.options.lock.scope == "host"


@pytest.mark.stress
def test_the_lease_is_renewed_during_a_retry_pause(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A pause between retries longer than the lease keeps the fleet lock: another host is
    busy during it, and the retry runs with the same fencing token."""
    started = tmp_path / "started"
    holder = subprocess.Popen(
        [
            *_run("--lock-scope", "fleet", "--lock-name", "pause", "--max-retries", "1"),
            *("--strategy", "fixed", "--base-delay", "4s", "--jitter", "none", "--"),
            *("sh", "-c", 'echo "$RELIACTL_FENCING_TOKEN" >> "$OUT/tokens"; : > "$0"; exit 3'),
            str(started),
        ],
        env=_host_env(redis_server, namespace, tmp_path, 0),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, holder)
    time.sleep(2.5)  # in the pause, past the first lease
    busy = subprocess.run(
        _run("--lock-scope", "fleet", "--lock-name", "pause", "--", "true"),
        env=_host_env(redis_server, namespace, tmp_path, 1),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    _out, err = holder.communicate(timeout=HANG)
    assert busy.returncode == 75, busy.stderr
    assert holder.returncode == 3, err
    first, second = _tokens(tmp_path)
    assert first == second


@pytest.mark.stress
@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_redis_killed_under_a_fleet_locked_run_its_end_is_shipped_once(
    persistent: bool, namespace: str, tmp_path: Path
) -> None:
    """kill -9 of redis-server while a fleet-locked job runs with history on (mode local):
    the job is stopped lock_lost (75), its end goes to the host's outbox; redis-server is
    restarted on the same port, `reliactl state sync` ships it, and `runs --json` shows that
    run once, finished (lock_lost, delayed): in place (same id) when Redis kept its data, added
    once when it lost it; never left "running"."""
    from redishelpers import RedisServer

    extra = ("--appendonly", "yes", "--appendfsync", "always") if persistent else ()
    directory = tmp_path / "redis"
    server = RedisServer(directory, *extra)
    restarted: RedisServer | None = None
    try:
        started = tmp_path / "started"
        env = _host_env(server, namespace, tmp_path, 0, HOLD="100", STARTED=str(started))
        argv = _run("--lock-scope", "fleet", "--lock-name", "gone", "--kill-after", "1s")
        proc = subprocess.Popen(
            [*argv, "--name", "nightly", "--", "sh", "-c", BODY],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(started, proc)
        (running,) = json.loads(
            subprocess.run(
                [sys.executable, "-m", "reliactl", "runs", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=HANG,
            ).stdout
        )["runs"]
        assert running["outcome"] == "running"
        server.kill()
        _out, err = proc.communicate(timeout=HANG)
        assert proc.returncode == 75, err
        assert "lock lost" in err and "Traceback" not in err
        restarted = RedisServer(directory, *extra, port=server.port)

        def reliactl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "reliactl", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=HANG,
            )

        sync = reliactl("state", "sync", "--json")
        assert sync.returncode == 0, sync.stderr
        assert json.loads(sync.stdout)["shipped"] == 1
        listed = reliactl("runs", "--json")
        assert listed.returncode == 0, listed.stderr
        (only,) = json.loads(listed.stdout)["runs"]
        assert only["outcome"] == "lock_lost" and only["exit_code"] == 75
        assert only["delayed"] is True and only["ended_at"] is not None
        if persistent:
            assert only["id"] == running["id"]  # finished in place, not a second row
        assert json.loads(reliactl("state", "sync", "--json").stdout)["shipped"] == 0
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def _scripts_sent(client: Any) -> dict[str, int]:
    """EVAL and EVALSHA commands received since the last CONFIG RESETSTAT, whether they ran,
    failed or were refused (NOSCRIPT): INFO commandstats' calls + failed + rejected."""
    out = {}
    for name, v in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command in ("eval", "evalsha"):
            sent = sum(int(v.get(k, 0)) for k in ("calls", "failed_calls", "rejected_calls"))
            if sent:
                out[command] = sent
    return out


@pytest.mark.usefixtures("redis_client")
def test_a_renewal_after_script_flush_is_one_round_trip(
    own_redis: Callable[..., RedisServer], namespace: str
) -> None:
    """After SCRIPT FLUSH (or a restart) a renewal still sends exactly one command (EVAL
    with the script's text): the rule run.lock_lease / 3 > connect + operation timeout
    counts one round trip per renewal, and EVALSHA's NOSCRIPT-then-EVAL took two (the
    server's own command counters say how many arrived). The lease is extended, and a
    release after another flush is one command too and deletes it."""
    server = own_redis()
    held = locks.acquire_fleet("tight", lambda: _service(server, namespace), seconds=3.0)
    client = server.client()
    key = held.service.key("tight")
    try:
        client.pexpire(key, 1000)
        client.script_flush()
        client.config_resetstat()
        assert held.renew() is None
        assert _scripts_sent(client) == {"eval": 1}
        assert client.pttl(key) > 1500  # back to the full 3 s lease
        client.script_flush()
        client.config_resetstat()
    finally:
        held.release()
    assert _scripts_sent(client) == {"eval": 1}
    assert client.exists(key) == 0


def _runs_json(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [sys.executable, "-m", "reliactl", "runs", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert listed.returncode == 0, listed.stderr
    runs: list[dict[str, Any]] = json.loads(listed.stdout)["runs"]
    return runs


def test_a_key_of_another_type_at_the_lock_is_not_run_and_ends_its_row(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A hash planted at the fleet lock's key (another tenant, a mistake): the job is not
    run, one line says why, run exits 75 (not 125, "reliactl failed") and its history row
    ends as lock_unavailable instead of staying "running"."""
    redis_server.client().hset(f"{namespace}:l:{{lock:planted}}", "x", "y")
    env = _host_env(redis_server, namespace, tmp_path, 0)
    ran = tmp_path / "ran"
    done = subprocess.run(
        _run("--lock-scope", "fleet", "--lock-name", "planted", "--name", "planted", "--",
             "touch", str(ran)),
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert not ran.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WRONGTYPE" in lines[0], done.stderr
    (row,) = [r for r in _runs_json(env) if r["name"] == "planted"]
    assert (row["outcome"], row["exit_code"]) == ("lock_unavailable", 75)


def test_a_redis_user_without_scripting_is_a_configuration_error(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A Redis user that may not run scripts (NOPERM), which the fleet lock needs: a
    configuration error (exit 78, one line saying the user lacks a command), not run; it
    exited 125 as if reliactl had failed."""
    user = f"noscript{os.getpid()}"
    redis_server.client().execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-@scripting"
    )
    try:
        env = _host_env(redis_server, namespace, tmp_path, 0)
        env["RELIACTL_STATE__URL"] = server_url = redis_server.url.replace(
            "redis://", f"redis://{user}:pw@"
        )
        ran = tmp_path / "ran"
        done = subprocess.run(
            _run(
                "--no-history",
                "--lock-scope",
                "fleet",
                "--lock-name",
                "acl",
                "--",
                "touch",
                str(ran),
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG,
        )
    finally:
        redis_server.client().execute_command("ACL", "DELUSER", user)
    assert done.returncode == 78, done.stderr
    assert not ran.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not run: fleet lock acl" in lines[0], done.stderr
    assert "may not run a command reliactl needs" in lines[0]
    assert "pw@" not in done.stderr and server_url not in done.stderr
