"""Chain-health checks on synthetic traces and on real runs; the MALA acceptance against a hand computation; the
escape bound against pure localization; the trend check's power on short runs of a singular model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc import LlcSampler, LlcWarning, estimate_llc
from guardchain.metrics.llc.diagnostics import (
    chi2_quantile_ratio,
    default_explode_threshold,
    diagnose,
    escape_bound,
    localization_bias,
    localization_spread,
)

from .conftest import (
    DLN_RANK,
    DLN_WIDTHS,
    DUMMY_DATA,
    Potential,
    dln_lambda,
    dln_problem,
    linreg_problem,
    potential_loss,
)

DRAWS = np.arange(10, 110)


def run_diagnose(losses, *, moved=None, acceptance=None, d=4, nbeta=10.0, init_loss=1.0, **kwargs):
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
        **kwargs,
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


# ----------------------------------------------------------------------------------------------------------------
# Non-finite estimates, chains that leave the basin, the localization step, the trend check's power.
# ----------------------------------------------------------------------------------------------------------------


def test_a_non_finite_chain_estimate_is_diverged_even_with_finite_losses():
    losses = stationary()
    result = run_diagnose(losses, nbeta=1e308, init_loss=-1.0)  # nβ·(L − L0) overflows to inf
    assert all(c.diverged and c.first_nonfinite_step is None and math.isnan(c.llc) for c in result.chains)
    assert result.healthy == () and "diverged" in result.checks


class ConstantPerBatch(torch.nn.Module):
    """A loss that does not depend on the parameter (the mean of the batch), so the chains cannot diverge."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        return x.mean() + 0.0 * self.w.sum()


def test_an_estimate_that_overflows_is_never_returned():
    """Each chain's λ̂ is finite (1.5e308) but their mean overflows: before, status ok with λ̂ = inf."""
    data = [(torch.full((1, 1), v, dtype=torch.float64), None) for v in (0.0, 2.0, 1.0)]  # L0 = 0, draws 0, 2, 1
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(
            ConstantPerBatch(), data, loss=potential_loss, init_loss_batches=1, nbeta=1.5e308, chains=2, draws=3,
            burnin=0, explode_threshold=1.7e308, mala_every=0, dtype="float64",
        )  # fmt: skip
    assert caught.value.code == MetricErrorCode.LLC_DIVERGED
    assert "not finite" in caught.value.problems[0].message


def flat_loss(outputs, targets):
    """A loss that ignores the parameters: only the localization acts on the chains."""
    return 0.0 * outputs.sum()


FLAT_DATA = [(torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))]


def test_the_escape_bound_is_the_pure_localization_spread():
    """A loss that ignores its parameters leaves only the localization: E‖w_t − w*‖² = D_t exactly, so the mean
    over 64 chains of ‖w − w*‖²/D_t is 1 (each draw's ratio is χ²_d/d), and no chain passes the escape bound."""
    eps, gamma, steps = 1e-2, 2.0, 400
    result = LlcSampler(
        torch.nn.Linear(1, 1).double(), FLAT_DATA, loss=flat_loss, nbeta=1.0, chains=64, draws=300, burnin=100,
        epsilon=eps, gamma=gamma, mala_every=0, dtype="float64",
    ).estimate(emit_warnings=False)  # fmt: skip
    assert result.n_params == 2
    spread = localization_spread(steps, 2, eps, gamma)
    rho2 = (1 - eps * gamma / 2) ** 2
    assert spread[5] == pytest.approx(2 * eps * (1 - rho2**5) / (1 - rho2))
    ratios = [c.distance_ratio for c in result.diagnostics.chains]
    assert abs(np.mean(ratios) - 1) < 0.1, np.mean(ratios)  # the mean of 64 chains' χ²-distributed ratios
    assert not result.diagnostics.summary()["escaped_chains"]
    np.testing.assert_allclose(escape_bound(steps, 2, eps, gamma), spread * chi2_quantile_ratio(2))


def test_the_escape_quantile_has_the_stated_tail():
    """Wilson–Hilferty at z = 6 against the exact χ² tails for d = 1 and 3 (conservative: below 1 − Φ(6) ≈ 1e-9),
    and the normal limit for large d."""
    x1, x3 = chi2_quantile_ratio(1), 3 * chi2_quantile_ratio(3)
    assert math.erfc(math.sqrt(x1 / 2)) < 1e-9
    assert math.erfc(math.sqrt(x3 / 2)) + math.sqrt(2 * x3 / math.pi) * math.exp(-x3 / 2) < 1e-9
    assert chi2_quantile_ratio(10**6) == pytest.approx(1 + 6 * math.sqrt(2e-6), abs=1e-4)


