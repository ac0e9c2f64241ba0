"""Each check kind against the real thing: HTTP and TCP on 127.0.0.1, commands, files, processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from httpserver import CountingServer, FlakyServer, Reply, https_server, refused_url
from smtpserver import make_ca

from reliactl.config import CheckSpec, HealthMonitorConfig, load
from reliactl.health import checks
from reliactl.health.checks import Check, custom_check, parse_perfdata, split_plugin_output
from reliactl.health.model import HealthMetric, Status
from reliactl.health.monitor import HealthMonitor, RecordStore, run_checks
from reliactl.state.sqlite import open_store

CONFIG = HealthMonitorConfig()


def run1(check: Check, records: RecordStore | None = None, **kw: Any) -> HealthMetric:
    report = asyncio.run(run_checks([check], records or RecordStore(), **kw))
    return report.metrics[check.name]


def spec(kind: str, name: str = "c", **fields: Any) -> CheckSpec:
    return CheckSpec(name=name, kind=kind, **fields)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# ---- http


def test_http_ok_reports_latency_and_perfdata(server: CountingServer) -> None:
    m = run1(custom_check(spec("http", url=server.url + "/healthz", body_contains="ok"), CONFIG))
    assert m.status is Status.OK, m.message
    assert m.unit == "s" and m.value is not None and m.value < 5
    assert m.perfdata[0].label == "c:time"
    assert server.requests[0].path == "/healthz"


def test_http_unexpected_status_is_critical(server: CountingServer) -> None:
    server.status = 503
    m = run1(custom_check(spec("http", url=server.url), CONFIG))
    assert m.status is Status.CRITICAL and "HTTP 503" in m.message
    m = run1(custom_check(spec("http", url=server.url, expect_status=[503]), CONFIG))
    assert m.status is Status.OK, m.message


def test_http_body_must_contain(server: CountingServer) -> None:
    server.body = b"degraded"
    m = run1(custom_check(spec("http", url=server.url, body_contains="ok"), CONFIG))
    assert m.status is Status.CRITICAL and "does not contain" in m.message


def test_http_latency_thresholds(server: CountingServer) -> None:
    server.delay = 0.2
    m = run1(custom_check(spec("http", url=server.url, warn="0.1", critical="5s"), CONFIG))
    assert m.status is Status.WARNING, m.message
    assert m.warn == "0.1" and m.critical == "5s"


def test_http_no_answer_within_timeout_is_critical(server: CountingServer) -> None:
    server.delay = 3
    started = time.monotonic()
    m = run1(custom_check(spec("http", url=server.url, timeout=0.4), CONFIG))
    assert time.monotonic() - started < 2.5
    assert m.status is Status.CRITICAL and "no answer" in m.message


def test_http_check_timeout_bounds_a_trickling_answer() -> None:
    """A server answering a byte every 0.2 s (60 s in all) is CRITICAL at the 1.5 s timeout."""
    with FlakyServer(Reply(body=b"ok" * 150, trickle=0.2)) as srv:
        started = time.monotonic()
        m = run1(custom_check(spec("http", url=srv.url, timeout=1.5, body_contains="ok"), CONFIG))
        took = time.monotonic() - started
    assert took < 20, f"took {took:.1f}s"
    assert m.status is Status.CRITICAL and "no answer within" in m.message


def test_http_check_reads_at_most_max_response_size_of_the_body() -> None:
    """body_contains looks at the first max_response_size bytes only; a status-only check
    reads none of a huge body."""
    head = b"a" * 1000 + b"EARLY" + b"a" * (2 * 1024 * 1024)
    with FlakyServer(Reply(body=head + b"LATE")) as srv:
        config = replace(CONFIG, max_response_size=1024 * 1024)
        early = run1(custom_check(spec("http", url=srv.url, body_contains="EARLY"), config))
        late = run1(custom_check(spec("http", url=srv.url, body_contains="LATE"), config))
        srv.script("/huge", Reply(size=500 * 1024 * 1024))
        status_only = run1(custom_check(spec("http", url=srv.url + "/huge"), config))
    assert early.status is Status.OK, early.message
    assert late.status is Status.CRITICAL
    assert "does not contain 'LATE' in its first 1" in late.message
    assert status_only.status is Status.OK, status_only.message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_connection_refused_is_critical() -> None:
    m = run1(custom_check(spec("http", url=f"http://127.0.0.1:{free_port()}/"), CONFIG))
    assert m.status is Status.CRITICAL, m.message


def test_http_check_sends_its_method_and_headers_and_does_not_follow_redirects() -> None:
    """The request carries spec.method, spec.headers and the reliactl-health User-Agent; a
    302 is answered as is (2xx/3xx pass by default, expect_status narrows it), never
    followed to its Location."""
    moved = Reply(302, headers={"Location": "/elsewhere"})
    with FlakyServer(moved) as srv:
        head = spec("http", url=srv.url + "/a", method="head", headers={"X-Token": "t1"})
        m = run1(custom_check(head, CONFIG))
        strict = run1(custom_check(spec("http", url=srv.url + "/a", expect_status=[200]), CONFIG))
        seen = list(srv.requests)
    assert m.status is Status.OK and "HTTP 302" in m.message, m.message
    assert strict.status is Status.CRITICAL and "expected 200" in strict.message
    assert [r.method for r in seen] == ["HEAD", "GET"]
    assert {r.path for r in seen} == {"/a"}  # /elsewhere never asked for
    assert seen[0].headers["x-token"] == "t1"
    assert seen[0].headers["user-agent"] == "reliactl-health"


def test_http_check_verifies_tls_unless_told_not_to(tmp_path: Path) -> None:
    """A certificate no trusted CA signed is CRITICAL (and says why); verify_tls: false
    accepts it; a CA named by SSL_CERT_FILE is trusted, as curl and OpenSSL do (the reliactl
    CLI in a subprocess: the trust store is read when the HTTP stack loads)."""
    ca, ca_file = make_ca(tmp_path)
    with https_server(ca) as url:
        untrusted = run1(custom_check(spec("http", url=url), CONFIG))
        unverified = run1(custom_check(spec("http", url=url, verify_tls=False), CONFIG))
        config = tmp_path / "cfg.yaml"
        config.write_text(
            "health_monitor:\n  system_checks: []\n  checks:\n"
            f"    - {{name: tls, kind: http, url: '{url}'}}\n"
        )
        env = {**os.environ, "SSL_CERT_FILE": str(ca_file), "XDG_STATE_HOME": str(tmp_path)}
        env.pop("RELIACTL_CONFIG", None)
        done = subprocess.run(
            [sys.executable, "-m", "reliactl", "--config", str(config), "health", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert untrusted.status is Status.CRITICAL and "certificate" in untrusted.message.lower()
    assert unverified.status is Status.OK, unverified.message
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["checks"][0]["status"] == "OK"


_TLS_PROBE = """
import asyncio, json, sys
from reliactl.config import CheckSpec, HealthMonitorConfig
from reliactl.health.checks import custom_check
from reliactl.health.monitor import RecordStore, run_checks

