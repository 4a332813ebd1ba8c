"""Configuration of ``invariants`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from guardchain.guards.config_base import GuardConfig


class InvariantsConfig(GuardConfig):
    """``invariants``: structural and numerical facts that must survive an edit."""

    preset_fields: ClassVar[tuple[str, ...]] = ("probe_tokens",)

    probe_tokens: int | None = Field(
        default=None, ge=2, le=4096, description="Tokens of the fixed probe batch (None: the tier's, 16)."
    )
    check_logits: bool = Field(
        default=True, description="Score the probe batch and require finite log-probabilities (one small forward)."
    )
