"""The import machinery itself (reliactl/_imports.py: ``ImportScope``'s deferred modules), on
synthetic packages. Moved from tests/state/test_redis_startup.py when the Redis store stopped
importing redis-py (issue 21 item 4); ``reliactl.http.import_httpx`` still defers with it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HANG = 120.0  # only detects a hang


def test_a_deferred_package_loads_for_other_threads_only_after_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machinery itself (reliactl/_imports.py): while the import that deferred a package
    runs, another thread probing it in ``sys.modules`` gets AttributeError and starts no
    import (it could need a module whose import lock the importing thread holds); once the
    import is over, any thread's first read runs the package in place, and ``sys.modules``, the
    parent's attribute and whoever bound it while deferred hold the one real module."""
    import threading
    import types

    from reliactl._imports import DeferredModule, ImportScope

    (tmp_path / "rl_deferpkg" / "sub").mkdir(parents=True)
    (tmp_path / "rl_deferpkg" / "__init__.py").write_text(
        "from rl_deferpkg import sub\nimport rl_deferhook\nrl_deferhook.during()\n"
    )
    (tmp_path / "rl_deferpkg" / "sub" / "__init__.py").write_text("X = 42\n")
    (tmp_path / "rl_deferhook.py").write_text("def during():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("rl_deferpkg", "rl_deferpkg.sub", "rl_deferhook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import rl_deferhook  # type: ignore[import-not-found]

    seen: dict[str, object] = {}

    def in_other_thread(key: str, read: Callable[[], object]) -> None:
        thread = threading.Thread(target=lambda: seen.setdefault(key, read()))
        thread.start()
        thread.join(HANG)

    def during() -> None:
        sub = sys.modules["rl_deferpkg.sub"]
        assert isinstance(sub, DeferredModule)
        in_other_thread("during", lambda: getattr(sub, "X", "absent"))

    monkeypatch.setattr(rl_deferhook, "during", during)
    with ImportScope(defer=["rl_deferpkg.sub"]):
        import rl_deferpkg  # type: ignore[import-not-found]
    try:
        assert seen == {"during": "absent"}
        bound = rl_deferpkg.sub
        in_other_thread("after", lambda: rl_deferpkg.sub.X)
        assert seen["after"] == 42
        real = sys.modules["rl_deferpkg.sub"]
        assert type(real) is types.ModuleType and rl_deferpkg.sub is real
        assert bound is real and bound.X == 42  # the module bound while deferred ran in place
    finally:
        for name in ("rl_deferpkg", "rl_deferpkg.sub", "rl_deferhook"):
            sys.modules.pop(name, None)


def test_a_submodule_imported_first_loads_its_siblings_without_running_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machinery itself: with package ``rl_circpkg`` deferred (its ``__init__`` imports
    ``rl_circpkg.mod``), importing ``rl_circpkg.mod`` first (which does ``from rl_circpkg
    import helper``) loads mod and helper without running the package; the package's first
    read of one of its own names then runs it, in place, once."""
    import types

    from reliactl._imports import DeferredModule, ImportScope

    package = tmp_path / "rl_circpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import builtins\nbuiltins.rl_circpkg_runs = getattr(builtins, 'rl_circpkg_runs', 0) + 1\n"
        "from rl_circpkg.mod import X\n"
    )
    (package / "mod.py").write_text("from rl_circpkg import helper\nX = helper.Y\n")
    (package / "helper.py").write_text("Y = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("rl_circpkg", "rl_circpkg.mod", "rl_circpkg.helper")
    import builtins

    try:
        with ImportScope(defer=["rl_circpkg"]):
            import rl_circpkg  # type: ignore[import-not-found]
        assert type(rl_circpkg) is DeferredModule
        from rl_circpkg.mod import X  # type: ignore[import-not-found]

        assert X == 7 and not hasattr(builtins, "rl_circpkg_runs")
        assert rl_circpkg.X == 7  # the package's own name: runs it
        assert builtins.rl_circpkg_runs == 1  # type: ignore[attr-defined]
        assert type(rl_circpkg) is types.ModuleType and sys.modules["rl_circpkg"] is rl_circpkg
    finally:
        for name in names:
            sys.modules.pop(name, None)
        if hasattr(builtins, "rl_circpkg_runs"):
            del builtins.rl_circpkg_runs
