"""`reliactl run` in a shell pipeline whose reader goes away (`... | head -1`).

Bare `yes | head -1` ends at once: head exits, yes gets SIGPIPE (exit 141). With reliactl
relaying the output (--timestamps, --log-file, --max-output, a ping's output tail) the job
used to run on forever (and --log-file filled the disk: 866 MB in 15 s), because a failed
write to reliactl's stdout only dropped the output. Now a reader gone (EPIPE) closes
reliactl's end of the job's pipe for that stream, so the job gets SIGPIPE as in a pipeline;
any other write failure (full disk, /dev/full) still lets the job run on
(tests/test_run_unwritable.py).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from runhelpers import default_signals, reliactl_cmd
from runhelpers import run as run_reliactl

from reliactl.config import load
from reliactl.runner import RunEvent, RunOptions, RunRetryPolicy, run_command
from reliactl.state import open_state

SIGPIPE_EXIT = 128 + 13


class ReaderGoneOnStdout:
    """An output sink whose stdout reader went away after the first chunk (as RunOutput
    reports it: BrokenPipeError); stderr keeps flowing."""

    def __init__(self) -> None:
        self.data: dict[int, bytes] = {1: b"", 2: b""}

    def write(self, stream: int, data: bytes) -> None:
        self.data[stream] += data
        if stream == 1:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def end_attempt(self, attempt: int) -> None:
        pass


def test_the_runner_closes_the_pipe_of_a_stream_whose_reader_went_away() -> None:
    """A sink raising BrokenPipeError for stdout: the runner closes the job's stdout pipe,
    so `yes` dies of SIGPIPE at its next write (141) while its stderr is still relayed;
    before, the exception escaped run_command (or, swallowed, `yes` ran forever)."""
    sink = ReaderGoneOnStdout()
    script = 'yes; status=$?; echo "yes ended $status" >&2; exit $status'
    result = run_command(RunOptions(command=("sh", "-c", script)), output=sink)
    assert result.exit_code == SIGPIPE_EXIT
    assert sink.data[2] == f"yes ended {SIGPIPE_EXIT}\n".encode()
    assert sink.data[1].startswith(b"y\n")


def head_one(args: list[str], *, stream: str = "stdout") -> tuple[int, bytes, bytes]:
    """Start reliactl, read one line of ``stream`` and close it, as `| head -1` does; the
    exit status and the rest of the other stream. The timeout only detects a hang (the old
    code ran until killed)."""
    proc = subprocess.Popen(
        reliactl_cmd(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,
    )
    assert proc.stdout is not None and proc.stderr is not None
    read = proc.stdout if stream == "stdout" else proc.stderr
    first = read.readline()
    read.close()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, first, err if stream == "stdout" else out


@pytest.mark.parametrize(
    "flags",
    [
        [],  # no processing: the job writes to the pipe itself (already got EPIPE)
        ["--timestamps"],
        ["--log-file", "{log}"],
        ["--max-output", "1G"],
        ["--ping", "http://127.0.0.1:9/check"],  # the ping's output tail (nothing listens)
        ["--timestamps", "--log-file", "{log}", "--retry", "--max-retries", "1"],
    ],
    ids=["plain", "timestamps", "log-file", "max-output", "ping-tail", "retry"],
)
def test_yes_piped_to_head_ends_with_sigpipe(flags: list[str], tmp_path: Path) -> None:
    """`reliactl run FLAGS -- yes | head -1` ends as `yes | head -1` does: exit 141 (the
    job's SIGPIPE, 128+13), at once instead of never; --log-file keeps what was relayed
    (a few pipe buffers, not gigabytes)."""
    log = tmp_path / "job.log"
    args = [flag.format(log=log) for flag in flags]
    code, first, err = head_one(["run", "--no-history", *args, "--", "yes"])
    assert first.endswith(b"y\n")
    assert code == SIGPIPE_EXIT, err.decode(errors="replace")
    assert b"failed by SIGPIPE" in err
    # Every path relaying the output says so once (--max-output and a ping's tail said
    # nothing); without relaying the job met the closed pipe itself, and reliactl did not.
    note = b"stdout was closed by its reader (Broken pipe); the command's stdout is closed too"
    assert err.count(note) == (1 if flags else 0), err.decode(errors="replace")
    if "--log-file" in flags:
        text = log.read_bytes()
        assert b"[out] y\n" in text
        assert len(text) < 64 * 1024 * 1024
        assert b"[reliactl] stdout was closed by its reader" in text


def test_a_gone_stderr_reader_stops_a_job_writing_to_stderr(tmp_path: Path) -> None:
    """The same for stderr (`run --timestamps -- cmd 2>&1 >/dev/null | head -1`): the job's
    stderr pipe is closed, the job's write gets SIGPIPE, and its exit comes back."""
    script = 'yes >&2; status=$?; echo "yes ended $status"; exit 3'
    code, first, out = head_one(["run", "--timestamps", "--", "sh", "-c", script], stream="stderr")
    assert first  # reliactl's "starting" line or the first stamped y
    assert code == 3
    assert out.endswith(f"yes ended {SIGPIPE_EXIT}\n".encode())


def test_quiet_success_holds_at_most_64_mib() -> None:
    """--quiet-success holds the output back until the run ends: bounded in memory (the newest
    64 MiB, the count of dropped bytes said at replay), so `yes` cannot eat memory. (A reader
    that went away is only noticed at the replay, as with chronic.)"""
    from reliactl.cli.run import RunOutput

    out = RunOutput(quiet_success=True)
    chunk = b"y\n" * (512 * 1024)  # 1 MiB
    for _ in range(80):
        out.write(1, chunk)
    assert out.held_bytes == 64 * 1024 * 1024
    assert out.dropped == 16 * 1024 * 1024


@pytest.mark.parametrize(
    "flags",
    [
        ["--max-output", "1G"],
        ["--log-file", "{log}"],
        ["--timestamps"],
        ["--ping", "http://127.0.0.1:9/check"],
    ],
    ids=["max-output", "log-file", "timestamps", "ping-tail"],
)
def test_a_full_disk_is_not_a_gone_reader_and_the_job_runs_on(
    flags: list[str], tmp_path: Path
) -> None:
    """stdout on /dev/full (ENOSPC): only EPIPE closes the job's pipe; here the job still
    runs to its end and its own exit code (3) comes back, as issue 13 promised, and every
    path relaying the output says once why it is dropped (--max-output and a ping's tail
    were silent)."""
    marker = tmp_path / "ran"
    script = f"echo one; echo two; echo ran > {marker}; exit 3"
    args = [flag.format(log=tmp_path / "job.log") for flag in flags]
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            reliactl_cmd("run", *args, "--", "sh", "-c", script),
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            preexec_fn=default_signals,
            timeout=60,
            check=False,
        )
    assert result.returncode == 3, result.stderr
    assert marker.read_text() == "ran\n"
    note = b"cannot write to stdout (No space left on device); what would go there is dropped"
    assert result.stderr.count(note) == 1, result.stderr.decode(errors="replace")


