# Type stub of the optional C extension built from _cleanupwalk.c (see reliactl/cleanup.py).
import os
from typing import Any

API: int

class Lister:
    def __init__(
        self,
        fd: int,
        shared: bool,
        dry_run: bool,
        cutoff: float,
        root_dev: int,
        age_code: int,
        report: bool,
    ) -> None: ...
    def batch(
        self, limit: int, table: Any, /
    ) -> tuple[
        int,
        int,
        int,
        int,
        int,
        int,
        list[tuple[str, int, int, int, float]],
        list[tuple[str, os.stat_result]],
        int,
        int,
    ]: ...
    def close(self) -> None: ...
