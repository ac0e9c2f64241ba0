"""`reliactl run --check`: the health gate, with real checks whose status the test controls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from importtime import start_reliactl
from runhelpers import lock_dir, lock_is_free, run, start, wait_for

from reliactl.runner import GateRefusal, RunOptions, RunRetryPolicy, run_command

LENIENT = (
    "  cpu_warn: 100\n  cpu_critical: 100\n  memory_warn: 100\n  memory_critical: 100\n"
    "  swap_warn: 100\n  swap_critical: 100\n  disk_warn: 100\n  disk_critical: 100\n"
    "  file_handles_warn: 100\n  file_handles_critical: 100\n  memory_threshold_mb: 1000000\n"
)


def config(tmp_path: Path, checks: str = "", extra: str = "", builtins: bool = False) -> str:
    """A config whose health is decided by ``checks`` alone (built-ins off unless asked)."""
    cfg = tmp_path / "c.yaml"
    text = "health_monitor:\n"
    text += LENIENT if builtins else "  system_checks: []\n"
    if checks:
        text += "  checks:\n" + checks
    cfg.write_text(text + extra)
    return str(cfg)


def heartbeat(tmp_path: Path) -> str:
    hb = tmp_path / "hb"
    return f"    - {{name: heartbeat, kind: file_age, path: {hb}, warn: 1h, critical: 2h}}\n"


def plugin(name: str, code: int, message: str, counter: Path | None = None) -> str:
    """A `command` check (a Nagios plugin in sh) exiting ``code``; it counts its runs."""
    count = f"echo x >> {counter}; " if counter else ""
    body = f"{count}echo '{message}'; exit {code}"
    return f"    - {{name: {name}, kind: command, command: [sh, -c, {json.dumps(body)}]}}\n"


def history(cfg: str) -> dict:
    result = run("-c", cfg, "runs", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["runs"][0]


def test_critical_health_exits_75_without_running_and_records_gated(tmp_path: Path) -> None:
    cfg = config(tmp_path, heartbeat(tmp_path))  # the heartbeat file does not exist: CRITICAL
    marker = tmp_path / "ran"
    report = tmp_path / "r.json"
    result = run(
        "-c", cfg, "run", "--check", "--json-report", str(report), "--", "touch", str(marker)
    )
    assert result.returncode == 75, result.stderr
    assert not marker.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "health is CRITICAL" in lines[0] and "heartbeat" in lines[0]
    assert "does not exist" in lines[0] and "(exit 75)" in lines[0]
    last = history(cfg)
    assert (last["outcome"], last["exit_code"], last["attempts"]) == ("gated", 75, 0)
    doc = json.loads(report.read_text())
    assert doc["outcome"] == "gated" and doc["exit_code"] == 75 and doc["attempts"] == []
    assert doc["health"]["status"] == "CRITICAL"
    # the gate's report as `health --json` has it: the time as text and as a number
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(doc["health"]["checked_at_epoch"]))
    assert doc["health"]["checked_at"] == stamp
    assert [c["name"] for c in doc["health"]["checks"]] == ["heartbeat"]


def test_only_critical_checks_are_named_in_the_refusal(tmp_path: Path) -> None:
    cfg = config(tmp_path, plugin("db", 2, "DB down") + plugin("load", 1, "LOAD high"))
    result = run("-c", cfg, "run", "--require-healthy", "true")
    assert result.returncode == 75, result.stderr
    assert "db (DB down)" in result.stderr and "load" not in result.stderr


def test_warning_health_runs_the_command_with_a_one_line_warning(tmp_path: Path) -> None:
    (tmp_path / "hb").touch()
    os.utime(tmp_path / "hb", (0, os.path.getmtime(tmp_path / "hb") - 5400))  # 1h30m old
    cfg = config(tmp_path, heartbeat(tmp_path))
    marker = tmp_path / "ran"
    result = run("-c", cfg, "run", "--check", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, result.stderr
    assert "health is WARNING: heartbeat" in warnings[0] and "starting anyway" in warnings[0]
    assert history(cfg)["outcome"] == "success"


def test_unknown_health_runs_the_command_with_a_warning(tmp_path: Path) -> None:
    cfg = config(tmp_path, plugin("probe", 3, "cannot tell"))
    marker = tmp_path / "ran"
    result = run("-c", cfg, "run", "--check", "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert "health is UNKNOWN: probe (cannot tell); starting anyway" in result.stderr


def test_ok_health_runs_the_command_silently(tmp_path: Path) -> None:
    (tmp_path / "hb").touch()
    cfg = config(tmp_path, heartbeat(tmp_path) + plugin("db", 0, "DB fine"))
    result = run("-c", cfg, "run", "--check", "--quiet-success", "echo", "done")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    plain = run("-c", cfg, "run", "--check", "echo", "done")
    assert plain.returncode == 0 and plain.stdout == "done\n"
    assert "warning" not in plain.stderr and "health" not in plain.stderr


def test_check_with_only_the_builtin_checks(tmp_path: Path) -> None:
    """No custom checks: the built-ins (lenient thresholds here) are what the gate runs. The
    report is version 3: its embedded `health` is `health --json` version 2, so
    `process_health`'s processes carry `started_at` text and `started_at_epoch` (version 2 of
    the report had psutil's `create_time` number there)."""
    cfg = config(tmp_path, builtins=True)
    marker = tmp_path / "ran"
    report = tmp_path / "r.json"
    result = run("-c", cfg, "run", "--check", "--json-report", str(report), "touch", str(marker))
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    doc = json.loads(report.read_text())
    assert doc["version"] == 3 and doc["health"]["version"] == 2
    checks = {c["name"]: c for c in doc["health"]["checks"]}
    assert {"cpu_usage", "memory_usage", "file_handles", "process_health"} <= set(checks)
    (own,) = checks["process_health"]["details"]["processes"]
    assert "create_time" not in own, own
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(own["started_at_epoch"]))
    assert own["started_at"] == started and own["started_at_epoch"] <= time.time()