def test_no_retry_once_the_sinks_reader_went_away() -> None:
    """With retries left, a stdout reader gone (the sink raised BrokenPipeError) ends the run
    after that attempt: a retry can only die at its first write (the old code ran all four
    attempts). The result and a give_up event say why; the job's own status (141) stays."""
    events: list[RunEvent] = []
    options = RunOptions(command=("yes",), retry=RunRetryPolicy(max_retries=3))
    result = run_command(options, output=ReaderGoneOnStdout(), on_event=events.append)
    assert len(result.attempts) == 1
    assert result.exit_code == SIGPIPE_EXIT
    assert result.outcome == "failure"
    assert result.message == "not retrying: stdout's reader went away (broken pipe)"
    assert [e.message for e in events if e.kind == "give_up"] == [result.message]


class KeepAll(ReaderGoneOnStdout):
    """A sink whose reader never goes away."""

    def write(self, stream: int, data: bytes) -> None:
        pass


def test_a_failure_with_the_reader_still_there_is_retried() -> None:
    """The other side: a failing command whose output is still read is retried as before."""
    options = RunOptions(
        command=("sh", "-c", "echo out; exit 3"), retry=RunRetryPolicy(max_retries=1)
    )
    result = run_command(options, output=KeepAll())
    assert [a.exit_code for a in result.attempts] == [3, 3]
    assert result.message is None


@pytest.mark.parametrize("flags", [[], ["--timestamps"]], ids=["plain", "timestamps"])
def test_run_retry_piped_to_head_runs_one_attempt(flags: list[str], tmp_path: Path) -> None:
    """`reliactl run --retry --max-retries 3 FLAGS -- yes | head -1`: one attempt, exit 141
    and one line saying why no retry, as a shell pipeline would; the JSON report and the
    run history say one attempt. Without processing the job holds the pipe itself, and
    reliactl sees the reader gone by polling its own stdout (POLLERR). The old code ran
    four attempts, each dying at its first write."""
    report = tmp_path / "report.json"
    args = ["--retry", "--max-retries", "3", "--json-report", str(report), *flags]
    code, first, err = head_one(["run", "--name", "pipe", *args, "--", "yes"])
    assert first.endswith(b"y\n")
    assert code == SIGPIPE_EXIT, err.decode(errors="replace")
    why = b"not retrying: stdout's reader went away (broken pipe)"
    assert err.count(why) == 1, err.decode(errors="replace")
    assert b"retry 1 of 3" not in err
    doc = json.loads(report.read_text())
    assert len(doc["attempts"]) == 1
    assert doc["exit_code"] == SIGPIPE_EXIT
    assert doc["message"] == why.decode()
    runs = json.loads(run_reliactl("runs", "pipe", "--json").stdout)["runs"]
    assert [(r["attempts"], r["exit_code"], r["outcome"]) for r in runs] == [
        (1, SIGPIPE_EXIT, "failure")
    ]
    store = open_state(load().config)
    try:
        (record,) = store.runs("pipe", 5)
    finally:
        store.close()
    assert record.data["message"] == why.decode() and len(record.data["attempts"]) == 1


