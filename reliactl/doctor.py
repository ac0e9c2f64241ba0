"""Checks of the environment an operator will run reliactl in, each with a fix.

``diagnose()`` never raises for what it finds: every problem is a Finding. The CLI renders
them and exits 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass

    from reliactl.config import AlertSink, Config
else:  # dataclasses without the dataclasses module (~10 ms of `doctor`, issue 21)
    from reliactl._records import dataclass

OK, WARN, FAIL = "ok", "warn", "fail"
# The token file of examples/systemd/reliactl-serve.service (`reliactl serve --token-file`).
SERVE_TOKEN_FILE = "/etc/reliactl/serve.token"  # noqa: S105 - a path, not a secret
SERVE_TOKEN_MIN = 16  # serve refuses a shorter token file
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
    """Every check's Finding, in the order `reliactl doctor` prints them."""

    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)


def diagnose(
    config_path: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    now: float | None = None,
    serve_token_file: str = SERVE_TOKEN_FILE,
) -> DoctorReport:
    """Check config, state store, lock and log directories, completions, the clock, each
    alert sink's settings (offline) and ``reliactl serve``'s extra and token
    (``serve_token_file``, when it exists)."""
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
                "chown it to you or root and chmod go-w it (and the directory the note names),"
                " or remove it",
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
    findings.append(_check_lock_dir(config.run.lock_dir))
    findings.append(_check_dir("log directory", config.run.log_dir, "run.log_dir"))
    findings.append(_check_completions(env))
    findings.append(clock)
    findings.extend(_check_sinks(config.health_monitor.alerts, env))
    findings.append(_check_serve(env, serve_token_file))
    return DoctorReport(tuple(findings))


def _check_sinks(sinks: Sequence[AlertSink], env: Mapping[str, str]) -> list[Finding]:
    """Each alert sink's settings, offline: nothing is sent and no server is contacted
    (``health --test-alert NAME`` is the live test)."""
    if not sinks:
        return []  # the alert code (and asyncio under it) only when there is a sink to check
    from reliactl.health.alerts import Alert
    from reliactl.health.channels import settings_problems
    from reliactl.health.model import Status

    sample = Alert("reliactl-test", Status.WARNING, Status.OK, "test", "doctor", host="doctor")
    findings = []
    for sink in sinks:
        label = f"alert sink {sink.name}"
        problems = settings_problems(sink, sample, env)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            findings.append(
                Finding(
                    label,
                    FAIL,
                    f"{sink.kind}: {problems[0]}{more}",
                    "fix health_monitor.alerts (reliactl config validate), then"
                    f" reliactl health --test-alert {sink.name}",
                )
            )
        else:
            findings.append(
                Finding(
                    label,
                    OK,
                    f"{sink.kind} settings are complete (not sent: reliactl health"
                    f" --test-alert {sink.name} sends one)",
                )
            )
    return findings


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
    url = config.state.url.strip()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    from reliactl.errors import ReliactlError, StateConfigError
    from reliactl.state.ops import persistence_off, state_info

    label = "redis"
    try:
        info = state_info(config)
    except ReliactlError as exc:
        message = " ".join(str(exc).split())
        fix = (
            "fix the file the message names (a readable regular file as the message says;"
            " README: state.password_file, state.tls_ca_file), or the setting"
            if isinstance(exc, StateConfigError)
            else "check state.url and the password, that redis-server runs and that this host"
            " reaches it (reliactl state info)"
        )
        return [Finding(label, FAIL, message, fix)]
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
                "persistence is off (no RDB save, appendonly no): breaker state, history and"
                " held fleet locks do not survive a Redis restart",
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


def _check_lock_dir(path: str) -> Finding:
    """The lock directory is usable and `run --lock` does not refuse it (locks' trust rule)."""
    found = _check_dir("lock directory", path, "run.lock_dir")
    if found.status != OK or not os.path.isdir(path or "."):
        return found
    from reliactl.locks import directory_untrusted

    try:
        reason = directory_untrusted(path or ".")
    except OSError:
        return found
    if reason is None:
        return found
    return Finding(
        "lock directory",
        FAIL,
        f"{path} is {reason}; run --lock refuses it (another user could replace a held lock)",
        "chmod +t or go-w it, chown it, or set run.lock_dir",
    )


