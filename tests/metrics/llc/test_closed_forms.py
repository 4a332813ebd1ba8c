"""λ̂ against closed forms. Tolerances are fixed here, before any run, with the reason for each.

Ground truth (anchor note shared/anchors/llc.md, section 2; citations there):

- regular model: λ = d/2; linear regression with bias, d = inputs + 1;
- normal crossing K = Π w_i^{2k_i}: λ = min_i 1/(2k_i); a disjoint sum adds: K = w1² + w2⁴ → 1/2 + 1/4;
- reduced-rank regression (Aoyagi & Watanabe 2005): :func:`rrr_lambda`;
- deep linear network (Aoyagi 2024, Thm 1): :func:`dln_lambda`.

Two kinds of reference value. *Exact*: the expectation the sampler targets at the chosen (ε, γ, nβ): for a
quadratic loss the AR(1) formula of section 3 (discretisation and localization included), for a potential the
posterior expectation ``E[nβ·K]`` under ``exp(−nβK − γ‖w‖²/2)`` by quadrature (ε → 0). *Asymptotic*: λ itself.

Tolerances (test: passes iff ...; why):

- linreg, ε = 1e-3, full batch: ``|λ̂ − E_exact| < 4·sem``. E_exact = 5.40 includes the +8 % discretisation
  bias, so the exact update rule is tested; 4·sem: λ̂ is a mean over 16 independent chains.
- linreg, ε = 1e-4: ``|λ̂ − E_exact| < 4·sem`` and ``|E_exact − d/2| < 0.02·d/2``: the same, at a step size
  where the bias is under 1 %, so λ̂ ≈ d/2.
- K = w⁴ (λ = 1/4) and K = w1² + w2⁴ (λ = 3/4): ``|λ̂ − E| < 4·sem + 0.05·E`` and ``|E − λ| < 0.02·λ``. E by
  quadrature (ε → 0), times the exact AR(1) factor for the quadratic term; 5 % covers ULA's O(ε) bias of the
  quartic term at ε·curvature ≈ 0.02 (0.1 in the tails); at nβ = 1000, γ = 1 the posterior expectation is within
  2 % of λ.
- K = w1²·w2⁴ (λ = 1/4), heavy: ``|λ̂ − E| < 4·sem + 0.10·E`` and ``|E − λ| < 0.03``. w1 is flat where w2 = 0
  (localization only): its slow mixing and ε·curvature ≈ 0.04 get 10 %; E = 0.225 at nβ/γ³ = 1000.
- RRR (5,4,5) → 8 and (4,3,8) → 6, heavy: ``|λ̂ − λ| < 0.4·λ``: devinterp's ``test_accuracy_rrr`` tolerance at
  the same nβ = 144.8, γ = 1; at finite nβ the singular directions are far from asymptotic.
- DLN 4-3-3-4, r = 1 → 5.5, heavy: ``|λ̂ − λ| < 0.2·λ``: the anchor measured 5.01 (2000 draws) and 5.30 (4000
  draws) at these ε, γ, nβ, within 9 %; 0.2 leaves a factor 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guardchain.metrics.llc import default_nbeta, estimate_llc

from .conftest import (
    DLN_RANK,
    DLN_WIDTHS,
    DUMMY_DATA,
    Potential,
    dln_lambda,
    dln_problem,
    linear_stack,
    linreg_problem,
    monomial_expectation,
    potential_loss,
    product_expectation,
    quadratic_expectation,
    rrr_lambda,
)

# ----------------------------------------------------------------------------------------------------------------
# Ground-truth formulas (anchor note, section 2.3 and 2.4), checked on the worked values first.
# ----------------------------------------------------------------------------------------------------------------


def test_rrr_formula_reproduces_the_worked_values():
    assert rrr_lambda(5, 3, 5, 0) == 6.5  # case 1, odd
    assert rrr_lambda(5, 4, 5, 0) == 8  # case 1, even
    assert rrr_lambda(4, 3, 8, 0) == 6  # case 2
    assert rrr_lambda(8, 3, 4, 0) == 6  # case 3
    assert rrr_lambda(3, 8, 4, 0) == 6  # case 4
    assert [rrr_lambda(5, 5, 5, r) for r in (1, 2, 3)] == [10.5, 11.5, 12.0]


def test_dln_formula_reproduces_rrr_for_two_layers_and_the_worked_example():
    for n_in in range(1, 9):
        for hidden in range(1, 9):
            for n_out in range(1, 9):
                for r in range(0, min(n_in, hidden, n_out) + 1):
                    assert dln_lambda([n_in, hidden, n_out], r)[0] == pytest.approx(
                        rrr_lambda(n_in, hidden, n_out, r)
                    ), (n_in, hidden, n_out, r)
    assert dln_lambda([4, 3, 3, 4], 1) == (pytest.approx(5.5), 2)


# ----------------------------------------------------------------------------------------------------------------
# Fast: linear regression and one-dimensional / separable normal crossings.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-3, 1e-4])
def test_linear_regression_matches_the_exact_expectation(eps):
    model, x, y = linreg_problem()
    n, d = x.shape[0], x.shape[1] + 1
    nbeta, gamma, burnin, draws = default_nbeta(n), 1.0, 200, 2000
    result = estimate_llc(
        model, (x, y), loss="mse", batch_size=n, chains=16, draws=draws, burnin=burnin, epsilon=eps, gamma=gamma,
        dtype="float64", mala_every=0,
    )  # fmt: skip
    design = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    eigs = torch.linalg.eigvalsh(2 * design.T @ design / n).numpy()
    expected = quadratic_expectation(eigs, nbeta, gamma, eps, np.arange(burnin, burnin + draws))
    assert result.nbeta == pytest.approx(n / math.log(n))
    assert abs(result.llc_mean - expected) < 4 * result.llc_sem, (result.llc_mean, expected, result.llc_sem)
    if eps == 1e-4:
        assert abs(expected - d / 2) < 0.02 * d / 2
    else:
        assert expected > 1.05 * d / 2  # the discretisation bias is real, and reproduced


def _potential_estimate(powers, kind, *, nbeta, gamma, eps, chains, draws, burnin):
    return estimate_llc(
        Potential(powers, kind),
        DUMMY_DATA,
        loss=potential_loss,
        nbeta=nbeta,
        gamma=gamma,
        epsilon=eps,
        chains=chains,
        draws=draws,
        burnin=burnin,
        dtype="float64",
        mala_every=0,
    )


def test_normal_crossing_monomial_w4_has_lambda_one_quarter():
    nbeta, gamma = 1000.0, 1.0
    expected = monomial_expectation(nbeta, gamma, 2)
    result = _potential_estimate(
        (2,), "product", nbeta=nbeta, gamma=gamma, eps=1e-4, chains=128, draws=3000, burnin=500
    )
    assert abs(expected - 0.25) < 0.02 * 0.25
    assert abs(result.llc_mean - expected) < 4 * result.llc_sem + 0.05 * expected, (result.llc_mean, expected)


def test_disjoint_sum_adds_the_coefficients():
    nbeta, gamma, eps, burnin, draws = 1000.0, 1.0, 1e-4, 500, 3000
    quartic = monomial_expectation(nbeta, gamma, 2)
    quadratic = quadratic_expectation(np.array([2.0]), nbeta, gamma, eps, np.arange(burnin, burnin + draws))
    expected = quadratic + quartic
    result = _potential_estimate(
        (1, 2), "sum", nbeta=nbeta, gamma=gamma, eps=eps, chains=128, draws=draws, burnin=burnin
    )
    assert abs(monomial_expectation(nbeta, gamma, 1) + quartic - 0.75) < 0.02 * 0.75
    assert abs(result.llc_mean - expected) < 4 * result.llc_sem + 0.05 * expected, (result.llc_mean, expected)


# ----------------------------------------------------------------------------------------------------------------
# Heavy: a two-factor normal crossing, reduced-rank regression, a deep linear network.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.heavy
def test_normal_crossing_product_w1sq_w2quartic_has_lambda_one_quarter():
    nbeta, gamma = 1000.0, 1.0
    expected = product_expectation(nbeta, gamma, 1, 2)
    result = _potential_estimate(
        (1, 2), "product", nbeta=nbeta, gamma=gamma, eps=1e-4, chains=32, draws=40_000, burnin=20_000
    )
    assert abs(expected - 0.25) < 0.03
    assert abs(result.llc_mean - expected) < 4 * result.llc_sem + 0.10 * expected, (result.llc_mean, expected)


@pytest.mark.heavy
@pytest.mark.parametrize(("m", "h", "n_out", "truth"), [(5, 4, 5, 8.0), (4, 3, 8, 6.0)])
def test_reduced_rank_regression_matches_aoyagi_watanabe(m, h, n_out, truth):
    assert rrr_lambda(m, h, n_out, 0) == truth
    # λ depends on the data only through the (positive-definite) input covariance, so 200 rows suffice; nβ is
    # devinterp's 1000/ln 1000 for its n = 1000.
    n, nbeta = 200, 1000 / math.log(1000)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, m, generator=generator)
    y = torch.zeros(n, n_out)  # true rank 0: w* = (A, B) = 0 is a minimiser, L0 = 0
    model = linear_stack([m, h, n_out])
    result = estimate_llc(
        model, (x, y), loss="mse", batch_size=n, nbeta=nbeta, chains=8, draws=20_000, burnin=5000, epsilon=1e-4,
        gamma=1.0, mala_every=0,
    )  # fmt: skip
    assert abs(result.llc_mean - truth) < 0.4 * truth, result.llc_mean


@pytest.mark.heavy
def test_deep_linear_network_matches_aoyagi():
    truth, _ = dln_lambda(DLN_WIDTHS, DLN_RANK)
    model, x, y, nbeta = dln_problem()
    result = estimate_llc(
        model, (x, y), loss="mse", batch_size=x.shape[0], nbeta=nbeta, chains=8, draws=10_000, burnin=2000,
        epsilon=3e-4, gamma=1.0, mala_every=0,
    )  # fmt: skip
    assert abs(result.llc_mean - truth) < 0.2 * truth, result.llc_mean
