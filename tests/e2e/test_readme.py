"""Every shell block of README.md marked runnable runs, and exits as the marker says.

Convention: a fenced block whose info string is ``sh``, on the line right after a marker

    <!-- test: run -->              expect exit 0
    <!-- test: run exit=69 -->      expect exit 69
    <!-- test: run timeout=120 -->  allow 120 s (default 60 s)

Each marked block runs with ``bash -e -o pipefail -c BLOCK`` in a fresh copy of the
repository (what a newcomer has after a clone), with a private HOME and XDG dirs, this venv's
bin directory first on PATH (so ``reliactl`` is the console script of the interpreter running
the tests) and ``$REPO`` set to the copy's root. Blocks that create a venv or pip-install
(the set-up block) need minutes and a package index: they run with the stress tests.
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
            blocks.append(Block(line=i + 3, code=code, exit=expected, timeout=timeout))
        i = end + 1
    return blocks, problems


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


def _params() -> list[object]:
    return [
        pytest.param(
            block, id=f"line{block.line}", marks=[pytest.mark.stress] if block.slow else []
        )
        for block in BLOCKS
    ]


@pytest.mark.parametrize("block", _params())
def test_readme_block(block: Block, tmp_path: Path) -> None:
    """The block runs in a fresh copy of the repository and exits as its marker says."""
    clone = copy_repository(tmp_path / "reliactl")
    proc = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", block.code],
        cwd=clone,
        env=shell_env(REPO=str(clone)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        output, _ = proc.communicate(timeout=block.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole block, background jobs included
        output, _ = proc.communicate()
        pytest.fail(f"README.md:{block.line}: still running after {block.timeout:g}s\n{output}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing the block started outlives it
        except ProcessLookupError:
            pass
    assert proc.returncode == block.exit, (
        f"README.md:{block.line}: exit {proc.returncode}, the marker expects {block.exit}\n"
        f"--- block\n{block.code}--- output\n{output}"
    )


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
