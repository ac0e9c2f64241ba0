"""The package's shape: its public names agree in their three places, and it ships no test code."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import reliactl

PACKAGE = Path(reliactl.__file__).parent


def _type_checking_imports() -> dict[str, str]:
    """name -> module of every import under ``if TYPE_CHECKING:`` in reliactl/__init__.py."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                if stmt.module == "typing":  # annotations only (typing is not imported at run)
                    continue
                for alias in stmt.names:
                    found[alias.asname or alias.name] = stmt.module
    return found


def test_all_the_lazy_map_and_the_type_checking_imports_agree() -> None:
    """Every public name is in __all__ (sorted), in the lazy map and imported for type
    checkers from the same module, and resolves to an object defined under that name."""
    exports = reliactl._EXPORTS
    public = set(reliactl.__all__) - {"__version__"}
    assert reliactl.__all__ == sorted(reliactl.__all__)
    assert len(reliactl.__all__) == len(set(reliactl.__all__))
    assert public == set(exports), public ^ set(exports)
    typed = _type_checking_imports()
    assert typed == exports, {k: (typed.get(k), exports.get(k)) for k in typed.keys() ^ exports}
    for name, module in exports.items():
        assert hasattr(importlib.import_module(module), name), (name, module)
        assert getattr(reliactl, name) is getattr(importlib.import_module(module), name)
    assert sorted(dir(reliactl)) == sorted(reliactl.__all__)


def test_no_test_server_or_http_server_ships_in_the_package() -> None:
    """Test HTTP servers live in tests/ (one helper, tests/httpserver.py); the wheel carries
    nothing that imports http.server (reliactl/_httpserver.py used to ship)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.startswith(("http.server", "socketserver")) for n in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
    assert (PACKAGE.parent / "tests" / "httpserver.py").is_file()


def _file_map() -> str:
    """The code block of DESIGN.md section 1 (the file map)."""
    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text()
    section = design.split("## 1. The shape", 1)[1].split("## 2.", 1)[0]
    return section.split("```", 2)[1]


def test_the_design_file_map_names_every_module() -> None:
    """DESIGN.md's map is current: every module of the package is named in it (it omitted
    locks.py, doctor.py, cli/retry.py and cli/doctor.py)."""
    text = _file_map()
    words = set(text.replace(",", " ").replace("(", " ").replace(")", " ").split())
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in words and path.stem not in words
    ]
    assert missing == []


def test_design_links_only_files_in_the_repository() -> None:
    """A document DESIGN.md sends the reader to is in the repository (ORIGIN.md was not)."""
    docs = PACKAGE.parent / "docs"
    design = (docs / "DESIGN.md").read_text()
    assert "`ORIGIN.md` beside this page" in design
    assert (docs / "ORIGIN.md").is_file()


def test_every_declared_dependency_is_imported_by_the_package() -> None:
    """A dependency is declared because the package imports it (filelock was declared and
    imported nowhere; `run` locks with fcntl.flock, see DESIGN.md)."""
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    import_name = {"pyyaml": "yaml"}
    # Declared for a dependency's sake, with the reason in pyproject.toml: httpcore asks
    # sniffio on every lock it takes, and a missing sniffio costs a path scan each time.
    for_others = {"sniffio"}
    imported: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
        if name.lower() in for_others:
            continue
        assert import_name.get(name.lower(), name.lower()) in imported, requirement
