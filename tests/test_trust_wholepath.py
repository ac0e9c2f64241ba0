"""Configuration, token and Redis CA/password files are judged on their whole path
(``reliactl.trust.file_untrusted``, OpenSSH's ``safe_path`` resolved through links): every
directory from ``/`` down, inside link targets too, must be root's or this user's and not
writable by others unless sticky, and every link followed root's or this user's. Before,
only the file, its directory and a link target's directory were judged, so a world-writable
``/srv`` above a root-owned ``/srv/app`` let any user swap ``app`` for their own and have
root's cron run their configuration. Real directories under /tmp, another user via setpriv,
the real CLI for the attack."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import NOBODY

from reliactl.cli.exitcodes import ExitCode
from reliactl.trust import file_untrusted, path_open_to_everyone


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that nobody can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="reliactl-wholepath-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree(root: Path, *parts: tuple[str, int]) -> Path:
    """Directories ``root/a/b/...``, each made with its mode (chmod, so umask plays no part)."""
    path = root
    for name, mode in parts:
        path = path / name
        path.mkdir()
        path.chmod(mode)
    return path


def config(directory: Path, name: str = "config.yaml", text: str = "retry: {}\n") -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def writers_of(gid: int) -> set[str]:
    """Who but root can write through group ``gid``: listed members, primary-group users."""
    members = set(grp.getgrgid(gid).gr_mem)
    members |= {u.pw_name for u in pwd.getpwall() if u.pw_gid == gid}
    return members - {"root"}


def judged_by_nobody(path: Path) -> str:
    """What ``file_untrusted`` says of ``path`` in a process running as nobody."""
    code = (
        "import sys; from reliactl.trust import file_untrusted; print(file_untrusted(sys.argv[1]))"
    )
    result = subprocess.run(
        [*NOBODY, sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def reliactl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIACTL_")}
    return subprocess.run(
        [sys.executable, "-m", "reliactl", *args],
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_config_planted_by_renaming_a_directory_away_is_refused(shared: Path) -> None:
    """The attack: /srv 0777 (not sticky) holding root's /srv/app 0755 and its config.yaml
    0644, and root's /srv/legacy (another job's configuration, whose health check runs a
    command). As nobody: `mv /srv/app /srv/app.old && mv /srv/legacy /srv/app` (anyone may
    rename root's entries there). Root's cron `reliactl --config /srv/app/config.yaml run
    -- ...` exits 78, its error line naming /srv, without running the job, and `health`
    runs none of legacy's commands. Before, the file and its directory were root's, so it
    was trusted. nobody's own `mkdir /srv/app` with their file is refused too."""
    srv = tree(shared, ("srv", 0o777))
    app, legacy = tree(srv, ("app", 0o755)), tree(srv, ("legacy", 0o755))
    cfg = config(app)
    job_ran, evil_ran = shared / "job-ran", shared / "evil-ran"
    evil = (
        "health_monitor:\n  system_checks: []\n  checks:\n    - name: evil\n"
        f"      kind: command\n      command: [touch, '{evil_ran}']\n"
    )
    config(legacy, text=evil)
    swap = f"mv {app} {srv}/app.old && mv {legacy} {app}"
    subprocess.run([*NOBODY, "sh", "-c", swap], check=True, timeout=60)
    assert cfg.read_text() == evil and cfg.stat().st_uid == app.stat().st_uid == 0
    run = reliactl("--config", str(cfg), "run", "--", "touch", str(job_ran), cwd=shared)
    assert run.returncode == ExitCode.CONFIG == 78, run.stderr
    first = run.stderr.splitlines()[0]
    assert "Traceback" not in run.stderr and str(cfg) in first, run.stderr
    assert f"the directory {srv} on its path is writable by others (mode 0777" in first
    assert not job_ran.exists()
    health = reliactl("--config", str(cfg), "health", "--no-alerts", cwd=shared)
    assert health.returncode == 78, health.stderr
    assert f"the directory {srv} on its path is writable by others" in health.stderr
    assert not evil_ran.exists()
    plant = f"mv {app} {srv}/legacy.old && mkdir {app} && cat > {cfg}"
    subprocess.run([*NOBODY, "sh", "-c", plant], input=evil, text=True, check=True, timeout=60)
    health = reliactl("--config", str(cfg), "health", "--no-alerts", cwd=shared)
    assert health.returncode == 78 and not evil_ran.exists(), health.stderr


def test_a_directory_far_up_the_path_writable_by_others_is_refused(shared: Path) -> None:
    """Root's file in root's 0755 directories under a 0777 (not sticky) one is refused,
    naming that directory; the same tree with the sticky bit (1777, as /tmp) is trusted:
    nobody can rename root's entry in it."""
    deep = tree(shared, ("open", 0o777), ("etc", 0o755), ("reliactl", 0o755))
    cfg = config(deep)
    reason = file_untrusted(cfg)
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"the directory {shared / 'open'} on its path is writable by others")
    (shared / "open").chmod(0o1777)
    assert file_untrusted(cfg) is None
    assert judged_by_nobody(cfg) == "None"


