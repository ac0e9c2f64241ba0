"""The parsed form of a configuration file, kept between starts (issue 21 item 4).

Importing PyYAML costs ~20 ms of CPU (its package imports the emitter, the representer and the
C extension's every module, and its reader compiles one pattern of every printable Unicode
range, ~8 ms), a fifth of a `run -- true` start with a configuration file, while parsing a
typical file takes under a millisecond. A cron tick reads the same file each time, so the
loader keeps what `_yaml.parse` returned for it in ``$XDG_CACHE_HOME/reliactl`` (else
``$HOME/.cache/reliactl``), one JSON file per configuration path, and a later start with the
same text uses that without importing yaml. The cron expressions of its jobs that cronsim
accepted are kept with it, so that start does not import cronsim to validate them again.

Correctness first: an entry is used only when its text equals the file's text character for
character and it was written by this reliactl (``FORMAT``, the version, and the size and
modification time of ``_yaml.py`` and of the PyYAML and cronsim packages). Only documents
that parsed without a problem and whose values survive JSON exactly (maps with text keys,
lists, text, integers, finite floats, booleans, null: no timestamps) are kept, so a problem
is always reported by the parser itself. The file is read only if it is a regular file
owned by this user and writable by no one else (not through a symbolic link), and written
to a private temporary file then renamed over (0600, the directory 0700); any error on
either side is ignored and the file parsed as before. Nothing is cached without an absolute
``$XDG_CACHE_HOME`` or ``$HOME`` in the environment the loader was given, nor with
``RELIACTL_CONFIG_CACHE=0`` (an entry holds the file's text: an operator who wants no copy of
it outside the file turns the cache off).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping

from reliactl._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1  # bump when _yaml.parse's output for the same text changes
MAX_CACHE_BYTES = 8 * 1024 * 1024

KeyPath = tuple[str | int, ...]


OFF_SWITCH = "RELIACTL_CONFIG_CACHE"


def cache_dir(env: Mapping[str, str]) -> str | None:
    """``$XDG_CACHE_HOME/reliactl`` or ``$HOME/.cache/reliactl``; None without either, or when
    the operator turned the cache off (``RELIACTL_CONFIG_CACHE=0``)."""
    from reliactl._switches import switched_off

    if switched_off(OFF_SWITCH, env):
        return None
    base = env.get("XDG_CACHE_HOME") or ""
    if os.path.isabs(base):
        return os.path.join(base, "reliactl")
    home = env.get("HOME") or ""
    if os.path.isabs(home):
        return os.path.join(home, ".cache", "reliactl")
    return None


def _entry_path(directory: str, config_path: str) -> str:
    key = _crc32(os.path.abspath(config_path).encode("utf-8", "surrogateescape"))
    return os.path.join(directory, f"config-{key:08x}.json")


def _crc32(data: bytes) -> int:
    """``zlib.crc32(data)`` (the entry's name, unchanged) without importing zlib: ~0.3 ms of
    every start with a file, for a path of a few dozen bytes (~30 us here)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _origin(name: str) -> str | None:
    """``importlib.util.find_spec(name).origin`` (None when not found) for a top-level name,
    without importing importlib.util: it imports contextlib (~1 ms with importlib.abc), which
    nothing else of a start from a console script needs. The same steps: a module already
    imported answers with its own spec, else each finder of ``sys.meta_path`` in turn."""
    import sys

    module = sys.modules.get(name)
    if module is not None:
        spec = getattr(module, "__spec__", None)
        return None if spec is None else spec.origin
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(name, None, None)
        if spec is not None:
            return spec.origin  # type: ignore[no-any-return]
    return None


def _stamp() -> list[Any]:
    """What an entry depends on besides the text: this reliactl, the PyYAML and the cronsim
    installed (cronsim's verdicts on the cron expressions are kept too)."""
    stamp: list[Any] = [FORMAT, __version__]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    origins: list[str | None] = [os.path.join(here, "_yaml.py")]
    for name in ("yaml", "cronsim"):
        origins.append(_origin(name))
    for path in origins:
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        stamp.append([path, st.st_size, st.st_mtime_ns] if st else None)
    return stamp


def lookup(
    env: Mapping[str, str], config_path: str, text: str
) -> tuple[Any, dict[KeyPath, int], list[str]] | None:
    """(data, line of each key path, cron expressions cronsim accepted) kept for exactly
    ``text``, or None."""
    directory = cache_dir(env)
    if directory is None:
        return None
    try:
        fd = os.open(
            _entry_path(directory, config_path),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
        )
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size > MAX_CACHE_BYTES
        ):
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        entry = _loads(b"".join(chunks))
        if (
            not isinstance(entry, dict)
            or entry.get("text") != text
            or entry.get("stamp") != _stamp()
        ):
            return None
        lines = {tuple(kpath): line for kpath, line in entry["lines"]}
        crons = entry["crons"]
        if not isinstance(crons, list) or not all(isinstance(c, str) for c in crons):
            return None
        return entry["data"], lines, crons
    except (OSError, ValueError, TypeError, KeyError):
        return None
    finally:
        os.close(fd)


