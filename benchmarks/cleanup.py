"""Benchmark `reliactl cleanup` against `find -delete` and `systemd-tmpfiles --clean`.

Every round builds a fresh tree of N files (every other one aged 2 days) for each candidate,
in an order that rotates from round to round (interleaved), and times the candidate cleaning
it (warm cache: the tree was just written). Printed per shape: the median with min..max of
each candidate's wall and CPU (user + system) time, their ratios to find and to
systemd-tmpfiles, the peak RSS of reliactl, and the machine's load average. Shapes:

- ``flat``: directories of 1,000 files;
- ``deep``: a tree of fan-out 10, four levels deep, 10 files in each leaf directory;
- ``onedir``: every file in one directory;
- ``dirs`` (only when asked for, not in ``all``): the deep tree's layout with 2 files a leaf,
  so ``--files 20000`` gives its 11,111 directories with one file removed from each leaf:
  the cost of a directory, with few files to blur it.

The candidates:

- ``find TREE -type f -mtime +1 -delete``;
- ``systemd-tmpfiles --clean CONF`` with ``d TREE - - - am:1d`` (age by atime and mtime for
  files; install it with ``apt-get install -y systemd``);
- ``reliactl cleanup TREE --older-than 1d --age-by mtime``;
- ``reliactl-py``: the same command with its C walk turned off (``RELIACTL_CLEANUP_C=0``: the
  pure-Python walk, the fallback where the extension was not built); only where it was built;
- ``reliactl-base``: the same command run from another copy of the package (``--baseline
  DIR``, e.g. ``git archive main reliactl | tar -x -C DIR``), for before/after figures taken
  in the same interleaved run.

``--age-by mtime`` makes reliactl judge age as ``find -mtime`` does: a benchmark cannot make
an old ctime (utime sets ctime to now), so by the default rule (the newest of mtime, ctime and
atime, as systemd-tmpfiles) every file here would be young and nothing would be removed.

reliactl does more per removed file than find or tmpfiles: it keeps a file another process
holds locked (flock or POSIX lock), which it learns from ``/proc/locks`` (see DESIGN.md).

    python benchmarks/cleanup.py                        # every shape, 100,000 files, 3 rounds
    python benchmarks/cleanup.py --shape flat --files 10000 --runs 5
    python benchmarks/cleanup.py --baseline /tmp/base   # also the old code, interleaved
    python benchmarks/cleanup.py --syscalls             # strace -c counts, 10,000 files
    python benchmarks/cleanup.py --memory               # peak RSS at 10k, 100k and 300k files
    python benchmarks/cleanup.py --floor                # the walk alone vs Python's floor
    python benchmarks/cleanup.py --floor --baseline /tmp/base  # ... and the old walk
    python benchmarks/cleanup.py --floor --shape dirs --files 20000 --runs 7  # per directory
    python benchmarks/cleanup.py --lock-table           # the cost of reading /proc/locks
    python benchmarks/cleanup.py --floor --hold-locks 30  # ... with a lock table to look up

``--floor`` takes start-up out: a child process times only ``clean_root`` (CPU-s, by
``getrusage``, and its user part a file; ``walk`` with the C walk, ``walk-py`` without it),
another only the
barest Python loop that could do the job (``scandir``,
``DirEntry.stat``, ``unlink`` by dir fd: no rule at all), against systemd-tmpfiles' whole
process. The gap between the bare loop and tmpfiles is what Python costs per file; the gap
between reliactl's walk and the bare loop is what its rules cost. ``--hold-locks N`` has
another process hold N flocks throughout, as on a server (each old file is then looked up in
a non-empty lock table).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import reliactl_cmd

DAY = 86400
SHAPES = ("flat", "deep", "onedir")


def _file(path: Path, old: float, aged: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"0123456789")
    os.close(fd)
    if aged:
        os.utime(path, (old, old))


def build(root: Path, files: int, shape: str = "flat") -> None:
    """``files`` small files laid out by ``shape``; every other one aged 2 days."""
    old = time.time() - 2 * DAY
    root.mkdir(parents=True)
    if shape == "onedir":
        for index in range(files):
            _file(root / f"f{index:07}", old, index % 2 == 0)
    elif shape == "flat":
        for index in range(files):
            if index % 1000 == 0:
                directory = root / f"d{index // 1000:04}"
                directory.mkdir()
            _file(directory / f"f{index:07}", old, index % 2 == 0)
    else:  # deep (dirs): leaves of 10 (2) files at depth 4 (fan-out 10)
        per_leaf = 10 if shape == "deep" else 2
        for index in range(files):
            if index % per_leaf == 0:
                leaf = index // per_leaf
                directory = root.joinpath(*(f"d{(leaf // 10**k) % 10}" for k in range(3, -1, -1)))
                directory.mkdir(parents=True, exist_ok=True)
            _file(directory / f"f{index:07}", old, index % 2 == 0)
    os.sync()


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def timed(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, int, int, float]:
    """(wall seconds, peak RSS in KiB, exit status, CPU seconds) of one child process.

    The peak RSS comes from GNU time when it is there: the rusage of a child forked from
    this (big) Python process counts the parent's pages it had before exec.
    """
    gnu_time = shutil.which("time") or (
        "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    )
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        wrapped = [gnu_time, "-f", "%M", "-o", out.name, *argv] if gnu_time else argv
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss = int(usage.ru_maxrss)
        cpu = usage.ru_utime + usage.ru_stime  # the loaded machine blurs wall time, not this
        if gnu_time:
            text = out.read().strip().splitlines()
            rss = int(text[-1]) if text and text[-1].isdigit() else -1
    return elapsed, rss, proc.returncode, cpu


def reliactl_argv(tree: Path) -> list[str]:
    """The command as users start it: the installed console script (see _common)."""
    return reliactl_cmd("cleanup", str(tree), "--older-than", "1d", "--age-by", "mtime")


class Candidates:
    """How to run each candidate on a tree: (argv, environment)."""

    def __init__(self, base: Path, baseline: str | None) -> None:
        self.base = base
        self.baseline = baseline
        self.tmpfiles = shutil.which("systemd-tmpfiles")
        self.names = ["find", "reliactl"]
        if self.tmpfiles:
            self.names.insert(1, "tmpfiles")
        from reliactl.cleanup import c_walk

        self.has_c = c_walk() is not None
        if self.has_c:
            self.names.append("reliactl-py")
        if baseline:
            self.names.append("reliactl-base")

    def command(self, tool: str, tree: Path) -> tuple[list[str], dict[str, str] | None]:
        if tool == "find":
            return ["find", str(tree), "-type", "f", "-mtime", "+1", "-delete"], None
        if tool == "tmpfiles":
            conf = self.base / f"{tree.name}.conf"
            conf.write_text(f"d {tree} - - - am:1d\n")
            return [str(self.tmpfiles), "--clean", str(conf)], None
        env = None
        # Children run in the scratch directory (when started with `python -m`, the working
        # directory comes first on sys.path, ahead of PYTHONPATH, and would shadow --baseline).
        if tool == "reliactl-base":
            env = dict(os.environ, PYTHONPATH=str(self.baseline))
        if tool == "reliactl-py":
            env = dict(os.environ, RELIACTL_CLEANUP_C="0")
        return reliactl_argv(tree), env


def one_round(cands: Candidates, files: int, shape: str, rotate: int) -> dict[str, float]:
    results: dict[str, float] = {}
    names = cands.names[rotate % len(cands.names) :] + cands.names[: rotate % len(cands.names)]
    for tool in names:
        tree = cands.base / f"tree-{tool}"
        shutil.rmtree(tree, ignore_errors=True)
        build(tree, files, shape)
        argv, env = cands.command(tool, tree)
        elapsed, rss, status, cpu = timed(argv, env, cands.base)
        left = count_files(tree)
        if status != 0 or left != files // 2:
            print(f"  {tool}: exit {status}, {left} files left (expected {files // 2})")
        results[tool] = elapsed
        results[f"{tool}_cpu"] = cpu
        results[f"{tool}_rss"] = rss
        shutil.rmtree(tree, ignore_errors=True)
    return results


def syscalls(cands: Candidates, files: int, shape: str) -> None:
    """strace -f -c of each candidate on one tree: total calls and the busiest ones."""
    if not shutil.which("strace"):
        print("strace not found: no syscall counts")
        return
    print(f"syscalls ({files} files, {shape}, half removed; strace -f -c):")
    for tool in cands.names:
        tree = cands.base / f"tree-{tool}"
        shutil.rmtree(tree, ignore_errors=True)
        build(tree, files, shape)
        argv, env = cands.command(tool, tree)
        out = cands.base / "strace.txt"
        subprocess.run(
            ["strace", "-f", "-c", "-o", str(out), *argv],
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=cands.base,
            check=False,
        )
        rows = []
        total = "?"
        for line in out.read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] == "total":
                total = fields[3] if len(fields) >= 5 else fields[2]
            elif len(fields) >= 5 and fields[3].isdigit():
                rows.append((int(fields[3]), fields[-1]))
        top = ", ".join(f"{name} {n}" for n, name in sorted(rows, reverse=True)[:7])
        print(f"  {tool:<14} {total:>7} calls: {top}")
        shutil.rmtree(tree, ignore_errors=True)


WALK = """
import resource, sys
from reliactl.cleanup import CleanupTarget, clean_root
target = CleanupTarget(sys.argv[1], 86400.0)
start = resource.getrusage(resource.RUSAGE_SELF)
clean_root(target, age_by="mtime")
end = resource.getrusage(resource.RUSAGE_SELF)
user = end.ru_utime - start.ru_utime
print(user + end.ru_stime - start.ru_stime, user)
"""

# The barest Python that removes the same files: no symlink, filesystem, lock or race rule.
BARE = """
import os, resource, sys, time
start = resource.getrusage(resource.RUSAGE_SELF)
cutoff = time.time() - 86400
stack = [os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)]
while stack:
    fd = stack.pop()
    with os.scandir(fd) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                stack.append(os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd))
            elif st.st_mtime < cutoff:
                os.unlink(entry.name, dir_fd=fd)
    os.close(fd)
