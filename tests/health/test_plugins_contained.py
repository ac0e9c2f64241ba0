"""Programs run on a check's or an alert sink's behalf (Nagios plugins, `command` sinks) are
contained as `run` contains its job: at their timeout they and every descendant die, also
ones that called setsid and were orphaned (double fork); when reliactl dies, even by
kill -9, they die too. Real processes, pid files as markers; bounds only detect hangs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runhelpers import alive, default_signals, reliactl_cmd, wait_file, wait_for

from reliactl.config import AlertSink, CheckSpec, HealthMonitorConfig
from reliactl.health.alerts import AlertManager
from reliactl.health.checks import custom_check, kill_running_programs, run_program
from reliactl.health.model import HealthMetric, HealthReport, Status
from reliactl.health.monitor import RecordStore, run_checks
from reliactl.runner import CONTAIN_SHIM_ENV
from reliactl.state.sqlite import open_store
from tests.containshims import shim, shim_of  # noqa: F401 - shim: the fixture

pytestmark = pytest.mark.usefixtures("shim")

GONE_WITHIN = 15.0  # generous: only a hang (or a survivor) fails


def escaping_plugin(tmp_path: Path, then: str = "exec sleep 60") -> list[str]:
    """A plugin that writes its pid, double-forks a grandchild into a session of its own
    (setsid, orphaned at once: not a descendant of the plugin any more) that writes its pid
    and sleeps, waits until that grandchild is there, then runs ``then``."""
    me, grand = tmp_path / "plugin.pid", tmp_path / "grand.pid"
    script = (
        f"echo $$ > {me}; "
        f"( setsid sh -c 'echo $$ > {grand}; exec sleep 60' </dev/null >/dev/null 2>&1 & ); "
        f"while [ ! -s {grand} ]; do sleep 0.01; done; {then}"
    )
    return ["sh", "-c", script]


def pids(tmp_path: Path) -> tuple[int, int]:
    return int(wait_file(tmp_path / "plugin.pid")), int(wait_file(tmp_path / "grand.pid"))


def kill_9_and_check(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Once the plugin and its escaped grandchild run (their pid files), kill -9 ``proc``
    (a reliactl process running them): both must be gone, and the plugin must have run under
    the shim this test is for."""
    try:
        plugin, grand = pids(tmp_path)
        assert shim_of(plugin) == ("python" if os.environ.get(CONTAIN_SHIM_ENV) == "0" else "c")
        proc.kill()
        proc.wait(60)
        assert_gone(plugin, grand)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_gone(*targets: int) -> None:
    """Every pid is gone (a zombie awaiting its reaper counts as gone) within the bound; a
    survivor is killed so it cannot outlive the test, and fails it."""
    if wait_for(lambda: not any(alive(pid) for pid in targets), GONE_WITHIN, 0.05):
        return
    survivors = [pid for pid in targets if alive(pid)]
    for pid in survivors:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    pytest.fail(f"still running: {survivors}")


def test_a_plugin_past_its_timeout_dies_with_its_setsid_double_forked_grandchild(
    tmp_path: Path,
) -> None:
    """A command check whose plugin escapes into a new session through a double fork and
    sleeps past the check's timeout: UNKNOWN "timed out", and neither the plugin nor the
    escaped grandchild is left running (a killpg of the plugin's group missed the
    grandchild, which stayed under init for its whole 60 s)."""
    spec = CheckSpec(name="c", kind="command", command=escaping_plugin(tmp_path), timeout=2.0)
    report = asyncio.run(run_checks([custom_check(spec, HealthMonitorConfig())], RecordStore()))
    metric = report.metrics["c"]
    assert metric.status is Status.UNKNOWN and "timed out" in metric.message, metric
    assert_gone(*pids(tmp_path))


def test_what_a_plugin_leaves_running_is_killed_when_it_exits(tmp_path: Path) -> None:
    """A plugin that starts an escaping daemon (setsid, double fork, output elsewhere) and
    exits OK at once: its status and output are reported as they are, and the daemon is
    killed rather than left behind by every health run."""
    code, output = run_program(escaping_plugin(tmp_path, then="echo 'OK - fine'; exit 0"), 30)
    assert (code, output) == (0, "OK - fine\n")
    assert_gone(*pids(tmp_path))


def test_a_command_sink_past_its_timeout_dies_with_its_escaped_grandchild(
    tmp_path: Path,
) -> None:
    """A `command` alert sink that escapes the same way and hangs: the delivery fails as
    timed out, and the sink's program and its setsid'd grandchild are both gone."""
    sink = AlertSink(name="cmd", kind="command", command=escaping_plugin(tmp_path), timeout=2.0)
    store = RecordStore(open_store(tmp_path / "state.db"))
    manager = AlertManager([sink], store, host="testhost")  # real clocks: one 2 s deadline
    metric = HealthMetric("disk", Status.CRITICAL, 97.5, "disk is critical", unit="%")
    report = HealthReport(Status.CRITICAL, {"disk": metric}, time.time(), 0.0)
    (outcome,) = asyncio.run(manager.process(report))
    assert not outcome.delivered and "timed out" in (outcome.error or ""), outcome
    assert_gone(*pids(tmp_path))


