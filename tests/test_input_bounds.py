"""Huge, empty and undecodable values are one-line usage errors, never a wrong outcome.

An adversarial review found values that parsed but broke later: a --cpu-time past RLIMIT_CPU
made the job "not found" (127, no reason), a --memory-max past 2^64 wrapped in the kernel and
stopped the job at once as out of memory, a huge --watch-health killed its thread with a
traceback, and non-UTF-8 or empty names exited 125 "internal error". Each bound has one owner
(``reliactl.durations``: MAX_DURATION, MAX_INTERVAL, MAX_SIZE; ``reliactl.backoff.MAX_RETRIES``;
``reliactl.cli._fastrt.require_text``), so every spelling of a value meets the same one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from httpserver import FlakyServer

from reliactl.chaos import parse_run_spec
from reliactl.durations import (
    MAX_DURATION,
    MAX_SIZE,
    parse_duration,
    parse_interval,
    parse_size,
)
from reliactl.errors import ChaosError, DurationError
from reliactl.runner import RunOptions, memory_limit_path, run_command


def reliactl(*args: str | bytes, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (arguments may be bytes: not UTF-8)."""
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        env={**os.environ, **env},
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The only stderr line of a usage error (exit ``code``): no traceback, nothing else."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("reliactl: error: "), result.stderr
    return lines[0]


# ---- item 1: --cpu-time past what RLIMIT_CPU holds


def test_a_duration_past_100_years_is_refused_in_every_spelling() -> None:
    """MAX_DURATION (36500d) bounds every duration, whatever its spelling; it itself passes."""
    assert parse_duration("36500d") == MAX_DURATION
    for spelling in ("9223372036854775807s", "99999999999999999999", "1e20", "36501d", 1e20):
        with pytest.raises(DurationError, match="at most 36500d"):
            parse_duration(spelling)


def test_run_cpu_time_too_large_is_a_usage_error_before_the_job_starts() -> None:
    """`run --cpu-time 9223372036854775807s` (and RELIACTL_RUN__CPU_TIME) never starts the job:
    one line and run's usage code 125 (the flag), 78 (the environment), no "failure" in the
    history. It used to start, exit 127 without a reason and record a failure."""
    result = reliactl("run", "--cpu-time", "9223372036854775807s", "--", "true")
    assert "--cpu-time: expected a duration of at most 36500d" in one_error_line(result, 125)
    env = reliactl("run", "--", "true", RELIACTL_RUN__CPU_TIME="9223372036854775807s")
    assert env.returncode == 78 and "RELIACTL_RUN__CPU_TIME" in env.stderr, env.stderr
    assert "starting" not in result.stderr + env.stderr
    runs = reliactl("runs", "--json")
    assert '"failure"' not in runs.stdout, runs.stdout


def test_a_cpu_time_the_kernel_refuses_is_reported_not_taken_for_not_found() -> None:
    """A library caller's cpu_time past RLIMIT_CPU (OverflowError in the child's setup) is
    "cannot set --cpu-time", exit 126 with its reason, never 127 "not found" without one."""
    result = run_command(RunOptions(command=("true",), cpu_time=1e30))
    assert result.exit_code == 126, result
    assert result.message is not None and "cannot set --cpu-time" in result.message, result


def test_an_unexpected_error_in_the_childs_setup_says_what_it_was() -> None:
    """Any other error while the command's process is set up (here an I/O class the library
    does not know) is reported with its type and exits 126, never a silent 127."""
    result = run_command(RunOptions(command=("true",), io_class="bogus"))
    assert result.exit_code == 126, result
    assert result.message is not None and "KeyError" in result.message, result
    assert result.outcome == "not_executable", result


# ---- item 2: --memory-max past 2^64 bytes


