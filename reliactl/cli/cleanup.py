"""`reliactl cleanup`: safe age-based cleanup of configured roots or given paths.

The engine is ``reliactl.cleanup`` (no typer, no rich); this module parses flags, renders the
report and picks the exit code. The core is imported inside the command, rich only when a
progress bar is shown on a terminal.
"""

from __future__ import annotations

import sys

from reliactl.cli._fastrt import usage
from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import (
    cescape,
    emit_json,
    emit_text,
    error,
    info,
    is_tty,
    reports_errors,
    warn,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cleanup import CleanupReport, CleanupTarget, LockSweepReport, RootReport
    from reliactl.cli.options import JsonOption, hidden, quiet_option
    from reliactl.state.base import PruneReport

MAX_ERRORS_SHOWN = 20


_usage = usage  # one line, exit 2


def typer_names() -> None:
    """Give ``cleanup``'s (string) annotations the names Typer evaluates when it registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``cleanup()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption", "hidden", "quiet_option")


@reports_errors
def cleanup(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Directories to clean (default: the configured cleanup.roots). "
            "The directories themselves are kept.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Remove entries older than this (e.g. 12h, 7d). Required with PATHs; "
            "overrides each root's max_age otherwise.",
        ),
    ] = None,
    age_by: Annotated[
        str,
        typer.Option(
            "--age-by",
            metavar="newest|mtime|atime|ctime",
            help="Which time makes an entry's age: the newest of mtime, ctime and atime "
            "(default, as systemd-tmpfiles; ctime is left out for directories), or one of them.",
        ),
    ] = "newest",
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="Size budget per root (e.g. 2GB): then delete the oldest files until it fits.",
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="GLOB",
            help="Only remove names (or root-relative paths) matching this glob; repeatable.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Never remove (or enter) names matching this glob; repeatable.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List what would be removed (one path a line on stdout; a name with a "
            "newline, control character, backslash or non-UTF-8 byte is C-escaped: \\n, "
            "\\\\, \\x1b); remove nothing.",
        ),
    ] = False,
    dry_run_n: Annotated[bool, hidden("-n")] = False,  # before -n meant "how many" everywhere
    list_removed: Annotated[
        bool,
        typer.Option("--list", "-l", help="Also list each removed path on stdout."),
    ] = False,
    stale_locks: Annotated[
        bool,
        typer.Option(
            "--stale-locks",
            help="Also remove reliactl's own lock files in run.lock_dir that nobody holds "
            "(flock, POSIX or OFD lock) and whose recorded holder is gone. A held lock and "
            "another program's file are never removed; another user's only by root.",
        ),
    ] = False,
    state: Annotated[
        bool,
        typer.Option(
            "--state",
            help="Also prune run history and breaker events past state.retention / "
            "state.max_history, and closed breakers unused for state.retention (never a "
            "configured one), and vacuum the state store.",
        ),
    ] = False,
    force_root: Annotated[
        bool,
        typer.Option(
            "--force-root",
            help="Allow a dangerous root (/, /etc, /home, /usr, $HOME ...) or a path with '..'.",
        ),
    ] = False,
    json_out: JsonOption = False,
    quiet: Annotated[
        bool,
        quiet_option(
            "Print only problems (errors, warnings): nothing on a night with nothing "
            "to report, for cron mail. The exit code still tells."
        ),
    ] = False,
) -> None:
    """Remove old files safely: never follows symlinks, never leaves the filesystem.

    Removes regular files, symlinks themselves (never their targets) and directories that became empty and are old; each root itself is kept.

    Skips FIFOs, sockets, devices, mount points and files another process holds locked (flock or POSIX lock).

    Exit 0 on success, 1 if anything could not be removed.
    """  # noqa: E501 - one line per paragraph: --help wraps it
    from reliactl.cleanup import AGE_BY, CleanupTarget
    from reliactl.cli._fastrt import duration_option
    from reliactl.durations import parse_size
    from reliactl.errors import DurationError

    dry_run = dry_run or dry_run_n
    if age_by not in AGE_BY:
        raise _usage(f"--age-by: expected one of {', '.join(AGE_BY)}, got {age_by!r}")
    max_age = None if older_than is None else duration_option("--older-than", older_than)
    budget: int | None = None
    if max_size is not None:
        try:
            budget = parse_size(max_size)
        except DurationError as exc:
            raise _usage(f"--max-size: {exc}") from None
        if budget <= 0:
            raise _usage(f"--max-size: expected a positive size, got {max_size!r}")

    app_ctx = app_context(ctx)
    # Validated even when PATHs make the roots unused: an invalid configuration is exit 78
    # for every command, and run.lock_dir / state.path come from it.
    config = app_ctx.loaded().config
    explicit = bool(paths)
    targets: list[CleanupTarget] = []
    if paths:
        if max_age is None:
            raise _usage("--older-than is required when PATHs are given (e.g. --older-than 7d)")
        for path in paths:
            targets.append(
                CleanupTarget(
                    path=path,
                    max_age=max_age,
                    include=tuple(include or ()),
                    exclude=tuple(exclude or ()),
                    max_total_size=budget,
                )
            )
    else:
        for root in config.cleanup.roots:
            base = CleanupTarget.from_config(root)
            targets.append(
                CleanupTarget(
                    path=base.path,
                    max_age=max_age if max_age is not None else base.max_age,
                    include=tuple(include) if include else base.include,
                    exclude=base.exclude + tuple(exclude or ()),
                    max_total_size=budget if budget is not None else base.max_total_size,
                )
            )
        if not targets and not (stale_locks or state):
            raise _usage(
                "nothing to clean: give PATHs (with --older-than) or configure cleanup.roots"
            )

    report, listed, exit_code = _run(
        app_ctx,
        targets,
        explicit=explicit,
        dry_run=dry_run,
        age_by=age_by,
        force_root=force_root,
        stream=(dry_run or list_removed) and not json_out,
        collect=(dry_run or list_removed) and json_out,
        stale_locks=stale_locks,
        state=state,
    )
    missing_explicit = [r.root for r in report.roots if r.missing and explicit]
    for missing_root in missing_explicit:
        error(f"{missing_root}: no such directory")
    if json_out:
        emit_json(_document(report, listed))
    else:
        _render(
            report,
            summary_to_stderr=dry_run or list_removed,
            quiet=quiet,
            reported=frozenset(missing_explicit),
        )
    if exit_code == ExitCode.OK and (not report.ok or missing_explicit):
        exit_code = ExitCode.FAILURE
    raise SystemExit(exit_code)


def _run(  # noqa: C901 - the cleanup core moves out of cli (issue 15 item 1)
    app_ctx: Any,
    targets: list[CleanupTarget],
    *,
    explicit: bool,
    dry_run: bool,
    age_by: str,
    force_root: bool,
    stream: bool,
    collect: bool,
    stale_locks: bool,
    state: bool,
) -> tuple[CleanupReport, dict[str, list[str]], int]:
    from reliactl.cleanup import (
        CleanupReport,
        Removal,
        check_root,
        clean_root,
        sweep_stale_locks,
    )
    from reliactl.errors import UnsafeRootError

    # Every root is checked before anything is removed.
    for target in targets:
        try:
            check_root(target.path, force=force_root)
        except UnsafeRootError as exc:
            error(str(exc))
            raise SystemExit(ExitCode.USAGE if explicit else ExitCode.CONFIG) from None

    listed: dict[str, list[str]] = {}
    current: list[str] = []
    out = sys.stdout

    def on_remove(removal: Removal) -> None:
        if stream:
            out.write(cescape(removal.path) + "\n")
        if collect:
            current.append(removal.path)

    progress = _progress_bar(stream)
    roots: list[RootReport] = []
    try:
        for target in targets:
            current = []
            if progress is not None:
                progress.start_root(target.path)
            roots.append(
                clean_root(
                    target,
                    dry_run=dry_run,
                    age_by=age_by,  # type: ignore[arg-type]
                    force_root=force_root,
                    on_remove=on_remove if (stream or collect) else None,
                    on_progress=progress.update if progress is not None else None,
                )
            )
            if collect:
                listed[roots[-1].root] = current
            if stream:
                out.flush()
    finally:
        if progress is not None:
            progress.stop()

    locks: LockSweepReport | None = None
    if stale_locks:
        lock_dir = app_ctx.loaded().config.run.lock_dir
        try:
            locks = sweep_stale_locks(lock_dir, dry_run=dry_run)
        except UnsafeRootError as exc:
            error(f"run.lock_dir: {exc}")
            raise SystemExit(ExitCode.CONFIG) from None
        if stream:
            for lock in locks.removed:
                out.write(cescape(lock.path) + "\n")
            out.flush()
    pruned: PruneReport | None = None
    if state:
        if dry_run:
            info("dry run: the state store is not pruned")
        else:
            import time

            from reliactl.breaker import keep_on_prune

            config = app_ctx.loaded().config
            pruned = app_ctx.store().prune(
                time.time(),
                config.state.retention,
                config.state.max_history,
                keep_breaker=keep_on_prune(config),
            )
    report = CleanupReport(dry_run=dry_run, roots=tuple(roots), locks=locks, state=pruned)
    return report, listed, ExitCode.OK


class _Bar:
    """A rich progress line on stderr (a terminal only) for long walks."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from reliactl.cli.output import console

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            console=console(stderr=True),
            transient=True,
        )
        self.task: Any = None
        self.progress.start()

    def start_root(self, root: str) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"cleaning {root}")

    def update(self, p: Any) -> None:
        from reliactl.durations import format_size

        self.progress.update(
            self.task,
            description=f"{p.root}: scanned {p.scanned}, removed {p.removed}"
            f" ({format_size(p.bytes_removed)})",
        )

    def stop(self) -> None:
        self.progress.stop()


