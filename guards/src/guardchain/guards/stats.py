"""Small statistical procedures: two-sided normal p-values, Simes' combination, Benjamini-Hochberg selection, and a
paired bootstrap bound on a mean difference."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
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
    :ivar method: ``"BCa"``, ``"percentile"`` (when the bias correction is infinite) or ``"exact"`` (all
        differences equal).
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

    The bias-corrected and accelerated (BCa) bootstrap (Efron 1987; Efron & Tibshirani 1993, ch. 14), resampling
    units: ``n_resamples`` means of resamples drawn with ``numpy.random.default_rng(seed)``; bias correction
    ``z0 = Phi^-1(#{mean* < mean} / B)``; acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)`` from the jackknife means
    (``d_i = mean(jack) - jack_i``); the end at level ``q`` is the ``Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q)))``
    quantile (linear interpolation) of the resampled means. ``sided="one"`` gives the one-sided upper bound at
    ``confidence`` (``q = confidence``, ``low = -inf``); ``"two"`` the interval ``q = (1 -+ confidence) / 2``.
    When ``z0`` is infinite (every resampled mean on one side) the plain percentile interval is used
    (``method="percentile"``); all differences equal give the exact value (``"exact"``).

    numpy only, so that ``guardchain verify`` recomputes the same bound from the recorded differences.

    :raises ValueError: with fewer than two units.
    """
    values = np.asarray(deltas, dtype=np.float64)
    n = int(values.size)
    if n < 2:
        raise ValueError("a paired interval needs at least two units")
    mean = float(values.mean())
    if float(values.max() - values.min()) == 0.0:
        mean = float(values[0])
        return PairedBound(mean, -math.inf if sided == "one" else mean, mean, n, "exact")
    means = _resampled_means(values, n_resamples, seed)
    levels = (confidence,) if sided == "one" else ((1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0)
    below = float(np.count_nonzero(means < mean)) / means.size
    method = "BCa"
    if 0.0 < below < 1.0:
        z0 = _NORMAL.inv_cdf(below)
        jack = (values.sum() - values) / (n - 1)
        d = jack.mean() - jack
        spread = float(np.sum(d * d))
        accel = float(np.sum(d * d * d)) / (6.0 * spread**1.5) if spread > 0.0 else 0.0
        adjusted = []
        for level in levels:
            z = z0 + _NORMAL.inv_cdf(level)
            adjusted.append(_NORMAL.cdf(z0 + z / (1.0 - accel * z)))
    else:
        method = "percentile"
        adjusted = list(levels)
    ends = [float(np.quantile(means, q)) for q in adjusted]
    low = -math.inf if sided == "one" else ends[0]
    return PairedBound(mean, low, ends[-1], n, method)


#: resampled index rows drawn per block (bounds the memory of ``n_resamples x n`` indices)
_BLOCK = 1 << 20
_NORMAL = NormalDist()


def _resampled_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples of ``values`` with replacement, drawn in blocks of at most ``_BLOCK``
    indices (the block size depends only on the number of units, so the draw is reproducible)."""
    rng = np.random.default_rng(seed)
    n = values.size
    rows = max(1, _BLOCK // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out
