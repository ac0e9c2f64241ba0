"""The operators' off switches: one spelling rule for every ``RELIACTL_*`` variable that turns
a part of reliactl off (``RELIACTL_FAST``, ``RELIACTL_CLEANUP_C``, ``RELIACTL_CONTAIN_SHIM``,
``RELIACTL_CONFIG_CACHE``), whether tracing can be on at all (``OTEL_*``), and whether a C
part (cleanup's walk, the contain shim) was built from the source beside it."""

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


def built_from_source(source: str, digest: object) -> bool:
    """Was a C build that embeds the sha256 ``digest`` (hatch_build.py compiles it in) made
    from the file ``source``? True when there is no such file (an install that carries only
    the build), False when it cannot be read or differs: a checkout updated without
    reinstalling (an editable install) must not run C built from other source."""
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return digest == _sha256_hex(data)


def _sha256_hex(data: bytes) -> str:
    """hashlib.sha256(data).hexdigest() without importing OpenSSL (~5 ms of a run)."""
    try:  # CPython's own sha256: _sha256 up to 3.11, _sha2 from 3.12
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())
