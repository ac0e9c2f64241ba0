"""`reliactl state`: where the shared state lives, moving it to Redis, shipping the queue."""

from __future__ import annotations

from reliactl.cli.context import app_context
from reliactl.cli.output import emit_json, emit_text, info, printable, reports_errors

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated

    import typer

    from reliactl.cli.options import JsonOption


def build() -> typer.Typer:
    """The `state` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `info` directly, so the commands end with
    ``SystemExit``; Typer evaluates the (string) annotations here, at registration."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption")
    group = typer.Typer(
        help="The state store: where breakers, cooldowns and history live (SQLite or Redis), "
        "moving them to Redis, shipping what was queued while Redis was away.",
        no_args_is_help=True,
    )
    group.command("info")(info_)
    group.command()(migrate)
    group.command()(sync)
    return group


@reports_errors
def info_(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Backend, location (password hidden), round-trip latency and record counts.

    On Redis also the server version, its persistence settings and how much history this
    host has queued. Exit 75 when Redis does not answer, 78 for a bad URL or password.
    """
    from reliactl.state.ops import persistence_off, state_info

    result = state_info(app_context(ctx).loaded().config)
    if json_out:
        emit_json(result.to_dict())
        return
    counts = result.counts
    lines = [
        f"backend        {result.backend}",
        f"location       {result.location}",
        f"latency        {result.latency_ms:.2f} ms",
        "records        "
        + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("breaker", "alert", "rate", "kv")),
        f"history        {counts.get('runs', 0)} runs, {counts.get('events', 0)} breaker events",
    ]
    if result.backend == "sqlite":
        lines.append(f"queued         {counts.get('queued', 0)} (shipped to Redis by state sync)")
    else:
        s = result.server
        save = s.get("save")
        rdb = "unknown (CONFIG GET refused)" if save is None else (repr(save) if save else "off")
        lines += [
            f"namespace      {result.namespace}",
            f"server         Redis {s.get('version')} ({s.get('mode')})",
            f"persistence    rdb save {rdb}, appendonly {'yes' if s.get('appendonly') else 'no'}",
            f"memory         {s.get('used_memory')} bytes used, maxmemory"
            f" {s.get('maxmemory') or 'unlimited'}, policy {s.get('maxmemory_policy')}",
            f"when away      {result.on_unavailable} (local store {result.local})",
            f"queued here    {result.queued} (reliactl state sync ships them)",
        ]
        if persistence_off(s):
            lines.append(
                "warning        persistence is off: breaker state is lost when Redis restarts"
            )
    emit_text("\n".join(map(printable, lines)))  # a server's or a file's text: one line each


@reports_errors
def migrate(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The Redis to copy into: redis://host:6379/0, rediss://..., unix:///path."
            " The password may come from state.password or state.password_file.",
        ),
    ],
    json_out: JsonOption = False,
) -> None:
    """Copy this host's SQLite store (breakers, cooldowns, rate buckets, kv, runs, breaker
    events) into Redis; then point state.url at it.

    Idempotent: a record Redis already has is kept (the fleet's state wins) and each run and
    event is copied once, so a second run copies nothing new.
    """
    from reliactl.state.ops import migrate as do_migrate

    report = do_migrate(app_context(ctx).loaded().config, to)
    if json_out:
        emit_json(
            {
                "source": report.source,
                "target": report.target,
                "records": report.records,
                "records_present": report.records_present,
                "runs": report.runs,
                "events": report.events,
                "history_present": report.history_present,
            }
        )
        return
    emit_text(  # paths and URLs: C-escaped
        printable(
            f"copied {report.records} records, {report.runs} runs and {report.events} breaker"
            f" events from {report.source} to {report.target}"
            f" ({report.records_present} records and {report.history_present} history items"
            " were there already)"
        )
    )


@reports_errors
def sync(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Ship the runs and breaker events this host recorded while Redis was away.

    Each is added once, marked delayed (`runs` shows it); the next command that opens the
    store ships some too. Exit 75 when Redis still does not answer (nothing is lost).
    """
    from reliactl.state.ops import sync_queued

    report = sync_queued(app_context(ctx).loaded().config)
    if report is None:
        info("nothing to sync: the state store is SQLite (state.url names no Redis)")
        if json_out:
            emit_json({"shipped": 0, "duplicates": 0, "dropped": 0, "left": 0})
        return
    if json_out:
        emit_json(
            {
                "shipped": report.shipped,
                "duplicates": report.duplicates,
                "dropped": report.dropped,
                "left": report.left,
            }
        )
    else:
        emit_text(
            f"shipped {report.shipped} queued items ({report.duplicates} were there already,"
            f" {report.dropped} pruned locally); {report.left} left"
        )
