"""Registration module of guardchain-edits (entry point ``edits``): light, no torch and no pydantic model at import.

The config model and the factory are ``"module:attr"`` references, imported only when a chain uses the edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_edits(registrar: Registrar) -> None:
    """Register ``quant_rtn``."""
    registrar.register(
        "quant_rtn",
        summary="Symmetric round-to-nearest fake quantization of weight matrices, per output channel or group-wise.",
        config_model="guardchain.edits.config:QuantRTNConfig",
        factory="guardchain.edits.quant_rtn:QuantRTN",
        docs="q_max = 2^(bits-1) - 1; per output channel (or per group of group_size consecutive input columns) "
        "s = a / q_max with a = max|w| (or the clamp_percentile-th percentile of |w|); "
        "w' = clamp(round(w / s), -q_max, q_max) * s, written back in place in the parameter's dtype (weights stay "
        "float). Scope: attn, ffn, all (attn+ffn) or explicit parameter names / module prefixes; embeddings and "
        "lm_head only when asked. Error codes: GC-EDIT-SCOPE-UNKNOWN, GC-EDIT-GROUP-SIZE, GC-EDIT-PLAN.",
    )
