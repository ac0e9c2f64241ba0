"""Building and validating: raw values into the frozen sections, every problem at once with
its file:line (or variable, or flag)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from reliactl import _records
from reliactl.config._schema import (
    REMEDIATION_ACTIONS,
    SYSTEM_CHECK_NAMES,
    AlertSink,
    CleanupRoot,
    Config,
    HealthMonitorConfig,
    JobSettings,
    KeyPath,
    StateConfig,
    _hints,
    _is_container,
    _is_optional,
    _strip_optional,
)
from reliactl.durations import format_duration, parse_duration, parse_size
from reliactl.errors import ConfigProblem, DurationError
from reliactl.redact import REDACTED

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class _Origins:
    """Where each key path was set: ("file", line) | ("env", VAR) | ("flag", "--name")."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.by_path: dict[KeyPath, tuple[str, Any]] = {}

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        dotted = dotted_path(path)
        probe = path
        while True:
            origin = self.by_path.get(probe)
            if origin is not None:
                kind, where = origin
                if kind == "file":
                    return ConfigProblem(self.filename, where, dotted, message)
                if kind == "env":
                    return ConfigProblem("environment", None, dotted, message, variable=where)
                return ConfigProblem(f"flag {where}", None, dotted, message)
            if not probe:
                return ConfigProblem(self.filename, None, dotted, message)
            probe = probe[:-1]

    def source_of(self, path: KeyPath) -> str:
        origin = self.by_path.get(path)
        if origin is None:
            return "default"
        kind, where = origin
        if kind == "file":
            return f"{self.filename}:{where}"
        if kind == "env":
            return f"env {where}"
        return f"flag {where}"


