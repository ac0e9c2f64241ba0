"""reliactl jobs [NAME]: declared jobs and jobs seen in history, and whether they ran."""

from __future__ import annotations

from reliactl.cli.exitcodes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.cli.options import JsonOption


def jobs_document(
    statuses: list[Any], recent: list[Any] | None = None, notes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``jobs --json`` document (serve's /api/jobs too): each JobStatus with its times as
    every JSON document shows them (``X_at`` ISO text to the second, ``X_at_epoch`` beside), its
    silence, acknowledgement and flapping (``notes``: each job's alertstate note, by name), and
    ``runs`` (the recent runs of one job) when ``recent`` is given."""
    from reliactl.cli.output import with_times

    def plain(status: Any) -> dict[str, Any]:
        doc: dict[str, Any] = with_times(
            status.to_dict(), "last_run_at", "last_success_at", "next_expected_at", "declared_at"
        )
        note = (notes or {}).get(status.name)
        silence = note.silence if note is not None else None
        doc["silenced"] = (
            None
            if silence is None
            else with_times(
                {"by": silence.by, "reason": silence.reason, "until": silence.end}, "until"
            )
        )
        problem = note.problem if note is not None else None
        doc["acknowledged"] = (
            None
            if problem is None or not problem.acknowledged
            else with_times(
                {"by": problem.ack_by, "reason": problem.ack_reason, "at": problem.ack_at}, "at"
            )
        )
        doc["flapping"] = bool(problem is not None and problem.flapping)
        return doc

    document: dict[str, Any] = {"jobs": [plain(s) for s in statuses]}
    if recent is not None:
        document["runs"] = [
            with_times(
                {
                    "id": r.id,
                    "started_at": r.started_at,
                    "ended_at": r.ended_at,
                    "exit_code": r.exit_code,
                    "outcome": r.outcome,
                    "host": r.data.get("host"),
                },
                "started_at",
                "ended_at",
            )
            for r in recent
        ]
    return document


def typer_names() -> None:
    """Give ``jobs``'s (string) annotations the names Typer evaluates when it registers the
    command. The module imports no typer: the fast dispatcher (``reliactl.cli._fast``) calls
    ``jobs()`` directly, so it ends with ``SystemExit``."""
    from reliactl.cli._fastrt import typer_names

    typer_names(globals(), "JsonOption")


def jobs(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Only this job, with its recent runs."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Jobs declared in `jobs:` and seen in run history: last run, last success, next expected
    run, status (OK, WARNING, CRITICAL as the `job` health checks) and failures in a row.

    Exit 0 when every declared job (or NAME) is OK, 1 when one is not (the answer is "no");
    jobs only seen in history are listed (at worst WARNING) but do not change the exit code.
    An unknown NAME is a usage error (2).
    """
    import time

    from reliactl.cli.context import app_context
    from reliactl.cli.output import (
        emit_json,
        emit_text,
        error,
        iso_utc,
        printable,
        report_error,
        table,
    )
    from reliactl.errors import ReliactlError
    from reliactl.jobs import stored_text
    from reliactl.schedule import job_statuses

    now = time.time()
    key = None if name is None else stored_text(name)  # as the history records it (`runs`)
    try:
        context = app_context(ctx)
        declared = context.loaded().config.jobs
        store = context.store()
        statuses = job_statuses(declared, store, now=now)
        if name is not None:
            statuses = [s for s in statuses if s.name == key]
            if not statuses:
                known = ", ".join(sorted(declared)) or "none declared"
                error(f"no job named '{printable(name)}' declared or in history (jobs: {known})")
                raise SystemExit(ExitCode.USAGE)
        recent = store.runs(key, 10) if key is not None else []
        notes = job_notes(store, declared, [s.name for s in statuses], now)
    except ReliactlError as exc:
        raise SystemExit(report_error(exc)) from None

    def stamp(epoch: float | None) -> str | None:
        return iso_utc(epoch)  # to the second, as `runs` and `breaker list` show times

    if json_out:
        emit_json(jobs_document(statuses, recent if name is not None else None, notes))
    elif statuses:
        rows = [
            [
                s.name + ("" if s.declared else " (not declared)"),
                s.status + (f" ({notes[s.name].text()})" if s.name in notes else ""),
                s.schedule,
                stamp(s.last_run_at) or "-",
                s.last_outcome or "-",
                stamp(s.last_success_at) or "-",
                stamp(s.next_expected_at) or "-",
                s.consecutive_failures,
            ]
            for s in statuses
        ]
        columns = ["JOB", "STATUS", "EXPECTED", "LAST RUN", "OUTCOME", "LAST SUCCESS", "NEXT"]
        table([*columns, "FAILURES"], rows)
        for s in statuses:
            if s.status != "OK" or name is not None:
                emit_text(printable(f"{s.name}: {s.message}"))  # stored text: one safe line
        if recent:
            emit_text("")
            table(
                ["ID", "STARTED", "EXIT", "OUTCOME", "HOST"],
                [
                    [r.id, stamp(r.started_at), r.exit_code, r.outcome, r.data.get("host") or "-"]
                    for r in recent
                ],
            )
    else:
        import sys

        print("no jobs declared (jobs: in the configuration) or recorded", file=sys.stderr)
    judged = statuses if name is not None else [s for s in statuses if s.declared]
    raise SystemExit(ExitCode.OK if all(s.status == "OK" for s in judged) else ExitCode.FAILURE)


def job_notes(store: Any, declared: Any, names: list[str], now: float) -> dict[str, Any]:
    """Each job's silence/acknowledgement (of its job:NAME check), by job name."""
    from reliactl.health.alertstate import check_notes
    from reliactl.health.records import RecordStore

    breakers = {n: j.breaker for n, j in declared.items() if j.breaker}
    found = check_notes(RecordStore(store), [f"job:{n}" for n in names], now, breakers)
    return {check[len("job:") :]: note for check, note in found.items()}
