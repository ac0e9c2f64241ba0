"""Loading: finding the file (trusted only), reading it, the environment over it, flags over
that; defaults < YAML < env < flags."""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Mapping

from reliactl import _records
from reliactl.config._schema import (
    DEFAULT_CONFIG_NAME,
    ENV_PREFIX,
    LEGACY_ENV,
    MAX_CONFIG_BYTES,
    Config,
    KeyPath,
    _hints,
    _leaf_paths,
    _strip_optional,
)
from reliactl.config._validation import (
    _build,
    _cross_checks,
    _kind,
    _Origins,
    _suggest,
    dotted_path,
)
from reliactl.errors import ConfigError, ConfigProblem
from reliactl.state.base import path_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from pathlib import Path
    from typing import Any
else:  # frozen dataclasses without the dataclasses module, as the schema's (see _records)
    from reliactl._records import dataclass, field


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    from pathlib import Path

    return Path(_state_dir(os.environ if environ is None else environ))


def _state_dir(env: Mapping[str, str]) -> str:
    """``state_home`` as text (the loader's defaults need no pathlib, see path_text)."""
    return path_text(
        os.path.join(_xdg_dir(env, "XDG_STATE_HOME", os.path.join(".local", "state")), "reliactl")
    )


def _xdg_dir(env: Mapping[str, str], var: str, fallback: str) -> str:
    """``$var`` if it is an absolute path; else ``$HOME/fallback`` (the XDG Base Directory
    spec says a relative value is invalid and must be ignored: it would depend on the cwd)."""
    value = env.get(var) or ""
    if os.path.isabs(value):
        return value
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), fallback)


def config_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a configuration file is looked for when none is named, in order."""
    from pathlib import Path

    return [Path(text) for text in _candidates(os.environ if environ is None else environ)]


def _candidates(env: Mapping[str, str]) -> list[str]:
    """``config_candidates`` as text: the search itself needs no pathlib (see path_text)."""
    xdg = _xdg_dir(env, "XDG_CONFIG_HOME", ".config")
    return [
        DEFAULT_CONFIG_NAME,
        path_text(os.path.join(xdg, "reliactl", "config.yaml")),
        "/etc/reliactl/config.yaml",
    ]


def config_untrusted(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str | None:
    """Why the configuration file ``path`` must not be trusted, or None (see reliactl.trust).

    The file must be owned by the invoking user or root and writable by nobody else, and so
    must every directory and link on its path (``trust.file_untrusted``): otherwise another
    user could make reliactl run their command checks or delete their choice of cleanup
    roots with this user's rights. A descriptor handed over (``-c /dev/stdin``,
    ``/dev/fd/N``) is judged on the opened file alone.
    """
    from reliactl.trust import file_untrusted

    return file_untrusted(path, st)


def find_config_file(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    notes: list[str] | None = None,
) -> tuple[Path | None, str]:
    """The file to load and how it was chosen; an explicit or $RELIACTL_CONFIG file must exist.

    A file found by search that is not trusted (``config_untrusted``) is skipped, and why is
    appended to ``notes``; an explicit one is refused when it is read.
    """
    found, how = _find_config_text(explicit, os.environ if environ is None else environ, notes)
    if found is None:
        return None, how
    from pathlib import Path

    return Path(found), how


def _find_config_text(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str], notes: list[str] | None
) -> tuple[str | None, str]:
    """``find_config_file`` with the file as ``str(Path(...))`` text (see path_text): the
    loader needs no pathlib, ``LoadedConfig.path`` makes the Path when it is read."""
    if explicit:
        return path_text(explicit), "--config"
    if env.get("RELIACTL_CONFIG"):
        return path_text(env["RELIACTL_CONFIG"]), "RELIACTL_CONFIG"
    for candidate in _candidates(env):
        if not os.path.isfile(candidate):  # as Path.is_file: False on any OSError
            continue
        reason = config_untrusted(candidate)
        if reason is not None:
            if notes is not None:
                notes.append(f"skipped configuration file {candidate}: {reason}")
            continue
        return candidate, "search"  # _candidates are path_text already
    return None, "none"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration, the file it came from, and the source of every value.

    ``sources`` (dotted key path -> default, FILE:LINE, env VAR or flag --NAME) is worked out
    on first use: only ``config show`` reads it, and for 5,000 health checks it is ~120,000
    paths, half of the whole load's time when built eagerly."""

    config: Config
    path: Path | None
    notes: tuple[str, ...] = ()  # files skipped by the search, and why
    origins: _Origins | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def sources(self) -> dict[str, str]:
        """Where every leaf setting came from, by dotted key path."""
        origins = self.origins if self.origins is not None else _Origins("<defaults>")
        return {dotted_path(kp): origins.source_of(kp) for kp in _leaf_paths(self.config, ())}


