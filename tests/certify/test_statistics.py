"""Paired comparison: identities, degenerate cases, and CI coverage on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardchain.certify.statistics import BootstrapSettings, paired_comparison
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.results import MetricResult


def result(values, weights=None, ids=None, metric="ppl"):
    n = len(values)
    return MetricResult(
        metric=metric,
        value=0.0,
        unit_ids=tuple(ids or (f"w{i}" for i in range(n))),
        per_unit=tuple(float(v) for v in values),
        unit_weights=tuple(float(w) for w in (weights if weights is not None else [1.0] * n)),
    )


def test_a_model_against_itself_is_exactly_one_with_a_point_interval():
    rng = np.random.default_rng(0)
    nll = rng.normal(3.0, 0.3, size=40)
    base = result(nll, weights=rng.integers(50, 128, size=40))
    cmp = paired_comparison(base, base)
    assert cmp.estimate == 1.0
    assert (cmp.ci_low, cmp.ci_high) == (1.0, 1.0)
    assert all(d == 0.0 for d in cmp.deltas)


def test_the_ratio_is_exp_of_the_token_weighted_mean_delta_and_the_perplexity_ratio():
    rng = np.random.default_rng(1)
    weights = rng.integers(10, 128, size=30).astype(float)
    base_nll = rng.normal(3.0, 0.4, size=30)
    subj_nll = base_nll + rng.normal(0.05, 0.02, size=30)
    cmp = paired_comparison(result(base_nll, weights), result(subj_nll, weights))
    mean_delta = np.sum(weights * (subj_nll - base_nll)) / np.sum(weights)
    assert cmp.estimate == pytest.approx(math.exp(mean_delta), rel=1e-12)
    assert math.exp(cmp.mean_delta) == pytest.approx(cmp.estimate, rel=1e-12)
    ppl_base = math.exp(np.sum(weights * base_nll) / np.sum(weights))
    ppl_subj = math.exp(np.sum(weights * subj_nll) / np.sum(weights))
    assert cmp.estimate == pytest.approx(ppl_subj / ppl_base, rel=1e-12)
    assert cmp.ci_low < cmp.estimate < cmp.ci_high


def test_same_seed_same_interval_other_seed_other_interval():
    rng = np.random.default_rng(2)
    base = result(rng.normal(3, 0.3, 25))
    subj = result(np.asarray(base.per_unit) + rng.normal(0.1, 0.05, 25))
    a = paired_comparison(base, subj, settings=BootstrapSettings(seed=5))
    b = paired_comparison(base, subj, settings=BootstrapSettings(seed=5))
    c = paired_comparison(base, subj, settings=BootstrapSettings(seed=6))
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_difference_kind_for_accuracy():
    base = result([1, 1, 0, 1, 0, 1], metric="accuracy")
    subj = result([1, 0, 0, 1, 0, 0], metric="accuracy")
    cmp = paired_comparison(base, subj, kind="difference")
    assert cmp.estimate == pytest.approx(-2 / 6)


def test_one_unit_has_no_interval():
    cmp = paired_comparison(result([3.0]), result([3.5]))
    assert cmp.ci_low is None and cmp.ci_high is None
    assert cmp.estimate == pytest.approx(math.exp(0.5))


@pytest.mark.parametrize(
    ("subject", "needle"),
    [
        (result([1.0, 2.0], ids=["w0", "x"]), "only one of the two"),
        (result([1.0, 2.0], ids=["w1", "w0"]), "different order"),
        (result([1.0, 2.0], weights=[3.0, 4.0]), "weights"),
        (result([1.0, 2.0], metric="other"), "metrics differ"),
    ],
)
def test_mismatched_units_are_refused(subject, needle):
    with pytest.raises(GuardchainError) as caught:
        paired_comparison(result([1.0, 2.0]), subject)
    assert caught.value.code == ErrorCode.PAIRING_MISMATCH
    assert needle in caught.value.problems[0].message


def test_bca_coverage_is_within_two_points_of_nominal():
    """1,000 simulated paired datasets of 40 windows with known mean Δ; the 95 % interval must cover it in
    93-97 % of them. Skewed (gamma) deltas and unequal weights, as real per-window NLL differences are."""
    rng = np.random.default_rng(12345)
    true_mean = 0.02
    covered = 0
    sims = 1000
    for i in range(sims):
        weights = rng.integers(64, 129, size=40).astype(float)
        noise = rng.gamma(2.0, 0.01, size=40) - 0.02  # mean 0, right-skewed
        deltas = true_mean + noise
        base = rng.normal(3.0, 0.3, size=40)
        cmp = paired_comparison(
            result(base, weights), result(base + deltas, weights), settings=BootstrapSettings(n_resamples=999, seed=i)
        )
        covered += cmp.ci_low <= math.exp(true_mean) <= cmp.ci_high
    coverage = covered / sims
    assert 0.93 <= coverage <= 0.97, coverage


finite = st.floats(min_value=0.5, max_value=8.0, allow_nan=False)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    data=st.lists(st.tuples(finite, finite, st.integers(min_value=1, max_value=256)), min_size=2, max_size=30),
)
def test_property_ratio_is_exp_of_mean_delta_and_self_pairing_is_exact(data):
    base = result([b for b, _, _ in data], [w for _, _, w in data])
    subj = result([s for _, s, _ in data], [w for _, _, w in data])
    cmp = paired_comparison(base, subj, settings=BootstrapSettings(n_resamples=200))
    assert cmp.estimate == pytest.approx(math.exp(cmp.mean_delta), rel=1e-12)
    assert cmp.ci_low <= cmp.ci_high
    same = paired_comparison(base, base, settings=BootstrapSettings(n_resamples=200))
    assert (same.estimate, same.ci_low, same.ci_high) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("seed", range(12))
def test_the_interval_is_scipys_paired_bca_to_rounding(seed):
    """The numpy BCa draws the same resamples and applies the same formulas as
    ``scipy.stats.bootstrap(paired=True, method="BCa")``: equal to 1e-12 relative on random weighted data."""
    stats = pytest.importorskip("scipy.stats")
    from guardchain.certify.statistics import bootstrap_interval

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 250))
    deltas = rng.gamma(2.0, 0.01, n) - 0.02 if seed % 2 else rng.normal(0.0, 1.0, n)
    weights = rng.integers(1, 129, n).astype(float)
    settings = BootstrapSettings(
        seed=seed, n_resamples=int(rng.integers(100, 3000)), confidence=float(rng.choice([0.9, 0.95, 0.99]))
    )

    def weighted_mean(d, w, axis=-1):
        return np.sum(d * w, axis=axis) / np.sum(w, axis=axis)

    reference = stats.bootstrap(
        (deltas, weights),
        weighted_mean,
        paired=True,
        vectorized=True,
        n_resamples=settings.n_resamples,
        confidence_level=settings.confidence,
        method="BCa",
        rng=np.random.default_rng(settings.seed),
    ).confidence_interval
    low, high = bootstrap_interval(deltas, weights, settings)
    assert low == pytest.approx(float(reference.low), rel=1e-12, abs=1e-15)
    assert high == pytest.approx(float(reference.high), rel=1e-12, abs=1e-15)
