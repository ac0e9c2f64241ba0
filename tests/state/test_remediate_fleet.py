"""Healing across hosts: two `health` runs that share only the state store (SQLite file or
Redis) and have separate lock directories remediate one check once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.stress
def test_two_hosts_sharing_the_store_remediate_once(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    """ "Hosts" a and b (RELIACTL_HOSTNAME, a lock directory each, so no file lock is shared)
    see the check CRITICAL at once; the claim in the shared store lets exactly one run the
    (slow) remediation; the other reports busy or the fix made meanwhile."""
    count, go = tmp_path / "count", tmp_path / "go"
    cfg = tmp_path / "reliactl.yaml"
    cfg.write_text(
        f"""health_monitor:
  system_checks: []
  jobs_checks: false
  checks:
    - name: flag
      kind: command
      command: [/bin/sh, -c, "test -e {tmp_path}/fixed || exit 2"]
      remediate:
        command: [/bin/sh, -c, "echo run >> {count}; sleep 1; touch {tmp_path}/fixed"]
        verify_after: 0s
"""
    )
    procs = []
    for host in ("a", "b"):
        env = {
            **os.environ,
            **state_env,
            "RELIACTL_HOSTNAME": f"host-{host}",
            "RELIACTL_RUN__LOCK_DIR": str(tmp_path / f"locks-{host}"),
        }
        start = (
            f"while [ ! -e {go} ]; do sleep 0.01; done; "
            f"exec {sys.executable} -m reliactl --config {cfg} health --json"
        )
        procs.append(
            subprocess.Popen(["/bin/sh", "-c", start], stdout=subprocess.PIPE, text=True, env=env)
        )
    time.sleep(0.5)
    go.touch()
    docs = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert count.read_text().splitlines() == ["run"]
    results = sorted(r["result"] for d in docs for r in d["remediations"])
    assert "remediated" in results and set(results) <= {"remediated", "remediation busy"}