plain, tls = sys.argv[1], sys.argv[2]
cfg = HealthMonitorConfig()

def run(spec):
    return asyncio.run(run_checks([custom_check(spec, cfg)], RecordStore())).metrics[spec.name]

async def foreign():  # another aiohttp user in the same process, default TLS settings
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(tls) as answer:
                return answer.status
        except aiohttp.ClientError as exc:
            return type(exc).__name__

first = run(CheckSpec(name="p", kind="http", url=plain))
import aiohttp, aiohttp.connector
loaded_by_plain = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
off = run(CheckSpec(name="o", kind="http", url=tls, verify_tls=False))
unverified_cas = aiohttp.connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()["x509_ca"]
other = asyncio.run(foreign())  # the first verified handshake of the process: loads the CAs
t = run(CheckSpec(name="t", kind="http", url=tls))
print(json.dumps({"plain": first.status.name, "loaded_by_plain": loaded_by_plain,
                  "tls": t.status.name, "tls_message": t.message, "foreign": other,
                  "off": off.status.name, "unverified_cas": unverified_cas}))
"""


def test_tls_trust_is_not_loaded_for_plain_http_yet_https_still_verifies(tmp_path: Path) -> None:
    """aiohttp's import no longer loads the CA bundle (70-140 ms here, issue 21): a run of
    plain http checks leaves aiohttp's verifying context without CAs, and the system CAs
    (SSL_CERT_FILE) are loaded the first time an https connection is made. It fails closed:
    a certificate signed by a CA the system does not trust is CRITICAL, one it trusts is OK,
    and another aiohttp user in the same process gets the same verification (trusted: 200;
    untrusted: a certificate error), in a fresh interpreter where reliactl imported aiohttp.
    verify_tls: false accepts the untrusted certificate and never loads the CAs."""
    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other_ca, other_file = make_ca(tmp_path / "other")
    results = {}
    with FlakyServer() as plain, https_server(ca) as url:
        for name, trust in (("trusted", ca_file), ("untrusted", other_file)):
            env = {**os.environ, "SSL_CERT_FILE": str(trust), "SSL_CERT_DIR": str(tmp_path / "no")}
            done = subprocess.run(
                [sys.executable, "-c", _TLS_PROBE, plain.url + "/", url],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            results[name] = json.loads(done.stdout)
    trusted, untrusted = results["trusted"], results["untrusted"]
    assert trusted["plain"] == "OK" and trusted["loaded_by_plain"] == 0
    assert trusted["tls"] == "OK", trusted["tls_message"]
    assert trusted["foreign"] == 200
    assert untrusted["off"] == "OK" and untrusted["unverified_cas"] == 0  # verify_tls: false
    assert untrusted["tls"] == "CRITICAL" and "certif" in untrusted["tls_message"].lower()
    assert untrusted["foreign"] not in (200, "200"), untrusted


def test_an_http_check_run_never_loads_httpx() -> None:
    """The http kind runs on aiohttp (issue 21: httpx/httpcore spent 2-3x the CPU per request
    with 500 checks at once); a health run with http checks does not import httpx at all."""
    code = (
        "import asyncio, sys\n"
        "from reliactl.config import CheckSpec, HealthMonitorConfig\n"
        "from reliactl.health.checks import custom_check\n"
        "from reliactl.health.monitor import RecordStore, run_checks\n"
        f"c = custom_check(CheckSpec(name='r', kind='http', url='{refused_url()}'), "
        "HealthMonitorConfig())\n"
        "report = asyncio.run(run_checks([c], RecordStore()))\n"
        "print(report.metrics['r'].status.name, 'httpx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.split() == ["CRITICAL", "False"], done.stdout + done.stderr


def test_a_check_function_can_still_borrow_an_httpx_client_from_the_context(
    server: CountingServer,
) -> None:
    """CheckContext.http() / http_client() still lend an httpx.AsyncClient (the http kind
    moved to aiohttp; a check written against the context keeps working), closed with the run."""
    lent: list[Any] = []

    async def probe(ctx: checks.CheckContext) -> HealthMetric:
        async with ctx.http() as client:
            lent.append(client)
            answer = await client.get(server.url + "/mine")
        same = await ctx.http_client() is client
        return HealthMetric("mine", Status.OK, answer.status_code, f"same={same}")

    m = run1(Check("mine", "python", probe, 10.0))
    assert m.status is Status.OK and m.value == 200 and m.message == "same=True", m.message
    assert server.requests[0].headers["user-agent"] == "reliactl-health"
    assert lent[0].is_closed


def test_http_check_goes_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured as before (httpx did): the request for a name that does not
    resolve reaches the proxy as an absolute URL and the check is OK."""
    with FlakyServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        m = run1(custom_check(spec("http", url="http://checked.invalid/health"), CONFIG))
        seen = [r.path for r in proxy.requests]
    assert m.status is Status.OK, m.message
    assert seen == ["http://checked.invalid/health"]


