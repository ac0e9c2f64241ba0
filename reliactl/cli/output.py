"""The one place that turns results into text: tables, JSON, messages; and error reporting.

Data goes to stdout, messages to stderr. A rich table only on a terminal, plain aligned text
otherwise; no color when NO_COLOR is set. ``--json`` output is one document with "version".
rich is imported only when a terminal needs it: cron and pipes never pay for it.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence

from reliactl.errors import ConfigError, ReliactlError
from reliactl.units import cescape as cescape  # noqa: PLC0414 (the ground floor owns them)
from reliactl.units import iso_utc as iso_utc  # noqa: PLC0414 (the JSON time form)
from reliactl.units import printable as printable  # noqa: PLC0414
from reliactl.units import with_times as with_times  # noqa: PLC0414

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

JSON_VERSION = 1
# A document's "version" goes up when one of its fields changes meaning (DESIGN.md section 2).
# 2: times are ISO 8601 UTC text (`started_at`), epoch seconds beside them (`started_at_epoch`).
TIMES_JSON_VERSION = 2
PROG = "reliactl"


def is_tty(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def color_enabled(stream: Any = None) -> bool:
    return is_tty(stream) and "NO_COLOR" not in os.environ


def console(*, stderr: bool = False) -> Any:
    """A rich Console for a terminal (imported lazily)."""
    from rich.console import Console

    return Console(stderr=stderr, no_color="NO_COLOR" in os.environ, highlight=False)


# ---- messages (stderr)


def utc_stamp(epoch: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-28T23:57:52.123Z."""
    now = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def error(message: str) -> None:
    _say(f"{PROG}: error: {message}")


def warn(message: str) -> None:
    _say(f"{PROG}: warning: {message}")


def info(message: str) -> None:
    _say(f"{PROG}: {message}")


def _say(line: str) -> None:
    """One of reliactl's own lines on stderr, best effort: a full disk or a closed stderr must
    never turn into a traceback or a different exit code (the job's code matters more).

    A message quotes foreign text (a lock's holder, a breaker's name, a path, an error from
    elsewhere): its control characters are escaped (``printable``, backslashes kept), so it
    stays one line and never sends a terminal escape sequence."""
    line = printable(line)
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        stream_failed("stderr")


_dead_streams: list[Any] = []


def stream_failed(name: str) -> None:
    """``sys.<name>`` cannot be written (closed, full disk, reader gone): send later writes,
    and the interpreter's last flush (which would exit 120), to /dev/null instead."""
    _dead_streams.append(getattr(sys, name, None))  # its unflushed bytes are never retried
    try:
        setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    except OSError:
        pass


# ---- data (stdout)


def emit_json(document: dict[str, Any], *, version: int = JSON_VERSION, line: bool = False) -> None:
    """One JSON document on stdout, with the "version" field first; with ``line`` compact on
    one line, one of a stream of them (JSON Lines: `health --watch --json`, one per round)."""
    doc = {"version": version, **document}
    sys.stdout.write(strict_json(doc, _dumps_line if line else dumps_indented) + "\n")
    sys.stdout.flush()


def _dumps_line(document: Any) -> str:
    import json

    return json.dumps(document, default=str, separators=(",", ":"))


def strict_json(document: Any, dumps: Callable[[Any], str]) -> str:
    r"""``dumps(document)``, made valid UTF-8 JSON that strict parsers (Go, serde_json) accept:
    the one rule for every JSON reliactl writes (DESIGN.md section 2). A string that is not
    valid Unicode (a file name, argv word or lock path holding a byte that is not UTF-8,
    which Python carries as a lone ``surrogateescape`` code point and json writes as a lone
    ``\udcff``) is written as the array of its bytes (``[97, 255]``, journald's JSON rule),
    so two different names never read the same; a mapping key that is not valid Unicode
    (it cannot be an array) as its ``cescape``. Valid text is untouched; the check costs one
    substring search of the output unless it holds a ``\ud...`` escape, then a scan of those
    for one that is not half of a surrogate pair (an emoji is a pair)."""
    text = dumps(document)
    if _lone_surrogate_escape(text) if "\\ud" in text else not _is_unicode(text):
        text = dumps(_valid_unicode(document))
    return text


