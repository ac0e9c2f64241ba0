"""Keep pydantic off reliactl's startup path.

Typer 0.29 builds a pydantic TypeAdapter for every parameter it processes, even an unset
``--help`` flag, which makes a do-nothing command ~16x the cost of ``python -c pass``. cron
pays that every minute. For the plain annotations reliactl uses (str, int, float, bool, and
lists of str) this module coerces directly, with Typer's own error messages; every other
annotation still goes through Typer's pydantic path. It replaces one private hook
(``_TyperParameter.get_runtime_param``), which is why pyproject pins typer below 0.30; if the
hook is missing, nothing is patched and reliactl is only slower.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

_SIMPLE = (str, int, float, bool)
_NAMES = {int: "integer", float: "float", bool: "boolean", str: "string"}
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _convert_one(target: type, value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if target is str:
        if value is None:
            raise ValueError("None is not a valid string")
        return value if isinstance(value, str) else str(value)
    if isinstance(value, target) and not (target is int and isinstance(value, bool)):
        return value
    if target is bool:
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a valid boolean.")
    text = str(value).strip()
    # int() and float() accept "1_000" and other scripts' digits (U+0665); an option takes
    # plain ASCII numbers only.
    if not text.isascii() or "_" in text:
        raise ValueError(f"{value!r} is not a valid {_NAMES[target]}.")
    try:
        return target(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid {_NAMES[target]}.") from None


def install() -> bool:  # noqa: C901 - each check guards typer's private hook
    """Patch Typer's per-parameter coercion for simple annotations; True if patched."""
    try:
        from typer import core
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover - a different typer
        return False
    cls = getattr(core, "_TyperParameter", None)
    original = getattr(cls, "get_runtime_param", None)
    if cls is None or original is None or getattr(original, "_reliactl_fast", False):
        return False

    @dataclass(frozen=True)
    class FastRuntimeParam(RuntimeParam):
        target: type = str
        is_list: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.is_list:
                    items = value if isinstance(value, (list, tuple)) else [value]
                    return [_convert_one(self.target, item) for item in items]
                return _convert_one(self.target, value)
            except ValueError as exc:
                raise BadParameter(str(exc), ctx=ctx, param=param) from None

    def fast_target(self: Any) -> tuple[type, bool] | None:
        desc = self.type_descriptor
        info = desc.parameter_info
        if desc.file_annotation is not None or getattr(info, "parser", None) is not None:
            return None
        if getattr(info, "min", None) is not None or getattr(info, "max", None) is not None:
            return None
        if getattr(info, "click_type", None) is not None:
            return None
        annotation = desc.annotation
        if annotation in _SIMPLE:
            return annotation, False
        if typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            if item is str:
                return str, True
        return None

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            target = fast_target(self)
            if target is None:
                return original(self)
            self._runtime_param = FastRuntimeParam(
                parameter_info=self.type_descriptor.parameter_info,
                annotation=self.type_descriptor.annotation,
                target=target[0],
                is_list=target[1],
            )
        return self._runtime_param

    get_runtime_param._reliactl_fast = True  # type: ignore[attr-defined]
    cls.get_runtime_param = get_runtime_param
    return True
