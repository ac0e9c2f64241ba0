"""The exit-code table has one source (cli/exitcodes.py): --help, README.md and DESIGN.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl.cli.exitcodes import EXIT_CODE_TABLE, codes, markdown_table

REPO = Path(__file__).resolve().parents[2]
TABLE = re.compile(r"^\| code \| meaning \|\n(?:\|.*\|\n)+", re.M)


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("document", ["README.md", "docs/DESIGN.md"])
def test_the_documents_carry_the_table_of_the_code(document: str) -> None:
    """README.md and DESIGN.md show exactly cli/exitcodes.py's table, so neither drifts."""
    text = (REPO / document).read_text(encoding="utf-8")
    found = TABLE.findall(text)
    assert found == [markdown_table()], f"{document}: paste reliactl.cli.exitcodes.markdown_table()"


def test_help_prints_every_row_of_the_table() -> None:
    """`reliactl --help` (plain text when piped) lists every code with its meaning."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    shown = _words(result.stdout)
    for code, meaning in EXIT_CODE_TABLE:
        assert _words(f"{code}: {meaning.replace('`', '')}") in shown


def test_every_distinct_exit_code_is_in_the_table() -> None:
    """Each number the enum names appears in the table (137 and 128+N in their rows)."""
    documented = " ".join(f"{code} {meaning}" for code, meaning in EXIT_CODE_TABLE)
    for member in codes().values():
        assert re.search(rf"\b{int(member)}\b", documented), member


def test_run_help_lists_its_own_exit_statuses_with_69() -> None:
    """`run --help` names every status run itself can end with, 69 (breaker open) too."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = _words(result.stdout)
    for code in ("124", "137", "125", "126/127", "128+N", "69", "75"):
        assert re.search(rf"(?<![\w+/]){re.escape(code)}(?![\w/])", shown), code
    assert "69 not run: the --breaker is open" in shown


def test_run_delay_help_says_it_bounds_the_first_pause_under_jitter() -> None:
    """--delay is the upper bound of the first pause under (default, full) jitter, and says so."""
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = _words(result.stdout)
    assert "upper bound of the first pause" in shown
