"""`reliactl silence`: maintenance windows kept in the state store (shared by a fleet).

A silenced check is still checked and shown (marked silenced, by whom and why) but sends no
alert; the silence ends by itself. The core is ``reliactl.health.alertstate``.
"""

from __future__ import annotations

from reliactl.cli._fastrt import duration_option, require_text, usage
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import reports_errors

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import JsonOption


# `silence add/list --json`'s "version" (DESIGN.md section 2): 2 since a silence's window is
# named as every point in time is ("Times in JSON"): `start_at`/`end_at` (version 1: `start`
# and `end`, the same text with `start_epoch`/`end_epoch` beside).
JSON_VERSION = 2


def _records(ctx: typer.Context) -> Any:
    from reliactl.cli.context import app_context
    from reliactl.health.records import RecordStore

    return RecordStore(app_context(ctx).store())


def _doc(silence: Any, now: float) -> dict[str, Any]:
    from reliactl.cli.output import with_times

    names = {"start": "start_at", "end": "end_at"}
    doc = {names.get(k, k): v for k, v in silence.to_dict().items()}
    doc["state"] = silence.state(now)
    return with_times(doc, "start_at", "end_at", "created_at")


def build() -> typer.Typer:
    """The `silence` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `list` directly, so the commands end with
    ``SystemExit``; Typer evaluates the (string) annotations here, at registration."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption")
    group = typer.Typer(
        help="Silence alerts for a check, job or breaker (or a glob) during maintenance: the "
        "problems are still checked and shown, but nothing is sent until the silence ends.",
        no_args_is_help=True,
    )
    group.command("add")(add)
    group.command("list")(list_)
    group.command("remove")(remove)
    return group


@reports_errors
def add(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="A check, job or breaker name, or a glob (disk*, job:*), on every host;"
            " HOST/CHECK for one host's (web-1/disk*, web-1/* for all of it).",
        ),
    ],
    duration: Annotated[
        str,
        typer.Option(
            "--for", metavar="DURATION", help="How long the silence lasts, e.g. 2h (at most 366d)."
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (shown with the problem).")
    ] = "",
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="TIME",
            help="A planned window: when it starts (2026-12-01T02:00 local, ...Z for UTC,"
            " or +1h from now) [default: now]",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Add a silence; prints its ID (for `silence remove ID`)."""
    import time

    from reliactl.cli.output import emit_json, info
    from reliactl.errors import HealthError
    from reliactl.health.alertstate import MAX_SILENCE, add_silence, parse_start
    from reliactl.hostname import hostname

    require_text("TARGET", target)
    require_text("--reason", reason, empty=True)
    now = time.time()
    seconds = duration_option("--for", duration, most=MAX_SILENCE)
    begin = None
    if start is not None:
        try:
            begin = parse_start(start, now)
        except ValueError as exc:
            raise usage(f"--start: {exc}") from None
    try:
        silence = add_silence(
            _records(ctx), target, seconds, reason=reason, start=begin, host=hostname(), now=now
        )
    except HealthError as exc:  # a bad target or window
        raise usage(str(exc)) from None
    if json_out:
        emit_json(_doc(silence, now), version=JSON_VERSION)
        return
    from reliactl.cli.output import iso_utc

    info(
        f"silence {silence.id}: {silence.target} from {iso_utc(silence.start)}"
        f" until {iso_utc(silence.end)} by {silence.by}"
    )
    from reliactl.cli.output import emit_text

    emit_text(silence.id)  # typer.echo's bytes, without typer


@reports_errors
def list_(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Active and planned silences (expired ones are removed)."""
    import time

    from reliactl.cli.output import emit_json, emit_text, iso_utc, table
    from reliactl.health.alertstate import list_silences

    now = time.time()
    silences = list_silences(_records(ctx), now)
    if json_out:
        emit_json({"silences": [_doc(s, now) for s in silences]}, version=JSON_VERSION)
        return
    if not silences:
        emit_text("no silences")
        return
    rows = [
        [s.id, s.target, s.state(now), iso_utc(s.start), iso_utc(s.end), s.by, s.reason]
        for s in silences
    ]
    table(["ID", "TARGET", "STATE", "START", "END", "BY", "REASON"], rows)


@reports_errors
def remove(
    ctx: typer.Context,
    silence_id: Annotated[
        str, typer.Argument(metavar="ID", help="The silence's ID (from `silence list`).")
    ],
) -> None:
    """End a silence now (exit 1 if there is none of that ID)."""
    from reliactl.cli.output import error, info
    from reliactl.health.alertstate import remove_silence

    require_text("ID", silence_id)
    if not remove_silence(_records(ctx), silence_id):
        error(f"no silence {silence_id!r} (see `reliactl silence list`)")
        raise SystemExit(ExitCode.FAILURE)
    info(f"silence {silence_id} removed")
