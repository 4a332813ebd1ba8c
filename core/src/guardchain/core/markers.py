"""The pluggy markers bound to the project name ``guardchain``.

Plugin authors need :data:`hookimpl` (re-exported as ``guardchain.core.hookimpl``) and, for a lazy package API,
:func:`lazy_exports`; the spec marker is for the kernel's own :mod:`guardchain.core.hookspecs`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

PROJECT_NAME = "guardchain"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports each public name from its module on first use.

    A member's ``__init__`` lists its Python API as ``{name: "module"}`` and sets
    ``__getattr__ = lazy_exports(__name__, EXPORTS)``: ``import guardchain.<member>`` then imports neither torch
    nor pydantic until a name is used (listing plugins imports the package).
    """

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
