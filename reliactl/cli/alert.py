"""`reliactl alert`: open problems and their acknowledgements, kept in the state store.

An acknowledged problem stops repeating and escalating until it recovers (then the
acknowledgement goes with it). The core is ``reliactl.health.alertstate``.
"""

from __future__ import annotations

from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import reports_errors

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import JsonOption


def _context(ctx: typer.Context) -> tuple[Any, dict[str, str]]:
    """The alert records and each job's breaker (silences and acks match either name)."""
    from reliactl.cli.context import app_context
    from reliactl.health.records import RecordStore

    app_ctx = app_context(ctx)
    jobs = app_ctx.loaded().config.jobs
    breakers = {name: job.breaker for name, job in jobs.items() if job.breaker}
    return RecordStore(app_ctx.store()), breakers


def _config(ctx: typer.Context) -> Any:
    from reliactl.cli.context import app_context

    return app_context(ctx).loaded().config


def _doc(problem: Any) -> dict[str, Any]:
    from reliactl.cli.output import with_times

    return with_times(problem.to_dict(), "since", "ack_at")


def build() -> typer.Typer:
    """The `alert` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `list` directly, so the commands end with
    ``SystemExit``; Typer evaluates the (string) annotations here, at registration."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption")
    group = typer.Typer(
        help="Open problems (as the last health runs saw them) and acknowledgements: "
        '"I am on it" stops repeats and escalation until the problem recovers.',
        no_args_is_help=True,
    )
    group.command("ack")(ack)
    group.command("list")(list_)
    group.command("resolve")(resolve)
    return group


@reports_errors
def ack(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="A check or job name, or a glob (disk*, job:*), on every host;"
            " HOST/CHECK for one host's (web-1/disk*).",
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why, or who is on it.")
    ] = "",
) -> None:
    """Acknowledge the open problems matching TARGET: no repeats or escalation until they
    recover (exit 1 if no open problem matches). A host-local check's problem is each host's
    own: TARGET without a host matches it on every host."""
    import time

    from reliactl.cli._fastrt import require_text
    from reliactl.cli.output import error, info
    from reliactl.health.alertstate import acknowledge

    require_text("TARGET", target)  # as silence's TARGET: '' or ' ' matches nothing
    records, breakers = _context(ctx)
    done = acknowledge(records, target, reason=reason, now=time.time(), breakers=breakers)
    if not done:
        error(f"no open problem matches {target!r} (see `reliactl alert list`)")
        raise SystemExit(ExitCode.FAILURE)
    for problem in done:
        where = f" on {problem.host}" if problem.scope != "fleet" and problem.host else ""
        info(f"{problem.check} ({problem.status.value}) acknowledged by {problem.ack_by}{where}")


@reports_errors
def resolve(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="HOST/CHECK for one host's problem (web-1/disk, old-web-*/*); a check name or"
            " glob for a fleet-wide one (job:nightly).",
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (sent with the recovery).")
    ] = "",
) -> None:
    """Close open problems by hand, for a host renamed, replaced or gone (nothing will ever
    see them recover): every sink told of one gets its recovery (PagerDuty and Opsgenie
    incidents close), then the problem and its sink entries are removed. A host-local
    problem needs HOST/CHECK. If the check is still bad on a live host, its next run opens
    the problem again. Exit 1 if nothing matches or a recovery was not delivered (that
    problem stays, to try again)."""
    import asyncio

    from reliactl.cli._fastrt import require_text
    from reliactl.cli.output import error, info
    from reliactl.health.alerts import AlertManager
    from reliactl.health.alertstate import AlertPolicy

    require_text("TARGET", target)
    records, breakers = _context(ctx)
    config = _config(ctx)
    manager = AlertManager(
        config.health_monitor.alerts,
        records,
        default_cooldown=config.health_monitor.alert_cooldown,
        policy=AlertPolicy.from_config(config.alerts),
        breakers=breakers,
    )
    done = asyncio.run(manager.resolve(target, reason=reason))
    if not done:
        error(
            f"no open problem matches {target!r} (one host's needs HOST/CHECK;"
            " see `reliactl alert list`)"
        )
        raise SystemExit(ExitCode.FAILURE)
    failed = False
    for problem, outcomes in done:
        bad = [o for o in outcomes if not o.delivered]
        for outcome in bad:
            error(outcome.describe())
        failed = failed or bool(bad)
        sent = ", ".join(o.sink for o in outcomes if o.delivered) or "no sink had been told"
        state = "kept (retry)" if bad else "resolved"
        info(f"{problem.label} ({problem.status.value}) {state}; recovery: {sent}")
    if failed:
        raise SystemExit(ExitCode.FAILURE)


@reports_errors
def list_(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Open problems, one per host for a host-local check (HOST: where; "(fleet)": one
    problem for the fleet, a job:NAME check): status, since when, flapping, acknowledged or
    not (and by whom)."""
    from reliactl.cli.output import emit_json, emit_text, iso_utc, table
    from reliactl.health.alertstate import open_problems

    records, _ = _context(ctx)
    problems = open_problems(records)
    if json_out:
        emit_json({"problems": [_doc(p) for p in problems]})
        return
    if not problems:
        emit_text("no open problems")
        return
    rows = [
        [
            p.check,
            p.status.value + (" FLAPPING" if p.flapping else ""),
            iso_utc(p.since) or "-",
            f"{p.ack_by}{': ' + p.ack_reason if p.ack_reason else ''}" if p.acknowledged else "no",
            "(fleet)" if p.scope == "fleet" else p.host or "-",
        ]
        for p in problems
    ]
    table(["CHECK", "STATUS", "SINCE", "ACKNOWLEDGED", "HOST"], rows)
