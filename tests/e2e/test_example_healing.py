"""examples/healing.yaml works as shipped: its disk check cleans before it pages."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ehelpers import EXAMPLES, WebhookServer, reliactl

EXAMPLE = EXAMPLES / "healing.yaml"


def test_the_healing_example_validates() -> None:
    """The shipped file passes `config validate` (the action names a configured root)."""
    result = reliactl("config", "validate", "--no-env", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs), so a disk check can be driven past 90%."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], timeout=30, check=False)


def test_the_disk_check_runs_cleanup_tmp_before_it_pages(small_disk: Path, tmp_path: Path) -> None:
    """The example, pointed at a real small disk 94% full of renders: `health` runs
    cleanup:tmp (the root's size budget, oldest first), verifies the disk OK, exits 0, and
    the pager sink receives nothing."""
    renders = small_disk / "renders"
    renders.mkdir()
    for index in range(15):
        (renders / f"render-{index:02}.tmp").write_bytes(b"\0" * 512 * 1024)
    text = EXAMPLE.read_text()
    for old, new in (
        ("/var/tmp/renders", str(renders)),
        ("2GiB", "2MiB"),
        ("verify_after: 10s", "verify_after: 0s"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    with WebhookServer() as pager:
        text = text.replace("https://alerts.example.com/hook", f"{pager.url}/hook")
        cfg = tmp_path / "healing.yaml"
        cfg.write_text(text)
        result = reliactl("--config", str(cfg), "health", "--check", "renders-disk", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert [r["result"] for r in doc["remediations"]] == ["remediated"], doc
        assert doc["checks"][0]["status"] == "OK"
        assert pager.received("/hook") == []
    left = sorted(p.name for p in renders.iterdir())
    assert 0 < len(left) <= 4 and left[-1] == "render-14.tmp", left
