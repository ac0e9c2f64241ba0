"""Failure injection (issue 20): rules reach the breaker, retry and HTTP paths the library
guards, never switch on by accident, are refused on a production-marked store, and `run
--chaos` rehearses failed and crashed attempts with the injected ones marked in history."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from importtime import start_reliactl

from reliactl import chaos
from reliactl.breaker import BreakerConfig, CircuitBreaker, CircuitState
from reliactl.errors import ChaosError, CircuitOpenError, HTTPError
from reliactl.http import ResilientClient
from reliactl.retry import RetryPolicy
from reliactl.testing import zero_backoff
from tests.httpserver import FlakyServer
from tests.runhelpers import run


@pytest.fixture(autouse=True)
def _chaos_off() -> None:
    """Every test starts and ends with injection off (it is process-wide)."""
    chaos.disable()
    yield
    chaos.disable()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("breaker:openai", chaos.ChaosRule("breaker", "openai", error=1.0)),
        (
            "http:*,status=503,error=0.5",
            chaos.ChaosRule("http", "*", error=0.5, status=503),
        ),
        ("retry:fetch*,delay=200ms", chaos.ChaosRule("retry", "fetch*", error=0.0, delay=0.2)),
        ("*,exception=TimeoutError", chaos.ChaosRule("*", "*", exception="TimeoutError")),
    ],
)
def test_rules_parse(text: str, expected: chaos.ChaosRule) -> None:
    """The documented syntax; without `error`, a rule fails every call unless it only delays."""
    assert chaos.parse_rules(text) == (expected,)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("db:x", "scope must be KIND:NAME"),
        ("breaker:x,error=2", "error must be a rate"),
        ("breaker:x,delay=soon", "delay"),
        ("breaker:x,exception=KeyError", "exception must be one of"),
        ("breaker:x,status=503", "status applies to http"),
        ("http:x,status=99", "status must be"),
        ("breaker:x,colour=red", "unknown key"),
        ("breaker:x,error", "expected key=value"),
    ],
)
def test_bad_rules_are_one_line_errors(text: str, words: str) -> None:
    """A bad rule names itself and what is wrong, on one line."""
    with pytest.raises(ChaosError) as caught:
        chaos.parse_rules(text)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_breaker_sees_injected_failures_and_opens() -> None:
    """Injected errors go through the breaker's failure accounting: it opens, and the real
    function was never called while the rule failed every call."""
    calls = []
    breaker = CircuitBreaker("api", BreakerConfig(failure_threshold=3))
    with chaos.injected("breaker:api"):
        for _ in range(3):
            with pytest.raises(ConnectionError) as caught:
                breaker.call(lambda: calls.append(1))
            assert isinstance(caught.value, chaos.InjectedFault)
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: calls.append(1))
    assert calls == []
    other = CircuitBreaker("other", BreakerConfig(failure_threshold=1))
    with chaos.injected("breaker:api"):
        assert other.call(lambda: 7) == 7  # scoped by name


def test_async_and_decorated_breaker_calls_are_injected_too() -> None:
    """call_async and the @breaker decorator reach the same injection point."""
    breaker = CircuitBreaker("svc", BreakerConfig(failure_threshold=5))

    async def fetch() -> int:
        return 1

    @breaker
    def decorated() -> int:
        return 2

    with chaos.injected("breaker:svc,exception=TimeoutError"):
        with pytest.raises(TimeoutError):
            asyncio.run(breaker.call_async(fetch))
        with pytest.raises(TimeoutError):
            decorated()
    assert asyncio.run(breaker.call_async(fetch)) == 1
    assert decorated() == 2


def test_a_retry_policy_retries_injected_failures_then_gives_up() -> None:
    """Each attempt draws anew: with every call failing, the policy makes all its attempts
    and gives up; the wrapped function never ran."""
    calls = []

    def fetch() -> None:
        calls.append(1)

    policy = RetryPolicy(max_retries=3, base_delay=0.01, name="fetch", reraise=True)
    with zero_backoff(), chaos.injected("retry:fetch"), pytest.raises(ConnectionError):
        policy.call(fetch)
    assert calls == []
    assert policy.stats.attempts == 4
    with zero_backoff():
        policy.call(fetch)
    assert calls == [1]


def test_an_http_client_gets_injected_statuses_without_the_server_seeing_them() -> None:
    """status=503 answers instead of the server (retried as a real 503); error=0 with a delay
    lets requests through; an injected connection error ends as the client's HTTPError."""
    with FlakyServer() as server, zero_backoff():
        client = ResilientClient(base_url=server.url, retry=2)
        with chaos.injected("http:*,status=503"):
            response = client.get("/x")
            assert response.status_code == 503
            assert server.count() == 0
        with chaos.injected("http:127.0.0.1*,delay=1ms"):
            assert client.get("/x").status_code == 200
        assert server.count() == 1
        with chaos.injected("http:*"), pytest.raises(HTTPError):
            client.get("/x")
        assert server.count() == 1
        client.close()


