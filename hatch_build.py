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
    include = sysconfig.get_paths()["include"]
    return _build(
        Path(root),
        cc,
        source=SOURCE,
        name=MODULE + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"),
        flags=("-fPIC", "-shared", f"-I{include}"),
        macro="CWALK_SRC_SHA",  # the module says which source it was built from
        what="the C walk",
        fallback="pure-Python cleanup walk",
        missing=None
        if (Path(include) / "Python.h").is_file()
        else f"no Python.h in {include} (or not Linux)",
    )


def build_shim(root: str | Path, cc: list[str] | None = None) -> str | None:
    """Compile the contain shim into ``reliactl/``; its path relative to ``root``, or None.

    Never raises, as ``build_extension``: without it Contained forks the Python shim. An
    older build is removed first in every case (reliactl also refuses one whose embedded
    source hash differs from the .c next to it).
    """
    return _build(
        Path(root),
        cc,
        source=SHIM_SOURCE,
        name=SHIM,
        flags=(),
        macro="CSHIM_SRC_SHA",
        what="the C shim",
        fallback="Python contain shim",
        missing=None,
    )


def _build(
    root: Path,
    cc: list[str] | None,
    *,
    source: str,
    name: str,
    flags: tuple[str, ...],
    macro: str,
    what: str,
    fallback: str,
    missing: str | None,
) -> str | None:
    """Compile ``source`` to ``reliactl/NAME`` (the one build both C parts share): None, with
    one line naming the ``fallback``, whenever it cannot."""

    def without(why: str, detail: str = "") -> None:
        print(f"reliactl: {why}: {fallback}{detail}", file=sys.stderr)

    target = root / "reliactl" / name
    # Whatever happens next, a build from older source must not stay behind: an editable
    # install would go on using it (reliactl also refuses one whose source hash differs).
    try:
        target.unlink(missing_ok=True)
    except OSError as exc:
        return without(f"cannot remove {target} ({exc})")
    if os.environ.get("RELIACTL_BUILD_EXTENSION", "1") == "0":
        print(f"reliactl: RELIACTL_BUILD_EXTENSION=0: not building {what}", file=sys.stderr)
        return None
    if not sys.platform.startswith("linux") or missing is not None:
        return without(missing or "not Linux")
    try:
        digest = hashlib.sha256((root / source).read_bytes()).hexdigest()
        fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix, dir=target.parent, prefix=".build-")
        os.close(fd)
    except OSError as exc:  # an unwritable checkout: install without it
        return without(f"cannot build in {target.parent} ({exc})")
    argv = [
        *(cc or compiler()),
        "-O2",
        *flags,
        "-Wall",
        "-Wextra",
        "-Wno-missing-field-initializers",
        f'-D{macro}="{digest}"',
        "-o",
        tmp,
        str(root / source),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        os.unlink(tmp)
        return without(f"cannot run the C compiler ({exc})")
    if result.returncode != 0:
        os.unlink(tmp)
        return without(f"{what} did not compile", "\n" + result.stderr)
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - a file every user of the install loads or runs
        os.replace(tmp, target)  # atomic: a running process never uses a half-written file
    except OSError as exc:
        return without(f"cannot install {what} ({exc})")
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
