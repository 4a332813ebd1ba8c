"""Chain-health checks on synthetic traces and on real runs; the MALA acceptance against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc import LlcSampler, LlcWarning, estimate_llc
from guardchain.metrics.llc.diagnostics import default_explode_threshold, diagnose

from .conftest import DUMMY_DATA, Potential, linreg_problem, potential_loss

DRAWS = np.arange(10, 110)


def run_diagnose(losses, *, moved=None, acceptance=None, d=4, nbeta=10.0, init_loss=1.0):
    chains = losses.shape[0]
    accept = np.empty((chains, 0)) if acceptance is None else acceptance
    return diagnose(
        losses,
        DRAWS,
        init_loss=init_loss,
        nbeta=nbeta,
        d=d,
        moved=np.ones(chains, dtype=bool) if moved is None else moved,
        mala_steps=np.arange(accept.shape[1]),
        acceptance=accept,
        distance=np.ones_like(accept),
        explode_threshold=None,
        min_acceptance=0.5,
        emit=False,
    )


def stationary(chains=4, seed=0, level=1.2):
    rng = np.random.default_rng(seed)
    return level + 0.05 * rng.standard_normal((chains, 110))


def test_a_healthy_trace_raises_no_flag():
    result = run_diagnose(stationary())
    assert result.warnings == () and result.healthy == (0, 1, 2, 3)
    means = stationary()[:, 10:].mean(axis=1)
    assert [c.llc for c in result.chains] == pytest.approx(list(10 * (means - 1.0)))


def test_a_nan_chain_is_flagged_and_dropped_with_its_first_bad_step():
    losses = stationary()
    losses[2, 57:] = np.nan
    result = run_diagnose(losses)
    assert result.checks == ("diverged",)
    assert result.chains[2].diverged and result.chains[2].first_nonfinite_step == 57
    assert math.isnan(result.chains[2].llc) and result.healthy == (0, 1, 3)


def test_an_exploding_chain_is_flagged_and_dropped():
    losses = stationary()
    threshold = default_explode_threshold(4)  # 2 + 10·√2
    losses[1, 100:] = 1.0 + 1.5 * threshold / 10.0  # nβ·(tail − L0) = 1.5 × threshold
    result = run_diagnose(losses)
    assert "exploding" in result.checks and result.chains[1].exploding and result.healthy == (0, 2, 3)


def test_stuck_chains_trend_negative_and_low_acceptance():
    constant = np.full((4, 110), 1.3)
    assert run_diagnose(constant).checks == ("stuck",)
    assert run_diagnose(stationary(), moved=np.array([True, False, True, True])).chains[1].stuck
    rising = stationary() + np.linspace(0, 0.5, 110)[None, :]
    assert run_diagnose(rising).checks == ("trend",)
    assert run_diagnose(stationary(level=0.8)).checks == ("negative",)
    acceptance = np.full((4, 5), 0.95)
    acceptance[3] = 0.2
    low = run_diagnose(stationary(), acceptance=acceptance)
    assert low.checks == ("low_acceptance",) and low.chains[3].mala_acceptance == pytest.approx(0.2)


def test_a_clean_linear_regression_run_warns_about_nothing():
    model, x, y = linreg_problem()
    result = estimate_llc(model, (x, y), loss="mse", batch_size=256, chains=8, draws=600, burnin=200, epsilon=1e-4)
    assert result.diagnostics.checks == ()
    assert result.diagnostics.mala_steps.tolist() == list(range(99, 800, 100))
    accept = result.diagnostics.summary()["mala_acceptance_mean"]
    assert 0.9 < accept <= 1.0


def test_all_chains_diverging_is_an_error_and_each_is_warned():
    model, x, y = linreg_problem()
    with pytest.warns(LlcWarning, match="diverged"), pytest.raises(GuardchainError) as caught:
        estimate_llc(model, (x, y), loss="mse", batch_size=1024, chains=2, draws=200, burnin=0, epsilon=0.5)
    assert caught.value.code == MetricErrorCode.LLC_DIVERGED


def test_updates_lost_to_rounding_are_reported_as_stuck():
    model, x, y = linreg_problem(dtype=torch.float32)
    with pytest.warns(LlcWarning, match="stuck"):
        result = estimate_llc(
            model.to(torch.bfloat16), (x, y), loss="mse", batch_size=1024, chains=2, draws=20, burnin=0,
            epsilon=1e-12, gamma=0.0, dtype="bfloat16", mala_every=0,
        )  # fmt: skip
    assert result.diagnostics.summary()["stuck_chains"] == [0, 1]


def test_an_untrained_model_gives_a_negative_warning():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    with pytest.warns(LlcWarning, match="negative"):
        result = estimate_llc(model, (x, y), loss="mse", batch_size=64, chains=4, draws=200, burnin=0, epsilon=1e-3)
    assert "negative" in result.diagnostics.checks


def test_mala_acceptance_matches_a_hand_computation():
    """One MALA-checked step on K(w) = w⁴ in 1-D, recomputed from its definition with the chain's noise."""
    nbeta, gamma, eps = 50.0, 2.0, 0.01
    sampler = LlcSampler(
        Potential((2,)), DUMMY_DATA, loss=potential_loss, chains=3, draws=1, burnin=0, epsilon=eps, gamma=gamma,
        nbeta=nbeta, dtype="float64", mala_every=1, seed=4,
    )  # fmt: skip
    result = sampler.estimate()
    from guardchain.metrics.llc.noise import ChainNoise

    xi = ChainNoise(4, [0, 1, 2], 1, torch.device("cpu"), torch.float64).next()[:, 0].numpy()

    def u(w):
        return nbeta * w**4 + gamma / 2 * w**2

    def grad_u(w):
        return 4 * nbeta * w**3 + gamma * w

    w = 0.0
    w_new = w - eps / 2 * grad_u(w) + math.sqrt(eps) * xi
    forward = w_new - w + eps / 2 * grad_u(w)
    backward = w - w_new + eps / 2 * grad_u(w_new)
    log_alpha = u(w) - u(w_new) + (forward**2 - backward**2) / (2 * eps)
    expected = np.minimum(1.0, np.exp(log_alpha))
    np.testing.assert_allclose(result.diagnostics.acceptance[:, 0], expected, rtol=1e-10)
    np.testing.assert_allclose(result.diagnostics.distance[:, 0], np.abs(w_new), rtol=1e-12)


def test_mala_acceptance_falls_as_the_step_grows():
    model, x, y = linreg_problem()
    sampler = LlcSampler(model, (x, y), loss="mse", batch_size=1024, chains=4, draws=200, burnin=0, mala_every=10)
    small = sampler.estimate(epsilon=1e-5, emit_warnings=False).diagnostics.summary()["mala_acceptance_mean"]
    large = sampler.estimate(epsilon=1e-2, emit_warnings=False).diagnostics.summary()["mala_acceptance_mean"]
    assert small > 0.99 and large < small - 0.3
