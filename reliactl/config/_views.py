"""Views of a configuration: ``to_plain`` (config show, redacted) and the example YAML."""

from __future__ import annotations

import json
import re

from reliactl import _records
from reliactl.config._schema import SECTION_DOCS, Config, _hints, _strip_optional
from reliactl.durations import format_duration
from reliactl.redact import REDACTED, is_secret_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any


def is_secret_key(key: str) -> bool:
    """A key whose value ``config show`` hides: what ``reliactl.redact`` calls a secret name,
    and webhook URLs (the URL is the credential)."""
    return is_secret_name(key) or "webhook" in key.lower()


def _fields_of(obj: Any) -> Any:
    """The fields of a record or other dataclass instance (None for anything else)."""
    if _records.is_record(obj):
        return _records.fields(obj)
    if hasattr(type(obj), "__dataclass_fields__"):  # a standard one: dataclasses knows it
        import dataclasses

        return dataclasses.fields(obj)
    return None


def to_plain(obj: Any, *, redact: bool = True, human: bool = True) -> Any:
    """Plain data (dicts, lists, scalars) for YAML/JSON output; secrets redacted."""
    fields = None if isinstance(obj, type) else _fields_of(obj)
    if fields is not None:
        out: dict[str, Any] = {}
        for f in fields:
            value = getattr(obj, f.name)
            if (
                redact
                and value not in (None, "")
                and (f.metadata.get("secret") or is_secret_key(f.name))
            ):
                out[f.name] = REDACTED
            elif redact and value and f.metadata.get("kind") == "ping_url":
                from reliactl.redact import redact_url as redact_whole

                out[f.name] = redact_whole(value, path=False)  # the path is the credential
            elif redact and value and f.metadata.get("kind") == "state_url":
                from reliactl.state.url import redact_url

                out[f.name] = redact_url(value)
            elif redact and value and f.name == "command":  # an argv list or a shell string
                from reliactl.redact import redact_command

                out[f.name] = redact_command(value)
            elif human and value is not None and f.metadata.get("kind") == "duration":
                out[f.name] = format_duration(value)
            else:
                out[f.name] = to_plain(value, redact=redact, human=human)
        return out
    if isinstance(obj, dict):
        return {
            k: REDACTED
            if redact and is_secret_key(str(k)) and v not in (None, "")
            else to_plain(v, redact=redact, human=human)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, redact=redact, human=human) for v in obj]
    return obj


def example_yaml(*, starter: bool = False) -> str:
    """A commented configuration: config.example.yaml, or (``starter``) what `config init` writes.

    The reference sets every option, example values included (example checks, sinks,
    breakers). The starter has the same layout and comments but is only the defaults: each
    example is there, commented out, so `reliactl health` in a fresh directory runs the
    built-in checks and alerts no placeholder URL.
    """
    import yaml

    defaults = to_plain(Config(), redact=False)
    if starter:
        lines = [
            "# reliactl starter configuration: the built-in defaults. Examples (checks, alert",
            "# sinks, breakers...) are commented out: uncomment and edit what you need.",
            "# The full reference of every option is config.example.yaml in reliactl's sources.",
        ]
    else:
        lines = ["# reliactl configuration: every option, with its default or an example value."]
    lines += [
        "# Precedence: built-in defaults < this file < environment < command-line flags.",
        "# Every scalar can be set from the environment as RELIACTL_<SECTION>__<KEY>,",
        "# e.g. RELIACTL_RETRY__MAX_RETRIES=5. Durations: 500ms, 30s, 5m, 1h30m, 7d.",
        "# Sizes: 500MB, 2GiB. Check a change with: reliactl config validate FILE",
    ]
    hints = _hints(Config)
    for section in _records.fields(Config):
        cls = hints[section.name]
        if _records.type_origin(cls) is dict:  # `jobs:` (a mapping of named entries)
            lines += ["", f"# {SECTION_DOCS[section.name]}", "# Keys of each entry:"]
            lines += _entry_docs(_records.type_args(cls)[1], "")
            dumped = yaml.safe_dump(
                {section.name: section.metadata["example"]},
                default_flow_style=False,
                sort_keys=False,
            ).rstrip()
            if starter:
                lines.append(f"{section.name}: {{}}")
            lines += [("# " if starter else "") + line for line in dumped.splitlines()]
            continue
        lines += ["", f"# {SECTION_DOCS[section.name]}", f"{section.name}:"]
        for f in _records.fields(cls):
            value = defaults[section.name][f.name]
            example = f.metadata.get("example")
            commented = False
            if example is not None and value in (None, "", [], {}):
                value = example
                commented = starter  # the starter keeps the default: the example is a comment
            lines.append(f"  # {f.metadata.get('doc', '')}")
            if commented and isinstance(value, (dict, list)):
                # an optional section left unset is null: `{}` would turn it on with defaults
                empty = "{}" if isinstance(value, dict) else "[]"
                unset = defaults[section.name][f.name] is None
                lines.append(f"  {f.name}: {'null' if unset else empty}")
            if isinstance(value, (dict, list)):
                dumped = yaml.safe_dump({f.name: value}, default_flow_style=False, sort_keys=False)
                body = dumped.rstrip().splitlines()
            else:
                body = [f"{f.name}: {scalar_yaml(value)}"]
            lines += [("  # " if commented else "  ") + line for line in body]
    return "\n".join(lines) + "\n"


def _entry_docs(cls: Any, prefix: str) -> list[str]:
    out = []
    for f in _records.fields(cls):
        sub = _strip_optional(_hints(cls)[f.name])
        if _records.is_record(sub):
            out.append(f"#   {prefix}{f.name}: {f.metadata.get('doc', '')}")
            out += _entry_docs(sub, f"{prefix}{f.name}.")
        else:
            out.append(f"#   {prefix}{f.name}: {f.metadata.get('doc', '')}")
    return out


# Compiled at first use (re caches them), not at import: only config show needs them.
_PLAIN = r"[A-Za-z0-9_./~@%+$][A-Za-z0-9_./~@%+$:;,()=*?! -]*"


_RESERVED = (
    r"(?i:y|n|yes|no|true|false|on|off|null|~)|[-+]?(\d[\d_]*(\.\d*)?|\.\d+)(e[-+]?\d+)?"
    r"|[-+]?\.(inf|nan)|0x[0-9a-f]+|0o?[0-7]+|\d+(:[0-5]?\d)+(\.\d*)?|\d{4}-\d\d?-\d\d?.*"
)


def scalar_yaml(value: Any) -> str:
    """One scalar as YAML text, quoted only where plain YAML would misread it (no yaml import)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if (
        re.fullmatch(_PLAIN, text)
        and not re.fullmatch(_RESERVED, text, re.IGNORECASE)
        and ": " not in text
        and " #" not in text
        and not text.endswith((" ", ":"))
    ):
        return text
    return json.dumps(text)
