"""One job, one lock; two jobs, two locks (issue 13, lock identity).

The default lock name is an injective encoding of the job's identity (the real path of the
program, or of the script behind `env` and interpreters), so it depends neither on how the job
is invoked nor on the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl import locks


def test_paths_that_used_to_collide_get_different_locks(tmp_path: Path) -> None:
    """`/srv/app_backup/run` vs `/srv/app/backup_run`, `my job.sh` vs `my_job.sh`: distinct."""
    pairs = [("app_backup/run", "app/backup_run"), ("my job.sh", "my_job.sh"), ("a-b", "a/b")]
    for left, right in pairs:
        names = []
        for rel in (left, right):
            script = tmp_path / rel
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text("#!/bin/sh\n")
            script.chmod(0o755)
            names.append(locks.lock_name_for([str(script)]))
        assert names[0] != names[1], (left, right, names)


@pytest.mark.parametrize(
    "identity",
    ["/srv/app_backup/run", "/srv/app/backup_run", "/a-b", "/a/b", "/a%2fb", "/.x", "/é", "x"],
)
def test_encoding_is_injective_on_tricky_inputs(identity: str) -> None:
    """Every name decodes to exactly one identity: no two of these share a name."""
    others = ["/srv/app_backup/run", "/srv/app/backup_run", "/a-b", "/a/b", "/a%2fb", "/.x", "/é"]
    names = {locks.encode_name(i) for i in [*others, "\0x"]}
    assert len(names) == len(others) + 1
    name = locks.encode_name(identity)
    assert not name.startswith(".") and "/" not in name


def test_every_way_of_invoking_one_script_is_one_lock(tmp_path: Path) -> None:
    """./job.sh, /abs/job.sh, sh job.sh, bash -x job.sh, env TZ=UTC job.sh from any cwd."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "job.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    other = tmp_path / "elsewhere"
    other.mkdir()
    code = (
        "import json, os, sys\n"
        "from reliactl.locks import derive_lock_name\n"
        "print(json.dumps(derive_lock_name(json.loads(sys.argv[1]))))\n"
    )
    invocations = [
        (bindir, ["./job.sh"]),
        (other, [str(script)]),
        (bindir, ["sh", "job.sh"]),
        (other, ["sh", "../bin/job.sh"]),
        (other, ["bash", "-x", str(script), "arg"]),
        (other, ["env", "TZ=UTC", f"PATH={bindir}:/usr/bin:/bin", "job.sh"]),
        (other, ["env", "-C", str(bindir), "TZ=UTC", "sh", "job.sh"]),
        (tmp_path, ["env", "-u", "HOME", "TZ=UTC", "./bin/job.sh"]),
    ]
    import json

    results = set()
    for cwd, argv in invocations:
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(argv)],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        name, ambiguous = json.loads(out)
        assert ambiguous is None, (argv, ambiguous)
        results.add(name)
    assert results == {locks.encode_name(os.path.realpath(script))}


def test_inline_code_and_missing_programs_are_flagged_ambiguous() -> None:
    """`sh -c ...` and an unknown program get a name and a reason to use --lock-name."""
    name, why = locks.derive_lock_name(["sh", "-c", "./x"])
    assert why is not None and "inline code" in why and "%00" in name
    name, why = locks.derive_lock_name(["python3", "-m", "http.server"])
    assert why is not None
    _, why = locks.derive_lock_name(["no-such-program-xyz"])
    assert why is not None and "not found" in why


def test_run_warns_when_the_derived_lock_name_is_ambiguous(tmp_path: Path) -> None:
    """`run --lock sh -c ...` says the name may be ambiguous; --lock-name silences it."""
    base = [sys.executable, "-m", "reliactl", "run"]
    result = subprocess.run(
        [*base, "--lock", "sh", "-c", "exit 0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "may be ambiguous" in result.stderr and "--lock-name" in result.stderr
    named = subprocess.run(
        [*base, "--lock-name", "x", "sh", "-c", "exit 0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert named.returncode == 0 and "ambiguous" not in named.stderr


def test_skip_if_locked_no_longer_skips_an_unrelated_job(tmp_path: Path) -> None:
    """With `/srv/app_backup/run` holding its lock, `/srv/app/backup_run` still runs."""
    a = tmp_path / "app_backup" / "run"
    b = tmp_path / "app" / "backup_run"
    ready = tmp_path / "ready"
    marker = tmp_path / "b-ran"
    for path, body in ((a, f"touch {ready}; sleep 30"), (b, f"touch {marker}")):
        path.parent.mkdir(parents=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    holder = subprocess.Popen(
        [sys.executable, "-m", "reliactl", "run", "--lock", str(a)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if ready.exists():
                break
            import time

            time.sleep(0.05)
        assert ready.exists()
        second = subprocess.run(
            [sys.executable, "-m", "reliactl", "run", "--skip-if-locked", str(b)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 0, second.stderr
        assert marker.exists(), second.stderr
    finally:
        holder.kill()
        holder.wait()


def test_an_empty_lock_name_is_refused(tmp_path: Path) -> None:
    """`--lock-name ""` is a bad option (125), not a silent fallback to the derived name."""
    marker = tmp_path / "ran"
    result = subprocess.run(
        [sys.executable, "-m", "reliactl", "run", "--lock-name", "", "touch", str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 125, result.stderr
    assert result.stderr == "reliactl: error: --lock-name: expected a non-empty value\n"
    assert not marker.exists()
