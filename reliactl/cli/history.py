"""`reliactl health history`: each check's value over time, its thresholds and status changes."""

from __future__ import annotations

from reliactl.cli.exitcodes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated

    import typer


def typer_names() -> None:
    """Give ``history``'s (string) annotations ``typer``, evaluated when Typer registers it
    (``cli.health.register``). The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls ``history()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names as give

    give(globals())


def history(
    ctx: typer.Context,
    checks: Annotated[
        list[str] | None,
        typer.Argument(metavar="[CHECK]...", help="Only these checks (default: every one)."),
    ] = None,
    since: Annotated[
        str,
        typer.Option("--since", metavar="DURATION", help="How far back to look (24h)."),
    ] = "24h",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The health history kept by every health run: a chart per check with its warning (-)
    and critical (=) thresholds, the worst status under each slice (w, C, ?), and the list of
    status changes. Raw points are kept state.history_raw (24h), then 5-minute aggregates
    (min, max, mean, worst status) for state.history_retention (30d)."""
    import shutil
    import time

    from reliactl.cli._fastrt import duration_option
    from reliactl.cli.context import app_context
    from reliactl.cli.output import emit_json, emit_text, error, report_error
    from reliactl.errors import ReliactlError
    from reliactl.history import JSON_VERSION, MAX_SINCE, chart, events_text, history_document

    back = duration_option("--since", since, code=ExitCode.UNKNOWN, most=MAX_SINCE)
    now = time.time()
    try:
        store = app_context(ctx).store()
        if checks:
            known = set(store.health_checks())
            unknown = [c for c in checks if c not in known]
            if unknown:
                listed = ", ".join(sorted(known)) or "none yet (run `reliactl health` first)"
                error(
                    f"no history for {', '.join(map(repr, unknown))}; checks with history: {listed}"
                )
                raise SystemExit(ExitCode.UNKNOWN)
        doc = history_document(store, checks, now - back, now=now)
    except ReliactlError as exc:
        raise SystemExit(report_error(exc)) from None
    if json_out:
        emit_json(doc, version=JSON_VERSION)  # 2: times as DESIGN's "Times in JSON"
        return
    width = min(100, shutil.get_terminal_size((80, 24)).columns)
    parts = [chart(c, now - back, now, width=width) for c in doc["checks"]]
    if not parts:
        parts.append("no health history yet: run `reliactl health` (or serve) first")
    parts.append(events_text(doc))
    emit_text("\n\n".join(parts))
