"""Peak RSS of `reliactl http GET` fetching a large answer to /dev/null, and its wall time,
next to `curl -o /dev/null` (the peer) on the same answers.

The server (tests/httpserver.py's ``FlakyServer`` answering ``Reply(size=N)``) runs in its own
process (benchmarks/_httpproc.py), one per answer size; each client runs as its own child and
its peak RSS is read from ``os.wait4``. reliactl and curl alternate round by round (the order
rotating); printed after the machine's load: per size and client, peak RSS and wall time as
median (min..max) over the rounds, and reliactl's ratio to curl. A client that buffers the
answer needs at least its size (httpx held it twice over: 431-635 MB for 200 MB before
issue 13); a streaming one stays near its idle size.

    python benchmarks/http_memory.py [--runs N] [MB ...]        # default: 0 50 200

To measure another copy of reliactl (an older commit), put it first on PYTHONPATH and run
from outside the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import (
    GNU_TIME,
    ServerProcess,
    missing_peer,
    print_header,
    read_peak_rss,
    reliactl_cmd,
    sized,
    with_peak_rss,
)


def fetch(argv: list[str]) -> tuple[int, float, float]:
    """(exit status, peak RSS in MB, seconds) of one child writing its answer to /dev/null.

    The peak is the child's own, through GNU time (``_common.with_peak_rss``); without it,
    ``wait4``'s figure, floored at this process's RSS (the header says so)."""
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.NamedTemporaryFile("r") as out, open(os.devnull, "wb") as sink:
        spawn = with_peak_rss(argv, out.name)
        started = time.perf_counter()
        pid = os.posix_spawn(
            spawn[0], spawn, env, file_actions=[(os.POSIX_SPAWN_DUP2, sink.fileno(), 1)]
        )
        _, status, usage = os.wait4(pid, 0)
        took = time.perf_counter() - started
        peak = read_peak_rss(out.name)
    return os.waitstatus_to_exitcode(status), peak or usage.ru_maxrss / 1024, took


def spread(values: list[float], fmt: str) -> str:
    low_high = f"{fmt.format(min(values))}..{fmt.format(max(values))}"
    return f"{fmt.format(statistics.median(values))} ({low_high})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=sized(3), help="interleaved rounds")
    parser.add_argument("sizes", nargs="*", type=int, help="answer sizes in MB")
    args = parser.parse_args()
    sizes = args.sizes or ([0, 1] if sized(0) else [0, 50, 200])
    print_header(f"http GET to /dev/null, peak RSS and time, {args.runs} interleaved rounds")
    if GNU_TIME is None:
        print("(GNU time missing, apt-get install time: peak RSS floored at this process's)")
    curl = shutil.which("curl")
    if curl is None:
        missing_peer("curl", "apt-get install curl")
    print(f"{'answer':>7}  {'client':<8}  {'peak RSS MB':>18}  {'time s':>20}  {'x curl':>7}  exit")
    for mb in sizes:
        with ServerProcess(size=mb * 1024 * 1024 or 2) as server:
            url = server.url + f"/size{mb}"
            clients = {"reliactl": reliactl_cmd("http", "GET", url, "--timeout", "5m")}
            if curl is not None:
                clients["curl"] = [curl, "-sS", "--max-time", "300", "-o", "/dev/null", url]
            rss: dict[str, list[float]] = {name: [] for name in clients}
            took: dict[str, list[float]] = {name: [] for name in clients}
            codes: dict[str, set[int]] = {name: set() for name in clients}
            names = list(clients)
            for index in range(args.runs):
                for name in names[index % len(names) :] + names[: index % len(names)]:
                    code, peak, seconds = fetch(clients[name])
                    codes[name].add(code)
                    rss[name].append(peak)
                    took[name].append(seconds)
            for name in clients:
                ratio = "-"
                if "curl" in rss and name != "curl":
                    ratio = f"{statistics.median(rss[name]) / statistics.median(rss['curl']):.1f}x"
                print(
                    f"{mb:>5}MB  {name:<8}  {spread(rss[name], '{:.0f}'):>18}"
                    f"  {spread(took[name], '{:.2f}'):>20}  {ratio:>7}"
                    f"  {','.join(map(str, sorted(codes[name])))}"
                )
    print("(x curl: reliactl's median peak RSS over curl's)")


if __name__ == "__main__":
    main()
