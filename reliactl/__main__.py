"""``python -m reliactl`` and the ``reliactl`` console script.

``reliactl --version`` answers before typer is imported: monitoring calls it often.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from reliactl._version import __version__

        print(f"reliactl {__version__}")
        return
    from reliactl.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
