"""The one switch for network access: ``GUARDCHAIN_ALLOW_NETWORK``.

guardchain is offline by default. A plugin that could reach a model or dataset hub asks :func:`network_allowed`
first and, when it is false, fails with its own coded error that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV_ALLOW_NETWORK = "GUARDCHAIN_ALLOW_NETWORK"
_TRUTHY = frozenset({"1", "true", "yes", "on"})


def network_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``GUARDCHAIN_ALLOW_NETWORK`` is ``1``, ``true``, ``yes`` or ``on`` (case-insensitive)."""
    env = os.environ if environ is None else environ
    return env.get(ENV_ALLOW_NETWORK, "").strip().lower() in _TRUTHY
