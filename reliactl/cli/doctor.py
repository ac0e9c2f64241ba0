"""`reliactl doctor`: is this machine ready to run reliactl from cron, systemd and CI?"""

from __future__ import annotations

from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import color_enabled, emit_json, emit_text, printable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    import typer

    from reliactl.cli.options import JsonOption

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
_COLOR = {"ok": "green", "warn": "yellow", "fail": "red"}


def typer_names() -> None:
    """Give ``doctor``'s (string) annotations the names Typer evaluates when it registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``doctor()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption")


def doctor(
    ctx: typer.Context,
    json_out: JsonOption = False,
) -> None:
    """Check the config, state store, lock and log directories, completions, clock and alert sinks.

    Each alert sink's settings are checked offline (keys present, secret file readable,
    secret variable set, URLs and addresses well formed): nothing is sent.

    Each finding comes with a fix. Exit 0 when nothing failed (warnings allowed), 1 otherwise.
    """
    from reliactl.doctor import diagnose

    report = diagnose(app_context(ctx).config_path)
    if json_out:
        emit_json(
            {
                "ok": not report.failed,
                "findings": [
                    {"check": f.check, "status": f.status, "message": f.message, "fix": f.fix}
                    for f in report.findings
                ],
            }
        )
    else:
        width = max(len(f.check) for f in report.findings)
        lines = []
        for f in report.findings:
            mark = _MARK[f.status]
            if color_enabled():
                code = {"green": "32", "yellow": "33", "red": "31"}[_COLOR[f.status]]
                mark = f"\x1b[{code}m{mark:<4}\x1b[0m"
            else:
                mark = f"{mark:<4}"
            # a finding quotes foreign text (paths, a server's answer): C-escaped, one line
            lines.append(f"{mark}  {f.check:<{width}}  {printable(f.message)}")
            if f.fix and f.status != "ok":
                lines.append(f"      {'':<{width}}  fix: {printable(f.fix)}")
        emit_text("\n".join(lines))
    raise SystemExit(ExitCode.FAILURE if report.failed else ExitCode.OK)