def test_a_size_of_8eib_or_more_is_refused_in_every_spelling() -> None:
    """MAX_SIZE (2^63 - 1 bytes) bounds every size, read exactly; past it in any unit, as a
    float or an int, in 5,000 digits: refused, never wrapped or rounded into range."""
    assert parse_size(str(MAX_SIZE)) == MAX_SIZE == parse_size(MAX_SIZE)
    for spelling in (
        "9223372036854775808",
        "99999999999999999999999TB",
        "8388608TiB",
        "9" * 5000,
        10**400,
        1e300,
    ):
        with pytest.raises(DurationError, match=r"below 2\^63 bytes"):
            parse_size(spelling)


def test_run_memory_max_past_2_64_is_a_usage_error() -> None:
    """`run --memory-max 99999999999999999999999TB`: one line, exit 125, the job not started
    (it used to be written unclamped to memory.limit_in_bytes, wrap, and stop the job at
    once as killed by the OOM killer, exit 121)."""
    result = reliactl("run", "--memory-max", "99999999999999999999999TB", "--", "true")
    assert "--memory-max: expected a size below 2^63 bytes" in one_error_line(result, 125)


def test_a_library_callers_huge_memory_max_is_no_limit_not_an_oom_kill() -> None:
    """RunOptions(memory_max=2**64 + 4096) from a library caller: the cgroup gets at most
    MAX_SIZE (no limit to the kernel), so the job succeeds; the kernel's parser used to wrap
    it to 4096 bytes and the job was OOM-killed at once (exit 121)."""
    path, why = memory_limit_path()
    if path == "polling":
        pytest.skip(f"no memory cgroup here: {why}")  # the wrap was the kernel's parser
    result = run_command(RunOptions(command=("true",), memory_max=2**64 + 4096))
    assert (result.outcome, result.exit_code) == ("success", 0), result


# ---- item 4: --watch-health and --chaos kill-after past what a thread can wait


def test_intervals_are_at_most_7d_with_one_owner() -> None:
    """parse_interval: the 7-day cap of health --interval, also --watch-health's and chaos
    kill-after's; past it, or past MAX_DURATION, a DurationError."""
    assert parse_interval("7d") == 7 * 86400
    for spelling in ("8d", "99999999999999999999"):
        with pytest.raises(DurationError):
            parse_interval(spelling)
    with pytest.raises(ChaosError, match="at most"):
        parse_run_spec("kill-after=1e20")


@pytest.mark.parametrize(
    "flags",
    [
        ("--watch-health", "99999999999999999999"),
        ("--watch-health", "8d"),
        ("--chaos", "kill-after=1e20"),
    ],
)
def test_run_refuses_a_huge_watch_or_chaos_period(flags: tuple[str, str]) -> None:
    """`run --watch-health 1e20` / `--chaos kill-after=1e20`: a usage error (125) before the
    job starts; the watcher thread used to die with an OverflowError traceback while the job
    ran on unwatched."""
    result = reliactl("run", *flags, "--", "true")
    line = one_error_line(result, 125)
    assert flags[0] in line and "at most" in line, line


# ---- item 3: undecodable, empty and overflowing arguments are usage errors (2), not 125

XFF = b"\xff"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["http", "GET", b"http://u:pw@127.0.0.1:1/" + XFF], "URL: expected UTF-8 text"),
        (["http", "--breaker", XFF, "GET", "http://127.0.0.1:1/"], "--breaker: expected UTF-8"),
        (["breaker", "show", XFF], "NAME: expected UTF-8 text, got '\\xff'"),
        (["breaker", "reset", XFF], "NAME: expected UTF-8"),
        (["breaker", "trip", XFF], "NAME: expected UTF-8"),
        (["silence", "remove", XFF], "ID: expected UTF-8"),
        (["http", "--breaker", "", "GET", "http://127.0.0.1:1/"], "--breaker: expected a non-emp"),
        (["http", "--timeout", "99999999999999999999", "GET", "http://127.0.0.1:1/"], "at most"),
        (["silence", "add", "x", "--for", "1h", "--start", "+99999999999999999999"], "at most"),
        (["http", "--max-retries", "100000000000000000000", "GET", "http://x/"], "0 to 10000"),
    ],
    ids=[
        "url",
        "http-breaker",
        "breaker-show",
        "breaker-reset",
        "breaker-trip",
        "silence-remove",
        "empty-breaker",
        "http-timeout",
        "silence-start",
        "http-max-retries",
    ],
)
def test_bad_arguments_are_usage_errors_not_internal_errors(
    args: list[str | bytes], says: str
) -> None:
    """Non-UTF-8 names and URLs, an empty breaker name, durations past 100 years and a
    --max-retries past the one cap: one line and exit 2 (they were "internal error", 125:
    UnicodeEncodeError, ValueError, OverflowError; --max-retries 1e20 was taken). A URL's
    password is never shown."""
    line = one_error_line(reliactl(*args), 2)
    assert says in line and "pw" not in line, line


