"""`reliactl drill` (issue 20): game days against the real configuration, every step checked,
exit 0 only when each behaved, and nothing of the drill left in the state store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.httpserver import CountingServer
from tests.runhelpers import run


def _config(tmp_path: Path, sink_url: str, jobs: str) -> Path:
    path = tmp_path / "reliactl.yaml"
    path.write_text(
        "health_monitor:\n"
        "  alerts:\n"
        "    - name: hook\n"
        "      kind: webhook\n"
        f"      url: {sink_url}\n"
        f"jobs:\n{jobs}"
    )
    return path


def test_every_drill_passes_on_a_working_setup_and_leaves_nothing(tmp_path: Path) -> None:
    """breaker, alerts, job-missed and disk all behave: exit 0; the sink got exactly the problem
    and its recovery (the repeat inside the cooldown sent nothing); the drill breaker and its
    alert records are gone from the store afterwards."""
    with CountingServer() as sink:
        cfg = _config(tmp_path, sink.url + "/hook", "  nightly:\n    schedule: '30 2 * * *'\n")
        result = run("-c", str(cfg), "drill", "all", "--json", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is True
        steps = {f"{s['drill']}/{s['step']}": s["ok"] for s in doc["steps"]}
        for step in ("breaker/refuse", "breaker/recover", "alerts/problem", "alerts/cooldown",
                     "alerts/recovery", "job-missed/overdue:nightly", "disk/forced"):  # fmt: skip
            assert steps[step] is True, step
        statuses = [body["status"] for body in sink.posted()]
        assert statuses == ["CRITICAL", "OK"], statuses
        assert all("drill" in body["check"] for body in sink.posted())
    listed = json.loads(run("-c", str(cfg), "breaker", "list", "--json").stdout)
    names = [b["name"] for b in (listed["breakers"] if isinstance(listed, dict) else listed)]
    assert not any(n.startswith("drill-") for n in names)


def test_a_failing_sink_and_an_unschedulable_job_fail_the_drill(tmp_path: Path) -> None:
    """A sink answering 500 and a job without a schedule (a missed run cannot be noticed) are
    each a failed step: exit 1, the text report says FAIL for them."""
    with CountingServer(status=500) as sink:
        cfg = _config(tmp_path, sink.url + "/hook", "  adhoc:\n    max_failures: 2\n")
        result = run("-c", str(cfg), "drill", "alerts", "job-missed", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  alerts/problem" in result.stdout
    assert "FAIL  job-missed/overdue:adhoc" in result.stdout
    assert "drill FAILED" in result.stdout


def test_an_unknown_drill_is_a_usage_error() -> None:
    """One line naming the drills, exit 2, nothing run."""
    result = run("drill", "fire")
    assert result.returncode == 2
    assert "no drill named 'fire'" in result.stderr and "breaker" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.stress
def test_the_breaker_drill_holds_on_a_host_slow_to_start_processes(tmp_path: Path) -> None:
    """Every Python process here takes 1.5 s to start (a sitecustomize that sleeps, as a loaded
    host can): the refused run still meets the open breaker (it met a half-open one and ran,
    exit 0 instead of 69, when the drill opened it for 1 s only), and the trial still closes it."""
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text("import time\ntime.sleep(1.5)\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")])),
    }
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text("jobs: {}\n")
    result = run("-c", str(cfg), "drill", "breaker", "--json", timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["refuse"]["ok"] is True, steps["refuse"]
    assert steps["recover"]["ok"] is True, steps["recover"]