def test_a_pipe_without_reader_is_told_without_writing(tmp_path: Path) -> None:
    """How the runner tells, without writing (which would raise SIGPIPE), that a stdout it
    hands the command is a pipe nobody reads any more: POLLERR on a FIFO's write end. A pipe
    still read, a regular file and a descriptor not open are not judged gone."""
    from reliactl.runner import _pipe_without_reader

    r, w = os.pipe()
    try:
        assert not _pipe_without_reader(w)
        os.close(r)
        assert _pipe_without_reader(w)
    finally:
        os.close(w)
    assert not _pipe_without_reader(1 << 20)  # no such descriptor
    with open(tmp_path / "f", "wb") as fh:
        assert not _pipe_without_reader(fh.fileno())


def run_with_gone_reader(stream: str, script: str, tmp_path: Path) -> tuple[int, str, dict]:
    """`reliactl run --retry --max-retries 2 -- sh -c SCRIPT` whose ``stream`` is a pipe
    nobody reads any more (closed before reliactl starts: `... | true` without its race);
    the exit status, the other stream and the JSON report."""
    report = tmp_path / "report.json"
    args = ["run", "--no-history", "--retry", "--max-retries", "2", "--base-delay", "0.01"]
    args += ["--jitter", "none", "--json-report", str(report), "--", "sh", "-c", script]
    r, w = os.pipe()
    os.close(r)
    try:
        result = subprocess.run(
            reliactl_cmd(*args),
            stdin=subprocess.DEVNULL,
            stdout=w if stream == "stdout" else subprocess.PIPE,
            stderr=w if stream == "stderr" else subprocess.PIPE,
            preexec_fn=default_signals,
            timeout=60,
            check=False,
        )
    finally:
        os.close(w)
    other = result.stderr if stream == "stdout" else result.stdout
    return result.returncode, other.decode(errors="replace"), json.loads(report.read_text())


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_job_that_never_wrote_to_the_gone_reader_is_retried(stream: str, tmp_path: Path) -> None:
    """A failing job that never wrote to the stream whose reader is gone did not die of it:
    all three attempts run and its exit code (3) comes back, as on main
    (`run --retry -- sh -c '...; exit 3' | true`, or `2> >(logger)` with logger dead). The
    branch gave up after one attempt, saying "stderr's reader went away", and recorded it."""
    other = "1" if stream == "stderr" else "2"
    code, text, doc = run_with_gone_reader(stream, f"echo attempt >&{other}; exit 3", tmp_path)
    assert code == 3, text
    assert text.splitlines().count("attempt") == 3, text
    assert [a["exit_code"] for a in doc["attempts"]] == [3, 3, 3]
    assert doc["message"] is None
    assert "reader went away" not in text


def test_a_shell_reporting_its_childs_sigpipe_is_not_retried(tmp_path: Path) -> None:
    """A job whose writer died of SIGPIPE inside a shell that exits with its status (141,
    not a signal of its own) met the gone reader too: one attempt, and why."""
    script = "yes; status=$?; echo attempt >&2; exit $status"
    code, text, doc = run_with_gone_reader("stdout", script, tmp_path)
    assert code == SIGPIPE_EXIT, text
    assert text.splitlines().count("attempt") == 1, text
    assert len(doc["attempts"]) == 1
    assert doc["message"] == "not retrying: stdout's reader went away (broken pipe)"


@pytest.mark.parametrize(
    "flags", [["--max-output", "1G"], ["--timestamps"]], ids=["max-output", "timestamps"]
)
def test_a_non_blocking_stdout_gets_every_byte(flags: list[str]) -> None:
    """stdout a pipe its parent made non-blocking, read late and slowly: all 3,000,000 bytes
    the job wrote arrive (the relay waits for the pipe as a blocking write would). The
    buffered write dropped what a full pipe did not take without a word (247,488 arrived,
    exit 0, no note)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    job = ["sh", "-c", "head -c 3000000 /dev/zero"]
    try:
        proc = subprocess.Popen(
            reliactl_cmd("run", "--no-history", *flags, "--", *job),
            stdin=subprocess.DEVNULL,
            stdout=w,
            stderr=subprocess.PIPE,
            preexec_fn=default_signals,
        )
    finally:
        os.close(w)
    got = 0
    try:
        time.sleep(0.3)  # the pipe is full before anyone reads
        while chunk := os.read(r, 65536):
            got += chunk.count(0)
            time.sleep(0.001)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    assert got == 3_000_000
