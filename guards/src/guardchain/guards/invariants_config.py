"""Configuration of ``invariants`` (pydantic only: referenced by string from the registration module)."""

from __future__ import annotations

from pydantic import Field

from guardchain.guards.config_base import GuardConfig, overrides_from
from guardchain.guards.tiers import InvariantsPreset


@overrides_from("invariants", InvariantsPreset)
class InvariantsConfig(GuardConfig):
    """``invariants``: structural and numerical facts that must survive an edit."""

    check_logits: bool = Field(
        default=True, description="Score the probe batch and require finite log-probabilities (one small forward)."
    )