def _lone_surrogate_escape(text: str) -> bool:
    r"""Whether JSON text (ensure_ascii) holds a ``\udXXX`` escape of a lone surrogate: a low
    one (``\udc00``-``\udfff``) not after a high one, or a high one not before a low one. A
    ``\\ud...`` (an escaped backslash, then the letters) is no escape."""
    at = text.find("\\ud")
    while at >= 0:
        run = 0  # backslashes before this one: an odd count makes it the second of a "\\"
        while at - run > 0 and text[at - run - 1] == "\\":
            run += 1
        if run % 2:
            at = text.find("\\ud", at + 1)
            continue
        if text[at + 3 : at + 4] not in _HIGHS:
            return True  # a low surrogate that no high one took
        after = at + 6
        if text[after : after + 3] != "\\ud" or text[after + 3 : after + 4] not in _LOWS:
            return True
        at = text.find("\\ud", after + 6)
    return not _is_unicode(text)  # (ensure_ascii=False writes a surrogate as itself)


_HIGHS = ("8", "9", "a", "b")  # the fourth hex digit of \ud800-\udbff, of \udc00-\udfff:
_LOWS = ("c", "d", "e", "f")


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_unicode(value: Any, key: bool = False) -> Any:
    """``value`` with every string that is not valid Unicode as the list of its bytes (a key:
    its ``cescape``), and anything json would write through ``str`` (``default=str``) turned
    to that text first."""
    if isinstance(value, str):
        if _is_unicode(value):
            return value
        text = str.__str__(value)
        if key:
            return cescape(text)
        return list(_bytes_of(text))
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return {_valid_unicode(k, True): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_valid_unicode(item) for item in value]
    return _valid_unicode(str(value), key)


