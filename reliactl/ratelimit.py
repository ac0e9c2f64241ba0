"""Rate limiting by token buckets, in memory or shared by processes through the state store.

A limiter holds one bucket per rate of its spec ("60/minute;1000/hour"): ``count`` tokens,
all there at first. A request of weight ``w`` takes ``w`` tokens from every bucket at once, or
from none. A token taken comes back exactly ``per`` seconds later, not bit by bit: so
"60/minute" means what an API's limit means, never more than 60 requests in any 60 seconds.
(A classic evenly-refilled bucket would let 60 through at once and then one a second: 119 in
the first minute.) Four processes trying 100 requests each against "60/minute" get exactly 60
between them in the first minute, however they pace their tries.

Each bucket keeps a short log of when its tokens were taken. Takes less than ``per / 100``
apart share one entry, stamped with the later time: a token may come back up to 1% of the
period late, never early, and a log never holds more than about 100 entries. A stored log
rounds each take up to 1/2**24 of the period (3.6 us for a minute): later still, never earlier.

``try_acquire`` never waits. ``acquire`` waits until the tokens are back, at most until its
deadline (``timeout``): when the wait it would need is already longer than the time left, it
raises :class:`~reliactl.errors.RateLimitExceeded` at once (waiting could not help) with
``retry_after`` set to that wait.

With a ``store``, the buckets are one record of kind "rate" keyed by the limiter's key, read
and written in one atomic ``store.update``: every process (cron runs, parallel CI jobs) that
uses the same key and store shares one budget. Persisted time is wall-clock epoch seconds; a
clock that steps back counts as no time passed (the log moves back with it), never as
"forever".

This module imports nothing heavy (no httpx): the HTTP client and the CLI build on it.
"""

from __future__ import annotations

import array
import asyncio
import base64
import bisect
import itertools
import math
import operator
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reliactl.durations import parse_duration
from reliactl.errors import DurationError, RateLimitExceeded

if TYPE_CHECKING:
    from reliactl.config import Config
    from reliactl.state import Record, StateStore

__all__ = [
    "Rate",
    "RateLimiter",
    "format_rates",
    "limiter_for",
    "rates_from",
]

# Slack in token sums: fractional weights must never turn "exactly enough" into a refusal.
_EPSILON = 1e-9
# How long past the computed instant a waiter sleeps, so it wakes with the token there.
_WAKE_SLACK = 0.001


@dataclass(frozen=True)
class Rate:
    """``count`` tokens per ``per`` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if self.count <= 0 or not self.per > 0 or not math.isfinite(self.per):
            raise ValueError(f"a rate needs a positive count and period, got {self}")

    @property
    def per_second(self) -> float:
        return self.count / self.per

    @property
    def key(self) -> str:
        """The bucket's name inside a stored record, e.g. "60/60"."""
        return f"{self.count}/{self.per:g}"

    def __str__(self) -> str:
        return f"{self.count}/{_format_period(self.per)}"


_PERIOD_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}


def _format_period(per: float) -> str:
    name = _PERIOD_NAMES.get(per)
    if name is not None:
        return name
    from reliactl.durations import format_duration

    return format_duration(per)


def rates_from(spec: str | int | Rate | list[Rate] | list[tuple[int, float]]) -> list[Rate]:
    """Rates from "60/minute;1000/hour", a bare per-minute count, or (count, per) pairs."""
    if isinstance(spec, Rate):
        return [spec]
    if isinstance(spec, bool):
        raise ValueError(f"expected a rate such as '60/minute', got {spec!r}")
    if isinstance(spec, int):
        return [Rate(spec, 60.0)]
    if isinstance(spec, str):
        return [Rate(count, per) for count, per in parse_rates(spec)]
    rates = [r if isinstance(r, Rate) else Rate(int(r[0]), float(r[1])) for r in spec]
    if not rates:
        raise ValueError("expected at least one rate")
    return rates


