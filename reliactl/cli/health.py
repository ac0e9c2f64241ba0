"""`reliactl health`: run the checks, print them, alert, exit with the worst status (Nagios)."""

from __future__ import annotations

import contextlib
import os
import sys
import time

from reliactl.cli.exitcodes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import JsonOption, hidden, quiet_option
    from reliactl.health.alerts import AlertOutcome
    from reliactl.health.model import HealthMetric, HealthReport
    from reliactl.health.monitor import HealthMonitor
    from reliactl.remediate import Remediation, Remediator

FORMATS = ("text", "json", "nagios", "prometheus", "discord")
# `health --json`'s "version" (DESIGN.md section 2): 2 since every point in time in it follows
# "Times in JSON": a `job` check's details (`last_run_at`, ...) were epoch numbers and a
# `process` check's processes had `create_time` (now `started_at`), both with `X_epoch` beside.
JSON_VERSION = 2
JOB_DETAIL_TIMES = ("last_run_at", "last_success_at", "next_expected_at", "declared_at")
STYLES = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "bright_black"}


def _typer_names() -> tuple[type, type]:
    """Give this module's (string) annotations the names Typer evaluates when it registers
    `health`, and return the classes of the `health` group and its subcommands.

    The module itself imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``health()`` directly, so ``health()`` ends with ``SystemExit`` rather than ``typer.Exit``.
    """
    from typer.core import TyperGroup

    from reliactl.cli import _fastrt, options

    _fastrt.typer_names(globals(), "JsonOption", "hidden", "quiet_option")

    class HealthGroup(TyperGroup):
        """`health` (runs the checks) with subcommands (`health history`) whose parse errors
        (unknown option or command, missing value, a number that is not one) exit 3 (UNKNOWN)
        like its own option checks: a monitoring system reads Click's usual 2 as CRITICAL, and
        a typo in a check definition is not an outage."""

        usage_exit_code = ExitCode.UNKNOWN

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            from typer._click.exceptions import UsageError

            try:
                return super().parse_args(ctx, args)
            except UsageError as exc:
                exc.exit_code = ExitCode.UNKNOWN
                raise

        def resolve_command(self, ctx: Any, args: list[str]) -> Any:
            from typer._click.exceptions import UsageError

            try:
                return super().resolve_command(ctx, args)
            except UsageError as exc:
                exc.exit_code = ExitCode.UNKNOWN
                raise

    class HealthSubcommand(options.UsageCommand):
        """A subcommand of `health` (history): its parse errors exit 3 too."""

        usage_exit_code = ExitCode.UNKNOWN

    return HealthGroup, HealthSubcommand


def register(app: typer.Typer) -> None:
    """`health` and `health history` (the latter's code is imported only when it runs)."""
    group_class, subcommand_class = _typer_names()
    group = typer.Typer(cls=group_class, invoke_without_command=True)
    group.callback()(health)

    from reliactl.cli.history import history, typer_names

    typer_names()
    group.command("history", cls=subcommand_class)(history)
    app.add_typer(group, name="health")


def _usage(message: str) -> SystemExit:
    from reliactl.cli._fastrt import usage_exit

    return usage_exit(message, ExitCode.UNKNOWN)  # one line, exit 3 (Nagios UNKNOWN)


