"""Checks of the environment an operator will run reliactl in, each with a fix.

``diagnose()`` never raises for what it finds: every problem is a Finding. The CLI renders
them and exits 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reliactl.config import Config

OK, WARN, FAIL = "ok", "warn", "fail"
# No state store, log or lock file written by this reliactl can predate this (2024-01-01).
EARLIEST_SANE_EPOCH = 1_704_067_200.0


@dataclass(frozen=True)
class Finding:
    """One thing checked: its status (ok, warn, fail), what was found and how to fix it."""

    check: str
    status: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)


def diagnose(
    config_path: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    now: float | None = None,
) -> DoctorReport:
    """Check config, state store, lock and log directories, completions and the clock."""
    from reliactl.config import config_candidates, find_config_file, load
    from reliactl.errors import ConfigError

    env = dict(os.environ if environ is None else environ)
    findings: list[Finding] = []
    notes: list[str] = []
    found, how = find_config_file(config_path, env, notes)
    for note in notes:
        findings.append(
            Finding(
                "config trust",
                WARN,
                note,
                "chown it to you or root and chmod go-w it (and its directory), or remove it",
            )
        )
    try:
        loaded = load(config_path, environ=env)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else None
        findings.append(
            Finding(
                "config",
                FAIL,
                f"{found}: {len(exc.problems)} problem(s), first: {first}",
                f"run: reliactl config validate {found or ''}".rstrip(),
            )
        )
        config = load(None, environ=env, use_env=False, search=False).config
    else:
        config = loaded.config
        if found is None:
            places = ", ".join(str(p) for p in config_candidates(env))
            findings.append(
                Finding(
                    "config",
                    WARN,
                    f"no configuration file; using the defaults (looked in {places})",
                    "reliactl config init  # writes ./reliactl.yaml with every option",
                )
            )
        else:
            findings.append(Finding("config", OK, f"{found} is valid (found by {how})"))

    clock = _check_clock(config.state.path, time.time() if now is None else now)  # before writing
    findings.append(_check_state(config.state.path, config.state.max_history))
    findings.extend(_check_redis(config))
    findings.append(_check_dir("lock directory", config.run.lock_dir, "run.lock_dir"))
    findings.append(_check_dir("log directory", config.run.log_dir, "run.log_dir"))
    findings.append(_check_completions(env))
    findings.append(clock)
    return DoctorReport(tuple(findings))


def _check_state(path: str, max_rows: int) -> Finding:
    from reliactl.errors import StateError
    from reliactl.state import open_sqlite_store

    warnings: list[str] = []
    try:
        store = open_sqlite_store(path, max_rows=max_rows, warn=warnings.append)
    except StateError as exc:
        return Finding("state store", FAIL, str(exc), "set state.path to a writable location")
    try:
        problems = store.check()
        version = store.schema_version()
        store.update("kv", "doctor", lambda _: {"checked_at": time.time()})
    except StateError as exc:
        return Finding("state store", FAIL, str(exc), "set state.path to a writable location")
    finally:
        store.close()
    if problems:
        return Finding(
            "state store",
            FAIL,
            f"{path}: integrity check failed: {problems[0]}",
            f"move {path} aside; reliactl starts a fresh one",
        )
    if warnings:
        return Finding("state store", WARN, warnings[0], "nothing to do: a fresh store is in use")
    return Finding("state store", OK, f"{path} is writable and healthy (schema {version})")


MIN_REDIS_MAJOR = 6


def _check_redis(config: Config) -> list[Finding]:
    """With a Redis state.url: it answers, is 6 or newer, keeps data over a restart, never
    evicts, and this host has nothing left queued."""
    from reliactl.errors import ReliactlError
    from reliactl.state.ops import persistence_off, state_info

    url = config.state.url.strip()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    label = "redis"
    try:
        info = state_info(config)
    except ReliactlError as exc:
        message = " ".join(str(exc).split())
        return [
            Finding(
                label,
                FAIL,
                message,
                "check state.url and the password, that redis-server runs and that this host"
                " reaches it (reliactl state info)",
            )
        ]
    server = info.server
    version = str(server.get("version", "?"))
    findings = []
    major = version.split(".", maxsplit=1)[0]
    if major.isdigit() and int(major) < MIN_REDIS_MAJOR:
        findings.append(
            Finding(
                label,
                FAIL,
                f"{info.location}: Redis {version} is older than {MIN_REDIS_MAJOR}",
                f"upgrade to Redis (or Valkey) {MIN_REDIS_MAJOR} or newer",
            )
        )
    else:
        findings.append(
            Finding(label, OK, f"{info.location}: Redis {version}, {info.latency_ms:.1f} ms")
        )
    if persistence_off(server):
        findings.append(
            Finding(
                "redis persistence",
                WARN,
                "persistence is off (no RDB save, appendonly no): fencing tokens and breaker"
                " state do not survive a Redis restart",
                "set appendonly yes (CONFIG SET appendonly yes, and in redis.conf)",
            )
        )
    policy = str(server.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction" and not policy.startswith("volatile"):
        findings.append(
            Finding(
                "redis eviction",
                WARN,
                f"maxmemory-policy is {policy}: Redis may evict breaker state and history",
                "set maxmemory-policy noeviction",
            )
        )
    if info.queued:
        findings.append(
            Finding(
                "state queue",
                WARN,
                f"{info.queued} runs/events recorded while Redis was away are not shipped yet",
                "reliactl state sync",
            )
        )
    return findings


def _check_dir(label: str, path: str, setting: str) -> Finding:
    target = Path(path)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.lstat(target)
    except NotADirectoryError:
        return Finding(label, FAIL, f"{path} is under a file, not a directory", f"set {setting}")
    except FileNotFoundError:
        if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
            return Finding(label, OK, f"{path} will be created on first use")
        return Finding(
            label,
            FAIL,
            f"{path} does not exist and {probe} is not writable",
            f"create it, or set {setting}",
        )
    if stat.S_ISLNK(st.st_mode):
        return Finding(
            label, WARN, f"{path} is a symbolic link", f"point {setting} at the real directory"
        )
    if not stat.S_ISDIR(st.st_mode):
        return Finding(label, FAIL, f"{path} is not a directory", f"set {setting}")
    try:
        fd, name = tempfile.mkstemp(dir=target, prefix=".doctor-")
    except OSError as exc:
        return Finding(
            label,
            FAIL,
            f"{path} is not writable: {exc.strerror}",
            f"fix its permissions or set {setting}",
        )
    os.close(fd)
    os.unlink(name)
    return Finding(label, OK, f"{path} is writable")


def _check_completions(env: Mapping[str, str]) -> Finding:
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    places = [
        Path("/etc/bash_completion.d/reliactl"),
        Path("/usr/share/bash-completion/completions/reliactl"),
        data / "bash-completion" / "completions" / "reliactl",
        config_home / "fish" / "completions" / "reliactl.fish",
        Path("/usr/share/zsh/site-functions/_reliactl"),
        Path("/usr/local/share/zsh/site-functions/_reliactl"),
    ]
    for place in places:
        if place.exists():
            return Finding("completions", OK, f"installed at {place}")
    return Finding(
        "completions",
        WARN,
        "shell completions are not installed",
        "cp completions/reliactl.bash ~/.local/share/bash-completion/completions/reliactl"
        "  (zsh: completions/reliactl.zsh as _reliactl in $fpath; fish: completions/reliactl.fish"
        " in ~/.config/fish/completions/)",
    )


def _check_clock(state_path: str, now: float) -> Finding:
    if now < EARLIEST_SANE_EPOCH:
        return Finding(
            "clock",
            FAIL,
            f"the wall clock says {time.strftime('%Y-%m-%d', time.gmtime(now))}, before this"
            " reliactl was built",
            "set the clock (timedatectl set-ntp true)",
        )
    newest = 0.0
    for suffix in ("", "-wal"):
        try:
            newest = max(newest, os.stat(state_path + suffix).st_mtime)
        except OSError:
            continue
    if newest - now > 300:
        return Finding(
            "clock",
            WARN,
            f"the state store was written {int(newest - now)}s in the future: the clock went back",
            "check NTP (timedatectl status); breakers and cooldowns tolerate the jump",
        )
    return Finding("clock", OK, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
