"""Healing (issue 22): a check's remediate: runs through the job engine, is verified, capped,
claimed once, refused from an untrusted file; built-in actions; the config's rules."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from httpserver import FlakyServer
from runhelpers import NOBODY

from reliactl.config import load
from reliactl.errors import ConfigError
from reliactl.health.model import Status
from reliactl.health.monitor import HealthMonitor
from reliactl.remediate import (
    BUSY,
    EXHAUSTED,
    FAILED,
    REFUSED,
    REMEDIATED,
    UNAVAILABLE,
    WAITING,
    Remediator,
)
from reliactl.state import open_state

SH = "/bin/sh"


def write(
    tmp_path: Path, remediate: str, *, check: str = "", extra: str = "", sink: str = ""
) -> Path:
    """A config with one command check `flag` (CRITICAL until tmp/fixed exists); ``sink``:
    the URL of a webhook alert sink."""
    alerts = f"[{{name: hook, kind: webhook, url: '{sink}'}}]" if sink else "[]"
    check = check or f'[{SH}, -c, "test -e {tmp_path}/fixed || exit 2"]'
    body = f"""
    state:
      path: {tmp_path}/state.db
    run:
      lock_dir: {tmp_path}/locks
    health_monitor:
      system_checks: []
      jobs_checks: false
      alerts: {alerts}
      checks:
        - name: flag
          kind: command
          command: {check}
          remediate:
    """
    text = textwrap.dedent(body) + textwrap.indent(textwrap.dedent(remediate), " " * 8)
    path = tmp_path / "reliactl.yaml"
    path.write_text(text + textwrap.dedent(extra))
    return path


def healer(path: Path, clock: Any = time.time, **kwargs: Any) -> tuple[Remediator, Any]:
    loaded = load(path)
    store = open_state(loaded.config)
    monitor = HealthMonitor(
        loaded.config.health_monitor, store=store, full_config=loaded.config, clock=clock
    )
    return Remediator(monitor, loaded.config, config_path=loaded.path, **kwargs), store


def round_of(remediator: Remediator) -> tuple[Any, list[Any]]:
    return remediator.apply(remediator.monitor.run_now())


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_check_fixed_by_its_remediation_is_ok_after_verify(tmp_path: Path) -> None:
    """CRITICAL -> the command runs (under the engine: history row remediate.flag) -> the check
    runs again after verify_after -> the report carries the verified OK, "remediated"."""
    cfg = write(
        tmp_path,
        f"""
        command: [{SH}, -c, "echo fixing; touch {tmp_path}/fixed"]
        verify_after: 10ms
        """,
    )
    remediator, store = healer(cfg)
    report, done = round_of(remediator)
    assert [r.result for r in done] == [REMEDIATED]
    assert report.metrics["flag"].status is Status.OK
    assert report.overall_status is Status.OK
    assert "remediated" in report.metrics["flag"].message
    assert done[0].output == "fixing" and done[0].attempt == 1
    assert [r.outcome for r in store.runs("remediate.flag")] == ["success"]
    # the next run finds it OK: nothing runs
    report, done = round_of(remediator)
    assert done == [] and report.overall_status is Status.OK


def test_a_check_that_stays_broken_is_capped_and_alerts_exhausted_once(tmp_path: Path) -> None:
    """max_attempts 2 in 1h: two runs fail (exit and output in the check's message, hence in
    its alert), then nothing runs and exactly one "remediation_exhausted" alert reaches the
    real HTTP sink, however many rounds follow."""
    count = tmp_path / "count"
    with FlakyServer() as sink:
        cfg = write(
            tmp_path,
            f"""
            command: [{SH}, -c, "echo run >> {count}; echo disk still full >&2; exit 4"]
            verify_after: 0s
            max_attempts: 2
            window: 1h
            """,
            sink=f"{sink.url}/hook",
        )
        remediator, _ = healer(cfg)
        results = []
        for _ in range(5):
            report, done = round_of(remediator)
            results.append(done[0])
            assert report.metrics["flag"].status is Status.CRITICAL
        assert [r.result for r in results] == [FAILED, FAILED, EXHAUSTED, EXHAUSTED, EXHAUSTED]
        assert lines(count) == 2
        assert "exit 4" in results[0].message and "disk still full" in results[0].message
        assert [r.attempt for r in results[:2]] == [1, 2]
        posted = sink.posted()
        exhausted = [p for p in posted if p.get("kind") == "remediation_exhausted"]
        assert len(exhausted) == 1, posted
        assert exhausted[0]["check"] == "flag" and "exhausted" in exhausted[0]["message"]
        assert [len(r.alerts) for r in results] == [0, 0, 1, 0, 0]


def test_exhaustion_is_re_armed_when_the_check_recovers(tmp_path: Path) -> None:
    """After the cap, a round that sees the check OK clears the exhausted mark (a later
    exhaustion alerts again); attempts still count within the window."""
    cfg = write(tmp_path, "command: [/bin/false]\nverify_after: 0s\nmax_attempts: 1\n")
    remediator, _ = healer(cfg)
    assert [r.result for r in round_of(remediator)[1]] == [FAILED]
    assert [r.result for r in round_of(remediator)[1]] == [EXHAUSTED]
    (tmp_path / "fixed").touch()
    assert round_of(remediator)[1] == []
    record = remediator.monitor.records.get("kv", "remediate:flag")
    assert record is not None and "exhausted_at" not in record


def test_after_n_counts_consecutive_critical_runs(tmp_path: Path) -> None:
    """after: 2 waits one CRITICAL run (nothing runs), acts on the second."""
    cfg = write(
        tmp_path, f'command: [{SH}, -c, "touch {tmp_path}/fixed"]\nafter: 2\nverify_after: 0s\n'
    )
    remediator, _ = healer(cfg)
    first = round_of(remediator)[1]
    assert [r.result for r in first] == [WAITING] and not (tmp_path / "fixed").exists()
    assert [r.result for r in round_of(remediator)[1]] == [REMEDIATED]


def test_a_held_lock_means_busy_and_the_attempt_is_given_back(tmp_path: Path) -> None:
    """Another process holding the check's lock (remediate.flag, the lock layer's file): this
    run reports busy, runs nothing and does not spend an attempt."""
    cfg = write(tmp_path, f'command: [{SH}, -c, "touch {tmp_path}/ran"]\nverify_after: 0s\n')
    remediator, _ = healer(cfg)
    (tmp_path / "locks").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-m", "reliactl", "--config", str(cfg), "run", "--lock-name",
         "remediate.flag", "--", "sleep", "30"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "locks" / "remediate.flag.lock").exists():
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        time.sleep(0.3)  # the file exists just before flock: let it take it
        done = round_of(remediator)[1]
    finally:
        holder.terminate()
        holder.wait(30)
    assert [r.result for r in done] == [BUSY]
    assert not (tmp_path / "ran").exists()
    record = remediator.monitor.records.get("kv", "remediate:flag")
    assert record is not None and record.get("attempts") == [] and "claim" not in record


def test_a_live_claim_from_another_run_means_busy(tmp_path: Path) -> None:
    """The state-store claim (what makes two health runs on different hosts act once): a live
    lease of another run -> busy, nothing runs."""
    cfg = write(tmp_path, f'command: [{SH}, -c, "touch {tmp_path}/ran"]\n')
    remediator, _ = healer(cfg)
    remediator.monitor.records.update(
        "kv",
        "remediate:flag",
        lambda rec: {"claim": "other", "claimed_until": time.time() + 60, "attempts": []},
    )
    assert [r.result for r in round_of(remediator)[1]] == [BUSY]
    assert not (tmp_path / "ran").exists()


def test_dry_run_runs_nothing_and_changes_nothing(tmp_path: Path) -> None:
    """dry_run shows the argv that would run; no command, no history, no record."""
    cfg = write(tmp_path, f'command: [{SH}, -c, "touch {tmp_path}/ran"]\n')
    remediator, store = healer(cfg, dry_run=True)
    report, done = round_of(remediator)
    assert [r.result for r in done] == ["would run"]
    assert done[0].command == (SH, "-c", f"touch {tmp_path}/ran")
    assert report.metrics["flag"].status is Status.CRITICAL
    assert not (tmp_path / "ran").exists()
    assert remediator.monitor.records.get("kv", "remediate:flag") is None
    assert store.runs("remediate.flag") == []


def test_a_config_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """The file changed owner (to nobody) after it was loaded, as under a long --watch: its
    remediations are refused, nothing runs; loading it again is refused outright. (The CLI
    test runs health as nobody through setpriv.)"""
    cfg = write(tmp_path, f'command: [{SH}, -c, "touch {tmp_path}/ran"]\n')
    remediator, _ = healer(cfg)
    os.chown(cfg, 65534, 65534)
    done = round_of(remediator)[1]
    assert [r.result for r in done] == [REFUSED]
    assert "owned by" in done[0].message
    assert not (tmp_path / "ran").exists()
    with pytest.raises(ConfigError, match="refused"):
        load(cfg)


def test_signal_action_delivers_hup_to_a_real_process(tmp_path: Path) -> None:
    """signal:PIDFILE:HUP: the process named by the pidfile receives SIGHUP (its handler
    writes the file the check wants), so the check is remediated."""
    ready, pidfile = tmp_path / "ready", tmp_path / "app.pid"
    code = (
        "import os, signal, sys, time\n"
        f"signal.signal(signal.SIGHUP, lambda *a: open({str(tmp_path / 'fixed')!r}, 'w'))\n"
        f"open({str(ready)!r}, 'w')\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        pidfile.write_text(f"{child.pid}\n")
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # verify_after leaves the child time to run its handler, even on a loaded machine
        cfg = write(tmp_path, f"action: signal:{pidfile}:HUP\nverify_after: 1s\n")
        remediator, _ = healer(cfg)
        report, done = round_of(remediator)
        assert [r.result for r in done] == [REMEDIATED], done
        assert report.metrics["flag"].status is Status.OK
        assert child.poll() is None  # HUP was handled, not fatal
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)


def test_signal_action_refuses_an_untrusted_pidfile(tmp_path: Path) -> None:
    """A pidfile anyone may write could aim our signal anywhere: refused, nothing sent."""
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    pidfile.chmod(0o666)
    cfg = write(tmp_path, f"action: signal:{pidfile}:USR1\n")
    remediator, _ = healer(cfg)
    done = round_of(remediator)[1]
    assert [r.result for r in done] == [REFUSED] and "writable by others" in done[0].message


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-pid-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim(shared_tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real process and its root-owned pidfile (mode 0644) in a root-owned directory."""
    proc = subprocess.Popen(["sleep", "120"])
    home = shared_tmp / "root"
    home.mkdir(mode=0o755)
    pidfile = home / "victim.pid"
    pidfile.write_text(f"{proc.pid}\n")
    try:
        yield proc, pidfile
    finally:
        proc.kill()
        proc.wait(30)


