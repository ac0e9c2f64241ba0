"""Shell completions: generated from the app, and really completing in bash, zsh and fish.

Each shell runs as a user's would: bash loads the script through bash-completion's loader
from the user's completions directory, zsh autoloads it as `_reliactl` from $fpath in an
interactive shell on a pseudo-terminal (a compadd wrapper records what the TAB offered), and
fish answers `complete -C`. `.ci/run` installs bash-completion, zsh and fish when missing.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
COMMAND = "rl-test-cmd"  # an executable only our PATH has


def test_committed_completions_match_the_current_app() -> None:
    """A new command or option without regenerated completions fails here."""
    result = subprocess.run(
        [sys.executable, str(COMPLETIONS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_generation_is_deterministic_and_every_choice_source_names_an_option() -> None:
    """Two generations are identical, and each CHOICES entry is a real option of the app
    (a renamed option must not silently lose its words)."""
    sys.path.insert(0, str(COMPLETIONS))
    try:
        import generate
    finally:
        sys.path.remove(str(COMPLETIONS))
    first, second = generate.collect(), generate.collect()
    for make in generate.GENERATORS.values():
        assert make(first) == make(second)
    nodes = {node.path: node for node in generate.walk(first)}
    for (path, name), source in generate.CHOICES.items():
        option = next(o for o in nodes[path].options if name in o.names)
        assert option.value == " ".join(generate._choices_from(source))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with a few files, and a bin directory holding COMMAND."""
    work = tmp_path / "cwd"
    (work / "alpine").mkdir(parents=True)
    (work / "alpha.yaml").write_text("{}\n")
    (work / "beta.txt").write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / COMMAND
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return work


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{workdir.parent / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(workdir.parent / "home"),
        "XDG_DATA_HOME": str(workdir.parent / "home" / ".local" / "share"),
        "XDG_CONFIG_HOME": str(workdir.parent / "home" / ".config"),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


# ------------------------------------------------------------------ bash


def _words_of(line: str) -> list[str]:
    """COMP_WORDS as readline splits ``line`` (an --opt=value splits around the '=')."""
    words: list[str] = []
    for word in shlex.split(line):
        if word.startswith("--") and "=" in word:
            name, _, value = word.partition("=")
            words += [name, "=", value]
        else:
            words.append(word)
    if line.endswith(" "):
        words.append("")
    return words


def complete_bash(workdir: Path, line: str) -> list[str]:
    """What bash offers for ``line`` + TAB, with the script installed where users put it."""
    user_dir = workdir.parent / "home" / ".local" / "share" / "bash-completion" / "completions"
    user_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPLETIONS / "reliactl.bash", user_dir / "reliactl")
    words = _words_of(line)
    script = "\n".join(
        [
            f"source {BASH_COMPLETION}",
            "_completion_loader reliactl 2>/dev/null || __load_completion reliactl",
            "spec=$(complete -p reliactl) || exit 3",
            "func=${spec##*-F }; func=${func%% *}",
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            "COMP_POINT=${#COMP_LINE}",
            '"$func" reliactl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env=_env(workdir),
    )
    assert out.returncode == 0, out.stderr
    return sorted(filter(None, out.stdout.splitlines()))


# ------------------------------------------------------------------ zsh


ZSHRC = r"""
fpath=({fdir} $fpath)
unsetopt autolist automenu listambiguous beep
autoload -U compinit && compinit -u -D
# Record every match a completion function adds (what the TAB would offer).
compadd() {{
    if (( ${{@[(I)-[OAD]*]}} )); then builtin compadd "$@"; return; fi
    local -a __rl_hits
    builtin compadd -O __rl_hits "$@"
    (( $#__rl_hits )) && print -rl -- $__rl_hits >> {out}
    builtin compadd "$@"
}}
PS1='{ready} '
"""
READY = "RL-READY>"


def complete_zsh(workdir: Path, line: str) -> list[str]:
    """What an interactive zsh offers for ``line`` + TAB, the script autoloaded from $fpath."""
    base = workdir.parent / f"zsh-{time.monotonic_ns()}"
    fdir = base / "functions"
    fdir.mkdir(parents=True)
    shutil.copy(COMPLETIONS / "reliactl.zsh", fdir / "_reliactl")
    out, done = base / "offered", base / "done"
    out.touch()
    (base / ".zshrc").write_text(ZSHRC.format(fdir=fdir, out=out, ready=READY))
    master, slave = os.openpty()
    proc = subprocess.Popen(
        ["zsh", "-i"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=workdir,
        env=_env(workdir, ZDOTDIR=str(base), SHELL="zsh"),
        start_new_session=True,
    )
    os.close(slave)
    seen = b""

    def drain() -> None:
        nonlocal seen
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            seen = (seen + os.read(master, 65536))[-4096:]  # zsh must never block on output

    try:
        deadline = time.monotonic() + 60
        while READY.encode() not in seen and time.monotonic() < deadline:
            drain()  # keys typed before zle is up would be read as a plain line
        # TAB, then kill the line and leave a mark: zle handles keys in order, so the mark
        # appears only after the completion has finished.
        os.write(master, (line + "\t").encode() + b"\x15" + f"print ok > {done}\n".encode())
        while not done.exists() and time.monotonic() < deadline:
            drain()
        assert done.exists(), f"zsh did not finish completing {line!r}: {seen[-500:]!r}"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    return sorted(set(filter(None, out.read_text().splitlines())))


# ------------------------------------------------------------------ fish


def complete_fish(workdir: Path, line: str) -> list[str]:
    """What fish offers for ``line`` (``complete -C``), the script sourced as installed."""
    script = f"source {COMPLETIONS / 'reliactl.fish'}; complete -C {shlex.quote(line)}"
    out = subprocess.run(
        ["fish", "--no-config", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env=_env(workdir),
    )
    assert out.returncode == 0, out.stderr
    return sorted({row.split("\t")[0] for row in out.stdout.splitlines() if row})


SHELLS = {"bash": complete_bash, "zsh": complete_zsh, "fish": complete_fish}


def _shell(name: str) -> object:
    installed = shutil.which(name) is not None
    if name == "bash":
        installed = installed and BASH_COMPLETION.exists()
    return pytest.param(
        SHELLS[name],
        id=name,
        marks=pytest.mark.skipif(
            not installed, reason=f"{name} is not installed (.ci/run installs it)"
        ),
    )


ALL_SHELLS = [_shell(name) for name in SHELLS]

# (line, what must be offered, what must not be offered)
CASES = [
    ("reliactl con", {"config"}, set()),
    ("reliactl config va", {"validate"}, set()),
    ("reliactl config validate --j", {"--json"}, set()),
    # a root -c FILE before the subcommand
    ("reliactl -c al", {"alpha.yaml"}, set()),
    ("reliactl -c alpha.yaml he", {"health"}, set()),
    ("reliactl --config alpha.yaml config va", {"validate"}, set()),
    # value-taking options are per command: these are flags here
    ("reliactl health -d --fo", {"--format"}, set()),
    ("reliactl http -f --verb", {"--verbose"}, set()),
    ("reliactl run --check rl-test-c", {COMMAND}, set()),
    # ...and these take values
    ("reliactl http GET http://x -d al", {"alpha.yaml"}, set()),
    ("reliactl health --format ", {"text", "json", "nagios", "prometheus"}, {"alpha.yaml"}),
    ("reliactl health --format na", {"nagios"}, set()),  # -f is http's --fail; health -f hidden
    ("reliactl cleanup --age-by m", {"mtime"}, set()),
    ("reliactl retry plan --jitter de", {"decorrelated"}, set()),
    ("reliactl health --textfile al", {"alpha.yaml"}, set()),
    # run: a command from PATH, then that command's files
    ("reliactl run rl-test-c", {COMMAND}, set()),
    ("reliactl run --lock --timeout 5m rl-test-c", {COMMAND}, set()),
    ("reliactl run -- rl-test-c", {COMMAND}, set()),
    ("reliactl run rl-test-cmd al", {"alpha.yaml"}, {"--lock"}),
    ("reliactl run rl-test-cmd --lo", set(), {"--lock"}),
    ("reliactl run --lo", {"--lock", "--lock-name", "--lock-wait", "--lock-on-nfs"}, set()),
    # arguments that are paths
    ("reliactl config validate al", {"alpha.yaml"}, set()),
    ("reliactl cleanup al", {"alpine", "alpha.yaml"}, set()),
]


def _matches(offered: list[str], word: str) -> bool:
    return any(o.rstrip("/") == word for o in offered)


@pytest.mark.parametrize("complete", ALL_SHELLS)
@pytest.mark.parametrize(("line", "wanted", "unwanted"), CASES, ids=[c[0] for c in CASES])
def test_shell_completes(
    complete: object, line: str, wanted: set[str], unwanted: set[str], workdir: Path
) -> None:
    """The shell offers what reliactl accepts at that point of the command line."""
    offered = complete(workdir, line)  # type: ignore[operator]
    missing = {w for w in wanted if not _matches(offered, w)}
    assert not missing, f"{line!r}: {sorted(missing)} not offered; offered {offered[:40]}"
    extra = {w for w in unwanted if _matches(offered, w)}
    assert not extra, f"{line!r}: {sorted(extra)} offered; offered {offered[:40]}"


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_keeps_path_and_the_first_tab_works(workdir: Path) -> None:
    """zsh's `path` array is PATH: the completion must not empty it (`local path` did, so
    `run COMMAND` found nothing), and the very first TAB (which autoloads the script)
    already completes."""
    assert _matches(complete_zsh(workdir, "reliactl run rl-test-c"), COMMAND)
    assert _matches(complete_zsh(workdir, "reliactl con"), "config")
