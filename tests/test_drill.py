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


def test_the_alerts_drill_leaves_no_entry_in_any_sink_record(tmp_path: Path) -> None:
    """attack2 #2: each `drill alerts` left its drill check's entry in every sink's
    notify:SINK record (they piled up). Two drills in a row: both deliver problem and
    recovery, and afterwards no alert record (problem, sink entry, old-form key) names a
    drill check, while another check's entry in the same sink record stays."""
    from reliactl.config import load
    from reliactl.drill import run_drill
    from reliactl.health.records import RecordStore
    from reliactl.state.sqlite import open_store

    with CountingServer() as sink:
        cfg = _config(tmp_path, sink.url + "/hook", "  {}\n")
        config = load(cfg, use_env=False, search=False).config
        store = open_store(tmp_path / "state.db")
        records = RecordStore(store)
        kept = {"status": "CRITICAL", "sent_at": 1.0}
        records.update("alert", "notify:hook", lambda _r: {"checks": {"web-9/disk": kept}})
        for _ in range(2):
            report = run_drill(["alerts"], config, lambda: store)
            assert report.ok, report.to_dict()
        assert [b["status"] for b in sink.posted()] == ["CRITICAL", "OK"] * 2
    left = records.items("alert")
    assert not [k for k in left if "drill" in k], left
    assert left["notify:hook"]["checks"] == {"web-9/disk": kept}