def plant_link(directory: Path, target: Path) -> Path:
    """``directory`` (made and given to nobody) with bot.pid -> ``target``, made by nobody."""
    directory.mkdir(mode=0o755)
    os.chown(directory, 65534, 65534)
    link = directory / "bot.pid"
    subprocess.run([*NOBODY, "ln", "-s", str(target), str(link)], check=True, timeout=30)
    assert link.lstat().st_uid == 65534
    return link


def test_signal_action_refuses_a_link_another_user_planted(
    tmp_path: Path, shared_tmp: Path, victim: tuple[subprocess.Popen[bytes], Path]
) -> None:
    """The review's attack: nobody's directory holds bot.pid -> a root-owned pidfile of a
    victim; signal:DIR/bot.pid:TERM is refused (the directory is nobody's), naming the
    owner, and the victim lives. (Before: os.stat followed the link, judged the target
    alone, and root sent TERM to the victim.)"""
    proc, pidfile = victim
    link = plant_link(shared_tmp / "nob", pidfile)
    cfg = write(tmp_path, f"action: signal:{link}:TERM\n")
    remediator, _ = healer(cfg)
    done = round_of(remediator)[1]
    assert [r.result for r in done] == [REFUSED], done
    assert "nobody (uid 65534)'s" in done[0].message and "\n" not in done[0].message
    time.sleep(0.2)
    assert proc.poll() is None


