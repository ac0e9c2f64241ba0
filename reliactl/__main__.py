"""``python -m reliactl`` and the ``reliactl`` console script.

``reliactl --version`` answers before anything else is imported: monitoring calls it often.
`run`, `health` and `--help` in the forms the fast dispatcher (``reliactl.cli._fast``) fully
understands run without importing typer; everything else, and every error, goes to the Typer
app, which stays the definition of the CLI (the fast path's table is generated from it).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from reliactl._version import __version__

        try:
            print(f"reliactl {__version__}", flush=True)
        except OSError as exc:  # never a traceback: a closed pipe exits 1 quietly (as help),
            from reliactl.cli._fastrt import stdout_failed  # a full disk says so in one line

            if isinstance(exc, BrokenPipeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(1)
            stdout_failed(exc)
        return
    from reliactl.cli import _fast

    if _fast.main(sys.argv[1:]):
        return
    from reliactl.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
