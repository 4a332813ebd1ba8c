"""Certification policy: profiles set sample sizes, tiers set thresholds, and the tier's guard chain is required.
One table each; ``docs/policy.md`` documents them and a test keeps the two in step.

Gates (each recorded in the certificate with its threshold and measured value):

* ``primary_ratio_ci_upper`` — upper end of the BCa CI of the final-window ratio ppl_subject / ppl_baseline must be
  at most ``ratio_ci_upper_max``;
* ``preview_final_drift`` — ratio_preview / ratio_final within ``[drift_min, drift_max]``. Both ratios are paired
  (same windows for baseline and subject), so sampling noise between the two window sets largely cancels and a
  drift outside the band means the edit's effect is not stable across data; an unpaired drift
  (ppl_preview / ppl_final of one model) would mostly measure how different the window sets are;
* ``pairing`` — identical window ids for baseline and subject, equal counts, preview and final disjoint;
* ``guard:<position>:<name>`` — a guard in gate mode did not fail;
* ``metric:<position>:<label>`` — a metric gate (the ``metric_gate`` guard) held its bound;
* ``catastrophe`` — the final point ratio is at most ``catastrophe_ratio``; above it the edit is rolled back.

Which gates roll an edit back is part of the policy too (:data:`ROLLBACK_GATES` and every guard or metric gate).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["balanced", "conservative", "aggressive"]
Profile = Literal["dev", "ci", "release"]
GuardChainKind = Literal["tier", "custom", "none"]

#: The guard chain every tier requires, in order and in gate mode, named by qualified name so that a third-party
#: guard registered under the same bare name never takes their place: invariants first and last (the last one
#: sees the other guards' corrections). A preset may append metric gates after it and still be a ``tier`` chain.
TIER_GUARDS: tuple[str, ...] = (
    "guardchain-guards:invariants",
    "guardchain-guards:spectral",
    "guardchain-guards:rmt",
    "guardchain-guards:variance",
    "guardchain-guards:invariants",
)
TIER_GUARD_MODE = "gate"
#: The metric-gate guard this member registers (a ``tier`` chain may end with any number of them).
METRIC_GATE = "guardchain-certify:metric_gate"

#: Primary-metric gates whose failure rolls an edit back (a failed guard or metric gate always does).
ROLLBACK_GATES = frozenset({"catastrophe", "subject_finite"})


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


class GuardStep(BaseModel):
    """One guard of a certification's chain: its name as given (bare or ``distribution:name``) and its config.

    The certificate records each step's *full* validated config (defaults included), which is what the guard's
    verifier re-derives the guard's status from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    guard: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


class Policy(BaseModel):
    """The tier and profile a certificate was made under, with their resolved values, and its guard chain.

    :ivar guard_chain: ``tier`` — exactly :data:`TIER_GUARDS` in gate mode with the tier's defaults, optionally
        followed by metric gates; ``custom`` — a preset's own chain (recorded, and said so by ``verify``);
        ``none`` — certified without guards (``--no-guards``).
    :ivar guards: the chain that ran, in order, each with its full config.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Tier
    profile: Profile
    thresholds: TierThresholds
    sizes: ProfileSettings
    guard_chain: GuardChainKind
    guards: tuple[GuardStep, ...] = ()
    primary_metric: bool = Field(
        default=True,
        description="False when the preset asked for no primary metric (metric: null — a model with no "
        "language-model head, e.g. an encoder gated on accuracy): then there are no primary gates, only the "
        "guards' and the metric gates'.",
    )

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the resolved policy."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_policy(
    tier: Tier = "balanced",
    profile: Profile = "dev",
    guard_chain: GuardChainKind = "tier",
    guards: tuple[GuardStep, ...] = (),
    primary_metric: bool = True,
) -> Policy:
    """The policy for ``tier`` and ``profile`` from the tables above, with the guard chain that runs."""
    return Policy(
        tier=tier,
        profile=profile,
        thresholds=TIERS[tier],
        sizes=PROFILES[profile],
        guard_chain=guard_chain,
        guards=guards,
        primary_metric=primary_metric,
    )


def tier_guard_steps(tier: Tier) -> tuple[GuardStep, ...]:
    """The steps of the tier's required chain before their configs are validated (``mode`` and ``tier`` set)."""
    return tuple(GuardStep(guard=name, config={"mode": TIER_GUARD_MODE, "tier": tier}) for name in TIER_GUARDS)


def is_metric_gate(name: str) -> bool:
    """Whether a guard name (bare or qualified) is the metric gate of this member."""
    return name in {METRIC_GATE, METRIC_GATE.rpartition(":")[2]}