def dotted_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return repr(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _suggest(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_Plan = tuple[frozenset[str], list[str], tuple[tuple[str, "Any", "Any", bool], ...]]
_plans: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    """What ``_build`` needs of a section class, worked out once per class (5,000 checks
    would otherwise re-read the same fields and hints 5,000 times): its key names, and per
    field (name, annotation, metadata, required)."""
    plan = _plans.get(cls)
    if plan is None:
        hints = _hints(cls)
        fields = _records.fields(cls)
        names = [f.name for f in fields]
        plan = (
            frozenset(names),
            names,
            tuple(
                (
                    f.name,
                    hints[f.name],
                    f.metadata,
                    f.default is _records.MISSING and f.default_factory is _records.MISSING,
                )
                for f in fields
            ),
        )
        _plans[cls] = plan
    return plan


def _build(
    cls: type[T], raw: Any, path: KeyPath, origins: _Origins, problems: list[ConfigProblem]
) -> T | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(origins.problem(path, f"expected a mapping, got {_kind(raw)}"))
        return None
    known, names, fields = _plan(cls)
    for key in raw:
        if key not in known:
            problems.append(
                origins.problem((*path, key), f"unknown key{_suggest(str(key), names)}")
            )
    kwargs: dict[str, Any] = {}
    ok = True
    for name, annotation, meta, required in fields:
        if name not in raw:
            if required:
                problems.append(origins.problem((*path, name), "is required"))
                ok = False
            continue
        value = raw[name]
        if value is None and _is_container(annotation):
            # `retry:` with every key commented out: the section (or list, mapping) is
            # present but empty, which means its defaults.
            if required:
                problems.append(origins.problem((*path, name), "is required"))
                ok = False
            continue
        good, value = _convert(annotation, meta, value, (*path, name), origins, problems)
        if good:
            kwargs[name] = value
        else:
            ok = False
    if not ok:
        return None
    return cls(**kwargs)


_shapes: dict[Any, tuple[bool, Any, Any, bool]] = {}


def _shape(annotation: Any) -> tuple[bool, Any, Any, bool]:
    """(optional, the annotation without None, its generic origin, is it a section), once
    per annotation: the schema has a few dozen, a big file converts them 100,000 times."""
    shape = _shapes.get(annotation)
    if shape is None:
        base = _strip_optional(annotation)
        shape = (
            _is_optional(annotation),
            base,
            _records.type_origin(base),
            _records.is_record(base),
        )
        _shapes[annotation] = shape
    return shape


def _convert(  # noqa: C901 - one branch per annotation shape of the schema
    annotation: Any,
    meta: Mapping[str, Any],
    value: Any,
    path: KeyPath,
    origins: _Origins,
    problems: list[ConfigProblem],
) -> tuple[bool, Any]:
    def bad(message: str) -> tuple[bool, Any]:
        problems.append(origins.problem(path, message))
        return False, None

    optional, base, origin, is_section = _shape(annotation)
    if value is None:
        if optional:
            return True, None
        return bad(f"expected {_expected(annotation, meta)}, got nothing")
    kind = meta.get("kind")
    if kind == "argv":  # an argv list, or one string (run by a shell only with shell: true)
        if isinstance(value, str):
            return True, value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return True, list(value)
        return bad(
            f"expected an argv list of strings (or one string with shell: true), got {_kind(value)}"
        )
    if is_section:
        if str(kind).startswith("shorthand:") and not isinstance(value, dict):
            value = {str(kind).partition(":")[2]: value}  # `forecast: 24h` is its horizon
        built = _build(base, value, path, origins, problems)
        return built is not None, built
    if origin is list:
        if not isinstance(value, list):
            return bad(f"expected a list, got {_kind(value)}")
        (item_type,) = _records.type_args(base)
        items, good = [], True
        for index, item in enumerate(value):
            ok, converted = _convert(item_type, {}, item, (*path, index), origins, problems)
            good = good and ok
            items.append(converted)
        return good, items
    if origin is dict:
        if not isinstance(value, dict):
            return bad(f"expected a mapping, got {_kind(value)}")
        _, value_type = _records.type_args(base)
        result, good = {}, True
        item_meta = {"kind": kind} if kind == "rates" else {}
        for key, item in value.items():
            ok, converted = _convert(
                value_type, item_meta, item, (*path, str(key)), origins, problems
            )
            good = good and ok
            result[str(key)] = converted
        return good, result
    if kind == "duration":
        try:
            number: float = parse_duration(value)
        except DurationError as exc:
            return bad(str(exc))
        return _check_range(number, meta, bad, format_duration)
    if kind == "size":
        try:
            size = parse_size(value)
        except DurationError as exc:
            return bad(str(exc))
        return _check_range(size, meta, bad, str)
    if kind == "range":
        from reliactl.ranges import RangeError, parse_range

        try:
            parsed = parse_range(value)
        except RangeError as exc:
            return bad(str(exc))
        return True, str(parsed)
    if kind == "rates":
        if not isinstance(value, str):
            return bad(f'expected a rate such as "60/minute;1000/hour", got {_kind(value)}')
        from reliactl.ratelimit import parse_rates as parse

        try:
            parse(value)
        except ValueError as exc:
            return bad(str(exc))
        return True, value
    if base is bool:
        if not isinstance(value, bool):
            return bad(f"expected true or false, got {_kind(value)}")
        return True, value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return bad(f"expected {_expected(base, meta)}, got {_kind(value)}")
        return _check_range(value, meta, bad, str)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"expected {_expected(base, meta)}, got {_kind(value)}")
        if not math.isfinite(value):
            return bad(f"expected a finite number, got {value}")
        return _check_range(float(value), meta, bad, str)
    if base is str:
        if not isinstance(value, str):
            return bad(f"expected a string, got {_kind(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = _suggest(value, list(choices))
            return bad(f"expected one of {', '.join(choices)}, got {value!r}{hint}")
        return True, value
    return bad(f"unsupported value {_kind(value)}")  # pragma: no cover - schema error


def _expected(annotation: Any, meta: Mapping[str, Any]) -> str:
    base = _strip_optional(annotation)
    if meta.get("kind") == "duration":
        return "a duration such as 30s, 5m or 1h30m"
    if meta.get("kind") == "size":
        return "a size such as 500MB or 2GiB"
    noun = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        base, "a value"
    )
    if meta.get("gt") == 0 and base in (int, float):
        return "a positive " + ("integer" if base is int else "number")
    return noun


def _check_range(value: Any, meta: Mapping[str, Any], bad: Any, show: Any) -> tuple[bool, Any]:
    gt, ge, le = meta.get("gt"), meta.get("ge"), meta.get("le")
    if gt is not None and not value > gt:
        if gt == 0:
            return bad(f"expected a positive value, got {show(value)}")  # type: ignore[no-any-return]
        return bad(f"expected more than {gt}, got {show(value)}")  # type: ignore[no-any-return]
    if ge is not None and not value >= ge:
        return bad(f"expected at least {ge}, got {show(value)}")  # type: ignore[no-any-return]
    if le is not None and not value <= le:
        return bad(f"expected at most {le}, got {show(value)}")  # type: ignore[no-any-return]
    return True, value


def _cross_checks(config: Config, origins: _Origins) -> list[ConfigProblem]:
    problems = []
    r = config.retry
    if r.max_delay < r.base_delay:
        problems.append(
            origins.problem(
                ("retry", "max_delay"),
                f"must not be less than retry.base_delay ({format_duration(r.base_delay)}),"
                f" got {format_duration(r.max_delay)}",
            )
        )
    h = config.health_monitor
    for metric in ("cpu", "memory", "swap", "disk", "file_handles"):
        warn, crit = getattr(h, f"{metric}_warn"), getattr(h, f"{metric}_critical")
        if warn > crit:
            problems.append(
                origins.problem(
                    ("health_monitor", f"{metric}_warn"),
                    f"must not be above {metric}_critical ({crit:g}), got {warn:g}",
                )
            )
    problems.extend(_health_problems(h, origins))
    problems.extend(_remediation_problems(config, origins))
    problems.extend(_alerts_problems(config, origins))
    problems.extend(_state_problems(config.state, origins))
    problems.extend(_job_problems(config.jobs, origins))
    problems.extend(_chaos_problems(config, origins))
    return problems


def _chaos_problems(config: Config, origins: _Origins) -> list[ConfigProblem]:
    """Every chaos rule parses (the syntax of reliactl.chaos)."""
    if not config.chaos.rules:  # the usual case: chaos is not imported on every start
        return []
    from reliactl.chaos import ChaosError, parse_rules

    problems = []
    for index, rule in enumerate(config.chaos.rules):
        try:
            parse_rules(rule)
        except ChaosError as exc:
            problems.append(origins.problem(("chaos", "rules", index), str(exc)))
    return problems


def _alerts_problems(config: Config, origins: _Origins) -> list[ConfigProblem]:
    """The alerts section: escalate_to names configured sinks, with escalate_after."""
    problems: list[ConfigProblem] = []
    a = config.alerts
    sinks = [s.name for s in config.health_monitor.alerts]
    for index, name in enumerate(a.escalate_to):
        if name not in sinks:
            listed = ", ".join(sinks) or "none configured"
            problems.append(
                origins.problem(
                    ("alerts", "escalate_to", index),
                    f"no sink named {name!r} in health_monitor.alerts (sinks: {listed})",
                )
            )
    if a.escalate_to and a.escalate_after is None:
        problems.append(
            origins.problem(("alerts", "escalate_to"), "needs alerts.escalate_after (how long)")
        )
    if a.escalate_after is not None and not a.escalate_to:
        problems.append(
            origins.problem(
                ("alerts", "escalate_after"), "needs alerts.escalate_to (the sinks to add)"
            )
        )
    if a.escalate_to and set(a.escalate_to) >= set(sinks):
        problems.append(
            origins.problem(
                ("alerts", "escalate_to"),
                "every sink is an escalation sink: nothing would hear of a problem at once",
            )
        )
    return problems


def _fullmatch(pattern: str, text: str) -> bool:
    """``re.fullmatch(pattern, text) is not None``. The name patterns below are checked by
    hand (``_NAME_RULES``): ``re`` (~2-3 ms with enum) is then imported only for another
    pattern, so a start with a typical configuration never needs it (issue 21). Equal to
    ``re`` on every pattern of the table (tests/test_config_names.py compares them)."""
    rule = _NAME_RULES.get(pattern)
    if rule is None:
        import re

        return re.fullmatch(pattern, text) is not None
    first, rest, least, most = rule
    return (
        least <= len(text) <= most
        and (not text or text[0] in first)
        and all(char in rest for char in text[1:])
    )


_ALNUM_ = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


_JOB_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.@\-]{0,127}"  # compiled at first use (re caches it)


