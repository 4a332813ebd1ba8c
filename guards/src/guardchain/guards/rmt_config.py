"""Configuration of ``rmt`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from guardchain.guards.config_base import GuardConfig
from guardchain.guards.tiers import Family

_DEFAULT_SITES: dict[Family, tuple[str, ...]] = {"attn": ("blocks[*].attn.output",), "ffn": ("blocks[*].mlp.output",)}


class RMTConfig(GuardConfig):
    """``rmt``: activation edge risk and weight-spectrum outliers against the Marchenko-Pastur law."""

    preset_fields: ClassVar[tuple[str, ...]] = ("epsilon", "margin", "outlier_tolerance", "outlier_slack")

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
    epsilon: dict[Family, float] | None = Field(default=None, description="Per family, the edge-risk band.")
    margin: float | None = Field(default=None, ge=1.0, description="Outlier: sigma > (1 + margin) * MP edge.")
    outlier_tolerance: dict[Family, float] | None = Field(
        default=None, description="Per family, allowed relative change of the outlier count."
    )
    outlier_slack: int | None = Field(default=None, ge=0, description="Allowed absolute change of a family count.")