@pytest.mark.parametrize(
    ("flag", "fast"),
    [
        ("--breaker", "1"),
        ("--breaker", "0"),
        ("--name", "1"),
        ("--lock-name", "1"),
        ("--job", "1"),
        ("--ping", "1"),
        ("--ping-start", "0"),
    ],
)
def test_run_refuses_a_name_or_ping_url_that_is_not_utf8(
    flag: str, fast: str, tmp_path: Path
) -> None:
    """`run --breaker $'b\\xff'` (and every `run` option that names something: --name,
    --lock-name, --job, the ping URLs) is `run`'s usage error (125, one line) before anything
    runs, through the fast path and Typer alike; the job used to run without the breaker
    ("breaker unusable, running without it") or its pings, or under an unreadable name. A
    name shows the byte as \\xff; a ping URL only its scheme and host (its path is the
    monitor's credential)."""
    marker = tmp_path / "ran"
    ping = flag.startswith("--ping")
    value = b"http://u:pw@127.0.0.1:1/b" + XFF if ping else b"b" + XFF
    result = reliactl("run", flag, value, "--", "touch", str(marker), RELIACTL_FAST=fast)
    line = one_error_line(result, 125)
    shown = "'http://127.0.0.1:1/***'" if ping else "'b\\xff'"
    assert line == f"reliactl: error: {flag}: expected UTF-8 text, got {shown}", line
    assert not marker.exists()


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
@pytest.mark.parametrize("flag", ["--breaker", "--name", "--lock-name", "--job"])
def test_run_refuses_an_empty_name(flag: str, fast: str, tmp_path: Path) -> None:
    """`run --breaker ''` (and an empty --name, --lock-name or --job) is `run`'s usage error
    (125, one line naming the flag) before anything runs, through the fast path and Typer
    alike: an empty --breaker or --name ran the job as if the flag were absent, and an empty
    --lock-name or --job was refused by a later, different check. Nothing is recorded."""
    marker = tmp_path / "ran"
    result = reliactl("run", flag, "", "--", "touch", str(marker), RELIACTL_FAST=fast)
    line = one_error_line(result, 125)
    assert line == f"reliactl: error: {flag}: expected a non-empty value", line
    assert not marker.exists()
    assert reliactl("runs").stdout == ""  # the test's own state (conftest's XDG_STATE_HOME)


# ---- one wording for a duration out of its range (`_fastrt.duration_option`)