def _job_problems(jobs: dict[str, JobSettings], origins: _Origins) -> list[ConfigProblem]:
    """Job names, one schedule each, cron expressions and zones that parse, usable pings."""
    problems: list[ConfigProblem] = []
    for name, job in jobs.items():
        path: KeyPath = ("jobs", name)
        if not _fullmatch(_JOB_NAME, name):
            problems.append(
                origins.problem(
                    path, f"expected a job name of letters, digits, _ . @ -, got {name!r}"
                )
            )
        if job.schedule and job.every is not None:
            problems.append(origins.problem((*path, "every"), "give schedule or every, not both"))
        if job.schedule or job.tz:
            from reliactl.schedule import cron_problem, tz_problem

            if job.schedule:
                problem = cron_problem(job.schedule)
                if problem:
                    problems.append(origins.problem((*path, "schedule"), problem))
            if job.tz:
                problem = tz_problem(job.tz)
                if problem:
                    problems.append(origins.problem((*path, "tz"), problem))
        ping = job.ping
        for key in ("url", "start", "success", "failure"):
            value = getattr(ping, key)
            if value:
                from reliactl.ping import check_template, ping_url_problem

                problem = ping_url_problem(value) if key == "url" else check_template(value)
                if problem:
                    from reliactl.redact import redact_url

                    shown = redact_url(value, path=False)
                    problems.append(origins.problem((*path, "ping", key), f"{problem}: {shown}"))
    return problems


