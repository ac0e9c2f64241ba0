"""Benchmark `reliactl cleanup` against `find -delete` on the same kind of tree.

For each run, two fresh trees of N files (half of them aged 2 days) are built; one is cleaned
by ``find TREE -type f -mtime +1 -delete`` and the other by
``reliactl cleanup TREE --older-than 1d --age-by mtime``; the wall time of each and the peak
RSS of the reliactl process are printed. The order alternates between runs.

``--age-by mtime`` makes reliactl judge age as ``find -mtime`` does: a benchmark cannot make
an old ctime (utime sets ctime to now), so by the default rule (the newest of mtime, ctime and
atime, as systemd-tmpfiles) every file here would be young and nothing would be removed.

reliactl does more per removed file than find: an flock probe (O_PATH open, fstat, re-open,
flock, close) so that a file locked by a running job is never removed.

    python benchmarks/cleanup.py                    # 100,000 files, 3 runs, under $TMPDIR
    python benchmarks/cleanup.py --files 10000 --dir /dev/shm --runs 5
    python benchmarks/cleanup.py --memory           # peak RSS at 10k, 100k and 300k files
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = 86400


def build(root: Path, files: int, per_dir: int = 1000) -> None:
    """``files`` empty-ish files in directories of ``per_dir``; every other one aged 2 days."""
    old = time.time() - 2 * DAY
    root.mkdir(parents=True)
    for index in range(files):
        if index % per_dir == 0:
            directory = root / f"d{index // per_dir:04}"
            directory.mkdir()
        path = directory / f"f{index:06}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"0123456789")
        os.close(fd)
        if index % 2 == 0:
            os.utime(path, (old, old))
    os.sync()


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def timed(argv: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one child process.

    The peak RSS comes from GNU time when it is there: the rusage of a child forked from
    this (big) Python process counts the parent's pages it had before exec.
    """
    gnu_time = shutil.which("time") or (
        "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    )
    with tempfile.NamedTemporaryFile("r", suffix=".time") as out:
        wrapped = [gnu_time, "-f", "%M", "-o", out.name, *argv] if gnu_time else argv
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss = int(usage.ru_maxrss)
        if gnu_time:
            text = out.read().strip().splitlines()
            rss = int(text[-1]) if text and text[-1].isdigit() else -1
    return elapsed, rss, proc.returncode


def reliactl_argv(tree: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reliactl",
        "cleanup",
        str(tree),
        "--older-than",
        "1d",
        "--age-by",
        "mtime",
    ]


def one_run(base: Path, files: int, reliactl_first: bool) -> dict[str, float]:
    results: dict[str, float] = {}
    order = ["reliactl", "find"] if reliactl_first else ["find", "reliactl"]
    for tool in order:
        tree = base / f"tree-{tool}"
        shutil.rmtree(tree, ignore_errors=True)
        build(tree, files)
        if tool == "find":
            argv = ["find", str(tree), "-type", "f", "-mtime", "+1", "-delete"]
        else:
            argv = reliactl_argv(tree)
        elapsed, rss, status = timed(argv)
        left = count_files(tree)
        if status not in (0,) or left != files - files // 2 - files % 2:
            print(f"  {tool}: exit {status}, {left} files left (expected {files // 2})")
        results[tool] = elapsed
        results[f"{tool}_rss"] = rss
        shutil.rmtree(tree, ignore_errors=True)
    return results


def startup_cost() -> float:
    best = float("inf")
    for _ in range(5):
        elapsed, _, _ = timed([sys.executable, "-m", "reliactl", "cleanup", "--help"])
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the trees (default: $TMPDIR)")
    parser.add_argument(
        "--memory", action="store_true", help="only compare peak RSS at 10k, 100k, 300k files"
    )
    args = parser.parse_args()
    # PYTHONDONTWRITEBYTECODE may be set here: compile once, so no run pays for compiling.
    import reliactl

    compileall.compile_dir(str(Path(reliactl.__file__).parent), quiet=1)
    base = Path(tempfile.mkdtemp(prefix="reliactl-bench-", dir=args.dir))
    try:
        fs = subprocess.run(
            ["stat", "-f", "-c", "%T", str(base)], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"trees under {base} ({fs}); python {sys.version.split()[0]}; {os.cpu_count()} cpus")
        if args.memory:
            for files in (10_000, 100_000, 300_000):
                tree = base / "tree"
                build(tree, files)
                elapsed, rss, status = timed(reliactl_argv(tree))
                print(
                    f"{files:>7} files: reliactl {elapsed:.2f}s, peak RSS {rss / 1024:.1f} MiB"
                    f" (exit {status})"
                )
                shutil.rmtree(tree)
            return
        print(f"{args.files} files per tree, half aged 2 days; {args.runs} runs")
        print(f"reliactl start-up (cleanup --help, best of 5): {startup_cost():.3f}s")
        ratios = []
        for run in range(args.runs):
            r = one_run(base, args.files, reliactl_first=run % 2 == 0)
            ratio = r["reliactl"] / r["find"]
            ratios.append(ratio)
            print(
                f"run {run + 1}: find {r['find']:.2f}s, reliactl {r['reliactl']:.2f}s"
                f" ({ratio:.2f}x), reliactl peak RSS {r['reliactl_rss'] / 1024:.1f} MiB,"
                f" find {r['find_rss'] / 1024:.1f} MiB"
            )
        ratios.sort()
        print(f"median ratio reliactl/find: {ratios[len(ratios) // 2]:.2f}x (goal < 1.3x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
