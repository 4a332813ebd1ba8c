"""What every guard's config shares: the ``mode`` and the ``tier`` (pydantic only, no torch)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from guardchain.guards.tiers import Tier

Mode = Literal["monitor", "gate"]


class GuardConfig(BaseModel):
    """Base of the four guards' configs.

    Fields named like a field of the guard's tier preset (:mod:`guardchain.guards.tiers`) are overrides: ``None``
    (the default) takes the tier's value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(
        default="gate",
        description="'gate': may correct the subject and may fail the chain; 'monitor': reports only (warn, never "
        "fail, never corrects).",
    )
    tier: Tier = Field(default="balanced", description="Which row of the tier table supplies the thresholds.")

    #: names of the fields that override the tier preset (set by each subclass)
    preset_fields: ClassVar[tuple[str, ...]] = ()

    def overrides(self) -> dict[str, Any]:
        """The preset fields set explicitly (not ``None``)."""
        return {name: getattr(self, name) for name in self.preset_fields if getattr(self, name) is not None}