def test_an_invalid_health_configuration_is_78_and_nothing_runs(tmp_path: Path) -> None:
    cfg = config(tmp_path, "    - {name: heartbeat, kind: file_age, critical: 2h}\n")  # no path
    marker = tmp_path / "ran"
    result = run("-c", cfg, "run", "--check", "touch", str(marker))
    assert result.returncode == 78, result.stderr
    assert "health_monitor.checks" in result.stderr and not marker.exists()


def test_the_gate_runs_once_not_per_retry(tmp_path: Path) -> None:
    counter = tmp_path / "checks"
    cfg = config(tmp_path, plugin("load", 1, "LOAD high", counter))
    report = tmp_path / "r.json"
    result = run(
        "-c", cfg, "run", "--check", "--retries", "2", "--delay", "0.01", "--jitter", "none",
        "--json-report", str(report), "false",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert len(json.loads(report.read_text())["attempts"]) == 3
    assert counter.read_text() == "x\n"


def test_the_gate_runs_under_the_lock(tmp_path: Path) -> None:
    """A busy lock exits 75 before any check runs: two cron ticks never both run the checks."""
    counter = tmp_path / "checks"
    ready = tmp_path / "ready"
    cfg = config(tmp_path, plugin("db", 0, "fine", counter))
    holder = start(
        "-c", cfg, "run", "--lock-name", "job", "sh", "-c", f"touch {ready}; sleep 30",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(ready.exists)
        busy = run("-c", cfg, "run", "--check", "--lock-name", "job", "true")
        assert busy.returncode == 75, busy.stderr
        assert "health" not in busy.stderr
        assert not counter.exists()
    finally:
        holder.terminate()
        holder.wait(timeout=20)
    assert lock_is_free(lock_dir() / "job.lock")
    ran = run("-c", cfg, "run", "--check", "--lock-name", "job", "true")
    assert ran.returncode == 0, ran.stderr
    assert counter.read_text() == "x\n"


def test_the_gate_sends_no_alerts(tmp_path: Path) -> None:
    alerted = tmp_path / "alerted"
    sink = f"  alerts:\n    - {{name: log, kind: command, command: [sh, -c, 'cat > {alerted}']}}\n"
    cfg = config(tmp_path, heartbeat(tmp_path), extra=sink)
    result = run("-c", cfg, "run", "--check", "true")
    assert result.returncode == 75, result.stderr
    health = run("-c", cfg, "health", "--quiet")  # the sink works: `health` does alert
    assert health.returncode == 2, health.stderr
    assert wait_for(alerted.exists)
    alerted.unlink()
    again = run("-c", cfg, "run", "--check", "true")
    assert again.returncode == 75 and not alerted.exists()


def test_a_gated_run_is_not_a_failure_for_the_breaker(tmp_path: Path) -> None:
    extra = "circuit_breaker:\n  failure_threshold: 1\n  recovery_timeout: 1h\n"
    cfg = config(tmp_path, heartbeat(tmp_path), extra=extra)
    for _ in range(2):
        gated = run("-c", cfg, "run", "--check", "--breaker", "svc", "true")
        assert gated.returncode == 75, gated.stderr
    shown = run("-c", cfg, "breaker", "show", "svc", "--json")
    assert '"open"' not in shown.stdout
    (tmp_path / "hb").touch()
    assert run("-c", cfg, "run", "--check", "--breaker", "svc", "true").returncode == 0


def test_a_signal_during_the_checks_ends_the_run_unstarted(tmp_path: Path) -> None:
    started = tmp_path / "checking"
    marker = tmp_path / "ran"
    body = f"touch {started}; sleep 5; exit 0"
    check = f"    - {{name: slow, kind: command, timeout: 1s, command: [sh, -c, '{body}']}}\n"
    cfg = config(tmp_path, check)
    proc = start("-c", cfg, "run", "--check", "touch", str(marker))
    assert wait_for(started.exists)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err  # re-raised: a shell sees 143
    assert not marker.exists()


def test_only_check_imports_the_health_modules(tmp_path: Path) -> None:
    """cron pays every import: `run` without --check loads no health module and no psutil."""
    from runhelpers import default_signals

    def imported(*flags: str) -> set[str]:
        result, modules = start_reliactl([*flags, "--", "true"], preexec_fn=default_signals)
        assert result.returncode == 0, result.stderr
        return set(modules)

    assert not {m for m in imported("run") if m.startswith("reliactl.health") or m == "psutil"}
    cfg = config(tmp_path, plugin("db", 0, "fine"))
    assert "reliactl.health.monitor" in imported("-c", cfg, "run", "--check")


def test_the_library_gate_is_called_once_before_the_first_attempt(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    calls: list[bool] = []

    def refuse() -> GateRefusal:
        calls.append(True)
        return GateRefusal(75, "not today")

    opts = RunOptions(
        command=("touch", str(marker)), retry=RunRetryPolicy(max_retries=2), name="lib"
    )
    result = run_command(opts, gate=refuse)
    assert (result.outcome, result.exit_code, result.message) == ("gated", 75, "not today")
    assert result.attempts == () and not marker.exists() and calls == [True]
    result = run_command(
        RunOptions(command=("sh", "-c", "exit 3"), retry=RunRetryPolicy(max_retries=2)),
        gate=lambda: calls.append(True),  # type: ignore[func-returns-value]
    )
    assert result.outcome == "failure" and len(result.attempts) == 3 and len(calls) == 2


def test_async_checks_work_under_the_gate(tmp_path: Path) -> None:
    """A tcp check runs on asyncio inside the run's signal handling: up runs, down refuses."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        cfg = config(tmp_path, f"    - {{name: api, kind: tcp, host: 127.0.0.1, port: {port}}}\n")
        up = run("-c", cfg, "run", "--check", "echo", "ran")
        assert up.returncode == 0, up.stderr
        assert up.stdout == "ran\n"
    down = run("-c", cfg, "run", "--check", "echo", "ran")
    assert down.returncode == 75, down.stderr
    assert down.stdout == "" and "health is CRITICAL: api (" in down.stderr


def test_an_unusable_state_store_does_not_stop_the_gate(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    (tmp_path / "hb").touch()
    cfg = config(tmp_path, heartbeat(tmp_path))
    env = {**os.environ, "RELIACTL_STATE__PATH": str(blocker / "state.db")}
    result = run("-c", cfg, "run", "--check", "echo", "ran", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n" and "health state kept in memory" in result.stderr
