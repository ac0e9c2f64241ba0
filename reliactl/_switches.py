"""The operators' off switches: one spelling rule for every ``RELIACTL_*`` variable that turns
a part of reliactl off (``RELIACTL_FAST``, ``RELIACTL_CLEANUP_C``, ``RELIACTL_CONFIG_CACHE``),
and whether tracing can be on at all (``OTEL_*``)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from collections.abc import Mapping

# The false spellings of reliactl's booleans (case and surrounding blanks ignored); anything
# else, unset or empty, leaves the part on.
OFF = frozenset(("0", "false", "no", "off"))


def switched_off(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when the variable ``name`` says off: 0, false, no or off, in any case."""
    value = (os.environ if environ is None else environ).get(name, "")
    return value.strip().lower() in OFF


def tracing_may_be_on(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``reliactl.tracing`` may record anything: tracing is on only through
    ``tracing.configure()`` (so the module is imported already) or an ``OTEL_*`` variable
    (``tracing.exporters``). False: `run` and `health` skip importing it (~0.2-0.4 ms)."""
    if "reliactl.tracing" in sys.modules:
        return True
    env = os.environ if environ is None else environ
    return any(name.startswith("OTEL_") and value for name, value in env.items())