def test_a_root_file_directly_in_a_sticky_directory_is_trusted(shared: Path) -> None:
    """A file directly in a /tmp-like 1777 directory: root's is trusted (before: refused,
    the directory being writable by others), nobody's is not."""
    sticky = tree(shared, ("tmp", 0o1777))
    mine = config(sticky, "mine.yaml")
    assert file_untrusted(mine) is None
    subprocess.run([*NOBODY, "sh", "-c", f"echo '{{}}' > {sticky}/theirs.yaml"], check=True)
    assert "owned by nobody (uid 65534)" in (file_untrusted(sticky / "theirs.yaml") or "")


def test_a_kubernetes_configmap_layout_is_trusted_and_its_links_judged(shared: Path) -> None:
    """kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..2024_01_01_xx (all
    root's, 0755 mount directory) is trusted; the same links under a 0777 parent are not."""
    for top in ("ok", "open"):
        mount = tree(shared, (top, 0o755 if top == "ok" else 0o777), ("config", 0o755))
        config(tree(mount, ("..2024_01_01_00_00_00.123", 0o755)))
        (mount / "..data").symlink_to("..2024_01_01_00_00_00.123")
        (mount / "config.yaml").symlink_to("..data/config.yaml")
    assert file_untrusted(shared / "ok" / "config" / "config.yaml") is None
    assert judged_by_nobody(shared / "ok" / "config" / "config.yaml") == "None"
    reason = file_untrusted(shared / "open" / "config" / "config.yaml") or ""
    assert f"the directory {shared / 'open'} on its path is writable by others" in reason


def test_a_link_chain_judges_the_directories_in_the_middle(shared: Path) -> None:
    """An /etc/alternatives-style chain etc/app.yaml -> alternatives/app.yaml ->
    real/app.yaml: trusted when all is root's 0755; refused, naming it, when the middle
    directory (neither the link's nor the file's) is writable by others (before: passed).
    A ".." after a link goes to the link target's parent, as the kernel resolves it."""
    etc, alternatives, real = (tree(shared, (name, 0o755)) for name in ("etc", "alt", "real"))
    config(real, "app.yaml")
    (alternatives / "app.yaml").symlink_to(real / "app.yaml")
    (etc / "app.yaml").symlink_to(alternatives / "app.yaml")
    assert file_untrusted(etc / "app.yaml") is None
    (etc / "to-real").symlink_to(real / "sub")
    (real / "sub").mkdir()
    # As the kernel: "to-real/.." is real/, not etc/ (lexical folding judged another path).
    config(real, "only.yaml")  # no etc/only.yaml: the lexical path leads nowhere
    assert file_untrusted(f"{etc}/to-real/../only.yaml") is None
    alternatives.chmod(0o777)
    reason = file_untrusted(etc / "app.yaml") or ""
    assert reason.startswith(f"the directory {alternatives} on its path is writable by others")


def test_a_link_another_user_owns_is_refused(shared: Path) -> None:
    """nobody's link in a sticky directory to root's file: nobody can point it anywhere at
    any time, so it is refused, naming the link; root's own link there is fine."""
    sticky = tree(shared, ("tmp", 0o1777))
    target = config(tree(shared, ("etc", 0o755)))
    link = sticky / "theirs.yaml"
    subprocess.run([*NOBODY, "ln", "-s", str(target), str(link)], check=True, timeout=60)
    reason = file_untrusted(link) or ""
    assert reason == (
        f"the symbolic link {link} on its path is owned by nobody (uid 65534), not by root (uid 0)"
    )
    (sticky / "mine.yaml").symlink_to(target)
    assert file_untrusted(sticky / "mine.yaml") is None


