"""`reliactl run` relaying to a reader that is alive but takes nothing (a hung logger,
`... | (sleep 600)`).

The relay (--timestamps, --log-file, --max-output, a ping's output tail) writes from the
supervising loop. It used to wait inside that write with no time limit, so while the reader
took nothing, --timeout, --kill-after, a lost lock and a forwarded SIGTERM did not act: `run
--timeout 2s --timestamps -- yes | (sleep 600)` ran for the 600 s with its lock held (timeout
2 yes | ... stops after 2 s). Now the loop goes on supervising while the write waits, and once
the job was stopped and is gone (or past its SIGKILL time) the relay gives that reader up.
A reader that is only slow still gets every byte. Real processes and real pipes throughout;
the bounds below are generous: the behaviour under test is "ends at all", not how fast.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from runhelpers import default_signals, reliactl_cmd

END = 60  # seconds: a run that has not ended by then would have waited for ever

RELAYS = [
    ["--timestamps"],
    ["--log-file", "{log}"],
    ["--max-output", "1G"],
    ["--ping", "http://127.0.0.1:9/check"],  # the ping's output tail (nothing listens)
]
RELAY_IDS = ["timestamps", "log-file", "max-output", "ping-tail"]
NOTE = (
    b"stdout: its reader took nothing until the job was stopped; the rest of its output is dropped"
)


def start(
    args: list[str], stdout: int, stderr: int | None = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """`reliactl ARGS` with stdout on the given descriptor (a pipe nobody reads)."""
    return subprocess.Popen(
        reliactl_cmd(*args),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=default_signals,
    )


def ended(proc: subprocess.Popen[bytes]) -> bytes:
    """Wait for the run to end (killing it if it never does) and return its stderr."""
    try:
        _, err = proc.communicate(timeout=END)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"run did not end within {END} s: it waited for a reader that takes nothing")
    return err or b""


@pytest.mark.parametrize("flags", RELAYS, ids=RELAY_IDS)
def test_the_timeout_fires_while_the_reader_takes_nothing(flags: list[str], tmp_path: Path) -> None:
    """`run --timeout 1s FLAGS -- yes` with a stdout pipe nobody reads: the timeout stops the
    job and run exits 124 with its note, instead of waiting for the reader for ever."""
    args = [flag.format(log=tmp_path / "job.log") for flag in flags]
    r, w = os.pipe()
    try:
        proc = start(["run", "--no-history", "--timeout", "1s", *args, "--", "yes"], w)
        os.close(w)
        err = ended(proc)
    finally:
        os.close(r)
    assert proc.returncode == 124, err.decode(errors="replace")
    assert b"attempt 1 timed out" in err
    assert NOTE in err, err.decode(errors="replace")
    if "--log-file" in flags:
        assert b"[reliactl] stdout: its reader took nothing" in (tmp_path / "job.log").read_bytes()


def test_a_non_blocking_stdout_that_takes_nothing_does_not_hold_the_timeout() -> None:
    """The same through a stdout its parent made non-blocking (the write fails with EAGAIN
    instead of blocking): the timeout fires and run exits 124."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        proc = start(["run", "--no-history", "--timeout", "1s", "--timestamps", "--", "yes"], w)
        os.close(w)
        err = ended(proc)
    finally:
        os.close(r)
    assert proc.returncode == 124, err.decode(errors="replace")
    assert NOTE in err


def test_own_lines_on_the_same_stalled_pipe_do_not_hold_the_run() -> None:
    """`2>&1` into the pipe nobody reads: reliactl's own lines (the timeout's) go to the same
    stalled reader; they are written only as far as the pipe takes them, and run exits 124."""
    r, w = os.pipe()
    try:
        proc = start(
            ["run", "--no-history", "--timeout", "1s", "--timestamps", "--", "yes"],
            w,
            stderr=subprocess.STDOUT,
        )
        os.close(w)
        ended(proc)
    finally:
        os.close(r)
    assert proc.returncode == 124


def test_the_lock_is_free_once_the_timeout_stopped_the_job() -> None:
    """The lock of a run whose reader takes nothing is released when the timeout stops the
    job: the next run of the same lock starts while that reader still sleeps."""
    name = f"stall-{os.getpid()}"
    r, w = os.pipe()
    try:
        first = subprocess.Popen(
            reliactl_cmd(
                "run",
                "--no-history",
                "--lock",
                "--lock-name",
                name,
                "--timeout",
                "1s",
                "--timestamps",
                "--",
                "yes",
            ),
            stdin=subprocess.DEVNULL,
            stdout=w,
            stderr=subprocess.PIPE,
            preexec_fn=default_signals,
        )
        os.close(w)
        err = ended(first)
        second = subprocess.run(
            reliactl_cmd("run", "--no-history", "--lock", "--lock-name", name, "--", "true"),
            capture_output=True,
            timeout=END,
            check=False,
        )
    finally:
        os.close(r)
    assert first.returncode == 124, err.decode(errors="replace")
    assert second.returncode == 0, second.stderr.decode(errors="replace")


