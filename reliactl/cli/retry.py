"""`reliactl retry`: see what a retry policy will do before putting it in cron."""

from __future__ import annotations

import math
import sys

from reliactl._settings import MAX_RETRIES, max_retries_error
from reliactl.cli import _fastrt
from reliactl.cli.context import app_context
from reliactl.cli.output import emit_json, emit_text, reports_errors, table

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Annotated, Any, NoReturn

    import typer

    from reliactl.cli.options import (
        BaseDelayOption,
        JitterOption,
        JsonOption,
        MaxDelayOption,
        MaxElapsedOption,
        MaxRetriesOption,
        StrategyOption,
    )


def build() -> typer.Typer:
    """The `retry` group. The module imports no typer: the fast dispatcher
    (``reliactl.cli._fast``) calls `plan` directly, so it ends with ``SystemExit``; Typer
    evaluates the (string) annotations here, at registration."""
    _fastrt.typer_names(
        globals(),
        "BaseDelayOption",
        "JitterOption",
        "JsonOption",
        "MaxDelayOption",
        "MaxElapsedOption",
        "MaxRetriesOption",
        "StrategyOption",
    )
    group = typer.Typer(
        help="Retry policies: print the backoff schedule a policy would follow.",
        no_args_is_help=True,
    )
    group.command()(plan)
    return group


MAX_PLAN_RETRIES = MAX_RETRIES  # every retry policy's cap (reliactl._settings)
BAR_WIDTH = 24


def _usage(message: str) -> NoReturn:
    raise _fastrt.usage(message)


def _choice(option: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered not in choices:
        import difflib

        close = difflib.get_close_matches(lowered, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        _usage(f"{option}: expected one of {', '.join(choices)}, got {value!r}{hint}")
    return lowered


def _bar(delay: float, longest: float) -> str:
    if longest <= 0 or delay <= 0:
        return ""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    block = "\u2588" if encoding in ("utf8", "utf16", "utf32") else "#"
    return block * max(1, round(delay / longest * BAR_WIDTH))


@reports_errors
def plan(
    ctx: typer.Context,
    strategy: StrategyOption = None,
    base_delay: BaseDelayOption = None,
    max_delay: MaxDelayOption = None,
    max_retries: MaxRetriesOption = None,
    jitter: JitterOption = None,
    multiplier: Annotated[
        float | None,
        typer.Option(
            "--multiplier",
            metavar="X",
            help="Growth factor of exponential backoff, >= 1 [default: retry.multiplier]",
        ),
    ] = None,
    max_elapsed: MaxElapsedOption = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="N", help="Seed the jitter, for a reproducible sample."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Print the delay before each retry, the time spent so far, and a bar per delay.

    Settings not given come from the `retry` section of the configuration. With jitter the
    delays are one random sample (--seed N makes it reproducible) and the range column
    shows what any run can get. Attempts are assumed to fail at once.
    """
    from reliactl.retry import JITTERS, STRATEGIES

    name = _choice("--strategy", strategy, STRATEGIES)
    jitter_mode = _choice("--jitter", jitter, JITTERS)
    base, cap = _fastrt.retry_delays(base_delay, max_delay)  # `run`'s check too
    deadline = None if max_elapsed is None else _fastrt.max_elapsed(max_elapsed)
    if max_retries is not None and max_retries_error(max_retries):
        _usage(f"--max-retries: {max_retries_error(max_retries)}")
    if multiplier is not None and not (math.isfinite(multiplier) and multiplier >= 1):
        _usage(f"--multiplier: expected a finite number >= 1, got {multiplier:g}")
    # Only one of them given, past the configured other: strategy_from_config moves it.
    given: dict[str, Any] = {
        "strategy": name,
        "base_delay": base,
        "max_delay": cap,
        "max_retries": max_retries,
        "jitter": jitter_mode,
        "multiplier": multiplier,
    }
    if any(value is None for value in given.values()) or (max_elapsed is None):
        section = app_context(ctx).loaded().config.retry
    else:
        from reliactl.config import RetryConfig

        section = RetryConfig()
    if max_elapsed is None:
        deadline = section.max_elapsed
    retries = max_retries if max_retries is not None else section.max_retries
    if retries > MAX_PLAN_RETRIES:
        _usage(
            f"retry.max_retries is {retries}; the plan shows at most {MAX_PLAN_RETRIES} "
            "retries (use --max-retries)"
        )

    import random

    from reliactl.retry import plan_schedule, strategy_from_config

    rng = random.Random(seed) if seed is not None else None
    policy = strategy_from_config(section, rng=rng, **given)
    result = plan_schedule(policy, max_elapsed=deadline)
    _render(result, seed=seed, json_out=json_out)


def _render(result: Any, *, seed: int | None, json_out: bool) -> None:
    from reliactl.durations import format_duration

    strategy = result.strategy
    if json_out:
        emit_json(
            {
                "strategy": strategy.name,
                "jitter": strategy.jitter,
                "base_delay": strategy.base_delay,
                "max_delay": strategy.max_delay,
                "multiplier": getattr(strategy, "multiplier", None),
                "max_retries": strategy.max_retries,
                "max_elapsed": result.max_elapsed,
                "seed": seed,
                "attempts": result.attempts,
                "total_delay": result.total_delay,
                "schedule": [
                    {
                        "retry": row.retry,
                        "attempt": row.retry + 1,
                        "delay": row.delay,
                        "cumulative": row.cumulative,
                        "low": row.low,
                        "high": row.high,
                        "cut_by_deadline": row.cut,
                    }
                    for row in result.rows
                ],
            }
        )
        return
    parts = [f"{strategy.name} backoff", f"{strategy.jitter} jitter"]
    parts.append(f"base {format_duration(strategy.base_delay)}")
    parts.append(f"max {format_duration(strategy.max_delay)}")
    if strategy.name == "exponential":
        parts.append(f"x{strategy.multiplier:g}")
    parts.append(f"{strategy.max_retries} retries")
    if result.max_elapsed is not None:
        parts.append(f"max elapsed {format_duration(result.max_elapsed)}")
    if strategy.jitter != "none":
        parts.append(f"seed {seed}" if seed is not None else "one random sample")
    emit_text(", ".join(parts))
    jittered = strategy.jitter != "none"
    columns = ["ATTEMPT", "DELAY", *(["RANGE"] if jittered else []), "CUMULATIVE", ""]
    longest = max((row.delay for row in result.rows), default=0.0)
    rows = []
    for row in result.rows:
        delay = format_duration(row.delay) + (" (cut)" if row.cut else "")
        span = f"{format_duration(row.low)}-{format_duration(row.high)}"
        rows.append(
            [
                str(row.retry + 1),
                delay,
                *([span] if jittered else []),
                format_duration(row.cumulative),
                _bar(row.delay, longest),
            ]
        )
    if rows:
        table(columns, rows)
    plural = "s" if result.attempts != 1 else ""
    emit_text(
        f"{result.attempts} attempt{plural}; attempt 1 at once; "
        f"{format_duration(result.total_delay)} of backoff in all"
    )
