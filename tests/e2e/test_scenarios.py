"""Operator scenarios end to end: real reliactl processes, real files, SQLite and HTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2ehelpers import (
    IDEASHEETS,
    WebhookServer,
    json_out,
    reliactl,
    shell_env,
    start_reliactl,
    wait_for,
)

# ------------------------------------------------------------------ the flaky nightly job

JOB_CONFIG = """\
circuit_breaker:
  breakers:
    ideasheets:
      failure_threshold: 3
      recovery_timeout: 1h
"""


def _last_run(name: str) -> dict[str, Any]:
    runs = json_out(reliactl("runs", name, "--json", "-n", "1"))["runs"]
    assert runs, f"no run of {name} recorded"
    return dict(runs[0])


def _breaker(name: str) -> dict[str, Any]:
    return dict(json_out(reliactl("breaker", "show", name, "--json"))["breaker"])


def test_flaky_nightly_job(tmp_path: Path) -> None:
    """The example job rides out a flaky upstream, fails for good on bad data, and after
    failure_threshold failing cron runs its breaker stops it (exit 69) until reset."""
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    down = inbox / ".upstream-down"
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(JOB_CONFIG)
    env = shell_env(INBOX=str(inbox), OUTBOX=str(outbox))

    def tick(*extra: str) -> subprocess.CompletedProcess[str]:
        """One cron run of the job, as examples/crontab has it (fast pauses)."""
        return reliactl(
            "-c", str(cfg), "run", "--lock", "--retry", "--delay", "0.01", "--jitter", "none",
            "--no-retry-on", "65", "--breaker", "ideasheets", "--name", "ideasheets",
            *extra, "--", str(IDEASHEETS), env=env,
        )  # fmt: skip

    # Two transient failures (exit 75), then success: one run, three attempts.
    (inbox / "a.txt").write_text("title: first idea\nsome words here\n")
    down.write_text("2\n")
    result = tick()
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("failed with exit code 75") == 2, result.stderr
    assert "processed 1 sheet(s)" in result.stdout
    assert (outbox / "a.summary").read_text() == "sheet: a\ntitle: first idea\nwords: 6\n"
    assert down.read_text().strip() == "0"
    run = _last_run("ideasheets")
    assert (run["outcome"], run["attempts"], run["exit_code"]) == ("success", 3, 0)
    assert _breaker("ideasheets")["state"] == "closed"

    # A malformed sheet fails the job for good: exit 65, not retried, the sheet left in place.
    (inbox / "bad.txt").write_text("no title line\n")
    result = tick()
    assert result.returncode == 65, result.stderr
    assert "malformed sheet bad.txt" in result.stderr
    assert "retry 1" not in result.stderr
    assert (inbox / "bad.txt").exists()
    run = _last_run("ideasheets")
    assert (run["outcome"], run["attempts"], run["exit_code"]) == ("failure", 1, 65)
    assert _breaker("ideasheets")["consecutive_failures"] == 1

    # Two more nights fail the same way: three consecutive failures open the breaker.
    for night in (2, 3):
        result = tick()
        assert result.returncode == 65, result.stderr
        breaker = _breaker("ideasheets")
        assert breaker["consecutive_failures"] == night
    assert breaker["state"] == "open"
    listed = json_out(reliactl("breaker", "list", "--json"))
    assert listed["open"] == ["ideasheets"]

    # The next night is not run at all: exit 69, and the job's first act (decrementing the
    # upstream counter) never happened, nor did it touch the inbox or the outbox.
    down.write_text("1\n")
    before = sorted(p.name for p in outbox.iterdir())
    result = tick()
    assert result.returncode == 69, result.stderr
    assert "ideasheets" in result.stderr and "open" in result.stderr
    assert down.read_text().strip() == "1"
    assert (inbox / "bad.txt").exists()
    assert sorted(p.name for p in outbox.iterdir()) == before
    run = _last_run("ideasheets")
    assert (run["attempts"], run["exit_code"]) == (0, 69), run

    # The operator fixes the input and resets the breaker: the next night runs again (one
    # transient failure ridden out, proving the job itself ran) and the breaker stays closed.
    (inbox / "bad.txt").write_text("title: fixed by hand\n")
    reset = reliactl("breaker", "reset", "ideasheets")
    assert reset.returncode == 0, reset.stderr
    breaker = _breaker("ideasheets")
    assert (breaker["state"], breaker["consecutive_failures"]) == ("closed", 0)
    result = tick()
    assert result.returncode == 0, result.stderr
    assert down.read_text().strip() == "0"
    assert (outbox / "bad.summary").read_text().startswith("sheet: bad\ntitle: fixed by hand\n")
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a.txt", "bad.txt"]
    run = _last_run("ideasheets")
    assert (run["outcome"], run["attempts"]) == ("success", 2)
    assert _breaker("ideasheets")["state"] == "closed"


# ------------------------------------------------------------------ two cron ticks overlap


@contextmanager
def slow_run(tmp_path: Path, name: str) -> Iterator[subprocess.Popen[str]]:
    """A cron tick of job NAME that holds its lock until the block ends (no fixed sleep; it
    gives up by itself after 30 s), started as examples/crontab would start it."""
    started, release = tmp_path / f"{name}.started", tmp_path / f"{name}.release"
    body = (
        f"touch {started}; i=0; while [ ! -e {release} ] && [ $i -lt 600 ]; do "
        f"sleep 0.05; i=$((i+1)); done; echo slow done"
    )
    holder = start_reliactl(
        "run", "--lock-name", name, "--name", name, "--skip-if-locked", "--", "sh", "-c", body,
    )  # fmt: skip
    try:
        assert wait_for(started.exists), "the slow run never started"
        yield holder
    finally:
        release.touch()
        holder.communicate(timeout=30)


def test_two_cron_ticks_overlap(tmp_path: Path) -> None:
    """A slow run holds the lock; the next tick with --skip-if-locked exits 0 at once and
    quietly without running, one without it exits 75; the history shows all three."""
    second = tmp_path / "second-ran"
    with slow_run(tmp_path, "nightly") as holder:
        tick = reliactl(
            "run", "--lock-name", "nightly", "--name", "nightly", "--skip-if-locked",
            "--", "touch", str(second),
        )  # fmt: skip
        assert tick.returncode == 0, tick.stderr
        assert (tick.stdout, tick.stderr) == ("", "")
        busy = reliactl("run", "--lock-name", "nightly", "--name", "nightly", "touch", str(second))
        assert busy.returncode == 75, busy.stderr
        assert f"pid {holder.pid}" in busy.stderr
        assert not second.exists()
        runs = json_out(reliactl("runs", "nightly", "--json"))["runs"]
        assert [r["outcome"] for r in runs] == ["busy", "skipped", "running"], runs
        assert all(r["attempts"] == 0 for r in runs)
        assert [r["command"] for r in runs[:2]] == [f"touch {second}"] * 2
    assert holder.returncode == 0
    runs = json_out(reliactl("runs", "nightly", "--json"))["runs"]
    assert [(r["outcome"], r["attempts"], r["exit_code"]) for r in runs] == [
        ("busy", 0, 75),
        ("skipped", 0, 0),
        ("success", 1, 0),
    ], runs
    assert not second.exists()


def test_runs_last_is_not_fooled_by_skipped_ticks(tmp_path: Path) -> None:
    """While the real run is still going, `runs NAME --last` exits 1, skipped ticks or not."""
    with slow_run(tmp_path, "hung"):
        tick = reliactl("run", "--lock-name", "hung", "--name", "hung", "--skip-if-locked", "true")
        assert tick.returncode == 0, tick.stderr
        last = reliactl("runs", "hung", "--last")
        assert last.returncode == 1, last.stdout + last.stderr


# ------------------------------------------------------------------ disk filling


def _disk_config(data: Path, server: WebhookServer, warn: str, critical: str) -> str:
    return f"""\
