"""reliactl.runner as a library: policies, parsing, and run_command in-process."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from reliactl.errors import ReliactlError
from reliactl.runner import (
    Attempt,
    LockOptions,
    RunEvent,
    RunOptions,
    RunRetryPolicy,
    exit_code_of,
    parse_codes,
    run_command,
)


def attempt(code: int, **kw: object) -> Attempt:
    return Attempt(1, 0.0, 0.0, code, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "failed", "retried"),
    [
        (RunRetryPolicy(), attempt(1), True),
        (RunRetryPolicy(), attempt(0), False),
        (RunRetryPolicy(), attempt(126), False),
        (RunRetryPolicy(), attempt(127), False),
        (RunRetryPolicy(retry_on=frozenset({127})), attempt(127), False),  # never, even if listed
        (RunRetryPolicy(), attempt(127, exec_error="not found"), False),
        (RunRetryPolicy(), attempt(124, timed_out=True), False),
        (RunRetryPolicy(retry_on_timeout=True), attempt(124, timed_out=True), True),
        (RunRetryPolicy(retry_on=frozenset({3})), attempt(4), False),
        (RunRetryPolicy(retry_on=frozenset({3})), attempt(3), True),
        (RunRetryPolicy(no_retry_on=frozenset({3})), attempt(3), False),
        (RunRetryPolicy(no_retry_on=frozenset({3})), attempt(137, signal=9), True),
    ],
)
def test_which_failures_are_retried(policy: RunRetryPolicy, failed: Attempt, retried: bool) -> None:
    assert policy.retryable(failed) is retried


def test_parse_codes_lists_and_ranges() -> None:
    assert parse_codes("1,3,64-66") == {1, 3, 64, 65, 66}
    assert parse_codes(" 7 ") == {7}
    assert parse_codes("0-255") == frozenset(range(256))


@pytest.mark.parametrize("bad", ["", "1,", "a", "3-1", "256", "-1", "1-300", "1--2"])
def test_parse_codes_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_codes(bad)


def test_exit_code_of_raw_statuses() -> None:
    assert exit_code_of(0) == (0, None)
    assert exit_code_of(3 << 8) == (3, None)
    assert exit_code_of(signal.SIGKILL) == (137, signal.SIGKILL)


class RecordingStrategy:
    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.calls: list[tuple[int, float]] = []

    def delay(self, attempt: int, previous_delay: float | None) -> float:
        self.calls.append((attempt, previous_delay))
        return self.delays[attempt - 1]


def test_run_command_asks_the_strategy_for_each_pause(tmp_path: Path) -> None:
    """The runner asks the strategy before each retry, passing the pause it took before."""
    strategy = RecordingStrategy([0.0, 0.01, 0.02])
    events: list[RunEvent] = []
    result = run_command(
        RunOptions(
            command=("sh", "-c", "exit 5"),
            retry=RunRetryPolicy(max_retries=3, strategy=strategy),
        ),
        on_event=events.append,
    )
    assert result.exit_code == 5 and result.outcome == "failure"
    assert len(result.attempts) == 4
    # no previous pause before the first retry: None, not a 0 that decorrelated jitter would
    # read as "the last pause was 0" and answer exactly base_delay (hosts in lockstep)
    assert strategy.calls == [(1, None), (2, 0.0), (3, 0.01)]
    assert [a.delay_after for a in result.attempts] == [0.0, 0.01, 0.02, None]
    assert [e.kind for e in events].count("retry") == 3
    json.dumps(result.to_dict())  # the report is plain JSON


def test_a_signal_during_the_pause_ends_the_run_without_another_attempt(tmp_path: Path) -> None:
    counter = tmp_path / "n"
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        result = run_command(
            RunOptions(
                command=("sh", "-c", f"echo x >> {counter}; exit 1"),
                retry=RunRetryPolicy(max_retries=5, strategy=RecordingStrategy([60.0] * 5)),
            )
        )
    finally:
        timer.cancel()
    assert result.outcome == "signal" and result.interrupted_by == signal.SIGUSR1
    assert result.exit_code == 128 + signal.SIGUSR1
    assert counter.read_text().count("x") == 1


def test_handlers_and_the_wakeup_fd_are_restored() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGCHLD)}
    result = run_command(RunOptions(command=("true",)))
    assert result.exit_code == 0
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert signal.set_wakeup_fd(-1) == -1


def test_output_sink_gets_both_streams(tmp_path: Path) -> None:
    class Sink:
        def __init__(self) -> None:
            self.data: dict[int, bytes] = {1: b"", 2: b""}
            self.ended: list[int] = []

        def write(self, stream: int, data: bytes) -> None:
            self.data[stream] += data

        def end_attempt(self, attempt: int) -> None:
            self.ended.append(attempt)

    sink = Sink()
    result = run_command(
        RunOptions(command=("sh", "-c", "echo out; echo err >&2; echo more")), output=sink
    )
    assert result.exit_code == 0
    assert sink.data == {1: b"out\nmore\n", 2: b"err\n"} and sink.ended == [1]


def test_a_busy_lock_is_a_result_not_an_exception(tmp_path: Path) -> None:
    from reliactl import locks

    path = str(tmp_path / "job.lock")
    with locks.acquire(path):
        # flock locks belong to the open file description: a second open conflicts, even here
        busy = run_command(RunOptions(command=("true",), lock=LockOptions(path)))
        skipped = run_command(
            RunOptions(command=("true",), lock=LockOptions(path, skip_if_locked=True))
        )
    assert (busy.outcome, busy.exit_code, busy.attempts) == ("busy", 75, ())
    assert busy.lock_holder is not None and f"pid {os.getpid()}" in busy.lock_holder
    assert (skipped.outcome, skipped.exit_code) == ("skipped", 0)


def test_run_command_needs_the_main_thread() -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_command(RunOptions(command=("true",)))
        except ReliactlError as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ReliactlError):
        run_command(RunOptions(command=()))
