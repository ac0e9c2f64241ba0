"""Fixtures of the serve tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servehelpers import Served, start_serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """serve with a token, a python check driven by a flag file, a hostile perfdata label,
    a configured breaker and a Discord alert sink whose webhook must never be shown."""
    server = start_serve(tmp_path)
    yield server
    server.stop()
