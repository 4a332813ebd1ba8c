"""Configuration models of the metrics (pydantic only: imported by the registration module)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PplConfig(_Config):
    """``ppl``: token-weighted perplexity over token windows."""

    split: Literal["preview", "final", "all"] = Field(
        default="final", description="Which windows to score: 'preview', 'final', or 'all' (both)."
    )
    batch_size: int = Field(
        default=16,
        ge=1,
        le=4096,
        description="Windows per adapter call (the adapter's forward_batch_size may split them further). 16 measured "
        "~20% faster per window than 8 on a small Llama on 2 CPU cores.",
    )


class AccuracyConfig(_Config):
    """``accuracy``: fraction of labelled texts whose arg-max class is the label."""

    batch_size: int = Field(default=8, ge=1, le=4096, description="Texts per forward pass.")
    max_length: int = Field(
        default=128,
        ge=1,
        le=1_000_000,
        description="Content tokens kept per text (longer texts are truncated; the adapter adds special tokens).",
    )
