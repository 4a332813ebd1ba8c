"""Marchenko-Pastur formulas: the bulk edge of a weight matrix, the BBP spike threshold, and the outlier count.

Pure floats (no torch): :mod:`guardchain.guards.linalg` uses them to decide how far down a spectrum to resolve, and
:mod:`guardchain.guards.rmt_decide` to count outliers from a report's recorded singular values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

#: Every spectrum resolves all singular values above this multiple of the MP edge, so that outlier counts with any
#: allowed margin (``1 + margin >= OUTLIER_FLOOR``) can be read from it.
OUTLIER_FLOOR = 2.0


def mp_edge(m: int, n: int, fro2: float) -> float:
    """Largest singular value of an ``m x n`` matrix of i.i.d. noise with the same total energy as ``W``.

    Marchenko & Pastur (1967); the edge of the singular values of an ``m x n`` matrix with i.i.d. entries of
    variance ``s^2`` is ``s (sqrt(m) + sqrt(n))`` as ``m, n -> inf`` (Geman 1980; Bai & Yin 1993). The scale is
    fitted by the second moment: the MP law's mean squared singular value per entry is ``s^2``, so
    ``s^2 = ||W||_F^2 / (m n)``.
    """
    if m <= 0 or n <= 0:
        raise ValueError("a matrix has positive dimensions")
    return math.sqrt(max(fro2, 0.0) / (m * n)) * (math.sqrt(m) + math.sqrt(n))


def bbp_threshold(m: int, n: int, s: float) -> float:
    """Strength ``theta`` above which a rank-one spike ``theta u v^T`` added to ``m x n`` noise of entry scale ``s``
    separates from the bulk: ``theta_c = s (m n)^(1/4)`` (Baik, Ben Arous & Peche 2005; Benaych-Georges & Nadakuditi
    2012, for the rectangular case). Above it the top singular value converges to
    ``sqrt((theta^2 + s^2 m)(theta^2 + s^2 n)) / theta``, which exceeds the edge ``s (sqrt(m) + sqrt(n))``.
    """
    return float(s * (m * n) ** 0.25)


def outlier_count(values: Iterable[float], edge: float, margin: float) -> int:
    """Singular values strictly above ``(1 + margin) * edge`` (the MP outliers at that margin).

    ``values`` must hold every singular value above ``OUTLIER_FLOOR * edge``; so ``1 + margin`` may not be below
    ``OUTLIER_FLOOR``.

    :raises ValueError: when the margin is below the resolved floor.
    """
    if 1.0 + margin < OUTLIER_FLOOR - 1e-12:
        raise ValueError(f"margin {margin} is below the resolved floor {OUTLIER_FLOOR - 1}")
    limit = (1.0 + margin) * edge
    return sum(1 for value in values if value > limit)
