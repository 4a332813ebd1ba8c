"""Configuration models of the FA diagnostics (pydantic only: imported by the registration module)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GrowthStatistic = Literal["per_block", "from_first"]
LossName = Literal["auto", "causal_lm", "masked_lm", "classification"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The reference implementation's names (faeval ``report.py``, ``DiagnosticThresholds``) of the four thresholds.
REFERENCE_NAMES: dict[str, str] = {
    "grad_norm_floor": "g_norm_floor",
    "residual_explosion_ratio": "h_norm_explosion_ratio",
    "drift_ceiling": "stability_drift_ceiling",
    "frozen_margin_pp": "frozen_acc_margin_pp",
}


class DiagnosticThresholds(_Config):
    """The four thresholds of the protocol; every comparison is strict, so a value exactly at a threshold never
    fires (faeval, Y. Hao: ``protocol/report.py``; calibration figures in ``docs/diagnostics.md``)."""

    grad_norm_floor: float = Field(
        default=1e-7, gt=0, description="(b) fires when the last layer's BP gradient norm ‖g_L‖_F is below this."
    )
    residual_explosion_ratio: float = Field(
        default=50.0, gt=0, description="(a) fires when the residual growth statistic is above this (a ratio)."
    )
    drift_ceiling: float = Field(
        default=0.30,
        ge=-1.0,
        le=1.0,
        description="(c) fires when the largest cross-batch gradient-direction cosine over layers >= 1 is above this.",
    )
    frozen_margin_pp: float = Field(
        default=2.0,
        description="(d) fires when headline accuracy minus the frozen-blocks accuracy, in percentage points, is "
        "below this.",
    )


class FaDiagnosticsConfig(_Config):
    """``fa_diagnostics``: the four-check FA protocol on the chain's model."""

    thresholds: DiagnosticThresholds = Field(default_factory=DiagnosticThresholds)
    growth_statistic: GrowthStatistic = Field(
        default="per_block",
        description="Which statistic of (a) fires: 'per_block' = max_l R_{l+1}/R_l, 'from_first' = max_l R_l/R_0 "
        "(the reference's first version). Both are always reported.",
    )
    split: Literal["preview", "final", "all"] = Field(default="all", description="Which windows or examples to draw.")
    n_batches: int = Field(
        default=4, ge=2, le=4096, description="Disjoint batches drawn (>= 2; the drift check averages over every pair)."
    )
    batch_size: int = Field(default=4, ge=1, le=4096, description="Windows (or texts) per batch.")
    loss: LossName = Field(
        default="auto",
        description="'causal_lm' (mean next-token cross-entropy), 'masked_lm' (mean cross-entropy at seeded masked "
        "positions), 'classification' (mean cross-entropy of the class logits); 'auto' reads the adapter's "
        "handle.provenance objective/head, else uses 'classification' for LabeledTexts and 'causal_lm' otherwise.",
    )
    mask_fraction: float = Field(
        default=0.15, gt=0.0, le=1.0, description="masked_lm: fraction of content tokens replaced by [MASK]."
    )
    max_length: int = Field(default=128, ge=2, le=1_000_000, description="classification: tokens kept per text.")
    headline_acc: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="(d) the caller's headline accuracy (a fraction); null = the accuracy measured on the "
        "diagnostic batches.",
    )
    frozen_baseline_acc: float | None = Field(
        default=None, ge=0.0, le=1.0, description="(d) the frozen-random-blocks accuracy (a fraction); null = skip (d)."
    )
    method_name: str = Field(default="", description="The method named in the report; empty = the model reference.")
    notes: str = Field(default="", description="Free text printed in the report.")
    seed: int | None = Field(default=None, ge=0, description="Seed of the batch draw and masking; null = the chain's.")
    plot: bool = Field(default=True, description="Write the per-layer plot (needs matplotlib).")
