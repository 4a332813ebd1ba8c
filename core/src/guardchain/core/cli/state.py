"""Per-invocation state of the CLI: options of the root group and the lazily built registry."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from guardchain.core.registry import Registry


@dataclass
class AppState:
    """What every command of one invocation shares. There is no global registry: this one lives in the context."""

    log_format: str = "auto"
    log_level: str = "warning"
    disabled: tuple[str, ...] = ()
    plugin_commands_loaded: bool = False
    _registry: Registry | None = field(default=None, repr=False)
    _logging_ready: bool = False

    @classmethod
    def of(cls, ctx: click.Context) -> AppState:
        """The state of the invocation ``ctx`` belongs to (created on first use)."""
        root = ctx.find_root()
        if not isinstance(root.obj, AppState):
            root.obj = cls()
        return root.obj

    def setup_logging(self) -> None:
        """Configure structlog once per invocation, from ``--log-format`` and ``--log-level``; Python warnings
        from then on are log events."""
        if not self._logging_ready:
            # logging is configured when a command first needs it (--help stays fast)
            from guardchain.core.logs import capture_python_warnings, configure_logging

            level = self.log_level
            if os.environ.get("GUARDCHAIN_TRACE_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}:
                level = "debug" if level == "debug" else "info"  # tracing asks for the hook.call events
            configure_logging(self.log_format, level)  # type: ignore[arg-type]
            capture_python_warnings()
            self._logging_ready = True

    @property
    def registry(self) -> Registry:
        """The registry of this invocation, discovered from entry points on first use."""
        if self._registry is None:
            self.setup_logging()
            # plugins are discovered when a command first needs them (--help stays fast)
            from guardchain.core.registry import Registry, RegistrySettings

            self._registry = Registry.discover(RegistrySettings.from_env(block=self.disabled))
        return self._registry

    def warn(self, message: str) -> None:
        """A warning for humans on stderr."""
        click.echo(f"warning: {message}", err=True)