class _PathOnRead:
    """``LoadedConfig.path``: the loader keeps the file's name as text in the instance (its
    ``__init__`` puts the fields straight into ``__dict__``); reading the field makes the
    ``Path`` once and keeps it. So a start that never reads it (``run``, ``health`` without
    remediations) imports no pathlib (with urllib.parse and ipaddress, ~3-4 ms), while
    ``loaded.path`` is a ``Path`` (or None) as before, also in ``repr``, ``==``, ``hash``,
    ``dataclasses.fields``/``asdict``/``replace`` and a pickle (they read the attribute).
    A data descriptor (it has ``__set__``), so it wins over the instance's ``__dict__``."""

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            raise AttributeError("path")  # as a field without a default: no class attribute
        value = instance.__dict__["path"]
        if isinstance(value, str):
            from pathlib import Path

            value = instance.__dict__["path"] = Path(value)
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        # Only object.__setattr__ gets here (a standard dataclass subclass's __init__): the
        # record's own __setattr__ refuses assignment first.
        instance.__dict__["path"] = value

    def __delete__(self, instance: Any) -> None:
        del instance.__dict__["path"]


# Set after the class is built: a class attribute named as a field would be its default.
type.__setattr__(LoadedConfig, "path", _PathOnRead())


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
    use_env: bool = True,
    search: bool = True,
) -> LoadedConfig:
    """Load and validate: built-in defaults < YAML file < environment < ``flags``.

    ``flags`` maps a dotted key path to (value, flag name). Raises ConfigError listing every
    problem at once. No file at all is fine unless one was named explicitly.
    """
    env = dict(os.environ if environ is None else environ)
    notes: list[str] = []
    if search:
        file_path, how = _find_config_text(path, env, notes)
    elif path:
        file_path, how = path_text(path), "--config"
    else:
        file_path, how = None, "none"
    filename = file_path if file_path is not None else "<defaults>"
    origins = _Origins(filename)
    problems: list[ConfigProblem] = []
    raw: dict[str, Any] = {}
    pending = None

    if file_path is not None:
        text, error = _read_text(file_path)
        if error is not None:
            how_text = {"RELIACTL_CONFIG": " (named by RELIACTL_CONFIG)"}.get(how, "")
            raise ConfigError([ConfigProblem(filename, None, "", error + how_text)])
        assert text is not None
        data, lines, yaml_problems, pending = _parse_file(env, filename, text)
        for line, kpath, message in yaml_problems:
            problems.append(ConfigProblem(filename, line, dotted_path(kpath), message))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                ConfigProblem(filename, 1, "", f"expected a mapping of sections, got {_kind(data)}")
            )
        else:
            raw = data
            for kpath, line in lines.items():
                origins.by_path[kpath] = ("file", line)

    if use_env:
        _apply_env(raw, env, origins, problems)
    for dotted, (value, flag_name) in (flags or {}).items():
        kpath = tuple(dotted.split("."))
        _set_path(raw, kpath, value)
        origins.by_path[kpath] = ("flag", flag_name)

    _fill_derived_defaults(raw, env, origins, file_path, problems)
    config = _build(Config, raw, (), origins, problems)
    if isinstance(config, Config):
        problems.extend(_cross_checks(config, origins))
    if pending is not None:  # a fresh, clean parse: kept with the cron expressions validated
        pending.write(_accepted_crons(config))
    if problems:
        raise ConfigError(problems)
    assert isinstance(config, Config)
    # The file's name as text: LoadedConfig.path makes the Path when read (_PathOnRead).
    text_path: Any = file_path
    return LoadedConfig(config=config, path=text_path, notes=tuple(notes), origins=origins)