def test_kill_running_programs_kills_the_escaped_grandchild_too(tmp_path: Path) -> None:
    """What `health` does on SIGTERM/SIGHUP/Ctrl-C: every running program dies at once with
    everything it started, also a grandchild in a session of its own; the waiting call then
    returns its result (killed: exit status -9) without waiting for its timeout."""
    import threading

    result: list[tuple[int | None, str]] = []
    waiter = threading.Thread(
        target=lambda: result.append(run_program(escaping_plugin(tmp_path), 120))
    )
    waiter.start()
    plugin, grand = pids(tmp_path)
    assert kill_running_programs() == 1
    waiter.join(GONE_WITHIN)
    assert not waiter.is_alive() and result and result[0][0] == -signal.SIGKILL, result
    assert_gone(plugin, grand)


def health_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "reliactl.yaml"
    command = json.dumps(escaping_plugin(tmp_path))
    cfg.write_text(
        "health_monitor:\n  system_checks: []\n  checks:\n"
        f"    - {{name: plugin, kind: command, timeout: 120s, command: {command}}}\n"
    )
    return cfg


def kill9_while_the_plugin_runs(tmp_path: Path, *argv: str) -> None:
    """Start reliactl (a real process), wait for its plugin and the escaped grandchild, kill -9
    reliactl: both must be gone within the bound. The plugin runs under the fixture's shim."""
    cfg = health_config(tmp_path)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        reliactl_cmd("--config", str(cfg), *argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=default_signals,
    )
    kill_9_and_check(proc, tmp_path)


def test_kill_9_of_health_kills_its_plugin_and_the_escaped_grandchild(tmp_path: Path) -> None:
    """kill -9 of `reliactl health` while a plugin runs: the plugin and its setsid'd,
    orphaned grandchild die too (the shim's lifeline reads EOF); they used to run on under
    PID 1 for as long as they liked."""
    kill9_while_the_plugin_runs(tmp_path, "health")


