from __future__ import annotations

from collections.abc import Iterator

import pytest
from httpserver import CountingServer


@pytest.fixture
def server() -> Iterator[CountingServer]:
    with CountingServer() as srv:
        yield srv
