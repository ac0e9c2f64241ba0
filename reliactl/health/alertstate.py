"""Alert state kept in the state store: silences, open problems (acknowledgements, flapping)
and what each sink has been told. The core of `reliactl silence`, `reliactl alert` and the
alert manager's decisions; never prints, never imports typer/rich.

Records (kind "alert", shared by every host on a fleet backend):

- ``silence:ID``: a silence (maintenance window) of a TARGET (a check, job or breaker name or
  a glob) from ``start`` to ``end``; it matches a check by its name, by the job name of a
  ``job:NAME``/``run:NAME`` check, or by the breaker its job runs through. Expired silences
  simply stop matching (``silence list`` removes them).
- ``problem:HOST/CHECK``: a host-local check's alert state on HOST (every check but the
  fleet-wide ones, see ``fleet_wide``): ``status``, ``since`` (when it left OK), ``changes``
  (times of its status changes within the flap window), ``flapping`` and ``ack`` (who
  acknowledged it, why, when; cleared by the recovery), with ``check``, ``host`` and
  ``scope`` ("host"). ``problem:CHECK``: the same of a fleet-wide check (``scope`` "fleet",
  ``host`` the last host that saw it bad), one problem whichever host computes it. A
  ``problem:CHECK`` without ``scope`` is the old form (before state was per host): the host
  it names moves it to its own key on its next run (``observe``'s ``seed``).
- ``notify:SINK``: per state key (``HOST/CHECK`` or a fleet-wide ``CHECK``), what that sink
  was last told (``status``, ``sent_at``, ``flapping``) and a delivery claim in flight
  (``claim``, ``claimed_until``).

Every change is an atomic ``update`` of one record, so concurrent runs and hosts agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from reliactl.errors import HealthError
from reliactl.health.model import Status
from reliactl.health.records import ALERT_KIND

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any, Final
else:  # dataclasses without the dataclasses module (issue 21, see _records)
    from reliactl._records import dataclass, field

if TYPE_CHECKING:
    from reliactl.health.records import RecordStore

__all__ = [
    "AlertPolicy",
    "Item",
    "Problem",
    "Silence",
    "acknowledge",
    "add_silence",
    "alias_names",
    "check_notes",
    "current_user",
    "decide",
    "drop_entry",
    "fleet_run",
    "fleet_wide",
    "forget",
    "list_silences",
    "observe",
    "open_problems",
    "remove_silence",
    "resolvable",
    "silence_for",
    "silence_seconds",
    "state_key",
    "target_matches",
]

KIND: Final = ALERT_KIND
SILENCE = "silence:"
PROBLEM = "problem:"
NOTIFY = "notify:"
MAX_SILENCE = 366 * 86400.0
# Prefixes of the checks that stand for a job: `job:NAME` (health) and `run:NAME` (run --alert).
JOB_PREFIXES = ("job:", "run:")
# Checks that are one problem for the whole fleet: a `job:NAME` check judges the job's run
# history and records in the state store, which every host shares, so every host computes
# the same verdict about the same job. Everything else is about the host that ran it.
FLEET_PREFIXES = ("job:",)


def fleet_wide(check: str, fleet: Iterable[str] = ()) -> bool:
    """Whether ``check`` is one problem for the fleet (a ``job:NAME`` check, or a name in
    ``fleet``: a ``run:NAME`` alert ``fleet_run`` says is fleet-wide) rather than one per
    host."""
    return check.startswith(FLEET_PREFIXES) or check in fleet


def fleet_run(name: str, jobs: Mapping[str, Any], lock_scope: str | None = None) -> bool:
    """Whether the ``run:NAME`` alert of a run named ``name`` is fleet-wide (then its
    ``run:NAME`` goes into ``fleet_wide``'s ``fleet``): the job declared under that name has
    ``lock_scope: fleet``, whatever flag named the run (`run --job NAME` or `run --name NAME
    --alert`: one job, one key), or the run itself holds a fleet lock (``lock_scope``, from
    `--lock-scope` or --job's entry): its runs are one sequence on whichever host."""
    declared = jobs.get(name)
    return lock_scope == "fleet" or getattr(declared, "lock_scope", None) == "fleet"


def state_key(check: str, host: str, fleet: bool) -> str:
    """The key of a check's alert state (its problem record, its sink entries): ``CHECK``
    for a fleet-wide check, ``HOST/CHECK`` for a host-local one."""
    return check if fleet or not host else f"{host}/{check}"


def target_matches(
    target: str, check: str, host: str, fleet: bool, breakers: Mapping[str, str] | None = None
) -> bool:
    """Whether a silence or acknowledgement TARGET (a name or a glob) matches ``check`` on
    ``host``: by any of its ``alias_names`` (on every host); and, only when TARGET has a
    ``/`` and the check is host-local, as ``HOSTPART/NAMEPART`` where HOSTPART is ``host``
    itself (literally) or a glob of it and NAMEPART matches an alias (``web-1/*`` is
    everything of web-1, ``web-*/disk*`` the disks of the web hosts). A TARGET without ``/``
    never matches a host name (``web*`` is not web-1's disk: fnmatch's ``*`` matches ``/``)."""
    import fnmatch  # only a match needs it, not every round

    target = target.strip()
    names = alias_names(check, breakers)
    if any(fnmatch.fnmatchcase(name, target) for name in names):
        return True
    if "/" not in target or fleet or not host:
        return False
    host_part, _, name_part = target.partition("/")
    if host_part != host and not fnmatch.fnmatchcase(host, host_part):
        return False
    return any(fnmatch.fnmatchcase(name, name_part) for name in names)


def silence_seconds(seconds: float) -> float:
    """``seconds`` if a silence may last that long; ValueError (one line, the wording of
    ``durations.parse_bounded``) if not. The one owner of the 366d bound, MAX_SILENCE
    (``add_silence``; `silence add --for` passes it to ``_fastrt.duration_option``)."""
    from reliactl.units import format_duration

    if not 0 < seconds <= MAX_SILENCE:
        got = "0s" if seconds == 0 else format_duration(seconds)  # not "0ms": --for 0s
        raise ValueError(f"expected a positive duration of at most 366d, got {got}")
    return seconds


@dataclass(frozen=True)
class AlertPolicy:
    """The ``alerts`` section: grouping, repeats, escalation and flap detection."""

    group_wait: float = 0.0
    repeat_every: float | None = None
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()
    flap_changes: int = 0  # 0: flap detection off
    flap_window: float = 3600.0

    @classmethod
    def from_config(cls, section: Any) -> AlertPolicy:
        return cls(
            group_wait=float(section.group_wait),
            repeat_every=section.repeat_every,
            escalate_after=section.escalate_after,
            escalate_to=tuple(section.escalate_to),
            flap_changes=int(section.flap_changes),
            flap_window=float(section.flap_window),
        )


def current_user() -> str:
    """Who is acting: the user behind sudo when there is one, else the login name."""
    for var in ("SUDO_USER", "USER", "LOGNAME"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())


# ---------------------------------------------------------------------------- silences


@dataclass(frozen=True)
class Silence:
    """A maintenance window: problems of matching checks are shown but not sent."""

    id: str
    target: str
    start: float
    end: float
    reason: str = ""
    by: str = ""
    created_at: float = 0.0
    host: str = ""

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def matches(
        self, check: str, host: str, fleet: bool, breakers: Mapping[str, str] | None = None
    ) -> bool:
        """Whether it matches ``check`` on ``host`` (``target_matches``)."""
        return target_matches(self.target, check, host, fleet, breakers)

    def state(self, now: float) -> str:
        return "active" if self.active(now) else ("pending" if now < self.start else "expired")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
            "by": self.by,
            "created_at": self.created_at,
            "host": self.host,
        }

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Silence | None:
        try:
            return cls(
                str(rec["id"]),
                str(rec["target"]),
                float(rec["start"]),
                float(rec["end"]),
                str(rec.get("reason", "")),
                str(rec.get("by", "")),
                float(rec.get("created_at", 0.0)),
                str(rec.get("host", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None  # a damaged record matches nothing


def add_silence(
    records: RecordStore,
    target: str,
    duration: float,
    *,
    reason: str = "",
    start: float | None = None,
    by: str | None = None,
    host: str = "",
    now: float,
) -> Silence:
    """Store a silence of ``target`` for ``duration`` seconds from ``start`` (default now)."""
    target = target.strip()
    if not target:
        raise HealthError("the silence target is empty: name a check, job or breaker, or a glob")
    try:
        silence_seconds(duration)
    except ValueError as exc:
        raise HealthError(str(exc)) from None
    begin = now if start is None else start
    if begin + duration <= now:
        raise HealthError("that window is already over: nothing to silence")
    import uuid  # here: uuid imports platform, ~3 ms of every `health` start (issue 21)

    silence = Silence(
        uuid.uuid4().hex[:10],
        target,
        begin,
        begin + duration,
        reason.strip(),
        by if by is not None else current_user(),
        now,
        host,
    )
    records.update(KIND, SILENCE + silence.id, lambda _rec: silence.to_dict())
    return silence


def _silences(items: Mapping[str, Any]) -> list[Silence]:
    out = []
    for key, rec in items.items():
        if key.startswith(SILENCE) and isinstance(rec, dict):
            found = Silence.from_record(rec)
            if found is not None:
                out.append(found)
    return sorted(out, key=lambda s: (s.start, s.id))


def list_silences(records: RecordStore, now: float) -> list[Silence]:
    """Active and planned silences, by start; expired ones are removed on the way."""
    live = []
    for silence in _silences(_items(records)):
        if silence.end > now:
            live.append(silence)
            continue

        def drop(rec: dict[str, Any] | None) -> dict[str, Any] | None:
            found = Silence.from_record(rec or {})
            return None if found is None or found.end <= now else rec

        records.update(KIND, SILENCE + silence.id, drop)
    return live


def remove_silence(records: RecordStore, silence_id: str) -> bool:
    """End a silence now; False if there is none of that id."""
    key = SILENCE + silence_id.strip()
    existed: list[bool] = []

    def drop(rec: dict[str, Any] | None) -> None:
        existed.clear()
        existed.append(rec is not None)

    records.update(KIND, key, drop)
    return bool(existed and existed[0])


def alias_names(check: str, breakers: Mapping[str, str] | None = None) -> list[str]:
    """The names a silence or acknowledgement can match ``check`` by: its own; the job's name
    of a ``job:NAME``/``run:NAME`` check; the breaker that job runs through."""
    names = [check]
    for prefix in JOB_PREFIXES:
        if check.startswith(prefix):
            job = check[len(prefix) :]
            names.append(job)
            breaker = (breakers or {}).get(job)
            if breaker:
                names.append(breaker)
    return names


def silence_for(
    silences: Sequence[Silence],
    check: str,
    host: str,
    fleet: bool,
    now: float,
    breakers: Mapping[str, str] | None = None,
) -> Silence | None:
    """The active silence matching ``check`` on ``host`` that ends last, or None."""
    found = [s for s in silences if s.active(now) and s.matches(check, host, fleet, breakers)]
    return max(found, key=lambda s: s.end) if found else None


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """A check's alert state as `alert list` shows it."""

    check: str
    status: Status
    since: float | None
    flapping: bool = False
    changes: int = 0
    ack_by: str | None = None
    ack_reason: str = ""
    ack_at: float | None = None
    host: str = ""
    scope: str = ""  # "host", "fleet", or "" for an old-form record (before per-host state)
    key: str = ""  # its record's key, without the kind's "problem:" prefix

    @property
    def label(self) -> str:
        """How a TARGET names it: ``HOST/CHECK`` when it is one host's, else ``CHECK``."""
        return f"{self.host}/{self.check}" if self.scope == "host" and self.host else self.check

    @property
    def acknowledged(self) -> bool:
        return self.ack_by is not None

    @property
    def open(self) -> bool:
        return not self.status.is_ok or self.flapping

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "since": self.since,
            "flapping": self.flapping,
            "changes": self.changes,
            "acknowledged": self.acknowledged,
            "ack_by": self.ack_by,
            "ack_reason": self.ack_reason,
            "ack_at": self.ack_at,
            "host": self.host,
            "scope": self.scope or "host",
        }

    @classmethod
    def from_record(cls, key: str, rec: Mapping[str, Any]) -> Problem:
        """The problem of record ``problem:KEY`` (an old-form KEY is the check's name)."""
        ack = rec.get("ack") if isinstance(rec.get("ack"), dict) else None
        since = rec.get("since")
        check = rec.get("check")
        scope = rec.get("scope")
        return cls(
            check if isinstance(check, str) and check else key,
            Status.from_word(rec.get("status")) or Status.UNKNOWN,
            float(since) if isinstance(since, (int, float)) else None,
            bool(rec.get("flapping")),
            len(rec.get("changes") or ()),
            str(ack.get("by", "")) if ack else None,
            str(ack.get("reason", "")) if ack else "",
            float(ack["at"]) if ack and isinstance(ack.get("at"), (int, float)) else None,
            str(rec.get("host", "")),
            scope if scope in ("host", "fleet") else "",
            key,
        )

    def matches(self, target: str, breakers: Mapping[str, str] | None = None) -> bool:
        """Whether TARGET names it (``target_matches``; an old-form record is its host's
        too)."""
        return target_matches(target, self.check, self.host, self.scope == "fleet", breakers)


def observe_step(
    status: Status,
    now: float,
    policy: AlertPolicy,
    host: str = "",
    *,
    check: str = "",
    fleet: bool = False,
) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """The atomic update of a check's problem record for one result of the check.

    A status change is counted once however many runs see it (the first one records it).
    Flapping (Nagios' state-change idea, simplified): more than ``flap_changes`` changes
    within ``flap_window`` starts it; at most half that many ends it (hysteresis)."""

    def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        current = dict(rec or {})
        previous = Status.from_word(current.get("status")) or Status.OK
        window_start = now - policy.flap_window
        changes = [
            t
            for t in current.get("changes") or ()
            if isinstance(t, (int, float)) and window_start <= t <= now + 5
        ]
        if status != previous:
            changes.append(now)
            current["changed_at"] = now
        flapping = bool(current.get("flapping"))
        if policy.flap_changes <= 0:
            flapping = False
        elif not flapping and len(changes) > policy.flap_changes:
            flapping = True
            current["flapping_since"] = now
        elif flapping and len(changes) <= policy.flap_changes // 2:
            flapping = False
        if status.is_ok:
            current.pop("since", None)
            current.pop("ack", None)  # an acknowledgement lasts until the recovery
        elif previous.is_ok or not isinstance(current.get("since"), (int, float)):
            current["since"] = now
        if status.is_ok and not flapping and (policy.flap_changes <= 0 or not changes):
            return None  # nothing left to remember
        current.update(status=status.value, changes=changes[-200:], flapping=flapping)
        if host:
            current["host"] = host
        if check:
            current.update(check=check, scope="fleet" if fleet else "host")
        if not flapping:
            current.pop("flapping_since", None)
        return current

    return step


def observe(
    records: RecordStore,
    check: str,
    status: Status,
    now: float,
    policy: AlertPolicy,
    host: str,
    *,
    fleet: bool = False,
    seed: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Record one result of ``check`` on ``host`` in its problem record (``state_key``); the
    record after it (None: all clear). ``seed``: what the record starts from when there is
    none yet (an old-form record this host takes over, see ``old_record``)."""
    step = observe_step(status, now, policy, host, check=check, fleet=fleet)

    def seeded(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        return step(rec if rec is not None or seed is None else dict(seed))

    return records.update(KIND, PROBLEM + state_key(check, host, fleet), seeded)


def old_record(items: Mapping[str, Any], check: str, host: str) -> dict[str, Any] | None:
    """The old-form ``problem:CHECK`` record of a host-local check (written before alert
    state was kept per host) if it is ``host``'s: it names ``host`` as the last host that
    saw it (or no host). Another host's stays for that host to take."""
    rec = items.get(PROBLEM + check)
    if not isinstance(rec, dict) or rec.get("scope") is not None:
        return None
    return rec if str(rec.get("host", "")) in ("", host) else None


def drop_old_record(records: RecordStore, check: str, host: str) -> None:
    """Remove ``check``'s old-form problem record if it is (still) ``host``'s: moved."""

    def step(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if old_record({PROBLEM + check: rec}, check, host) is not None else rec

    records.update(KIND, PROBLEM + check, step)


def forget(records: RecordStore, sinks: Iterable[str], check: str, host: str) -> None:
    """Remove every trace of a host-local ``check`` of ``host`` (a drill's): its problem
    record and each sink's entry (and the older forms of both)."""
    key = state_key(check, host, False)
    records.update(KIND, PROBLEM + key, lambda _rec: None)
    drop_old_record(records, check, host)

    def drop(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        entries = (rec or {}).get("checks")
        if rec is None or not isinstance(entries, dict) or not ({key, check} & set(entries)):
            return rec
        kept = {k: v for k, v in entries.items() if k not in (key, check)}
        return {**rec, "checks": kept} if kept or len(rec) > 1 else None

    for sink in sinks:
        records.update(KIND, NOTIFY + sink, drop)
        records.update(KIND, f"{sink}:{check}", lambda _rec: None)


def drop_entry(records: RecordStore, sink: str, key: str) -> None:
    """Remove state key ``key``'s entry from ``sink``'s ``notify:SINK`` record."""

    def drop(rec: dict[str, Any] | None) -> dict[str, Any] | None:
        entries = (rec or {}).get("checks")
        if rec is None or not isinstance(entries, dict) or key not in entries:
            return rec
        return {**rec, "checks": {k: v for k, v in entries.items() if k != key}}

    records.update(KIND, NOTIFY + sink, drop)


def resolvable(problem: Problem, target: str, breakers: Mapping[str, str] | None = None) -> bool:
    """Whether `alert resolve TARGET` closes ``problem``: TARGET matches it
    (``target_matches``) and, for one host's problem, names the host (``HOST/CHECK``): a
    bare name must not close every host's problem at once."""
    if problem.scope == "host" and "/" not in target:
        return False
    return problem.matches(target, breakers)


def _items(records: RecordStore) -> dict[str, Any]:
    return records.items(KIND)


def open_problems(records: RecordStore) -> list[Problem]:
    """Checks not OK (or flapping) as the last runs saw them (a host-local check once per
    host), oldest problem first."""
    out = [
        Problem.from_record(key[len(PROBLEM) :], rec)
        for key, rec in _items(records).items()
        if key.startswith(PROBLEM) and isinstance(rec, dict)
    ]
    return sorted((p for p in out if p.open), key=lambda p: (p.since or 0.0, p.check, p.host))


def acknowledge(
    records: RecordStore,
    target: str,
    *,
    reason: str = "",
    by: str | None = None,
    now: float,
    breakers: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Acknowledge every open problem matching ``target`` (a name or a glob, on every host;
    ``HOST/NAME`` for one host's, see ``target_matches``): no repeats and no escalation until
    it recovers. Returns the problems acknowledged (empty: none matched)."""
    who = by if by is not None else current_user()
    done: list[Problem] = []
    for problem in open_problems(records):
        if not problem.matches(target, breakers):
            continue
        result: list[Problem] = []

        def step(
            rec: dict[str, Any] | None, key: str = problem.key, result: list[Problem] = result
        ) -> dict[str, Any] | None:
            result.clear()
            if rec is None:
                return None
            found = Problem.from_record(key, rec)
            if not found.open:
                return rec  # recovered meanwhile
            current = dict(rec)
            current["ack"] = {"by": who, "reason": reason.strip(), "at": now}
            result.append(Problem.from_record(key, current))
            return current

        records.update(KIND, PROBLEM + problem.key, step)
        done.extend(result)
    return done


@dataclass(frozen=True)
class CheckNote:
    """What `health` shows beside a check: its silence, acknowledgement, flapping."""

    silence: Silence | None = None
    problem: Problem | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.problem
        return {
            "silenced": None
            if self.silence is None
            else {
                "id": self.silence.id,
                "by": self.silence.by,
                "reason": self.silence.reason,
                "until": self.silence.end,
            },
            "acknowledged": None
            if p is None or not p.acknowledged
            else {"by": p.ack_by, "reason": p.ack_reason, "at": p.ack_at},
            "flapping": bool(p and p.flapping),
        }

    def text(self) -> str:
        parts = []
        if self.silence is not None:
            why = f": {self.silence.reason}" if self.silence.reason else ""
            parts.append(f"silenced by {self.silence.by or '?'}{why}")
        if self.problem is not None and self.problem.flapping:
            parts.append("FLAPPING")
        if self.problem is not None and self.problem.acknowledged:
            why = f": {self.problem.ack_reason}" if self.problem.ack_reason else ""
            parts.append(f"acknowledged by {self.problem.ack_by}{why}")
        return "; ".join(parts)


def check_notes(
    records: RecordStore,
    checks: Iterable[str],
    now: float,
    breakers: Mapping[str, str] | None = None,
    *,
    items: Mapping[str, Any] | None = None,
    host: str | None = None,
    fleet: Iterable[str] = (),
) -> dict[str, CheckNote]:
    """The silence/acknowledgement/flapping notes of ``checks`` on ``host`` (default: this
    one; ``fleet``: more fleet-wide names, see ``fleet_wide``) that have one (one read; none
    with ``items``, the alert records the caller has read already)."""
    if items is None:
        items = _items(records)
    if host is None:
        from reliactl.hostname import hostname

        host = hostname()
    fleet = set(fleet)
    silences = _silences(items)
    notes: dict[str, CheckNote] = {}
    for check in checks:
        wide = fleet_wide(check, fleet)
        silence = silence_for(silences, check, host, wide, now, breakers)
        key = state_key(check, host, wide)
        rec = items.get(PROBLEM + key)
        if rec is None and not wide:
            rec = old_record(items, check, host)
        problem = Problem.from_record(key, rec) if isinstance(rec, dict) else None
        if problem is not None and not (problem.acknowledged or problem.flapping):
            problem = None
        if silence is not None or problem is not None:
            notes[check] = CheckNote(silence, problem)
    return notes


# ---------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Item:
    """One line of a sink's grouped message."""

    check: str
    kind: str  # problem, recovery, repeat, escalation, flapping, settled
    status: Status
    previous: Status
    flapping: bool = False


@dataclass(frozen=False)  # mutable
class Snapshot:
    """What a run knows before deciding: its results, the problems, the silences."""

    statuses: dict[str, Status]  # by state key (``state_key``: HOST/CHECK or CHECK)
    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    silenced: set[str] = field(default_factory=set)
    legacy: dict[str, dict[str, Any]] = field(default_factory=dict)  # old "SINK:CHECK" records
    names: dict[str, str] = field(default_factory=dict)  # state key -> the check's name
    # State keys that take over their check's old-form sink entry (by name): this host's.
    inherit: set[str] = field(default_factory=set)


def decide(
    entries: dict[str, Any],
    snap: Snapshot,
    *,
    now: float,
    policy: AlertPolicy,
    repeat: float,
    escalation: bool,
    in_flight: Callable[[dict[str, Any]], bool],
) -> list[Item]:
    """What a sink must be told now, given what it was told (``entries``: check -> entry).

    A silenced check sends nothing (its entry is left as it was, so whatever is still true
    when the silence ends goes out then). A flapping check sends one "flapping" message and
    then nothing until it settles ("settled", with its status then). A new problem younger
    than ``group_wait`` waits for a later run, unless another new problem has waited that long
    (then the group goes out whole). An escalation sink hears only of problems older
    than ``escalate_after`` and not acknowledged, then follows them to their recovery.
    """
    out: list[Item] = []
    held: list[tuple[int, Item]] = []
    for check, status in snap.statuses.items():
        entry = entries.get(check)
        if entry is None:
            entry = snap.legacy.get(check) or {}
        if in_flight(entry) or check in snap.silenced:
            continue
        told = Status.from_word(entry.get("status")) or Status.OK
        sent_at = entry.get("sent_at")
        problem = snap.problems.get(check) or {}
        flapping = bool(problem.get("flapping"))
        acked = isinstance(problem.get("ack"), dict)
        since = problem.get("since")
        age = now - since if isinstance(since, (int, float)) else None
        if escalation:
            due = (
                not status.is_ok
                and not acked
                and age is not None
                and policy.escalate_after is not None
                and age >= policy.escalate_after
            )
            if told.is_ok and not due:
                continue
        if flapping:
            if not entry.get("flapping"):
                out.append(Item(check, "flapping", status, told, True))
            continue
        if entry.get("flapping"):
            out.append(Item(check, "settled", status, told))
            continue
        if status != told:
            if status.is_ok:
                out.append(Item(check, "recovery", status, told))
                continue
            if told.is_ok and policy.group_wait > 0 and age is not None and age < policy.group_wait:
                # Held: problems failing together go out in one message. It goes out with
                # the first problem that has waited group_wait (the group's flush).
                held.append((len(out), Item(check, "problem", status, told)))
                continue
            out.append(
                Item(check, "escalation" if escalation and told.is_ok else "problem", status, told)
            )
        elif (
            not status.is_ok
            and isinstance(sent_at, (int, float))
            and not acked
            and max(0.0, now - sent_at) >= repeat
        ):
            out.append(Item(check, "repeat", status, told))
    if held and any(item.kind == "problem" for item in out):
        for offset, (index, item) in enumerate(held):
            out.insert(index + offset, item)
    return out


def parse_start(text: str, now: float) -> float:
    """``--start``: an ISO 8601 time (2026-12-01T02:00, local time unless it names a zone or
    ends in Z) or a duration from now (+2h or 2h). ValueError with a one-line message."""
    from datetime import datetime

    from reliactl.durations import parse_duration

    value = text.strip()
    if not value:
        raise ValueError("expected a time (2026-12-01T02:00) or a duration from now (+2h)")
    if value.startswith("+") or (value[0].isdigit() and "-" not in value and ":" not in value):
        return now + parse_duration(value.lstrip("+"))
    try:
        when = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"expected a time (2026-12-01T02:00) or a duration from now (+2h), got {text!r}"
        ) from None
    return when.timestamp()  # naive: local time, as `date` shows it
