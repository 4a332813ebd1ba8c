"""Chain health: per-chain λ̂, divergence, explosion, stuck chains, trend and MALA acceptance.

Checks (each a warning, never a silent average; the estimate uses the *healthy* chains, those neither diverged nor
exploding, and says which were dropped):

- **diverged**: a recorded loss is NaN or ±inf (the first such step is reported); its λ̂ is NaN.
- **exploding**: ``nβ·(mean loss over the last 10 % of the draws − L0)`` exceeds ``explode_threshold``, by default
  ``d/2 + 10·√(d/2)``: the largest value λ can take (``d/2``, a regular model) plus ten standard deviations of
  ``nβ·(L − L0)`` at equilibrium for a regular model (``½·χ²_d``): the chain has left the basin of w*.
- **stuck**: the chain's final parameters equal w* bit for bit, or its (two or more) draws all recorded the same
  loss (ε so small that updates round away, e.g. in bfloat16, or nothing was sampled).
- **low_acceptance**: the chain's mean MALA acceptance is below ``min_acceptance`` (ε too large for the curvature).
- **trend** (all chains together): with ``c ≥ 3`` healthy chains, per-chain ``δ_c = nβ·(mean of the second half of
  the draws − mean of the first half)``; a trend is flagged when ``|mean δ| / (std δ / √c) > 4`` *and*
  ``|mean δ| > 0.1·|λ̂|``: the chains have not reached equilibrium (more burn-in, or ε too small).
- **negative**: ``λ̂ < 0``: the sampled losses sit below L0, so w* is not a local minimum of the loss (train
  longer, raise γ, or check L0's batches).

Std across chains uses ``ddof = 1``; the standard error is ``std/√c`` over the ``c`` healthy chains.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

TREND_T = 4.0
TREND_RELATIVE = 0.1
TAIL_FRACTION = 0.1


class LlcWarning(UserWarning):
    """A chain-health warning of the LLC estimator (the message names the check and the chains)."""


@dataclass(frozen=True)
class ChainHealth:
    """One chain's diagnostics.

    :ivar chain: the chain's index.
    :ivar llc: its λ̂ (NaN when diverged).
    :ivar diverged: a loss was NaN or infinite; ``first_nonfinite_step`` says where.
    :ivar exploding: see the module docstring; ``tail_excess`` is the statistic.
    :ivar stuck: never moved.
    :ivar mala_acceptance: mean MALA acceptance over the checked steps, or ``None`` when not estimated.
    :ivar final_distance: ``‖w − w*‖₂`` at the last checked step, or ``None``.
    """

    chain: int
    llc: float
    diverged: bool
    first_nonfinite_step: int | None
    exploding: bool
    tail_excess: float
    stuck: bool
    mala_acceptance: float | None
    final_distance: float | None

    @property
    def healthy(self) -> bool:
        """Used in the estimate: neither diverged nor exploding."""
        return not (self.diverged or self.exploding)


@dataclass(frozen=True)
class Diagnostics:
    """All checks of one estimate.

    :ivar chains: per-chain health, in chain order.
    :ivar warnings: ``{"check", "chains", "message"}`` per failed check.
    :ivar trend_t: the trend statistic (``None`` with fewer than 3 healthy chains).
    :ivar mala_steps: steps where the MALA acceptance was estimated, ``[M]``.
    :ivar acceptance: ``[C, M]`` acceptance probabilities at those steps.
    :ivar distance: ``[C, M]`` ``‖w − w*‖₂`` after those steps.
    """

    chains: tuple[ChainHealth, ...]
    warnings: tuple[dict[str, Any], ...]
    trend_t: float | None
    mala_steps: npt.NDArray[np.int64]
    acceptance: Floats
    distance: Floats

    @property
    def healthy(self) -> tuple[int, ...]:
        """Indices of the chains the estimate uses."""
        return tuple(c.chain for c in self.chains if c.healthy)

    @property
    def checks(self) -> tuple[str, ...]:
        """Names of the failed checks."""
        return tuple(w["check"] for w in self.warnings)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays beyond one value per chain)."""
        accept = [c.mala_acceptance for c in self.chains]
        known = [a for a in accept if a is not None]
        return {
            "healthy_chains": list(self.healthy),
            "warnings": [dict(w) for w in self.warnings],
            "trend_t": self.trend_t,
            "mala_acceptance_mean": float(np.mean(known)) if known else None,
            "mala_acceptance_per_chain": accept,
            "mala_checks": int(self.mala_steps.size),
            "final_distance_per_chain": [c.final_distance for c in self.chains],
            "diverged_chains": [c.chain for c in self.chains if c.diverged],
            "exploding_chains": [c.chain for c in self.chains if c.exploding],
            "stuck_chains": [c.chain for c in self.chains if c.stuck],
        }


def default_explode_threshold(d: int) -> float:
    """``d/2 + 10·√(d/2)`` for ``d`` sampled parameters (module docstring)."""
    return d / 2 + 10 * math.sqrt(d / 2)


def per_chain_llc(losses: Floats, draw_steps: npt.NDArray[np.int64], init_loss: float, nbeta: float) -> Floats:
    """``λ̂_c = nβ·(mean_{t ∈ draws} L_t^c − L0)``, ``[C]`` (NaN where a draw loss is not finite)."""
    draws: Floats = losses[:, draw_steps]
    means: Floats = draws.mean(axis=1)
    return nbeta * (means - init_loss)


