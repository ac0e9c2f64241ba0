"""reliactl run on a terminal feels like the bare command (issue 12, part 2).

A real pty (Python's pty module) runs an interactive bash with job control; reliactl runs in
it as the user would type it. The command's group gets the terminal (tcsetpgrp), so Ctrl-C
and Ctrl-Z reach it, /dev/tty opens, and a background run that reads the terminal stops.
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import wait_for

RELIACTL = f"{shlex.quote(sys.executable)} -m reliactl run --no-history"
PROMPT = "PROMPT> "


class Shell:
    """An interactive bash on a fresh pty."""

    def __init__(self) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child execs
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN):
                signal.signal(sig, signal.SIG_DFL)
            env = {**os.environ, "PS1": PROMPT, "TERM": "dumb", "PROMPT_COMMAND": ""}
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.pid, self.fd = pid, fd
        self.pending = b""
        self.expect(PROMPT)

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout: float = 30.0) -> str:
        """Everything up to and including ``pattern`` (the timeout only detects a hang)."""
        deadline = time.monotonic() + timeout
        while pattern.encode() not in self.pending:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no {pattern!r} in {self.pending[-800:]!r}")
            try:
                self.pending += os.read(self.fd, 4096)
            except OSError as exc:
                raise AssertionError(f"pty closed: {self.pending[-800:]!r}") from exc
        end = self.pending.index(pattern.encode()) + len(pattern)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen.decode("utf-8", "replace")

    def run(self, line: str) -> str:
        self.send(line + "\n")
        return self.expect(PROMPT)

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def shell() -> Iterator[Shell]:
    sh = Shell()
    try:
        yield sh
    finally:
        sh.close()


def state(pid: int) -> tuple[str, int]:
    """(state letter, ppid) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def test_ctrl_c_stops_a_shell_loop_at_the_first_run(shell: Shell, tmp_path: Path) -> None:
    """Ctrl-C reaches the command (its group has the terminal), and reliactl then dies by
    SIGINT, so bash ends the loop as it does for the bare command; $? is 130."""
    started = tmp_path / "started"
    shell.send(
        f"for i in 1 2 3; do {RELIACTL} sh -c 'touch {started}; sleep 20'; echo iter$i; done\n"
    )
    assert wait_for(started.exists, timeout=30)
    time.sleep(0.2)
    shell.send("\x03")
    out = shell.expect(PROMPT)
    assert "stopped by SIGINT" in out
    assert "iter1" not in out  # the loop did not go on to the next run
    assert "rc=130" in shell.run("echo rc=$?")


def test_the_command_can_open_dev_tty(shell: Shell) -> None:
    """The command is in reliactl's session, not a new one: /dev/tty is its terminal."""
    out = shell.run(f"{RELIACTL} sh -c 'echo via-tty > /dev/tty'; echo rc=$?")
    assert "via-tty" in out and "rc=0" in out, out


def test_ctrl_z_stops_reliactl_and_the_command_and_fg_resumes_both(
    shell: Shell, tmp_path: Path
) -> None:
    """Ctrl-Z stops the command and reliactl together (the shell reports the job stopped);
    `fg` continues both and the run finishes normally."""
    pidfile = tmp_path / "cmd"
    shell.send(f"{RELIACTL} sh -c 'echo $$ > {pidfile}; sleep 2; echo fin''ished'\n")
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", timeout=30)
    command = int(pidfile.read_text())
    time.sleep(0.2)
    shell.send("\x1a")
    out = shell.expect(PROMPT)
    assert "Stopped" in out, out
    shim = state(command)[1]
    reliactl = state(shim)[1]
    assert wait_for(lambda: state(reliactl)[0] == "T", timeout=10)
    time.sleep(2.5)  # longer than the command's sleep: stopped, it cannot have finished
    assert state(command)[0] == "T"
    assert "finished" not in shell.run("true")
    out = shell.run("fg; echo rc=$?")
    assert "finished" in out and "rc=0" in out, out


def test_a_background_run_that_reads_the_terminal_stops_until_fg(shell: Shell) -> None:
    """`reliactl run cmd &` reading the terminal gets SIGTTIN (stopped, "tty input")
    instead of stealing the shell's input; `fg` gives it the terminal."""
    shell.run(f"{RELIACTL} sh -c 'read x; echo got:$x' &")
    assert wait_for(lambda: "Stopped" in shell.run("jobs"), timeout=30, step=0.3)
    shell.send("fg\n")
    time.sleep(0.5)
    shell.send("typed\n")
    shell.expect("got:typed")
    assert "succeeded" in shell.expect(PROMPT)
    assert "rc=0" in shell.run("echo rc=$?")


def test_a_pipeline_peer_keeps_the_terminal(shell: Shell) -> None:
    """`reliactl run cmd | less`: reliactl shares its group with the pager, so the terminal
    is not taken from that group (the pager reading it would be stopped)."""
    peer = "sh -c 'read line; read typed < /dev/tty; echo \"peer:$line:$typed\"'"
    shell.send(f"{RELIACTL} sh -c 'echo out' | {peer}\n")
    time.sleep(1.0)
    shell.send("kb\n")
    out = shell.expect(PROMPT)
    assert "peer:out:kb" in out, out
    assert "Stopped" not in out


def test_ctrl_c_in_a_script_stops_the_script_too(shell: Shell, tmp_path: Path) -> None:
    """Inside a script the terminal's SIGINT reaches the script's shell as with the bare
    command: the script does not go on to its next line."""
    started = tmp_path / "started"
    script = tmp_path / "job.sh"
    script.write_text(f"{RELIACTL} sh -c 'touch {started}; sleep 20'\necho after-the-run\n")
    shell.send(f"bash {script}\n")
    assert wait_for(started.exists, timeout=30)
    time.sleep(0.2)
    shell.send("\x03")
    out = shell.expect(PROMPT)
    assert "after-the-run" not in out, out
    assert "rc=130" in shell.run("echo rc=$?")


def test_a_script_prompt_on_the_terminal_gets_the_typed_answer(shell: Shell) -> None:
    """A command inside a script that asks on /dev/tty (a password prompt) is given the
    terminal when it reads, instead of being stopped."""
    shell.send(
        f"bash -c \"{RELIACTL} sh -c 'read answer < /dev/tty; echo got:\\$answer'; echo done\"\n"
    )
    time.sleep(1.0)
    shell.send("yes\n")
    out = shell.expect(PROMPT)
    assert "got:yes" in out and "done" in out, out
