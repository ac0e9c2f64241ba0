"""The process-wide configuration as the lower layers reach it, without importing config.

``retry``, ``ratelimit`` and ``state`` take their settings explicitly; only when a caller gives
none (``@retry()``, ``limiter_for(key)``, ``open_state()``) do they ask ``process_config()``.
That calls the source the package installs when it is imported (``reliactl/__init__.py``
installs ``config.get_reliability_config``, imported at the first call), so the arrows point
one way: config sits above these modules and they never name it (import-linter checks this in
``.ci/run``). A program can install another source (tests, an embedding application).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["install", "process_config"]

_source: Callable[[], Any] | None = None


def install(source: Callable[[], Any]) -> None:
    """Make ``source()`` the process-wide configuration (a ``reliactl.config.Config``)."""
    global _source
    _source = source


def process_config() -> Any:
    """The process-wide ``Config``, from the installed source."""
    if _source is None:  # only if reliactl/__init__.py did not run, which Python guarantees
        raise RuntimeError("no reliactl configuration source is installed")
    return _source()