def format_rates(rates: list[Rate]) -> str:
    """The spec text of ``rates``: "60/minute;1000/hour"."""
    return ";".join(str(r) for r in rates)


# --------------------------------------------------------------------------- bucket arithmetic

# Takes closer together than per / _GRAIN share one log entry (a log holds ~_GRAIN entries).
_GRAIN = 100

# One log entry: [first take, last take, tokens taken]; the tokens come back at last + per.
Entry = list[float]


def _prune(log: list[Entry], per: float, now: float) -> None:
    """Drop the entries whose tokens are back by ``now``."""
    back = 0
    while back < len(log) and log[back][1] + per <= now:
        back += 1
    if back:
        del log[:back]


def _wait(
    log: list[Entry], used: float, count: float, per: float, weight: float, now: float
) -> float:
    """Seconds until ``weight`` more tokens fit under ``count`` (0 when they fit now)."""
    excess = used + weight - count
    if excess <= _EPSILON:
        return 0.0
    freed = 0.0
    for entry in log:
        freed += entry[2]
        if freed >= excess - _EPSILON:
            return max(0.0, entry[1] + per - now)
    return per  # pragma: no cover - weight <= count is checked before


def _take(log: list[Entry], grain: float, weight: float, now: float) -> None:
    if log and now - log[-1][0] < grain:
        last = log[-1]
        last[1] = max(last[1], now)
        last[2] += weight
    else:
        log.append([now, now, weight])


_LAST = operator.itemgetter(1)


def _load_log(raw: Any) -> list[Entry]:
    """A stored log, defensively: anything malformed is dropped (the budget errs generous)."""
    out: list[Entry] = []
    if not isinstance(raw, list):
        return out
    isfinite = math.isfinite  # this loop runs for every entry on every shared acquire
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            continue
        first, last, tokens = item
        try:  # isfinite refuses what is not a number (a string, null, a list) with TypeError
            valid = isfinite(first) and isfinite(last) and isfinite(tokens) and tokens > 0
        except TypeError:
            continue
        if valid:
            out.append([float(first), float(last), float(tokens)])
    out.sort(key=_LAST)
    return out


# The second stored format (read, no longer written): per bucket one flat array [first, last,
# tokens, first, ...] of float64 (epoch seconds; little-endian, base64 text in the record).
_FORMAT_2 = 2


def _load_flat(raw: Any) -> array.array[float]:
    """A stored flat log, defensively: a malformed one is dropped (the budget errs generous)."""
    log = array.array("d")
    if type(raw) is not str or not raw:
        return log
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        return log
    if len(data) % 24:  # three float64 an entry
        return log
    log.frombytes(data)
    if _BIG_ENDIAN:  # pragma: no cover
        log.byteswap()
    if not all(map(math.isfinite, log)) or min(log[2::3]) <= 0:
        return array.array("d")
    lasts = log[1::3]
    if list(lasts) != sorted(lasts):  # written sorted; anything else is re-sorted, not trusted
        entries = sorted(zip(log[0::3], lasts, log[2::3], strict=True), key=_LAST)
        return array.array("d", [v for entry in entries for v in entry])
    return log


def _flat_from_entries(raw: Any) -> array.array[float]:
    """A first-format log (JSON lists of float seconds) as a flat log."""
    return array.array("d", [v for entry in _load_log(raw) for v in entry])