def _check_dir(label: str, path: str, setting: str) -> Finding:
    target = path or "."  # as Path("") is the current directory
    probe = target
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.lstat(target)
    except NotADirectoryError:
        return Finding(label, FAIL, f"{path} is under a file, not a directory", f"set {setting}")
    except FileNotFoundError:
        if os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK):
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
        fd, name = _probe_file(target)
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


def _probe_file(directory: str) -> tuple[int, str]:
    """A new empty file in ``directory`` (as tempfile.mkstemp, without importing tempfile and
    shutil on every doctor run): its fd and path; OSError when it cannot be created."""
    for attempt in range(100):
        name = os.path.join(directory, f".doctor-{os.getpid()}-{time.monotonic_ns()}-{attempt}")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free probe file name in {directory}")


def _check_completions(env: Mapping[str, str]) -> Finding:
    join = os.path.join
    home = env.get("HOME") or os.path.expanduser("~")
    data = env.get("XDG_DATA_HOME") or join(home, ".local", "share")
    config_home = env.get("XDG_CONFIG_HOME") or join(home, ".config")
    places = [
        "/etc/bash_completion.d/reliactl",
        "/usr/share/bash-completion/completions/reliactl",
        join(data, "bash-completion", "completions", "reliactl"),
        join(config_home, "fish", "completions", "reliactl.fish"),
        "/usr/share/zsh/site-functions/_reliactl",
        "/usr/local/share/zsh/site-functions/_reliactl",
    ]
    for place in places:
        if os.path.exists(place):
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


def _check_serve(env: Mapping[str, str], token_file: str) -> Finding:
    """`reliactl serve`: its extra installed, and its token private and long enough."""
    import importlib.util

    missing = [
        m for m in ("starlette", "uvicorn", "prometheus_client") if not importlib.util.find_spec(m)
    ]
    if missing:
        why = f"the serve extra is not installed ({', '.join(missing)} missing)"
        return Finding("serve", OK, f"{why}; only `reliactl serve` needs it")
    env_token = env.get("RELIACTL_SERVE_TOKEN", "").strip()
    if env_token and len(env_token) < SERVE_TOKEN_MIN:
        return Finding(
            "serve",
            FAIL,
            f"RELIACTL_SERVE_TOKEN is {len(env_token)} characters: easy to guess",
            f"use {SERVE_TOKEN_MIN}+ random characters (e.g. openssl rand -hex 24)",
        )
    try:
        st = os.lstat(token_file)
    except FileNotFoundError:
        mode = "a token from RELIACTL_SERVE_TOKEN" if env_token else "read-only (no token)"
        return Finding("serve", OK, f"the serve extra is installed; serve would run {mode}")
    except OSError as exc:
        return Finding("serve", WARN, f"cannot inspect {token_file}: {exc.strerror}")
    fix_mode = f"chown root {token_file} && chmod 600 {token_file} (or 640 root:GROUP)"
    if not stat.S_ISREG(st.st_mode):
        return Finding("serve", FAIL, f"{token_file} is not a regular file", fix_mode)
    from reliactl.trust import secret_untrusted

    reason = secret_untrusted(token_file, st)  # serve's own rule: it refuses the file (78)
    if reason is not None:
        return Finding(
            "serve",
            FAIL,
            f"{token_file} (serve's token, which resets and trips breakers): {reason};"
            " serve refuses it",
            fix_mode,
        )
    try:
        with open(token_file, encoding="utf-8") as fh:
            length = len(fh.readline(4096).strip())
    except (OSError, UnicodeDecodeError) as exc:
        return Finding("serve", FAIL, f"cannot read {token_file}: {exc}", fix_mode)
    if length < SERVE_TOKEN_MIN:
        return Finding(
            "serve",
            FAIL,
            f"{token_file} holds {length} characters: serve refuses a token under"
            f" {SERVE_TOKEN_MIN}",
            f"openssl rand -hex 24 > {token_file}",
        )
    return Finding("serve", OK, f"{token_file} is private (mode 0600) and long enough")
