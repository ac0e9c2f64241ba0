"""What importing `run`'s core loads (issue 21, item 4: start-up is paid on every cron tick).

`reliactl run -- true` imports the job engine, the runner, the lock layer, history and the
SQLite store. None of them may pull in a module only a rare branch needs: logging (the store
logs only a warning), ctypes (the runner builds prctl on `_ctypes`), subprocess, asyncio,
threads pools, the CLI libraries or the config loader. Pinned on a real interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

RUN_CORE = (
    "reliactl.jobs",
    "reliactl.runner",
    "reliactl.locks",
    "reliactl.history",
    "reliactl.state",
    "reliactl.state.sqlite",
)

NOT_LOADED = (
    "logging",
    "ctypes",
    "subprocess",
    "asyncio",
    "concurrent.futures",
    "multiprocessing",
    "typer",
    "click",
    "rich",
    "pydantic",
    "httpx",
    "yaml",
    "psutil",
    "redis",
    "opentelemetry",
    "resource",
    "reliactl.config",
    "reliactl.health",
    "reliactl.tracing",
)


def loaded_by(modules: tuple[str, ...]) -> set[str]:
    code = f"import sys, json; import {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout))


def test_importing_the_run_core_loads_nothing_it_does_not_need() -> None:
    """The run core's imports stay free of logging, ctypes, subprocess, asyncio, CLI and config."""
    loaded = loaded_by(RUN_CORE)
    assert set(RUN_CORE) <= loaded
    unwanted = sorted(m for m in NOT_LOADED if m in loaded)
    assert unwanted == [], f"the run core imports {unwanted}"