OUT_OF_RANGE = [
    (["http", "--timeout", "0", "GET", "http://127.0.0.1:1/"], 2, "--timeout", "", "0"),
    (["run", "--cpu-time", "0s", "--", "true"], 125, "--cpu-time", "", "0s"),
    (["run", "--watch-health", "8d", "--", "true"], 125, "--watch-health", "7d", "8d"),
    (["retry", "plan", "--max-elapsed", "0"], 2, "--max-elapsed", "", "0"),
    (["run", "--max-elapsed", "0s", "--", "true"], 125, "--max-elapsed", "", "0s"),
    (["serve", "--head-timeout", "2h"], 2, "--head-timeout", "1h", "2h"),
    (["health", "history", "--since", "0"], 3, "--since", "366d", "0"),
    (["cleanup", "--older-than", "0", "."], 2, "--older-than", "", "0"),
    (["breaker", "trip", "b", "--for", "0"], 2, "--for", "", "0"),
    (["health", "--watch", "--interval", "0", "--count", "1"], 3, "--interval", "7d", "0"),
    (["silence", "add", "x", "--for", "400d"], 2, "--for", "366d", "400d"),
    (["silence", "add", "x", "--for", "36501d"], 2, "--for", "366d", "36501d"),
    (["run", "--watch-health", "1e20", "--", "true"], 125, "--watch-health", "7d", "1e20"),
]


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
@pytest.mark.parametrize(
    ("args", "code", "flag", "most", "given"),
    OUT_OF_RANGE,
    ids=[" ".join(case[0][:2]) + " " + case[2] for case in OUT_OF_RANGE],
)
def test_a_duration_out_of_its_range_is_one_wording_for_every_flag(
    args: list[str], code: int, flag: str, most: str, given: str, fast: str
) -> None:
    """Every command's duration flag that has a range says so in one wording, with its
    command's usage code, on both dispatchers: "FLAG: expected a positive duration[ of at
    most B], got 'V'" (`durations.parse_bounded` through `_fastrt.duration_option`). They
    said "expected at most 7d" (run --watch-health), "expected a positive duration" with no
    value (health --interval), "the duration must be positive and at most 366d, got 400d"
    (silence add --for); past 100 years they named the 100 years, not their own bound."""
    bound = f" of at most {most}" if most else ""
    line = one_error_line(reliactl(*args, RELIACTL_FAST=fast), code)
    assert line == f"reliactl: error: {flag}: expected a positive duration{bound}, got '{given}'"


def test_parse_bounded_is_the_one_wording_of_a_range() -> None:
    """parse_bounded: 0 refused unless ``zero``, past ``most`` refused with the bound shown;
    parse_interval is it at 7d with 0 allowed."""
    from reliactl.durations import MAX_INTERVAL, parse_bounded

    assert parse_bounded("1h", most=3600) == 3600 and parse_bounded("0", zero=True) == 0
    with pytest.raises(DurationError, match=r"^expected a positive duration, got '0s'$"):
        parse_bounded("0s")
    with pytest.raises(DurationError, match=r"^expected a duration of at most 7d, got '8d'$"):
        parse_interval("8d")
    with pytest.raises(DurationError, match=r"of at most 7d, got '0'$"):
        parse_bounded("0", most=MAX_INTERVAL)
    # past 100 years too, a tighter bound is the one named (not the 100 years)
    with pytest.raises(DurationError, match=r"^expected a duration of at most 7d, got '1e20'$"):
        parse_interval("1e20")
    with pytest.raises(DurationError, match=r"at most 36500d \(100 years\), got '36501d'$"):
        parse_bounded("36501d")


def test_one_max_retries_cap_for_flags_and_configuration() -> None:
    """MAX_RETRIES (10,000) is `run`'s, `http`'s and `retry plan`'s --max-retries cap and
    retry.max_retries's: 10,000 passes, 10,001 is refused by each (`run` with its code)."""
    from reliactl._settings import MAX_RETRIES, max_retries_error
    from reliactl.config import load
    from reliactl.errors import ConfigError

    assert MAX_RETRIES == 10_000 and max_retries_error(MAX_RETRIES) is None
    assert max_retries_error(-1) and max_retries_error(MAX_RETRIES + 1)
    assert load(environ={"RELIACTL_RETRY__MAX_RETRIES": "10000"}).config.retry.max_retries == 10000
    with pytest.raises(ConfigError, match="at most 10000"):
        load(environ={"RELIACTL_RETRY__MAX_RETRIES": "10001"})
    run = reliactl("run", "--max-retries", "10001", "--", "true")
    assert "--max-retries: expected 0 to 10000" in one_error_line(run, 125)