def _bytes_of(text: str) -> bytes:
    """The bytes ``text`` was decoded from (``os.fsencode``'s): an escaped byte as itself,
    any other lone surrogate as its own three bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(
            c.encode("utf-8", "surrogateescape" if "\udc80" <= c <= "\udcff" else "surrogatepass")
            for c in text
        )


def dumps_indented(document: Any) -> str:
    """``json.dumps(document, indent=2, default=str)``, character for character, ~4x faster.

    With ``indent`` the standard library falls back to its pure-Python generator encoder:
    ~35 ms of a 500-check ``health --json`` (issue 21). This writes the same text into one
    list with the C string escaper; a value json cannot encode goes through ``str`` as there.
    tests/cli/test_output.py checks it equal to json.dumps on awkward documents."""
    chunks: list[str] = []
    _encode(document, chunks, "\n")
    return "".join(chunks)


try:  # json.encoder's own C escaper, without importing json (and re): ~5 ms of every start
    from _json import encode_basestring_ascii as _json_string
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    from json.encoder import py_encode_basestring_ascii as _json_string


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


_INFINITY = float("inf")


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return _json_string(key)
    if isinstance(key, float):
        return _json_string(_float_text(key))
    if key is True:
        return '"true"'
    if key is False:
        return '"false"'
    if key is None:
        return '"null"'
    if isinstance(key, int):
        return _json_string(int.__repr__(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _null_text(value: None) -> str:
    return "null"


# Exact types written without a recursive call (subclasses, e.g. enums, take the long way).
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _json_string,
    int: int.__repr__,
    float: _float_text,
    bool: _bool_text,
    type(None): _null_text,
}


def _encode(value: Any, out: list[str], newline: str) -> None:
    # The order of json's own _iterencode: str, None, True, False, int, float, containers.
    if isinstance(value, str):
        out.append(_json_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            scalar = _SCALARS.get(type(item))
            if scalar is not None:
                out.append(separator + scalar(item))
            else:
                out.append(separator)
                _encode(item, out, inner)
            separator = "," + inner
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            name = _json_string(key) if type(key) is str else _key_text(key)
            scalar = _SCALARS.get(type(item))
            if scalar is not None:
                out.append(f"{separator}{name}: {scalar(item)}")
            else:
                out.append(f"{separator}{name}: ")
                _encode(item, out, inner)
            separator = "," + inner
        out.append(newline + "}")
    else:
        _encode(str(value), out, newline)


def emit_text(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    styles: Sequence[Sequence[str | None]] | None = None,
    elastic: Sequence[str] = (),
) -> None:
    """Rows as a rich table on a terminal, else as plain aligned columns (no color).

    With ``elastic`` (column names) the terminal table is compact (no vertical rules) and only
    those columns give way on a narrow terminal (their text wraps); the others are never
    wrapped or cut.

    A terminal table of more than ``RICH_MAX_ROWS`` rows is printed as the plain columns, its
    styled cells colored with ANSI codes: rich lays out each cell through its segment
    machinery, ~1-3 ms a row (500 health checks: 0.6-2.5 s on a shared 2-core machine,
    against ~2 ms for the plain layout; issue 21)."""
    if is_tty() and len(rows) > RICH_MAX_ROWS:
        emit_text(plain_table(columns, rows, styles=styles if color_enabled() else None))
        return
    if is_tty():
        from rich import box
        from rich.table import Table

        if not elastic:
            tbl = Table(title=title, header_style="bold")
            for column in columns:
                tbl.add_column(column)
        else:
            tbl = Table(
                title=title,
                header_style="bold",
                box=box.SIMPLE_HEAD,
                show_edge=False,
                pad_edge=False,
                collapse_padding=True,
            )
            for column in columns:
                if column in elastic:
                    tbl.add_column(column, overflow="fold", ratio=1)
                else:
                    tbl.add_column(column, no_wrap=True)
        from rich.text import Text

        for index, row in enumerate(rows):
            cells = []
            for col, cell in enumerate(row):
                style = styles[index][col] if styles and styles[index] else None
                # Text, not a markup string: a cell is never read as rich markup or :emoji:
                cells.append(Text(_cell(cell), style=style or ""))
            tbl.add_row(*cells)
        console().print(tbl)
        return
    emit_text(plain_table(columns, rows))


def _cell(value: Any) -> str:
    """A table cell as text, its control characters escaped (``printable``), so that a stored
    command, a check's message or a host name never starts a line, moves the cursor or clears
    the screen."""
    return "" if value is None else printable(str(value))


RICH_MAX_ROWS = 200  # a bigger terminal table is laid out plainly (see table())

# The rich style names the commands pass to table(), as SGR codes for the plain layout.
_SGR = {"bold": "1", "red": "31", "green": "32", "yellow": "33", "bright_black": "90"}


def plain_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    styles: Sequence[Sequence[str | None]] | None = None,
) -> str:
    """Aligned columns, two spaces apart; with ``styles`` (rich style names per cell) the
    styled cells are wrapped in ANSI color codes, the alignment counted without them."""
    cells = [[str(c) for c in columns]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if not styles:
        lines = [
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
        ]
        return "\n".join(lines)
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells[0])).rstrip()]
    for index, row in enumerate(cells[1:]):
        row_styles = styles[index] if index < len(styles) and styles[index] else ()
        out = []
        for col, cell in enumerate(row):
            padded = cell.ljust(widths[col])
            style = row_styles[col] if col < len(row_styles) else None
            codes = ";".join(_SGR[word] for word in (style or "").split() if word in _SGR)
            if codes and cell:
                padded = f"\x1b[{codes}m{cell}\x1b[0m" + padded[len(cell) :]
            out.append(padded)
        lines.append("  ".join(out).rstrip())
    return "\n".join(lines)


# ---- errors


def report_error(exc: ReliactlError) -> int:
    """Print ``exc`` on stderr (one line per problem) and return its exit code."""
    from reliactl.cli.exitcodes import exit_code_for

    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            _say(f"{PROG}: {problem}")
        count = len(exc.problems)
        _say(f"{PROG}: configuration invalid ({count} problem{'s' if count != 1 else ''})")
    else:
        error(str(exc))
    return exit_code_for(exc)


def reports_errors(fn: F) -> F:
    """Decorate a command: a ReliactlError becomes its message on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ReliactlError as exc:
            # SystemExit, which typer.Exit becomes in Click's standalone mode: the fast
            # dispatcher (cli/_fast.py) calls commands without typer
            raise SystemExit(report_error(exc)) from None

    return wrapper  # type: ignore[return-value]
