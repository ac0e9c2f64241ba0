"""`reliactl health` heals: remediated / remediation failed in text and --json, --no-remediate,
--dry-run-remediation, an untrusted configuration (as another user), concurrent runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from httpserver import FlakyServer
from runhelpers import NOBODY

from reliactl.config import load
from reliactl.state import open_state


def config(where: Path, remediate: str) -> Path:
    """One command check `flag`, CRITICAL until where/fixed exists, with ``remediate``."""
    text = f"""state:
  path: {where}/state.db
run:
  lock_dir: {where}/locks
health_monitor:
  system_checks: []
  jobs_checks: false
  checks:
    - name: flag
      kind: command
      command: [/bin/sh, -c, "test -e {where}/fixed || exit 2"]
      remediate:
        {remediate}
"""
    path = where / "reliactl.yaml"
    path.write_text(text)
    return path


def runs_of(cfg: Path) -> list[str]:
    return [r.outcome for r in open_state(load(cfg).config).runs("remediate.flag")]


def test_text_and_json_say_remediated_and_exit_with_the_verified_status(
    run_cli, tmp_path: Path
) -> None:
    """The text report has a "remediation: flag: remediated" line and exits 0 (the verified
    OK); --json carries the remediations list and the check's verified status."""
    cfg = config(
        tmp_path, f'{{command: [/bin/sh, -c, "touch {tmp_path}/fixed"], verify_after: 0s}}'
    )
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == 0, result.output
    assert "remediation: flag: remediated" in result.stdout
    (tmp_path / "fixed").unlink()
    result = run_cli("--config", str(cfg), "health", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["result"] for r in doc["remediations"]] == ["remediated"]
    assert doc["remediations"][0]["attempt"] == 2
    assert doc["checks"][0]["status"] == "OK"
    assert doc["checks"][0]["details"]["remediation"]["result"] == "remediated"
    assert runs_of(cfg) == ["success", "success"]


def test_a_failed_remediation_is_reported_with_its_output(run_cli, tmp_path: Path) -> None:
    """A remediation that exits 1: "remediation failed" with the exit and its output, the
    check stays CRITICAL (exit 2)."""
    cfg = config(tmp_path, '{command: [/bin/sh, -c, "echo cannot fix >&2; exit 1"]}')
    result = run_cli("--config", str(cfg), "health")
    assert result.exit_code == 2, result.output
    assert "remediation: flag: remediation failed" in result.stdout
    assert "cannot fix" in result.stdout
    assert runs_of(cfg) == ["failure"]


def test_the_alert_of_a_still_failing_check_carries_the_remediation_output(
    run_cli, tmp_path: Path
) -> None:
    """The problem alert (a real webhook sink) is sent after the remediation, with the
    verified status and the remediation's output in its message."""
    with FlakyServer() as sink:
        text = config(tmp_path, '{command: [/bin/sh, -c, "echo no space left >&2; exit 1"]}')
        hook = f"  alerts: [{{name: hook, kind: webhook, url: '{sink.url}/h'}}]\n"
        cfg = text.read_text().replace("  jobs_checks: false\n", "  jobs_checks: false\n" + hook)
        text.write_text(cfg)
        result = run_cli("--config", str(text), "health")
        assert result.exit_code == 2, result.output
        posted = sink.posted("/h")
    assert [p["kind"] for p in posted] == ["problem"], posted
    assert "remediation failed" in posted[0]["message"]
    assert "no space left" in posted[0]["message"]


def test_no_remediate_runs_nothing(run_cli, tmp_path: Path) -> None:
    """--no-remediate: the check is reported CRITICAL as it is; no command, no history."""
    cfg = config(tmp_path, f'{{command: [/bin/sh, -c, "touch {tmp_path}/fixed"]}}')
    result = run_cli("--config", str(cfg), "health", "--no-remediate")
    assert result.exit_code == 2, result.output
    assert "remediation" not in result.stdout
    assert not (tmp_path / "fixed").exists() and runs_of(cfg) == []