# Record format 3: per bucket, base64 of one byte string, little-endian: the tokens' array
# typecode (1 byte), then float64 ``base`` (epoch seconds), float64 ``first`` (the newest
# entry's first take: whether a take joins that entry), float64 ``unit`` (per / 2**24), then
# each entry's last take as a uint32 count of units after ``base`` (rounded up: a stored take
# is never earlier than the real one; 1/2**24 of the period, 3.6 us for a minute) and each
# entry's tokens in the narrowest exact array type (uint8/16/32 while every count is whole,
# else float64). A shared acquire works on these arrays as they are (bisect, sum, append):
# no Python loop over the entries, and ~85 entries take ~450 bytes instead of format 2's
# 2,040, so the record stays inside its SQLite B-tree page (no overflow page to write).
_STORED_VERSION = 3
_OFFSET_CODE = next(code for code in "IL" if array.array(code).itemsize == 4)
_OFFSET_MAX = 2**32 - 1
_SCALE = float(2**24)
_TOKEN_MAX = {"B": 2**8 - 1, "H": 2**16 - 1, _OFFSET_CODE: 2**32 - 1}
_TOKEN_SIZES = {"B": 1, "H": 2, _OFFSET_CODE: 4, "d": 8}
_HEADER = struct.Struct("<cddd")
_BIG_ENDIAN = sys.byteorder == "big"
# How far ahead of this host's wall clock another writer's may be: a stored take later than
# now + the period + this is impossible, and its log is treated as damaged.
_SKEW_S = 10.0


def _token_code(value: float) -> str:
    """The narrowest array type that holds ``value`` exactly."""
    if float(value).is_integer():
        for code, top in _TOKEN_MAX.items():
            if value <= top:
                return code
    return "d"


