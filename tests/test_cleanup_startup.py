"""`cleanup`'s fixed start-up (issue 21 item 3, sixth session `startup2`): what a plain start
imports, and the hand-written stand-ins that replaced ``json``, ``re`` and ``enum`` on it,
each compared with what it replaced."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reliactl import _procfs, ranges
from reliactl.cli.exitcodes import ExitCode, codes
from reliactl.config import _cache, _validation

# What a cron `cleanup` start must not import: json (with re) came from the output module and
# the config views, re from _procfs, durations, redact, ranges and the config's name checks,
# enum from an IntEnum of exit codes (and with re).
NOT_ON_A_CLEANUP_START = ("json", "re", "enum", "typing", "yaml")

# The typical configuration benchmarks/startup.py measures: breakers, retry, a check with a
# threshold, two jobs (one with a cron schedule).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from startup import TYPICAL_CONFIG  # noqa: E402


def _target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    (target / "young").write_text("x")
    return target


@pytest.mark.parametrize("with_config", [False, True], ids=["no-config", "typical-config"])
def test_a_cleanup_start_imports_no_json_re_or_enum(tmp_path: Path, with_config: bool) -> None:
    """``reliactl cleanup --dry-run --older-than 1d DIR`` as cron starts it imports none of
    json, re, enum (~10 ms together of a ~50 ms start), without a configuration file and
    with a typical one (its second start, from the kept parse), and still says what it did."""
    from tests.importtime import cron_env, start_reliactl

    env = cron_env(tmp_path)
    if with_config:
        (tmp_path / "reliactl").mkdir()
        (tmp_path / "reliactl" / "config.yaml").write_text(TYPICAL_CONFIG.format(home=tmp_path))
    argv = ["cleanup", "--dry-run", "--older-than", "1d", str(_target(tmp_path))]
    if with_config:  # the first start parses the file and keeps the parse
        first, _ = start_reliactl(argv, env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-2000:]
    result, modules = start_reliactl(argv, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "would remove 0 files" in result.stderr
    assert "reliactl.config" in modules and "reliactl.cleanup" in modules
    assert [name for name in NOT_ON_A_CLEANUP_START if name in modules] == []


def test_a_console_script_cleanup_start_imports_no_contextlib(tmp_path: Path) -> None:
    """Started as a console script starts it (``from reliactl.__main__ import main``, no
    runpy), a `cleanup` with a typical configuration file (its kept parse) imports neither
    contextlib (the parse cache used ``contextlib.suppress``) nor json, re or enum."""
    from tests.importtime import cron_env, imported

    env = cron_env(tmp_path)
    (tmp_path / "reliactl").mkdir()
    (tmp_path / "reliactl" / "config.yaml").write_text(TYPICAL_CONFIG.format(home=tmp_path))
    target = _target(tmp_path)
    code = (
        "import sys\n"
        "from reliactl.__main__ import main\n"
        f"sys.argv = ['reliactl', 'cleanup', '--dry-run', '--older-than', '1d', {str(target)!r}]\n"
        "sys.exit(main())\n"
    )
    argv = [sys.executable, "-X", "importtime", "-c", code]
    for _ in range(2):  # the first start parses the file and keeps the parse
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
    modules = imported(result.stderr)
    assert "reliactl.config._cache" in modules
    assert [m for m in ("contextlib", *NOT_ON_A_CLEANUP_START) if m in modules] == []


def test_cleanup_json_output_is_still_json_without_importing_json(tmp_path: Path) -> None:
    """``cleanup --json`` writes its document with json's C escaper, not the json package:
    the output parses and says the same as before."""
    from tests.importtime import cron_env, start_reliactl

    target = _target(tmp_path)
    result, modules = start_reliactl(
        ["cleanup", "--json", "--dry-run", "--older-than", "1d", str(target)],
        env=cron_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["dry_run"] is True
    assert "json" not in modules


def test_config_views_load_at_first_use() -> None:
    """``reliactl.config``'s views (``to_plain``, ``example_yaml``, ``scalar_yaml``,
    ``is_secret_key``) stay importable by name although the package no longer imports them
    at import; an unknown name is still an AttributeError."""
    code = (
        "import sys, reliactl.config as c\n"
        "assert 'reliactl.config._views' not in sys.modules\n"
        "from reliactl.config import to_plain, example_yaml, scalar_yaml, is_secret_key\n"
        "assert c.example_yaml is example_yaml and 'cleanup:' in example_yaml()\n"
        "assert to_plain.__module__ == 'reliactl.config._views'\n"
        "try:\n    c.nothing_here\nexcept AttributeError:\n    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_exit_codes_keep_their_names_and_numbers() -> None:
    """ExitCode's names and numbers are those of the IntEnum it was (aliases included), each
    a plain int that SystemExit reports as that number."""
    assert codes() == {
        "OK": 0,
        "FAILURE": 1,
        "WARNING": 1,
        "CRITICAL": 2,
        "USAGE": 2,
        "UNKNOWN": 3,
        "COULDNT_CONNECT": 7,
        "HTTP_ERROR": 22,
        "UNAVAILABLE": 69,
        "TEMPFAIL": 75,
        "CONFIG": 78,
        "LIMIT": 121,
        "HEALTH_STOPPED": 122,
        "TIMEOUT": 124,
        "INTERNAL": 125,
        "NOT_EXECUTABLE": 126,
        "NOT_FOUND": 127,
        "KILLED": 137,
        "SIGNAL_BASE": 128,
    }
    assert all(type(value) is int for value in codes().values())
    assert SystemExit(ExitCode.CONFIG).code == 78


_TRICKY = ["\\", "0", "7", "8", "4", "a", " "]


def test_unescape_mount_equals_the_pattern_it_replaced() -> None:
    """``_procfs.unescape_mount`` (no re) equals ``re.sub(r"\\\\([0-7]{3})", ...)`` on every
    string of up to five characters from backslashes, octal and other digits, letters."""
    pattern = re.compile(r"\\([0-7]{3})")
    for size in range(6):
        for chars in itertools.product(_TRICKY, repeat=size):
            text = "".join(chars)
            expected = pattern.sub(lambda m: chr(int(m.group(1), 8)), text)
            assert _procfs.unescape_mount(text) == expected, text
    assert _procfs.unescape_mount("/mnt/a\\040b\\134c") == "/mnt/a b\\c"


def test_config_name_checks_equal_their_patterns() -> None:
    """Each name rule of the config validation (job, check, Redis namespace, env variable,
    ntfy topic) answers as ``re.fullmatch`` of its pattern on every short string of awkward
    characters (non-ASCII letters and digits too) and at the length limits."""
    alphabet = ["a", "Z", "0", "_", ".", "@", "-", ":", "$", "é", "\u0665", " ", "\n"]
    for pattern in _validation._NAME_RULES:
        for size in range(4):
            for chars in itertools.product(alphabet, repeat=size):
                text = "".join(chars)
                assert _validation._fullmatch(pattern, text) == bool(re.fullmatch(pattern, text)), (
                    pattern,
                    text,
                )
        for size in (63, 64, 65, 127, 128, 129):
            for char in "a.":
                text = char * size
                assert _validation._fullmatch(pattern, text) == bool(re.fullmatch(pattern, text))


def test_range_bounds_read_numbers_as_the_pattern_did() -> None:
    """``ranges._is_number`` (no re for ASCII digits, nor for text with a letter no number
    has) equals the old ``_NUM`` pattern, other scripts' digits included."""
    old = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
    alphabet = ["1", "+", "-", ".", "e", "E", "m", "\u0665", " "]
    for size in range(5):
        for chars in itertools.product(alphabet, repeat=size):
            text = "".join(chars)
            assert ranges._is_number(text) == bool(old.fullmatch(text)), text
    assert ranges.parse_range("15m").end == 900.0
    assert ranges.parse_range("10:20").start == 10.0


