# Type stub of the optional C extension built from _cleanupwalk.c (see reliactl/cleanup.py).
import os
from typing import Any

API: int
SOURCE_SHA256: str

# (listed, gone, files, symlinks, nbytes, kept, items, subdirs, end, read_errno)
Batch = tuple[
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
]

class Lister:
    def __init__(
        self,
        dry_run: bool,
        cutoff: float,
        root_dev: int,
        age_code: int,
        report: bool,
    ) -> None: ...
    def list(self, fd: int, shared: bool, limit: int, table: Any, /) -> Batch: ...
    def batch(self, limit: int, table: Any, /) -> Batch: ...
    def walk(
        self,
        root_fd: int,
        root_st: os.stat_result,
        walker: Any,
        max_depth: int,
        euid: int,
        restore: bool,
        dir_age_code: int,
        limit: int,
        /,
    ) -> tuple[int, int, int, int, int, int, int]: ...
    def close(self) -> None: ...
