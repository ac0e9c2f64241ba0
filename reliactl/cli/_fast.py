"""The fast dispatcher: every command (`run`, `health`, the others) and `--help` without typer.

Typer, its click and rich cost ~60 ms to import, more than three times `python -c pass`, and
cron pays that every minute. For the argv it fully understands this module parses with the
command table that ``reliactl.cli._fastgen`` generates from the Typer app
(``reliactl.cli._table``: options, kinds, defaults, help texts), and calls the SAME command
function Typer would call (``reliactl.cli.run.run``, ``reliactl.cli.health.health``) with the
same arguments. Anything else (an unknown or unsupported option, a bad or missing value, a
subcommand, shell completion, help on a terminal or at another width) returns None from
``plan()`` before anything has happened, and the caller runs the full Typer app on the same
argv, which then parses, reports and exits exactly as it always did. Tests compare both
parsers over many argvs and the help texts byte for byte.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

# A word one of these argvs must contain; a quick test before the table is read (the first
# word of each command of the table, and the help options; a test keeps it equal).
_HOT = frozenset(
    (
        *("run", "runs", "health", "config", "breaker", "retry", "cleanup", "doctor", "http"),
        *("jobs", "state", "alert", "silence", "drill", "serve", "-h", "--help"),
    )
)


def _convert(kind: str, text: str) -> Any:
    """An option's value as Typer converts it (``reliactl.cli._fastparams``); ValueError if
    Typer would refuse it (then Typer reports it)."""
    if kind in ("str", "str*"):
        return text
    from reliactl.cli._fastparams import _convert_one

    return _convert_one(int if kind == "int" else float, text)


def _program_name() -> str:
    """The program name click shows in help (its ``_detect_program_name``)."""
    main = sys.modules.get("__main__")
    path = sys.argv[0] if sys.argv else ""
    package = getattr(main, "__package__", None)
    if package in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def _help(path: str) -> str | None:
    """The cached help of ``path`` if this process would print exactly it: stdout not a
    terminal (Typer uses rich there), no COLUMNS (80 columns) and no TYPER_USE_RICH."""
    if "COLUMNS" in os.environ or "TYPER_USE_RICH" in os.environ:
        return None
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from reliactl.cli._table import HELP

    return HELP.get((_program_name(), path))


def _option(
    options: dict[str, tuple[str, str]], args: list[str], index: int, values: dict[str, Any]
) -> int | None:
    """Take the option at ``args[index]`` (and its value) into ``values``: how many words it
    took, or None if the fast path leaves it to Typer."""
    arg = args[index]
    name, eq, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
    param, kind = options.get(name, ("", ""))
    if not kind:
        return None  # unknown, a cluster (-wq), an attached value (-n5) or not ours
    if kind in ("flag", "noflag"):
        if eq:
            return None  # `--lock=x`: Typer's error
        values[param] = kind == "flag"
        return 1
    if eq:
        text, step = attached, 1
    elif index + 1 < len(args):
        text, step = args[index + 1], 2  # as click: even `-5` or `--lock` is the value
    else:
        return None  # a missing value: Typer's error
    try:
        value = _convert(kind, text)
    except ValueError:
        return None
    if kind == "str*":
        values.setdefault(param, []).append(value)
    else:
        values[param] = value
    return step


def _parse_command(spec: dict[str, Any], args: list[str]) -> tuple[dict[str, Any], bool] | None:
    """A command's options and arguments as Typer would pass them, and whether --help was
    given; None for anything the fast path leaves to Typer."""
    if not args and spec["no_args_is_help"]:
        return None  # Typer prints the help (`reliactl http`)
    options: dict[str, tuple[str, str]] = spec["options"]
    values: dict[str, Any] = {}
    words: list[str] = []  # the positional words, in order, as click collects them
    wants_help = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            if spec["group"]:
                return None
            words.extend(args[index + 1 :])
            break
        if arg in spec["help"]:
            wants_help = True
            index += 1
            continue
        if arg.startswith("-") and arg != "-":
            step = _option(options, args, index, values)
            if step is None:
                return None
            index += step
            continue
        if spec["group"]:
            return None  # a subcommand (`health history`): Typer's
        if not spec["interspersed"]:
            words.extend(args[index:])  # `run`: options stop at the command
            break
        words.append(arg)  # an argument between options, as click allows
        index += 1
    kwargs = dict(spec["defaults"])
    kwargs.update(values)
    if not _arguments(spec["arguments"], words, kwargs) and not wants_help:
        return None  # a missing or extra argument: Typer's error (--help wins, as in click)
    if not wants_help and any(option not in values for option in spec["required"]):
        return None  # a missing required option (`silence add --for`): Typer's error
    return kwargs, wants_help


def _arguments(
    arguments: tuple[tuple[str, int, bool], ...], words: list[str], kwargs: dict[str, Any]
) -> bool:
    """Assign the positional ``words`` to ``arguments`` (parameter, nargs, required) in order,
    as click does; False when one is missing or a word is left over."""
    words = list(words)
    for name, nargs, required in arguments:
        if nargs == -1:
            if words:
                kwargs[name], words = words, []
            elif required:
                return False  # a missing COMMAND
        elif words:
            kwargs[name] = words.pop(0)
        elif required:
            return False  # a missing NAME
    return not words


def enabled() -> bool:
    """False when RELIACTL_FAST says off: 0, false, no or off, in any case."""
    from reliactl._switches import switched_off

    return not switched_off("RELIACTL_FAST")


def plan(argv: list[str]) -> tuple[str, Any] | None:
    """What the fast path does with ``argv``: ("help", text), ("call", (command name, config
    path, kwargs)), or None: run the Typer app."""
    if not _HOT.intersection(argv) or not enabled():
        return None  # not a hot command: Typer's, without reading the table
    if any(key.endswith("_COMPLETE") for key in os.environ):
        return None  # a shell's completion request: click's
    from reliactl.cli._table import COMMANDS, GROUPS, ROOT_HELP, ROOT_OPTIONS

    config: str | None = None
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, eq, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ROOT_OPTIONS:
            if eq:
                config = attached
                index += 1
                continue
            if index + 1 >= len(argv) or argv[index + 1].startswith("-"):
                return None
            config = argv[index + 1]
            index += 2
            continue
        if arg in ROOT_HELP and index == len(argv) - 1:
            text = _help("")
            return ("help", text) if text is not None else None
        break
    if index >= len(argv):
        return None
    command = " ".join(argv[index : index + 2])  # a group's subcommand (`breaker list`),
    if command in COMMANDS:  # `health history` too (before `health`, which is a group)
        index += 1
    else:
        command = argv[index]
        if command in GROUPS and len(argv) == index + 2 and argv[index + 1] in ROOT_HELP:
            text = _help(command)  # `breaker --help`: the group's own help
            return ("help", text) if text is not None else None
        if command not in COMMANDS:
            return None  # not ours
    parsed = _parse_command(COMMANDS[command], argv[index + 1 :])
    if parsed is None:
        return None
    kwargs, wants_help = parsed
    if wants_help:
        text = _help(command)
        return ("help", text) if text is not None else None
    return "call", (command, config, kwargs)


def call(command: str, config: str | None, kwargs: dict[str, Any]) -> None:
    """Call the command's function as Typer would, guarded as ``reliactl.cli.main`` guards
    the app (and as Typer ends a command: Ctrl-D is "Aborted!", a closed pipe exit 1)."""
    from reliactl.cli import _fastrt
    from reliactl.cli._table import COMMANDS
    from reliactl.cli.context import AppContext

    module_name, function_name = COMMANDS[command]["function"]
    # __import__, not importlib.import_module: the import statement's path, which
    # `python -X importtime` reports (the import test reads it)
    function = getattr(__import__(module_name, fromlist=[function_name]), function_name)
    if "reliactl.cli.run" in sys.modules:
        from reliactl.cli import run as run_module

        run_module.FAST_EXIT = True  # a real process: `run` may skip interpreter teardown
    ctx = _fastrt.FastContext(AppContext(config_path=config), f"{_program_name()} {command}")

    def invoke() -> None:
        try:
            if COMMANDS[command]["context"]:
                function(ctx, **kwargs)
            else:
                function(**kwargs)  # `config init`
        except EOFError:
            print(file=sys.stderr)
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)

    _fastrt.guarded(invoke)


def main(argv: list[str]) -> bool:
    """Answer ``argv`` on the fast path; False (nothing done) when Typer must."""
    from reliactl.cli import _fastrt

    _fastrt.ensure_std_fds()
    action = plan(argv)
    if action is None:
        return False
    kind, payload = action
    if kind == "help":
        try:
            sys.stdout.write(payload)
            sys.stdout.flush()
        except BrokenPipeError:  # as Typer: a closed pipe is exit 1, quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except OSError as exc:  # a full disk: one line, as the Typer app's help says it
            _fastrt.stdout_failed(exc)
        return True
    call(*payload)
    return True
