"""`reliactl config`: validate, show and create the configuration."""

from __future__ import annotations

import os
import sys

from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import (
    emit_json,
    emit_text,
    info,
    printable,
    report_error,
    reports_errors,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import JsonOption as JsonFlag


def build() -> typer.Typer:
    """The `config` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `show` and `validate` directly, so they end with
    ``SystemExit``; Typer evaluates the (string) annotations here, at registration."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), JsonFlag="JsonOption")
    group = typer.Typer(
        help="Validate, show and create the YAML + environment configuration.",
        no_args_is_help=True,
    )
    group.command()(validate)
    group.command()(show)
    group.command()(init)
    return group


def validate(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE", help="File to check (default: the file reliactl would load)."
        ),
    ] = None,
    json_out: JsonFlag = False,
    no_env: Annotated[
        bool, typer.Option("--no-env", help="Check the file alone, ignoring the environment.")
    ] = False,
) -> None:
    """Check a configuration: "valid" and exit 0, or every problem and exit 78.

    CI runs this before a deploy. Problems name the file, line, key path, what was expected
    and what was found.
    """
    from reliactl.cli.output import warn
    from reliactl.config import find_config_file, load
    from reliactl.errors import ConfigError

    app_ctx = app_context(ctx)
    path = file or app_ctx.config_path
    notes: list[str] = []
    found, _ = find_config_file(path, notes=notes)
    for note in notes:
        warn(note)
    try:
        loaded = load(path, use_env=not no_env)
    except ConfigError as exc:
        if json_out:
            emit_json(
                {
                    "valid": False,
                    "file": str(found) if found else None,
                    "problems": [
                        {
                            "file": p.source,
                            "line": p.line,
                            "path": p.path,
                            "variable": p.variable,
                            "message": p.message,
                        }
                        for p in exc.problems
                    ],
                }
            )
            raise SystemExit(ExitCode.CONFIG) from None
        raise SystemExit(report_error(exc)) from None
    where = str(loaded.path) if loaded.path else "no configuration file found; the defaults"
    if json_out:
        emit_json(
            {"valid": True, "file": str(loaded.path) if loaded.path else None, "problems": []}
        )
    else:
        emit_text(f"valid: {printable(where)}")


@reports_errors
def show(
    ctx: typer.Context,
    json_out: JsonFlag = False,
    sources: Annotated[
        bool,
        typer.Option("--sources/--no-sources", help="Say where each value came from."),
    ] = True,
) -> None:
    """Print the effective configuration (defaults < file < environment < flags).

    Each value is annotated with its source: default, file:line, env VAR or flag. Secrets
    are shown as ***: alert webhook URLs, API keys, tokens, URL passwords and token-like
    query parameters, secret headers (Authorization, Cookie, X-Api-Key, ...).
    """
    from reliactl.config import to_plain

    loaded = app_context(ctx).loaded()
    plain = redact_plain(to_plain(loaded.config))
    if json_out:
        emit_json(
            {
                "file": str(loaded.path) if loaded.path else None,
                "config": plain,
                "sources": loaded.sources if sources else {},
            }
        )
        return
    header = f"# effective configuration; file: {printable(str(loaded.path or 'none (defaults)'))}"
    emit_text(header + "\n" + render_yaml(plain, loaded.sources if sources else {}))


def redact_plain(value: Any, key: str = "") -> Any:
    """``value`` with what ``reliactl http`` treats as secret hidden: passwords and token-like
    query values in any URL, secret header values in any ``headers`` mapping."""
    from reliactl.redact import redact_headers, redact_url

    if isinstance(value, dict):
        if key == "headers":
            return dict(redact_headers(value))
        return {k: redact_plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_plain(v, key) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def render_yaml(plain: dict[str, Any], sources: dict[str, str]) -> str:
    """YAML text of ``plain`` with ``# source`` comments on each value."""
    from reliactl.config import scalar_yaml

    lines: list[str] = []

    def emit(value: Any, path: str, indent: str, key_prefix: str) -> None:
        source = sources.get(path)
        comment = f"  # {printable(source)}" if source else ""
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key_prefix}{comment}".rstrip() if key_prefix else "")
            for key, item in value.items():
                name = _yaml_key(key)
                emit(item, f"{path}.{key}" if path else str(key), indent + "  ", f"{name}:")
        elif isinstance(value, list) and value:
            lines.append(f"{indent}{key_prefix}{comment}")
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    first = True
                    for key, sub in item.items():
                        prefix = "- " if first else "  "
                        where = f"{path}[{index}].{key}"
                        emit(sub, where, indent + "  " + prefix, f"{_yaml_key(key)}:")
                        first = False
                else:
                    lines.append(f"{indent}  - {scalar_yaml(item)}")
        else:
            text = "{}" if value == {} else "[]" if value == [] else scalar_yaml(value)
            lines.append(f"{indent}{key_prefix} {text}{comment}")

    for section, body in plain.items():
        lines.append(f"{section}:")
        for key, value in body.items():
            emit(value, f"{section}.{key}", "  ", f"{_yaml_key(key)}:")
    # A nested list item's indentation contains "- "; normalise "  - " prefixes of continuations.
    return "\n".join(line.replace("- - ", "- ") for line in lines if line != "")


def _yaml_key(key: Any) -> str:
    """A mapping key as ``config show`` writes it: as it is, or (a key that is not one
    printable line, e.g. a check named with a newline or ESC) a quoted YAML string."""
    from reliactl.config import scalar_yaml

    text = str(key)
    return text if text.isprintable() else scalar_yaml(text)


def init(
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="Where to write it.")
    ] = "reliactl.yaml",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter configuration: the defaults, examples commented out.

    Every option is there with its comment; the example checks, alert sinks and breakers are
    commented out, so nothing placeholder runs until you uncomment it. Refuses to overwrite
    without --force.
    """
    from reliactl.config import example_yaml
    from reliactl.trust import not_regular

    refused = not_regular(path)
    if refused is not None:
        from reliactl.cli.output import error

        error(refused)
        raise SystemExit(ExitCode.FAILURE)
    text = example_yaml(starter=True)
    # Written whole to a new file beside it, then put in place (linked: never over an existing
    # file; with --force, renamed over it): a full disk or a file-size limit leaves neither a
    # truncated starter nor a half-overwritten configuration behind.
    from reliactl.cli.output import error

    if os.path.islink(path):  # a planted link is never written through, nor replaced
        error(f"cannot write {path}: it is a symbolic link")
        raise SystemExit(ExitCode.INTERNAL)
    temp = os.path.join(
        os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp"
    )
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        error(f"cannot write {path}: {exc.strerror}")
        raise SystemExit(ExitCode.INTERNAL) from None
    try:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            if force:
                os.replace(temp, path)
            else:
                os.link(temp, path)
        except FileExistsError:
            error(f"{path} exists; use --force to overwrite it")
            raise SystemExit(ExitCode.FAILURE) from None
        except OSError as exc:
            error(f"cannot write {path}: {exc.strerror}")
            raise SystemExit(ExitCode.INTERNAL) from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    info(f"wrote {path}; check it with: reliactl config validate {path}")
    sys.stdout.flush()
