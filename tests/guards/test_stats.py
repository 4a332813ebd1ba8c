"""Known answers for the p-value machinery: normal tails, Simes, Benjamini-Hochberg, paired bootstrap bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from guardchain.guards.stats import benjamini_hochberg, paired_interval, simes, two_sided_p


def test_two_sided_normal_tail() -> None:
    assert two_sided_p(0.0) == 1.0
    assert two_sided_p(1.959963985) == pytest.approx(0.05, rel=1e-6)
    assert two_sided_p(-1.959963985) == pytest.approx(0.05, rel=1e-6)
    assert two_sided_p(math.inf) == 0.0 and two_sided_p(math.nan) == 0.0


def test_simes() -> None:
    assert simes([]) == 1.0
    assert simes([0.04]) == pytest.approx(0.04)
    # m = 4: min(4*0.01/1, 4*0.02/2, 4*0.03/3, 4*0.9/4) = 0.04
    assert simes([0.9, 0.03, 0.01, 0.02]) == pytest.approx(0.04)
    assert simes([0.5, 0.6]) == pytest.approx(min(1.0, 2 * 0.5, 0.6))


def test_benjamini_hochberg_step_up() -> None:
    # Benjamini & Hochberg (1995)-style example: the largest k with p_(k) <= alpha k / m decides, even when a
    # smaller rank fails its own bound (step-up, not step-down).
    p = {"a": 0.010, "b": 0.013, "c": 0.014, "d": 0.190, "e": 0.350, "f": 0.500, "g": 0.630, "h": 0.670}
    assert benjamini_hochberg(p, 0.05) == {"a", "b", "c"}
    assert benjamini_hochberg({"x": 0.03, "y": 0.04}, 0.05) == {"x", "y"}  # 0.04 <= 0.05 * 2 / 2
    assert benjamini_hochberg({"x": 0.04, "y": 0.9}, 0.05) == set()  # 0.04 > 0.05 / 2
    assert benjamini_hochberg({}, 0.05) == set()


def test_benjamini_hochberg_controls_the_fdr_on_null_pvalues() -> None:
    rng = np.random.default_rng(0)
    rejections = sum(
        bool(benjamini_hochberg({str(i): float(p) for i, p in enumerate(rng.uniform(size=4))}, 0.05))
        for _ in range(4000)
    )
    assert rejections / 4000 < 0.06  # all nulls: FDR = FWER = P(any rejection) <= alpha


def test_paired_interval_one_and_two_sided() -> None:
    rng = np.random.default_rng(1)
    deltas = list(-0.05 + 0.01 * rng.standard_normal(8))
    one = paired_interval(deltas, confidence=0.95, sided="one", n_resamples=2000, seed=0)
    two = paired_interval(deltas, confidence=0.95, sided="two", n_resamples=2000, seed=0)
    assert one.mean == pytest.approx(float(np.mean(deltas)))
    assert one.low == -math.inf and one.high < 0
    assert two.low < two.mean < two.high < 0
    assert one.high < two.high, "the one-sided 95% bound is the two-sided 90% interval's upper end"
    again = paired_interval(deltas, confidence=0.95, sided="two", n_resamples=2000, seed=0)
    assert again == two


def test_paired_interval_degenerate_and_too_small() -> None:
    exact = paired_interval([0.1, 0.1, 0.1], confidence=0.95, sided="two", n_resamples=500, seed=0)
    assert (exact.low, exact.high, exact.method) == (0.1, 0.1, "exact")
    with pytest.raises(ValueError, match="two"):
        paired_interval([0.1], confidence=0.95, sided="one", n_resamples=500, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bca_bound_agrees_with_scipy_within_monte_carlo_error(seed: int) -> None:
    """The numpy BCa (so that verify needs no scipy) against ``scipy.stats.bootstrap``'s BCa on the same data: the
    ends agree to within the resampling noise of 40,000 resamples."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(10 + seed)
    deltas = rng.standard_normal(6) * 0.02 - 0.01
    for sided, level in (("one", 0.9), ("two", 0.95)):
        ours = paired_interval(list(deltas), confidence=0.95, sided=sided, n_resamples=40_000, seed=seed)
        ref = bootstrap(
            (deltas,), np.mean, confidence_level=level, n_resamples=40_000, method="BCa", random_state=seed
        ).confidence_interval
        spread = float(np.std(deltas)) / math.sqrt(len(deltas))
        assert ours.high == pytest.approx(float(ref.high), abs=0.05 * spread), sided
        if sided == "two":
            assert ours.low == pytest.approx(float(ref.low), abs=0.05 * spread)
