from __future__ import annotations

import json
import os
from pathlib import Path

from reliactl.doctor import diagnose


def statuses(report) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


def test_fresh_machine_passes_with_warnings(run_cli) -> None:
    result = run_cli("doctor")
    assert result.exit_code == 0, result.output
    assert "WARN  config" in result.stdout and "fix: reliactl config init" in result.stdout
    assert "ok    state store" in result.stdout


def test_invalid_config_fails_with_the_validate_hint(run_cli, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("retry:\n  max_retries: lots\n")
    result = run_cli("--config", str(cfg), "doctor", "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    (config,) = [f for f in doc["findings"] if f["check"] == "config"]
    assert config["status"] == "fail" and "reliactl config validate" in config["fix"]


def test_unwritable_state_location_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state:\n  path: {blocker}/state.db\nrun:\n  lock_dir: {blocker}/locks\n")
    report = diagnose(str(cfg))
    found = statuses(report)
    assert found["state store"] == "fail" and found["lock directory"] == "fail"
    assert report.failed


def test_clock_before_the_release_fails() -> None:
    assert statuses(diagnose(now=0.0))["clock"] == "fail"


def test_clock_behind_the_state_store_warns(tmp_path: Path) -> None:
    report = diagnose()
    state = next(f for f in report.findings if f.check == "state store")
    path = state.message.split(" ")[0]
    future = os.stat(path).st_mtime + 3600
    os.utime(path, (future, future))
    assert statuses(diagnose(now=future - 3600))["clock"] == "warn"


def test_installed_completions_are_found(tmp_path: Path) -> None:
    target = Path(os.environ["HOME"]) / ".local/share/bash-completion/completions/reliactl"
    target.parent.mkdir(parents=True)
    target.write_text("# x")
    assert statuses(diagnose())["completions"] == "ok"


def test_serve_token_file_must_be_private_and_long(tmp_path: Path) -> None:
    """doctor fails a serve token file other users can read or shorter than serve accepts,
    and passes a private one; a missing file means serve would be read-only (ok)."""
    token = tmp_path / "serve.token"

    def serve_finding() -> tuple[str, str]:
        report = diagnose(environ={}, serve_token_file=str(token))
        found = [f for f in report.findings if f.check == "serve"]
        assert len(found) == 1
        return found[0].status, found[0].message

    assert serve_finding() == (
        "ok",
        "the serve extra is installed; serve would run read-only (no token)",
    )
    token.write_text("a" * 32 + "\n")
    token.chmod(0o644)
    status, message = serve_finding()
    assert status == "fail" and "mode 0644" in message
    token.chmod(0o600)
    assert serve_finding()[0] == "ok"
    os.chown(token, 65534, 65534)  # serve refuses another user's token file: so does doctor
    status, message = serve_finding()
    assert status == "fail" and "owned by nobody" in message and "refuses" in message
    os.chown(token, 0, 0)
    token.write_text("short\n")
    status, message = serve_finding()
    assert status == "fail" and "5 characters" in message
    weak = diagnose(environ={"RELIACTL_SERVE_TOKEN": "abc"}, serve_token_file=str(tmp_path / "x"))
    assert [f.status for f in weak.findings if f.check == "serve"] == ["fail"]


_IMPORTS_PROBE = """
import json, sys
from reliactl.doctor import diagnose

report = diagnose()
heavy = ("asyncio", "aiohttp", "redis", "psutil", "httpx", "ssl", "tempfile", "shutil",
         "reliactl.health.alerts", "reliactl.health.channels", "reliactl.state.ops")
print(json.dumps({"failed": report.failed, "imported": [m for m in heavy if m in sys.modules]}))
"""


def test_doctor_loads_only_what_its_checks_need(tmp_path: Path) -> None:
    """Issue 21: on a host with the default SQLite store and no alert sink, diagnose() in a
    fresh interpreter imports no alert or channel code (and so no asyncio or ssl), no Redis
    state code, and not tempfile/shutil for its writability probes; the report is complete."""
    import subprocess
    import sys

    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path)}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    env.pop("RELIACTL_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"failed": False, "imported": []}


def test_directory_probes_leave_nothing_behind(tmp_path: Path) -> None:
    """The lock and log directory checks create and remove one probe file each: the
    directories are reported writable and hold no `.doctor-*` file afterwards."""
    locks, logs = tmp_path / "locks", tmp_path / "logs"
    locks.mkdir()
    logs.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"state:\n  path: {tmp_path}/s.db\nrun:\n  lock_dir: {locks}\n  log_dir: {logs}\n"
    )
    found = statuses(diagnose(str(cfg)))
    assert found["lock directory"] == "ok" and found["log directory"] == "ok"
    assert list(locks.iterdir()) == [] and list(logs.iterdir()) == []


def test_a_refused_config_is_a_doctor_failure_exit_1_not_78(run_cli, tmp_path: Path) -> None:
    """doctor's exit is its answer (README, `reliactl doctor`: 0 when nothing failed, else 1;
    the exit-code table's row 1): a named config file refused as writable by others, or one
    that is invalid, is a FAIL finding among the others and exit 1, whereas `config validate`
    of the same files exits 78 (configuration invalid)."""
    refused = tmp_path / "open.yaml"
    refused.write_text("retry: {}\n")
    refused.chmod(0o666)
    invalid = tmp_path / "bad.yaml"
    invalid.write_text("retry:\n  max_retries: lots\n")
    for cfg, why in ((refused, "writable by others"), (invalid, "problem")):
        result = run_cli("--config", str(cfg), "doctor", "--json")
        assert result.exit_code == 1, result.output
        findings = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
        assert findings["config"]["status"] == "fail" and why in findings["config"]["message"]
        assert findings["state store"]["status"] == "ok"  # the other checks still ran
        assert run_cli("--config", str(cfg), "config", "validate").exit_code == 78


def test_a_lock_directory_run_would_refuse_is_a_doctor_failure(tmp_path: Path) -> None:
    """doctor agrees with `run --lock`: a writable 0777 lock directory (no sticky bit) fails
    with the mode and the fix; with the sticky bit (1777, /tmp-style) it is ok."""
    locks = tmp_path / "locks"
    locks.mkdir()
    locks.chmod(0o777)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state:\n  path: {tmp_path}/s.db\nrun:\n  lock_dir: {locks}\n")
    report = diagnose(str(cfg))
    lock = next(f for f in report.findings if f.check == "lock directory")
    assert lock.status == "fail" and "mode 0777" in lock.message and "chmod +t" in lock.fix
    locks.chmod(0o1777)
    assert statuses(diagnose(str(cfg)))["lock directory"] == "ok"