def test_a_forwarded_sigterm_stops_a_job_whose_reader_takes_nothing() -> None:
    """SIGTERM to reliactl while its relay waits on a reader that takes nothing: it is
    forwarded to the job, the job dies of it, and run ends by the signal it received."""
    r, w = os.pipe()
    try:
        proc = start(["run", "--no-history", "--timestamps", "--", "yes"], w)
        os.close(w)
        time.sleep(1.0)  # the pipe is full and the relay waits
        proc.send_signal(signal.SIGTERM)
        err = ended(proc)
    finally:
        os.close(r)
    assert b"received SIGTERM; forwarding it" in err, err.decode(errors="replace")
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)


def test_a_job_ignoring_sigterm_is_killed_at_kill_after() -> None:
    """A job that ignores the timeout's SIGTERM and keeps writing to a reader that takes
    nothing: SIGKILL at --kill-after, exit 137, as `timeout -k` does."""
    job = ["sh", "-c", "trap '' TERM; yes"]
    r, w = os.pipe()
    try:
        proc = start(
            [
                "run",
                "--no-history",
                "--timeout",
                "1s",
                "--kill-after",
                "1s",
                "--timestamps",
                "--",
                *job,
            ],
            w,
        )
        os.close(w)
        err = ended(proc)
    finally:
        os.close(r)
    assert b"sending SIGKILL" in err, err.decode(errors="replace")
    assert proc.returncode == 137, err.decode(errors="replace")


