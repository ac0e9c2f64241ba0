"""The C contain shim (reliactl/_containshim, issue 21): Contained starts it with posix_spawn
instead of forking reliactl, when it is there, and it behaves as runner._shim does: the same
exec errors, PATH search, exit status, stdin, signals and descriptors for the program.
Otherwise (not built, built from other source, turned off) the fork of reliactl is used."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl import runner
from tests.containshims import c_shim_required, shim  # noqa: F401 - shim: the fixture

REPO = Path(__file__).resolve().parent.parent
PARENT_EXE = "import os; print(os.path.basename(os.readlink(f'/proc/{os.getppid()}/exe')))"


def run(argv: list[str], stdin: bytes | None = None) -> tuple[int | None, bytes]:
    return runner.Contained(argv, stdin).communicate(30, 100_000)


def test_the_c_shim_is_the_one_used_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """With reliactl/_containshim built (CI requires it: RELIACTL_REQUIRE_CONTAIN_SHIM=1),
    the program's parent is that executable; RELIACTL_CONTAIN_SHIM=0 (the operator's off
    switch) makes it a fork of reliactl (the Python shim) again."""
    monkeypatch.delenv(runner.CONTAIN_SHIM_ENV, raising=False)
    if runner.contain_shim() is None:
        if c_shim_required():
            pytest.fail("RELIACTL_REQUIRE_CONTAIN_SHIM=1 and reliactl/_containshim is not there")
        pytest.skip("the C shim is not built here (no C compiler at install)")
    program = runner.Contained([sys.executable, "-c", PARENT_EXE])
    assert program.shim == "c"
    assert program.communicate(30, 1000) == (0, b"_containshim\n")
    monkeypatch.setenv(runner.CONTAIN_SHIM_ENV, "off")
    program = runner.Contained([sys.executable, "-c", PARENT_EXE])
    assert program.shim == "python"
    code, output = program.communicate(30, 1000)
    assert code == 0 and output != b"_containshim\n", output


def test_a_missing_stale_or_unrunnable_shim_is_not_used(tmp_path: Path) -> None:
    """The executable is used only if it is there, executable, and built from the
    _containshim.c beside it (a checkout updated without reinstalling keeps an old build:
    its embedded sha256 no longer matches); an install without the .c trusts its build."""
    here = tmp_path / "pkg"
    here.mkdir()
    assert runner._find_contain_shim(str(here)) is None  # never built
    source = (REPO / "reliactl" / "_containshim.c").read_bytes()
    built = runner.contain_shim() or ""
    if not built:
        pytest.skip("the C shim is not built here")
    shutil.copy(built, here / "_containshim")
    (here / "_containshim.c").write_bytes(source)
    assert runner._find_contain_shim(str(here)) == str(here / "_containshim")
    (here / "_containshim.c").write_bytes(source + b"/* changed */\n")
    assert runner._find_contain_shim(str(here)) is None  # stale
    (here / "_containshim.c").unlink()
    assert runner._find_contain_shim(str(here)) == str(here / "_containshim")
    (here / "_containshim").chmod(0o644)
    assert runner._find_contain_shim(str(here)) is None  # not executable
    (here / "_containshim").write_bytes(b"#!/bin/sh\nexit 0\n")
    (here / "_containshim").chmod(0o755)
    assert runner._find_contain_shim(str(here)) is None  # not a build of ours


@pytest.mark.usefixtures("shim")
def test_both_shims_start_programs_and_report_errors_alike(tmp_path: Path) -> None:
    """Per shim: exit status and signal, stdin, stdout+stderr; not found on PATH and an empty
    name (FileNotFoundError), a file without x (PermissionError); PATH searched as execvp does
    (a non-executable match is passed over for a later one), a script without #! run by sh."""
    assert run(["sh", "-c", "cat; echo err >&2; exit 3"], b"in\n") == (3, b"in\nerr\n")
    assert run(["sh", "-c", "kill -TERM $$"]) == (-signal.SIGTERM, b"")
    with pytest.raises(FileNotFoundError):
        run(["reliactl-no-such-program-xyz"])
    with pytest.raises(FileNotFoundError):
        run([""])
    plain = tmp_path / "plain"
    plain.write_text("echo no\n")
    with pytest.raises(PermissionError):
        run([str(plain)])
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "prog").write_text("echo wrong\n")  # not executable: passed over
    (second / "prog").write_text("echo from b $1\n")  # no #!: run by /bin/sh
    (second / "prog").chmod(0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{first}:{second}:{path}"
    try:
        assert run(["prog", "x"]) == (0, b"from b x\n")
    finally:
        os.environ["PATH"] = path


def program_signals(monkeypatch: pytest.MonkeyPatch, value: str) -> dict[str, str]:
    monkeypatch.setenv(runner.CONTAIN_SHIM_ENV, value)
    code, out = run(["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd"])
    assert code == 0, out
    fields = dict(line.split(":\t") for line in out.decode().splitlines() if ":\t" in line)
    fields["fds"] = " ".join(sorted(line for line in out.decode().splitlines() if ":" not in line))
    return fields


def test_both_shims_give_the_program_the_same_signals_and_descriptors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What reliactl ignores (here SIGUSR2) stays ignored, SIGPIPE is back at its default,
    nothing is blocked, and only 0-2 are open (ls's own directory fd aside): the same from
    the C shim as from the Python one."""
    if runner.contain_shim() is None:
        pytest.skip("the C shim is not built here")
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        python = program_signals(monkeypatch, "0")
        c = program_signals(monkeypatch, "1")
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert python == c
    ignored = int(c["SigIgn"], 16)
    assert ignored & (1 << (signal.SIGUSR2 - 1)) and not ignored & (1 << (signal.SIGPIPE - 1))
    assert int(c["SigBlk"], 16) == 0
    assert c["fds"] == "0 1 2 3", c


def test_the_c_shim_gets_its_descriptors_when_reliactl_has_them_low() -> None:
    """In a process with nothing open above stderr, Contained's pipes are fds 3 and up, the
    very numbers the shim's report pipe and lifeline are moved to: they are moved without
    one overwriting another (the program still runs, its output and status come back)."""
    if runner.contain_shim() is None:
        pytest.skip("the C shim is not built here")
    script = (
        "from reliactl.runner import Contained\n"
        "p = Contained(['sh', '-c', 'read x; echo got $x; exit 4'], b'in\\n')\n"
        "print(p.shim, p.communicate(30, 1000))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != runner.CONTAIN_SHIM_ENV}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout == "c (4, b'got in\\n')\n", out.stdout + out.stderr


def test_the_build_makes_the_shim_or_goes_on_without_it(tmp_path: Path) -> None:
    """hatch_build.build_shim with no usable compiler builds nothing, does not fail and
    removes an older build; with the compiler it makes an executable that reliactl accepts
    (its embedded source hash matches the .c beside it)."""
    sys.path.insert(0, str(REPO))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(REPO))
    pkg = tmp_path / "reliactl"
    pkg.mkdir()
    shutil.copy(REPO / "reliactl" / "_containshim.c", pkg)
    (pkg / "_containshim").write_bytes(b"an older build")
    assert hatch_build.build_shim(tmp_path, cc=["/nonexistent/cc"]) is None
    assert hatch_build.build_shim(tmp_path, cc=["false"]) is None
    assert [p.name for p in pkg.iterdir()] == ["_containshim.c"]
    if shutil.which("gcc") is None and not c_shim_required():
        return
    assert hatch_build.build_shim(tmp_path, cc=["gcc"]) == "reliactl/_containshim"
    assert runner._find_contain_shim(str(pkg)) == str(pkg / "_containshim")


def test_a_nul_byte_in_an_argument_is_reported_as_the_python_shim_does() -> None:
    """posix_spawn refuses an argument with a NUL byte before the C shim exists: Contained
    falls back to the fork of reliactl (and says so), whose shim reports it (OSError
    EINVAL), rather than raising ValueError from the constructor."""
    program = runner.Contained(["sh", "-c", "echo a\0b"])
    assert program.shim == "python"
    with pytest.raises(OSError, match="null byte"):
        program.communicate(30, 1000)


def test_the_build_hook_ships_the_shim_in_a_wheel_and_builds_it_for_editable(
    tmp_path: Path,
) -> None:
    """hatch_build's hook (what `pip install .` and `pip install -e .` run): for a wheel
    the shim is an artifact beside the C walk (the wheel is then platform-specific); for an
    editable install it is built in the checkout, where the .pth points, and not listed."""
    if shutil.which("gcc") is None and not c_shim_required():
        pytest.skip("no C compiler here")
    sys.path.insert(0, str(REPO))
    try:
        import hatch_build
    finally:
        sys.path.remove(str(REPO))
    pkg = tmp_path / "reliactl"
    pkg.mkdir()
    for name in ("_containshim.c", "_cleanupwalk.c"):
        shutil.copy(REPO / "reliactl" / name, pkg)
    hook = hatch_build.CustomBuildHook.__new__(hatch_build.CustomBuildHook)
    hook.root = str(tmp_path)
    editable: dict[str, object] = {"artifacts": []}
    hook.initialize("editable", editable)
    assert editable["artifacts"] == [] and os.access(pkg / "_containshim", os.X_OK)
    wheel: dict[str, object] = {"artifacts": []}
    hook.initialize("standard", wheel)
    assert "reliactl/_containshim" in wheel["artifacts"]  # type: ignore[operator]
    assert wheel["pure_python"] is False
    assert runner._find_contain_shim(str(pkg)) == str(pkg / "_containshim")