# ---- tcp


def test_tcp_listener_ok_and_closed_port_critical() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        m = run1(custom_check(spec("tcp", host="127.0.0.1", port=port), CONFIG))
        assert m.status is Status.OK, m.message
        assert f"127.0.0.1:{port}" in m.message
    m = run1(custom_check(spec("tcp", host="127.0.0.1", port=free_port()), CONFIG))
    assert m.status is Status.CRITICAL, m.message


# ---- command (Nagios plugins)


@pytest.mark.parametrize(
    ("code", "status"),
    [(0, Status.OK), (1, Status.WARNING), (2, Status.CRITICAL), (3, Status.UNKNOWN)],
)
def test_command_exit_status_maps_to_status(code: int, status: Status) -> None:
    plugin = py(
        f"""
        print("DISK {status.value} - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968")
        print("second line of long text")
        raise SystemExit({code})
        """
    )
    m = run1(custom_check(spec("command", command=plugin), CONFIG))
    assert m.status is status
    assert m.message == f"DISK {status.value} - free space: / 3326 MB (56%)"
    assert m.perfdata[0].nagios() == "'c:/'=2643MB;5948;5958;0;5968"
    assert m.value == 2643 and m.unit == "MB"


def test_command_out_of_range_exit_and_missing_program_are_unknown(tmp_path: Path) -> None:
    m = run1(custom_check(spec("command", command=py("raise SystemExit(7)")), CONFIG))
    assert m.status is Status.UNKNOWN and "7" in m.message
    missing = str(tmp_path / "no-such-plugin")
    m = run1(custom_check(spec("command", command=[missing]), CONFIG))
    assert m.status is Status.UNKNOWN and "not found" in m.message