def _parse_file(
    env: Mapping[str, str], filename: str, text: str
) -> tuple[Any, dict[KeyPath, int], list[tuple[int | None, KeyPath, str]], Any]:
    """(data, line of each key path, problems, what to keep) of ``_yaml.parse(text)``, or what
    it returned for this text at an earlier start (kept by config/_cache.py: the start imports
    no yaml, and the cron expressions cronsim accepted then are not validated again)."""
    from reliactl.config import _cache

    kept = _cache.lookup(env, filename, text)
    if kept is not None:
        data, lines, crons = kept
        if crons:
            from reliactl.schedule import accept_crons

            accept_crons(crons)
        return data, lines, [], None
    from reliactl import _yaml

    doc = _yaml.parse(text)
    pending = None if doc.problems else _cache.prepare(env, filename, text, doc.data, doc.lines)
    return doc.data, doc.lines, doc.problems, pending


def _accepted_crons(config: Any) -> list[str]:
    """The cron expressions of ``config``'s jobs that cronsim accepted while validating it."""
    import sys

    schedule = sys.modules.get("reliactl.schedule")
    if schedule is None or not isinstance(config, Config):
        return []
    accepted = set(schedule.accepted_crons())
    return sorted({job.schedule for job in config.jobs.values() if job.schedule in accepted})


def _read_text(path: str) -> tuple[str | None, str | None]:
    # O_NONBLOCK: a FIFO planted at the path must never block the open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, "configuration file not found"
    except OSError as exc:
        return None, f"cannot read configuration file: {exc.strerror}"
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None, "is a directory, expected a YAML file"
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file (a FIFO or device?); refused"
        reason = config_untrusted(path, st)
        if reason is not None:
            return None, f"refused: {reason} (fix its owner or mode: chown/chmod go-w)"
        if st.st_size > MAX_CONFIG_BYTES:
            return None, f"file is larger than {MAX_CONFIG_BYTES} bytes; refused"
        chunks = []
        total = 0
        while total <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        return None, f"cannot read configuration file: {exc.strerror}"
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        return None, f"file is larger than {MAX_CONFIG_BYTES} bytes; refused"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"


def _set_path(raw: dict[str, Any], kpath: KeyPath, value: Any) -> None:
    node: Any = raw
    for part in kpath[:-1]:
        nxt = node.get(part) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[kpath[-1]] = value


def _fill_derived_defaults(
    raw: dict[str, Any],
    env: Mapping[str, str],
    origins: _Origins,
    file_path: str | None,
    problems: list[ConfigProblem],
) -> None:
    """Default the state, lock and log paths; make every configured path absolute.

    A relative path must never make the lock or the store depend on the caller's working
    directory: one from the file is resolved against the file's directory, one from a flag
    against the working directory (where the user typed it), one from the environment is an
    error (there is nothing stable to resolve it against).
    """
    home = _state_dir(env)
    base = os.path.dirname(os.path.abspath(file_path)) if file_path is not None else None

    def anchored(value: str, kpath: KeyPath) -> str:
        value = os.path.expanduser(value)
        if os.path.isabs(value):
            return value
        origin = origins.by_path.get(kpath)
        kind = origin[0] if origin is not None else None
        if kind == "file" and base is not None:
            return os.path.normpath(os.path.join(base, value))
        if kind == "flag":
            return os.path.abspath(value)
        problems.append(
            origins.problem(
                kpath,
                f"expected an absolute path (a relative one would depend on the working"
                f" directory), got {value!r}",
            )
        )
        return value

    for section, key, default in (
        ("state", "path", os.path.join(home, "state.db")),
        ("run", "lock_dir", os.path.join(home, "locks")),
        ("run", "log_dir", os.path.join(home, "logs")),
    ):
        sect = raw.get(section)
        if sect is None:
            sect = raw[section] = {}
        if isinstance(sect, dict):
            value = sect.get(key)
            if value in (None, ""):
                sect[key] = str(default)
            elif isinstance(value, str):
                sect[key] = anchored(value, (section, key))
    cleanup = raw.get("cleanup")
    roots = cleanup.get("roots") if isinstance(cleanup, dict) else None
    for index, root in enumerate(roots if isinstance(roots, list) else []):
        if isinstance(root, dict) and isinstance(root.get("path"), str):
            kpath: KeyPath = ("cleanup", "roots", index, "path")
            if not root["path"].strip():
                problems.append(origins.problem(kpath, "must not be empty"))
            else:
                root["path"] = anchored(root["path"], kpath)


def _schema_field(cls: type, name: str) -> tuple[Any, _records.Field] | None:
    hints = _hints(cls)
    for f in _records.fields(cls):
        if f.name == name:
            return hints[name], f
    return None