def test_a_quadratic_basin_keeps_chains_well_inside_the_bound():
    model, x, y = linreg_problem()
    result = estimate_llc(model, (x, y), loss="mse", batch_size=256, chains=8, draws=600, burnin=200, epsilon=1e-4)
    chains = result.diagnostics.chains
    assert all(c.escape_ratio < 0.5 and c.distance_ratio < 0.25 for c in chains)  # the loss confines every direction


class Saddle(torch.nn.Module):
    """``K(w) = w1² − w2²``: w* = 0 is a saddle, not a minimum."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def forward(self, x):
        return self.w[0] ** 2 - self.w[1] ** 2


def test_chains_pushed_out_of_the_basin_are_escaped_and_never_reported():
    """At a saddle the loss pushes every chain away along w2 (geometrically): before, λ̂ came back with every chain
    healthy and only a 'negative' warning; now each chain is flagged escaped and dropped, so no estimate exists."""
    sampler = LlcSampler(
        Saddle(), DUMMY_DATA, loss=potential_loss, nbeta=100.0, gamma=1.0, epsilon=1e-3, chains=4, draws=200,
        burnin=0, mala_every=0, dtype="float64",
    )  # fmt: skip
    result = sampler.estimate(raise_if_all_diverged=False, emit_warnings=False)
    assert "escaped" in result.diagnostics.checks and result.diagnostics.healthy == ()
    assert all(c.escaped and c.escape_ratio > 1 for c in result.diagnostics.chains)
    with pytest.warns(LlcWarning, match="escaped"), pytest.raises(GuardchainError) as caught:
        sampler.estimate()
    assert caught.value.code == MetricErrorCode.LLC_DIVERGED


def test_an_unstable_localization_step_is_flagged_and_its_chains_escape():
    """ε·γ > 4: the localization step alone multiplies w − w* by 1 − εγ/2 = −4 every step; the bound falls back to
    the random walk, which the chains outgrow (the loss here ignores the parameters, so nothing turns non-finite)."""
    assert localization_bias(1e-3, 1.0) == pytest.approx(1e-3 / (4 - 1e-3))
    assert localization_bias(5.0, 1.0) == math.inf
    sampler = LlcSampler(
        torch.nn.Linear(1, 1).double(), FLAT_DATA, loss=flat_loss, nbeta=1.0, gamma=100.0, epsilon=0.1, chains=3,
        draws=10, burnin=0, mala_every=0, dtype="float64",
    )  # fmt: skip
    result = sampler.estimate(raise_if_all_diverged=False, emit_warnings=False)
    assert {"escaped", "step_size"} <= set(result.diagnostics.checks)
    assert result.diagnostics.healthy == ()


def test_a_large_localization_step_warns_about_its_own_bias():
    model, x, y = linreg_problem()
    result = LlcSampler(model, (x, y), loss="mse", batch_size=1024, chains=2, draws=20, burnin=0).estimate(
        epsilon=1e-3, gamma=400.0, emit_warnings=False
    )
    assert result.diagnostics.localization_bias == pytest.approx(0.4 / 3.6)
    assert "step_size" in result.diagnostics.checks


@pytest.mark.parametrize("chains", [4, 8])
def test_the_trend_check_catches_short_runs_of_a_singular_model(chains):
    """10 burn-in steps and 100 draws on the deep linear network (λ = 5.5): the estimates are far too low, the loss
    trace looks flat, but ‖w − w*‖² still doubles along the degenerate directions: the check fires on every seed
    (before: once in five, and on the loss alone never at these settings)."""
    truth, _ = dln_lambda(DLN_WIDTHS, DLN_RANK)
    model, x, y, nbeta = dln_problem()
    sampler = LlcSampler(
        model, (x, y), loss="mse", batch_size=x.shape[0], nbeta=nbeta, chains=chains, draws=100, burnin=10,
        epsilon=3e-4, gamma=1.0, mala_every=0,
    )  # fmt: skip
    for seed in range(5):
        result = sampler.estimate(seed=seed, emit_warnings=False)
        trend = result.diagnostics.trend
        assert result.llc_mean < 0.86 * truth, result.llc_mean  # 14 % low or worse
        assert trend.verdict == "trend" and "trend" in result.diagnostics.checks, trend
        assert trend.distance_change is not None and trend.distance_change > 0.5


def test_the_trend_check_says_when_it_cannot_judge():
    few = run_diagnose(stationary(chains=2))
    assert few.trend.verdict == "not judged" and few.checks == ("trend_not_judged",)
    assert "3 healthy chains" in few.trend.reason
    rng = np.random.default_rng(3)
    noisy = 1.05 + 0.5 * rng.standard_normal((3, 110))  # λ̂ = 0.5 under noise of sd 5 per draw
    verdict = run_diagnose(noisy).trend
    assert verdict.verdict == "not judged" and verdict.resolution > 0.5 and "too noisy" in verdict.reason
    assert run_diagnose(stationary(chains=8)).trend.verdict == "flat"