def test_command_timeout_kills_the_group_even_with_a_grandchild_holding_the_pipe(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "grandchild.pid"
    script = f"sleep 30 & echo $! > {marker}; sleep 30"
    started = time.monotonic()
    m = run1(custom_check(spec("command", command=["sh", "-c", script], timeout=0.8), CONFIG))
    assert time.monotonic() - started < 4
    assert m.status is Status.UNKNOWN and "timed out" in m.message
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{grandchild}/stat") as fh:  # a zombie awaiting init counts as gone
            if fh.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    else:
        os.kill(grandchild, signal.SIGKILL)
        pytest.fail("the grandchild survived the timeout")


def test_perfdata_parser_handles_quotes_and_skips_garbage() -> None:
    """Quoted labels ('' a literal quote), UOMs and min/max are read; words without = skipped;
    a plugin's U (unknown) value is kept as NaN, not dropped."""
    items = parse_perfdata(
        "'my label'=1.5s;1;2 rta=0.2ms;;;0;10 gone=U;5;9 junk 'it''s'=3c x=1,5 y=abc", prefix="p:"
    )
    assert [(p.label, p.uom) for p in items] == [
        ("p:my label", "s"),
        ("p:rta", "ms"),
        ("p:gone", ""),
        ("p:it's", "c"),
    ]
    assert [p.value for p in items][:2] == [1.5, 0.2] and items[3].value == 3
    assert math.isnan(items[2].value) and (items[2].warn, items[2].crit) == ("5", "9")
    assert items[1].min == 0 and items[1].max == 10
    assert split_plugin_output("OK - fine | a=1\nlong\ntext | b=2\nc=3") == (
        "OK - fine",
        " a=1  b=2 c=3",
    )


HOSTILE_PERFDATA = {
    "apostrophe then text": "'" + "a" * 60_000,
    "one long word": "a" * 60_000,
    "closed quotes, no =": "'x' " * 15_000,
    "quote runs": "'" + "''" * 30_000,
    "label then long value": "a=" + "9" * 60_000,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE_PERFDATA))
def test_perfdata_parser_is_linear_on_hostile_plugin_output(shape: str) -> None:
    """60 KB of hostile perfdata parses at once (the old regex took 20+ s on 40 KB)."""
    text = HOSTILE_PERFDATA[shape]
    started = time.monotonic()
    parse_perfdata(text + " ok=1")
    assert time.monotonic() - started < 10.0, "hang bound only: linear parsing takes ~1 ms"


