"""Resource limits of a supervised job (issue 22): real jobs that allocate, print and spin.

Each limit stops the job like a timeout (signal, grace, SIGKILL) with its own outcome and
exit code; every run records its peak RSS and CPU time. Memory has three paths: the job's
cgroup v2 with memory.max where the machine allows it, else its cgroup v1 memory directory
(memory.limit_in_bytes) where that is writable, else the tree's RSS polled; the polling path
is forced with ``use_cgroup=False``. This project's machines (and CI) have the v1 path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reliactl.cli.exitcodes import ExitCode
from reliactl.config import Config, load
from reliactl.jobs import JobSpec, prepare_job, run_job
from reliactl.runner import (
    HEALTH_STOPPED_EXIT,
    LIMIT_EXIT,
    RunEvent,
    RunOptions,
    RunRetryPolicy,
    memory_cgroup_support,
    memory_cgroup_v1_base,
    memory_limit_path,
    run_command,
)
from reliactl.state import open_state

MiB = 1024 * 1024
# Allocates (and touches) 10 MiB every 20 ms up to 600 MiB, then sleeps: only a limit stops it.
HOG = (
    "import time\n"
    "chunks = []\n"
    "for _ in range(60):\n"
    "    chunks.append(bytearray(10 * 1024 * 1024)); time.sleep(0.02)\n"
    "time.sleep(60)\n"
)


class Sink:
    """An OutputSink that keeps what it gets and which threads ran while it was called."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.threads: set[str] = set()

    def write(self, stream: int, data: bytes) -> None:
        self.data += data
        self.threads.update(t.name for t in threading.enumerate())

    def end_attempt(self, attempt: int) -> None:
        pass


def events() -> tuple[list[RunEvent], object]:
    seen: list[RunEvent] = []
    return seen, seen.append


def test_exit_codes_of_limits_are_the_tables() -> None:
    """The runner's exit codes of a limit and of --watch-health are exitcodes.py's."""
    assert LIMIT_EXIT == ExitCode.LIMIT
    assert HEALTH_STOPPED_EXIT == ExitCode.HEALTH_STOPPED


