"""Every shell block of README.md marked runnable runs as a newcomer pastes it, exits as the
marker says, and prints what the README shows under it.

Convention: a fenced block whose info string is ``sh``, on the line right after a marker

    <!-- test: run -->              expect exit 0
    <!-- test: run exit=69 -->      expect exit 69
    <!-- test: run timeout=120 -->  allow 120 s (default 60 s)

A plain fenced block (no info string) that follows it, with only blank lines between, is its
output: what the block prints (stdout and stderr, in order) must equal it once times,
durations, pids and the home directory are normalised (``normalise``).

The blocks run one after another in one "terminal": a fresh copy of the repository as the
starting directory (what a newcomer has after a clone and the set-up), one private HOME and
XDG tree for all of them, this venv's bin directory first on PATH (so ``reliactl`` is the
console script of the interpreter running the tests), and the working directory carried from
one block to the next as an interactive shell would (a block may ``cd``). Nothing else is
set: no ``$REPO``. Blocks that create a venv or pip-install (the set-up block) need minutes
and a package index: they run alone, in their own copy, with the stress tests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2ehelpers import REPO, copy_repository, default_signals, shell_env

README = REPO / "README.md"
MARKER = re.compile(r"^<!--\s*test:\s*run((?:\s+[a-z]+=\S+)*)\s*-->\s*$")
ANY_MARKER = re.compile(r"<!--\s*test:")
OPTION = re.compile(r"([a-z]+)=(\S+)")
SLOW = re.compile(r"pip install|-m venv\b")
DEFAULT_TIMEOUT = 60.0
SLOW_TIMEOUT = 900.0


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the block's first line of code
    code: str
    exit: int = 0
    timeout: float = DEFAULT_TIMEOUT
    expected: str | None = None  # the output block under it, if any

    @property
    def slow(self) -> bool:
        return bool(SLOW.search(self.code))


def parse(text: str) -> tuple[list[Block], list[str]]:
    """The marked blocks of a Markdown text, and every problem with a marker (by line)."""
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not ANY_MARKER.search(line):
            i += 1
            continue
        where = f"README.md:{i + 1}"
        match = MARKER.match(line.strip())
        if match is None:
            problems.append(f"{where}: not a marker of the form <!-- test: run [exit=N] -->")
            i += 1
            continue
        options = dict(OPTION.findall(match.group(1)))
        unknown = sorted(set(options) - {"exit", "timeout"})
        if unknown:
            problems.append(f"{where}: unknown marker option(s) {', '.join(unknown)}")
        try:
            expected = int(options.get("exit", "0"))
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            problems.append(f"{where}: exit= must be an integer and timeout= a number")
            i += 1
            continue
        fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if fence != "```sh":
            problems.append(f"{where}: the marker must be followed at once by a ```sh block")
            i += 1
            continue
        end = i + 2
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            problems.append(f"{where}: the ```sh block is never closed")
            break
        code = "\n".join(lines[i + 2 : end]) + "\n"
        if not code.strip():
            problems.append(f"{where}: the marked block is empty")
        else:
            if SLOW.search(code) and "timeout" not in options:
                timeout = SLOW_TIMEOUT
            shown, after = _output_block(lines, end + 1)
            blocks.append(
                Block(line=i + 3, code=code, exit=expected, timeout=timeout, expected=shown)
            )
            end = after - 1
        i = end + 1
    return blocks, problems


def _output_block(lines: list[str], start: int) -> tuple[str | None, int]:
    """The plain fenced block starting at ``start`` (after blank lines), and the line after it."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != "```":
        return None, start
    end = i + 1
    while end < len(lines) and lines[end].strip() != "```":
        end += 1
    return "\n".join(lines[i + 1 : end]) + "\n", end + 1


TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:ms|s|m|h|d)(?:\d+(?:ms|s|m))*\b")
PID = re.compile(r"\bpid \d+")
README_HOME = "/home/you"


def normalise(text: str, home: str) -> str:
    """Output as the README shows it: times, durations and pids as placeholders, the home
    directory as /home/you (also inside lock names, escaped as reliactl.locks escapes paths), runs
    of spaces
    (table padding, which depends on path lengths) as one, path listings sorted."""
    from reliactl.locks import encode_name

    for real, shown in ((home, README_HOME), (encode_name(home), encode_name(README_HOME))):
        text = text.replace(real, shown)
    text = TIME.sub("<time>", text)
    text = PID.sub("pid <pid>", text)
    text = DURATION.sub("<duration>", text)
    lines = [re.sub(r" +", " ", line).rstrip() for line in text.splitlines()]
    # A listing of paths (cleanup --dry-run) follows the directory's own order, which depends
    # on the filesystem: consecutive lines that are paths compare sorted.
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("/") and " " not in line:
            run.append(line)
            continue
        out += sorted(run)
        run = []
        out.append(line)
    return "\n".join(out[:-1])


def _readme() -> str:
    return README.read_text(encoding="utf-8") if README.exists() else ""


BLOCKS, PROBLEMS = parse(_readme())


def test_readme_markers_are_well_formed() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)


def test_readme_has_runnable_blocks() -> None:
    assert BLOCKS, (
        "README.md has no block marked runnable: put a line `<!-- test: run -->` (or "
        "`<!-- test: run exit=N -->`) right before each ```sh block that must work verbatim, "
        "the quick-start block first"
    )


