"""What every command shares: the configuration (loaded once per invocation) and the state store."""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from typing import Any

    from reliactl.config import LoadedConfig
    from reliactl.state import StateStore


class AppContext:
    """Set by the root callback; commands read it through ``ctx.obj``.

    A plain class, not a ``@dataclass``: the three methods dataclasses would compile at
    import cost every `run` and `health` start ~0.5 ms and nothing here needs them."""

    def __init__(
        self,
        config_path: str | None = None,
        flags: dict[str, tuple[Any, str]] | None = None,
        _loaded: LoadedConfig | None = None,
        _store: StateStore | None = None,
    ) -> None:
        self.config_path = config_path
        self.flags: dict[str, tuple[Any, str]] = {} if flags is None else flags
        self._loaded = _loaded
        self._store = _store

    def __repr__(self) -> str:
        return f"AppContext(config_path={self.config_path!r}, flags={self.flags!r})"

    def loaded(self) -> LoadedConfig:
        """The validated configuration (raises ConfigError, reported as exit 78)."""
        if self._loaded is None:
            from reliactl.config import load

            self._loaded = load(self.config_path, flags=self.flags)
            if self._loaded.config.chaos.rules:
                from reliactl.chaos import apply_config

                apply_config(self._loaded.config)
            if self._loaded.notes:
                from reliactl.cli.output import warn

                for note in self._loaded.notes:
                    warn(note)
        return self._loaded

    def store(self, warn: Callable[[str], None] | None = None) -> StateStore:
        """The state store of the configuration, opened once; its warnings go to ``warn``
        (default: stderr)."""
        if self._store is None:
            from reliactl.cli.output import warn as to_stderr
            from reliactl.state import open_state

            self._store = open_state(self.loaded().config, warn=warn or to_stderr)
        return self._store


def app_context(ctx: Any) -> AppContext:
    """The AppContext of a click/typer context (a default one when run without the root)."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext()
    return root.obj
