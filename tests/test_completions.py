from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"


def test_committed_completions_match_the_current_app() -> None:
    """A new command or option without regenerated completions fails here."""
    result = subprocess.run(
        [sys.executable, str(COMPLETIONS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def complete_bash(*words: str) -> list[str]:
    script = (
        f"source {COMPLETIONS / 'reliactl.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_reliactl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_subcommands_and_options() -> None:
    assert complete_bash("reliactl", "con") == ["config"]
    assert complete_bash("reliactl", "--config", "x.yaml", "config", "va") == ["validate"]
    assert complete_bash("reliactl", "config", "validate", "--j") == ["--json"]