def test_perfdata_parser_bounds_what_it_reads() -> None:
    """At most MAX_PERF_TEXT characters (cut between items) and MAX_PERF_ITEMS items are read."""
    many = " ".join(f"m{i}=1" for i in range(5000))
    assert len(parse_perfdata(many)) == checks.MAX_PERF_ITEMS
    tail = "pad=1 " * (checks.MAX_PERF_TEXT // 6) + "late=123456"
    labels = [p.label for p in parse_perfdata(tail)]
    assert "late" not in labels and all(label == "pad" for label in labels)


def test_a_plugin_with_an_unclosed_quote_in_a_huge_output_answers_in_time(tmp_path: Path) -> None:
    """A command check whose plugin prints an apostrophe and 60 KB of perfdata still answers."""
    code = "import sys; sys.stdout.write(\"OK - fine | 'x=1 \" + 'a' * 60000)"
    check = custom_check(spec("command", command=py(code), timeout=30), CONFIG)
    started = time.monotonic()
    m = run1(check)
    assert m.status is Status.OK and m.message == "OK - fine", m.message
    assert time.monotonic() - started < 20.0, "hang bound only"


# ---- file_age


def test_file_age_uses_the_real_mtime(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    heartbeat.write_text("")
    check = custom_check(spec("file_age", path=str(heartbeat), warn="1m", critical="1h"), CONFIG)
    assert run1(check).status is Status.OK
    old = time.time() - 300
    os.utime(heartbeat, (old, old))
    m = run1(check)
    assert m.status is Status.WARNING, m.message
    assert 299 <= (m.value or 0) < 320
    older = time.time() - 7200
    os.utime(heartbeat, (older, older))
    assert run1(check).status is Status.CRITICAL
    heartbeat.unlink()
    m = run1(check)
    assert m.status is Status.CRITICAL and "does not exist" in m.message


# ---- python


def test_python_kind_imports_module_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myhealth.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            def db():
                return {"status": "healthy", "value": 1, "message": "Database connection active"}

            async def queue():
                await asyncio.sleep(0)
                return {"status": "warning", "value": 120, "message": "queue is long"}

            def boom():
                raise RuntimeError("db down")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    m = run1(custom_check(spec("python", target="myhealth:db"), CONFIG))
    assert (m.status, m.value, m.message) == (Status.OK, 1.0, "Database connection active")
    m = run1(custom_check(spec("python", target="myhealth:queue"), CONFIG))
    assert m.status is Status.WARNING and m.value == 120
    m = run1(custom_check(spec("python", target="myhealth:boom"), CONFIG))
    assert m.status is Status.UNKNOWN and "db down" in m.message
    m = run1(custom_check(spec("python", target="nosuchmodule_xyz:f"), CONFIG))
    assert m.status is Status.UNKNOWN and "nosuchmodule_xyz" in m.message


# ---- process


def test_process_by_pidfile_and_not_running(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "svc.pid"
        pidfile.write_text(f"{child.pid}\n")
        check = custom_check(spec("process", pidfile=str(pidfile), critical=100000), CONFIG)
        m = run1(check)
        assert m.status is Status.OK, m.message
        assert m.details["processes"][0]["pid"] == child.pid
        assert {"rss", "threads", "uptime"} <= set(m.details["processes"][0])
    finally:
        child.kill()
        child.wait()
    m = run1(check)
    assert m.status is Status.CRITICAL and "not running" in m.message
    pidfile.write_text("garbage")
    assert run1(check).status is Status.CRITICAL
    pidfile.unlink()
    assert run1(check).status is Status.CRITICAL


def test_a_pidfile_naming_another_program_is_not_running(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "svc.pid"
        pidfile.write_text(str(child.pid))
        same = spec("process", pidfile=str(pidfile), process_name="sleep")
        assert run1(custom_check(same, CONFIG)).status is Status.OK
        other = spec("process", pidfile=str(pidfile), process_name="nginx")
        m = run1(custom_check(other, CONFIG))
        assert m.status is Status.CRITICAL and "stale pidfile" in m.message
    finally:
        child.kill()
        child.wait()


def test_process_by_name() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        m = run1(custom_check(spec("process", process_name="sleep"), CONFIG))
        assert m.status is Status.OK and child.pid in [p["pid"] for p in m.details["processes"]]
    finally:
        child.kill()
        child.wait()
    m = run1(custom_check(spec("process", process_name="no-such-proc-xyz"), CONFIG))
    assert m.status is Status.CRITICAL


def test_a_process_that_vanishes_mid_scan_never_crashes_the_check() -> None:
    import psutil

    child = subprocess.Popen(["sleep", "30"])
    proc = psutil.Process(child.pid)
    child.kill()
    child.wait()
    info = checks._describe_process(proc)
    assert info.get("vanished") is True


def test_access_denied_fields_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    def denied(self: Any) -> int:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "num_fds", denied)
    monkeypatch.setattr(psutil.Process, "cpu_times", denied)
    m = run1(checks.process_check("me", pid=os.getpid()))
    assert m.status is Status.OK, m.message
    info = m.details["processes"][0]
    assert "fds" not in info and "cpu_percent" not in info and info["rss"] > 0


# ---- system checks


def test_memory_threshold_env_turns_memory_bad() -> None:
    config = load(environ={"HEALTH_MEMORY_THRESHOLD_MB": "1"}).config
    monitor = HealthMonitor(config.health_monitor, store=None)
    report = asyncio.run(monitor.check_all_health(["memory_usage"]))
    metric = report.metrics["memory_usage"]
    assert metric.status is Status.CRITICAL, metric.message
    assert "limit 1MB" in metric.message
    normal = HealthMonitor(HealthMonitorConfig(), store=None)
    assert asyncio.run(normal.check_all_health(["memory_usage"])).overall_status is Status.OK


def test_cpu_first_run_samples_then_uses_the_stored_sample(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    records = RecordStore(store)
    sleeps: list[float] = []
    check = checks.cpu_check(80, 95)
    first = run1(check, records, sleep=sleeps.append)
    assert sleeps == [checks.CPU_FIRST_SAMPLE] and first.value is not None
    sample = store.get("kv", "cpu_times")
    assert sample is not None and "idle" in sample["times"]

    # pretend the stored sample is a minute old: 10% busy over 60 s of each of the cores
    import psutil

    ncpu = psutil.cpu_count() or 1
    times = dict(sample["times"])
    times["idle"] -= 54.0 * ncpu
    times["user"] -= 6.0 * ncpu
    store.update("kv", "cpu_times", lambda rec: {**(rec or {}), "times": times})
    second = run1(check, records, sleep=sleeps.append)
    assert sleeps == [checks.CPU_FIRST_SAMPLE], "no blind wait once a sample is stored"
    assert second.value is not None and abs(second.value - 10.0) < 3, second.message
    assert "over the last 1m" in second.message
    third = run1(check, records, sleep=sleeps.append)  # a moment later: same figure, no wait
    assert third.value == second.value and len(sleeps) == 1


def test_cpu_sample_from_before_a_reboot_is_discarded(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    store.update(
        "kv", "cpu_times", lambda _r: {"times": {"user": 1e12, "idle": 1e12}, "percent": 99.0}
    )
    sleeps: list[float] = []
    m = run1(checks.cpu_check(80, 95), RecordStore(store), sleep=sleeps.append)
    assert sleeps == [checks.CPU_FIRST_SAMPLE] and m.value != 99.0


def test_disk_check_reports_used_free_and_inodes(tmp_path: Path) -> None:
    m = run1(checks.disk_check(str(tmp_path), 80, 90))
    assert m.name == f"disk_usage:{tmp_path}" and m.unit == "%"
    labels = [p.label for p in m.perfdata]
    assert f"disk_used:{tmp_path}" in labels and f"disk_free:{tmp_path}" in labels
    assert run1(checks.disk_check(str(tmp_path), "0.0001", 100)).status is Status.WARNING
    missing = run1(checks.disk_check(str(tmp_path / "nope"), 80, 90))
    assert missing.status is Status.CRITICAL


def test_file_handles_and_swap_report() -> None:
    m = run1(checks.file_handles_check(80, 95))
    assert m.status is Status.OK and any(p.label == "file_handles_process" for p in m.perfdata)
    assert run1(checks.file_handles_check("0.000001", 95)).status is Status.WARNING
    swap = run1(checks.swap_check(50, 80))
    assert swap.status in (Status.OK, Status.WARNING, Status.CRITICAL) and swap.unit == "%"


def test_default_disk_paths_are_root_and_state_dir_once_per_filesystem(tmp_path: Path) -> None:
    paths = checks.disk_paths(CONFIG, str(tmp_path))
    assert paths[0] == "/"
    same_fs = os.stat("/").st_dev == os.stat(tmp_path).st_dev
    assert paths == (["/"] if same_fs else ["/", str(tmp_path)])


# ---- /proc readers (cron runs skip the psutil import) and the psutil fallback


def test_procfs_readers_agree_with_psutil() -> None:
    import psutil

    from reliactl import _procfs

    times = _procfs.cpu_times()
    assert times is not None
    reference = psutil.cpu_times()._asdict()
    assert set(times) <= set(reference)
    assert abs(times["idle"] - reference["idle"]) < 30
    mem = _procfs.meminfo()
    assert mem is not None and mem["MemTotal"] == psutil.virtual_memory().total
    # Threads and children of the test process can come and go (an earlier test's helper
    # thread or child still exiting): /proc must agree with psutil read on either side.
    threads_before = psutil.Process().num_threads()
    me = _procfs.self_info()
    threads_after = psutil.Process().num_threads()
    assert me is not None and me["pid"] == os.getpid()
    assert min(threads_before, threads_after) <= me["threads"] <= max(threads_before, threads_after)
    assert abs(float(me["create_time"]) - psutil.Process().create_time()) < 1.0
    child = subprocess.Popen(["sleep", "30"])
    try:
        before = len(psutil.Process().children(recursive=True))
        rss, count = _procfs.tree_rss(os.getpid()) or (0, 0)
        after = len(psutil.Process().children(recursive=True))
        assert count >= 2 and 1 + min(before, after) <= count <= 1 + max(before, after)
        assert rss > 0
    finally:
        child.kill()
        child.wait()


def test_system_checks_fall_back_to_psutil_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    from reliactl import _procfs

    for name in ("cpu_times", "meminfo", "tree_rss", "self_info"):
        monkeypatch.setattr(_procfs, name, lambda *a: None)
    for check in checks.system_checks(HealthMonitorConfig(), None):
        m = run1(check)
        assert m.status is not Status.UNKNOWN, (m.name, m.message)


def test_a_zombie_is_not_running(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # exited but not reaped yet: a zombie
            with open(f"/proc/{child.pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        m = run1(checks.process_check("z", pid=child.pid))
        assert m.status is Status.CRITICAL and "not running" in m.message
    finally:
        child.wait()


def test_a_first_short_cpu_sample_warns_but_never_pages(tmp_path: Path) -> None:
    """The first run ever samples 100 ms: a spike then is WARNING; a real window is CRITICAL."""
    store = open_store(tmp_path / "state.db")
    records = RecordStore(store)
    check = checks.cpu_check("@0:100", "@0:100")  # any figure at all is "bad"
    first = run1(check, records, sleep=lambda _s: None)
    assert first.status is Status.WARNING, first.message
    assert "never CRITICAL" in first.message
    sample = store.get("kv", "cpu_times")
    assert sample is not None
    times = dict(sample["times"])
    times["idle"] -= 30.0 * (os.cpu_count() or 1)
    store.update("kv", "cpu_times", lambda rec: {**(rec or {}), "times": times})
    later = run1(check, records, sleep=lambda _s: None)
    assert later.status is Status.CRITICAL, later.message


def test_a_second_run_right_after_the_first_short_sample_never_pages(tmp_path: Path) -> None:
    """A run within a second of the first reuses its 100 ms figure: still at worst WARNING."""
    store = open_store(tmp_path / "state.db")
    records = RecordStore(store)
    check = checks.cpu_check("@0:100", "@0:100")  # any figure at all is "bad"
    first = run1(check, records)  # a real 100 ms first sample
    assert first.status is Status.WARNING, first.message
    second = run1(check, records)  # well within CPU_MIN_WINDOW of the first
    assert second.status is Status.WARNING, second.message
    assert "never CRITICAL" in second.message


_WINDOW_PROBE = """
import json, ssl, sys, threading, urllib.request
from reliactl.health import checks

made, stop = [], threading.Event()

def spin():  # another thread of the program makes default contexts all along the import
    while not stop.is_set():
        made.append(ssl.create_default_context())

thread = threading.Thread(target=spin)
thread.start()
checks._import_aiohttp()
stop.set()
thread.join()
deferred = [c for c in made if c.__dict__.get("_reliactl_ca_pending")]
base = ssl.SSLContext.__mro__[1]
restored = ssl.SSLContext.set_default_verify_paths is base.set_default_verify_paths
ctx = deferred[0] if deferred else ssl.create_default_context()
empty_before = ctx.cert_store_stats()["x509_ca"] == 0
try:
    with urllib.request.urlopen(sys.argv[1], context=ctx, timeout=30) as answer:
        outcome = answer.status
except Exception as exc:
    reason = getattr(exc, "reason", exc)
    outcome = type(reason).__name__
print(json.dumps({"deferred": len(deferred), "restored": restored,
                  "empty_before": empty_before, "outcome": outcome}))
"""


def test_a_context_another_thread_makes_during_the_aiohttp_import_verifies_as_usual(
    tmp_path: Path,
) -> None:
    """While reliactl imports aiohttp (the CA stand-in is installed process-wide), another
    thread's ``ssl.create_default_context()`` gets the deferred load too: it holds no CA until
    its first connection, then verifies against the system CAs (SSL_CERT_FILE) exactly as a
    normal context: a server signed by the trusted CA answers 200 and one signed by another
    CA fails certificate verification (never accepted). The real method is back afterwards."""
    ca, ca_file = make_ca(tmp_path)
    (tmp_path / "other").mkdir()
    _other, other_file = make_ca(tmp_path / "other")
    results = {}
    with https_server(ca) as url:
        for name, trust in (("trusted", ca_file), ("untrusted", other_file)):
            env = {**os.environ, "SSL_CERT_FILE": str(trust), "SSL_CERT_DIR": str(tmp_path / "no")}
            done = subprocess.run(
                [sys.executable, "-c", _WINDOW_PROBE, url],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            results[name] = json.loads(done.stdout)
    for result in results.values():
        assert result["deferred"] >= 1 and result["restored"] and result["empty_before"], result
    assert results["trusted"]["outcome"] == 200
    assert results["untrusted"]["outcome"] == "SSLCertVerificationError"


def test_process_tree_from_children_files_equals_the_scan_of_every_process(
    tmp_path: Path,
) -> None:
    """_procfs.tree_pids reads a process's children from /proc/PID/task/TID/children (a few
    reads, not one per process on the machine: issue 21 item 4); on a real tree (a child, its
    own child, and a child started from another thread, listed under that thread) it finds
    the same processes as the scan of every process's parent field, which stays the fallback
    where the kernel has no children files (there both sides are the scan)."""
    from reliactl import _procfs

    marker = tmp_path / "grandchild.pid"
    shell = subprocess.Popen(["sh", "-c", f"sleep 60 & echo $! > {marker}; wait"])
    from_thread: list[subprocess.Popen[bytes]] = []
    spawner = threading.Thread(target=lambda: from_thread.append(subprocess.Popen(["sleep", "60"])))
    spawner.start()
    spawner.join()
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        grandchild = int(marker.read_text())
        by_files = _procfs.tree_pids(os.getpid())
        scan = _procfs._children_by_scan()
        assert by_files is not None and scan is not None
        by_scan, todo = [], [os.getpid()]
        while todo:
            current = todo.pop()
            by_scan.append(current)
            todo.extend(scan(current))
        assert by_files[0] == os.getpid()
        assert {shell.pid, grandchild, from_thread[0].pid} <= set(by_files)
        assert sorted(by_files) == sorted(by_scan)
        rss, count = _procfs.tree_rss(os.getpid()) or (0, 0)
        assert count >= 4 and rss > 0
    finally:
        for proc in (shell, *from_thread):
            proc.kill()
            proc.wait()
        if marker.exists() and marker.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