def parse_remediation_action(text: str) -> tuple[str, tuple[str, ...]]:
    """``cleanup:ROOT``, ``restart:UNIT`` or ``signal:PIDFILE[:SIGNAL]`` as (kind, arguments).

    The one parser of a remediation's built-in action (validation and reliactl.remediate).
    A signal is a name such as HUP or SIGUSR1 (default HUP). Raises ValueError, one line.
    """
    import signal

    kind, sep, rest = text.partition(":")
    if not sep or kind not in REMEDIATION_ACTIONS:
        raise ValueError(
            f"expected cleanup:ROOT, restart:UNIT or signal:PIDFILE:SIGNAL, got {text!r}"
        )
    if not rest:
        raise ValueError(f"{kind}: needs a name after the colon, got {text!r}")
    if kind == "cleanup":
        return kind, (rest,)
    if kind == "restart":
        if "/" in rest or rest.startswith("-") or any(c.isspace() for c in rest):
            raise ValueError(f"restart: expected a systemd unit name, got {rest!r}")
        return kind, (rest,)
    path, colon, name = rest.rpartition(":")
    if not colon:
        path, name = rest, "HUP"
    word = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    if word not in signal.Signals.__members__:
        raise ValueError(f"signal: unknown signal {name!r} (e.g. HUP, USR1, TERM)")
    if not path.startswith("/"):
        raise ValueError(f"signal: the pidfile must be an absolute path, got {path!r}")
    return kind, (path, word[3:])


def cleanup_root_name(root: CleanupRoot) -> str:
    """The name ``cleanup:NAME`` finds a root by: its ``name``, else its path's last part."""
    return root.name or root.path.rstrip("/").rsplit("/", 1)[-1] or root.path


def _remediation_problems(config: Config, origins: _Origins) -> list[ConfigProblem]:
    """A check's remediate: a command or an action (one), a shell string only when asked,
    an action that parses and names a configured cleanup root."""
    problems: list[ConfigProblem] = []
    names = [cleanup_root_name(root) for root in config.cleanup.roots]
    roots = set(names)
    for index, spec in enumerate(config.health_monitor.checks):
        rem = spec.remediate
        if rem is None:
            continue
        path: KeyPath = ("health_monitor", "checks", index, "remediate")
        if bool(rem.command) == bool(rem.action):
            problems.append(origins.problem(path, "give command or action (one of them)"))
        if isinstance(rem.command, str) and rem.command and not rem.shell:
            problems.append(
                origins.problem(
                    (*path, "command"),
                    "a string runs through a shell only with shell: true; give an argv list"
                    " such as [systemctl, restart, web]",
                )
            )
        if rem.shell and not isinstance(rem.command, str):
            problems.append(
                origins.problem((*path, "shell"), "shell: true takes command as one string")
            )
        if rem.action:
            try:
                kind, args = parse_remediation_action(rem.action)
            except ValueError as exc:
                problems.append(origins.problem((*path, "action"), str(exc)))
                continue
            if kind == "cleanup" and names.count(args[0]) > 1:
                problems.append(
                    origins.problem(
                        (*path, "action"),
                        f"{args[0]!r} names {names.count(args[0])} cleanup roots; give each a name",
                    )
                )
            elif kind == "cleanup" and args[0] not in roots:
                known = ", ".join(sorted(roots)) or "none configured"
                problems.append(
                    origins.problem(
                        (*path, "action"),
                        f"no cleanup root named {args[0]!r} (cleanup.roots: {known})",
                    )
                )
    return problems


_NAMESPACE = r"[A-Za-z0-9_.:\-]{1,64}"  # compiled at first use (re caches it)