@pytest.mark.stress
@pytest.mark.parametrize(
    "argv",
    [
        ("health", "--watch", "--interval", "1s"),
        ("run", "--require-healthy", "--", "true"),
        ("run", "--watch-health", "1s", "--", "sleep", "60"),
    ],
    ids=["health-watch", "run-require-healthy", "run-watch-health"],
)
def test_kill_9_of_every_command_running_plugins(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """The same for every command that runs health checks: `health --watch`, `run
    --require-healthy` (the gate) and `run --watch-health` (checks in a thread beside the
    job): kill -9 of reliactl leaves neither the plugin nor its escaped grandchild."""
    kill9_while_the_plugin_runs(tmp_path, *argv)


def test_the_plugin_gets_default_signals_and_no_descriptor_of_reliactl(tmp_path: Path) -> None:
    """The plugin starts as from a shell: stdin /dev/null, SIGPIPE and SIGTERM at their
    defaults, nothing open above stderr (no pipe of reliactl or of another plugin)."""
    code, output = run_program(
        [
            sys.executable,
            "-c",
            "import os, signal; print(os.path.realpath('/proc/self/fd/0'),"
            " signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,"
            " sorted(int(f) for f in os.listdir('/proc/self/fd')))",
        ],
        30,
    )
    assert code == 0, output
    # Python's own listdir fd is the one above 2
    path, default, fds = output.split(" ", 2)
    assert path == "/dev/null" and default == "True", output
    assert len(json.loads(fds)) == 4, output


def delivering_sink(tmp_path: Path, redirect: str = "</dev/null >/dev/null 2>&1") -> list[str]:
    """A sink as exim's `sendmail -odb` (or `notify.sh &`): spool stdin, start a background
    delivery (its pid in deliver.pid) that waits for the test's `go` file (bounded: 30 s),
    copies the spool to `delivered`, and exit 0 once it runs. ``redirect``: the background
    process's stdio (empty: it keeps the sink's output pipe open)."""
    spool, go, done, pid = (tmp_path / n for n in ("spool", "go", "delivered", "deliver.pid"))
    script = (
        f"cat > {spool}; "
        f"( echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; i=0; "
        f"while [ ! -e {go} ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; "
        f"cp {spool} {done}.tmp; mv {done}.tmp {done} ) {redirect} & "
        f"while [ ! -s {pid} ]; do sleep 0.01; done; echo queued; exit 0"
    )
    return ["sh", "-c", script]


def test_a_command_sinks_background_delivery_is_left_running(tmp_path: Path) -> None:
    """Review (medium): a `command` alert sink that hands the alert to a background process
    and exits 0 (exim's default sendmail/mail, `notify.sh &`) is delivered: the background
    process is not killed when the sink exits (it was SIGKILLed ~50 ms later, so the alert was
    reported delivered and never sent). Through AlertManager's real send path."""
    sink = AlertSink(name="mail", kind="command", command=delivering_sink(tmp_path), timeout=30)
    store = RecordStore(open_store(tmp_path / "state.db"))
    manager = AlertManager([sink], store, host="testhost")
    metric = HealthMetric("disk", Status.CRITICAL, 97.5, "disk is critical", unit="%")
    report = HealthReport(Status.CRITICAL, {"disk": metric}, time.time(), 0.0)
    (outcome,) = asyncio.run(manager.process(report))
    assert outcome.delivered, outcome
    deliverer = int(wait_file(tmp_path / "deliver.pid"))
    (tmp_path / "go").touch()  # only now: it must have outlived the sink and its shim
    delivered = wait_file(tmp_path / "delivered", GONE_WITHIN)
    assert "disk is critical" in delivered and delivered == (tmp_path / "spool").read_text()
    assert_gone(deliverer)


def test_a_sinks_background_child_holding_the_output_neither_delays_nor_dies(
    tmp_path: Path,
) -> None:
    """A sink whose background child keeps the output pipe open (no redirection): the call
    returns once the sink exits, with what the sink wrote, without waiting for the child
    (it waits for a file the test writes only after the call returned), and the child runs
    on to finish its work."""
    code, output = run_program(
        delivering_sink(tmp_path, redirect=""), 30, stdin=b"alert\n", leave_running=True
    )
    assert (code, output) == (0, "queued\n")
    deliverer = int(wait_file(tmp_path / "deliver.pid"))
    (tmp_path / "go").touch()
    assert wait_file(tmp_path / "delivered", GONE_WITHIN) == "alert\n"
    assert_gone(deliverer)


def test_a_leave_running_program_past_its_timeout_still_dies_with_its_grandchild(
    tmp_path: Path,
) -> None:
    """leave_running lets go only of a program that exited on its own: one that hangs past
    its timeout is killed with its setsid'd, double-forked grandchild, as before."""
    code, _ = run_program(escaping_plugin(tmp_path), 2.0, stdin=b"{}", leave_running=True)
    assert code is None
    assert_gone(*pids(tmp_path))


def test_kill_9_of_reliactl_while_a_sink_runs_kills_it_and_its_grandchild(
    tmp_path: Path,
) -> None:
    """kill -9 of the reliactl process while a leave_running sink still runs (it has not
    exited, so nothing was let go): the lifeline reads EOF without an `L`, and the sink and
    its escaped grandchild die."""
    code = (
        "import sys\nfrom reliactl.health.checks import run_program\n"
        "run_program(sys.argv[1:], 120, stdin=b'{}', leave_running=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *escaping_plugin(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=default_signals,
    )
    kill_9_and_check(proc, tmp_path)


def test_a_check_plugins_background_process_is_still_killed(tmp_path: Path) -> None:
    """Only alert sinks leave what they started: a command check whose plugin starts the
    same background process and exits OK has it killed (a plugin's daemon would otherwise be
    left behind by every health run), so it never gets to deliver."""
    spec = CheckSpec(name="c", kind="command", command=delivering_sink(tmp_path), timeout=30)
    report = asyncio.run(run_checks([custom_check(spec, HealthMonitorConfig())], RecordStore()))
    assert report.metrics["c"].status is Status.OK, report.metrics["c"]
    deliverer = int(wait_file(tmp_path / "deliver.pid"))
    assert_gone(deliverer)
    (tmp_path / "go").touch()
    assert not (tmp_path / "delivered").exists()


def test_feeding_a_program_whose_stdin_lost_its_reader_never_raises_sigpipe() -> None:
    """Writing a program's stdin after the shim exited (it holds the pipe's read end as fd 0
    and closes it first when it exits, a moment before the output pipe: a poll in between
    sees only the stdin pipe's POLLERR) must not kill a caller with SIGPIPE at its default
    (a library user's choice; the CLI ignores SIGPIPE). That moment is made lasting here:
    the stdin pipe is swapped for one whose reader is gone. It was exit -13 (SIGPIPE)."""
    code = (
        "import os, signal\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from reliactl.runner import Contained\n"
        "c = Contained(['sleep', '30'], b'x' * 100000)\n"
        "r, w = os.pipe()\nos.close(r)\nos.dup2(w, c._in_w)\nos.close(w)\n"
        "print(c.communicate(0.5, 100))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (0, "(None, b'')\n"), done


def test_releasing_a_shim_that_already_exited_never_raises_sigpipe(tmp_path: Path) -> None:
    """A leave_running program that leaves nothing: its shim exits by itself, often before
    reliactl writes `L` on the lifeline. A caller with SIGPIPE at its default (a library
    user's choice) must not be killed by that write (exit 141 within a few hundred runs)."""
    code = (
        "import signal, sys\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from reliactl.runner import Contained\n"
        "for i in range(150):\n"
        "    result = Contained(['true'], leave_running=True).communicate(30, 1000)\n"
        "    assert result == (0, b''), (i, result)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done