_WHITESPACE = " \t\n\r"  # what JSON allows around a document (json.decoder.WHITESPACE)
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What ``_json.make_scanner`` reads of a ``json.JSONDecoder``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _loads(data: bytes) -> Any:
    """``json.loads(data)`` for a kept entry, with json's own C scanner but without importing
    json: its decoder imports ``re`` (with enum ~5-6 ms of every start with a configuration
    file; nothing else of a `cleanup` or `run` start needs it). Raises ValueError for what
    json.loads refuses (tests/config/test_cache.py compares the two)."""
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        import json

        return json.loads(data)
    text = data.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = make_scanner(_Context())(text, start)  # type: ignore[arg-type]
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError("extra data after the JSON document")
    return value


def _exact(value: Any) -> bool:
    """Whether ``value`` comes back from JSON equal and of the same types."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_exact(item) for item in value)
    if isinstance(value, dict):
        return all(type(k) is str and _exact(v) for k, v in value.items())
    return False


class Pending:
    """A clean parse to keep, serialized before the loader changes the data (env, flags,
    defaults); ``write`` adds the cron expressions validated meanwhile and writes it."""

    def __init__(self, directory: str, config_path: str, parts: dict[str, str]) -> None:
        self.directory = directory
        self.config_path = config_path
        self.parts = parts

    def write(self, crons: list[str]) -> bool:
        """Write the entry (False when it could not be; nothing else happens then)."""
        import json

        parts = {**self.parts, "crons": json.dumps(crons)}
        entry = ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode("ascii")
        if len(entry) > MAX_CACHE_BYTES:
            return False
        temporary = None
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            final = _entry_path(self.directory, self.config_path)
            temporary = f"{final}.{os.getpid()}.tmp"
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                view = memoryview(entry)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, final)
        except OSError:
            if temporary is not None:
                try:  # not contextlib.suppress: contextlib is ~0.7 ms of every start
                    os.unlink(temporary)
                except OSError:
                    pass
            return False
        return True


def prepare(
    env: Mapping[str, str], config_path: str, text: str, data: Any, lines: dict[KeyPath, int]
) -> Pending | None:
    """What to keep of a clean parse of ``text``, or None when it cannot be kept."""
    directory = cache_dir(env)
    if directory is None or not _exact(data):
        return None
    import json  # a fresh parse (yaml imported already): json at its one write

    try:
        parts = {
            "stamp": json.dumps(_stamp()),
            "text": json.dumps(text),
            "data": json.dumps(data, allow_nan=False),
            "lines": json.dumps([[list(kpath), line] for kpath, line in lines.items()]),
        }
    except (ValueError, TypeError):
        return None
    return Pending(directory, config_path, parts)