def test_group_writable_directories_are_judged_by_who_can_write_through_the_group(
    shared: Path,
) -> None:
    """The chosen group rule, as for the file itself: a directory its group can write is
    trusted only when everyone who can write through that group (its listed members and the
    users whose primary group it is) is root, the owner or the caller: root:root 0775 here,
    and a shared group nobody is in (Debian's /usr/local, root:staff 2775, when staff is
    empty). A group with another member is refused, naming the group and the member
    (tests/test_trust_groups.py has the primary-group cases)."""
    cfg = config(tree(shared, ("private", 0o775), ("app", 0o755)))
    assert file_untrusted(cfg) is None
    empty = next(g for g in grp.getgrall() if g.gr_gid != 0 and not writers_of(g.gr_gid))
    local = tree(shared, ("local", 0o755))
    os.chown(local, 0, empty.gr_gid)
    local.chmod(0o2775)
    assert file_untrusted(config(tree(local, ("etc", 0o755)))) is None
    os.chown(local, 0, 65534)  # nogroup: nobody's primary group
    reason = file_untrusted(local / "etc" / "config.yaml") or ""
    assert reason.startswith(
        f"the directory {local} on its path is writable by group {grp.getgrgid(65534).gr_name}"
        " (members: "
    ), reason
    assert "nobody" in reason and "mode 2775, owner root (uid 0))" in reason


def test_another_users_tree_inside_roots_tree(shared: Path) -> None:
    """As nobody: nobody's config in nobody's 0700 directory inside root's tree (a home) is
    trusted, and so are root's /etc-like config and the real /etc/passwd; under a 0777
    grandparent it is refused. As root: nobody's directory on the path is refused (nobody
    could swap what is inside)."""
    home = tree(shared, ("home", 0o755), ("nobody", 0o700))
    os.chown(home, 65534, 65534)
    subprocess.run(
        [*NOBODY, "sh", "-c", f"mkdir {home}/.config && echo '{{}}' > {home}/.config/c.yaml"],
        check=True,
    )
    assert judged_by_nobody(home / ".config" / "c.yaml") == "None"
    assert judged_by_nobody(config(tree(shared, ("etc", 0o755)))) == "None"
    assert judged_by_nobody(Path("/etc/passwd")) == "None" and file_untrusted("/etc/passwd") is None
    root_cfg = config(tree(home, ("rootdir", 0o755)))
    assert f"the directory {home} on its path is owned by nobody" in (
        file_untrusted(root_cfg) or ""
    )
    shutil.move(str(shared / "home"), str(tree(shared, ("open", 0o777))))
    moved = shared / "open" / "home" / "nobody" / ".config" / "c.yaml"
    assert f"the directory {shared / 'open'} on its path is writable" in judged_by_nobody(moved)


def test_a_file_swapped_while_judged_is_refused(shared: Path) -> None:
    """The caller's fstat describes another file than the path now leads to (it was
    replaced between the open and the check): refused."""
    etc = tree(shared, ("etc", 0o755))
    first, second = config(etc), config(etc, "new.yaml")
    st = os.stat(first)
    second.rename(first)
    assert "changed while it was being checked" in (file_untrusted(first, st) or "")


def test_token_ca_and_password_files_are_judged_on_their_whole_path(shared: Path) -> None:
    """`serve --token-file`, the Redis CA file and password file under a 0777 (not sticky)
    grandparent: each refused as a configuration error naming that directory (the password
    file's own looser rule, any owner, also covers the whole path now)."""
    from reliactl.cli.serve import _read_token
    from reliactl.errors import ConfigError, StateConfigError
    from reliactl.state.redis import open_redis_store
    from reliactl.state.url import parse_state_url

    open_dir = tree(shared, ("open", 0o777))
    secrets = tree(open_dir, ("secrets", 0o700))
    token = secrets / "token"
    token.write_text("t" * 40 + "\n")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match=f"the directory {open_dir} on its path is writable"):
        _read_token(str(token))
    url = parse_state_url("rediss://127.0.0.1:1/0")
    for key, value in (("password_file", token), ("tls_ca_file", token)):
        with pytest.raises(StateConfigError, match=f"state.{key} .*the directory {open_dir} "):
            open_redis_store(url, **{key: str(value)}, connect_timeout=1)  # type: ignore[arg-type]
    assert path_open_to_everyone(str(token)) is not None
    open_dir.chmod(0o1777)
    assert _read_token(str(token)) == "t" * 40
    assert path_open_to_everyone(str(token)) is None