def health(  # noqa: C901 - textfile and alerting move to the core (issue 15 item 1)
    ctx: typer.Context,
    detailed: Annotated[
        bool,
        typer.Option("--detailed", help="Every metric with thresholds, timing, perfdata."),
    ] = False,
    detailed_d: Annotated[bool, hidden("-d")] = False,  # -d is --data (http), as curl
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-C",
            metavar="NAME",
            help="Run only this check (repeatable); a group such as disk_usage selects"
            " disk_usage:* .",
        ),
    ] = None,
    json_out: JsonOption = False,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="text (default), json, nagios (one line with perfdata), prometheus"
            " (text exposition) or discord (the /health embed as JSON; --detailed adds"
            " breakers and resources).",
        ),
    ] = None,
    fmt_f: Annotated[str | None, hidden("-f", metavar="FORMAT")] = None,  # -f is --fail (http)
    textfile: Annotated[
        str | None,
        typer.Option(
            "--textfile",
            metavar="PATH",
            help="Also write the Prometheus exposition to PATH atomically (node_exporter's"
            " textfile collector).",
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Check again every --interval until Ctrl-C (with --json: one compact"
            " document per round and line, JSON Lines).",
        ),
    ] = False,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            "-i",
            metavar="DURATION",
            help="Interval of --watch (default: health_monitor.check_interval, 1m).",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-n", metavar="N", help="With --watch: stop after N rounds (as top -n)."
        ),
    ] = None,
    quiet: Annotated[bool, quiet_option("Print nothing; only the exit code tells.")] = False,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Do not send alerts for this run.")
    ] = False,
    no_remediate: Annotated[
        bool,
        typer.Option(
            "--no-remediate", help="Run no check's remediate: command this time (report only)."
        ),
    ] = False,
    dry_run_remediation: Annotated[
        bool,
        typer.Option(
            "--dry-run-remediation",
            help="Show the remediation each CRITICAL check would run; run none, change nothing.",
        ),
    ] = False,
    test_alert: Annotated[
        str | None,
        typer.Option(
            "--test-alert",
            metavar="SINK",
            help="Send a sample alert to the sink named SINK (any kind: webhook, discord, slack,"
            " command, email, pagerduty, opsgenie, telegram, teams, ntfy) and exit (0 delivered,"
            " 1 not). `reliactl doctor` checks every sink without sending.",
        ),
    ] = None,
) -> None:
    """Check this host: CPU, memory, swap, disks, file handles, processes and custom checks.

    Each run is kept in the state store's health history (`reliactl health history`).

    Exit code (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, the worst of all checks
    (CRITICAL > WARNING > UNKNOWN > OK). Alerts go to the configured sinks when a check
    changes status, one message per sink per run, and again after the repeat interval while it
    stays bad (the `alerts` section: group_wait, repeat_every, escalation, flap detection). A
    silenced check (`reliactl silence`) is shown, marked, but sends nothing; an acknowledged
    one (`reliactl alert ack`) stops repeating. A failing alert sink is reported on stderr and
    never changes the exit code. Bad options exit 3.

    A check with remediate: runs its command (or cleanup:ROOT, restart:UNIT,
    signal:PIDFILE:SIG) when it is CRITICAL, under a lock, a timeout, a breaker and at most
    max_attempts per window, then checks again: the verified status is reported ("remediated"
    or "remediation failed") and alerted.
    """
    if ctx.invoked_subcommand is not None:
        return  # `health history ...`: the subcommand does the work
    from reliactl.cli.context import app_context
    from reliactl.cli.output import report_error, warn
    from reliactl.errors import ConfigError, HealthError, ReliactlError

    detailed = detailed or detailed_d
    fmt = fmt if fmt is not None else fmt_f
    out_format = (fmt or ("json" if json_out else "text")).lower()
    if out_format not in FORMATS:
        raise _usage(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if json_out and out_format != "json":
        raise _usage("--json and --format are exclusive")
    if count is not None and count < 1:
        raise _usage(f"--count: expected a positive number, got {count}")
    if (interval is not None or count is not None) and not watch:
        raise _usage("--interval and --count apply to --watch only")
    if no_remediate and dry_run_remediation:
        raise _usage("--no-remediate and --dry-run-remediation are exclusive")
    if textfile is not None:
        from reliactl.trust import not_regular

        refused = not_regular(textfile)
        if refused is not None:
            raise _usage(f"--textfile: {refused}")
    period: float | None = None
    if interval is not None:
        from reliactl.cli._fastrt import duration_option
        from reliactl.durations import MAX_INTERVAL

        # at most 7d: time.sleep() overflows past 1e12 s
        period = duration_option("--interval", interval, code=ExitCode.UNKNOWN, most=MAX_INTERVAL)

    app_ctx = app_context(ctx)
    try:
        loaded = app_ctx.loaded()
    except ConfigError as exc:
        raise SystemExit(report_error(exc)) from None
    store: Any = None
    for attempt in range(4):
        try:
            store = app_ctx.store()
            break
        except ReliactlError as exc:
            # Two runs creating a fresh database at once can see "database is locked" from
            # SQLite's journal-mode switch; a moment later it opens. Without the store,
            # cooldowns would not be shared, so try a few times before going it alone.
            if "locked" in str(exc) and attempt < 3:
                time.sleep(0.05 * (attempt + 1))
                continue
            warn(f"{exc}; debounce, alert cooldowns and CPU samples are kept in memory this run")
            break

    from reliactl.health.monitor import HealthMonitor

    monitor = HealthMonitor(loaded.config.health_monitor, store=store, full_config=loaded.config)
    if test_alert is not None:
        raise SystemExit(_send_test(monitor, test_alert))
    try:
        monitor.select(check)
    except HealthError as exc:
        raise _usage(str(exc)) from None
    if period is None:
        period = loaded.config.health_monitor.check_interval
    remediator = None
    if not no_remediate and any(c.remediate for c in loaded.config.health_monitor.checks):
        from reliactl.remediate import Remediator

        remediator = Remediator(
            monitor,
            loaded.config,
            config_path=loaded.path,
            dry_run=dry_run_remediation,
            alerts=not no_alerts,
        )

    rounds = 0
    code: int = ExitCode.UNKNOWN
    restore = _kill_plugins_on_signals()
    try:
        while True:
            rounds += 1
            report, outcomes, healed = _healing_round(
                monitor, check, alerts=not no_alerts, remediator=remediator
            )
            record_history(store, report, loaded.config)
            code = report.exit_code
            if textfile is not None and not _write_textfile(textfile, report):
                code = max(code, int(ExitCode.UNKNOWN), key=_severity)
            if not quiet:
                if watch:
                    _clear_screen()
                breakers = None
                if out_format == "discord" and detailed:
                    from reliactl.breaker import list_breakers

                    breakers = list_breakers(store, loaded.config)
                _render(
                    report,
                    outcomes,
                    out_format,
                    detailed,
                    watch=watch,
                    breakers=breakers,
                    healed=healed,
                    notes=_notes(monitor, report, loaded.config),
                )
            if not watch or (count is not None and rounds >= count):
                break
            time.sleep(period)
    except KeyboardInterrupt:
        if not watch:
            raise
    finally:
        from reliactl.health.checks import kill_running_programs

        kill_running_programs()  # Ctrl-C: plugins run in their own sessions and never saw it
        restore()
    raise SystemExit(code)


def _kill_plugins_on_signals() -> Callable[[], None]:
    """Make TERM and HUP kill running plugins (command checks and sinks) before we die.

    Each plugin runs in its own session, so the signal that stops ``health`` (systemd, a
    supervisor, ``timeout``) never reaches it: without this it would be orphaned. We still
    die by the signal, as before. Signals that were ignored stay ignored. Returns a function
    that puts the previous handlers back.

    It speaks to ``_signal``, the C module ``signal`` wraps (the interpreter imports it
    at start-up): ``signal`` builds its three enums at import (~0.5 ms of every
    ``health`` start, issue 21 item 4), and nothing here needs them. Handlers compare
    with ``==``: ``_signal`` gives SIG_DFL as the plain int the enum equals."""
    if TYPE_CHECKING:
        import signal as _signal
    else:
        import _signal

    def handler(signum: int, frame: object) -> None:
        from reliactl.health.checks import kill_running_programs

        kill_running_programs()
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous: dict[int, Any] = {}
    for signum in (_signal.SIGTERM, _signal.SIGHUP):
        try:
            if _signal.getsignal(signum) == _signal.SIG_DFL:
                previous[signum] = _signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass

    def restore() -> None:
        for signum, old in previous.items():
            _signal.signal(signum, old)

    return restore


def _severity(code: int) -> int:
    return {0: 0, 3: 1, 1: 2, 2: 3}.get(code, 1)


def _one_round(
    monitor: HealthMonitor, names: list[str] | None, *, alerts: bool
) -> tuple[HealthReport, list[AlertOutcome]]:
    """Check and alert, remediating nothing (serve's rounds)."""
    report, outcomes, _ = _healing_round(monitor, names, alerts=alerts)
    return report, outcomes


def _healing_round(
    monitor: HealthMonitor,
    names: list[str] | None,
    *,
    alerts: bool,
    remediator: Remediator | None = None,
) -> tuple[HealthReport, list[AlertOutcome], list[Remediation]]:
    """Check, remediate (the verified report is what is alerted and shown), alert."""
    from reliactl.cli.output import warn

    report = monitor.run_now(names)
    healed: list[Remediation] = []
    if remediator is not None:
        report, healed = remediator.apply(report)
    outcomes: list[AlertOutcome] = [o for r in healed for o in r.alerts]
    if alerts and monitor.config.alerts:
        import asyncio

        outcomes += asyncio.run(monitor.alert_manager().process(report))
    for outcome in outcomes:
        if not outcome.delivered:
            warn(outcome.describe())
    return report, outcomes, healed


def _notes(
    monitor: HealthMonitor, report: HealthReport, config: Any, now: float | None = None
) -> dict[str, Any]:
    """Each check's silence, acknowledgement and flapping at ``now`` (default: when the report
    was checked; serve asks about the present), to show beside it (none when the state store
    cannot be read: the checks still show)."""
    from reliactl.errors import ReliactlError
    from reliactl.health.records import ALERT_KIND

    breakers = {name: job.breaker for name, job in config.jobs.items() if job.breaker}
    try:
        at = report.checked_at if now is None else now
        items = monitor.records.items(ALERT_KIND)
        if not items:  # no silence, no problem: no note (and no alertstate import, ~0.7 ms)
            return {}
        from reliactl.health.alertstate import check_notes

        return dict(check_notes(monitor.records, report.metrics, at, breakers, items=items))
    except ReliactlError:
        return {}


def record_history(store: Any, report: HealthReport, config: Any) -> None:
    """Keep the run in the health history; a failing store is a warning, never a failure."""
    if store is None:
        return
    from reliactl.cli.output import warn
    from reliactl.errors import ReliactlError
    from reliactl.history import record_report

    try:
        record_report(store, report, config.state)
    except ReliactlError as exc:
        warn(f"health history not recorded: {exc}")


def _send_test(monitor: HealthMonitor, sink: str) -> int:
    import asyncio

    from reliactl.cli.output import error, info
    from reliactl.errors import HealthError

    manager = monitor.alert_manager()
    try:
        outcome = asyncio.run(manager.send_test(sink))
    except HealthError as exc:
        error(str(exc))
        return ExitCode.UNKNOWN
    if outcome.delivered:
        info(f"test alert delivered to {sink!r}")
        return ExitCode.OK
    error(outcome.describe())
    return ExitCode.FAILURE


def _clear_screen() -> bool:
    from reliactl.cli.output import is_tty

    if is_tty():
        sys.stdout.write("\x1b[H\x1b[2J")
        return True
    return False


def _write_textfile(path: str, report: HealthReport) -> bool:
    """Write the Prometheus exposition atomically (temp file in the same directory, rename)."""
    import tempfile  # here: tempfile (shutil, random) costs ~4 ms of every `health` start

    from reliactl.cli.output import error
    from reliactl.health.formats import prometheus

    target = os.path.abspath(path)
    directory, name = os.path.split(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(prometheus(report))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
        return True
    except OSError as exc:
        error(f"--textfile {path}: {exc.strerror or exc}")
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------- rendering


def health_document(
    report: HealthReport,
    outcomes: list[AlertOutcome],
    healed: Sequence[Remediation] = (),
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document of `health --json` (and serve's /healthz and /api/health). With
    ``notes`` (``alertstate.check_notes``) every check says whether it is silenced (by whom,
    why, until when), acknowledged and flapping; ``healed`` lists the remediations run.
    "version" (``JSON_VERSION``) comes first, so serve and `run --json-report`'s ``health``
    say it too."""
    doc: dict[str, Any] = {"version": JSON_VERSION}
    for key, value in report.to_dict().items():
        doc[key] = value
        if key == "checks":
            checks = [_timed_details(c) for c in value]
            if notes is not None:
                checks = [{**c, **_note_doc(notes.get(c["name"]))} for c in checks]
            doc[key] = checks
        if key == "checked_at":  # ISO text already: the number beside it, as elsewhere
            doc["checked_at_epoch"] = report.checked_at
    doc["alerts"] = [
        {
            "sink": o.sink,
            "check": o.check,
            "status": o.status.value,
            "kind": o.kind,
            "delivered": o.delivered,
            "attempts": o.attempts,
            "error": o.error,
        }
        for o in outcomes
    ]
    doc["remediations"] = [r.to_dict() for r in healed]
    return doc


def _timed_details(check: dict[str, Any]) -> dict[str, Any]:
    """A check's JSON with the points in time of its details as every JSON document shows
    them (``X_at`` ISO 8601 UTC text, ``X_at_epoch`` beside): a ``job`` check's job status
    and a ``process`` check's processes (``create_time``, psutil's name, is ``started_at``).
    Other details (a plugin's own) are left as they are."""
    from reliactl.cli.output import with_times

    details = check.get("details")
    if not isinstance(details, dict) or not details:
        return check
    if check.get("kind") == "job":
        details = with_times(details, *JOB_DETAIL_TIMES)
    elif check.get("kind") == "process" and isinstance(details.get("processes"), list):
        details = {**details, "processes": [_process_times(p) for p in details["processes"]]}
    else:
        return check
    return {**check, "details": details}


def _process_times(process: Any) -> Any:
    from reliactl.cli.output import with_times

    if not isinstance(process, dict) or "create_time" not in process:
        return process
    renamed = {("started_at" if k == "create_time" else k): v for k, v in process.items()}
    return with_times(renamed, "started_at")


def _note_doc(note: Any) -> dict[str, Any]:
    from reliactl.cli.output import with_times

    if note is None:
        return {"silenced": None, "acknowledged": None, "flapping": False}
    doc = note.to_dict()
    if doc["silenced"] is not None:
        doc["silenced"] = with_times(doc["silenced"], "until")
    if doc["acknowledged"] is not None:
        doc["acknowledged"] = with_times(doc["acknowledged"], "at")
    return dict(doc)


def _render(
    report: HealthReport,
    outcomes: list[AlertOutcome],
    out_format: str,
    detailed: bool,
    *,
    watch: bool = False,
    breakers: Any = None,
    healed: Sequence[Remediation] = (),
    notes: dict[str, Any] | None = None,
) -> None:
    from reliactl.cli.output import emit_json, emit_text, printable, strict_json

    if out_format == "discord":
        import json

        from reliactl.health.formats import discord_embed
        from reliactl.hostname import hostname

        embed = discord_embed(report, detailed=detailed, breakers=breakers, host=hostname())
        emit_text(strict_json(embed, lambda d: json.dumps(d, indent=2, ensure_ascii=False)))
        return
    if out_format == "json":
        # --watch: JSON Lines, one compact document per round (DESIGN.md section 2)
        document = health_document(report, outcomes, healed, notes or {})
        emit_json(document, version=JSON_VERSION, line=watch)
        return
    if out_format == "nagios":
        from reliactl.health.formats import nagios

        emit_text(nagios(report))
        return
    if out_format == "prometheus":
        from reliactl.health.formats import prometheus

        emit_text(prometheus(report))
        return
    _render_table(report, detailed, notes or {})
    for result in healed:
        emit_text(f"remediation: {printable(result.describe())}")
    if watch:
        stamp = time.strftime("%H:%M:%S", time.localtime(report.checked_at))
        emit_text(f"(checked at {stamp}; Ctrl-C to stop)")


def _value_text(metric: HealthMetric, tty: bool) -> str:
    if metric.value is None:
        return "-"
    value = metric.value
    unit = metric.unit
    if unit == "s":
        text = f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
    elif unit == "%":
        text = f"{value:.1f}%"
    else:
        text = f"{value:g}{unit}"
    if unit == "%" and tty:
        filled = max(0, min(10, round(value / 10)))
        text = f"{'█' * filled}{'░' * (10 - filled)} {text}"
    return text


def _render_table(report: HealthReport, detailed: bool, notes: dict[str, Any]) -> None:
    from reliactl.cli.output import color_enabled, emit_text, is_tty, table

    tty = is_tty()
    colors = color_enabled()
    metrics = list(report.metrics.values())
    if detailed:
        columns = ["CHECK", "STATUS", "VALUE", "WARN", "CRIT", "TIME", "MESSAGE"]
    else:
        columns = ["CHECK", "STATUS", "VALUE", "MESSAGE"]
    rows: list[list[Any]] = []
    styles: list[list[str | None]] = []
    for m in metrics:
        row: list[Any] = [m.name, m.status.value, _value_text(m, tty)]
        if detailed:
            row += [m.warn or "-", m.critical or "-", f"{m.duration * 1000:.0f}ms"]
        note = notes.get(m.name)
        row.append(f"[{note.text()}] {m.message}" if note is not None else m.message)
        rows.append(row)
        style = STYLES[m.status.value] if colors else None
        styles.append([None, style, style, *([None] * (len(columns) - 3))])
    table(columns, rows, styles=styles if colors else None)
    if detailed:
        lines = ["", "perfdata:"]
        for m in metrics:
            for p in m.perfdata:
                lines.append(f"  {p.nagios()}")
        emit_text("\n".join(lines))
    counts = dict.fromkeys(STYLES, 0)
    for m in metrics:
        counts[m.status.value] += 1
    bad = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if s != "OK" and n)
    summary = f"{report.overall_status.value}: {counts['OK']} of {len(metrics)} checks OK"
    emit_text(summary + (f" ({bad})" if bad else ""))
