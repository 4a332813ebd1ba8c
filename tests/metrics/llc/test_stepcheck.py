"""The step-size check: the half-step noise, the paired difference against its exact expectation on a quadratic loss,
the verdicts, and (heavy) the extrapolated estimate on the deep linear network against its closed-form λ.

Tolerances, fixed before the runs:

- noise: the two half-step normals sum to √2·ξ to float rounding (1e-12); over 4096 steps × 8 dimensions their
  means are within 5/√N of 0, their variances within 5·√(2/N) of 1 and their correlation within 5/√N of 0.
- linreg (d = 10, λ = 5, full batch), ε = 1e-3 and 1e-4: the measured difference within 4 standard errors of the
  exact ``E[λ̂(ε)] − E[λ̂(ε/2)]`` (anchor note, section 3, with the fine chains' own step counts), and likewise the
  extrapolated estimate; at ε = 1e-3 the bias (+8 %) is above the 5 % bound and flagged, at ε = 1e-4 (+0.8 %) not.
- DLN 4-3-3-4 (λ = 5.5), heavy, ε = 1e-3: λ̂ itself is far outside the 20 % tolerance of the closed-form test
  (measured +62 %), the check flags it, and the extrapolated estimate is within that 20 % tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guardchain.metrics.llc import default_nbeta, estimate_llc
from guardchain.metrics.llc.noise import ChainNoise, RefinedNoise
from guardchain.metrics.llc.stepcheck import assess, fine_schedule

from .conftest import DLN_RANK, DLN_WIDTHS, dln_lambda, dln_problem, linreg_problem, quadratic_expectation


def test_the_half_steps_share_the_full_steps_brownian_path():
    d, chains, steps = 8, [0, 5], 4096
    cpu = torch.device("cpu")
    coarse = ChainNoise(3, chains, d, cpu, torch.float64).take(steps).clone()  # [C, steps, d]
    refined = RefinedNoise(3, chains, d, cpu, torch.float64)
    parts = [refined.next()[:, None]]
    for k in (1, 2, 7, 64, 3):  # odd and even lengths: a pair split across calls
        parts.append(refined.take(k))
    taken = sum(p.shape[1] for p in parts)
    parts.append(refined.take(2 * steps - taken))
    halves = torch.cat(parts, dim=1)
    torch.testing.assert_close((halves[:, 0::2] + halves[:, 1::2]) / math.sqrt(2), coarse, rtol=0, atol=1e-12)
    again = RefinedNoise(3, chains, d, cpu, torch.float64).take(2 * steps)
    torch.testing.assert_close(again, halves, rtol=0, atol=0)  # chunking does not change the stream
    values = halves.reshape(-1).numpy()
    n = values.size
    assert abs(values.mean()) < 5 / math.sqrt(n) and abs(values.var() - 1) < 5 * math.sqrt(2 / n)
    first, second = halves[:, 0::2].reshape(-1).numpy(), halves[:, 1::2].reshape(-1).numpy()
    assert abs(np.corrcoef(first, second)[0, 1]) < 5 / math.sqrt(first.size)


def test_the_fine_schedule_repeats_batches_and_covers_the_same_time():
    order, draws = np.array([0, 1, 2, 0, 1]), np.array([3, 4])
    fine_order, fine_draws = fine_schedule(order, draws)
    assert fine_order.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1]
    assert fine_draws.tolist() == [6, 7, 8, 9]


@pytest.mark.parametrize(("eps", "verdict"), [(1e-3, "bias"), (1e-4, "ok")])
def test_the_paired_difference_matches_the_exact_expectation(eps, verdict):
    model, x, y = linreg_problem()
    n = x.shape[0]
    nbeta, gamma, burnin, draws = default_nbeta(n), 1.0, 200, 1000
    result = estimate_llc(
        model, (x, y), loss="mse", batch_size=n, chains=8, draws=draws, burnin=burnin, epsilon=eps, gamma=gamma,
        dtype="float64", mala_every=0, step_check_chains=8,
    )  # fmt: skip
    check = result.diagnostics.step_check
    assert check is not None and check.chains == tuple(range(8))
    design = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    eigs = torch.linalg.eigvalsh(2 * design.T @ design / n).numpy()
    steps = np.arange(burnin, burnin + draws)
    _, fine_draws = fine_schedule(np.zeros(burnin + draws, dtype=np.int64), steps)
    coarse = quadratic_expectation(eigs, nbeta, gamma, eps, steps)
    fine = quadratic_expectation(eigs, nbeta, gamma, eps / 2, fine_draws)
    assert abs(check.difference - (coarse - fine)) < 4 * check.difference_se, (check.difference, coarse - fine)
    assert abs(check.extrapolated - (2 * fine - coarse)) < 4 * check.extrapolated_se
    assert check.difference_se < result.llc_sem / 5  # the coupling: one Brownian path for both step sizes
    assert check.verdict == verdict and (("step_size" in result.diagnostics.checks) == (verdict == "bias"))
    summary = result.summary()["diagnostics"]["step_check"]
    assert summary["epsilon_half"] == eps / 2 and summary["verdict"] == verdict


def _assess(coarse, fine, *, llc_mean, llc_sem=0.1, healthy=(0, 1, 2, 3)):
    coarse, fine = np.asarray(coarse, dtype=float), np.asarray(fine, dtype=float)
    fine_losses = np.repeat(fine[:, None], 4, axis=1)  # nβ = 1, L0 = 0: λ̂_fine = the trace's value
    return assess(
        list(range(len(fine))), epsilon=1e-3, llc_per_chain=coarse, healthy=healthy, llc_mean=llc_mean,
        llc_sem=llc_sem, fine_losses=fine_losses, fine_draws=np.arange(4), init_loss=0.0, nbeta=1.0, tolerance=0.05,
    )  # fmt: skip


def test_the_verdicts():
    coarse = np.array([10.0, 10.4, 9.8, 10.2])
    ok = _assess(coarse, coarse - [0.1, 0.12, 0.09, 0.11], llc_mean=10.1)
    assert ok.verdict == "ok" and ok.difference == pytest.approx(0.105)
    assert ok.extrapolated == pytest.approx(10.1 - 2 * 0.105)
    biased = _assess(coarse, coarse - [0.5, 0.52, 0.49, 0.51], llc_mean=10.1)
    assert biased.verdict == "bias" and biased.relative_bias == pytest.approx(2 * 0.505 / 10.1)
    assert "above the 5% bound" in biased.message
    noisy = _assess(coarse, coarse - [0.0, 1.0, -1.0, 0.4], llc_mean=10.1)
    assert noisy.verdict == "inconclusive" and "cannot resolve" in noisy.message
    one_pair = _assess(coarse, [np.nan, 10.0, 9.0, 8.0], llc_mean=10.1, healthy=(0, 1))
    assert one_pair.verdict == "inconclusive" and math.isnan(one_pair.llc_fine[0])


@pytest.mark.heavy
def test_the_extrapolated_estimate_recovers_the_deep_linear_networks_lambda():
    truth, _ = dln_lambda(DLN_WIDTHS, DLN_RANK)
    model, x, y, nbeta = dln_problem()
    result = estimate_llc(
        model, (x, y), loss="mse", batch_size=x.shape[0], nbeta=nbeta, chains=8, draws=4000, burnin=2000,
        epsilon=1e-3, gamma=1.0, mala_every=0, step_check_chains=8, compile=True,
    )  # fmt: skip
    check = result.diagnostics.step_check
    assert check is not None and check.verdict == "bias" and "step_size" in result.diagnostics.checks
    assert abs(result.llc_mean - truth) > 0.2 * truth, result.llc_mean  # the raw estimate misses the closed form
    assert abs(check.extrapolated - truth) < 0.2 * truth, (check.extrapolated, check.extrapolated_se)