def _state_problems(s: StateConfig, origins: _Origins) -> list[ConfigProblem]:
    """state.url must parse (a Redis one needs nothing installed: reliactl has its own client)."""
    if not s.url:
        return []  # the default: SQLite at state.path (and no import on the startup path)
    from reliactl.state.url import StateURLError, parse_state_url

    problems: list[ConfigProblem] = []
    try:
        parsed = parse_state_url(s.url, s.path)
    except StateURLError as exc:
        return [origins.problem(("state", "url"), str(exc))]
    if parsed.backend == "redis" and not _fullmatch(_NAMESPACE, s.namespace):
        problems.append(
            origins.problem(
                ("state", "namespace"),
                f"expected 1-64 letters, digits, _ . : or -, got {s.namespace!r}",
            )
        )
    return problems


_CHECK_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"  # compiled at first use (re caches it)
_TOPIC = r"[-_A-Za-z0-9]{1,64}"


_RESERVED_CHECK_NAMES = (
    "cpu_usage",
    "disk_usage",
    "memory_usage",
    "swap_usage",
    "file_handles",
    "process_health",
)


def _health_problems(h: HealthMonitorConfig, origins: _Origins) -> list[ConfigProblem]:  # noqa: C901 - one branch per check or sink kind's requirement
    """Kind-specific requirements of custom checks and alert sinks; unique names."""
    problems: list[ConfigProblem] = []
    base: KeyPath = ("health_monitor",)
    for index, name in enumerate(h.system_checks):
        if name not in SYSTEM_CHECK_NAMES:
            hint = _suggest(name, list(SYSTEM_CHECK_NAMES))
            problems.append(
                origins.problem(
                    (*base, "system_checks", index),
                    f"expected one of {', '.join(SYSTEM_CHECK_NAMES)}, got {name!r}{hint}",
                )
            )
    seen: set[str] = set()
    required = {
        "http": ("url",),
        "tcp": ("host", "port"),
        "command": ("command",),
        "file_age": ("path",),
        "disk": ("path",),
        "python": ("target",),
    }
    for index, spec in enumerate(h.checks):
        path: KeyPath = (*base, "checks", index)
        if not _fullmatch(_CHECK_NAME, spec.name):
            problems.append(
                origins.problem(
                    (*path, "name"), f"expected letters, digits, _ . or -, got {spec.name!r}"
                )
            )
        elif spec.name in seen:
            problems.append(origins.problem((*path, "name"), f"duplicate check name {spec.name!r}"))
        elif spec.name in _RESERVED_CHECK_NAMES or spec.name.startswith("disk_usage:"):
            problems.append(
                origins.problem((*path, "name"), f"{spec.name!r} is a built-in check's name")
            )
        seen.add(spec.name)
        for key in required.get(spec.kind, ()):
            if getattr(spec, key) in ("", None, []):
                problems.append(
                    origins.problem((*path, key), f"is required for {spec.kind} checks")
                )
        if spec.kind == "process" and not (spec.pid or spec.pidfile or spec.process_name):
            problems.append(
                origins.problem(path, "a process check needs pid, pidfile or process_name")
            )
        if spec.kind == "file_age" and spec.warn is None and spec.critical is None:
            problems.append(
                origins.problem(
                    (*path, "critical"), "a file_age check needs warn or critical (a maximum age)"
                )
            )
        if spec.kind == "command" and (spec.warn is not None or spec.critical is not None):
            problems.append(
                origins.problem(
                    (*path, "warn" if spec.warn is not None else "critical"),
                    "does not apply to a command check: the plugin's exit status decides",
                )
            )
        if spec.kind == "python" and spec.target:
            module, _, func = spec.target.partition(":")
            if not module or not func:
                problems.append(
                    origins.problem(
                        (*path, "target"), f"expected module:function, got {spec.target!r}"
                    )
                )
        if spec.kind == "http" and spec.url:
            from reliactl._urls import url_problem

            problem = url_problem(spec.url)
            if problem:
                problems.append(origins.problem((*path, "url"), problem))
    sinks: set[str] = set()
    for index, sink in enumerate(h.alerts):
        path = (*base, "alerts", index)
        if sink.name in sinks:
            problems.append(origins.problem((*path, "name"), f"duplicate sink name {sink.name!r}"))
        sinks.add(sink.name)
        problems.extend(origins.problem((*path, key), msg) for key, msg in sink_problems(sink))
    return problems


