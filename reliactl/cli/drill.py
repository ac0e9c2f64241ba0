"""`reliactl drill`: scripted game days against the real configuration (reliactl.drill)."""

from __future__ import annotations

from reliactl.cli._fastrt import usage
from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import emit_json, emit_text, printable, report_error

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated

    import typer

    from reliactl.cli.options import JsonOption


def typer_names() -> None:
    """Give ``drill``'s (string) annotations the names Typer evaluates when it registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``drill()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names as give

    give(globals(), "JsonOption")


def drill(
    ctx: typer.Context,
    names: Annotated[
        list[str],
        typer.Argument(
            metavar="NAME",
            help="breaker, alerts, job-missed, disk, or all.",
            show_default=False,
        ),
    ],
    json_out: JsonOption = False,
) -> None:
    """Rehearse failures against the real configuration and check each step.

    breaker: trip a drill breaker, `run --breaker` must refuse (69), then recover. alerts: a
    drill problem to every sink, nothing again inside the cooldown, then the recovery.
    job-missed: every declared job must turn CRITICAL when overdue. disk: the thresholds on a
    forced value past critical, and a real reading of each disk. Exit 0 only when every step
    behaved, 1 otherwise.
    """
    from reliactl.drill import DRILLS, run_drill
    from reliactl.errors import ReliactlError

    unknown = [n for n in names if n not in DRILLS and n != "all"]
    if unknown:
        raise usage(f"no drill named {unknown[0]!r} (drills: {', '.join(DRILLS)}, or all)")
    app_ctx = app_context(ctx)
    try:
        config = app_ctx.loaded().config
        report = run_drill(names, config, app_ctx.store, config_path=app_ctx.config_path)
    except ReliactlError as exc:
        raise SystemExit(report_error(exc)) from None
    if json_out:
        emit_json(report.to_dict())
    else:
        lines = [
            f"{'ok  ' if s.ok else 'FAIL'}  {s.drill}/{s.step}: {printable(s.detail)}"
            for s in report.steps
        ]
        verdict = "every step behaved" if report.ok else "some steps did not behave"
        lines.append(f"drill {'passed' if report.ok else 'FAILED'}: {verdict}")
        emit_text("\n".join(lines))
    raise SystemExit(ExitCode.OK if report.ok else ExitCode.FAILURE)
