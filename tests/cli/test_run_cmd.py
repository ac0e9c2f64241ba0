"""`reliactl run` flags end to end (real processes): lock, retries, history, output, reports."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from importtime import start_reliactl
from runhelpers import catches, has_open, lock_dir, lock_is_free, run, start, wait_for


def counter_script(counter: Path, fail_times: int, code: int = 1) -> str:
    """A shell body that fails ``fail_times`` times with ``code``, then succeeds."""
    return (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        f"[ $n -gt {fail_times} ] || exit {code}"
    )


FAST = ("--delay", "0.01", "--jitter", "none")


# ------------------------------------------------------------------ lock


def test_busy_lock_exits_75_names_the_holder_and_does_not_run(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    marker = tmp_path / "second-ran"
    holder = start("run", "--lock-name", "job", "sh", "-c", f"touch {ready}; sleep 30")
    try:
        wait_file_exists(ready)
        result = run("run", "--lock-name", "job", "touch", str(marker))
        assert result.returncode == 75, result.stderr
        assert f"pid {holder.pid}" in result.stderr and "since" in result.stderr
        assert not marker.exists()
        skipped = run("run", "--skip-if-locked", "--lock-name", "job", "touch", str(marker))
        assert skipped.returncode == 0, skipped.stderr
        assert skipped.stderr == "" and skipped.stdout == ""
        assert not marker.exists()
    finally:
        holder.terminate()
        holder.wait(timeout=20)
    assert lock_is_free(lock_dir() / "job.lock")


def wait_file_exists(path: Path) -> None:
    assert wait_for(path.exists), path


def test_lock_wait_runs_once_the_holder_is_done(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    holder = start(
        "run", "--lock-name", "job", "sh", "-c", f"touch {ready}; sleep 0.5",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_file_exists(ready)
    result = run("run", "--lock-name", "job", "--lock-wait", "20s", "echo", "second")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "second\n"
    assert holder.wait(timeout=20) == 0


def test_default_lock_name_is_the_command_path(tmp_path: Path) -> None:
    result = run("run", "--lock", "true", "ignored")
    assert result.returncode == 0, result.stderr
    names = os.listdir(lock_dir())
    assert len(names) == 1 and names[0].endswith("true.lock") and names[0].startswith("usr-")
    assert stat.S_IMODE((lock_dir() / names[0]).stat().st_mode) == 0o600


def test_a_planted_symlink_lock_refuses_to_run(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    lock_dir().mkdir(parents=True)
    (lock_dir() / "job.lock").symlink_to(victim)
    marker = tmp_path / "ran"
    result = run("run", "--lock-name", "job", "touch", str(marker))
    assert result.returncode == 125, result.stderr
    assert "symbolic link" in result.stderr
    assert not marker.exists() and victim.read_text() == "keep\n"


def body_recording(log: Path) -> str:
    return f"echo start $$ >> {log}; sleep 0.02; echo end $$ >> {log}"


def assert_no_overlap(log: Path, expected: int) -> None:
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 2 * expected, lines
    for index in range(0, len(lines), 2):
        start_word, start_pid = lines[index].split()
        end_word, end_pid = lines[index + 1].split()
        assert (start_word, end_word) == ("start", "end") and start_pid == end_pid, lines


def concurrent_locked_runs(tmp_path: Path, count: int) -> None:
    log = tmp_path / "log"
    procs = [
        start(
            "run",
            "--lock-name",
            "shared",
            "--lock-wait",
            "forever",
            "sh",
            "-c",
            body_recording(log),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0] * count
    assert_no_overlap(log, count)


def test_ten_concurrent_locked_runs_never_overlap(tmp_path: Path) -> None:
    concurrent_locked_runs(tmp_path, 10)


@pytest.mark.stress
def test_fifty_concurrent_locked_runs_never_overlap(tmp_path: Path) -> None:
    concurrent_locked_runs(tmp_path, 50)


def test_twenty_contenders_with_wait_zero_exit_75_without_running(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ran = tmp_path / "ran"
    holder = start(
        "run", "--lock-name", "busy", "sh", "-c", f"touch {ready}; sleep 60",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_file_exists(ready)
        procs = [
            start(
                "run",
                "--lock-name",
                "busy",
                "--lock-wait",
                "0",
                "sh",
                "-c",
                f"echo x >> {ran}",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(20)
        ]
        assert [p.wait(timeout=120) for p in procs] == [75] * 20
        assert not ran.exists()
    finally:
        holder.terminate()
        holder.wait(timeout=20)


# ------------------------------------------------------------------ retries


def test_fails_twice_then_succeeds_after_three_attempts(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    result = run("run", "--retries", "5", *FAST, "sh", "-c", counter_script(counter, 2))
    assert result.returncode == 0, result.stderr
    assert counter.read_text().strip() == "3"
    assert "after 3 attempts" in result.stderr
    assert "retry 1 of 5 in 10ms" in result.stderr and "retry 2 of 5" in result.stderr


def test_always_failing_with_retries_3_makes_4_attempts_and_keeps_the_code(
    tmp_path: Path,
) -> None:
    counter = tmp_path / "n"
    result = run("run", "--retries", "3", *FAST, "sh", "-c", counter_script(counter, 99, code=7))
    assert result.returncode == 7, result.stderr
    assert counter.read_text().strip() == "4"


def test_retry_uses_the_configured_policy(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  max_retries: 2\n  base_delay: 10ms\n  jitter: none\n")
    counter = tmp_path / "n"
    result = run("--config", str(cfg), "run", "--retry", "sh", "-c", counter_script(counter, 99))
    assert result.returncode == 1, result.stderr
    assert counter.read_text().strip() == "3"


def test_without_retry_flags_nothing_is_retried(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    assert run("run", "sh", "-c", counter_script(counter, 99)).returncode == 1
    assert counter.read_text().strip() == "1"


@pytest.mark.parametrize("code", [126, 127])
def test_126_and_127_are_never_retried(code: int, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    result = run("run", "--retries", "3", *FAST, "sh", "-c", counter_script(counter, 99, code))
    assert result.returncode == code
    assert counter.read_text().strip() == "1"


def test_a_missing_command_is_not_retried() -> None:
    result = run("run", "--retries", "3", *FAST, "no-such-command-xyz")
    assert result.returncode == 127
    assert "retry 1" not in result.stderr


def test_retry_on_and_no_retry_on_choose_codes(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    only = run(
        "run", "--retries", "3", *FAST, "--retry-on", "1,64-78", "sh", "-c",
        counter_script(counter, 99, code=4),
    )  # fmt: skip
    assert only.returncode == 4 and counter.read_text().strip() == "1"
    counter.unlink()
    listed = run(
        "run", "--retries", "3", *FAST, "--retry-on", "1,64-78", "sh", "-c",
        counter_script(counter, 99, code=70),
    )  # fmt: skip
    assert listed.returncode == 70 and counter.read_text().strip() == "4"
    counter.unlink()
    excluded = run(
        "run", "--retries", "3", *FAST, "--no-retry-on", "2-3", "sh", "-c",
        counter_script(counter, 99, code=3),
    )  # fmt: skip
    assert excluded.returncode == 3 and counter.read_text().strip() == "1"


def test_a_timeout_is_retried_only_with_retry_on_timeout(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    body = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; sleep 30"
    plain = run("run", "--timeout", "0.4", "--retries", "2", *FAST, "sh", "-c", body)
    assert plain.returncode == 124 and counter.read_text().strip() == "1"
    counter.unlink()
    again = run(
        "run", "--timeout", "0.4", "--retries", "2", "--retry-on-timeout", *FAST, "sh", "-c", body
    )
    assert again.returncode == 124 and counter.read_text().strip() == "3"


def test_total_timeout_bounds_attempts_and_pauses(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    result = run(
        "run", "--retries", "100", "--delay", "1", "--backoff", "fixed", "--jitter", "none",
        "--total-timeout", "1.9", "sh", "-c", counter_script(counter, 999),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert counter.read_text().strip() == "2"  # at 0 s and 1 s; a third at 2 s would not fit
    assert "total timeout" in result.stderr


def test_total_timeout_stops_a_running_attempt() -> None:
    result = run("run", "--total-timeout", "0.3", "sleep", "30")
    assert result.returncode == 124, result.stderr


def test_a_signal_during_the_backoff_ends_it_at_once(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    log = tmp_path / "log"
    proc = start(
        "run", "--retries", "3", "--delay", "60", "--jitter", "none", "--log-file", str(log),
        "sh", "-c", counter_script(counter, 99),
    )  # fmt: skip
    assert wait_for(lambda: log.exists() and "retry 1 of 3" in log.read_text())  # in the pause
    sent = time.monotonic()
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM, err  # re-raised: a shell sees 143
    assert time.monotonic() - sent < 10  # a guard against waiting out the pause, not a speed
    assert counter.read_text().strip() == "1"
    assert "not retrying" in err


# ------------------------------------------------------------------ history


def test_runs_are_recorded_and_listed(tmp_path: Path) -> None:
    assert run("run", "--name", "nightly", "true").returncode == 0
    assert run("run", "--name", "nightly", "sh", "-c", "exit 3").returncode == 3
    listed = run("runs", "nightly", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert doc["version"] == 2  # times became ISO text (epoch in *_epoch)
    assert [(r["outcome"], r["exit_code"], r["attempts"]) for r in doc["runs"]] == [
        ("failure", 3, 1),
        ("success", 0, 1),
    ]
    table = run("runs")
    assert table.returncode == 0 and "nightly" in table.stdout


def test_runs_last_exits_with_the_last_status(tmp_path: Path) -> None:
    assert run("runs", "job", "--last").returncode == 1  # none yet
    run("run", "--name", "job", "true")
    assert run("runs", "job", "--last").returncode == 0
    run("run", "--name", "job", "false")
    assert run("runs", "job", "--last").returncode == 1
    run("run", "--name", "other", "true")
    assert run("runs", "job", "--last").returncode == 1


def test_a_broken_state_store_does_not_stop_the_job(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state:\n  path: {blocker}/state.db\n")
    result = run("--config", str(cfg), "run", "echo", "ran")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n" and "run history disabled" in result.stderr


# ------------------------------------------------------------------ output


def test_timestamps_prefix_each_output_line() -> None:
    result = run("run", "--timestamps", "sh", "-c", "echo one; echo two >&2; printf three")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == ["one", "three"]
    assert all(line[:2] == "20" and line[23] == "Z" for line in out)
    assert any(line.endswith("Z two") for line in result.stderr.splitlines())


def test_log_file_is_appended_0600_and_timestamped(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    run("run", "--log-file", str(log), "sh", "-c", "echo first")
    run("run", "--log-file", str(log), "sh", "-c", "echo second >&2; exit 2")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = log.read_text().splitlines()
    assert any(line.endswith("[out] first") for line in lines)
    assert any(line.endswith("[err] second") for line in lines)
    assert sum("[reliactl] starting" in line for line in lines) == 2
    assert all(line[:2] == "20" and line[23] == "Z" for line in lines)


def test_log_file_symlink_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("")
    (tmp_path / "log").symlink_to(victim)
    result = run("run", "--log-file", str(tmp_path / "log"), "true")
    assert result.returncode == 125 and victim.read_text() == ""


def test_quiet_success_is_silent_on_success_and_tells_all_on_failure(tmp_path: Path) -> None:
    ok = run("run", "--quiet-success", "sh", "-c", "echo noise; echo more >&2")
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    counter = tmp_path / "n"
    bad = run(
        "run", "--quiet-success", "--retries", "1", *FAST, "sh", "-c",
        f"echo attempt; {counter_script(counter, 99, 5)}",
    )  # fmt: skip
    assert bad.returncode == 5
    assert bad.stdout == "attempt\nattempt\n"
    assert "retry 1 of 1" in bad.stderr and "exit 5" in bad.stderr


def test_json_report_describes_the_attempts(tmp_path: Path) -> None:
    """`--json-report` has the run's outcome, each attempt's exit code and pause, the lock;
    mode 0600; version 3 (2 since times are as every JSON document shows them, ISO 8601 UTC
    text in `started_at` and the epoch number beside it in `started_at_epoch`, for the run and
    for each attempt; 3 since its `health` is `health --json` version 2)."""
    before = time.time()
    report = tmp_path / "report.json"
    counter = tmp_path / "n"
    result = run(
        "run", "--json-report", str(report), "--lock-name", "rep", "--retries", "2", *FAST,
        "sh", "-c", counter_script(counter, 1, code=9),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(report.read_text())
    assert doc["version"] == 3 and doc["outcome"] == "success" and doc["exit_code"] == 0
    assert [a["exit_code"] for a in doc["attempts"]] == [9, 0]
    for timed in (doc, *doc["attempts"]):
        epoch = timed["started_at_epoch"]
        assert before - 1 <= epoch <= time.time()
        assert timed["started_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
        assert list(timed).index("started_at_epoch") == list(timed).index("started_at") + 1
    assert doc["attempts"][0]["started_at_epoch"] >= doc["started_at_epoch"]
    assert doc["attempts"][0]["delay_after"] is not None
    assert doc["lock"]["path"].endswith("rep.lock") and doc["lock"]["wait"] >= 0
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


def test_run_and_retry_plan_draw_decorrelated_delays_from_one_distribution(
    tmp_path: Path, run_cli
) -> None:
    """`run --jitter decorrelated` jitters the first retry too, and its pauses follow the
    distribution `retry plan` shows for the same settings (two-sample KS test per retry)."""
    from stathelpers import ks_critical, ks_statistic

    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        "retry:\n  strategy: exponential\n  base_delay: 5ms\n  max_delay: 40ms\n"
        "  jitter: decorrelated\n"
    )
    retries, runs = 4, 16
    ran: list[list[float]] = []
    for index in range(runs):  # real runs: the delays the runner chose, from its report
        report = tmp_path / f"r{index}.json"
        result = run(
            "-c", str(cfg), "run", "--no-history", "--retries", str(retries),
            "--json-report", str(report), "false",
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        attempts = json.loads(report.read_text())["attempts"]
        ran.append([a["delay_after"] for a in attempts[:-1]])
    import random

    from reliactl.config import load
    from reliactl.retry import plan_schedule, strategy_from_config

    section = load(str(cfg)).config.retry

    def sample(seed: int) -> list[float]:
        strategy = strategy_from_config(section, max_retries=retries, rng=random.Random(seed))
        return [row.delay for row in plan_schedule(strategy).rows]

    for seed in range(5):  # `retry plan` is exactly this computation, seed for seed
        plan = run_cli(
            "-c", str(cfg), "retry", "plan", "--max-retries", str(retries), "--max-elapsed",
            "none", "--seed", str(seed), "--json",
        )  # fmt: skip
        assert plan.exit_code == 0, plan.output
        assert [row["delay"] for row in json.loads(plan.stdout)["schedule"]] == sample(seed)
    planned = [sample(seed) for seed in range(100, 3100)]
    firsts = [chain[0] for chain in ran]
    assert len(set(firsts)) > runs // 2, f"the first retry is not jittered: {firsts}"
    for index in range(retries):
        ours = [chain[index] for chain in ran]
        theirs = [chain[index] for chain in planned]
        assert ks_statistic(ours, theirs) < ks_critical(len(ours), len(theirs)), index + 1


# ------------------------------------------------------------------ in-process CLI


def test_run_help_lists_every_option(run_cli) -> None:
    """`run --help` lists every option by the config key's name; the old retry spellings
    (--retries, --backoff, --delay) still work but are not advertised."""
    result = run_cli("run", "--help")
    assert result.exit_code == 0
    for flag in (
        "--lock", "--lock-name", "--lock-wait", "--skip-if-locked", "--lock-on-nfs", "--timeout",
        "--total-timeout", "--kill-after", "--signal", "--preserve-status", "--retry",
        "--max-retries", "--strategy", "--base-delay", "--max-delay", "--jitter", "--multiplier",
        "--max-elapsed", "--retry-on", "--no-retry-on", "--retry-on-timeout", "--timestamps",
        "--log-file", "--quiet-success", "--json-report", "--name", "--leave-running",
    ):  # fmt: skip
        assert flag in result.stdout, flag
    for old in ("--retries ", "--backoff", "--delay "):
        assert old not in result.stdout, old


def test_missing_command_is_a_125_usage_error(run_cli) -> None:
    result = run_cli("run")
    assert result.exit_code == 125, result.output


@pytest.mark.parametrize(
    "flags",
    [
        ("--lock",),
        ("--lock", "--retries", "1", "--breaker", "b", "--timestamps", "--log-file", "x.log"),
    ],
)
def test_run_imports_nothing_heavy(flags: tuple[str, ...]) -> None:
    """cron pays every import: no pydantic, httpx, psutil, rich or filelock for `run`."""
    from runhelpers import default_signals

    result, modules = start_reliactl(["run", *flags, "--", "true"], preexec_fn=default_signals)
    assert result.returncode == 0, result.stderr
    imported = {module.split(".")[0] for module in modules}
    assert "reliactl" in imported
    assert not imported & {"pydantic", "httpx", "psutil", "rich", "filelock"}


# ------------------------------------------------------------------ breaker


def breaker_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("circuit_breaker:\n  failure_threshold: 2\n  recovery_timeout: 1h\n")
    return cfg


def test_an_open_breaker_refuses_to_run_with_exit_69(tmp_path: Path) -> None:
    cfg = str(breaker_config(tmp_path))
    counter = tmp_path / "n"
    body = counter_script(counter, 99, code=3)
    for _ in range(2):
        assert run("-c", cfg, "run", "--breaker", "svc", "sh", "-c", body).returncode == 3
    refused = run("-c", cfg, "run", "--breaker", "svc", "sh", "-c", body)
    assert refused.returncode == 69, refused.stderr
    assert "retry in" in refused.stderr
    assert counter.read_text().strip() == "2"  # the third never ran
    shown = run("-c", cfg, "breaker", "show", "svc", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"open"' in shown.stdout and "exit 3" in shown.stdout
    last = json.loads(run("-c", cfg, "runs", "--json").stdout)["runs"][0]
    assert (last["outcome"], last["exit_code"]) == ("breaker_open", 69)


def test_the_breaker_counts_the_run_after_its_retries(tmp_path: Path) -> None:
    """Fails twice then succeeds under --retries: one success for the breaker, not two failures."""
    cfg = str(breaker_config(tmp_path))
    counter = tmp_path / "n"
    result = run(
        "-c", cfg, "run", "--breaker", "svc", "--retries", "3", *FAST, "sh", "-c",
        counter_script(counter, 2),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(run("-c", cfg, "breaker", "show", "svc", "--json").stdout)
    assert "closed" in json.dumps(doc)
    assert run("-c", cfg, "run", "--breaker", "svc", "true").returncode == 0


def test_a_tripped_breaker_gives_69_and_json_report_says_so(tmp_path: Path) -> None:
    cfg = str(breaker_config(tmp_path))
    (tmp_path / "c.yaml").write_text(
        "circuit_breaker:\n  breakers:\n    maint:\n      failure_threshold: 2\n"
    )
    tripped = run("-c", cfg, "breaker", "trip", "maint")
    assert tripped.returncode == 0, tripped.stderr
    report = tmp_path / "r.json"
    marker = tmp_path / "ran"
    result = run(
        "-c", cfg, "run", "--breaker", "maint", "--json-report", str(report), "touch", str(marker)
    )
    assert result.returncode == 69, result.stderr
    assert not marker.exists()
    doc = json.loads(report.read_text())
    assert doc["outcome"] == "breaker_open" and doc["breaker"]["decision"] == "rejected"


def test_a_signal_while_waiting_for_the_lock_ends_the_wait_unrun(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    marker = tmp_path / "ran"
    holder = start(
        "run", "--lock-name", "job", "sh", "-c", f"touch {ready}; sleep 30",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_file_exists(ready)
        waiter = start("run", "--lock-name", "job", "--lock-wait", "forever", "touch", str(marker))
        # Ready when it is in the wait: its TERM handler installed and the lock file open (a
        # fixed sleep could signal it before it got there, under load).
        lock_file = lock_dir() / "job.lock"
        pid = waiter.pid
        assert wait_for(
            lambda: catches(pid, signal.SIGTERM) and has_open(pid, lock_file), timeout=30
        ), "the waiter never started waiting"
        waiter.terminate()
        _, err = waiter.communicate(timeout=20)
        assert waiter.returncode == -signal.SIGTERM, err  # a shell sees 143
        assert not marker.exists()
    finally:
        holder.terminate()
        holder.wait(timeout=20)


def test_a_run_whose_reliactl_was_killed_shows_as_lost(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = start(
        "run", "--name", "victim", "sh", "-c", f"touch {ready}; sleep 30",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_file_exists(ready)
    running = json.loads(run("runs", "victim", "--json").stdout)["runs"][0]
    assert running["outcome"] == "running"
    proc.kill()
    proc.wait(timeout=10)
    lost = json.loads(run("runs", "victim", "--json").stdout)["runs"][0]
    assert lost["outcome"] == "lost"
    assert run("runs", "victim", "--last").returncode == 1


def test_kill_after_zero_never_sends_sigkill(tmp_path: Path) -> None:
    """As timeout -k 0: the TERM-trapping command is signalled once and left to finish."""
    result = run(
        "run", "--timeout", "0.2", "--kill-after", "0", "sh", "-c",
        "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done",
    )  # fmt: skip
    assert result.returncode == 124, result.stderr
    assert "SIGKILL" not in result.stderr


# ------------------------------------------------------------------ the crontab example


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scripts" / "process_ideasheets.sh"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/ not present")
def test_the_crontab_line_rides_out_a_flaky_upstream_quietly(tmp_path: Path) -> None:
    """examples/crontab's flags on the example job: two transient 75s, then success, silent."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("title: first idea\nsome words here\n")
    (inbox / ".upstream-down").write_text("2\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retry:\n  max_retries: 3\n  base_delay: 10ms\n  jitter: none\n")
    log = tmp_path / "job.log"
    env = {**os.environ, "INBOX": str(inbox), "OUTBOX": str(tmp_path / "outbox")}
    args = (
        "-c", str(cfg), "run", "--lock", "--retry", "--timeout", "30m",
        "--breaker", "ideasheets", "--quiet-success", "--log-file", str(log),
        "--no-retry-on", "65", "--", "sh", str(EXAMPLE),
    )  # fmt: skip
    result = run(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert (tmp_path / "outbox" / "a.summary").read_text().startswith("sheet: a\n")
    text = log.read_text()
    assert text.count("[err] upstream unavailable") == 2 and "processed 1 sheet(s)" in text
    (inbox / "bad.txt").write_text("no title\n")
    failed = run(*args, env=env)
    assert failed.returncode == 65
    assert "malformed sheet bad.txt" in failed.stderr and "retry 1" not in failed.stderr


def test_an_invalid_configuration_is_78_and_nothing_runs(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  kill_after: soon\n")
    marker = tmp_path / "ran"
    result = run("-c", str(cfg), "run", "touch", str(marker))
    assert result.returncode == 78, result.stderr
    assert "run.kill_after" in result.stderr and not marker.exists()


def test_lock_dir_comes_from_the_configuration(tmp_path: Path) -> None:
    locks_here = tmp_path / "my-locks"
    result = run(
        "run",
        "--lock-name",
        "cfg",
        "true",
        env={**os.environ, "RELIACTL_RUN__LOCK_DIR": str(locks_here)},
    )
    assert result.returncode == 0, result.stderr
    assert (locks_here / "cfg.lock").is_file()


def test_a_job_has_one_history_name_with_or_without_lock(run_cli, tmp_path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    assert run_cli("run", "--", str(script)).exit_code == 0
    assert run_cli("run", "--lock", "--", str(script)).exit_code == 0
    import json

    doc = json.loads(run_cli("runs", "--json").stdout)
    names = {r["name"] for r in doc["runs"]}
    assert len(names) == 1, names


def test_a_skipped_tick_never_touches_a_half_open_breaker(tmp_path: Path) -> None:
    """Regression: the breaker was asked before the lock, so a tick skipped while the trial
    ran got 69 ("open"), counted a rejection, and could steal the trial's slot."""
    # A long recovery timeout, so that the 69 below never races a slow process start; the
    # breaker is then kept open for exactly 1 s more, after which it admits a trial.
    env = {**os.environ, "CB_FAILURE_THRESHOLD": "1", "CB_RECOVERY_TIMEOUT": "1h"}
    assert run("run", "--breaker", "b", "--", "false", env=env).returncode == 1
    assert run("run", "--breaker", "b", "--", "true", env=env).returncode == 69
    assert run("breaker", "trip", "b", "--for", "1s", env=env).returncode == 0
    time.sleep(1.2)  # the open period is over: the next admission is the half-open trial
    started = tmp_path / "trial-started"
    release = tmp_path / "release-trial"
    trial = start(
        "run",
        "--lock-name",
        "j",
        "--skip-if-locked",
        "--breaker",
        "b",
        "--",
        "sh",
        "-c",
        # The trial holds the lock until the tick is over, however slow the machine is.
        f"touch {started}; i=0; while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.05;"
        " i=$((i+1)); done",
        env=env,
    )
    try:
        assert wait_for(started.exists, timeout=30)
        tick = run(
            "run", "--lock-name", "j", "--skip-if-locked", "--breaker", "b", "--", "true", env=env
        )
    finally:
        release.touch()
    assert tick.returncode == 0, tick.stderr
    assert "breaker" not in tick.stderr
    assert trial.wait(timeout=30) == 0
    shown = json.loads(run("breaker", "show", "b", "--json", env=env).stdout)
    assert shown["breaker"]["state"] == "closed", shown
