"""The step-size check: a subset of chains re-run at ε/2 on the same Brownian path, and the extrapolated estimate.

SGLD (the unadjusted Langevin algorithm) has a discretisation bias of first order in ε on long-run averages
(Mattingly, Stuart & Tretyakov 2010, *Convergence of numerical time-averaging and stationary measures via Poisson
equations*, SIAM J. Numer. Anal. 48:552; for a quadratic loss the anchor note's section 3 gives it exactly:
``1/(1 − εa/4) = 1 + εa/4 + O(ε²)`` per direction). So with ``λ(ε) = λ₀ + c·ε + O(ε²)``:

    Δ = λ̂(ε) − λ̂(ε/2)                 (the paired difference, per chain, then its mean over the subset)
    bias(ε) ≈ 2·Δ                       (the first-order bias of the reported λ̂)
    λ̂_RR = 2·λ̂(ε/2) − λ̂(ε) = λ̂(ε) − 2·Δ   (Richardson–Romberg extrapolation, O(ε²) bias)

as in stochastic-gradient Richardson–Romberg MCMC (Durmus, Şimşekli, Moulines, Badeau & Richard 2016, NeurIPS),
which also couples the two step sizes through one Brownian path: chain ``c`` at ε/2 takes two steps per step of
chain ``c`` at ε, on the same minibatch, with the two half-step normals that sum to the ε step's
(:class:`~guardchain.metrics.llc.noise.RefinedNoise`). The pair then shares its randomness, so Δ_c has a much
smaller variance than two independent chains' difference. Its draws are the fine steps ``2t`` and ``2t + 1`` of the
coarse draws ``t`` (the same stretch of Langevin time).

Reported: ``Δ`` with its standard error ``se_Δ = std(Δ_c, ddof=1)/√k`` over the ``k`` pairs healthy at both step
sizes, the relative bias ``2Δ/|λ̂|``, and ``λ̂_RR`` with ``se² = sem² + 4·se_Δ² − 4·s_{λΔ}/c`` (``s_{λΔ}`` the
sample covariance of ``λ̂_c(ε)`` and ``Δ_c`` over the pairs, ``c`` the healthy chains of λ̂). **Verdict**:
``bias`` when ``|2Δ| > tolerance·|λ̂|`` and ``|Δ| > 2·se_Δ`` (a resolved bias above the bound); else
``inconclusive`` when ``4·se_Δ > tolerance·|λ̂|`` (the check cannot resolve a bias of that size) or fewer than two
pairs are healthy; else ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StepCheck:
    """The ε/2 check of one estimate (module docstring).

    :ivar chains: the re-run chains, ``[k]``.
    :ivar epsilon: the estimate's ε (the re-run used ε/2).
    :ivar llc_coarse: ``[k]`` their λ̂ at ε; ``llc_fine`` ``[k]`` at ε/2 (NaN for a diverged chain).
    :ivar difference: mean of ``λ̂_c(ε) − λ̂_c(ε/2)`` over the pairs healthy at both; ``difference_se`` its sem.
    :ivar relative_bias: ``2·difference/|λ̂|``, the estimated first-order bias of λ̂ relative to it.
    :ivar extrapolated: ``λ̂ − 2·difference``; ``extrapolated_se`` its standard error.
    :ivar tolerance: the relative bias bound.
    :ivar verdict: ``"ok"``, ``"bias"`` or ``"inconclusive"``; ``message`` says why.
    :ivar fine_losses: ``[k, 2·steps]`` the re-run's loss traces.
    """

    chains: tuple[int, ...]
    epsilon: float
    llc_coarse: Floats
    llc_fine: Floats
    difference: float
    difference_se: float
    relative_bias: float
    extrapolated: float
    extrapolated_se: float
    tolerance: float
    verdict: str
    message: str
    fine_losses: Floats

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (no traces)."""
        return {
            "chains": list(self.chains),
            "epsilon": self.epsilon,
            "epsilon_half": self.epsilon / 2,
            "llc_coarse": [float(x) for x in self.llc_coarse],
            "llc_fine": [float(x) for x in self.llc_fine],
            "difference": self.difference,
            "difference_se": self.difference_se,
            "relative_bias": self.relative_bias,
            "extrapolated": self.extrapolated,
            "extrapolated_se": self.extrapolated_se,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "message": self.message,
            "formula": "difference = mean(λ̂_c(ε) − λ̂_c(ε/2)); extrapolated = λ̂(ε) − 2·difference "
            "(Richardson–Romberg: 2·λ̂(ε/2) − λ̂(ε))",
        }