@pytest.mark.parametrize("name", ["yaml", "cronsim", "json", "reliactl", "no_such_module_here"])
def test_the_parse_cache_stamp_finds_modules_as_importlib_does(name: str) -> None:
    """The parse cache's stamp finds PyYAML and cronsim without importlib.util (and its
    contextlib): the origin it records equals ``importlib.util.find_spec``'s, for a module
    not imported yet, one imported already, and one that is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    assert _cache._origin(name) == (spec.origin if spec is not None else None)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": [1, 2.5, -3e2, "x\\u00e9", true, false, null], "b": {}}',
        b'  \n{"a": 1}\r\n\t ',
        b'{"a": NaN}',
        b"[]",
        b'"text"',
        b'{"a": 1} x',
        b'{"a": 1}{"b": 2}',
        b'{"a": }',
        b"",
        b"   ",
        b'{"a": "\xff"}',
        b"nul",
    ],
)
def test_the_parse_cache_reads_entries_as_json_loads(raw: bytes) -> None:
    """The parse cache's reader (json's C scanner, no json import) returns what
    ``json.loads`` returns, and refuses (ValueError) exactly what it refuses."""
    try:
        expected = json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):
            _cache._loads(raw)
        return
    got = _cache._loads(raw)
    assert json.dumps(got) == json.dumps(expected)
