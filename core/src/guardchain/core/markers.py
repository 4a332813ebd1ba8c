"""The pluggy markers bound to the project name ``guardchain``.

Plugin authors need only :data:`hookimpl` (re-exported as ``guardchain.core.hookimpl``); the spec marker is for
the kernel's own :mod:`guardchain.core.hookspecs`.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "guardchain"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
