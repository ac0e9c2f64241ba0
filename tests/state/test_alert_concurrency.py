"""Issue 19: concurrent `reliactl health` processes (8 on one SQLite store; 4 "hosts" with 2
processes each on a real redis-server) send the grouped message, a repeat and an escalation
exactly once each per window and host (a host-local check is each host's own problem): the
sink's atomic decide-and-claim, not luck, makes it so."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from httpserver import CountingServer, Reply, Seen

WINDOW = 8.0  # repeat_every and escalate_after

CONFIG = """\
health_monitor:
  system_checks: []
  checks:
    - name: db
      kind: command
      command: [{python}, -c, "raise SystemExit(2)"]
    - name: queue
      kind: command
      command: [{python}, -c, "raise SystemExit(1)"]
  alerts:
    - name: hook
      kind: webhook
      url: {url}/hook
      timeout: 20s
    - name: pager
      kind: webhook
      url: {url}/pager
      timeout: 20s
alerts:
  repeat_every: {window}s
  escalate_after: {window}s
  escalate_to: [pager]
"""


def _round(cmd: list[str], envs: list[dict[str, str]]) -> float:
    """Start one process per environment at once; wait for all; the time it took."""
    started = time.monotonic()
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        for env in envs
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [2] * len(procs), errors
    return time.monotonic() - started


class TimedServer(CountingServer):
    """A CountingServer that also notes when each request arrived (wall clock)."""

    def __init__(self, **kw: object) -> None:
        self.arrived: list[float] = []
        super().__init__(**kw)  # type: ignore[arg-type]

    def _next(self, path: str, seen: Seen) -> Reply:
        with self._lock:
            self.arrived.append(time.time())
        return super()._next(path, seen)


def _messages(
    server: TimedServer, path: str, host: str | None = None
) -> list[tuple[float, list[tuple[str, str]]]]:
    """(arrival, sorted (check, kind) lines) of each message to ``path`` (from ``host``)."""
    out = []
    for at, seen in zip(server.arrived, server.requests, strict=True):
        if seen.path == path and (host is None or seen.json().get("host") == host):
            doc = seen.json()
            alerts = doc["alerts"] if doc.get("kind") == "group" else [doc]
            out.append((at, sorted((a["check"], a["kind"]) for a in alerts)))
    return out


def _once_per_window(messages: list[tuple[float, list[tuple[str, str]]]]) -> None:
    """No two messages to one sink within a window (a repeat is claimed at least WINDOW after
    the previous delivery ended, which is after it arrived)."""
    times = [at for at, _ in messages]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= WINDOW for gap in gaps), gaps


@pytest.mark.stress
def test_group_repeat_and_escalation_each_exactly_once(
    backend: str, state_env: dict[str, str], tmp_path: Path
) -> None:
    """Round 1 (all processes at once): one grouped message with both problems, nothing to
    the pager. Round 2, a window later: one grouped repeat and one escalation. Whatever the
    load, no sink gets two messages within a window about one host."""
    with TimedServer(delay=0.3) as server:  # deliveries overlap the other processes
        cfg = tmp_path / "reliactl.yaml"
        cfg.write_text(
            CONFIG.format(python=json.dumps(sys.executable), url=server.url, window=WINDOW)
        )
        cmd = [sys.executable, "-m", "reliactl", "--config", str(cfg), "health", "--quiet"]
        base = {**os.environ, **state_env}
        hosts = ["host0"] if backend == "sqlite" else [f"host{i}" for i in range(4)]
        per_host = 8 // len(hosts)  # sqlite: 8 runs of one host; redis: 2 on each of 4
        envs = [{**base, "RELIACTL_HOSTNAME": h} for h in hosts for _ in range(per_host)]
        _round(cmd, envs)  # every delivery of round 1 ends within it
        time.sleep(WINDOW + 0.5)  # everything sent in round 1 is now a window old
        _round(cmd, envs)
    for host in hosts:
        hook, pager = _messages(server, "/hook", host), _messages(server, "/pager", host)
        assert hook[0][1] == [("db", "problem"), ("queue", "problem")]
        assert hook[1][1] == [("db", "repeat"), ("queue", "repeat")]
        assert pager[0][1] == [("db", "escalation"), ("queue", "escalation")]
        assert all(lines == hook[1][1] for _, lines in hook[1:])  # later ones: repeats only
        _once_per_window(hook)
        _once_per_window(pager)
