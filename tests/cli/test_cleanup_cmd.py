"""`reliactl cleanup`: flags, output, exit codes (the engine's rules are in tests/test_cleanup*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

DAY = 86400.0


def backdate(path: Path, days: float = 3) -> Path:
    then = time.time() - days * DAY
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def tree(base: Path) -> Path:
    """old files (by mtime) a, sub/b; new file c; sub stays (it holds nothing old... but b)."""
    root = base / "tree"
    (root / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        (root / name).write_text("12345")
        backdate(root / name)
    (root / "c").write_text("new")
    return root


def test_dry_run_lists_paths_on_stdout_and_removes_nothing(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    result = run_cli("cleanup", str(root), "--older-than", "1d", "--age-by", "mtime", "--dry-run")
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.split()) == [str(root / "a"), str(root / "sub" / "b")]
    assert "would remove 2 files" in result.stderr
    assert (root / "a").exists() and (root / "sub" / "b").exists()


def test_json_dry_run_lists_exactly_what_the_real_run_removes(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    args = ("cleanup", str(root), "--older-than", "1d", "--age-by", "mtime", "--json")
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    real = run_cli(*args, "--list")
    assert real.exit_code == 0, real.output
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert dry_doc["version"] == 1 and dry_doc["dry_run"] is True and real_doc["dry_run"] is False
    assert sorted(dry_doc["roots"][0]["removed"]) == sorted(real_doc["roots"][0]["removed"])
    assert sorted(real_doc["roots"][0]["removed"]) == [str(root / "a"), str(root / "sub" / "b")]
    assert real_doc["files_removed"] == 2 and real_doc["bytes_removed"] == 10
    assert not (root / "a").exists() and (root / "c").exists()


def test_real_run_prints_a_summary_table(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    result = run_cli("cleanup", str(root), "--older-than", "1d", "--age-by", "mtime")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["ROOT", "FILES", "DIRS", "BYTES", "SKIPPED", "ERRORS"]
    assert row.split()[:3] == [str(root), "2", "0"]


def test_default_age_keeps_backdated_files(run_cli, tmp_path: Path) -> None:
    """By default ctime counts, and `touch -d` cannot set it back: nothing goes."""
    root = tree(tmp_path)
    result = run_cli("cleanup", str(root), "--older-than", "1d", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files_removed"] == 0
    assert (root / "a").exists()


def test_max_size_deletes_oldest_first(run_cli, tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    for index, name in enumerate(["old", "mid", "new"]):
        (root / name).write_text("x" * 100)
        backdate(root / name, days=0.5 - index * 0.1)
    result = run_cli(
        "cleanup", str(root), "--older-than", "7d", "--max-size", "150", "--json", "--list"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["roots"][0]
    assert doc["removed"] == [str(root / "old"), str(root / "mid")]
    assert doc["removed_for_size"] == 2 and doc["kept_bytes"] == 100


def test_include_and_exclude_flags(run_cli, tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    for name in ("a.tmp", "keep.tmp", "a.log"):
        (root / name).write_text("x")
        backdate(root / name)
    result = run_cli(
        "cleanup",
        str(root),
        "--older-than",
        "1d",
        "--age-by",
        "mtime",
        "--include",
        "*.tmp",
        "--exclude",
        "keep*",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(root / "a.tmp")]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/home"])
def test_dangerous_roots_are_refused_with_exit_2(run_cli, path: str) -> None:
    result = run_cli("cleanup", path, "--older-than", "1d", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "refusing to clean" in result.stderr and "--force-root" in result.stderr
    assert result.stdout == ""


def test_home_is_refused_unless_forced(run_cli, tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    result = run_cli("cleanup", str(home), "--older-than", "1d", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "home directory" in result.stderr
    forced = run_cli("cleanup", str(home), "--older-than", "1d", "--dry-run", "--force-root")
    assert forced.exit_code == 0, forced.output


def test_a_symlink_root_is_refused_even_when_forced(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    (tmp_path / "link").symlink_to(root)
    result = run_cli(
        "cleanup", str(tmp_path / "link"), "--older-than", "1d", "--age-by", "mtime", "--force-root"
    )
    assert result.exit_code == 2, result.output
    assert "is a symlink" in result.stderr
    assert (root / "a").exists()


def test_dotdot_is_refused(run_cli, tmp_path: Path) -> None:
    tree(tmp_path)
    result = run_cli("cleanup", f"{tmp_path}/tree/../tree", "--older-than", "1d")
    assert result.exit_code == 2, result.output
    assert "'..'" in result.stderr


def test_an_empty_path_is_refused(run_cli) -> None:
    result = run_cli("cleanup", "", "--older-than", "1d", "--force-root")
    assert result.exit_code == 2, result.output
    assert "empty path" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "soon"), "--older-than: expected a duration"),
        (("--older-than", "0"), "--older-than: expected a positive duration"),
        (("--older-than", "1d", "--age-by", "birth"), "--age-by: expected one of"),
        (("--older-than", "1d", "--max-size", "lots"), "--max-size: expected a size"),
        ((), "--older-than is required"),
    ],
)
def test_bad_flags_are_one_clean_line_and_exit_2(
    run_cli, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("cleanup", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_path_exits_1(run_cli, tmp_path: Path) -> None:
    result = run_cli("cleanup", str(tmp_path / "nope"), "--older-than", "1d")
    assert result.exit_code == 1, result.output
    assert "no such directory" in result.stderr


def test_anything_left_by_an_error_exits_1(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    stuck = root / "a"
    done = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.strip()}")
    try:
        result = run_cli("cleanup", str(root), "--older-than", "1d", "--age-by", "mtime")
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
    assert result.exit_code == 1, result.output
    assert f"{stuck}: cannot remove" in result.stderr
    assert not (root / "sub" / "b").exists()  # the rest was still cleaned


# --------------------------------------------------------------------------- configuration


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reliactl.yaml"
    path.write_text(text)
    return path


def test_configured_roots_are_cleaned_without_paths(run_cli, tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "keep-me").write_text("x")
    backdate(root / "keep-me")
    cfg = write_config(
        tmp_path,
        f"cleanup:\n  roots:\n    - path: {root}\n      max_age: 1d\n      exclude: ['keep-*']\n",
    )
    result = run_cli("--config", str(cfg), "cleanup", "--age-by", "mtime", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert sorted(doc["roots"][0]["removed"]) == [str(root / "a"), str(root / "sub" / "b")]
    assert doc["roots"][0]["skipped"] == {"excluded": 1}


def test_a_dangerous_configured_root_is_a_config_error(run_cli, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "cleanup:\n  roots:\n    - path: /etc\n")
    result = run_cli("--config", str(cfg), "cleanup", "--dry-run")
    assert result.exit_code == 78, result.output
    assert "refusing to clean /etc" in result.stderr


def test_nothing_to_clean_is_a_usage_error(run_cli) -> None:
    result = run_cli("cleanup")
    assert result.exit_code == 2, result.output
    assert "nothing to clean" in result.stderr


def test_stale_locks_flag_sweeps_run_lock_dir(run_cli, tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    record = {"pid": done.pid, "host": os.uname().nodename, "started_at": 1.0, "command": "x"}
    (locks / "gone.lock").write_text(json.dumps(record) + "\n")
    (locks / "alive.lock").write_text(
        json.dumps({**record, "pid": os.getpid(), "started_at": time.time()}) + "\n"
    )
    cfg = write_config(tmp_path, f"run:\n  lock_dir: {locks}\n")
    result = run_cli("--config", str(cfg), "cleanup", "--stale-locks", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["stale_locks"]
    assert [s["path"] for s in doc["removed"]] == [str(locks / "gone.lock")]
    assert doc["kept"] == {"holder-alive": 1}
    assert not (locks / "gone.lock").exists() and (locks / "alive.lock").exists()


def test_state_flag_prunes_old_history(run_cli, tmp_path: Path) -> None:
    from reliactl.state.base import RunRecord
    from reliactl.state.sqlite import open_store

    db = tmp_path / "state.db"
    store = open_store(db)
    old = time.time() - 90 * DAY
    store.add_run(RunRecord("job", "x", old, ended_at=old + 1, outcome="success", exit_code=0))
    store.add_run(RunRecord("job", "x", time.time(), ended_at=time.time(), outcome="success"))
    store.close()
    cfg = write_config(tmp_path, f"state:\n  path: {db}\n  retention: 30d\n")
    result = run_cli("--config", str(cfg), "cleanup", "--state", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"]["runs_removed"] == 1
    text = run_cli("--config", str(cfg), "cleanup", "--state")
    assert text.exit_code == 0, text.output
    assert "state: removed 0 runs" in text.stderr
    dry = run_cli("--config", str(cfg), "cleanup", "--state", "--dry-run")
    assert "not pruned" in dry.stderr


# --------------------------------------------------------------------------- startup cost


@pytest.mark.parametrize(
    ("args", "heavy"),
    [
        (("cleanup", "--help"), ("pydantic", "httpx", "psutil", "filelock")),
        (
            ("cleanup", "/nonexistent", "--older-than", "1d"),
            ("pydantic", "httpx", "psutil", "filelock", "rich"),
        ),
    ],
)
def test_cleanup_imports_no_heavy_modules(args: tuple[str, ...], heavy: tuple[str, ...]) -> None:
    """Help and a cron run (no terminal: no rich) import nothing they do not use."""
    code = (
        "import sys\n"
        f"sys.argv = ['reliactl', *{list(args)!r}]\n"
        "from reliactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"bad = [m for m in {heavy!r} if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stderr, result.stderr


def test_a_progress_line_is_drawn_on_a_terminal(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reliactl import cleanup as engine
    from reliactl.cli import cleanup as command

    calls: list[str] = []
    real_bar = command._Bar

    class Spy(real_bar):  # type: ignore[misc, valid-type]
        def update(self, p: object) -> None:
            calls.append("update")
            super().update(p)

    monkeypatch.setattr(command, "is_tty", lambda stream=None: True)
    monkeypatch.setattr(command, "_Bar", Spy)
    monkeypatch.setattr(engine, "PROGRESS_EVERY", 50)
    root = tmp_path / "r"
    root.mkdir()
    for index in range(120):
        (root / str(index)).write_text("")
    result = run_cli("cleanup", str(root), "--older-than", "1d", "--json")
    assert result.exit_code == 0, result.output
    assert calls == ["update", "update"]
    assert json.loads(result.stdout)["roots"][0]["scanned"] == 120


def test_no_progress_line_without_a_terminal(run_cli, tmp_path: Path) -> None:
    from reliactl.cli import cleanup as command

    assert command._progress_bar(streaming=False) is None