def fine_schedule(
    order: npt.NDArray[np.int64], draw_steps: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The ε/2 run's batch order (each coarse step's batch twice) and its draws (fine steps ``2t`` and ``2t + 1``
    for every coarse draw ``t``)."""
    fine_order = np.repeat(order, 2)
    fine_draws = np.sort(np.concatenate([2 * draw_steps, 2 * draw_steps + 1]))
    return fine_order, fine_draws


def assess(
    chains: list[int],
    *,
    epsilon: float,
    llc_per_chain: Floats,
    healthy: tuple[int, ...],
    llc_mean: float,
    llc_sem: float,
    fine_losses: Floats,
    fine_draws: npt.NDArray[np.int64],
    init_loss: float,
    nbeta: float,
    tolerance: float,
) -> StepCheck:
    """The :class:`StepCheck` of the re-run ``chains`` (module docstring for the formulas).

    :param llc_per_chain: ``[C]`` λ̂_c at ε of every chain; ``healthy`` the chains in λ̂ (``llc_mean`` ±
        ``llc_sem``).
    :param fine_losses: ``[k, 2·steps]`` the ε/2 chains' loss traces, in the order of ``chains``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        fine = nbeta * (fine_losses[:, fine_draws].mean(axis=1) - init_loss)
    coarse = llc_per_chain[chains]
    finite_fine = np.isfinite(fine_losses).all(axis=1) & np.isfinite(fine)
    pairs = [i for i, c in enumerate(chains) if c in healthy and bool(finite_fine[i])]
    k = len(pairs)
    nan = math.nan
    base: dict[str, Any] = {
        "chains": tuple(chains),
        "epsilon": epsilon,
        "llc_coarse": coarse,
        "llc_fine": np.where(finite_fine, fine, np.nan),
        "tolerance": tolerance,
        "fine_losses": fine_losses,
    }
    if k < 2 or not math.isfinite(llc_mean):
        return StepCheck(
            **base,
            difference=nan,
            difference_se=nan,
            relative_bias=nan,
            extrapolated=nan,
            extrapolated_se=nan,
            verdict="inconclusive",
            message=f"the step-size check needs two chains healthy at both ε and ε/2, got {k}",
        )
    delta = coarse[pairs] - fine[pairs]
    diff, diff_se = float(delta.mean()), float(delta.std(ddof=1)) / math.sqrt(k)
    covariance = float(np.cov(coarse[pairs], delta, ddof=1)[0, 1])
    sem_sq = llc_sem**2 if math.isfinite(llc_sem) else 0.0
    variance = sem_sq + 4 * diff_se**2 - 4 * covariance / max(len(healthy), 1)
    extrapolated = llc_mean - 2 * diff
    extrapolated_se = math.sqrt(max(variance, 0.0))
    level = abs(llc_mean)
    relative = 2 * diff / level if level > 0 else math.inf
    summary = (
        f"halving ε = {epsilon:g} moved λ̂ by {diff:.4g} ± {diff_se:.2g} (chains {list(chains)}): estimated "
        f"discretisation bias 2Δ = {relative:+.1%} of λ̂ = {llc_mean:.4g}; extrapolated λ̂ (2·λ̂(ε/2) − λ̂(ε)) = "
        f"{extrapolated:.4g} ± {extrapolated_se:.2g}"
    )
    if abs(relative) > tolerance and abs(diff) > 2 * diff_se:
        verdict = "bias"
        message = f"{summary}; above the {tolerance:.0%} bound: lower epsilon, or report the extrapolated value"
    elif 4 * diff_se > tolerance * level:
        verdict = "inconclusive"
        message = (
            f"{summary}; the check cannot resolve a {tolerance:.0%} bias (its resolution 4·se_Δ is "
            f"{4 * diff_se / level if level > 0 else math.inf:.1%} of λ̂): raise step_check_chains or draws"
        )
    else:
        verdict, message = "ok", summary
    return StepCheck(
        **base,
        difference=diff,
        difference_se=diff_se,
        relative_bias=relative,
        extrapolated=extrapolated,
        extrapolated_se=extrapolated_se,
        verdict=verdict,
        message=message,
    )