def test_signal_action_refuses_a_root_link_in_a_directory_up_the_path_of_another_user(
    tmp_path: Path, shared_tmp: Path, victim: tuple[subprocess.Popen[bytes], Path]
) -> None:
    """A root-owned link in a root-owned directory, but under a directory nobody owns (who
    could rename it away and put their own in its place): refused, nothing sent."""
    proc, pidfile = victim
    outer = shared_tmp / "nob"
    outer.mkdir(mode=0o755)
    os.chown(outer, 65534, 65534)
    inner = outer / "run"
    inner.mkdir(mode=0o755)
    (inner / "bot.pid").symlink_to(pidfile)
    cfg = write(tmp_path, f"action: signal:{inner / 'bot.pid'}:TERM\n")
    done = round_of(healer(cfg)[0])[1]
    assert [r.result for r in done] == [REFUSED] and "nobody (uid 65534)'s" in done[0].message
    time.sleep(0.2)
    assert proc.poll() is None


def test_signal_action_follows_a_trusted_link(tmp_path: Path) -> None:
    """A link root made, in root's directories, to a root-owned pidfile (/var/run -> /run
    style) is followed: the signal is planned for the process the target names."""
    proc = subprocess.Popen(["sleep", "120"])
    try:
        real = tmp_path / "real.pid"
        real.write_text(f"{proc.pid}\n")
        (tmp_path / "app.pid").symlink_to(real)
        cfg = write(tmp_path, f"action: signal:{tmp_path / 'app.pid'}:TERM\n")
        done = round_of(healer(cfg, dry_run=True)[0])[1]
        assert [r.result for r in done] == ["would run"], done
        assert str(proc.pid) in done[0].command
    finally:
        proc.kill()
        proc.wait(30)