class _Log:
    """One stored bucket's log while a shared acquire works on it (record format 3)."""

    __slots__ = ("base", "first", "offsets", "tokens", "unit")

    def __init__(
        self,
        base: float,
        first: float,
        unit: float,
        offsets: array.array[int],
        tokens: array.array[Any],
    ) -> None:
        self.base = base
        self.first = first
        self.unit = unit
        self.offsets = offsets  # sorted
        self.tokens = tokens

    @classmethod
    def empty(cls, per: float, now: float) -> _Log:
        return cls(now, now, per / _SCALE, array.array(_OFFSET_CODE), array.array("B"))

    @classmethod
    def from_flat(cls, flat: array.array[float], per: float, now: float) -> _Log:
        """A log of the first two formats (flat [first, last, tokens] triples, sorted)."""
        log = cls.empty(per, now)
        if flat:
            lasts, tokens = flat[1::3], flat[2::3]
            # Entries over 2**31 units (128 periods) older than the newest are long back.
            start = bisect.bisect_left(lasts, lasts[-1] - 2**31 * log.unit)
            lasts, tokens = lasts[start:], tokens[start:]
            log.base, log.first = lasts[0], flat[-3]
            log.offsets = array.array(
                _OFFSET_CODE,
                [min(math.ceil((last - log.base) / log.unit), _OFFSET_MAX) for last in lasts],
            )
            code = "d"
            if all(map(float.is_integer, tokens)):
                code = _token_code(max(tokens))
            log.tokens = array.array(code, map(int, tokens) if code != "d" else tokens)
        return log

    def time(self, index: int) -> float:
        return self.base + self.offsets[index] * self.unit

    def shift(self, shift: float, now: float) -> None:
        """Move the log back with a wall clock that stepped back by ``-shift``."""
        self.base += shift
        self.first = min(self.first + shift, now)
        offsets = self.offsets
        if offsets and self.time(-1) > now:  # a take stamped after the record: now at most
            cap = max(0, math.ceil((now - self.base) / self.unit))
            self.offsets = array.array(_OFFSET_CODE, [min(o, cap) for o in offsets])

    def prune(self, per: float, now: float) -> None:
        """Drop the entries whose tokens are back by ``now``."""
        offsets = self.offsets
        if offsets:
            limit = (now - per - self.base) / self.unit
            if offsets[0] <= limit:
                back = bisect.bisect_right(offsets, math.floor(limit))
                del offsets[:back]
                del self.tokens[:back]

    def wait(self, count: float, per: float, weight: float, now: float) -> float:
        """Seconds until ``weight`` more tokens fit under ``count`` (0 when they fit now)."""
        tokens = self.tokens
        excess = sum(tokens) + weight - count
        if excess <= _EPSILON:
            return 0.0
        index = bisect.bisect_left(list(itertools.accumulate(tokens)), excess - _EPSILON)
        if index >= len(tokens):  # pragma: no cover - weight <= count is checked before
            return per
        return max(0.0, self.time(index) + per - now)

    def take(self, grain: float, weight: float, now: float) -> None:
        offsets, tokens = self.offsets, self.tokens
        if not offsets:  # an empty log starts afresh (and narrow again)
            self.base = now
            if tokens.typecode != "B":
                tokens = self.tokens = array.array("B")
        offset = math.ceil((now - self.base) / self.unit)
        if offsets and now - self.first < grain:
            if offset > offsets[-1]:
                offsets[-1] = self._fit(offset)
            self._put(tokens[-1] + weight, append=False)
            return
        if offsets:
            offset = max(offset, offsets[-1])  # never before an older entry: later, not earlier
        self.first = now
        self.offsets.append(self._fit(offset))
        self._put(weight, append=True)

    def _fit(self, offset: int) -> int:
        """``offset`` as stored: the log rebased on its oldest entry when it does not fit."""
        if offset <= _OFFSET_MAX:
            return offset
        oldest = self.offsets[0]  # pruned: within a period of now, so the rest fits
        self.base += oldest * self.unit
        self.offsets[:] = array.array(_OFFSET_CODE, [o - oldest for o in self.offsets])
        return min(offset - oldest, _OFFSET_MAX)

    def _put(self, value: float, *, append: bool) -> None:
        tokens = self.tokens
        code = tokens.typecode
        if code != "d":
            if not (float(value).is_integer() and value <= _TOKEN_MAX[code]):
                tokens = self.tokens = array.array(_token_code(value), tokens)
            if tokens.typecode != "d":
                value = int(value)
        if append:
            tokens.append(value)
        else:
            tokens[-1] = value

    def encode(self) -> str:
        offsets, tokens = self.offsets, self.tokens
        if _BIG_ENDIAN:  # pragma: no cover - the stored bytes are little-endian on every host
            offsets, tokens = (
                array.array(offsets.typecode, offsets),
                array.array(tokens.typecode, tokens),
            )
            offsets.byteswap()
            tokens.byteswap()
        header = _HEADER.pack(tokens.typecode.encode("ascii"), self.base, self.first, self.unit)
        return base64.b64encode(header + offsets.tobytes() + tokens.tobytes()).decode("ascii")

    @classmethod
    def load(cls, raw: Any) -> _Log | None:
        """A format-3 log, defensively: None when malformed (the budget errs generous)."""
        if type(raw) is not str or not raw:
            return None
        try:
            data = base64.b64decode(raw, validate=True)
            code_byte, base, first, unit = _HEADER.unpack_from(data)
        except (ValueError, struct.error):
            return None
        code = code_byte.decode("latin-1")
        size = _TOKEN_SIZES.get(code)
        body = len(data) - _HEADER.size
        if size is None or body % (4 + size) or not math.isfinite(base + first + unit):
            return None
        if not unit > 0:
            return None
        split = _HEADER.size + 4 * (body // (4 + size))
        offsets = array.array(_OFFSET_CODE)
        offsets.frombytes(data[_HEADER.size : split])
        tokens = array.array(code)
        tokens.frombytes(data[split:])
        if _BIG_ENDIAN:  # pragma: no cover
            offsets.byteswap()
            tokens.byteswap()
        # Whole counts cannot be negative (a zero counts nothing); float ones must be positive.
        if code == "d" and tokens and (min(tokens) <= 0 or not math.isfinite(sum(tokens))):
            return None
        if offsets != array.array(_OFFSET_CODE, sorted(offsets)):  # written sorted; else sorted
            pairs = sorted(zip(offsets, tokens, strict=True))
            offsets = array.array(_OFFSET_CODE, [p[0] for p in pairs])
            tokens = array.array(code, [p[1] for p in pairs])
        return cls(base, first, unit, offsets, tokens)


# --------------------------------------------------------------------------- the limiter


class RateLimiter:
    """A bucket per rate (never more than ``count`` in any ``per`` seconds); in memory, or
    shared through ``store`` under ``key``.

    ``clock`` is the monotonic clock used for deadlines (and for the in-memory buckets);
    ``wall`` the epoch clock of stored buckets; ``sleep`` / ``async_sleep`` wait (the default
    sync sleep is ``reliactl.retry.interruptible_sleep``: a signal ends it at once). Inject a
    ``reliactl.testing.FakeClock``'s methods and no test ever really waits.
    """

    def __init__(
        self,
        rates: str | int | Rate | list[Rate] | list[tuple[int, float]],
        *,
        key: str = "default",
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rates = rates_from(rates)
        self._spec_text = format_rates(self.rates)
        # (name in the record, capacity, period, grain) of each bucket
        self._specs = [(r.key, float(r.count), r.per, r.per / _GRAIN) for r in self.rates]
        if not key:
            raise ValueError("a rate limiter needs a non-empty key")
        self.key = key
        self.store = store
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()  # in-memory buckets; and one store connection per limiter
        # In memory: each bucket's log and tokens out, in the order of self._specs.
        self._logs: list[list[Entry]] = [[] for _ in self._specs]
        self._used = [0.0 for _ in self._specs]
        self._max_weight = min(r.count for r in self.rates)
        # Stored: each bucket's last encoded log text and the log it was encoded from (taken
        # out when read, under ``_lock``; a stale one simply does not match the text read).
        self._written: dict[str, tuple[str, _Log]] = {}

    def __repr__(self) -> str:
        where = f" store={self.store.location!r}" if self.store is not None else ""
        return f"RateLimiter({format_rates(self.rates)!r}, key={self.key!r}{where})"

    @property
    def spec(self) -> str:
        return self._spec_text

    # ---- one attempt

    def _check_weight(self, weight: float) -> None:
        if not weight > 0 or not math.isfinite(weight):
            raise ValueError(f"weight must be a positive number, got {weight!r}")
        if weight > self._max_weight:
            raise ValueError(
                f"weight {weight:g} can never be granted by {self.spec!r}"
                f" (at most {self._max_weight} at once)"
            )

    def _attempt(self, weight: float) -> float:
        """Take ``weight`` tokens if every bucket has them: 0.0; else the wait needed."""
        if self.store is not None:
            return self._attempt_stored(weight)
        with self._lock:
            now = self._clock()
            wait = 0.0
            logs, used = self._logs, self._used
            for index, (_, count, per, _) in enumerate(self._specs):
                log = logs[index]
                if log and log[0][1] + per <= now:
                    _prune(log, per, now)
                    used[index] = sum(e[2] for e in log)
                need = _wait(log, used[index], count, per, weight, now)
                wait = max(wait, need)
            if wait == 0.0:
                for index, (_, _, _, grain) in enumerate(self._specs):
                    _take(logs[index], grain, weight, now)
                    used[index] += weight
            return wait

    def _attempt_stored(self, weight: float) -> float:
        store = self.store
        assert store is not None
        result: list[float] = []
        spec = self._spec_text

        def update(record: Record | None) -> Record:
            result.clear()  # the store may run this more than once
            now = self._wall()
            logs = self._stored_logs(record, now)
            wait = 0.0
            for log, (_, count, per, _) in zip(logs, self._specs, strict=True):
                wait = max(wait, log.wait(count, per, weight, now))
            if wait == 0.0:
                for log, (_, _, _, grain) in zip(logs, self._specs, strict=True):
                    log.take(grain, weight, now)
            result.append(wait)
            encoded: dict[str, str] = {}
            written = self._written
            for log, (name, *_) in zip(logs, self._specs, strict=True):
                text = encoded[name] = log.encode()
                written[name] = (text, log)
            return {"v": _STORED_VERSION, "spec": spec, "at": now, "logs": encoded}

        with self._lock:
            store.update("rate", self.key, update)
        return result[-1]

    def _stored_logs(self, record: Record | None, now: float) -> list[_Log]:
        """The pruned log of each bucket (in the order of the specs) from a stored record of
        any format, moved back with the clock."""
        old: dict[str, Any] = record or {}
        raw_at: Any = old.get("at")
        known = type(raw_at) in (int, float) and math.isfinite(raw_at)
        at = float(raw_at) if known else now
        version = old.get("v")
        raw_logs = old.get("logs")
        stored: dict[str, Any] = raw_logs if isinstance(raw_logs, dict) else {}
        logs: list[_Log] = []
        for name, _, per, _ in self._specs:
            log: _Log | None = None
            if version == _STORED_VERSION:
                raw = stored.get(name)
                mine = self._written.pop(name, None)
                # The log this limiter encoded last, if the store still holds that text: the
                # same state load() would rebuild from it, without decoding and checking it.
                log = mine[1] if mine is not None and mine[0] == raw else _Log.load(raw)
            elif version == _FORMAT_2:
                log = _Log.from_flat(_load_flat(stored.get(name)), per, now)
            else:  # the first format: [first, last, tokens] JSON lists under "log"
                first = old.get("log")
                entries = first.get(name) if isinstance(first, dict) else None
                log = _Log.from_flat(_flat_from_entries(entries), per, now)
            if log is None:
                log = _Log.empty(per, now)
            if known and now < at:
                log.shift(now - at, now)  # the wall clock stepped back: no time since ``at``
            if log.offsets and max(log.time(-1), log.first) > now + per + _SKEW_S:
                # A take stamped more than a period (and a clock's skew) after the record
                # was written: no writer stamps that, so the log is damaged and dropped, as a
                # malformed one is (the budget errs generous), not a key blocked for years.
                log = _Log.empty(per, now)
            log.prune(per, now)
            logs.append(log)
        return logs

    # ---- the public calls

    def try_acquire(self, weight: float = 1) -> bool:
        """Take ``weight`` tokens from every bucket if they are all there now; never waits."""
        if weight != 1:
            self._check_weight(weight)
        return self._attempt(weight) == 0.0

    def acquire(self, weight: float = 1, timeout: float | None = None) -> float:
        """Wait for ``weight`` tokens, at most ``timeout`` seconds (None: as long as it takes).

        Returns the seconds spent waiting (0.0 when the tokens were there). Raises
        RateLimitExceeded, with ``retry_after``, as soon as the wait would pass the deadline.
        """
        if weight != 1:
            self._check_weight(weight)
        wait = self._attempt(weight)
        if wait == 0.0:
            return 0.0  # the common case: no clock read beyond the bucket's own
        started = self._clock()
        deadline = None if timeout is None else started + max(0.0, timeout)
        while True:
            self._give_up_if_late(wait, deadline, timeout)
            if self._sleep is None:
                from reliactl.retry import interruptible_sleep

                self._sleep = interruptible_sleep
            self._sleep(wait + _WAKE_SLACK)
            wait = self._attempt(weight)
            if wait == 0.0:
                return max(0.0, self._clock() - started)

    async def acquire_async(self, weight: float = 1, timeout: float | None = None) -> float:
        """``acquire`` for asyncio: waits with ``async_sleep``, never blocking the loop long."""
        if weight != 1:
            self._check_weight(weight)
        wait = self._attempt(weight)
        if wait == 0.0:
            return 0.0
        started = self._clock()
        deadline = None if timeout is None else started + max(0.0, timeout)
        while True:
            self._give_up_if_late(wait, deadline, timeout)
            await self._async_sleep(wait + _WAKE_SLACK)
            wait = self._attempt(weight)
            if wait == 0.0:
                return max(0.0, self._clock() - started)

    async def try_acquire_async(self, weight: float = 1) -> bool:
        """``try_acquire`` for symmetry in async code (it never waits either way)."""
        return self.try_acquire(weight)

    def _give_up_if_late(self, wait: float, deadline: float | None, timeout: float | None) -> None:
        if deadline is None:
            return
        now = self._clock()
        if now + wait > deadline:
            raise RateLimitExceeded(
                f"rate limit {self.spec!r} of {self.key!r}: no token within"
                f" {_seconds(timeout or 0.0)} (next in {_seconds(wait)})",
                retry_after=wait,
            )

    def reset(self) -> None:
        """Fill every bucket again (forget what was taken), here and in the store."""
        with self._lock:
            self._logs = [[] for _ in self._specs]
            self._used = [0.0 for _ in self._specs]
            if self.store is not None:
                self.store.delete("rate", self.key)

    def available(self) -> dict[str, float]:
        """Tokens in each bucket now, by rate text ("60/minute"), without taking any."""
        if self.store is None:
            with self._lock:
                now = self._clock()
                out = {}
                for rate, log, (_, count, per, _) in zip(
                    self.rates, self._logs, self._specs, strict=True
                ):
                    live = [e for e in log if e[1] + per > now]
                    out[str(rate)] = count - sum(e[2] for e in live)
                return out
        logs = self._stored_logs(self.store.get("rate", self.key), self._wall())
        return {
            str(rate): count - sum(log.tokens)
            for rate, log, (_, count, _, _) in zip(self.rates, logs, self._specs, strict=True)
        }


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 10 else f"{value:.0f}s"


# --------------------------------------------------------------------------- rate syntax

_RATE_UNITS = {
    "second": 1.0,
    "sec": 1.0,
    "s": 1.0,
    "minute": 60.0,
    "min": 60.0,
    "m": 60.0,
    "hour": 3600.0,
    "h": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
}


def parse_rates(text: str) -> list[tuple[int, float]]:
    """ "60/minute;1000/hour" -> [(60, 60.0), (1000, 3600.0)]: (tokens, per seconds)."""
    rates = []
    for raw_part in text.split(";"):
        part = raw_part.strip()
        if not part:
            continue
        count_text, _, unit = part.partition("/")
        unit = unit.strip().lower()
        per = 1.0
        if unit and unit[0].isdigit():
            try:
                per = parse_duration(unit)
            except DurationError:
                per = 0.0
        else:
            per = _RATE_UNITS.get(
                unit.rstrip("s") if unit.endswith("s") and unit != "s" else unit, 0.0
            )
        try:
            count = int(count_text.strip())
        except ValueError:
            count = 0
        if count <= 0 or per <= 0:
            raise ValueError(f'expected a rate such as "60/minute;1000/hour", got {text!r}')
        rates.append((count, per))
    if not rates:
        raise ValueError(f'expected a rate such as "60/minute;1000/hour", got {text!r}')
    return rates


# --------------------------------------------------------------------------- from config


def limiter_for(
    key: str,
    config: Config | None = None,
    *,
    rates: str | int | list[Rate] | None = None,
    store: StateStore | None = None,
    **kwargs: Any,
) -> RateLimiter:
    """The limiter of ``key``: ``rates`` if given, else ``rate_limit.limits[key]``, else for
    "openai" ``rate_limit.openai_requests_per_minute`` (env RATE_LIMIT_OPENAI_RPM).

    Raises ValueError when no rate is known for ``key``.
    """
    if rates is None:
        if config is None:
            from reliactl._configsource import process_config

            config = process_config()
        settings = config.rate_limit
        if key in settings.limits:
            rates = settings.limits[key]
        elif key == "openai":
            rates = f"{settings.openai_requests_per_minute}/minute"
        else:
            known = ", ".join(sorted(settings.limits)) or "none"
            raise ValueError(f"no rate limit named {key!r} in rate_limit.limits (known: {known})")
    return RateLimiter(rates, key=key, store=store, **kwargs)
