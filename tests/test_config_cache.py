"""The parse of a configuration file kept between starts (reliactl/config/_cache.py, issue 21
item 4): a second start with the same text imports no yaml and loads exactly the same
configuration, lines included; anything else (other text, a problem, an entry this user does
not solely own, another reliactl) is parsed by the YAML reader as before."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
from importtime import start_reliactl

from reliactl.config import _cache
from reliactl.config._loading import load
from reliactl.errors import ConfigError

CONFIG = """\
circuit_breaker:
  failure_threshold: 5
  breakers:
    db: {failure_threshold: 2, slow_call_threshold: 20s}
retry:
  max_retries: 3
  max_delay: 1.5
jobs:
  backup: {schedule: 30 2 * * *, grace: 1h}
"""


def _env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "XDG_STATE_HOME": str(home / "state")}


def _entries(home: Path) -> list[Path]:
    directory = home / ".cache" / "reliactl"
    return sorted(directory.glob("config-*.json")) if directory.is_dir() else []


def _tamper(entry: Path, **changes: object) -> None:
    data = json.loads(entry.read_text())
    data["data"]["retry"].update(changes)
    entry.write_text(json.dumps(data))


def test_a_second_load_of_the_same_text_is_the_same_configuration(tmp_path: Path) -> None:
    """The first load parses and keeps the document (one private entry); the second reads it
    and gives an equal configuration with the same origin (file and line) for every key."""
    file = tmp_path / "reliactl.yaml"
    file.write_text(CONFIG)
    first = load(file, environ=_env(tmp_path), use_env=False)
    (entry,) = _entries(tmp_path)
    assert entry.stat().st_mode & 0o777 == 0o600
    assert (entry.parent.stat().st_mode & 0o777) == 0o700
    second = load(file, environ=_env(tmp_path), use_env=False)
    assert second.config == first.config
    assert second.sources == first.sources
    assert second.sources["retry.max_delay"].endswith("reliactl.yaml:7")


def test_the_kept_entry_is_what_the_second_load_uses_and_other_text_is_parsed(
    tmp_path: Path,
) -> None:
    """An entry is used only for the exact text it was made from: the kept data is read (a
    changed value in this user's own 0600 entry shows through, proving the parse was skipped),
    and once the file's text changes, the file's own values are used again."""
    file = tmp_path / "reliactl.yaml"
    file.write_text(CONFIG)
    load(file, environ=_env(tmp_path), use_env=False)
    (entry,) = _entries(tmp_path)
    _tamper(entry, max_retries=7)
    os.chmod(entry, 0o600)
    assert load(file, environ=_env(tmp_path), use_env=False).config.retry.max_retries == 7
    file.write_text(CONFIG.replace("max_retries: 3", "max_retries: 4"))
    assert load(file, environ=_env(tmp_path), use_env=False).config.retry.max_retries == 4


@pytest.mark.parametrize("how", ["group-writable", "other user", "symlink", "stamp", "garbage"])
def test_an_entry_that_cannot_be_trusted_or_is_stale_is_ignored(how: str, tmp_path: Path) -> None:
    """An entry writable by others, owned by another user, reached through a symbolic link,
    written by another reliactl/PyYAML (its stamp differs) or unreadable as JSON is ignored:
    the file is parsed and its own values are used."""
    file = tmp_path / "reliactl.yaml"
    file.write_text(CONFIG)
    load(file, environ=_env(tmp_path), use_env=False)
    (entry,) = _entries(tmp_path)
    _tamper(entry, max_retries=7)
    if how == "group-writable":
        os.chmod(entry, 0o620)
    elif how == "other user":
        os.chmod(entry, 0o600)
        os.chown(entry, 65534, 65534)
    elif how == "symlink":
        real = entry.with_name("elsewhere.json")
        entry.rename(real)
        os.chmod(real, 0o600)
        entry.symlink_to(real)
    elif how == "stamp":
        data = json.loads(entry.read_text())
        data["stamp"][1] = "0.0.0-other"
        entry.write_text(json.dumps(data))
        os.chmod(entry, 0o600)
    else:
        entry.write_text('{"stamp": [')
    assert load(file, environ=_env(tmp_path), use_env=False).config.retry.max_retries == 3


def test_documents_with_problems_or_values_json_cannot_carry_are_never_kept(
    tmp_path: Path,
) -> None:
    """A YAML problem (a duplicate key) is reported by the parser at every load and nothing is
    kept; a document holding a timestamp (not plain JSON) is not kept either; a validation
    problem of a clean document is reported with the same line from the kept entry."""
    file = tmp_path / "reliactl.yaml"
    file.write_text("retry:\n  max_retries: 2\n  max_retries: 3\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"reliactl.yaml:3: retry.max_retries: duplicate"):
            load(file, environ=_env(tmp_path), use_env=False)
    assert _entries(tmp_path) == []
    assert (
        _cache.prepare(_env(tmp_path), str(file), "x", {"at": datetime.date(2020, 1, 1)}, {})
        is None
    )
    file.write_text("retry:\n  max_retries: 2\n  max_delay: lots\n")
    messages = []
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            load(file, environ=_env(tmp_path), use_env=False)
        messages.append(str(caught.value))
    assert len(_entries(tmp_path)) == 1
    assert messages[0] == messages[1] and "reliactl.yaml:3: retry.max_delay" in messages[0]


def test_without_a_usable_cache_directory_the_file_is_parsed_as_before(tmp_path: Path) -> None:
    """No absolute HOME or XDG_CACHE_HOME: nothing is kept or read. A cache directory that
    cannot be made (a file in its place, or under /proc): the load works, nothing is kept and
    no temporary file is left behind."""
    file = tmp_path / "reliactl.yaml"
    file.write_text(CONFIG)
    assert load(file, environ={"HOME": "relative"}, use_env=False).config.retry.max_retries == 3
    (tmp_path / "blocked").write_text("")
    env = {"XDG_CACHE_HOME": str(tmp_path / "blocked"), "HOME": str(tmp_path)}
    assert load(file, environ=env, use_env=False).config.retry.max_retries == 3
    assert _entries(tmp_path) == []
    pending = _cache.prepare(env, str(file), CONFIG, {}, {})
    assert pending is not None and not pending.write([])
    proc = {"XDG_CACHE_HOME": "/proc/self", "HOME": str(tmp_path)}
    assert load(file, environ=proc, use_env=False).config.retry.max_retries == 3
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name == ".cache"]


def test_a_cli_start_with_a_kept_entry_imports_no_yaml(tmp_path: Path) -> None:
    """A real `reliactl config show` (as cron starts reliactl, no RELIACTL_* variable) twice
    with the same file: the second start imports no yaml and prints the same configuration
    with the same file:line origins."""
    (tmp_path / "reliactl.yaml").write_text(CONFIG)
    env = {
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NO_COLOR": "1",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    runs = []
    for _ in range(2):
        out, modules = start_reliactl(["config", "show"], env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append((out.stdout, set(modules)))
    assert "yaml" in runs[0][1]
    assert not {"yaml", "reliactl._yaml", "zlib"} & runs[1][1]
    assert runs[0][0] == runs[1][0] and "reliactl.yaml:6" in runs[1][0]


def test_the_entry_name_is_the_paths_zlib_crc32_without_importing_zlib() -> None:
    """The kept entry's name is ``config-<zlib.crc32 of the absolute path>.json`` as before
    (entries written by the previous release are found), computed without importing zlib
    (~0.3 ms of every start with a file): equal to zlib.crc32 on any bytes."""
    import random
    import zlib

    rng = random.Random(21)
    samples = [b"", b"a", "/t/\udcff/é".encode("utf-8", "surrogateescape"), bytes(range(256))]
    samples += [rng.randbytes(rng.randrange(1, 300)) for _ in range(200)]
    for data in samples:
        assert _cache._crc32(data) == zlib.crc32(data), data
    path = "/etc/reliactl/config.yaml"
    assert _cache._entry_path("/d", path) == f"/d/config-{zlib.crc32(path.encode()):08x}.json"


def test_environment_values_read_without_pyyaml_read_as_pyyaml_reads_them() -> None:
    """`_plain_scalar` decides the common environment values (5, 30s, 1h30m, Europe/Berlin,
    /var/lib/x) without importing PyYAML: every value it decides, among tricky ones (YAML 1.1
    booleans and nulls, octal, hex, sexagesimal, timestamps, .inf) and 20,000 random strings,
    is exactly (value and type) what PyYAML's reading gives; the rest are left to PyYAML."""
    import random

    from reliactl._yaml import parse_scalar
    from reliactl.config._loading import _UNDECIDED, _plain_scalar

    tricky = (
        "5 0 010 00 1_000 0x1F 0b101 0o7 1:30 190:20:30 2001-12-14 .inf -.inf .nan ~ null Null"
        " NULL nULL yes Yes YES yEs y Y n N on On ON off true True false FALSE no NO 30s 5m"
        " 1h30m 500MB 2GiB 1e5 1E5 1.5 1.5h 1e5s +5 -5 1s2 0s /var/lib/x Europe/Berlin abc-def"
        " a.b a@b a:b #x &a *a !x 'q' \"q\" [x] {x} | > %x @x `x - -- --- ... = << _x x_ A z9"
        " 9z 1x2y 12ab34 x:y \u00e9 \u0665 \u00e95"
    )
    corpus = [*tricky.split(" "), "a b", "5 ", " 5", "", "  "]
    rng = random.Random(21)
    alphabet = "019aZyYnNoOtTfF_.:/@-+e"
    for length in range(1, 6):
        corpus += ["".join(rng.choices(alphabet, k=length)) for _ in range(4000)]
    decided = 0
    for text in corpus:
        got = _plain_scalar(text)
        if got is _UNDECIDED:
            continue
        decided += 1
        want = parse_scalar(text)
        assert type(got) is type(want) and got == want, (text, got, want)
    assert decided > 5000
    for text in ("5", "30s", "1h30m", "Europe/Berlin", "/var/lib/x"):
        assert _plain_scalar(text) is not _UNDECIDED
    for text in ("yes", "010", "0x1F", "1:30", "1_000", "1.5", "~", "2001-12-14"):
        assert _plain_scalar(text) is _UNDECIDED


def test_cron_verdicts_are_kept_only_for_expressions_cronsim_accepted(tmp_path: Path) -> None:
    """The entry keeps the cron expressions cronsim accepted while the file was validated
    (a later start trusts those and skips cronsim), never a rejected one: a bad expression
    is reported by cronsim at every load, with its line."""
    file = tmp_path / "reliactl.yaml"
    file.write_text("jobs:\n  good: {schedule: 30 2 * * *}\n  bad: {schedule: 61 * * * *}\n")
    messages = []
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            load(file, environ=_env(tmp_path), use_env=False)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "reliactl.yaml:3: jobs.bad.schedule: not a valid cron expression" in messages[0]
    (entry,) = _entries(tmp_path)
    assert json.loads(entry.read_text())["crons"] == ["30 2 * * *"]


@pytest.mark.parametrize("value", ["0", "off", " False ", "NO"])
def test_the_off_switch_keeps_no_copy_and_reads_none(value: str, tmp_path: Path) -> None:
    """RELIACTL_CONFIG_CACHE=0 (or false/no/off, any case): no entry is written, and an entry
    kept before is not read (a changed value in it does not show through); other values
    leave the cache on."""
    file = tmp_path / "reliactl.yaml"
    file.write_text(CONFIG)
    off = {**_env(tmp_path), "RELIACTL_CONFIG_CACHE": value}
    assert load(file, environ=off, use_env=False).config.retry.max_retries == 3
    assert _entries(tmp_path) == []
    load(file, environ={**_env(tmp_path), "RELIACTL_CONFIG_CACHE": "1"}, use_env=False)
    (entry,) = _entries(tmp_path)
    _tamper(entry, max_retries=7)
    os.chmod(entry, 0o600)
    assert load(file, environ=_env(tmp_path), use_env=False).config.retry.max_retries == 7
    assert load(file, environ=off, use_env=False).config.retry.max_retries == 3
