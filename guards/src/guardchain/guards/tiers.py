"""The one tier table: every threshold of every guard, per tier (balanced / conservative / aggressive).

A guard's config names a ``tier`` and may override any field of that tier's preset; :func:`preset` returns the
resolved values. ``conservative`` is the stricter tier (flags smaller changes, corrects less before failing),
``aggressive`` the more permissive one, as in the kernel's policy tiers.

Every number below is justified by ``docs/guards/calibration.md`` (written by ``bench/calibrate_guards.py``): the
null-edit false-positive rates and the detection rates it reports were measured with exactly these values, and
``tests/guards/test_tiers.py`` checks that the table in that document and this module agree.

Units: log ratios are natural logarithms (``ln(x_subject / x_baseline)``); drifts are log standard-deviation
ratios; NLL effects are nats per token.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["balanced", "conservative", "aggressive"]
Family = Literal["attn", "ffn", "embed", "other"]
FAMILIES: tuple[Family, ...] = ("attn", "ffn", "embed", "other")


class _Preset(BaseModel):
    """Base of the presets. Each field is declared once, here: its type, bounds and description. The guard's config
    derives its override field from it (:func:`guardchain.guards.config_base.overrides_from`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: a per-family positive number (a null scale, a cap)
PositivePerFamily = dict[Family, Annotated[float, Field(gt=0, allow_inf_nan=False)]]
#: a per-family non-negative number (a relative band)
NonNegativePerFamily = dict[Family, Annotated[float, Field(ge=0, allow_inf_nan=False)]]


class InvariantsPreset(_Preset):
    """invariants has no statistical threshold: a violation is a violation in every tier."""

    probe_tokens: int = Field(
        ge=2, le=4096, description="Tokens of the fixed probe batch whose log-probabilities must be finite."
    )


class SpectralPreset(_Preset):
    """Thresholds of ``spectral`` (see :mod:`guardchain.guards.spectral` for the statistic)."""

    sigma_scale: PositivePerFamily = Field(
        description="Per family, the null scale tau of ln(sigma_1 / sigma_1,base): z = log ratio / tau."
    )
    srank_scale: PositivePerFamily = Field(description="Per family, the null scale of ln(srank / srank_base).")
    kappa: PositivePerFamily = Field(description="Per family, the cap on |z| (both statistics).")
    deadband: float = Field(
        ge=0,
        allow_inf_nan=False,
        description="|log ratio| at or below which a change counts as none (numerical jitter of the estimator).",
    )
    alpha: float = Field(gt=0, lt=1, description="Benjamini-Hochberg false-discovery level across families.")
    max_caps: int = Field(ge=0, description="Violations that gate mode may correct; more fail the guard.")


class RMTPreset(_Preset):
    """Thresholds of ``rmt`` (see :mod:`guardchain.guards.rmt`)."""

    epsilon: NonNegativePerFamily = Field(
        description="Per family, the band on activation edge risk: violation if r > (1 + epsilon) r_base."
    )
    margin: float = Field(
        ge=1.0,
        allow_inf_nan=False,
        description="A weight singular value is an outlier above (1 + margin) times "
        "the MP bulk edge (>= 1: spectra are resolved down to twice the edge).",
    )
    outlier_tolerance: NonNegativePerFamily = Field(
        description="Per family, the allowed relative change of the family's outlier count."
    )
    outlier_slack: int = Field(
        ge=0, description="Allowed absolute change of a family's outlier count on top of the relative tolerance."
    )


class VariancePreset(_Preset):
    """Thresholds of ``variance`` (see :mod:`guardchain.guards.variance`)."""

    max_drift: float = Field(
        gt=0, allow_inf_nan=False, description="The gate: |1/2 ln(var_subject / var_baseline)| above it is a drift."
    )
    deadband: float = Field(
        ge=0,
        allow_inf_nan=False,
        description="No scale is proposed for a site whose ideal scale is within 1 +- deadband.",
    )
    max_step: float = Field(gt=0, lt=1, description="Proposed scales are clamped to [1 - max_step, 1 + max_step].")
    min_effect: float = Field(
        ge=0,
        allow_inf_nan=False,
        description="Repairs are applied only if they lower the held-out NLL by at least this (nats/token).",
    )
    sided: Literal["one", "two"] = Field(
        description="'one': the one-sided upper confidence bound of the mean NLL change must be below -min_effect; "
        "'two': the two-sided interval must lie below it."
    )
    confidence: float = Field(gt=0.5, lt=1, description="Confidence level of the paired bootstrap interval.")


class TierPresets(_Preset):
    """All guards' presets of one tier."""

    invariants: InvariantsPreset
    spectral: SpectralPreset
    rmt: RMTPreset
    variance: VariancePreset


def _per_family(attn: float, ffn: float, embed: float, other: float) -> dict[Family, float]:
    return {"attn": attn, "ffn": ffn, "embed": embed, "other": other}


# How each number is justified (docs/guards/calibration.md, "Rules the tier thresholds satisfy", checked by the
# bench): spectral null scales tau >= 1.4826 median |log ratio| under int8 quant_rtn (the benign reference edit) on
# both models, rounded up; kappa >= 2 x the largest |z| under int8; deadband >= 10 x the largest |log ratio| under
# sub-quantization noise; rmt epsilon and outlier tolerance >= 2 x their largest change on null, noise and int8
# edits; variance max_drift >= 2 x the largest |drift| there, and deadband above it (benign edits propose nothing).
# Within those bounds the tiers differ by strictness; detection rates per tier are in the same document.
_SIGMA_SCALE = _per_family(3e-4, 3e-4, 3e-4, 3e-4)
_SRANK_SCALE = _per_family(6e-4, 6e-4, 6e-4, 6e-4)

TIERS: dict[Tier, TierPresets] = {
    "balanced": TierPresets(
        invariants=InvariantsPreset(probe_tokens=16),
        spectral=SpectralPreset(
            sigma_scale=_SIGMA_SCALE,
            srank_scale=_SRANK_SCALE,
            kappa=_per_family(8.0, 8.0, 8.0, 8.0),
            deadband=2e-4,
            alpha=0.05,
            max_caps=5,
        ),
        rmt=RMTPreset(
            epsilon=_per_family(0.01, 0.01, 0.01, 0.01),
            margin=1.0,
            outlier_tolerance=_per_family(0.1, 0.1, 0.1, 0.1),
            outlier_slack=1,
        ),
        variance=VariancePreset(
            max_drift=0.05, deadband=0.01, max_step=0.1, min_effect=0.0, sided="one", confidence=0.95
        ),
    ),
    "conservative": TierPresets(
        invariants=InvariantsPreset(probe_tokens=16),
        spectral=SpectralPreset(
            sigma_scale=_SIGMA_SCALE,
            srank_scale=_SRANK_SCALE,
            kappa=_per_family(6.0, 6.0, 6.0, 6.0),
            deadband=2e-4,
            alpha=0.05,
            max_caps=2,
        ),
        rmt=RMTPreset(
            epsilon=_per_family(0.005, 0.005, 0.005, 0.005),
            margin=1.0,
            outlier_tolerance=_per_family(0.05, 0.05, 0.05, 0.05),
            outlier_slack=1,
        ),
        variance=VariancePreset(
            max_drift=0.03, deadband=0.01, max_step=0.05, min_effect=0.002, sided="two", confidence=0.95
        ),
    ),
    "aggressive": TierPresets(
        invariants=InvariantsPreset(probe_tokens=16),
        spectral=SpectralPreset(
            sigma_scale=_SIGMA_SCALE,
            srank_scale=_SRANK_SCALE,
            kappa=_per_family(12.0, 12.0, 12.0, 12.0),
            deadband=2e-4,
            alpha=0.05,
            max_caps=10,
        ),
        rmt=RMTPreset(
            epsilon=_per_family(0.02, 0.02, 0.02, 0.02),
            margin=1.0,
            outlier_tolerance=_per_family(0.2, 0.2, 0.2, 0.2),
            outlier_slack=2,
        ),
        variance=VariancePreset(
            max_drift=0.1, deadband=0.02, max_step=0.2, min_effect=0.0, sided="one", confidence=0.9
        ),
    ),
}

GuardName = Literal["invariants", "spectral", "rmt", "variance"]


def preset(guard: GuardName, tier: Tier, overrides: dict[str, object] | None = None) -> _Preset:
    """The preset of ``guard`` in ``tier`` with ``overrides`` (fields set explicitly in the guard's config) applied.

    A per-family override (e.g. ``kappa: {attn: 4.0}``) replaces only the families it names.
    """
    base: _Preset = getattr(TIERS[tier], guard)
    if not overrides:
        return base
    merged = base.model_dump()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return type(base).model_validate(merged)


def markdown_table() -> str:
    """The tier table as markdown (``| guard | knob | balanced | conservative | aggressive |``), as the member README
    and ``docs/guards/calibration.md`` print it; a test keeps both equal to this module."""
    tiers: tuple[Tier, ...] = ("balanced", "conservative", "aggressive")
    lines = ["| guard | knob | balanced | conservative | aggressive |", "|---|---|---|---|---|"]
    for guard in ("invariants", "spectral", "rmt", "variance"):
        dumps = {tier: getattr(TIERS[tier], guard).model_dump(mode="json") for tier in tiers}
        for knob in dumps["balanced"]:
            cells = [_cell(dumps[tier][knob]) for tier in tiers]
            lines.append(f"| {guard} | {knob} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, dict):
        if len(set(map(repr, value.values()))) == 1:
            return f"{next(iter(value.values()))} (all families)"
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