def _apply_env(
    raw: dict[str, Any],
    env: Mapping[str, str],
    origins: _Origins,
    problems: list[ConfigProblem],
) -> None:
    wanted: list[tuple[str, KeyPath]] = [
        (var, kpath) for var, kpath in LEGACY_ENV.items() if var in env
    ]
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        kpath, error = _resolve_env_path(parts)
        if error is not None:
            problems.append(
                ConfigProblem("environment", None, ".".join(parts), error, variable=var)
            )
            continue
        wanted.append((var, kpath))
    for var, kpath in wanted:
        _set_path(raw, kpath, _env_value(env[var], _field_at(kpath)))
        origins.by_path[kpath] = ("env", var)


def _resolve_env_path(parts: list[str]) -> tuple[KeyPath, str | None]:
    cls: Any = Config
    kpath: list[str] = []
    i = 0
    while i < len(parts):
        name = parts[i]
        if not _records.is_record(cls):
            return tuple(kpath), "not a setting"
        found = _schema_field(cls, name)
        if found is None:
            names = [f.name for f in _records.fields(cls)]
            return tuple(kpath), f"unknown setting '{name}'{_suggest(name, names)}"
        annotation, _ = found
        kpath.append(name)
        base = _strip_optional(annotation)
        origin = _records.type_origin(base)
        if origin is dict:
            value_type = _records.type_args(base)[1]
            if i + 1 < len(parts) and _records.is_record(value_type):
                kpath.append(parts[i + 1])
                cls = value_type
                i += 2
                continue
            if i + 1 < len(parts) and i + 2 == len(parts):
                kpath.append(parts[i + 1])
                return tuple(kpath), None
            return tuple(kpath), "is a mapping; set it in the configuration file"
        if _records.is_record(base):
            cls = base
            i += 1
            continue
        if origin is list:
            return tuple(kpath), "is a list; set it in the configuration file"
        if i + 1 != len(parts):
            return tuple(kpath), "is not a section"
        return tuple(kpath), None
    return tuple(kpath), "names a section, not a setting"


def _field_at(kpath: KeyPath) -> Any:
    """The annotation of the setting at ``kpath`` (str if the path is not in the schema)."""
    cls: Any = Config
    annotation: Any = Config
    i = 0
    while i < len(kpath):
        found = _schema_field(cls, str(kpath[i]))
        if found is None:
            return str
        annotation = found[0]
        base = _strip_optional(annotation)
        if _records.type_origin(base) is dict:
            annotation = _records.type_args(base)[1]
            cls = annotation
            i += 2
            continue
        cls = base
        i += 1
    return annotation


def _env_value(text: str, annotation: Any) -> Any:
    if _strip_optional(annotation) is str:
        return text
    value = _plain_scalar(text)
    if value is not _UNDECIDED:
        return value
    from reliactl import _yaml

    return _yaml.parse_scalar(text)


_UNDECIDED = object()
# Plain words YAML 1.1 (PyYAML's resolver) reads as booleans or null.
_YAML_WORDS = frozenset(
    form
    for word in ("yes", "no", "true", "false", "on", "off", "null")
    for form in (word, word.capitalize(), word.upper())
)
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./@-")


def _plain_scalar(text: str) -> Any:
    """What ``_yaml.parse_scalar(text)`` returns, for the common environment values whose YAML
    reading is certain without PyYAML (~20 ms to import), else ``_UNDECIDED``: a decimal
    integer without leading zero ("5" -> 5; "010" is octal to YAML: undecided), a number
    followed by units ("30s", "1h30m", "500MB": no YAML int, float or timestamp ends in a
    letter), and a word starting with a letter or "/" made of letters, digits and ``_./@-``
    that is not a YAML boolean or null ("Europe/Berlin", "/var/lib/x": a string). Everything
    else (signs, dots, colons, spaces, quotes, "yes", "0x1F", "1_000") goes to PyYAML.
    Pinned against PyYAML in tests/test_config_cache.py."""
    if not text or not text.isascii():
        return _UNDECIDED
    first = text[0]
    if text.isdigit():
        return int(text) if first != "0" or text == "0" else _UNDECIDED
    if text.isalnum() and first in "123456789" and text[-1].isalpha():
        return text
    if (first.isalpha() or first == "/") and _WORD_CHARS.issuperset(text):
        return _UNDECIDED if text in _YAML_WORDS else text
    return _UNDECIDED