def test_require_text_is_the_one_check_of_names() -> None:
    """require_text: UTF-8 and non-empty pass through; an undecodable byte or a control is
    shown escaped on one line, a URL's secrets as ***; `empty` allows ''."""
    from reliactl.cli._fastrt import require_text

    assert require_text("NAME", "api-ü") == "api-ü"
    assert require_text("--reason", "", empty=True) == ""
    for bad in ("", os.fsdecode(b"a\xffb")):
        with pytest.raises(SystemExit) as exc:
            require_text("NAME", bad)
        assert exc.value.code == 2


def test_http_data_that_is_not_utf8_is_sent_as_given() -> None:
    """`http -d $'\\xff' POST URL` sends the byte 0xff, as curl does (it was an internal
    error, 125, trying to encode it)."""
    with FlakyServer() as server:
        url = f"{server.url}/in"
        result = reliactl("http", "-d", b"a\xffb", "POST", url)
        assert result.returncode == 0, result.stderr
        assert [r.body for r in server.requests] == [b"a\xffb"]


# ---- item 5: help and --version to a full disk


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help"], {}),
        (["--version"], {}),
        (["run", "--help"], {}),
        (["breaker", "--help"], {"COLUMNS": "100"}),  # the Typer app's help, not the fast path's
    ],
    ids=["root-help", "version", "run-help", "typer-help"],
)
def test_help_and_version_to_a_full_disk_say_so_in_one_line(
    args: list[str], env: dict[str, str]
) -> None:
    """`reliactl --help >/dev/full` (and --version, a command's help, on either dispatcher):
    one line "cannot write to stdout: No space left on device" and exit 125, as any other
    command whose stdout is full; it was a Python traceback."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "reliactl", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
    assert result.stderr == "reliactl: error: cannot write to stdout: No space left on device\n"
    assert result.returncode == 125


# ---- item 6: health --watch --json is JSON Lines


def test_health_watch_json_is_one_compact_document_per_line() -> None:
    """`health --watch -n 2 --json`: two lines, each a whole JSON document with "version"
    (JSON Lines, DESIGN.md section 2); they were indented documents run together."""
    import json

    result = reliactl(
        "health", "--watch", "-n", "2", "-i", "10ms", "--json", "-C", "file_handles", "--no-alerts"
    )
    assert result.returncode in (0, 1, 2), result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for line in lines:
        document = json.loads(line)
        assert document["version"] == 2 and "checks" in document, document


# ---- item 7: small oddities


def test_small_cli_oddities() -> None:
    """`drill --help` shows NAME... once (it read NAME......); a missing cleanup PATH is said
    once (an error, no "nothing to do" after it); `run -- ''` exits 127 "No such file or
    directory" as `timeout ''` and `env ''` (it was 126)."""
    drill = reliactl("drill", "--help")
    assert "NAME..." in drill.stdout and "NAME...." not in drill.stdout, drill.stdout
    cleanup = reliactl("cleanup", "-l", "--older-than", "1d", "/nonexistent/reliactl-test")
    assert cleanup.returncode == 1
    assert cleanup.stderr == "reliactl: error: /nonexistent/reliactl-test: no such directory\n"
    empty = reliactl("run", "--", "")
    assert empty.returncode == 127 and "No such file or directory" in empty.stderr, empty.stderr


def test_a_silence_an_old_bug_stored_past_time_t_still_lists() -> None:
    """`silence add --start +99999999999999999999` stored its silence before failing; such a
    store must not break `silence list` for good: its times print as null ("-"), the epoch
    number stays, exit 0 (it was "internal error: OverflowError", 125, on every list)."""
    import json
    import time

    from reliactl.cli.output import iso_utc
    from reliactl.config import load
    from reliactl.health.alertstate import add_silence
    from reliactl.health.records import RecordStore
    from reliactl.state import open_state

    assert iso_utc(1e20) is None and iso_utc(0) == "1970-01-01T00:00:00Z"
    with open_state(load().config) as store:
        add_silence(RecordStore(store), "x", 3600, start=1e20, now=time.time())
    result = reliactl("silence", "list", "--json")
    assert result.returncode == 0, result.stderr
    (silence,) = json.loads(result.stdout)["silences"]
    assert silence["start_at"] is None and silence["start_at_epoch"] == 1e20
    assert reliactl("silence", "list").returncode == 0