def test_dry_run_remediation_shows_what_would_run_and_runs_nothing(run_cli, tmp_path: Path) -> None:
    """--dry-run-remediation: "would run" with the argv; nothing runs, nothing recorded."""
    cfg = config(tmp_path, f'{{command: [/bin/sh, -c, "touch {tmp_path}/fixed"]}}')
    result = run_cli("--config", str(cfg), "health", "--dry-run-remediation")
    assert result.exit_code == 2, result.output
    assert "remediation: flag: would run (/bin/sh -c touch" in result.stdout
    assert not (tmp_path / "fixed").exists() and runs_of(cfg) == []
    both = run_cli("--config", str(cfg), "health", "--dry-run-remediation", "--no-remediate")
    assert both.exit_code == 3 and "exclusive" in both.stderr


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can read (not pytest's 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-heal-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_remediations_from_a_file_owned_by_another_user_are_refused(reachable: Path) -> None:
    """health run as nobody (setpriv) with a configuration owned by another user (uid 12345):
    refused (exit 78, the configuration error, naming the owner); the remediation never runs."""
    marker = reachable / "out"
    marker.mkdir(mode=0o777)
    marker.chmod(0o777)
    cfg = config(reachable, f'{{command: [/bin/sh, -c, "touch {marker}/ran"]}}')
    os.chown(cfg, 12345, 12345)
    result = subprocess.run(
        [*NOBODY, sys.executable, "-m", "reliactl", "--config", str(cfg), "health"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(marker)},
    )  # fmt: skip
    assert result.returncode == 78, result.stdout + result.stderr
    assert "refused" in result.stderr and "uid 12345" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (marker / "ran").exists()


@pytest.mark.stress
def test_concurrent_health_runs_remediate_once(tmp_path: Path) -> None:
    """Three `reliactl health` processes see the check CRITICAL at once: the remediation (a
    slow one) runs exactly once; the others report busy or the fix made meanwhile."""
    count = tmp_path / "count"
    go = tmp_path / "go"
    cfg = config(
        tmp_path,
        f'{{command: [/bin/sh, -c, "echo run >> {count}; sleep 1; touch {tmp_path}/fixed"],'
        " verify_after: 0s}",
    )
    start = (
        f"while [ ! -e {go} ]; do sleep 0.01; done; "
        f"exec {sys.executable} -m reliactl --config {cfg} health --json"
    )
    procs = [
        subprocess.Popen(["/bin/sh", "-c", start], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    time.sleep(0.5)
    go.touch()
    docs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        docs.append(json.loads(out))
    assert count.read_text().splitlines() == ["run"]
    results = sorted(r["result"] for d in docs for r in d["remediations"])
    assert results.count("remediated") >= 1, results
    assert set(results) <= {"remediated", "remediation busy"}, results


def test_health_as_root_does_not_signal_through_a_link_another_user_planted(
    reachable: Path,
) -> None:
    """The review's attack end to end: nobody's directory holds bot.pid -> root's pidfile of
    a victim process; `reliactl health` (root, a subprocess) reports the remediation refused
    with the owner in one line, exits with the check's CRITICAL, and the victim lives."""
    victim = subprocess.Popen(["sleep", "120"])
    try:
        (reachable / "root").mkdir(mode=0o755)
        pidfile = reachable / "root" / "victim.pid"
        pidfile.write_text(f"{victim.pid}\n")
        theirs = reachable / "nob"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, 65534, 65534)
        link = theirs / "bot.pid"
        subprocess.run([*NOBODY, "ln", "-s", str(pidfile), str(link)], check=True, timeout=30)
        cfg = config(reachable, f"{{action: 'signal:{link}:TERM'}}")
        result = subprocess.run(
            [sys.executable, "-m", "reliactl", "--config", str(cfg), "health"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(reachable)},
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        lines = [x for x in result.stdout.splitlines() if x.startswith("remediation:")]
        assert len(lines) == 1 and "remediation refused" in lines[0], result.stdout
        assert "nobody (uid 65534)'s" in lines[0] and "not theirs" in lines[0]
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait(30)


def test_a_commands_secrets_run_but_are_shown_nowhere(reachable: Path) -> None:
    """A remediation command and an alert sink command carrying --token/--password/an
    Authorization header: the remediation receives the real token (it writes it to a file),
    while `config show` (text and --json), `health --json` (the remediation's command and
    the check's details) and the run history show "***" (they printed it in clear)."""
    secret, other, header = "tok-7f3a9c1e", "pw-91bd33", "hdr-5e2c0a"
    got = reachable / "got"
    cfg = config(
        reachable,
        "{command: [/bin/sh, -c, "
        f"'printf %s \"$2\" > {got}; touch {reachable}/fixed', sh, --token, {secret}], "
        "verify_after: 0s}",
    )
    text = cfg.read_text().replace(
        "health_monitor:\n",
        "health_monitor:\n  alerts:\n    - {name: log, kind: command, command: [/bin/true,"
        f" --password={other}, -H, 'Authorization: Bearer {header}']}}\n",
    )
    cfg.write_text(text)
    env = {**os.environ, "HOME": str(reachable)}
    base = [sys.executable, "-m", "reliactl", "--config", str(cfg)]
    outputs = []
    for argv in (["config", "show"], ["config", "show", "--json"], ["health", "--json"]):
        result = subprocess.run(
            [*base, *argv], capture_output=True, text=True, timeout=120, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert got.read_text() == secret  # the command ran with the real token
    history = [r.command for r in open_state(load(cfg).config).runs("remediate.flag")]
    assert history and "--token ***" in history[0]
    for shown in [*outputs, *history]:
        assert secret not in shown and other not in shown and header not in shown, shown
    assert "***" in outputs[0] and "Bearer ***" in outputs[0]


def test_a_remediation_that_starts_a_daemon_leaves_it_running(run_cli, tmp_path: Path) -> None:
    """A remediation's job is often to start something (`/etc/init.d/foo start`: it daemonizes
    and returns). What it started keeps running once it exits, as with `run --leave-running`:
    the check is verified OK, and the daemon is still there after `health` returned (it was
    stopped as a leftover, and the remediation reported failed)."""
    pidfile = tmp_path / "svc.pid"
    start = tmp_path / "svc-start"
    start.write_text(
        "#!/bin/sh\n"
        f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' </dev/null >/dev/null 2>&1 &\n"
        "sleep 0.2\n"
    )
    start.chmod(0o755)
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(f"""state:
  path: {tmp_path}/state.db
run:
  lock_dir: {tmp_path}/locks
health_monitor:
  system_checks: []
  jobs_checks: false
  checks:
    - name: svc
      kind: command
      command: [/bin/sh, -c, "kill -0 $(cat {pidfile} 2>/dev/null || echo 999999) || exit 2"]
      remediate:
        command: [{start}]
        verify_after: 0.5s
""")
    result = run_cli("--config", str(cfg), "health")
    try:
        assert result.exit_code == 0, result.output
        assert "remediated" in result.output, result.output
        os.kill(int(pidfile.read_text()), 0)  # still running
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), 9)