health_monitor:
  system_checks: []
  checks:
    - name: data-disk
      kind: disk
      path: {data}
      warn: "{warn}"
      critical: "{critical}"
  alerts:
    - {{name: pager, kind: webhook, url: "{server.url}/hook", cooldown: 1h}}
    - {{name: ops-discord, kind: discord, url: "{server.url}/api/webhooks/ID/TOKEN",
       cooldown: 1h}}
"""


def test_disk_filling(tmp_path: Path) -> None:
    """A disk past a low threshold is CRITICAL on every run but alerts once per sink within
    the cooldown; raising the threshold sends one recovery alert."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "reliactl.yaml"
    usage = shutil.disk_usage(data)
    used = 100.0 * usage.used / (usage.used + usage.free)  # as df(1) and reliactl count it
    # A threshold below what is used now ("the disk filled past it"); on an empty
    # filesystem, the Nagios range '@0:100' (inside 0..100) is critical all the same.
    low = f"{used / 2:.3f}" if used > 0.01 else "@0:100"
    with WebhookServer() as server:
        cfg.write_text(_disk_config(data, server, low, low))
        for _ in range(3):
            result = reliactl("-c", str(cfg), "health", "--format", "nagios")
            assert result.returncode == 2, result.stdout + result.stderr
            assert result.stdout.startswith("CRITICAL"), result.stdout
        hook = server.received("/hook")
        assert len(hook) == 1, hook
        assert (hook[0]["check"], hook[0]["status"], hook[0]["kind"]) == (
            "data-disk",
            "CRITICAL",
            "problem",
        )
        discord = server.received("/api/webhooks/ID/TOKEN")
        assert len(discord) == 1 and discord[0]["embeds"], discord

        # The operator raises the threshold: the next run is OK and sends one recovery.
        cfg.write_text(_disk_config(data, server, "100", "100"))
        result = reliactl("-c", str(cfg), "health", "--format", "nagios")
        assert result.returncode == 0, result.stdout + result.stderr
        hook = server.received("/hook")
        assert len(hook) == 2, hook
        assert (hook[1]["status"], hook[1]["previous"], hook[1]["kind"]) == (
            "OK",
            "CRITICAL",
            "recovery",
        )
        assert len(server.received("/api/webhooks/ID/TOKEN")) == 2
        # Still OK: nothing more to say.
        result = reliactl("-c", str(cfg), "health", "--format", "nagios")
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(server.posted()) == 4, server.posted()
