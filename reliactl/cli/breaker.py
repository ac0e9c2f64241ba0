"""`reliactl breaker`: see and steer the circuit breakers kept in the state store.

Known breakers are those with a record in the state store (some process used them) and those
named in ``circuit_breaker.breakers`` of the configuration. An unknown NAME is a usage error
(exit 2) whose message lists the known ones.
"""

from __future__ import annotations

from reliactl.cli._fastrt import duration_option, require_text, usage
from reliactl.cli.context import app_context
from reliactl.cli.exitcodes import ExitCode
from reliactl.cli.output import (
    TIMES_JSON_VERSION,
    emit_json,
    emit_text,
    info,
    iso_utc,
    printable,
    reports_errors,
    table,
    with_times,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from reliactl.breaker import BreakerSnapshot
    from reliactl.cli.options import BreakerNameArg as NameArg
    from reliactl.cli.options import JsonOption as JsonFlag
    from reliactl.cli.options import hidden, limit_option
    from reliactl.config import Config
    from reliactl.state import StateStore


def build() -> typer.Typer:
    """The `breaker` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `list` and `show` directly, so the commands end with
    ``SystemExit``; Typer evaluates the (string) annotations here, at registration."""
    from reliactl.cli._fastrt import typer_names

    typer_names(
        globals(), "hidden", "limit_option", JsonFlag="JsonOption", NameArg="BreakerNameArg"
    )
    group = typer.Typer(
        help="See and steer circuit breakers shared through the state store: which services "
        "are failing fast, since when, and for how long.",
        no_args_is_help=True,
    )
    group.command("list")(list_)
    group.command()(show)
    group.command()(reset)
    group.command()(trip)
    group.command()(close)
    return group


DURATION_KEYS = (
    "recovery_timeout",
    "max_recovery_timeout",
    "trial_timeout",
    "slow_call_threshold",
)
STATE_STYLES = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def _stamp(epoch: float | None) -> str:
    return iso_utc(epoch) or "-"


def _breaker_doc(snap: BreakerSnapshot) -> dict[str, Any]:
    """A snapshot as JSON: points in time as ISO 8601 UTC plus ``*_epoch`` numbers."""
    # `since` (when it entered its state) is a point in time: named like the others.
    doc = {("changed_at" if k == "since" else k): v for k, v in snap.to_dict().items()}
    return with_times(doc, "opened_at", "last_failure_at", "changed_at")


def _retry_in(snap: BreakerSnapshot) -> str:
    from reliactl.durations import format_duration

    if snap.state.value != "open":
        return "-"
    if snap.retry_after is None:
        return "until closed"
    if snap.retry_after <= 0:
        return "now"
    import math

    # Rounded up: "retry in" never promises a trial sooner than it can happen.
    if snap.retry_after < 10:
        return format_duration(math.ceil(snap.retry_after * 10) / 10)
    return format_duration(math.ceil(snap.retry_after))


def _rate(snap: BreakerSnapshot) -> str:
    rate = snap.failure_rate
    if rate is None:
        return "-"
    return f"{rate:.0f}% ({snap.window_failures}/{snap.window_calls})"


def _require_known(store: StateStore, config: Config, name: str) -> None:
    from reliactl.breaker import is_known_breaker, known_breaker_names

    if is_known_breaker(store, config, name):
        return  # every name is read only to say which ones exist when this one does not
    known = known_breaker_names(store, config)
    if name in known:
        return
    import difflib  # only for a name that is not known (~1.4 ms at every start otherwise)

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if known:
        raise usage(f"no breaker named '{name}'{hint}; known breakers: {', '.join(known)}")
    raise usage(
        f"no breaker named '{name}': no breaker has been used or configured yet"
        " (name it under circuit_breaker.breakers to manage it before first use)"
    )


def breakers_document(snapshots: list[BreakerSnapshot]) -> dict[str, Any]:
    """The JSON document of `breaker list --json` (and serve's /api/breakers)."""
    return {
        "version": TIMES_JSON_VERSION,
        "breakers": [_breaker_doc(s) for s in snapshots],
        "open": [s.name for s in snapshots if s.state.value == "open"],
        "total": len(snapshots),
    }


@reports_errors
def list_(
    ctx: typer.Context,
    json_out: JsonFlag = False,
    fail_on_open: Annotated[
        bool,
        typer.Option(
            "--fail-on-open",
            help="Exit 69 when any breaker is open (half-open ones do not count).",
        ),
    ] = False,
) -> None:
    """Every known breaker: state, consecutive failures, failure rate, opened at, retry in."""
    from reliactl.breaker import list_breakers

    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    snapshots = list_breakers(app_ctx.store(), config)
    open_names = [s.name for s in snapshots if s.state.value == "open"]
    if json_out:
        emit_json(breakers_document(snapshots), version=TIMES_JSON_VERSION)
    elif not snapshots:
        info("no breakers yet: none has been used or configured")
    else:
        rows = [
            [
                s.name,
                s.state.value,
                s.consecutive_failures,
                _rate(s),
                _stamp(s.opened_at) if s.state.value == "open" else "-",
                _retry_in(s),
            ]
            for s in snapshots
        ]
        styles = [[None, STATE_STYLES[s.state.value], None, None, None, None] for s in snapshots]
        table(
            ["NAME", "STATE", "FAILURES", "FAILURE RATE", "OPENED AT", "RETRY IN"],
            rows,
            styles=styles,
        )
    if fail_on_open and open_names:
        raise SystemExit(ExitCode.UNAVAILABLE)


@reports_errors
def show(
    ctx: typer.Context,
    name: NameArg,
    json_out: JsonFlag = False,
    limit: Annotated[int, limit_option("How many recent transitions to show.")] = 10,
    transitions: Annotated[int | None, hidden("--transitions", metavar="N")] = None,
) -> None:
    """One breaker: the config in force, its counters and its last transitions."""
    from reliactl.breaker import breaker_snapshot

    require_text("NAME", name)
    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    store = app_ctx.store()
    if transitions is not None:  # the old name of --limit
        limit = transitions
    snap = breaker_snapshot(store, config, name)
    while snap is None:  # unknown (a usage error), or it was created meanwhile
        _require_known(store, config, name)
        snap = breaker_snapshot(store, config, name)
    events = store.events(name, limit=max(0, limit))
    if json_out:
        emit_json(
            {
                "breaker": _breaker_doc(snap),
                "transitions": [
                    with_times(
                        {
                            "from": e.from_state,
                            "to": e.to_state,
                            "reason": e.reason,
                            "at": e.at,
                            "host": e.host,
                        },
                        "at",
                    )
                    for e in events
                ],
            },
            version=TIMES_JSON_VERSION,
        )
        return
    emit_text(_show_text(snap, events))


def _show_text(snap: BreakerSnapshot, events: list[Any]) -> str:
    from reliactl.durations import format_duration

    state = snap.state.value + (" (tripped by hand)" if snap.forced else "")
    # stored text (the name, a failure's message, a host) is C-escaped: one line, no escapes
    lines = [f"breaker {printable(snap.name)}: {state}"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<22}{printable(str(value))}")

    row("since", _stamp(snap.since))
    row("consecutive failures", snap.consecutive_failures)
    row("failure rate", _rate(snap) + (" of the last calls" if snap.window_calls else ""))
    if snap.state.value == "open":
        row("opened at", _stamp(snap.opened_at))
        row("open for", "until closed" if snap.open_for is None else format_duration(snap.open_for))
        row("retry in", _retry_in(snap))
    if snap.state.value == "half_open":
        row("trials in flight", snap.trials_in_flight)
    row(
        "calls",
        f"{snap.calls} ({snap.successes} succeeded, {snap.failures} failed,"
        f" {snap.slow_calls} slow); {snap.rejections} rejected",
    )
    if snap.last_failure:
        row("last failure", f"{snap.last_failure} at {_stamp(snap.last_failure_at)}")
    lines.append("config in force:")
    for key, value in snap.config.items():
        if value in (None, [], ()):
            continue
        shown = format_duration(value) if key in DURATION_KEYS and value else value
        row(key, shown)
    if events:
        lines.append("recent transitions (newest first):")
        for e in events:
            host = f"  on {printable(e.host)}" if e.host else ""
            change = f"{e.from_state} -> {e.to_state}: {e.reason}"
            lines.append(f"  {_stamp(e.at)}  {printable(change)}{host}")
    else:
        lines.append("no transitions recorded")
    return "\n".join(lines)


@reports_errors
def reset(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The breaker to reset.", metavar="NAME")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Reset every known breaker.")] = False,
) -> None:
    """Forget a breaker's state: closed, every counter zero (the transition is recorded)."""
    from reliactl.breaker import get_persistent_breaker, known_breaker_names

    if name is not None:
        require_text("NAME", name)
    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    store = app_ctx.store()
    if (name is None) == (not all_):
        raise usage("name one breaker, or use --all (not both)")
    if name is not None:
        _require_known(store, config, name)
        names = [name]
    else:
        names = known_breaker_names(store, config)
    for each in names:
        breaker = get_persistent_breaker(each, config, store)
        before = breaker.state.value
        breaker.reset("reset by hand (reliactl breaker reset)")
        info(f"reset breaker '{each}' (was {before})")
    if not names:
        info("no breakers to reset")


