"""Configuration model of ``quant_rtn`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ScopeName = Literal["attn", "ffn", "all"]


class QuantRTNConfig(BaseModel):
    """``quant_rtn``: symmetric round-to-nearest fake quantization of weight matrices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: int = Field(
        default=8, ge=2, le=8, description="Bit width b; integer levels -q_max..q_max with q_max = 2^(b-1) - 1."
    )
    group_size: int | None = Field(
        default=None,
        ge=1,
        description="Consecutive input columns sharing one scale within each output channel; None = one scale per "
        "output channel. Must divide the input dimension of every targeted matrix (GC-EDIT-GROUP-SIZE).",
    )
    clamp_percentile: float | None = Field(
        default=None,
        gt=50,
        le=100,
        description="If set, the range a of each channel/group is this percentile of |w| (linear interpolation) "
        "instead of max|w|; values beyond +-a are clamped. None = max|w| (no clamping).",
    )
    scope: ScopeName | tuple[str, ...] = Field(
        default="all",
        description="'attn', 'ffn', 'all' (attn + ffn), or a list of parameter names / module-path prefixes, each "
        "of which must match at least one weight matrix (GC-EDIT-SCOPE-UNKNOWN).",
    )
    include_embeddings: bool = Field(
        default=False, description="Also quantize embedding matrices (family 'embed'; tied heads change with them)."
    )
    include_lm_head: bool = Field(
        default=False,
        description="Also quantize the output head (lm_head); when tied to the token embedding, the shared matrix.",
    )

    @field_validator("scope")
    @classmethod
    def _scope_entries(cls, value: ScopeName | tuple[str, ...]) -> ScopeName | tuple[str, ...]:
        if isinstance(value, tuple):
            if not value:
                raise ValueError("an explicit scope list needs at least one entry")
            if any(not entry.strip() for entry in value):
                raise ValueError("scope entries must be non-empty parameter names or module paths")
        return value
