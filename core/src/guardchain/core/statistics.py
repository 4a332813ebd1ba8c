"""Paired comparison of a baseline and a subject on the same evaluation units, with a BCa bootstrap CI.

For log-scale metrics (per-unit mean negative log-likelihood, nats/token) the comparison is a *ratio*:

    Δ_i   = NLL_subject(i) − NLL_baseline(i)                 (per window, nats/token)
    mean Δ = Σ_i w_i Δ_i / Σ_i w_i                           (w_i = tokens scored in window i)
    ratio  = exp(mean Δ)

With token weights this ratio equals ppl_subject / ppl_baseline exactly, since each perplexity is
exp(Σ w_i NLL_i / Σ w_i). For bounded per-unit scores (accuracy: 1 correct, 0 wrong) the comparison is a
*difference*, mean Δ itself.

The confidence interval resamples windows (pairs kept together) and uses the bias-corrected and accelerated (BCa)
bootstrap of Efron (1987), "Better bootstrap confidence intervals", JASA 82(397), as implemented by
``scipy.stats.bootstrap`` (``method="BCa"``, ``paired=True``); the interval for the ratio is exp of the interval
for mean Δ (the exponential is monotone, so BCa's transformation-respecting property carries over).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.results import MetricResult

PairingKind = Literal["ratio", "difference"]


class BootstrapSettings(BaseModel):
    """Everything needed to recompute a bootstrap CI from the stored per-unit arrays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["BCa"] = "BCa"
    confidence: float = Field(default=0.95, gt=0, lt=1)
    n_resamples: int = Field(default=2000, ge=100)
    seed: int = Field(default=0, ge=0)


class PairedComparison(BaseModel):
    """Subject versus baseline on identical units.

    :ivar kind: ``ratio`` (``estimate = exp(mean Δ)``) or ``difference`` (``estimate = mean Δ``).
    :ivar estimate: the ratio or difference.
    :ivar ci_low: lower end of the BCa interval for ``estimate`` (``None`` with fewer than two units).
    :ivar ci_high: upper end.
    :ivar mean_delta: weighted mean of the per-unit differences.
    :ivar deltas: per-unit differences, subject minus baseline, aligned with ``unit_ids``.
    :ivar weights: per-unit weights (tokens scored), aligned with ``unit_ids``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PairingKind
    metric: str
    estimate: float
    ci_low: float | None
    ci_high: float | None
    mean_delta: float
    unit_ids: tuple[str, ...]
    deltas: tuple[float, ...]
    weights: tuple[float, ...]
    n_units: int
    total_weight: float
    bootstrap: BootstrapSettings


def check_pairing(baseline: MetricResult, subject: MetricResult) -> None:
    """Refuse to pair results that were not computed on the same units.

    :raises GuardchainError: ``GC-PAIRING-MISMATCH`` naming what differs (metric, ids, order, weights).
    """
    problems = []
    if baseline.metric != subject.metric:
        problems.append(f"metrics differ ({baseline.metric!r} vs {subject.metric!r})")
    if baseline.unit_ids != subject.unit_ids:
        missing = set(baseline.unit_ids) ^ set(subject.unit_ids)
        if missing:
            problems.append(f"{len(missing)} unit id(s) are in only one of the two results")
        else:
            problems.append("the unit ids are in a different order")
    elif baseline.unit_weights and subject.unit_weights and baseline.unit_weights != subject.unit_weights:
        problems.append("the unit weights (tokens scored) differ")
    if not baseline.unit_ids:
        problems.append("there are no units to pair")
    if problems:
        raise GuardchainError.single(ErrorCode.PAIRING_MISMATCH, "cannot pair these results: " + "; ".join(problems))


def paired_comparison(
    baseline: MetricResult,
    subject: MetricResult,
    *,
    kind: PairingKind = "ratio",
    settings: BootstrapSettings | None = None,
) -> PairedComparison:
    """Compare ``subject`` with ``baseline`` unit by unit (see the module docstring for the formulas).

    :param baseline: per-unit values of the reference model.
    :param subject: per-unit values of the edited model, on the same units in the same order.
    :param kind: ``ratio`` for log-scale metrics (NLL), ``difference`` for bounded scores (accuracy).
    :param settings: bootstrap method, confidence, resamples and seed (defaults: BCa, 0.95, 2000, 0).
    :raises GuardchainError: ``GC-PAIRING-MISMATCH`` when the units differ.
    """
    import numpy as np

    check_pairing(baseline, subject)
    settings = settings or BootstrapSettings()
    base = np.asarray(baseline.per_unit, dtype=np.float64)
    subj = np.asarray(subject.per_unit, dtype=np.float64)
    weights = np.asarray(baseline.unit_weights or [1.0] * len(base), dtype=np.float64)
    deltas = subj - base
    mean_delta = float(np.sum(weights * deltas) / np.sum(weights))
    low, high = bootstrap_interval(deltas, weights, settings)
    transform = math.exp if kind == "ratio" else (lambda x: x)
    return PairedComparison(
        kind=kind,
        metric=baseline.metric,
        estimate=transform(mean_delta),
        ci_low=None if low is None else transform(low),
        ci_high=None if high is None else transform(high),
        mean_delta=mean_delta,
        unit_ids=baseline.unit_ids,
        deltas=tuple(float(d) for d in deltas),
        weights=tuple(float(w) for w in weights),
        n_units=len(deltas),
        total_weight=float(np.sum(weights)),
        bootstrap=settings,
    )


def bootstrap_interval(
    deltas: object, weights: object, settings: BootstrapSettings
) -> tuple[float | None, float | None]:
    """BCa interval of the weighted mean of ``deltas`` (resampling units with their weights).

    Degenerate cases are answered exactly instead of by resampling: fewer than two units give ``(None, None)``;
    deltas equal to rounding give a zero-width interval at their mean (every resample has the same mean).
    """
    import numpy as np
    from scipy import stats

    d = np.asarray(deltas, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if d.size < 2:
        return None, None
    if float(np.ptp(d)) <= 1e-12 * (1.0 + float(np.max(np.abs(d)))):
        # Every resample has (to rounding) the same mean, and BCa's acceleration would divide 0 by 0.
        value = float(np.sum(d * w) / np.sum(w))
        return value, value

    def weighted_mean(dd: np.ndarray, ww: np.ndarray, axis: int = -1) -> np.ndarray:
        out: np.ndarray = np.sum(dd * ww, axis=axis) / np.sum(ww, axis=axis)
        return out

    result = stats.bootstrap(
        (d, w),
        weighted_mean,
        paired=True,
        vectorized=True,
        n_resamples=settings.n_resamples,
        confidence_level=settings.confidence,
        method="BCa",
        rng=np.random.default_rng(settings.seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