def test_off_unless_asked_and_loud_when_on(tmp_path: Path) -> None:
    """A fresh process without RELIACTL_CHAOS has it off; with it, the first guarded call
    injects and a WARNING naming the rule reaches stderr (no logging configured)."""
    code = textwrap.dedent(
        """
        from reliactl import chaos
        from reliactl.breaker import CircuitBreaker
        print("active", chaos.ACTIVE)
        try:
            CircuitBreaker("api").call(lambda: None)
            print("called")
        except ConnectionError as exc:
            print("injected", type(exc).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_CHAOS")}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert off.stdout.split("\n")[:2] == ["active False", "called"], off.stderr
    assert "CHAOS" not in off.stderr
    on = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "RELIACTL_CHAOS": "breaker:api"},
        capture_output=True,
        text=True,
    )
    assert "injected InjectedConnectionError" in on.stdout, on.stderr
    assert "CHAOS ON (RELIACTL_CHAOS)" in on.stderr and "breaker:api" in on.stderr


def test_a_production_marked_store_refuses_injection(tmp_path: Path) -> None:
    """state.production: true refuses chaos from code, environment and configuration unless
    forced; a refused RELIACTL_CHAOS is logged and stays off."""
    from reliactl.config import load

    marked = tmp_path / "reliactl.yaml"
    marked.write_text("state:\n  production: true\n")
    config = load(marked).config
    with pytest.raises(ChaosError, match="marked production"):
        chaos.enable("breaker:api", config=config)
    assert chaos.ACTIVE is False
    chaos.enable("breaker:api", config=config, force=True)
    assert chaos.ACTIVE is True
    chaos.disable()

    code = textwrap.dedent(
        """
        from reliactl import chaos
        from reliactl.breaker import CircuitBreaker
        CircuitBreaker("api").call(lambda: None)
        print("called", chaos.ACTIVE)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    env.update(RELIACTL_CONFIG=str(marked), RELIACTL_CHAOS="breaker:api")
    refused = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert refused.stdout.strip() == "called False", refused.stderr
    assert "RELIACTL_CHAOS ignored" in refused.stderr and "production" in refused.stderr
    forced = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "RELIACTL_CHAOS_FORCE": "1"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert forced.returncode != 0 and "InjectedConnectionError" in forced.stderr


def test_configured_rules_are_validated_with_their_line(tmp_path: Path) -> None:
    """chaos.rules entries are checked at load: a bad one is a config error with file:line."""
    path = tmp_path / "reliactl.yaml"
    path.write_text("chaos:\n  rules:\n    - breaker:ok\n    - breaker:x,error=7\n")
    result = run("-c", str(path), "config", "validate")
    assert result.returncode == 78
    assert f"{path}:4" in result.stderr and "error must be a rate" in result.stderr


def test_run_chaos_fail_never_starts_the_command_and_is_marked(tmp_path: Path) -> None:
    """fail=1,exit=75: every attempt fails with 75 without running the command (no marker);
    retries happen; `runs --json` marks each attempt injected."""
    marker = tmp_path / "ran"
    result = run(
        "run", "--chaos", "fail=1,exit=75", "--retry", "--max-retries", "2",
        "--base-delay", "1ms", "--name", "rehearse", "--", "touch", str(marker),
    )  # fmt: skip
    assert result.returncode == 75, result.stderr
    assert not marker.exists()
    assert "CHAOS ON" in result.stderr and "(injected: fail)" in result.stderr
    (record,) = json.loads(run("runs", "--json", "rehearse").stdout)["runs"]
    assert record["attempts"] == 3 and record["injected"] == ["fail", "fail", "fail"]


def test_run_chaos_kill_after_crashes_the_whole_tree(tmp_path: Path) -> None:
    """kill-after: the command and its child are SIGKILLed (exit 137), marked injected kill;
    a run that finishes first is not marked."""
    pidfile = tmp_path / "child"
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    result = run("run", "--chaos", "kill-after=300ms", "--name", "crash", "--", "sh", "-c", script)
    assert result.returncode == 137, result.stderr
    child = int(pidfile.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()
    quick = run("run", "--chaos", "kill-after=30s", "--name", "crash", "--", "true")
    assert quick.returncode == 0
    rows = json.loads(run("runs", "--json", "crash").stdout)["runs"]
    assert [r.get("injected") for r in rows] == [None, ["kill"]]  # newest first


def test_run_chaos_bad_spec_is_a_usage_error() -> None:
    """A bad --chaos never runs anything: one line, exit 125."""
    result = run("run", "--chaos", "fail=0.5,boom=1", "--", "true")
    assert result.returncode == 125
    assert "unknown key 'boom'" in result.stderr and "Traceback" not in result.stderr


def test_cron_paths_do_not_import_chaos_unless_asked(tmp_path: Path) -> None:
    """`run` and `health` without chaos settings never load reliactl.chaos (start-up cost);
    with `--chaos` it is loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_CHAOS")}
    for args in (["run", "--no-history", "--", "true"], ["health", "--json"]):
        _, modules = start_reliactl(args, env=env)
        assert "reliactl.cli._fast" in modules and "reliactl.chaos" not in modules, args
        if args[0] == "run":  # nor the logging package (tracing's logger is lazy too)
            assert "logging" not in modules
    asked, modules = start_reliactl(
        ["run", "--no-history", "--chaos", "delay=1ms", "--", "true"], env=env
    )
    assert asked.returncode == 0 and "reliactl.chaos" in modules


def test_the_reference_configuration_never_switches_chaos_on() -> None:
    """config.example.yaml (and `config init`'s starter) is copied by people: neither may carry
    an active chaos rule, so loading it leaves injection off."""
    import yaml

    from reliactl.config import example_yaml

    for text in (example_yaml(), example_yaml(starter=True)):
        doc = yaml.safe_load(text) or {}
        assert not ((doc.get("chaos") or {}).get("rules")), text[:200]


def test_run_chaos_is_refused_on_a_production_marked_store(tmp_path: Path) -> None:
    """`run --chaos` on a store marked state.production: true is refused before anything
    runs (exit 78, the one line chaos.rules gets), through the fast path and Typer alike, so a
    rehearsal cannot open a breaker the real job shares; chaos.force lets it inject."""
    from reliactl.config import load
    from reliactl.jobs import JobSpec, prepare_job

    marker = tmp_path / "ran"
    body = (
        f"state:\n  path: {tmp_path / 'state.db'}\n  production: true\n"
        "circuit_breaker:\n  failure_threshold: 1\n"
    )
    marked = tmp_path / "reliactl.yaml"
    marked.write_text(body)
    rehearse = ("run", "--chaos", "fail=1", "--breaker", "shared", "--", "touch", str(marker))
    for fast in ("1", "0"):
        env = {**os.environ, "RELIACTL_FAST": fast}
        env.pop("RELIACTL_CHAOS_FORCE", None)
        refused = run("-c", str(marked), *rehearse, env=env)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "chaos refused" in refused.stderr and "state.production" in refused.stderr
        assert "CHAOS ON" not in refused.stderr and not marker.exists()
    real = run("-c", str(marked), "run", "--breaker", "shared", "--", "true")
    assert real.returncode == 0, real.stderr  # the shared breaker is still closed
    with pytest.raises(ChaosError, match="marked production"):
        prepare_job(JobSpec(command=("true",), chaos=chaos.RunChaos(fail=1)), load(marked).config)

    forced = tmp_path / "forced.yaml"
    forced.write_text(body + "chaos:\n  force: true\n")
    rehearsed = run("-c", str(forced), *rehearse)
    assert rehearsed.returncode == 1 and "CHAOS ON" in rehearsed.stderr, rehearsed.stderr
    assert not marker.exists()  # an injected fail never starts the command


@pytest.mark.parametrize("spec", ["kill-after=0", "fail=0.5,kill-after=0s"])
def test_run_chaos_kill_after_0_is_refused_clearly(spec: str, tmp_path: Path) -> None:
    """`--chaos kill-after=0` is not `run --kill-after 0`'s "never": the kill is the injected
    fault, so it is refused in the one wording of a duration out of its range (positive, at
    most 7d) with how to inject no kill; one line, exit 125, nothing run. It said "kill-after
    must be a positive duration", not what `run --kill-after 0` led one to expect."""
    marker = tmp_path / "ran"
    result = run("run", "--chaos", spec, "--", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    given = spec.rpartition("=")[2]
    assert result.stderr == (
        f"reliactl: error: --chaos {spec!r}: kill-after: expected a positive duration of at most"
        f" 7d, got {given!r} (to inject no kill, leave kill-after out)\n"
    )
    assert not marker.exists()