@pytest.mark.parametrize(
    "flags", [["--max-output", "1G"], ["--log-file", "{log}"]], ids=["max-output", "log-file"]
)
def test_a_slow_reader_gets_every_byte(flags: list[str], tmp_path: Path) -> None:
    """A reader that is slow but reads (small pieces, pauses, starting late) is waited for:
    every byte of 3 MB arrives in order and run exits 0; nothing is given up."""
    args = [flag.format(log=tmp_path / "job.log") for flag in flags]
    data = hashlib.sha256(b"seed").digest() * (3_000_000 // 32)
    src = tmp_path / "data"
    src.write_bytes(data)
    r, w = os.pipe()
    try:
        proc = start(["run", "--no-history", *args, "--", "cat", str(src)], w)
        os.close(w)
        got = read_late(r, 0.5, pace=0.05)  # the pipe is full before anyone reads
        err = ended(proc)
    finally:
        os.close(r)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert bytes(got) == data
    assert b"took nothing" not in err


def read_late(r: int, delay: float, pace: float = 0.0) -> bytes:
    """Read the pipe to its end, starting after ``delay`` seconds, pausing ``pace`` seconds
    every 64 KiB (a slow reader that still reads); fails if the end does not come within
    END seconds (a run that never ends)."""
    time.sleep(delay)
    got = bytearray()
    deadline = time.monotonic() + END
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([r], [], [], left)[0]:
            pytest.fail(f"the pipe did not reach its end within {END} s")
        chunk = os.read(r, 4096)
        if not chunk:
            return bytes(got)
        got += chunk
        if pace and len(got) % 65536 < 4096:
            time.sleep(pace)


def test_an_event_while_a_slow_reader_catches_up_loses_nothing() -> None:
    """`2>&1` to a reader that starts late: while the relay waits, the supervision writes an
    event (the command exited, leaving a process behind) to the same pipe. The event waits
    its turn; nothing is given up: every line of the job and reliactl's lines arrive. (The
    event gave the shared pipe up, and the rest of the output vanished without a note.)"""
    job = "sleep 30 >/dev/null 2>&1 & seq 1 20000"
    r, w = os.pipe()
    try:
        proc = start(
            ["run", "--no-history", "--timestamps", "--", "sh", "-c", job],
            w,
            stderr=subprocess.STDOUT,
        )
        os.close(w)
        got = read_late(r, 2.0)
        ended(proc)
    finally:
        os.close(r)
    # reliactl's lines may fall inside a job's line (a chunk ends mid-line), as with any
    # `2>&1`: take the stamps and reliactl's lines out, and the job's output must be whole.
    own = re.compile(rb"\d{4}-\d\d-\d\dT[\d:.]+Z (reliactl: [^\n]*\n)?")
    assert own.sub(b"", got) == b"".join(b"%d\n" % n for n in range(1, 20001)), got[-500:]
    assert b"the command exited but 1 process" in got
    assert b"took nothing" not in got
    assert proc.returncode == 0


def test_a_partial_line_on_a_given_up_pipe_does_not_hold_the_lock() -> None:
    """A job whose stdout ends mid-line and whose stderr floods, `2>&1` into a pipe nobody
    reads: after the timeout, ending the partial line (and every later line of reliactl)
    must not wait on that pipe again: run exits 124 and the lock is free."""
    name = f"partial-{os.getpid()}"
    r, w = os.pipe()
    try:
        proc = start(
            [
                "run", "--no-history", "--lock-name", name, "--timeout", "1s", "--timestamps",
                "--", "sh", "-c", "printf partial; yes >&2",
            ],
            w,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        os.close(w)
        ended(proc)
        second = subprocess.run(
            reliactl_cmd("run", "--no-history", "--lock-name", name, "--", "true"),
            capture_output=True,
            timeout=END,
            check=False,
        )
    finally:
        os.close(r)
    assert proc.returncode == 124
    assert second.returncode == 0, second.stderr.decode(errors="replace")


def test_a_job_flooding_on_sigterm_into_a_stalled_pipe_ends() -> None:
    """A job that answers the timeout's SIGTERM with 100 KB more output, into a pipe nobody
    reads: the job waits on its output as in a pipeline, is killed at --kill-after, that
    reader is given up and run exits 137 (it used to block for ever writing its last
    lines)."""
    job = "trap 'head -c 100000 /dev/zero; exit 3' TERM; yes"
    r, w = os.pipe()
    try:
        proc = start(
            [
                "run", "--no-history", "--timeout", "1s", "--kill-after", "2s", "--timestamps",
                "--", "sh", "-c", job,
            ],
            w,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        os.close(w)
        ended(proc)
    finally:
        os.close(r)
    assert proc.returncode == 137


@pytest.mark.parametrize("how", ["usr1", "timeout"])
def test_a_slow_reader_gets_the_output_of_a_signalled_job(how: str) -> None:
    """A reader that reads slowly but steadily is never given up, also once a signal went
    to the job: after a USR1 it ignores, and after the timeout's SIGTERM that it answers
    with its last 300,000 lines. Every line arrives (the relay gave such a reader up as
    soon as the job was gone and dropped the job's last words)."""
    if how == "usr1":
        job = "trap '' USR1; sleep 2; seq 1 300000"
        flags = ["--max-output", "1G"]
    else:
        job = "trap 'seq 1 300000; exit 0' TERM; while :; do sleep 0.1; done"
        flags = ["--timeout", "1s", "--max-output", "1G"]
    r, w = os.pipe()
    try:
        proc = start(["run", "--no-history", *flags, "--", "sh", "-c", job], w)
        os.close(w)
        if how == "usr1":
            time.sleep(1.0)
            proc.send_signal(signal.SIGUSR1)
        got = read_late(r, 0.5, pace=0.02)
        err = ended(proc)
    finally:
        os.close(r)
    assert got.decode().splitlines() == [str(n) for n in range(1, 300001)], err
    assert b"took nothing" not in err


def test_a_terminal_nobody_reads_does_not_hold_the_timeout() -> None:
    """stdout a pseudo-terminal whose other side is never read: the relay's write must not
    block in the kernel (a terminal's poll says "room" for less than a pipe's): the timeout
    fires and run exits 124."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = start(["run", "--no-history", "--timeout", "1s", "--timestamps", "--", "yes"], slave)
        os.close(slave)
        err = ended(proc)
    finally:
        os.close(master)
    assert proc.returncode == 124, err.decode(errors="replace")


def test_a_limit_past_the_timeout_does_not_spin_the_loop() -> None:
    """--max-output stops a job that ignores SIGTERM; while it waits for --kill-after, the
    passed --timeout must not make the supervising loop spin (it ran at 100% CPU until the
    SIGKILL): reliactl's CPU over 4 s of waiting stays far below the time waited."""
    job = "trap '' TERM; head -c 100 /dev/zero; sleep 30"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        reliactl_cmd(
            "run", "--no-history", "--max-output", "10", "--timeout", "1s", "--kill-after", "5s",
            "--", "sh", "-c", job,
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=END,
        preexec_fn=default_signals,
        check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    assert proc.returncode == 121, proc.stderr.decode(errors="replace")  # --max-output's
    assert b"sending SIGKILL" in proc.stderr
    assert used < 1.5, f"{used:.2f} s of CPU while waiting 4 s for --kill-after"


def test_a_pty_master_as_stdout_gets_the_output() -> None:
    """stdout the master side of a pseudo-terminal, read on its slave side: every relayed
    byte arrives (reopening the master through /proc made a new terminal, and the output
    went there: nothing arrived and a longer job never ended)."""
    import pty
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)
    got = bytearray()
    try:
        proc = start(
            ["run", "--no-history", "--max-output", "1G", "--", "seq", "1", "20000"], master
        )
        expected = b"".join(b"%d\n" % n for n in range(1, 20001))
        deadline = time.monotonic() + END
        while len(got) < len(expected) and time.monotonic() < deadline:
            if select.select([slave], [], [], 1.0)[0]:
                got += os.read(slave, 65536)
        err = ended(proc)
    finally:
        os.close(master)
        os.close(slave)
    assert bytes(got) == expected, err.decode(errors="replace")
    assert proc.returncode == 0