def _progress_bar(streaming: bool) -> _Bar | None:
    if not is_tty(sys.stderr) or (streaming and is_tty(sys.stdout)):
        return None
    return _Bar()


# ---- rendering


def _root_doc(r: RootReport, listed: dict[str, list[str]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "root": r.root,
        "missing": r.missing,
        "max_age": r.max_age,
        "max_total_size": r.max_total_size,
        "scanned": r.scanned,
        "files_removed": r.files_removed,
        "symlinks_removed": r.symlinks_removed,
        "dirs_removed": r.dirs_removed,
        "bytes_removed": r.bytes_removed,
        "removed_for_size": r.removed_for_size,
        "kept_bytes": r.kept_bytes,
        "over_budget": r.over_budget,
        "skipped": dict(r.skipped),
        "error_count": r.error_count,
        "errors": [{"path": e.path, "message": e.message} for e in r.errors],
    }
    if r.root in listed:
        doc["removed"] = listed[r.root]
    return doc


def _locks_doc(locks: LockSweepReport) -> dict[str, Any]:
    return {
        "lock_dir": locks.lock_dir,
        "missing": locks.missing,
        "removed": [
            {
                "path": s.path,
                "pid": s.pid,
                "host": s.host,
                "command": s.command,
                "reason": s.reason,
            }
            for s in locks.removed
        ],
        "kept": dict(locks.kept),
        "errors": [{"path": e.path, "message": e.message} for e in locks.errors],
    }


def _state_doc(p: PruneReport) -> dict[str, Any]:
    return {
        "events_removed": p.events_removed,
        "runs_removed": p.runs_removed,
        "records_removed": p.records_removed,
        "bytes_before": p.bytes_before,
        "bytes_after": p.bytes_after,
    }


def _document(report: CleanupReport, listed: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "ok": report.ok,
        "files_removed": report.files_removed,
        "dirs_removed": report.dirs_removed,
        "bytes_removed": report.bytes_removed,
        "roots": [_root_doc(r, listed) for r in report.roots],
        "stale_locks": _locks_doc(report.locks) if report.locks is not None else None,
        "state": _state_doc(report.state) if report.state is not None else None,
    }


def _skipped_text(skipped: dict[str, int] | Any) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in skipped.items()) or "-"


