"""What the fast-path tests compare: a call planned by ``reliactl.cli._fast`` against the one
Typer makes for the same argv (``reliactl.cli._fastgen.typer_call``)."""

from __future__ import annotations

from typing import Any


def same_call(typer: tuple[str, Any], fast: tuple[str, Any]) -> bool:
    """Typer calls the command, and with the same function, config and arguments."""

    def canon(call: tuple[str, Any]) -> str:
        kind, (command, config, kwargs) = call
        return repr((kind, command, config, sorted(kwargs.items())))

    return typer[0] == "call" and canon(typer) == canon(fast)