def test_memory_max_by_polling_stops_a_job_allocating_past_it() -> None:
    """Without a usable cgroup, the tree's RSS is polled and the job stopped past the limit."""
    seen, on_event = events()
    result = run_command(
        RunOptions(
            command=(sys.executable, "-c", HOG),
            memory_max=80 * MiB,
            use_cgroup=False,
            kill_after=5,
            timeout=120,  # a hang guard only
        ),
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert (result.outcome, result.exit_code) == ("memory_limit", 121), result
    assert any("by polling the job's RSS" in e.message for e in seen), seen
    assert result.peak_rss is not None and result.peak_rss > 80 * MiB
    assert "--memory-max" in (result.message or "")


def test_memory_max_path_is_detected_and_named() -> None:
    """The run says which path enforces --memory-max here (v2, v1 or polling), as
    memory_limit_path() detects; the job is stopped either way."""
    path, why = memory_limit_path()
    print(f"memory limit path on this machine: {path} {why or ''}")
    seen, on_event = events()
    result = run_command(
        RunOptions(
            command=(sys.executable, "-c", HOG), memory_max=80 * MiB, kill_after=5, timeout=120
        ),
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert result.outcome == "memory_limit", result
    said = next(e.message for e in seen if e.kind == "memory_limit")
    named = {"v2": "by the job's cgroup v2", "v1": "by the job's cgroup v1"}
    assert said.startswith("--memory-max 80.0MiB enforced " + named.get(path, "by polling")), said


@pytest.mark.skipif(
    memory_cgroup_support() is not None,
    reason=f"no cgroup v2 memory controller here: {memory_cgroup_support()}",
)
def test_memory_max_by_cgroup_stops_a_job_allocating_past_it() -> None:
    """Where a job cgroup can carry memory.max, the kernel holds the job to it (the polled RSS
    is set far above, so only the cgroup can stop it)."""
    seen, on_event = events()
    result = run_command(
        RunOptions(
            command=(sys.executable, "-c", HOG),
            memory_max=80 * MiB,
            limit_poll=3600,  # the first sample only: the cgroup must do the work
            kill_after=5,
            timeout=120,
        ),
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert result.outcome == "memory_limit", (result, seen)


V1 = pytest.mark.skipif(
    memory_limit_path()[0] != "v1",
    reason=f"the cgroup v1 memory path is not the one used here: {memory_limit_path()}",
)


def _v1_job_cgroups() -> list[str]:
    base = memory_cgroup_v1_base()
    assert base is not None
    return sorted(n for n in os.listdir(base) if n.startswith("reliactl-"))


@V1
def test_memory_max_by_cgroup_v1_stops_a_job_allocating_past_it() -> None:
    """Where cgroup v2 has no memory controller but the v1 memory hierarchy is writable, the
    job runs in a v1 cgroup with memory.limit_in_bytes and the kernel stops it: the poller
    samples only once (at the start), so the OOM kill (SIGKILL, the kernel's) is the only way
    the job could end as memory_limit; its cgroup is removed afterwards."""
    before = _v1_job_cgroups()
    seen, on_event = events()
    result = run_command(
        RunOptions(
            command=(sys.executable, "-c", HOG),
            memory_max=80 * MiB,
            limit_poll=3600,  # the first sample only: the cgroup must do the work
            kill_after=5,
            timeout=120,  # a hang guard only
        ),
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert (result.outcome, result.exit_code) == ("memory_limit", 121), (result, seen)
    said = next(e.message for e in seen if e.kind == "memory_limit")
    assert "enforced by the job's cgroup v1 (memory.limit_in_bytes" in said, said
    assert "cgroup v1" in (result.message or ""), result.message
    assert result.attempts[-1].signal == 9  # the OOM killer's SIGKILL, not our SIGTERM
    assert _v1_job_cgroups() == before  # removed, not left behind


@V1
def test_an_oom_kill_in_a_v1_cgroup_stops_the_rest_of_the_tree(tmp_path: Path) -> None:
    """cgroup v1 has no memory.oom.group: when the kernel OOM-kills one process of the job
    (a background allocator), the shim reports it at once and reliactl stops the rest of the
    tree (here a `sleep 300` the command waits for) as a limit does."""
    pidfile = tmp_path / "sleeper"
    # The sleeper's pid is written before the allocator starts: under load the OOM kill
    # (and reliactl stopping the tree) could otherwise come before the shell wrote it.
    script = f"sleep 300 & echo $! > {pidfile}; {sys.executable} -c '{HOG}' & wait"
    result = run_command(
        RunOptions(
            command=("sh", "-c", script),
            memory_max=80 * MiB,
            limit_poll=3600,
            kill_after=5,
            timeout=120,  # a hang guard only: the sleeper would hold the job 300 s
        ),
    )
    assert (result.outcome, result.exit_code) == ("memory_limit", 121), result
    assert not result.attempts[-1].timed_out
    sleeper = int(pidfile.read_text())
    assert (
        not os.path.exists(f"/proc/{sleeper}")
        or b") Z" in Path(f"/proc/{sleeper}/stat").read_bytes()
    )


@V1
def test_a_job_within_the_v1_limit_runs_normally_inside_its_cgroup() -> None:
    """A job below --memory-max is not touched: it succeeds, it ran in the job's own v1
    memory cgroup (limit_in_bytes and memsw set to the limit), and the cgroup is gone after."""
    before = _v1_job_cgroups()
    sink = Sink()
    script = (
        'cg=$(sed -n "s/^[0-9]*:[^:]*memory[^:]*://p" /proc/self/cgroup); '
        'echo "$cg"; cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes"'
    )
    result = run_command(
        RunOptions(command=("sh", "-c", script), memory_max=64 * MiB, timeout=120),
        output=sink,
    )
    assert (result.outcome, result.exit_code) == ("success", 0), result
    where, limit = bytes(sink.data).decode().split()[:2]
    assert os.path.basename(where).startswith("reliactl-"), where
    assert int(limit) == 64 * MiB
    assert _v1_job_cgroups() == before


@V1
def test_v1_leftovers_of_killed_runs_are_swept() -> None:
    """An empty v1 job cgroup whose shim is dead (a run killed before it could remove it) is
    removed by the next run with --memory-max."""
    base = memory_cgroup_v1_base()
    assert base is not None
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, check=True)
    leftover = os.path.join(base, f"reliactl-{int(dead.stdout)}")
    os.mkdir(leftover)
    try:
        result = run_command(RunOptions(command=("true",), memory_max=256 * MiB))
        assert result.outcome == "success"
        assert not os.path.exists(leftover)
    finally:
        if os.path.isdir(leftover):
            os.rmdir(leftover)


@V1
def test_a_v1_cgroup_is_removed_when_the_shim_is_killed() -> None:
    """kill -9 of the shim (which would remove the job's v1 cgroup): reliactl kills what is
    in the cgroup and removes it, so no directory of the run is left behind."""
    base = memory_cgroup_v1_base()
    assert base is not None
    before = set(_v1_job_cgroups())
    killed: list[str] = []

    def kill_the_shim() -> None:
        for _ in range(1000):  # a hang guard: the cgroup appears as the shim starts
            # Only ours: other test runs on this host make reliactl-<pid> cgroups too.
            new = {n for n in set(_v1_job_cgroups()) - before if _is_our_child(n)}
            if len(new) == 1 and _cgroup_procs(base, *new):
                [name] = new
                os.kill(int(name.removeprefix("reliactl-")), 9)
                killed.append(name)
                return
            threading.Event().wait(0.02)

    killer = threading.Thread(target=kill_the_shim)
    killer.start()
    result = run_command(RunOptions(command=("sleep", "60"), memory_max=64 * MiB, timeout=120))
    killer.join(60)
    [name] = killed
    assert result.outcome != "success", result
    assert not os.path.exists(os.path.join(base, name))


def _is_our_child(name: str) -> bool:
    """Is the shim that a ``reliactl-<pid>`` cgroup is named after a child of this process?"""
    try:
        stat = Path(f"/proc/{name.removeprefix('reliactl-')}/stat").read_text()
    except (OSError, ValueError):
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()


def _cgroup_procs(base: str, name: str) -> bytes:
    try:
        return Path(base, name, "cgroup.procs").read_bytes().strip()
    except OSError:
        return b""


def test_max_output_stops_a_job_printing_forever() -> None:
    """`yes` is stopped once its output passes --max-output; nothing past it is passed on."""
    sink = Sink()
    result = run_command(RunOptions(command=("yes",), max_output=100_000, timeout=120), output=sink)
    assert (result.outcome, result.exit_code) == ("output_limit", 121), result
    assert len(sink.data) == 100_000


def test_a_limit_stops_the_whole_tree_like_a_timeout(tmp_path: Path) -> None:
    """A job that ignores SIGTERM is SIGKILLed after kill_after; its background child too."""
    pidfile = tmp_path / "child"
    script = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; while :; do echo flood; done"
    result = run_command(
        RunOptions(command=("sh", "-c", script), max_output=50_000, kill_after=0.5, timeout=120),
        output=Sink(),
    )
    assert result.outcome == "output_limit", result
    assert result.attempts[-1].killed
    child = int(pidfile.read_text())
    assert (
        not os.path.exists(f"/proc/{child}") or b") Z" in Path(f"/proc/{child}/stat").read_bytes()
    )


def test_cpu_time_stops_a_busy_loop() -> None:
    """--cpu-time: RLIMIT_CPU stops a spinning process (SIGXCPU), outcome cpu_limit."""
    result = run_command(
        RunOptions(command=("sh", "-c", "while :; do :; done"), cpu_time=1, timeout=120)
    )
    assert (result.outcome, result.exit_code) == ("cpu_limit", 121), result
    # The kernel checks RLIMIT_CPU against its sampled (tick) CPU time, wait4 reports the
    # precise one: under load the two differ by up to a tick or two (0.895 s seen).
    assert result.cpu_time is not None and result.cpu_time >= 0.8


def test_nice_and_io_class_are_set_on_the_command() -> None:
    """--nice and --io-class: the command's /proc/self/stat nice field and its I/O class."""
    sink = Sink()
    result = run_command(
        RunOptions(
            command=("sh", "-c", "cut -d' ' -f19 /proc/self/stat; ionice -p $$"),
            nice=7,
            io_class="idle",
        ),
        output=sink,
    )
    assert result.outcome == "success", result
    nice, ioclass = bytes(sink.data).decode().split("\n")[:2]
    assert nice == "7"
    assert ioclass == "idle"
    sink = Sink()
    run_command(RunOptions(command=("ionice",), io_class="best-effort"), output=sink)
    assert bytes(sink.data).decode().startswith("best-effort"), sink.data


def test_a_run_stopped_by_a_limit_is_not_retried() -> None:
    """The same limit would stop the next attempt too: no retry."""
    result = run_command(
        RunOptions(command=("yes",), max_output=1000, retry=RunRetryPolicy(max_retries=3)),
        output=Sink(),
    )
    assert result.outcome == "output_limit"
    assert len(result.attempts) == 1


def test_no_thread_and_no_sampling_without_limits() -> None:
    """The hot path: without a limit or a watch no watch thread runs beside the command."""
    sink = Sink()
    run_command(RunOptions(command=("echo", "hi")), output=sink)
    assert "reliactl-watch" not in sink.threads
    sink = Sink()
    run_command(
        RunOptions(command=("sh", "-c", "sleep 0.3; echo hi"), watch_interval=0.05),
        output=sink,
    )
    assert "reliactl-watch" not in sink.threads  # no watch given: interval alone starts none


def test_peak_rss_and_cpu_time_are_recorded_for_every_run(tmp_path: Path) -> None:
    """Without any limit, the history row holds the run's peak RSS and CPU time."""
    cfg = _config(tmp_path, "")
    code = "b = bytearray(150 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1"
    job = run_job(JobSpec(command=(sys.executable, "-c", code), name="big"), config=cfg)
    assert job.outcome == "success"
    assert job.run.peak_rss is not None and job.run.peak_rss >= 150 * MiB
    assert job.run.cpu_time is not None and job.run.cpu_time > 0
    assert (job.peak_rss, job.cpu_time) == (job.run.peak_rss, job.run.cpu_time)
    [row] = open_state(cfg).runs("big", limit=1)
    assert row.data["peak_rss"] == job.run.peak_rss
    assert row.data["cpu_time"] == pytest.approx(job.run.cpu_time, abs=1e-5)


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load(str(path)).config


def test_limits_come_from_the_run_section_and_flags_win(tmp_path: Path) -> None:
    """run.memory_max & co. are the defaults of every job; a JobSpec value wins; None is none."""
    cfg = _config(
        tmp_path,
        "run:\n  memory_max: 1GiB\n  cpu_time: 5m\n  nice: 5\n  io_class: idle\n"
        "  max_output: 10MB\n",
    )
    opts = prepare_job(JobSpec(command=("true",)), cfg).options
    assert (opts.memory_max, opts.cpu_time, opts.nice, opts.io_class, opts.max_output) == (
        1024 * MiB,
        300.0,
        5,
        "idle",
        10_000_000,
    )
    opts = prepare_job(JobSpec(command=("true",), nice=1, memory_max=None), cfg).options
    assert (opts.nice, opts.memory_max) == (1, None)


def test_watch_health_warns_once_and_runs_on(tmp_path: Path) -> None:
    """--on-critical warn: a file-age check turning CRITICAL mid-run is logged (once), and the
    job runs to its end."""
    hb = tmp_path / "hb"
    hb.touch()
    cfg = _config(
        tmp_path,
        "health_monitor:\n  system_checks: []\n  checks:\n"
        f"    - {{name: heartbeat, kind: file_age, path: {hb}, warn: 1h, critical: 2h}}\n",
    )
    script = f"sleep 0.3; touch -d @0 {hb}; sleep 1.5"
    seen, on_event = events()
    job = run_job(
        JobSpec(command=("sh", "-c", script), watch_health=0.1, history=False),
        config=cfg,
        on_event=on_event,  # type: ignore[arg-type]
    )
    assert job.outcome == "success", seen
    warned = [e for e in seen if e.kind == "health"]
    assert len(warned) == 1, seen
    assert "heartbeat" in warned[0].message and "CRITICAL" in warned[0].message
