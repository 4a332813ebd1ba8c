"""Registration module of guardchain-interventions (entry point ``interventions``): imports no torch.

Config models and factories are ``"module:attr"`` references, imported only when a chain uses an intervention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.registry import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

_CONFIG = "guardchain.interventions.config"
_IMPL = "guardchain.interventions.registered"
_UNITS = (
    "Units: positions (null = all; list, per-row lists or slice 'a:b'), heads with n_heads. Error codes: "
    "GC-INTERVENTION-SITE, -SHAPE, -UNITS, -SOURCE, -GENERATION, -CONFIG-VERSION, -LOAD, -MODEL-MISMATCH."
)
_SOURCE = "The source run: source_input_ids or source_text (1 row broadcasts), source_positions. "

#: registered name -> (summary, config model, factory, docs)
INTERVENTIONS: dict[str, tuple[str, str, str, str]] = {
    "collect": (
        "Record activations at sites and positions with their true shape (batch x positions x hidden).",
        "CollectConfig",
        "CollectPlugin",
        "out = b; each forward pass appends a detached clone per site; artifact writes them as safetensors.",
    ),
    "zero": ("Zero ablation of the selected units.", "ZeroConfig", "ZeroPlugin", "out = 0."),
    "add": (
        "Add a scaled steering vector to the selected units.",
        "AddConfig",
        "AddPlugin",
        "out = b + scale * vector.",
    ),
    "scale": ("Multiply the selected units by a factor.", "ScaleConfig", "ScalePlugin", "out = factor * b."),
    "replace": (
        "Replace the selected units by a constant or a vector.",
        "ReplaceConfig",
        "ReplacePlugin",
        "out = value (broadcast).",
    ),
    "noise": (
        "Add seeded Gaussian noise to the selected units.",
        "NoiseConfig",
        "NoisePlugin",
        "out = b + std * eps, eps ~ N(0, 1) from a generator seeded with seed (default: the run's seed).",
    ),
    "interchange": (
        "Patch a source run's activations into the base run at chosen positions and heads.",
        "InterchangeConfig",
        "InterchangePlugin",
        "out = s (Geiger et al. 2021). " + _SOURCE,
    ),
    "rotated": (
        "DAS: interchange the first k coordinates of an orthogonally rotated basis (trainable).",
        "RotatedConfig",
        "RotatedPlugin",
        "out = b + ((s - b) R[:, :k]) R[:, :k]^T (Geiger et al. 2024). load_from: a saved directory. " + _SOURCE,
    ),
    "low_rank_rotated": (
        "Low-rank DAS: out = b + (sW - bW)W^T with W of orthonormal columns (trainable).",
        "LowRankRotatedConfig",
        "LowRankRotatedPlugin",
        "W is d x rank with orthonormal columns. load_from: a saved directory. " + _SOURCE,
    ),
    "boundless": (
        "Boundless DAS: sigmoid boundary mask with learnable boundary and temperature (trainable).",
        "BoundlessConfig",
        "BoundlessPlugin",
        "m_j = sigmoid((beta d - j - 1/2) / tau); out = b + (((s - b) R) * m) R^T (Wu et al. 2023). " + _SOURCE,
    ),
}


@hookimpl
def guardchain_register_interventions(registrar: Registrar) -> None:
    """Register the ten interventions of :data:`INTERVENTIONS`."""
    for name, (summary, config, factory, docs) in INTERVENTIONS.items():
        registrar.register(
            name,
            summary=summary,
            config_model=f"{_CONFIG}:{config}",
            factory=f"{_IMPL}:{factory}",
            docs=docs + " " + _UNITS,
        )
