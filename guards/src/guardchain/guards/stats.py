"""Small statistical procedures: two-sided normal p-values, Simes' combination, Benjamini-Hochberg selection, and a
paired bootstrap bound on a mean difference."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


def two_sided_p(z: float) -> float:
    """``P(|Z| >= |z|)`` for a standard normal ``Z``: ``erfc(|z| / sqrt(2))``; 0 for non-finite ``z`` (fail closed)."""
    if not math.isfinite(z):
        return 0.0
    return math.erfc(abs(z) / math.sqrt(2.0))


def simes(pvalues: Sequence[float]) -> float:
    """Simes' (1986) combination of ``m`` p-values into one for the intersection null: ``min_k m p_(k) / k``.

    Valid under independence and positive regression dependence (Sarkar 1998); it is the global test that
    Benjamini-Hochberg extends, so family p-values from it fit BH across families. Empty input gives 1.
    """
    if not pvalues:
        return 1.0
    ordered = sorted(pvalues)
    m = len(ordered)
    return min(1.0, min(m * p / (k + 1) for k, p in enumerate(ordered)))


def benjamini_hochberg(pvalues: Mapping[str, float], alpha: float) -> set[str]:
    """The keys selected by the Benjamini & Hochberg (1995) step-up procedure at false-discovery level ``alpha``.

    With the ``m`` p-values sorted ascending, ``k`` is the largest rank with ``p_(k) <= alpha k / m``; the ``k``
    smallest are selected (none when no rank qualifies).
    """
    if not pvalues:
        return set()
    ordered = sorted(pvalues.items(), key=lambda item: (item[1], item[0]))
    m = len(ordered)
    last = 0
    for rank, (_, p) in enumerate(ordered, start=1):
        if p <= alpha * rank / m:
            last = rank
    return {key for key, _ in ordered[:last]}


@dataclass(frozen=True)
class PairedBound:
    """A paired comparison of per-unit differences.

    :ivar mean: mean difference.
    :ivar low: lower end of the interval (``-inf`` for a one-sided upper bound).
    :ivar high: upper end of the interval.
    :ivar n: number of paired units.
    :ivar method: ``"BCa"``, ``"percentile"`` (when BCa is degenerate) or ``"exact"`` (all differences equal).
    """

    mean: float
    low: float
    high: float
    n: int
    method: str


def paired_interval(
    deltas: Sequence[float],
    *,
    confidence: float,
    sided: Literal["one", "two"],
    n_resamples: int,
    seed: int,
) -> PairedBound:
    """Bootstrap interval of the mean of paired differences (subject-with-repair minus subject, per window).

    ``scipy.stats.bootstrap`` with the BCa method (Efron 1987), resampling units; ``sided="one"`` returns the
    one-sided upper bound at ``confidence`` (the upper end of the two-sided interval at ``2 confidence - 1``) and
    ``low = -inf``. Falls back to the percentile method when BCa is undefined (e.g. a degenerate jackknife).

    :raises ValueError: with fewer than two units.
    """
    from scipy.stats import bootstrap

    values = np.asarray(deltas, dtype=np.float64)
    if values.size < 2:
        raise ValueError("a paired interval needs at least two units")
    mean = float(values.mean())
    if float(values.max() - values.min()) == 0.0:
        mean = float(values[0])
        return PairedBound(mean, -math.inf if sided == "one" else mean, mean, int(values.size), "exact")
    level = 2 * confidence - 1 if sided == "one" else confidence
    rng = np.random.default_rng(seed)
    low = high = math.nan
    method = "BCa"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bootstrap(
                (values,), np.mean, confidence_level=level, n_resamples=n_resamples, method=method, random_state=rng
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
    return PairedBound(mean, -math.inf if sided == "one" else low, high, int(values.size), method)
