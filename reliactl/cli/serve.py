"""`reliactl serve`: checks every interval and serves the dashboard, /healthz, /metrics, the API."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Annotated

from reliactl.cli.exitcodes import ExitCode

if TYPE_CHECKING:
    import typer

INSTALL_HINT = "pip install 'reliactl[serve]'"


def typer_names() -> None:
    """Give ``serve``'s (string) annotations ``typer``, evaluated when Typer registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``serve()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names as give

    give(globals())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(path: str | None) -> str | None:
    from reliactl.doctor import SERVE_TOKEN_MIN
    from reliactl.errors import ConfigError, ConfigProblem

    if path is None:
        token = os.environ.get("RELIACTL_SERVE_TOKEN", "").strip()
        if token and len(token) < SERVE_TOKEN_MIN:  # as short a token file is refused
            message = f"the token must be at least {SERVE_TOKEN_MIN} characters"
            problem = ConfigProblem("environment", None, "", message, "RELIACTL_SERVE_TOKEN")
            raise ConfigError([problem])
        return token or None
    from reliactl.trust import secret_untrusted

    try:  # O_NONBLOCK: a FIFO is refused below, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, encoding="utf-8") as fh:
            reason = secret_untrusted(path, os.fstat(fd))
            if reason is not None:  # as --config from another user, as ssh's private keys
                message = (
                    f"{path}: {reason}; refused (chown it to this user or root, chmod 600 (or"
                    " 640 with a group of readers) it and go-w its directory)"
                )
                problem = ConfigProblem("command line", None, "--token-file", message)
                raise ConfigError([problem])
            token = fh.readline(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        message = f"cannot read {path}: {why}"
        raise ConfigError([ConfigProblem("command line", None, "--token-file", message)]) from None
    if len(token) < SERVE_TOKEN_MIN:
        message = f"{path}: the token must be at least {SERVE_TOKEN_MIN} characters"
        raise ConfigError([ConfigProblem("command line", None, "--token-file", message)])
    return token


def _positive_duration(flag: str, text: str, most: float) -> float:
    """``text`` as seconds, positive and at most ``most`` (one line and exit 2 otherwise)."""
    from reliactl.cli._fastrt import duration_option

    return duration_option(flag, text, most=most)


def _limits(max_connections: int, head_timeout: str) -> float:
    """--max-connections and --head-timeout checked (one line, exit 2); the deadline in s."""
    from reliactl.cli.output import error

    if not 1 <= max_connections <= 1_000_000:
        error(f"--max-connections: expected 1 to 1000000, got {max_connections}")
        raise SystemExit(ExitCode.USAGE)
    return _positive_duration("--head-timeout", head_timeout, 3600)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", help="TCP port to listen on.")
    ] = 9464,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            "-i",
            metavar="DURATION",
            help="Run the checks this often (default: health_monitor.check_interval, 1m).",
        ),
    ] = None,
    token_file: Annotated[
        str | None,
        typer.Option(
            "--token-file",
            metavar="PATH",
            help="A private file (yours or root's, mode 600) whose first line is the token"
            " that writes (breaker reset/trip) need (default: $RELIACTL_SERVE_TOKEN; without"
            " one, serve is read-only).",
        ),
    ] = None,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Access log lines as JSON objects.")
    ] = False,
    stale_after: Annotated[
        str | None,
        typer.Option(
            "--stale-after",
            metavar="DURATION",
            help="/healthz answers 503 (UNKNOWN, stale) when no check round has finished for"
            " this long (default: 3 intervals, at least 1m).",
        ),
    ] = None,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            metavar="N",
            help="Open connections at most (lowered to fit the descriptor limit); beyond it"
            " the oldest connection still sending its request head is dropped, so a probe"
            " still gets through.",
        ),
    ] = 1000,
    head_timeout: Annotated[
        str,
        typer.Option(
            "--head-timeout",
            metavar="DURATION",
            help="Close a connection that has not sent a complete request head this long"
            " after connecting or after its previous answer was read (slow or idle clients),"
            " or that reads none of its answer for this long.",
        ),
    ] = "10s",
) -> None:
    """Run the checks every interval (alerts and cooldowns as `health --watch`) and serve
    the dashboard (/), /healthz (200 OK/WARNING, 503 CRITICAL/UNKNOWN; ?check=NAME), /livez,
    /metrics (Prometheus: checks, breakers, jobs, rate limiters, alert deliveries), and
    /api/health, /api/breakers, /api/runs, /api/jobs, /api/history (the CLI's --json
    documents). /healthz and /livez answer from memory, never waiting on the state store.
    Read-only unless a token is configured; a non-loopback --host needs one.
    Needs pip install 'reliactl[serve]'. TERM finishes the round in progress, then stops;
    examples/systemd/reliactl-serve.service runs it."""
    from reliactl.cli.context import app_context
    from reliactl.cli.output import error, info, report_error
    from reliactl.durations import MAX_INTERVAL
    from reliactl.errors import ConfigError, ReliactlError

    if not 0 < port < 65536:
        error(f"--port: expected 1 to 65535, got {port}")
        raise SystemExit(ExitCode.USAGE)
    period = None if interval is None else _positive_duration("--interval", interval, MAX_INTERVAL)
    stale = (
        0.0
        if stale_after is None
        else _positive_duration("--stale-after", stale_after, MAX_INTERVAL)
    )
    head_deadline = _limits(max_connections, head_timeout)
    try:
        import httptools  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        error(f"serve needs the serve extra ({exc.name} is missing): {INSTALL_HINT}")
        raise SystemExit(ExitCode.CONFIG) from None
    app_ctx = app_context(ctx)
    try:
        token = _read_token(token_file)
    except ConfigError as exc:  # one line, not report_error's "configuration invalid" too
        error(str(exc))
        raise SystemExit(ExitCode.CONFIG) from None
    try:
        if not _loopback(host) and token is None:
            error(
                f"--host {host} is not a loopback address: refused without a token (anyone"
                " who can reach it could see every check); set --token-file or"
                " RELIACTL_SERVE_TOKEN, or bind 127.0.0.1 behind a reverse proxy"
            )
            raise SystemExit(ExitCode.USAGE)
        loaded = app_ctx.loaded()
        store = app_ctx.store()
    except ReliactlError as exc:
        raise SystemExit(report_error(exc)) from None

    from reliactl.cli.web.app import build_app
    from reliactl.cli.web.core import Service
    from reliactl.cli.web.guard import Guard, guarded_server
    from reliactl.health.monitor import HealthMonitor

    config = loaded.config
    monitor = HealthMonitor(config.health_monitor, store=store, full_config=config)
    service = Service(
        config,
        store,
        monitor,
        period or config.health_monitor.check_interval,
        token=token,
        stale_after=stale,
    )
    from reliactl.cli.web.stderrlog import install

    # From here on a line never waits for stderr's reader (the loop answers the probes);
    # uvicorn's log handlers, made below, take this stream too. An error that ends serve is
    # written after the drain below: install() drains again at exit (the same budget).
    queued = install()
    try:
        guard = Guard(max_connections, head_deadline)
        asgi = build_app(service, json_logs=json_logs, guard=guard)
        mode = "read-write (token set)" if token else "read-only"
        info(f"serving on http://{host}:{port}/ ({mode}); checks every {service.interval:g}s")
        server = guarded_server(asgi, host, port, guard)
        if guard.max_connections < max_connections:
            info(
                f"at most {guard.max_connections} open connections (--max-connections"
                f" {max_connections} would not fit the descriptor limit, ulimit -n)"
            )
        try:
            server.run()
        except OSError as exc:
            error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
            raise SystemExit(ExitCode.UNAVAILABLE) from None
    finally:
        queued.drain()  # at most DRAIN_WAIT: a stalled reader never holds the exit
    if not server.started:
        raise SystemExit(ExitCode.UNAVAILABLE)
