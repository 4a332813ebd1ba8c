"""Configuration of ``variance`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from pydantic import Field

from guardchain.guards.config_base import GuardConfig, overrides_from
from guardchain.guards.tiers import VariancePreset

#: bootstrap resamples at most (the resampled means take 8 bytes each, drawn in blocks)
MAX_RESAMPLES = 100_000


@overrides_from("variance", VariancePreset)
class VarianceConfig(GuardConfig):
    """``variance``: activation-variance drift per site, with a repair applied only if held-out NLL improves."""

    sites: tuple[str, ...] = Field(
        default=("blocks[*].mlp.output",),
        min_length=1,
        description="Tapped sites (adapter site grammar); default: each block's MLP output before the residual add "
        "(the down projection's output).",
    )
    calibration_windows: int = Field(default=2, ge=1, description="Preview windows whose variance is measured.")
    heldout_windows: int = Field(
        default=6,
        ge=2,
        le=1024,
        description="At most this many further preview windows for the paired predictive check.",
    )
    window_tokens: int = Field(
        default=64,
        ge=8,
        description="Tokens taken from the start of each calibration window (as rmt, so they share the forward "
        "passes); held-out windows are scored whole.",
    )
    n_resamples: int = Field(
        default=2000, ge=100, le=MAX_RESAMPLES, description="Bootstrap resamples of the paired check."
    )