@reports_errors
def trip(
    ctx: typer.Context,
    name: NameArg,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="DURATION",
            help="Stay open this long (e.g. 30m), then admit a trial call as usual"
            " (default: until `reliactl breaker close`).",
        ),
    ] = None,
) -> None:
    """Force a breaker open (maintenance): callers fail fast with exit 69 until it closes."""
    from reliactl.breaker import get_persistent_breaker
    from reliactl.durations import format_duration

    require_text("NAME", name)
    duration = None if for_ is None else duration_option("--for", for_)
    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    store = app_ctx.store()
    _require_known(store, config, name)
    how_long = f"for {format_duration(duration)}" if duration else "until closed"
    breaker = get_persistent_breaker(name, config, store)
    breaker.trip(duration, f"tripped by hand {how_long} (reliactl breaker trip)")
    info(f"breaker '{name}' is open {how_long}")


@reports_errors
def close(ctx: typer.Context, name: NameArg) -> None:
    """Close a breaker now: calls pass again (counters are kept)."""
    from reliactl.breaker import get_persistent_breaker

    require_text("NAME", name)
    app_ctx = app_context(ctx)
    config = app_ctx.loaded().config
    store = app_ctx.store()
    _require_known(store, config, name)
    breaker = get_persistent_breaker(name, config, store)
    before = breaker.state.value
    breaker.close("closed by hand (reliactl breaker close)")
    info(f"breaker '{name}' is closed (was {before})")
