"""Certification policy: profiles set sample sizes, tiers set thresholds. One table each; ``docs/policy.md``
documents them and a test keeps the two in step.

Gates (each recorded in the certificate with its threshold and measured value):

* ``primary_ratio_ci_upper`` — upper end of the BCa CI of the final-window ratio ppl_subject / ppl_baseline must be
  at most ``ratio_ci_upper_max``;
* ``preview_final_drift`` — ratio_preview / ratio_final within ``[drift_min, drift_max]``. Both ratios are paired
  (same windows for baseline and subject), so sampling noise between the two window sets largely cancels and a
  drift outside the band means the edit's effect is not stable across data; an unpaired drift
  (ppl_preview / ppl_final of one model) would mostly measure how different the window sets are;
* ``pairing`` — identical window ids for baseline and subject, equal counts, preview and final disjoint;
* ``guard:<name>`` — a guard in gate mode did not fail;
* ``catastrophe`` — the final point ratio is at most ``catastrophe_ratio``; above it the edit is rolled back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["balanced", "conservative", "aggressive"]
Profile = Literal["dev", "ci", "release"]


class TierThresholds(BaseModel):
    """Thresholds of one tier (ratios are ppl_subject / ppl_baseline, unitless)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio_ci_upper_max: float = Field(gt=1.0)
    drift_min: float = Field(gt=0.0, lt=1.0)
    drift_max: float = Field(gt=1.0)
    catastrophe_ratio: float = Field(gt=1.0)


class ProfileSettings(BaseModel):
    """Sample sizes of one profile.

    :ivar seq_len: tokens per evaluation window.
    :ivar n_preview: windows in the preview set.
    :ivar n_final: windows in the final set (the decisive one).
    :ivar n_resamples: bootstrap resamples for each CI.
    :ivar target_half_width: the CI half-width on log(ratio) this profile aims for; the certificate reports the
        achieved half-width and the final-window count that would reach the target.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: int = Field(ge=8)
    n_preview: int = Field(ge=2)
    n_final: int = Field(ge=2)
    n_resamples: int = Field(ge=100)
    target_half_width: float = Field(gt=0)


TIERS: dict[Tier, TierThresholds] = {
    # InvarLock 0.3.7's ratio limits (1.10 / 1.05 / 1.20) and drift band 0.95-1.05 (balanced), as gates on the
    # CI upper bound; catastrophe thresholds are ours (a 2x perplexity blow-up is never a subtle regression).
    "balanced": TierThresholds(ratio_ci_upper_max=1.10, drift_min=0.95, drift_max=1.05, catastrophe_ratio=2.0),
    "conservative": TierThresholds(ratio_ci_upper_max=1.05, drift_min=0.97, drift_max=1.03, catastrophe_ratio=1.5),
    "aggressive": TierThresholds(ratio_ci_upper_max=1.20, drift_min=0.90, drift_max=1.10, catastrophe_ratio=3.0),
}

PROFILES: dict[Profile, ProfileSettings] = {
    "dev": ProfileSettings(seq_len=128, n_preview=8, n_final=16, n_resamples=1000, target_half_width=0.05),
    "ci": ProfileSettings(seq_len=128, n_preview=16, n_final=48, n_resamples=2000, target_half_width=0.02),
    "release": ProfileSettings(seq_len=256, n_preview=32, n_final=128, n_resamples=5000, target_half_width=0.01),
}


class Policy(BaseModel):
    """The tier and profile a certificate was made under, with their resolved values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Tier
    profile: Profile
    thresholds: TierThresholds
    sizes: ProfileSettings

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the resolved policy."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_policy(tier: Tier = "balanced", profile: Profile = "dev") -> Policy:
    """The policy for ``tier`` and ``profile`` from the tables above."""
    return Policy(tier=tier, profile=profile, thresholds=TIERS[tier], sizes=PROFILES[profile])