end = resource.getrusage(resource.RUSAGE_SELF)
user = end.ru_utime - start.ru_utime
print(user + end.ru_stime - start.ru_stime, user)
"""


def user_cpu(argv: list[str]) -> tuple[int, float, float]:
    """(exit status, CPU seconds, user CPU seconds) of one child process."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, usage.ru_utime


def floor(cands: Candidates, files: int, shapes: tuple[str, ...], runs: int) -> None:
    """CPU-s of reliactl's walk alone and of the bare Python loop, against tmpfiles, and the
    user-space part of it a file (the kernel's part, the same syscalls in each, swings with
    the machine; user time is what each program's own code costs)."""
    names = ["walk", "bare"] + (["tmpfiles"] if cands.tmpfiles else [])
    if cands.has_c:
        names.append("walk-py")
    if cands.baseline:
        names.append("walk-base")
    for shape in shapes:
        cpu: dict[str, list[float]] = {name: [] for name in names}
        user: dict[str, list[float]] = {name: [] for name in names}
        for run in range(runs):
            for tool in names[run % len(names) :] + names[: run % len(names)]:
                tree = cands.base / f"tree-{tool}"
                shutil.rmtree(tree, ignore_errors=True)
                build(tree, files, shape)
                if tool == "tmpfiles":
                    argv, _ = cands.command(tool, tree)
                    status, seconds, user_s = user_cpu(argv)
                else:
                    code = BARE if tool == "bare" else WALK
                    env = None
                    if tool == "walk-base":
                        env = dict(os.environ, PYTHONPATH=str(cands.baseline))
                    if tool == "walk-py":
                        env = dict(os.environ, RELIACTL_CLEANUP_C="0")
                    out = subprocess.run(
                        [sys.executable, "-c", code, str(tree)],
                        capture_output=True,
                        text=True,
                        cwd=cands.base,
                        env=env,
                        check=False,
                    )
                    status = out.returncode
                    fields = out.stdout.split() if status == 0 else ["nan", "nan"]
                    seconds, user_s = float(fields[0]), float(fields[1])
                left = count_files(tree)
                if status != 0 or left != files // 2:
                    print(f"  {tool}: exit {status}, {left} files left (expected {files // 2})")
                cpu[tool].append(seconds)
                user[tool].append(user_s)
                shutil.rmtree(tree, ignore_errors=True)
        print(f"{shape}: {files} files, half removed; {runs} rounds; CPU-s")
        ref = statistics.median(cpu["tmpfiles"]) if cands.tmpfiles else None
        for tool in names:
            med = statistics.median(cpu[tool])
            ratio = f"  {med / ref:.2f}x tmpfiles" if ref else ""
            per_file = statistics.median(user[tool]) / files * 1e6
            print(f"  {tool:<9} {spread(cpu[tool])}{ratio}; user {per_file:.2f} us a file")
        print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