def test_library_job_specs_meet_the_same_bounds() -> None:
    """A JobSpec (the library's `run`) meets the CLI's bounds: watch_health at most 7d,
    cpu_time at most MAX_DURATION, memory_max at most MAX_SIZE (JobSpecError, before any
    process starts); a bare RunOptions' huge watch interval waits 7d at most instead of
    killing the watcher thread."""
    from reliactl.config import Config
    from reliactl.errors import JobSpecError
    from reliactl.jobs import JobSpec, prepare_job
    from reliactl.runner import _Watcher

    for bad in ({"watch_health": 1e20}, {"cpu_time": 1e20}, {"memory_max": 2**64}):
        with pytest.raises(JobSpecError, match="at most"):
            prepare_job(JobSpec(command=("true",), **bad), Config())  # type: ignore[arg-type]
    watcher = _Watcher(lambda: None, 1e20)
    try:
        assert watcher.interval == 7 * 86400
        watcher._thread.join(0.5)  # the OverflowError ended it at once
        assert watcher._thread.is_alive()
    finally:
        watcher.close()


# ---- inputs11: blank names, one check of the retry delays, --max-elapsed's wording

BLANK_NAME = [
    (["breaker", "show", "  "], "NAME"),
    (["breaker", "reset", " "], "NAME"),
    (["breaker", "trip", "\t"], "NAME"),
    (["breaker", "close", " "], "NAME"),
    (["http", "--breaker", " ", "GET", "http://127.0.0.1:1/"], "--breaker"),
    (["silence", "add", " ", "--for", "1h"], "TARGET"),
    (["silence", "remove", " "], "ID"),
    (["alert", "ack", " "], "TARGET"),
    (["alert", "resolve", " "], "TARGET"),
]


@pytest.mark.parametrize(
    ("args", "what"), BLANK_NAME, ids=[" ".join(case[0][:2]) for case in BLANK_NAME]
)
def test_a_name_of_only_whitespace_is_refused_as_an_empty_one(args: list[str], what: str) -> None:
    """A name, target or ID of only spaces or tabs is the usage error an empty one is (exit 2,
    one line, `require_text`), the value shown: `http --breaker ' '` went through a breaker
    named ' ', `breaker show '  '` showed (and so created) one, `alert ack ' '` looked for a
    problem it could never match, `silence add ' '` said "the silence target is empty"."""
    line = one_error_line(reliactl(*args), 2)
    shown = printable_arg(args, what)
    assert line == f"reliactl: error: {what}: expected a non-empty value, got '{shown}'", line


def printable_arg(args: list[str], what: str) -> str:
    """The blank value of ``what`` in ``args``, as the error shows it (a tab as \\t)."""
    value = args[args.index(what) + 1] if what.startswith("--") else args[2]
    return value.replace("\t", "\\t")


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
@pytest.mark.parametrize("flag", ["--breaker", "--name", "--lock-name", "--job"])
def test_run_refuses_a_name_of_only_whitespace(flag: str, fast: str, tmp_path: Path) -> None:
    """`run --name ' '` (and --breaker, --lock-name, --job of only spaces or a tab) is `run`'s
    usage error (125, one line), as an empty one, before anything runs, on both dispatchers:
    --name ' ' and --breaker ' ' ran the job, recording its history or a breaker under ' '."""
    marker = tmp_path / "ran"
    result = reliactl("run", flag, " \t", "--", "touch", str(marker), RELIACTL_FAST=fast)
    line = one_error_line(result, 125)
    assert line == f"reliactl: error: {flag}: expected a non-empty value, got ' \\t'", line
    assert not marker.exists()
    assert reliactl("runs").stdout == "" and "' '" not in reliactl("breaker", "list").stdout


