"""Configuration of ``spectral`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from guardchain.guards.config_base import GuardConfig
from guardchain.guards.tiers import Family


class SpectralConfig(GuardConfig):
    """``spectral``: per weight matrix, top singular value and stable rank against the matrix's own baseline."""

    preset_fields: ClassVar[tuple[str, ...]] = ("sigma_scale", "srank_scale", "kappa", "deadband", "alpha", "max_caps")

    families: tuple[Family, ...] = Field(
        default=("attn", "ffn", "other"),
        min_length=1,
        description="Weight families measured (attn, ffn, embed, other). 'embed' is opt-in: a token embedding is "
        "the largest matrix (49152 x 576 in SmolLM2, ~1 s of Lanczos) and edits rarely touch it; invariants still "
        "checks it bit for bit.",
    )
    sigma_scale: dict[Family, float] | None = Field(
        default=None, description="Per family, null scale tau of ln(sigma_1 ratio); z = log ratio / tau."
    )
    srank_scale: dict[Family, float] | None = Field(
        default=None, description="Per family, null scale of ln(stable-rank ratio)."
    )
    kappa: dict[Family, float] | None = Field(default=None, description="Per family, cap on |z|.")
    deadband: float | None = Field(default=None, ge=0, description="|log ratio| treated as no change.")
    alpha: float | None = Field(default=None, gt=0, lt=1, description="Benjamini-Hochberg level across families.")
    max_caps: int | None = Field(default=None, ge=0, description="Violations gate mode may correct before failing.")
    exact_max_dim: int = Field(
        default=128,
        ge=1,
        description="Matrices whose smaller side is at most this get an exact SVD; larger ones Lanczos.",
    )