LOCKER = """
import fcntl, os, sys
d = sys.argv[1]
fds = []
for i in range(int(sys.argv[2])):
    fd = os.open(os.path.join(d, str(i)), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    fds.append(fd)
print("locked", flush=True)
sys.stdin.read()
"""

# Another process taking and dropping an flock in a loop: how long each lock call waits.
PROBE = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
end = time.monotonic() + float(sys.argv[2])
worst = []
while time.monotonic() < end:
    t = time.perf_counter()
    fcntl.flock(fd, fcntl.LOCK_EX)
    fcntl.flock(fd, fcntl.LOCK_UN)
    worst.append(time.perf_counter() - t)
worst.sort()
n = len(worst)
print(n, worst[n // 2] * 1e6, worst[int(n * 0.999)] * 1e6, worst[-1] * 1e6)
"""


def lock_table(base: Path, files: int) -> None:
    """What one read of /proc/locks costs (wall, CPU, read() calls) with 0, 100 and 3,000
    more locks held, what it costs another process's flock calls at 100 reads a second (the
    walk's most), and how many reads a cleanup of ``files`` files makes (C and Python walk)."""
    import threading

    from reliactl import cleanup

    def one_read() -> int:
        fd = os.open(cleanup.LOCK_TABLE, os.O_RDONLY | os.O_CLOEXEC)
        calls = 0
        try:
            while True:
                calls += 1
                if not os.read(fd, 1 << 16):
                    return calls
        finally:
            os.close(fd)

    for extra in (0, 100, 3000):
        d = base / f"locks-{extra}"
        d.mkdir()
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(d), str(extra)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        try:
            walls, cpus = [], []
            calls = 0
            for _ in range(200):
                w, c = time.perf_counter(), time.process_time()
                calls = one_read()
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
            walls.sort()
            size = len(Path(cleanup.LOCK_TABLE).read_bytes())
            print(
                f"table +{extra} locks ({size} bytes, {calls} read() calls a read): wall median"
                f" {statistics.median(walls) * 1e6:.0f} us, p99 {walls[197] * 1e6:.0f} us;"
                f" CPU {statistics.mean(cpus) * 1e6:.0f} us"
            )
            for rate in (0, 100):
                stop = threading.Event()

                def reader(rate: int = rate, stop: threading.Event = stop) -> None:
                    while rate and not stop.is_set():
                        one_read()
                        time.sleep(1 / rate)

                thread = threading.Thread(target=reader)
                thread.start()
                probe = subprocess.run(
                    [sys.executable, "-c", PROBE, str(base / "probe"), "2"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                stop.set()
                thread.join()
                n, med, p999, worst = probe.stdout.split()
                print(
                    f"  another process's flock+unlock with {rate} reads/s: {n} calls, median"
                    f" {float(med):.1f} us, p99.9 {float(p999):.0f} us, max {float(worst):.0f} us"
                )
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait()
    for env in ("1", "0"):
        tree = base / "tree"
        build(tree, files)
        code = (
            "import sys, time\n"
            "import reliactl.cleanup as c\n"
            "tables = []\n"
            "real = c._LockTable.for_root\n"
            "def spy(*a):\n"
            "    t = real(*a)\n"
            "    tables.append(t)\n"
            "    return t\n"
            "c._LockTable.for_root = spy\n"
            "t0 = time.perf_counter()\n"
            "c.clean_root(c.CleanupTarget(sys.argv[1], 86400.0), age_by='mtime')\n"
            "print(tables[0].reads if tables[0] else 'no table', time.perf_counter() - t0)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tree)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, RELIACTL_CLEANUP_C=env),
            cwd=base,
        ).stdout.split()
        walk = "C" if env == "1" else "Python"
        print(f"{files} files, {walk} walk: {out[0]} reads of the table in {float(out[1]):.2f} s")
        shutil.rmtree(tree)


def startup_cost() -> float:
    best = float("inf")
    for _ in range(5):
        elapsed, _, _, _ = timed(reliactl_cmd("cleanup", "--help"))
        best = min(best, elapsed)
    return best


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}s ({min(values):.3f}..{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shape", choices=(*SHAPES, "dirs", "all"), default="all")
    parser.add_argument("--dir", default=None, help="where to build the trees (default: $TMPDIR)")
    parser.add_argument("--baseline", default=None, help="a directory holding another reliactl")
    parser.add_argument("--syscalls", action="store_true", help="only strace -c counts")
    parser.add_argument(
        "--memory", action="store_true", help="only compare peak RSS at 10k, 100k, 300k files"
    )
    parser.add_argument(
        "--floor", action="store_true", help="only the walk's CPU vs a bare Python loop's"
    )
    parser.add_argument(
        "--lock-table", action="store_true", help="only the cost of reading /proc/locks"
    )
    parser.add_argument(
        "--hold-locks",
        type=int,
        default=0,
        metavar="N",
        help="another process holds N flocks throughout (a server's lock table is not empty)",
    )
    args = parser.parse_args()
    # PYTHONDONTWRITEBYTECODE may be set here: compile once, so no run pays for compiling.
    import reliactl

    compileall.compile_dir(str(Path(reliactl.__file__).parent), quiet=1)
    if args.baseline:
        compileall.compile_dir(args.baseline, quiet=1)
    base = Path(tempfile.mkdtemp(prefix="reliactl-bench-", dir=args.dir))
    cands = Candidates(base, args.baseline)
    shapes = SHAPES if args.shape == "all" else (args.shape,)
    holder: subprocess.Popen[str] | None = None
    try:
        if args.hold_locks:
            (base / "held-locks").mkdir()
            holder = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(base / "held-locks"), str(args.hold_locks)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            print(f"another process holds {args.hold_locks} flocks throughout")
        fs = subprocess.run(
            ["stat", "-f", "-c", "%T", str(base)], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"trees under {base} ({fs}); python {sys.version.split()[0]}; {os.cpu_count()} cpus")
        print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if not cands.tmpfiles:
            print("systemd-tmpfiles not found (apt-get install -y systemd): not compared")
        if args.syscalls:
            syscalls(cands, args.files if args.files != 100_000 else 10_000, shapes[0])
            return
        if args.floor:
            floor(cands, args.files, shapes, args.runs)
            return
        if args.lock_table:
            lock_table(base, args.files)
            return
        if args.memory:
            for files in (10_000, 100_000, 300_000):
                tree = base / "tree"
                build(tree, files)
                elapsed, rss, status, _ = timed(reliactl_argv(tree))
                print(
                    f"{files:>7} files: reliactl {elapsed:.2f}s, peak RSS {rss / 1024:.1f} MiB"
                    f" (exit {status})"
                )
                shutil.rmtree(tree)
            return
        print(f"reliactl start-up (cleanup --help, best of 5): {startup_cost():.3f}s")
        for shape in shapes:
            rounds = [one_round(cands, args.files, shape, run) for run in range(args.runs)]
            print(f"{shape}: {args.files} files, half aged 2 days; {args.runs} rounds")
            find = statistics.median(r["find"] for r in rounds)
            tmpf = statistics.median(r["tmpfiles"] for r in rounds) if cands.tmpfiles else None
            find_cpu = statistics.median(r["find_cpu"] for r in rounds)
            tmpf_cpu = statistics.median(r["tmpfiles_cpu"] for r in rounds) if tmpf else None
            for tool in cands.names:
                times = [r[tool] for r in rounds]
                med = statistics.median(times)
                line = f"  {tool:<14} {spread(times)}  {med / find:.2f}x find"
                if tmpf:
                    line += f", {med / tmpf:.2f}x tmpfiles"
                cpus = [r[f"{tool}_cpu"] for r in rounds]
                cpu = statistics.median(cpus)
                line += f"; CPU {spread(cpus)} {cpu / find_cpu:.2f}x find"
                if tmpf_cpu:
                    line += f", {cpu / tmpf_cpu:.2f}x tmpfiles"
                if tool.startswith("reliactl"):
                    rss = max(r[f"{tool}_rss"] for r in rounds)
                    line += f", peak RSS {rss / 1024:.1f} MiB"
                print(line)
            print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if holder is not None:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