# Per sink kind: the keys it needs, and the new channels' keys it takes (a key of another
# channel on it is a mistake worth naming). Secrets may come from secret_file/secret_env.
_SINK_SECRET = {
    "pagerduty": "routing_key",
    "opsgenie": "api_key",
    "telegram": "token",
    "email": "password",
    "ntfy": "token",
}
_SINK_REQUIRED = {
    "webhook": ("url",),
    "discord": ("url",),
    "slack": ("url",),
    "teams": ("url",),
    "command": ("command",),
    "telegram": ("chat_id",),
    "ntfy": ("topic",),
    "email": ("smtp_host", "mail_from", "mail_to"),
}
_CHANNEL_KEYS = {
    "routing_key": ("pagerduty",),
    "api_key": ("opsgenie",),
    "token": ("telegram", "ntfy"),
    "password": ("email",),
    "secret_file": tuple(_SINK_SECRET),
    "secret_env": tuple(_SINK_SECRET),
    "chat_id": ("telegram",),
    "topic": ("ntfy",),
    "smtp_host": ("email",),
    "smtp_port": ("email",),
    "smtp_user": ("email",),
    "mail_from": ("email",),
    "mail_to": ("email",),
    "tls_ca_file": ("email",),
}
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"  # compiled at first use (re caches it)
# Each name pattern as (first character's set, the others' set, least and most length).
_NAME_RULES: dict[str, tuple[frozenset[str], frozenset[str], int, int]] = {
    _JOB_NAME: (_ALNUM_, _ALNUM_ | frozenset(".@-"), 1, 128),
    _NAMESPACE: (_ALNUM_ | frozenset(".:-"), _ALNUM_ | frozenset(".:-"), 1, 64),
    _CHECK_NAME: (_ALNUM_, _ALNUM_ | frozenset(".-"), 1, 1 << 62),
    _ENV_NAME: (_ALNUM_ - frozenset("0123456789"), _ALNUM_, 1, 1 << 62),
    _TOPIC: (_ALNUM_ | frozenset("-"), _ALNUM_ | frozenset("-"), 1, 64),
}


def sink_problems(sink: AlertSink) -> list[tuple[str, str]]:
    """(key, problem) for one alert sink's settings, offline (nothing is read or sent):
    ``config validate`` reports them with file:line, ``doctor`` names the sink."""
    problems: list[tuple[str, str]] = []
    kind = sink.kind
    for key in _SINK_REQUIRED.get(kind, ()):
        if getattr(sink, key) in ("", None, []):
            problems.append((key, f"is required for {kind} sinks"))
    for key, kinds in _CHANNEL_KEYS.items():
        if kind not in kinds and getattr(sink, key) not in ("", None, []):
            problems.append((key, f"does not apply to {kind} sinks"))
    if sink.url and sink.url != REDACTED and kind != "command":
        # (REDACTED: `config show` output stays loadable; it cannot be delivered to.)
        from reliactl._urls import url_problem

        problem = url_problem(sink.url)
        if problem:
            problems.append(("url", problem))
    secret = _SINK_SECRET.get(kind)
    if secret and not (getattr(sink, secret) or sink.secret_file or sink.secret_env):
        optional = kind == "ntfy" or (kind == "email" and not sink.smtp_user)
        if not optional:
            problems.append(
                (secret, f"is required for {kind} sinks (or secret_file, or secret_env)")
            )
    if sink.secret_env not in ("", REDACTED) and not _fullmatch(_ENV_NAME, sink.secret_env):
        problems.append(
            ("secret_env", f"expected an environment variable name, got {sink.secret_env!r}")
        )
    if kind == "email":
        for key, address in [
            ("mail_from", sink.mail_from),
            *(("mail_to", a) for a in sink.mail_to),
        ]:
            if address and not _looks_like_address(address):
                problems.append((key, f"expected an e-mail address, got {address!r}"))
        if sink.password and not sink.smtp_user:
            problems.append(("smtp_user", "is required when a password is set"))
    if kind == "ntfy" and sink.topic not in ("", REDACTED) and not _fullmatch(_TOPIC, sink.topic):
        problems.append(("topic", "expected 1-64 letters, digits, - or _"))
    return problems


def _looks_like_address(text: str) -> bool:
    from email.utils import parseaddr

    _, address = parseaddr(text)
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and " " not in address)


def parse_rates(text: str) -> list[tuple[int, float]]:
    """ "60/minute;1000/hour" -> [(60, 60.0), (1000, 3600.0)]: kept here for callers; the rate
    limiter owns the syntax (``reliactl.ratelimit.parse_rates``)."""
    from reliactl.ratelimit import parse_rates as parse

    return parse(text)
