"""guardchain's kernel: capability protocols, the plugin registry, chain config and runner, and the CLI.

Plugin authors need :data:`hookimpl` and :data:`PLUGIN_API_VERSION`::

    # acme_guardchain_guards/plugin.py
    from guardchain.core import PLUGIN_API_VERSION, hookimpl

    GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

    @hookimpl
    def guardchain_register_guards(registrar):
        registrar.register("acme", summary="...", config_model=AcmeConfig, factory="acme_guardchain_guards.guard:Acme")

and an entry point in their ``pyproject.toml``::

    [project.entry-points."guardchain.plugins"]
    acme = "acme_guardchain_guards.plugin"

This module imports nothing heavy: importing it must stay cheap for ``guardchain --help``.
"""

from __future__ import annotations

from guardchain.core.markers import hookimpl

__version__ = "0.1.0"
PLUGIN_API_VERSION = 1

__all__ = ["PLUGIN_API_VERSION", "__version__", "hookimpl"]
