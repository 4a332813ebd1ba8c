"""Configuration of ``variance`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from guardchain.guards.config_base import GuardConfig


class VarianceConfig(GuardConfig):
    """``variance``: activation-variance drift per site, with a repair applied only if held-out NLL improves."""

    preset_fields: ClassVar[tuple[str, ...]] = (
        "max_drift",
        "deadband",
        "max_step",
        "min_effect",
        "sided",
        "confidence",
    )

    sites: tuple[str, ...] = Field(
        default=("blocks[*].mlp.output",),
        min_length=1,
        description="Tapped sites (adapter site grammar); default: each block's MLP output before the residual add "
        "(the down projection's output).",
    )
    calibration_windows: int = Field(default=2, ge=1, description="Preview windows whose variance is measured.")
    heldout_windows: int = Field(
        default=6, ge=2, description="At most this many further preview windows for the paired predictive check."
    )
    window_tokens: int = Field(
        default=64,
        ge=8,
        description="Tokens taken from the start of each calibration window (as rmt, so they share the forward "
        "passes); held-out windows are scored whole.",
    )
    n_resamples: int = Field(default=2000, ge=100, description="Bootstrap resamples of the paired check.")
    max_drift: float | None = Field(default=None, gt=0, description="Gate on |1/2 ln(var ratio)|.")
    deadband: float | None = Field(default=None, ge=0, description="No proposal when |scale - 1| < deadband.")
    max_step: float | None = Field(default=None, gt=0, lt=1, description="Scales clamped to 1 +- max_step.")
    min_effect: float | None = Field(default=None, ge=0, description="Required NLL gain, nats/token.")
    sided: Literal["one", "two"] | None = Field(default=None, description="One- or two-sided predictive check.")
    confidence: float | None = Field(default=None, gt=0.5, lt=1, description="Confidence of the bootstrap interval.")
