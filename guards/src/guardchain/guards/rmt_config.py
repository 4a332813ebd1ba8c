"""Configuration of ``rmt`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from pydantic import Field

from guardchain.guards.config_base import GuardConfig, overrides_from
from guardchain.guards.tiers import Family, RMTPreset

_DEFAULT_SITES: dict[Family, tuple[str, ...]] = {"attn": ("blocks[*].attn.output",), "ffn": ("blocks[*].mlp.output",)}


@overrides_from("rmt", RMTPreset)
class RMTConfig(GuardConfig):
    """``rmt``: activation edge risk and weight-spectrum outliers against the Marchenko-Pastur law."""

    activation_sites: dict[Family, tuple[str, ...]] = Field(
        default_factory=lambda: dict(_DEFAULT_SITES),
        description="Per family, the site strings whose activations are measured (adapter site grammar); an "
        "empty mapping switches the activation measurement off.",
    )
    weight_families: tuple[Family, ...] = Field(
        default=("attn", "ffn", "other"),
        description="Weight families whose MP outliers are counted ('embed' opt-in, as for spectral); empty "
        "switches the weight measurement off.",
    )
    exact_max_dim: int = Field(
        default=128, ge=1, description="Matrices whose smaller side is at most this get an exact SVD (as spectral)."
    )
    calibration_windows: int = Field(default=2, ge=1, description="Preview windows used for activations.")
    window_tokens: int = Field(
        default=64, ge=8, description="Tokens taken from the start of each calibration window (2 x 64 = 128 tokens)."
    )
