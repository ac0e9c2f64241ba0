"""`cleanup --dry-run` / `-l` print one path a line: a planted name can neither start a line
of its own (a directory named "x\\n" holding etc/passwd must not print "/etc/passwd") nor send
a terminal escape sequence. Names that need it are C-escaped (``cli.output.cescape``, as
systemd's cescape), reversibly; ``--json`` stays JSON with the real names."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from reliactl.cli.output import cescape
from tests.runhelpers import run

OLD = 1_000_000.0  # 1970: older than any --older-than

NAMES = [
    "plain.txt",
    "café ü.txt",  # printable non-ASCII stays as it is
    "back\\slash",
    "tab\there",
    "\x1b]0;owned\x07\x1b[2J",  # set the terminal title, clear the screen
    "csi\x9b31m",  # the C1 CSI some terminals obey
    "rtl\u202etxt.exe",
    os.fsdecode(b"latin1-\xe9"),  # not UTF-8
    "del\x7f",
]


def unescape(line: str) -> str:
    """The reverse of cescape: escapes to bytes, then the bytes as the file name."""
    simple = {"\\": b"\\", "a": b"\a", "b": b"\b", "t": b"\t", "n": b"\n", "v": b"\v"}
    simple.update({"f": b"\f", "r": b"\r"})
    out = bytearray()
    i = 0
    while i < len(line):
        char = line[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
        elif line[i + 1] == "x":
            out.append(int(line[i + 2 : i + 4], 16))
            i += 4
        else:
            out += simple[line[i + 1]]
            i += 2
    return os.fsdecode(bytes(out))


@pytest.mark.parametrize("name", [*NAMES, "x\n/etc/passwd", "\\n", "\\x41", "nul\x01"])
def test_cescape_is_one_printable_line_and_reversible(name: str) -> None:
    """Every name becomes one line without control characters, and reads back exactly;
    a name that needs nothing is unchanged."""
    shown = cescape(name)
    assert "\n" not in shown and "\r" not in shown
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", shown), shown
    assert unescape(shown) == name
    if name in ("plain.txt", "café ü.txt"):
        assert shown == name


def plant(root: Path) -> list[str]:
    """Old entries under ``root`` with hostile names; returns the paths cleanup removes."""
    evil = root / "x\n"
    (evil / "etc").mkdir(parents=True)
    (evil / "etc" / "passwd").write_text("not really\n")
    for name in NAMES:
        (root / name).write_text("")
    paths = [str(evil / "etc" / "passwd"), str(evil / "etc"), str(evil)]
    paths += [str(root / n) for n in NAMES]
    for path in paths:
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return paths


@pytest.mark.parametrize("flag", ["--dry-run", "-l"])
def test_listed_paths_are_escaped_one_per_line(tmp_path: Path, flag: str) -> None:
    """The reported case: no line is "/etc/passwd" (or any line not under the root), no
    escape byte reaches stdout, and each line reads back to a path that was (or would be)
    removed. The old listing printed the names raw."""
    root = tmp_path / "root"
    expected = plant(root)
    env = {**os.environ, "HOME": str(tmp_path)}
    result = run(
        "cleanup", flag, "--age-by", "mtime", "--older-than", "1d", str(root), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "/etc/passwd" not in lines
    assert all(line.startswith(str(root) + "/") for line in lines), lines
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.stdout)
    assert sorted(unescape(line) for line in lines) == sorted(expected)
    assert str(root / "x\\n/etc/passwd") in lines
    assert root.exists() and (flag == "-l") != (root / "plain.txt").exists()


def test_json_lists_the_real_names(tmp_path: Path) -> None:
    """--json is JSON: the names are the real ones (JSON-escaped by the encoder), not
    cescape'd, but for a name that is not UTF-8: that one is the array of its bytes
    (journald's JSON rule, ``os.fsencode`` of the path), never a lone ``\\udce9`` that strict
    JSON parsers reject, nor a text another name could be."""
    root = tmp_path / "root"
    expected = plant(root)
    env = {**os.environ, "HOME": str(tmp_path)}
    result = run(
        "cleanup", "-n", "--json", "--age-by", "mtime", "--older-than", "1d", str(root), env=env
    )
    assert result.returncode == 0, result.stderr
    [doc] = json.loads(result.stdout)["roots"]
    result.stdout.encode("utf-8")  # no lone surrogate anywhere
    texts = sorted(p for p in doc["removed"] if isinstance(p, str))
    assert texts == sorted(p for p in expected if "\udce9" not in p)
    [raw] = [p for p in doc["removed"] if isinstance(p, list)]
    assert bytes(raw) == os.fsencode(root / os.fsdecode(b"latin1-\xe9"))


def test_json_keeps_a_byte_name_and_its_escape_text_apart(tmp_path: Path) -> None:
    """Two files, one named with the byte 0xfe and one named with the four characters
    ``\\xfe``: `cleanup --json` lists two distinct entries, the first as the array of its
    bytes (equal to ``os.fsencode`` of its path), the second as its text. The old rule
    (an invalid string as its cescape) wrote both as the same path."""
    root = tmp_path / "root"
    root.mkdir()
    byte_name = os.path.join(os.fsencode(root), b"old-\xfe")
    text_name = os.path.join(os.fsencode(root), b"old-\\xfe")
    for name in (byte_name, text_name):
        with open(name, "wb"):
            pass
        os.utime(name, (OLD, OLD))
    result = run(
        "cleanup", "-n", "--json", "--age-by", "mtime", "--older-than", "1d", str(root),
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [doc] = json.loads(result.stdout)["roots"]
    removed = doc["removed"]
    assert len(removed) == 2
    assert [bytes(p) for p in removed if isinstance(p, list)] == [byte_name]
    assert [p for p in removed if isinstance(p, str)] == [os.fsdecode(text_name)]
