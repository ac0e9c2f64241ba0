"""Start-up of `reliactl http GET` against what a second, stdlib HTTP client would cost (issue 21
item 4; DESIGN.md section 6, "`http GET`: what is left").

    python benchmarks/http_start.py          # BENCH_RUNS=N rounds (default 20)
    HTTP_START_BASE=DIR python benchmarks/http_start.py

One GET of a local server (benchmarks/_httpproc.py, its own process) per row, wall and CPU (user
+ sys of the process, from wait4), interleaved round by round against `python -c pass`:

- `reliactl http GET URL`: the command as a user runs it (the fast path, empty HOME).
- `httpx floor`: a fresh interpreter that imports httpx the way the command does
  (`reliactl.http.import_httpx(defer_unused=True)`: no trio/anyio/httpx CLI, certifi, idna ...
  deferred) and GETs the URL with a plain `httpx.Client` whose TLS context is deferred (no CA
  load): what any httpx-based command pays before reliactl's own code runs.
- `stdlib http.client GET`: `http.client.HTTPConnection` GET, body to stdout: the floor of a
  second HTTP client built on the standard library for the CLI (not built).
- `reliactl parts + stdlib GET`: what `http GET` would cost with such a second client: the
  same interpreter imports what the command imports of reliactl (the fast CLI, `cli.http`,
  `reliactl.http`, `reliactl._strategies`), loads the configuration, then GETs with http.client.
- `curl -s URL`: the peer.

HTTP_START_BASE=DIR adds the `reliactl http GET URL` row for the reliactl package in DIR (e.g.
`git archive REF reliactl | tar -x -C DIR`), for a before/after in the same rounds.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import PY, ServerProcess, reliactl_cmd, sized
from startup import _print_wall_and_cpu, _sample_wall_and_cpu

HTTPX_FLOOR = """
import sys
from reliactl.http import deferred_tls_context, import_httpx
httpx = import_httpx(defer_unused=True)
with httpx.Client(verify=deferred_tls_context()) as client:
    sys.stdout.buffer.write(client.get(sys.argv[1]).content)
"""

STDLIB_GET = """
import http.client, sys, urllib.parse
%(prelude)surl = urllib.parse.urlsplit(sys.argv[1])
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
connection.request("GET", url.path or "/", headers={"User-Agent": "bench"})
sys.stdout.buffer.write(connection.getresponse().read())
connection.close()
"""
RELIACTL_PARTS = """
import reliactl.cli._fast, reliactl.cli.http, reliactl.http, reliactl._strategies
from reliactl.config import get_reliability_config
get_reliability_config()
"""


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", str(sized(20, 1))))
    base_dir = os.environ.get("HTTP_START_BASE", "")
    with tempfile.TemporaryDirectory() as home, ServerProcess() as server:
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        clean.pop("PYTHONPATH", None)
        homes = {"HOME": home, "XDG_STATE_HOME": home, "XDG_CONFIG_HOME": home}
        env = {**clean, **homes, "NO_COLOR": "1"}
        url = server.url + "/"
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([PY, "-c", "pass"], env),
            "reliactl http GET URL": (reliactl_cmd("http", "GET", url), env),
        }
        if base_dir:
            commands["reliactl http GET URL [base]"] = (
                reliactl_cmd("http", "GET", url),
                dict(env, PYTHONPATH=base_dir),
            )
        commands["httpx floor (import_httpx + Client.get)"] = ([PY, "-c", HTTPX_FLOOR, url], env)
        stdlib_get = STDLIB_GET % {"prelude": ""}
        commands["stdlib http.client GET"] = ([PY, "-c", stdlib_get, url], env)
        with_parts = STDLIB_GET % {"prelude": RELIACTL_PARTS}
        commands["reliactl parts + stdlib GET"] = ([PY, "-c", with_parts, url], env)
        curl = shutil.which("curl")
        if curl:
            commands["curl -s URL"] = ([curl, "-s", url], env)
        else:
            print("peer not measured: curl is not installed")
        wall, cpu = _sample_wall_and_cpu(commands, runs)
    _print_wall_and_cpu(
        f"http GET start-up, {runs} interleaved rounds"
        " (goal: within 8x python -c pass on a loaded machine)",
        wall,
        cpu,
    )


if __name__ == "__main__":
    main()