def _render(
    report: CleanupReport,
    *,
    summary_to_stderr: bool,
    quiet: bool = False,
    reported: frozenset[str] = frozenset(),  # missing roots already said as errors
) -> None:
    from reliactl.cli.output import table
    from reliactl.durations import format_size

    verb = "would remove" if report.dry_run else "removed"
    for r in report.roots:
        for problem in r.errors[:MAX_ERRORS_SHOWN]:
            warn(f"{cescape(problem.path)}: {problem.message}")
        if r.error_count > MAX_ERRORS_SHOWN:
            warn(f"{r.root}: {r.error_count - MAX_ERRORS_SHOWN} more errors (see --json)")
        if r.over_budget:
            warn(
                f"{r.root}: still {format_size(r.over_budget)} over its size budget"
                " (what is left may not be removed)"
            )
    if report.locks is not None:
        for problem in report.locks.errors:
            warn(f"{cescape(problem.path)}: {problem.message}")
    if quiet:
        return  # the problems above are all there is to say
    if summary_to_stderr:
        # a missing PATH given: its error said it once
        for r in [r for r in report.roots if r.root not in reported]:
            if r.missing:
                info(f"{r.root}: does not exist; nothing to do")
                continue
            info(
                f"{r.root}: {verb} {r.files_removed + r.symlinks_removed} files,"
                f" {r.dirs_removed} directories, {format_size(r.bytes_removed)};"
                f" skipped: {_skipped_text(r.skipped)}; errors: {r.error_count}"
            )
    elif report.roots:
        rows = [
            (
                r.root,
                "missing" if r.missing else r.files_removed + r.symlinks_removed,
                "" if r.missing else r.dirs_removed,
                "" if r.missing else format_size(r.bytes_removed),
                "" if r.missing else _skipped_text(r.skipped),
                "" if r.missing else r.error_count,
            )
            for r in report.roots
        ]
        table(("ROOT", "FILES", "DIRS", "BYTES", "SKIPPED", "ERRORS"), rows)
    if report.locks is not None:
        locks = report.locks
        kept = _skipped_text(locks.kept)
        info(
            f"{locks.lock_dir}: {verb} {len(locks.removed)} stale lock"
            f"{'s' if len(locks.removed) != 1 else ''}; kept: {kept}"
        )
    if report.state is not None:
        s = report.state
        info(
            f"state: removed {s.runs_removed} runs, {s.events_removed} breaker events,"
            f" {s.records_removed} records; {format_size(s.bytes_before)} ->"
            f" {format_size(s.bytes_after)}"
        )
    if not report.roots and report.locks is None and report.state is None:
        emit_text("nothing to do")