def diagnose(
    losses: Floats,
    draw_steps: npt.NDArray[np.int64],
    *,
    init_loss: float,
    nbeta: float,
    d: int,
    moved: npt.NDArray[np.bool_],
    mala_steps: npt.NDArray[np.int64],
    acceptance: Floats,
    distance: Floats,
    explode_threshold: float | None,
    min_acceptance: float,
    emit: bool = True,
) -> Diagnostics:
    """Run every check of the module docstring.

    :param losses: ``[C, steps]`` loss traces.
    :param draw_steps: ``[D]`` the steps that are draws.
    :param d: sampled parameters.
    :param moved: ``[C]`` whether each chain's final parameters differ from w*.
    :param emit: also issue each failed check as an :class:`LlcWarning`.
    """
    llcs = per_chain_llc(losses, draw_steps, init_loss, nbeta)
    draws = losses[:, draw_steps]
    threshold = default_explode_threshold(d) if explode_threshold is None else explode_threshold
    tail = max(1, math.ceil(TAIL_FRACTION * draws.shape[1]))
    chains: list[ChainHealth] = []
    for c in range(losses.shape[0]):
        finite = np.isfinite(losses[c])
        diverged = not bool(finite.all())
        first_bad = None if not diverged else int(np.argmin(finite))
        tail_excess = float(nbeta * (draws[c, -tail:].mean() - init_loss)) if not diverged else math.nan
        chain_draws = draws[c]
        constant = chain_draws.size > 1 and not diverged and bool(chain_draws.max() == chain_draws.min())
        stuck = (not bool(moved[c])) or constant
        accept = acceptance[c] if acceptance.size else np.empty(0)
        accept_mean = float(np.nanmean(accept)) if accept.size and not diverged else None
        dist = float(distance[c, -1]) if distance.size else None
        chains.append(
            ChainHealth(
                chain=c,
                llc=float(llcs[c]),
                diverged=diverged,
                first_nonfinite_step=first_bad,
                exploding=(not diverged) and tail_excess > threshold,
                tail_excess=tail_excess,
                stuck=stuck,
                mala_acceptance=accept_mean,
                final_distance=dist,
            )
        )
    found: list[dict[str, Any]] = []

    def flag(check: str, chain_ids: list[int], message: str) -> None:
        found.append({"check": check, "chains": chain_ids, "message": message})

    diverged_ids = [c.chain for c in chains if c.diverged]
    if diverged_ids:
        steps = {c.chain: c.first_nonfinite_step for c in chains if c.diverged}
        flag(
            "diverged",
            diverged_ids,
            f"chain(s) {diverged_ids} diverged (first non-finite loss at step {steps}); they are left out of the "
            "estimate: lower epsilon or raise gamma",
        )
    exploding_ids = [c.chain for c in chains if c.exploding]
    if exploding_ids:
        flag(
            "exploding",
            exploding_ids,
            f"chain(s) {exploding_ids} left the basin of w*: nβ·(tail loss − L0) > {threshold:g}; they are left out "
            "of the estimate: lower epsilon or raise gamma",
        )
    stuck_ids = [c.chain for c in chains if c.stuck]
    if stuck_ids:
        flag(
            "stuck",
            stuck_ids,
            f"chain(s) {stuck_ids} never moved (parameters equal w*, or a constant loss): epsilon too small for "
            "the dtype, or nothing sampled",
        )
    low = [c.chain for c in chains if c.mala_acceptance is not None and c.mala_acceptance < min_acceptance]
    if low:
        flag(
            "low_acceptance",
            low,
            f"chain(s) {low} have mean MALA acceptance below {min_acceptance:g}: epsilon is large for the "
            "curvature; the estimate carries discretisation bias",
        )
    healthy = [c.chain for c in chains if c.healthy]
    trend_t: float | None = None
    if len(healthy) >= 3 and draws.shape[1] >= 4:
        half = draws.shape[1] // 2
        delta = nbeta * (draws[healthy, half:].mean(axis=1) - draws[healthy, :half].mean(axis=1))
        spread = float(delta.std(ddof=1))
        mean_delta = float(delta.mean())
        trend_t = (
            math.inf
            if spread == 0 and mean_delta != 0
            else 0.0
            if spread == 0
            else mean_delta / (spread / math.sqrt(len(healthy)))
        )
        level = abs(float(np.mean(llcs[healthy])))
        if abs(trend_t) > TREND_T and abs(mean_delta) > TREND_RELATIVE * level:
            direction = "rising" if mean_delta > 0 else "falling"
            flag(
                "trend",
                healthy,
                f"the draws are still {direction}: second half minus first half = {mean_delta:.4g} (t = "
                f"{trend_t:.1f}); raise burnin or epsilon",
            )
    if healthy and float(np.mean(llcs[healthy])) < 0:
        flag(
            "negative",
            healthy,
            "λ̂ < 0: the sampled losses are below L0, so w* is not a local minimum (train longer, raise gamma, "
            "or check the L0 batches)",
        )
    if emit:
        for item in found:
            warnings.warn(f"llc {item['check']}: {item['message']}", LlcWarning, stacklevel=3)
    return Diagnostics(
        chains=tuple(chains),
        warnings=tuple(found),
        trend_t=trend_t,
        mala_steps=mala_steps,
        acceptance=acceptance,
        distance=distance,
    )
