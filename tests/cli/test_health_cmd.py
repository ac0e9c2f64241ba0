"""`reliactl health`: formats, exit codes, selection, watch, textfile and alerts, end to end."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "health"))
from httpserver import CountingServer

PLUGIN = (
    "[{py}, -c, \"print('{word} - {name} | {name}_time=0.5s;1;2;0'); raise SystemExit({code})\"]"
)


def write_config(
    tmp_path: Path, checks: dict[str, int], alerts: str = "", system: str = "[]"
) -> Path:
    words = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
    lines = [
        "health_monitor:",
        f"  system_checks: {system}",
        "  checks:" if checks else "  checks: []",
    ]
    for name, code in checks.items():
        cmd = PLUGIN.format(
            py=json.dumps(sys.executable), word=words.get(code, "X"), name=name, code=code
        )
        lines += [f"    - name: {name}", "      kind: command", f"      command: {cmd}"]
    if alerts:
        lines.append("  alerts:")
        lines += ["    " + line for line in alerts.strip().splitlines()]
    path = tmp_path / "reliactl.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as srv:
        yield srv


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_exit_code_is_the_worst_status(run_cli, tmp_path: Path, code: int) -> None:
    cfg = write_config(tmp_path, {"fine": 0, "probe": code})
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == code, result.output
    assert "fine" in result.stdout and "probe" in result.stdout


def test_critical_beats_unknown(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"a": 3, "b": 2, "c": 1})
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == 2, result.output
    assert "CRITICAL: 0 of 3 checks OK (1 warning, 1 critical, 1 unknown)" in result.stdout


def test_json_document(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"fine": 0, "warn": 1})
    result = run_cli("--config", str(cfg), "health", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 2 and doc["status"] == "WARNING" and doc["exit_code"] == 1
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["warn"]["status"] == "WARNING" and checks["warn"]["message"] == "WARNING - warn"
    assert checks["fine"]["perfdata"][0]["label"] == "fine:fine_time"
    assert doc["alerts"] == [] and result.stderr == ""


NAGIOS_PERF = re.compile(r"'(?:[^']|'')+'=-?[\d.]+[a-zA-Z%]*(;[^; ]*){0,4}")


def test_nagios_format_is_one_parseable_line(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"web": 0, "db": 2}, system="[cpu, memory, disk]")
    result = run_cli("--config", str(cfg), "health", "--format", "nagios")
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    status_text, _, perf = lines[0].partition(" | ")
    assert status_text.startswith("CRITICAL: ")
    assert "db CRITICAL: CRITICAL - db" in status_text
    items = perf.split(" ")
    assert items and all(NAGIOS_PERF.fullmatch(item) for item in items), items
    assert "'memory_usage'=" in perf and "'web:web_time'=0.5s;1;2;0" in perf


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_prometheus_format_parses(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"web": 0, "db": 2}, system="[cpu, memory, disk]")
    result = run_cli("--config", str(cfg), "health", "--format", "prometheus")
    assert result.exit_code == 2, result.output
    samples = parse_prometheus(result.stdout)
    status = {labels["check"]: value for labels, value in samples["reliactl_health_status"]}
    assert status["db"] == 2 and status["web"] == 0 and "memory_usage" in status
    assert samples["reliactl_health_overall_status"][0][1] == 2
    seconds = samples["reliactl_health_value_seconds"]
    values = {(lab["check"], lab["metric"]): v for lab, v in seconds}
    assert values[("web", "web:web_time")] == 0.5
    ratios = samples["reliactl_health_value_ratio"]
    assert all(0 <= v <= 1 for _lab, v in ratios) and ("memory_usage", "memory_usage") in {
        (lab["check"], lab["metric"]) for lab, _v in ratios
    }


def test_textfile_is_written_atomically(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"web": 0})
    out_dir = tmp_path / "textfiles"
    out_dir.mkdir()
    target = out_dir / "reliactl.prom"
    target.write_text("old contents\n")
    result = run_cli("--config", str(cfg), "health", "--textfile", str(target), "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert parse_prometheus(target.read_text())["reliactl_health_status"] == [
        ({"check": "web", "kind": "command"}, 0.0)
    ]
    assert sorted(p.name for p in out_dir.iterdir()) == ["reliactl.prom"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_textfile_that_cannot_be_written_is_unknown(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"web": 0})
    result = run_cli("--config", str(cfg), "health", "--textfile", str(tmp_path / "no" / "x.prom"))
    assert result.exit_code == 3, result.output
    assert "--textfile" in result.stderr


def test_check_selects_a_subset_and_unknown_names_exit_3(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"a": 0, "b": 2, "c": 1})
    result = run_cli("--config", str(cfg), "health", "--check", "a", "--check", "c", "--json")
    assert result.exit_code == 1, result.output
    assert [c["name"] for c in json.loads(result.stdout)["checks"]] == ["a", "c"]
    result = run_cli("--config", str(cfg), "health", "--check", "zzz")
    assert result.exit_code == 3
    assert "no check named 'zzz'" in result.stderr and "a, b, c" in result.stderr


def test_detailed_shows_thresholds_timing_and_perfdata(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {}, system="[cpu, disk]")
    result = run_cli("--config", str(cfg), "health", "--detailed")
    assert result.exit_code in (0, 1, 2), result.output
    header = result.stdout.splitlines()[0].split()
    assert header == ["CHECK", "STATUS", "VALUE", "WARN", "CRIT", "TIME", "MESSAGE"]
    assert "'cpu_usage'=" in result.stdout and "perfdata:" in result.stdout


def test_builtin_checks_by_default(run_cli) -> None:
    result = run_cli("health", "--json")
    assert result.exit_code in (0, 1, 2), result.output
    names = [c["name"] for c in json.loads(result.stdout)["checks"]]
    for name in ("cpu_usage", "memory_usage", "swap_usage", "file_handles", "process_health"):
        assert name in names
    assert any(n.startswith("disk_usage:") for n in names)


def test_memory_threshold_env_makes_the_memory_check_critical(run_cli) -> None:
    result = run_cli("health", "--check", "memory_usage", env={"HEALTH_MEMORY_THRESHOLD_MB": "1"})
    assert result.exit_code == 2, result.output
    assert "limit 1MB" in result.stdout


def test_watch_repeats_until_count(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"a": 1})
    result = run_cli(
        "--config", str(cfg), "health", "--watch", "--interval", "50ms", "--count", "3",
        "--format", "nagios",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stdout.count("WARNING: a WARNING") == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "--format: expected one of"),
        (["--json", "--format", "nagios"], "exclusive"),
        (["--interval", "5s"], "apply to --watch only"),
        (["--watch", "--interval", "soon"], "--interval"),
        (["--watch", "--count", "0"], "--count"),
    ],
)
def test_bad_options_exit_3_with_one_line(run_cli, args: list[str], message: str) -> None:
    result = run_cli("health", *args)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chek"], "No such option: --chek"),
        (["--format"], "requires an argument"),
        (["extra"], "No such command"),  # health has subcommands (history) since issue 18
        (["history", "--since"], "requires an argument"),
        (["--watch", "--count", "abc"], "'abc' is not a valid integer"),
        (["-n"], "requires an argument"),
    ],
)
def test_click_usage_errors_exit_3_not_2(run_cli, args: list[str], message: str) -> None:
    """Click's own parse errors of `health` exit 3 (UNKNOWN), never 2 (CRITICAL)."""
    result = run_cli("health", *args)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and "Traceback" not in result.output
    proc = subprocess.run(
        [sys.executable, "-m", "reliactl", "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


HOOK = """\
- name: hook
  kind: webhook
  url: {url}
"""


def test_alert_is_sent_once_per_change_across_runs(
    run_cli, tmp_path: Path, server: CountingServer
) -> None:
    cfg = write_config(tmp_path, {"db": 2}, alerts=HOOK.format(url=server.url + "/t/SECRET"))
    for _ in range(3):
        result = run_cli("--config", str(cfg), "health", "--json")
        assert result.exit_code == 2, result.output
    assert server.count == 1
    assert server.posted()[0]["check"] == "db" and server.posted()[0]["status"] == "CRITICAL"
    result = run_cli("--config", str(cfg), "health", "--no-alerts")
    assert server.count == 1


def test_a_failing_sink_is_reported_redacted_and_never_changes_the_exit_code(
    run_cli, tmp_path: Path, server: CountingServer
) -> None:
    server.status = 500
    cfg = write_config(tmp_path, {"db": 1}, alerts=HOOK.format(url=server.url + "/t/SECRET"))
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == 1, result.output
    assert "alert sink 'hook'" in result.stderr and "HTTP 500" in result.stderr
    assert "SECRET" not in result.output
    assert f"{server.url}/***" in result.stderr


def test_test_alert(run_cli, tmp_path: Path, server: CountingServer) -> None:
    cfg = write_config(tmp_path, {"db": 0}, alerts=HOOK.format(url=server.url + "/t/SECRET"))
    result = run_cli("--config", str(cfg), "health", "--test-alert", "hook")
    assert result.exit_code == 0, result.output
    assert server.posted()[0]["kind"] == "test"
    result = run_cli("--config", str(cfg), "health", "--test-alert", "other")
    assert result.exit_code == 3 and "no alert sink named 'other'" in result.stderr
    server.status = 500
    result = run_cli("--config", str(cfg), "health", "--test-alert", "hook")
    assert result.exit_code == 1 and "SECRET" not in result.output


def test_config_validate_names_bad_checks_and_sinks(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "health_monitor:\n"
        "  checks:\n"
        "    - name: api\n"
        "      kind: http\n"
        "    - name: api\n"
        "      kind: tcp\n"
        "      host: localhost\n"
        "    - name: beat\n"
        "      kind: file_age\n"
        "      path: /tmp/x\n"
        "    - name: p\n"
        "      kind: process\n"
        "  alerts:\n"
        "    - name: d\n"
        "      kind: discord\n"
    )
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78, result.output
    err = result.stderr
    assert "health_monitor.checks[0].url: is required for http checks" in err
    assert "health_monitor.checks[1].name: duplicate check name 'api'" in err
    assert "health_monitor.checks[1].port: is required for tcp checks" in err
    assert "health_monitor.checks[2].critical: a file_age check needs warn or critical" in err
    assert "health_monitor.checks[3]: a process check needs pid, pidfile or process_name" in err
    assert "health_monitor.alerts[0].url: is required for discord sinks" in err
    cfg.write_text(
        "health_monitor:\n  checks:\n    - name: p\n      kind: proces\n"
        "    - name: q\n      kind: disk\n      path: /\n      warn: '20:10'\n"
    )
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78 and "did you mean 'process'" in result.stderr
    assert f"{cfg}:8: health_monitor.checks[1].warn: range start is above its end" in result.stderr
    cfg.write_text("health_monitor:\n  checks:\n    - {name: memory_usage, kind: disk, path: /}\n")
    result = run_cli("config", "validate", str(cfg))
    assert result.exit_code == 78 and "'memory_usage' is a built-in check's name" in result.stderr


def test_health_help_lists_every_option_and_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'health', '--help']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('psutil', 'httpx', 'pydantic') if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stderr, result.stderr
    for option in (
        "--detailed", "--check", "--json", "--format", "--textfile", "--watch", "--interval",
        "--count", "--quiet", "--no-alerts", "--test-alert",
    ):  # fmt: skip
        assert option in result.stdout


def test_an_unusable_state_store_is_a_warning_not_a_failure(run_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = write_config(tmp_path, {"web": 1})
    cfg.write_text(cfg.read_text() + f"state:\n  path: {blocker}/state.db\n")
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == 1, result.output
    assert "kept in memory this run" in result.stderr and "web" in result.stdout


def test_builtin_run_loads_neither_psutil_nor_asyncio_nor_httpx() -> None:
    """A cron run of the built-in checks stays cheap: /proc read directly, threads not asyncio."""
    code = (
        "import sys\n"
        "sys.argv = ['reliactl', 'health', '--json']\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('psutil', 'httpx', 'asyncio', 'pydantic') if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stderr, result.stderr
    assert json.loads(result.stdout)["checks"]


def test_tcp_check_through_the_cli(run_cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            "health_monitor:\n  system_checks: []\n  checks:\n"
            f"    - {{name: db, kind: tcp, host: 127.0.0.1, port: {port}}}\n"
        )
        result = run_cli("--config", str(cfg), "health", "--format", "nagios")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 1 check OK | 'db:time'=")


# ---- slow sinks and signals (issue 13), through a real `reliactl health` process


def _health(cfg: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reliactl", "--config", str(cfg), "health", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_trickling_webhook_cannot_hold_up_health(tmp_path: Path) -> None:
    """A sink answering a byte every 0.2 s is given up at its 2 s timeout: health ends soon,
    with the check's exit code and a redacted warning (the old code took 49 s and more)."""
    from httpserver import FlakyServer, Reply

    with FlakyServer(Reply(body=b"ok" * 150, trickle=0.2)) as srv:
        sink = HOOK.format(url=srv.url + "/t/SECRET") + "  timeout: 2s\n"
        cfg = write_config(tmp_path, {"db": 2}, alerts=sink)
        started = time.monotonic()
        proc = _health(cfg)
        _, err = proc.communicate(timeout=90)
        took = time.monotonic() - started
    assert took < 25, f"took {took:.1f}s"
    assert proc.returncode == 2, err
    assert "not delivered" in err and "no answer within" in err
    assert "SECRET" not in err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_health_watch_does_not_orphan_a_running_plugin(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """TERM (or Ctrl-C) while a command check runs: the plugin, in its own session, is killed
    too instead of running on as an orphan; TERM still ends health by that signal."""
    pidfile = tmp_path / "plugin.pid"
    plugin = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        "health_monitor:\n"
        "  system_checks: []\n"
        "  checks:\n"
        "    - name: slow\n"
        "      kind: command\n"
        "      timeout: 5m\n"
        f"      command: [{json.dumps(sys.executable)}, -c, {json.dumps(plugin)}]\n"
    )
    proc = _health(cfg, "--watch", "--interval", "1h")
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        plugin_pid = int(pidfile.read_text())
        assert _alive(plugin_pid)
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        gone = time.monotonic() + 10
        while _alive(plugin_pid) and time.monotonic() < gone:
            time.sleep(0.05)
        assert not _alive(plugin_pid), "the plugin outlived health --watch"
        if sig == signal.SIGTERM:
            assert proc.returncode == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
        if pidfile.exists() and pidfile.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