def test_a_name_with_spaces_around_it_is_kept_as_given() -> None:
    """Only a blank name is refused: ' nightly ' (text with spaces around it) is used exactly
    as given, not stripped and not refused, so a job history or breaker an older version
    stored under such a name stays addressable (DESIGN.md section 2)."""
    import json

    result = reliactl("run", "--name", " nightly ", "--", "true")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(reliactl("runs", "--json").stdout)["runs"]
    assert record["name"] == " nightly "


def plan_delays(*flags: str) -> list[float]:
    """The delays `retry plan --json` shows for ``flags`` (exit 0 asserted)."""
    import json

    result = reliactl("retry", "plan", "--json", "--jitter", "none", *flags)
    assert result.returncode == 0, result.stderr
    return [row["delay"] for row in json.loads(result.stdout)["schedule"]]


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
def test_run_and_retry_plan_agree_on_a_base_delay_of_0(fast: str, tmp_path: Path) -> None:
    """`--base-delay 0` (retry at once) is one value for `run`, `retry plan` and
    retry.base_delay (`_fastrt.retry_delays`, the one check): the plan shows 0ms pauses and
    run retries with them. `retry plan` refused it ("expected a positive duration") while
    `run` took it, and the configuration refused it too."""
    import json

    assert plan_delays("--base-delay", "0", "--max-retries", "2") == [0.0, 0.0]
    report = tmp_path / "report.json"
    result = reliactl(
        "run", "--base-delay", "0", "--max-retries", "2", "--jitter", "none",
        "--json-report", str(report), "--", "false", RELIACTL_FAST=fast,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    attempts = json.loads(report.read_text())["attempts"]
    assert len(attempts) == 3 and "retry 2 of 2 in 0ms" in result.stderr, result.stderr
    config = tmp_path / "retry.yaml"
    config.write_text("retry:\n  base_delay: 0s\n  max_retries: 1\n")
    assert reliactl("config", "validate", str(config)).returncode == 0
    configured = reliactl("-c", str(config), "retry", "plan", "--json", "--jitter", "none")
    assert [r["delay"] for r in json.loads(configured.stdout)["schedule"]] == [0.0]


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "typer"])
def test_run_and_retry_plan_refuse_a_max_delay_below_the_base_alike(fast: str) -> None:
    """--max-delay below --base-delay: the same line from `run` (125) and `retry plan` (2);
    run said "retry policy: max_delay (1s) must not be less than base_delay (2s)"."""
    expected = "reliactl: error: --max-delay (1s) must not be less than --base-delay (2s)"
    flags = ("--base-delay", "2s", "--max-delay", "1s")
    assert one_error_line(reliactl("run", *flags, "--", "true", RELIACTL_FAST=fast), 125) == (
        expected
    )
    assert one_error_line(reliactl("retry", "plan", *flags), 2) == expected


def test_max_elapsed_is_declared_once_with_its_none_spelling() -> None:
    """--max-elapsed reads DURATION|none in `run`'s help and in `retry plan`'s (declared once,
    `options.max_elapsed_option`), and "none" is accepted by both; `retry plan` showed
    DURATION alone and worded its refusal "or 'none'" where every duration flag has one
    wording (see test_a_duration_out_of_its_range_is_one_wording_for_every_flag)."""
    for args in (["run", "--help"], ["retry", "plan", "--help"]):
        result = reliactl(*args, COLUMNS="200")
        assert result.returncode == 0, result.stderr
        assert "--max-elapsed DURATION|none" in result.stdout, result.stdout
    assert reliactl("retry", "plan", "--max-elapsed", "none").returncode == 0
    assert reliactl("run", "--max-elapsed", "none", "--", "true").returncode == 0
