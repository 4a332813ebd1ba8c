"""Configuration of ``spectral`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from pydantic import Field

from guardchain.guards.config_base import GuardConfig, overrides_from
from guardchain.guards.tiers import Family, SpectralPreset


@overrides_from("spectral", SpectralPreset)
class SpectralConfig(GuardConfig):
    """``spectral``: per weight matrix, top singular value and stable rank against the matrix's own baseline."""

    families: tuple[Family, ...] = Field(
        default=("attn", "ffn", "other"),
        min_length=1,
        description="Weight families measured (attn, ffn, embed, other). 'embed' is opt-in: a token embedding is "
        "the largest matrix (49152 x 576 in SmolLM2, ~1 s of Lanczos) and edits rarely touch it; invariants still "
        "checks it bit for bit.",
    )
    exact_max_dim: int = Field(
        default=128,
        ge=1,
        description="Matrices whose smaller side is at most this get an exact SVD; larger ones Lanczos.",
    )