def _run(code: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run ``code`` with bash -e -o pipefail in ``cwd``: (exit, output, directory it ended in)."""
    where = cwd.parent / f".cwd-{os.getpid()}-{id(code)}"
    wrapped = f"trap 'pwd > \"$_README_CWD\"' EXIT\n{code}"
    proc = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", wrapped],
        cwd=cwd,
        env=dict(env, _README_CWD=str(where)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole block, background jobs included
        output, _ = proc.communicate()
        return -1, output + f"\n[still running after {timeout:g}s]", str(cwd)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing the block started outlives it
        except ProcessLookupError:
            pass
    ended = where.read_text().strip() if where.exists() else str(cwd)
    return proc.returncode, output, ended


def _newcomer_env(home: Path) -> dict[str, str]:
    env = shell_env(HOME=str(home))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "REPO"):
        env.pop(var, None)  # as a newcomer's shell: the defaults under HOME
    for var in list(env):
        if var.startswith("RELIACTL_"):
            del env[var]
    return env


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[int, str, str]]:
    """Every quick block, in README order, in one terminal: line -> (exit, output, home)."""
    base = tmp_path_factory.mktemp("readme")
    clone = copy_repository(base / "reliactl")
    home = base / "home"
    home.mkdir()
    env = _newcomer_env(home)
    cwd = clone
    results: dict[int, tuple[int, str, str]] = {}
    for block in BLOCKS:
        if block.slow:
            continue
        code, output, ended = _run(block.code, Path(cwd), env, block.timeout)
        results[block.line] = (code, output, str(home))
        cwd = Path(ended)
    return results


def _quick_params() -> list[object]:
    return [pytest.param(b, id=f"line{b.line}") for b in BLOCKS if not b.slow]


@pytest.mark.parametrize("block", _quick_params())
def test_readme_block(block: Block, tour: dict[int, tuple[int, str, str]]) -> None:
    """The block, pasted after the ones before it, exits as its marker says and prints the
    output the README shows under it."""
    code, output, home = tour[block.line]
    assert code == block.exit, (
        f"README.md:{block.line}: exit {code}, the marker expects {block.exit}\n"
        f"--- block\n{block.code}--- output\n{output}"
    )
    if block.expected is not None:
        assert normalise(output, home) == normalise(block.expected, home), (
            f"README.md:{block.line}: the output differs from the README's\n"
            f"--- README\n{block.expected}--- real run\n{output}"
        )


@pytest.mark.stress
@pytest.mark.parametrize(
    "block", [pytest.param(b, id=f"line{b.line}") for b in BLOCKS if b.slow] or [None]
)
def test_readme_setup_block(block: Block | None, tmp_path: Path) -> None:
    """A set-up block (venv, pip install) runs in a fresh copy of the repository."""
    if block is None:
        pytest.skip("README.md has no set-up block")
    clone = copy_repository(tmp_path / "reliactl")
    home = tmp_path / "newcomer"
    home.mkdir()
    code, output, _ = _run(block.code, clone, _newcomer_env(home), block.timeout)
    assert code == block.exit, f"README.md:{block.line}: exit {code}\n{output}"


# ------------------------------------------------------------------ the parser itself


def test_parse_finds_marked_blocks_with_their_exit_code() -> None:
    text = (
        "# t\n\n<!-- test: run -->\n```sh\necho one\n```\n\n```sh\nunmarked\n```\n"
        "<!-- test: run exit=69 timeout=5 -->\n```sh\nfalse\ntrue\n```\n"
    )
    blocks, problems = parse(text)
    assert problems == []
    assert blocks == [
        Block(line=5, code="echo one\n"),
        Block(line=13, code="false\ntrue\n", exit=69, timeout=5.0),
    ]


def test_parse_takes_the_plain_block_under_a_marked_one_as_its_output() -> None:
    """Only a plain fence (no info string), after blank lines at most, is a block's output."""
    text = (
        "<!-- test: run -->\n```sh\necho hi\n```\n\n```\nhi\n```\n"
        "<!-- test: run -->\n```sh\ntrue\n```\nprose\n```\nnot output\n```\n"
    )
    blocks, problems = parse(text)
    assert problems == []
    assert [b.expected for b in blocks] == ["hi\n", None]


def test_normalise_hides_what_changes_between_runs_and_nothing_else() -> None:
    """Times, durations, pids, the home directory (also as a lock name), padding and the
    order of a path listing go; words, codes and counts stay."""
    real = (
        "2026-01-02T03:04:05.678Z reliactl: retry 1 of 3 in 385ms (pid 4242)\n"
        "lock /root/x/.local/state/reliactl/locks/root-x-t-job.sh.lock\n"
        "ideasheets  open   5   1m30s\n"
    )
    assert normalise(real, "/root/x") == (
        "<time> reliactl: retry 1 of 3 in <duration> (pid <pid>)\n"
        "lock /home/you/.local/state/reliactl/locks/home-you-t-job.sh.lock\n"
        "ideasheets open 5 <duration>"
    )
    assert normalise("exit 69", "/h") != normalise("exit 75", "/h")
    assert normalise("/h/b\n/h/a\ndone", "/h") == normalise("/h/a\n/h/b\ndone", "/h")


def test_parse_reports_markers_that_would_be_ignored() -> None:
    text = (
        "<!-- test: run -->\n\n```sh\nx\n```\n"  # a blank line in between
        "<!-- test: run -->\n```bash\nx\n```\n"  # not sh
        "<!-- test: runn -->\n```sh\nx\n```\n"  # a typo
        "<!-- test: run exit=x -->\n```sh\nx\n```\n"
        "<!-- test: run exits=1 -->\n```sh\nx\n```\n"
    )
    blocks, problems = parse(text)
    assert [p.split(":")[1] for p in problems] == ["1", "6", "10", "14", "18"], problems
    assert len(blocks) == 1  # the one with an unknown option still runs, and is reported


def test_install_blocks_are_slow() -> None:
    blocks, _ = parse("<!-- test: run -->\n```sh\npython3 -m venv .venv && pip install -e .\n```\n")
    assert blocks[0].slow and blocks[0].timeout == SLOW_TIMEOUT
