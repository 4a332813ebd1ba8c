"""Configuration models of the ``geometry`` metric (pydantic only: imported by the registration module).

:class:`GeometrySettings` holds what the Python API (:func:`guardchain.geometry.analyze`) and the chain step share;
:class:`GeometryConfig` adds what only the chain step needs (which windows, batching, drift, artifacts).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal["spectrum", "sample", "novelty"]
FAMILIES: tuple[Family, ...] = ("spectrum", "sample", "novelty")
Diagnostic = Literal["normalization_ablation"]
SpectrumStat = Literal[
    "d_pr",
    "d_pr_norm",
    "d_entropy",
    "d_entropy_norm",
    "stable_rank",
    "top1_share",
    "top10_share",
    "top32_share",
    "k90",
    "k95",
    "log_spectrum_slope_10_200",
    "loglog_spectrum_slope_10_200",
]
SampleStat = Literal[
    "sv_effective_rank",
    "sv_stable_rank",
    "sv_participation_ratio",
    "cos_sim_mean",
    "cos_sim_std",
    "ve_4",
    "ve_8",
    "ve_16",
    "ve_32",
]
SAMPLE_STATS: frozenset[str] = frozenset(get_args(SampleStat))


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeometrySettings(_Config):
    """What is collected and computed (shared by the chain step and the Python API)."""

    sites: list[str] = Field(
        default_factory=lambda: ["blocks[*].input"],
        min_length=1,
        description="Where to collect: site strings the adapter resolves (blocks[*].input = the residual stream "
        "entering every block, blocks[*].output, blocks[2].mlp.output, a module path). Several at once.",
    )
    families: list[Family] = Field(
        default_factory=lambda: list(FAMILIES),
        min_length=1,
        description="Metric families: spectrum (covariance eigenvalues), sample (SVD of the token sample), "
        "novelty (between consecutive sites).",
    )
    diagnostics: list[Diagnostic] = Field(
        default_factory=list,
        description="Extra diagnostics: normalization_ablation (spectra of the sample under four normalizations).",
    )
    router: bool | Literal["auto"] = Field(
        default="auto",
        description="MoE router statistics: auto = when the model has routers, true = required (a model without "
        "router logits is an error), false = never.",
    )
    router_modules: list[str] = Field(
        default_factory=list,
        description="Router module path patterns (fnmatch, e.g. model.layers.*.mlp.gate); empty = the modules the "
        "model declares for its router_logits output.",
    )
    sample_size: int = Field(
        default=512,
        ge=0,
        le=1_000_000,
        description="Tokens in the seeded reservoir sample used by the sample and novelty families and the "
        "diagnostics (0 = none); more than the tokens seen is an error.",
    )
    seed: int | None = Field(
        default=None, ge=0, description="Seed of the sample; null = the chain's seed (Python API: 0)."
    )
    novelty_k: int = Field(default=32, ge=1, le=65_536, description="Top eigenvectors compared by subspace novelty.")
    skip_positions: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Leave the first k unmasked tokens of every sequence out of the statistics (they still run): "
        "attention-sink / first-token activations can be orders of magnitude larger than the rest and dominate "
        "the covariance (SmolLM2-135M: d_pr 1.0 with them from block 12 on, ~50 without).",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Stop after this many unmasked tokens (whole batches: the last one may overshoot); null = all.",
    )
    per_unit: SpectrumStat | SampleStat = Field(
        default="d_pr",
        description="The per-site statistic put in the result's per-unit values (the pairing units are the sites).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GeometrySettings:
        needs_sample = {"sample", "novelty"} & set(self.families) or self.diagnostics
        if needs_sample and self.sample_size < 2:
            raise ValueError("the sample and novelty families and the diagnostics need sample_size >= 2")
        family = "sample" if self.per_unit in SAMPLE_STATS else "spectrum"
        if family not in self.families:
            raise ValueError(f"per_unit {self.per_unit!r} is a {family} statistic, but families omit {family!r}")
        return self


class GeometryConfig(GeometrySettings):
    """``geometry`` as a chain step: collection on the chain's token windows, artifacts and drift."""

    split: Literal["preview", "final", "all"] = Field(
        default="all", description="Which windows to run: 'preview', 'final' or 'all'."
    )
    batch_size: int = Field(default=8, ge=1, le=4096, description="Windows per forward pass.")
    max_windows: int | None = Field(default=None, ge=1, description="Only the first k windows of the split.")
    baseline: str = Field(
        default="auto",
        min_length=1,
        description="Drift against an earlier geometry step of the chain: 'auto' = the latest one on the same "
        "sites, windows and sample; 'none' = no drift; otherwise that step's id.",
    )
    save_samples: bool = Field(
        default=True,
        description="Write the token sample and top eigenvectors (samples.npz), which a later step's drift "
        "(CKA, subspace novelty) needs.",
    )
    plot: bool = Field(default=True, description="Write spectra.png and d_pr.png (needs matplotlib).")
