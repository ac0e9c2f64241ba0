"""Build reliactl's optional C extension (reliactl/_cleanupwalk.c) with hatchling.

The extension is cleanup's per-entry loop in C (docs/DESIGN.md, "The walk in C"). It is
optional: with no C compiler or no Python headers the build prints why and goes on, and
cleanup runs its pure-Python walk. The shared object is written next to its source in
``reliactl/`` (git-ignored), where both an editable install (``pip install -e``, whose .pth
points at the checkout) and a wheel (as an artifact) find it.

It also builds ``reliactl/_containshim`` from reliactl/_containshim.c: the executable that
contains a health plugin or a command alert sink (runner.Contained, DESIGN.md section 7), so
that reliactl starts it with posix_spawn instead of forking itself. Optional the same way:
without it Contained forks a Python shim.

Set ``RELIACTL_BUILD_EXTENSION=0`` to build without either; ``CC`` picks the compiler.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

SOURCE = "reliactl/_cleanupwalk.c"
MODULE = "_cleanupwalk"
SHIM_SOURCE = "reliactl/_containshim.c"
SHIM = "_containshim"


def compiler() -> list[str]:
    """The C compiler command: $CC, else the one Python was built with, else cc."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def build_extension(root: str | Path, cc: list[str] | None = None) -> str | None:
    """Compile the extension into ``reliactl/``; its path relative to ``root``, or None.

    Never raises for a missing or failing compiler or an unwritable checkout: the package
    works without it. An older build is removed first in every case.
    """
    root = Path(root)
    source = root / SOURCE
    target = root / "reliactl" / (MODULE + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    include = sysconfig.get_paths()["include"]
    # Whatever happens next, a build from older source must not stay behind: an editable
    # install would go on importing it (reliactl also refuses one whose source hash differs).
    try:
        target.unlink(missing_ok=True)
    except OSError as exc:
        print(
            f"reliactl: cannot remove {target} ({exc}): pure-Python cleanup walk", file=sys.stderr
        )
        return None
    if os.environ.get("RELIACTL_BUILD_EXTENSION", "1") == "0":
        print("reliactl: RELIACTL_BUILD_EXTENSION=0: not building the C walk", file=sys.stderr)
        return None
    if not sys.platform.startswith("linux") or not (Path(include) / "Python.h").is_file():
        print(
            f"reliactl: no Python.h in {include} (or not Linux): pure-Python cleanup walk",
            file=sys.stderr,
        )
        return None
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent, prefix=".build-")
        os.close(fd)
    except OSError as exc:  # an unwritable checkout: install without the C walk
        print(
            f"reliactl: cannot build in {target.parent} ({exc}): pure-Python cleanup walk",
            file=sys.stderr,
        )
        return None
    argv = [
        *(cc or compiler()),
        "-O2",
        "-fPIC",
        "-shared",
        "-Wall",
        "-Wextra",
        "-Wno-missing-field-initializers",
        f"-I{include}",
        f'-DCWALK_SRC_SHA="{digest}"',  # the module says which source it was built from
        "-o",
        tmp,
        str(source),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        os.unlink(tmp)
        print(
            f"reliactl: cannot run the C compiler ({exc}): pure-Python cleanup walk",
            file=sys.stderr,
        )
        return None
    if result.returncode != 0:
        os.unlink(tmp)
        print(
            f"reliactl: the C walk did not compile: pure-Python cleanup walk\n{result.stderr}",
            file=sys.stderr,
        )
        return None
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - a shared object every user of the install loads
        os.replace(tmp, target)  # atomic: a running process never loads a half-written file
    except OSError as exc:
        print(
            f"reliactl: cannot install the C walk ({exc}): pure-Python cleanup walk",
            file=sys.stderr,
        )
        return None
    return target.relative_to(root).as_posix()


def build_shim(root: str | Path, cc: list[str] | None = None) -> str | None:
    """Compile the contain shim into ``reliactl/``; its path relative to ``root``, or None.

    Never raises, as ``build_extension``: without it Contained forks the Python shim. An
    older build is removed first in every case (reliactl also refuses one whose embedded
    source hash differs from the .c next to it).
    """
    root = Path(root)
    source = root / SHIM_SOURCE
    target = root / "reliactl" / SHIM
    try:
        target.unlink(missing_ok=True)
    except OSError as exc:
        print(f"reliactl: cannot remove {target} ({exc}): Python contain shim", file=sys.stderr)
        return None
    if os.environ.get("RELIACTL_BUILD_EXTENSION", "1") == "0":
        print("reliactl: RELIACTL_BUILD_EXTENSION=0: not building the C shim", file=sys.stderr)
        return None
    if not sys.platform.startswith("linux"):
        print("reliactl: not Linux: Python contain shim", file=sys.stderr)
        return None
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-")
        os.close(fd)
    except OSError as exc:
        print(
            f"reliactl: cannot build in {target.parent} ({exc}): Python contain shim",
            file=sys.stderr,
        )
        return None
    argv = [
        *(cc or compiler()),
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-missing-field-initializers",
        f'-DCSHIM_SRC_SHA="{digest}"',
        "-o",
        tmp,
        str(source),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        os.unlink(tmp)
        print(f"reliactl: cannot run the C compiler ({exc}): Python contain shim", file=sys.stderr)
        return None
    if result.returncode != 0:
        os.unlink(tmp)
        print(
            f"reliactl: the C shim did not compile: Python contain shim\n{result.stderr}",
            file=sys.stderr,
        )
        return None
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - an executable every user of the install runs
        os.replace(tmp, target)  # atomic: a running reliactl never starts a half-written file
    except OSError as exc:
        print(f"reliactl: cannot install the C shim ({exc}): Python contain shim", file=sys.stderr)
        return None
    return target.relative_to(root).as_posix()


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported outside a build (the tests call build_extension)
    BuildHookInterface = object  # type: ignore[assignment,misc]


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """hatchling's hook for the wheel target (standard and editable)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        built = [path for path in (build_extension(self.root), build_shim(self.root)) if path]
        if not built:
            return
        if version == "editable":
            return  # the editable install's .pth points at the checkout, where it was built
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].extend(built)