def test_signal_action_refuses_a_pid_reused_after_the_pidfile_was_written(tmp_path: Path) -> None:
    """A pidfile last written an hour before its process started names a reused pid (the
    service died, the pid went to another process): refused, nothing sent."""
    proc = subprocess.Popen(["sleep", "120"])
    try:
        pidfile = tmp_path / "app.pid"
        pidfile.write_text(f"{proc.pid}\n")
        hour_ago = time.time() - 3600
        os.utime(pidfile, (hour_ago, hour_ago))
        cfg = write(tmp_path, f"action: signal:{pidfile}:TERM\n")
        done = round_of(healer(cfg)[0])[1]
        assert [r.result for r in done] == [REFUSED] and "reused" in done[0].message
        time.sleep(0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(30)


def test_signal_action_in_a_daemons_own_directory_may_signal_only_its_processes(
    tmp_path: Path, shared_tmp: Path, victim: tuple[subprocess.Popen[bytes], Path]
) -> None:
    """systemd's PIDFile= rule: /run/X owned by the daemon user (RuntimeDirectory= with
    User=) and its pidfile may name that user's process (planned; before: refused), but not
    root's (refused, root's victim lives)."""
    root_proc, _ = victim
    run = shared_tmp / "mysqld"
    run.mkdir(mode=0o755)
    os.chown(run, 65534, 65534)
    theirs = subprocess.Popen([*NOBODY, "sleep", "120"])
    try:
        pidfile = run / "mysqld.pid"
        subprocess.run(
            [*NOBODY, "sh", "-c", f"echo {theirs.pid} > {pidfile}"], check=True, timeout=30
        )
        cfg = write(tmp_path, f"action: signal:{pidfile}:TERM\n")
        done = round_of(healer(cfg, dry_run=True)[0])[1]
        assert [r.result for r in done] == ["would run"], done
        assert str(theirs.pid) in done[0].command
        subprocess.run(
            [*NOBODY, "sh", "-c", f"echo {root_proc.pid} > {pidfile}"], check=True, timeout=30
        )
        done = round_of(healer(cfg)[0])[1]
        assert [r.result for r in done] == [REFUSED], done
        assert "not theirs" in done[0].message
        time.sleep(0.2)
        assert root_proc.poll() is None
    finally:
        theirs.kill()
        theirs.wait(30)


def test_signal_action_does_not_judge_a_tmpfs_pidfile_older_than_the_boot(tmp_path: Path) -> None:
    """A pidfile on tmpfs (as /run) cannot predate this boot, so an mtime before the boot
    time as computed now means the wall clock was stepped forward after the daemon wrote it
    (fake-hwclock, a resumed VM): the signal is planned (before: refused as a reused pid).
    The same file on persistent storage may be from before a reboot: still refused."""
    from reliactl._procfs import boot_time
    from reliactl.locks import filesystem_type

    if filesystem_type("/dev/shm") != "tmpfs":
        pytest.fail("this test needs /dev/shm on tmpfs")
    proc = subprocess.Popen(["sleep", "120"])
    shm = Path(tempfile.mkdtemp(prefix="reliactl-pid-", dir="/dev/shm"))
    try:
        boot = boot_time()
        assert boot is not None
        for home in (shm, tmp_path):
            pidfile = home / "app.pid"
            pidfile.write_text(f"{proc.pid}\n")
            os.utime(pidfile, (boot - 3600, boot - 3600))
        cfg = write(tmp_path, f"action: signal:{shm / 'app.pid'}:TERM\n")
        done = round_of(healer(cfg, dry_run=True)[0])[1]
        assert [r.result for r in done] == ["would run"], done
        cfg = write(tmp_path, f"action: signal:{tmp_path / 'app.pid'}:TERM\n")
        done = round_of(healer(cfg, dry_run=True)[0])[1]
        assert [r.result for r in done] == [REFUSED] and "stepped" in done[0].message, done
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        proc.kill()
        proc.wait(30)


def test_the_killer_rechecks_the_start_ticks_before_signalling(tmp_path: Path) -> None:
    """The planned signal command carries the process's start ticks; run with other ticks
    (the pid reused between planning and the kill) it sends nothing and fails saying so;
    with the planned ones it delivers the signal (through a pidfd)."""
    from reliactl.remediate import plan_command

    proc = subprocess.Popen(["sleep", "120"])
    try:
        pidfile = tmp_path / "app.pid"
        pidfile.write_text(f"{proc.pid}\n")
        cfg = write(tmp_path, f"action: signal:{pidfile}:TERM\n")
        config = load(cfg).config
        spec = config.health_monitor.checks[0].remediate
        assert spec is not None
        argv = plan_command(spec, config)
        stale = [*argv[:-1], str(int(argv[-1]) + 1)]
        out = subprocess.run(stale, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "pid reused" in out.stderr
        time.sleep(0.2)
        assert proc.poll() is None
        assert subprocess.run(argv, timeout=60).returncode == 0
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(30)


def test_signal_action_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    """A FIFO where the pidfile should be (nobody writes it) is refused at once, not read
    until the remediation's timeout."""
    pidfile = tmp_path / "app.pid"
    os.mkfifo(pidfile, 0o644)
    cfg = write(tmp_path, f"action: signal:{pidfile}:TERM\n")
    done = round_of(healer(cfg)[0])[1]
    assert [r.result for r in done] == [REFUSED] and "not a regular file" in done[0].message


def test_restart_without_systemd_says_so(tmp_path: Path) -> None:
    """restart:UNIT on a host whose init is not systemd: "unavailable" with the reason."""
    cfg = write(tmp_path, "action: restart:web.service\n")
    remediator, _ = healer(cfg, systemd_mark=str(tmp_path / "no-systemd"))
    done = round_of(remediator)[1]
    assert [r.result for r in done] == [UNAVAILABLE]
    assert "systemd is not running" in done[0].message


def _fake_systemctl(tmp_path: Path, body: str) -> Path:
    """A `systemctl` executable in tmp/bin: records its argv in tmp/systemctl.argv (one
    argument a line), then runs ``body`` (shell)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "systemctl"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/systemctl.argv\n{body}\n')
    tool.chmod(0o755)
    return bin_dir


def test_restart_action_runs_systemctl_restart_on_a_systemd_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """restart:UNIT on a systemd host runs `systemctl restart -- UNIT` (found on PATH, a real
    process; `--` so a unit name is never read as an option); the check is then verified OK
    and the remediation is "remediated"."""
    bin_dir = _fake_systemctl(tmp_path, f"touch {tmp_path}/fixed")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    (tmp_path / "systemd").mkdir()
    cfg = write(tmp_path, "action: restart:web.service\nverify_after: 0s\n")
    remediator, _ = healer(cfg, systemd_mark=str(tmp_path / "systemd"))
    report, done = round_of(remediator)
    assert [r.result for r in done] == [REMEDIATED], done
    assert report.metrics["flag"].status is Status.OK
    argv = (tmp_path / "systemctl.argv").read_text().splitlines()
    assert argv == ["restart", "--", "web.service"]


def test_restart_action_that_systemctl_refuses_fails_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When `systemctl restart` fails (an unknown unit: exit 5 and its message on stderr),
    the remediation is "failed", carries systemctl's message, and the check stays CRITICAL."""
    bin_dir = _fake_systemctl(
        tmp_path, 'echo "Failed to restart web.service: Unit web.service not found." >&2; exit 5'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    (tmp_path / "systemd").mkdir()
    cfg = write(tmp_path, "action: restart:web.service\nverify_after: 0s\nmax_attempts: 1\n")
    remediator, _ = healer(cfg, systemd_mark=str(tmp_path / "systemd"))
    report, done = round_of(remediator)
    assert [r.result for r in done] == [FAILED], done
    assert "Unit web.service not found" in done[0].message
    assert report.metrics["flag"].status is Status.CRITICAL


def test_cleanup_action_cleans_the_named_root_through_the_cleanup_core(tmp_path: Path) -> None:
    """cleanup:tmp runs the configured root named tmp now, with its settings (include, the
    size budget); the check, CRITICAL while *.tmp files are there, is then remediated.
    Files its include globs leave out are kept."""
    root = tmp_path / "scratch"
    root.mkdir()
    old, new, other = root / "old.tmp", root / "new.tmp", root / "big.keep"
    old.write_text("x" * 100)
    new.write_text("x")
    other.write_text("x" * 1000)
    cfg = write(
        tmp_path,
        "action: cleanup:tmp\nverify_after: 0s\n",
        check=f'[{SH}, -c, "! ls {root}/*.tmp >/dev/null 2>&1 || exit 2"]',
        extra=f"""
        cleanup:
          roots:
            - path: {root}
              name: tmp
              max_age: 30d
              include: ["*.tmp"]
              max_total_size: 1
        """,
    )
    remediator, _ = healer(cfg)
    done = round_of(remediator)[1]
    assert [r.result for r in done] == [REMEDIATED], done
    assert not old.exists() and not new.exists() and other.exists()
    assert done[0].command[-2:] == ("--", str(root))


@pytest.mark.parametrize(
    ("remediate", "expected"),
    [
        ('command: "systemctl restart web"\n', "shell: true"),
        ("command: [/bin/true]\naction: restart:web\n", "give command or action"),
        ("action: cleanup:nope\n", "no cleanup root named 'nope'"),
        ("action: signal:/run/x.pid:NOPE\n", "unknown signal"),
        ("action: reboot:now\n", "expected cleanup:ROOT"),
        ("command: [/bin/true]\nshell: true\n", "one string"),
        ("command: [/bin/true]\nmax_attempts: 0\n", "positive"),
    ],
)
def test_bad_remediate_config_is_refused_with_file_and_line(
    tmp_path: Path, remediate: str, expected: str
) -> None:
    """Each mistake is one problem that names reliactl.yaml:LINE and the key path."""
    cfg = write(tmp_path, remediate)
    with pytest.raises(ConfigError) as caught:
        load(cfg)
    text = str(caught.value)
    assert expected in text and "reliactl.yaml:" in text and "remediate" in text, text


def test_a_remediation_past_its_timeout_is_stopped_and_failed(tmp_path: Path) -> None:
    """timeout: the engine stops the remediation's whole process tree (a background child
    too); the result is "remediation failed" with the outcome timeout, and nothing of it
    is left running."""
    pidfile = tmp_path / "child.pid"
    cfg = write(
        tmp_path,
        f'command: [{SH}, -c, "sleep 60 & echo $! > {pidfile}; wait"]\ntimeout: 300ms\n',
    )
    remediator, _ = healer(cfg)
    started = time.monotonic()
    done = round_of(remediator)[1]
    assert time.monotonic() - started < 30  # a hang detector, not a measurement
    assert [(r.result, r.outcome) for r in done] == [(FAILED, "timeout")]
    from reliactl._procfs import pid_alive

    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_exhaustion_alerts_again_once_the_window_let_another_attempt_through(
    tmp_path: Path,
) -> None:
    """One exhausted alert per episode: after the window passes (a clock moved 2h on), a
    new attempt runs and fails, and the next exhaustion is announced again, once."""
    now = [time.time()]
    with FlakyServer() as sink:
        cfg = write(
            tmp_path,
            "command: [/bin/false]\nverify_after: 0s\nmax_attempts: 1\nwindow: 1h\n",
            sink=f"{sink.url}/hook",
        )
        remediator, _ = healer(cfg, clock=lambda: now[0])
        results = [round_of(remediator)[1][0].result for _ in range(3)]
        now[0] += 7200
        results += [round_of(remediator)[1][0].result for _ in range(3)]
        assert results == [FAILED, EXHAUSTED, EXHAUSTED, FAILED, EXHAUSTED, EXHAUSTED]
        kinds = [p.get("kind") for p in sink.posted("/hook")]
        assert kinds.count("remediation_exhausted") == 2, kinds


def test_the_remediation_breaker_stops_a_remediation_that_keeps_failing(tmp_path: Path) -> None:
    """The breaker remediate.flag (failure_threshold 1 here, in circuit_breaker.breakers):
    after one failed run it is open, so the next round runs nothing ("breaker_open") and
    does not spend an attempt."""
    count = tmp_path / "count"
    cfg = write(
        tmp_path,
        f'command: [{SH}, -c, "echo run >> {count}; exit 1"]\nverify_after: 0s\nmax_attempts: 10\n',
        extra="""
        circuit_breaker:
          breakers:
            remediate.flag:
              failure_threshold: 1
              recovery_timeout: 1h
        """,
    )
    remediator, _ = healer(cfg)
    first = round_of(remediator)[1]
    second = round_of(remediator)[1]
    assert [(r.result, r.outcome) for r in first + second] == [
        (FAILED, "failure"),
        (FAILED, "breaker_open"),
    ]
    assert lines(count) == 1 and second[0].attempt is None
    record = remediator.monitor.records.get("kv", "remediate:flag")
    assert record is not None and len(record["attempts"]) == 1
