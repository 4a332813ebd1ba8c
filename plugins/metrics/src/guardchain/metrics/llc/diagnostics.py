"""Chain health: per-chain λ̂, divergence, leaving the basin, stuck chains, trends, step size and MALA acceptance.

Checks (each a warning, never a silent average; the estimate uses the *healthy* chains, those neither diverged,
exploding nor escaped, and says which were dropped):

- **diverged**: a recorded loss or distance is NaN or ±inf (the first such step is reported), or the chain's λ̂ is
  not finite (an overflow); its λ̂ is NaN.
- **exploding**: ``nβ·(mean loss over the last 10 % of the draws − L0)`` exceeds ``explode_threshold``, by default
  ``d/2 + 10·√(d/2)``: the largest value λ can take (``d/2``, a regular model) plus ten standard deviations of
  ``nβ·(L − L0)`` at equilibrium for a regular model (``½·χ²_d``): the chain has left the basin of w*.
- **escaped**: the chain went further from w* than the localization alone lets it (:func:`escape_bound`). For a
  loss with a positive semi-definite Hessian and a stable step (``ε·(a + γ) ≤ 4`` for every curvature ``a = nβ·h
  + γ``), each direction's variance after ``t`` steps is at most the pure-localization one, so
  ``E‖w_t − w*‖² ≤ D_t = d·ε·Σ_{s<t} (1 − εγ/2)^{2s}`` (the AR(1) recursion of the anchor note, section 3, with
  ``h = 0``; ``d·ε·t`` for ``γ = 0``), and ``‖w_t − w*‖²/D_t`` is dominated by ``χ²_d/d``. A chain is flagged when
  ``‖w_t − w*‖² > D_t·q_d`` at some step, ``q_d`` the ``1 − 10⁻⁹`` quantile of ``χ²_d/d`` (Wilson–Hilferty 1931)
  plus the float rounding of the updates: the loss pushed it away from w* (w* is not a local minimum there) or the
  step is unstable for the curvature. Chains that merely fill the localization ball (a loss flat at that scale)
  stay below the bound: ``distance_ratio`` (``mean over the draws of ‖w − w*‖²/D_t``, near 1 when the loss
  confines no direction) is reported per chain. With ``εγ > 4`` the localization step itself is unstable and the
  bound is the random walk ``ε·d·t``, which the chains then outgrow geometrically.
- **stuck**: the chain's final parameters equal w* bit for bit, or its (two or more) draws all recorded the same
  loss (ε so small that updates round away, e.g. in bfloat16, or nothing was sampled).
- **low_acceptance**: the chain's mean MALA acceptance is below ``min_acceptance`` (ε too large for the curvature).
  At stationarity in a Gaussian the acceptance of even a badly discretised step averages about ½, so a high value
  does not prove a small bias: the step-size check does.
- **trend** (all chains together): with ``c ≥ 3`` healthy chains and ``≥ 4`` draws, per chain ``δ_c`` = mean of
  the second half of the draws − mean of the first half, for the loss ``nβ·L`` and for ``‖w − w*‖²``. A trend is
  flagged when ``|mean δ| / (std δ / √c) > 4`` *and* ``|mean δ|`` exceeds 10 % of the level (``|λ̂|`` for the loss,
  the draws' mean ``‖w − w*‖²`` for the distance): the chains have not reached equilibrium (more burn-in, or ε too
  small). The distance carries the slow directions: in a short run of a singular model (a deep linear network,
  10 burn-in steps and 100 draws) the loss looks flat while ``‖w − w*‖²`` still grows by ~100 %.
  **trend_not_judged**: fewer than 3 healthy chains or 4 draws, or neither statistic resolves a drift of 50 % of its
  level (its ``4·se`` is larger): the check cannot tell a trend from noise, and says so. ``resolution`` (the
  smallest drift the better statistic would flag) is reported either way.
- **step_size**: the localization step alone inflates the spread of every direction it governs by
  ``1/(1 − εγ/4) − 1 = εγ/(4 − εγ)`` (the stationary variance ``1/(γ(1 − εγ/4))`` of the AR(1) recursion against
  ``1/γ``); flagged above ``step_tolerance``. The empirical check at ε/2 (:mod:`~guardchain.metrics.llc.stepcheck`)
  adds its own verdict here.
- **negative**: ``λ̂ < 0``: the sampled losses sit below L0, so w* is not a local minimum of the loss (train
  longer, raise γ, or check L0's batches).

Std across chains uses ``ddof = 1``; the standard error is ``std/√c`` over the ``c`` healthy chains.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from guardchain.metrics.llc.stepcheck import StepCheck

Floats = npt.NDArray[np.float64]

TREND_T = 4.0
TREND_RELATIVE = 0.1
TAIL_FRACTION = 0.1
#: The trend check says it cannot judge a run where neither statistic resolves a drift this large.
UNJUDGED_RESOLUTION = 0.5
#: One-sided standard-normal quantile of the escape bound (tail probability ~1e-9 per step).
ESCAPE_Z = 6.0


class LlcWarning(UserWarning):
    """A chain-health warning of the LLC estimator (the message names the check and the chains)."""


@dataclass(frozen=True)
class ChainHealth:
    """One chain's diagnostics.

    :ivar chain: the chain's index.
    :ivar llc: its λ̂ (NaN when diverged).
    :ivar diverged: a loss or distance was NaN or infinite, or λ̂ is not finite; ``first_nonfinite_step`` says
        where (``None`` for an overflow of λ̂ alone).
    :ivar exploding: see the module docstring; ``tail_excess`` is the statistic.
    :ivar escaped: see the module docstring; ``escape_step`` is the first step above the bound, ``escape_ratio``
        the largest ``‖w − w*‖²/bound`` (> 1 when escaped).
    :ivar distance_ratio: mean over the draws of ``‖w − w*‖²/D_t`` (1 = the localization's own spread).
    :ivar stuck: never moved.
    :ivar mala_acceptance: mean MALA acceptance over the checked steps, or ``None`` when not estimated.
    :ivar final_distance: ``‖w − w*‖₂`` at the last step, or ``None`` when no step ran.
    """

    chain: int
    llc: float
    diverged: bool
    first_nonfinite_step: int | None
    exploding: bool
    tail_excess: float
    escaped: bool
    escape_step: int | None
    escape_ratio: float
    distance_ratio: float
    stuck: bool
    mala_acceptance: float | None
    final_distance: float | None

    @property
    def healthy(self) -> bool:
        """Used in the estimate: neither diverged, exploding nor escaped."""
        return not (self.diverged or self.exploding or self.escaped)


@dataclass(frozen=True)
class TrendResult:
    """The trend check (module docstring).

    :ivar verdict: ``"flat"``, ``"trend"`` or ``"not judged"``.
    :ivar reason: why not judged (empty otherwise).
    :ivar loss_t: t statistic of the loss trend, or ``None`` when not computed.
    :ivar distance_t: t statistic of the ``‖w − w*‖²`` trend, or ``None``.
    :ivar loss_change: mean ``nβ·`` (second half − first half) of the draw losses, or ``None``.
    :ivar distance_change: relative change of the mean ``‖w − w*‖²`` (second half over first half, minus 1).
    :ivar resolution: the smallest relative drift the better of the two statistics would flag at ``t > 4``
        (``4·se`` over its level); ``None`` when not computed.
    :ivar loss_flagged: whether the loss statistic flagged the trend; ``distance_flagged`` the distance one.
    """

    verdict: str
    reason: str = ""
    loss_t: float | None = None
    distance_t: float | None = None
    loss_change: float | None = None
    distance_change: float | None = None
    resolution: float | None = None
    loss_flagged: bool = False
    distance_flagged: bool = False

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "loss_t": self.loss_t,
            "distance_t": self.distance_t,
            "loss_change": self.loss_change,
            "distance_change": self.distance_change,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class Diagnostics:
    """All checks of one estimate.

    :ivar chains: per-chain health, in chain order.
    :ivar warnings: ``{"check", "chains", "message"}`` per failed check.
    :ivar trend: the trend check.
    :ivar localization_bias: ``εγ/(4 − εγ)``, the localization step's own variance inflation (``inf`` when
        ``εγ ≥ 4``: unstable).
    :ivar step_check: the ε/2 check, or ``None`` when not run.
    :ivar mala_steps: steps where the MALA acceptance was estimated, ``[M]``.
    :ivar acceptance: ``[C, M]`` acceptance probabilities at those steps.
    :ivar distance: ``[C, M]`` ``‖w − w*‖₂`` after those steps.
    :ivar distance_trace: ``[C, steps]`` ``‖w − w*‖₂`` at every step's pre-step parameters.
    :ivar escape_bound: ``[steps]`` the squared-distance bound of the escape check (NaN where not applied).
    """

    chains: tuple[ChainHealth, ...]
    warnings: tuple[dict[str, Any], ...]
    trend: TrendResult
    localization_bias: float
    step_check: StepCheck | None
    mala_steps: npt.NDArray[np.int64]
    acceptance: Floats
    distance: Floats
    distance_trace: Floats
    escape_bound: Floats

    @property
    def healthy(self) -> tuple[int, ...]:
        """Indices of the chains the estimate uses."""
        return tuple(c.chain for c in self.chains if c.healthy)

    @property
    def checks(self) -> tuple[str, ...]:
        """Names of the failed checks."""
        return tuple(w["check"] for w in self.warnings)

    @property
    def trend_t(self) -> float | None:
        """The loss-trend t statistic (``None`` when not computed)."""
        return self.trend.loss_t

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays beyond one value per chain)."""
        accept = [c.mala_acceptance for c in self.chains]
        known = [a for a in accept if a is not None]
        return {
            "healthy_chains": list(self.healthy),
            "warnings": [dict(w) for w in self.warnings],
            "trend_t": self.trend.loss_t,
            "trend": self.trend.summary(),
            "localization_bias": self.localization_bias,
            "step_check": None if self.step_check is None else self.step_check.summary(),
            "mala_acceptance_mean": float(np.mean(known)) if known else None,
            "mala_acceptance_per_chain": accept,
            "mala_checks": int(self.mala_steps.size),
            "final_distance_per_chain": [c.final_distance for c in self.chains],
            "distance_ratio_per_chain": [c.distance_ratio for c in self.chains],
            "diverged_chains": [c.chain for c in self.chains if c.diverged],
            "exploding_chains": [c.chain for c in self.chains if c.exploding],
            "escaped_chains": [c.chain for c in self.chains if c.escaped],
            "stuck_chains": [c.chain for c in self.chains if c.stuck],
        }


def default_explode_threshold(d: int) -> float:
    """``d/2 + 10·√(d/2)`` for ``d`` sampled parameters (module docstring)."""
    return d / 2 + 10 * math.sqrt(d / 2)


def localization_bias(epsilon: float, gamma: float) -> float:
    """``εγ/(4 − εγ)``: how much the localization step alone inflates a direction's stationary variance
    (``1/(γ(1 − εγ/4))`` against ``1/γ``); ``inf`` when ``εγ ≥ 4`` (the step is unstable)."""
    product = epsilon * gamma
    return math.inf if product >= 4 else product / (4 - product)


def chi2_quantile_ratio(d: int, z: float = ESCAPE_Z) -> float:
    """The upper quantile of ``χ²_d/d`` at standard-normal level ``z`` (Wilson & Hilferty 1931, *The
    distribution of chi-square*, PNAS 17:684): ``(1 − 2/(9d) + z·√(2/(9d)))³`` (conservative for small ``d``)."""
    k = 2 / (9 * max(d, 1))
    return (1 - k + z * math.sqrt(k)) ** 3


def localization_spread(steps: int, d: int, epsilon: float, gamma: float, rounding: float = 0.0) -> Floats:
    """``D_t`` for ``t = 0 … steps−1``: the expected ``‖w_t − w*‖²`` of SGLD from w* when only the localization
    acts, ``(ε·d + rounding)·Σ_{s<t} ρ^{2s}`` with ``ρ = 1 − εγ/2`` (``(ε·d + rounding)·t`` for ``ρ² = 1``);
    ``rounding`` is the per-step variance the float rounding of the updates adds. ``ρ²`` is capped at 1: with
    ``εγ > 4`` the localization step is itself unstable, and the bound falls back to the random walk ``ε·d·t``
    that no stable step exceeds."""
    t = np.arange(steps, dtype=np.float64)
    r2 = min((1 - epsilon * gamma / 2) ** 2, 1.0)
    with np.errstate(over="ignore"):
        geometric = t if r2 == 1 else (1 - r2**t) / (1 - r2)
    return (epsilon * d + rounding) * geometric


def escape_bound(
    steps: int, d: int, epsilon: float, gamma: float, *, roundoff: float = 0.0, w0_sq: float = 0.0
) -> Floats:
    """The squared-distance bound of the **escaped** check for ``t = 0 … steps−1``: ``D_t·q_d``
    (:func:`localization_spread`, :func:`chi2_quantile_ratio`). ``roundoff`` is the dtype's unit roundoff ``u``
    and ``w0_sq = ‖w*‖²``: each step's rounding adds at most ``u²·‖w‖²`` of variance (three roundings of
    variance ``u²w²/3`` each per coordinate)."""
    spread = localization_spread(steps, d, epsilon, gamma, rounding=roundoff**2 * w0_sq)
    return spread * chi2_quantile_ratio(d)


def per_chain_llc(losses: Floats, draw_steps: npt.NDArray[np.int64], init_loss: float, nbeta: float) -> Floats:
    """``λ̂_c = nβ·(mean_{t ∈ draws} L_t^c − L0)``, ``[C]`` (NaN where a draw loss is not finite)."""
    draws: Floats = losses[:, draw_steps]
    with np.errstate(over="ignore", invalid="ignore"):
        means: Floats = draws.mean(axis=1)
        return nbeta * (means - init_loss)


def _half_difference(values: Floats) -> Floats:
    """Per row: mean of the second half of the columns − mean of the first half."""
    half = values.shape[1] // 2
    out: Floats = values[:, half:].mean(axis=1) - values[:, :half].mean(axis=1)
    return out


def _t_statistic(delta: Floats) -> tuple[float, float]:
    """(mean δ / (std δ / √c), std δ / √c) across chains, with ``inf`` / ``0`` for a zero spread."""
    mean, se = float(delta.mean()), float(delta.std(ddof=1)) / math.sqrt(delta.size)
    if se == 0:
        return (math.inf if mean != 0 else 0.0), 0.0
    return mean / se, se


def judge_trend(draws: Floats, sq_distance: Floats, healthy: list[int], *, nbeta: float, level: float) -> TrendResult:
    """The trend check over the ``healthy`` rows of the draw losses and squared distances (module docstring)."""
    if len(healthy) < 3 or draws.shape[1] < 4:
        return TrendResult(
            "not judged",
            f"needs at least 3 healthy chains and 4 draws, got {len(healthy)} chains and {draws.shape[1]} draws",
        )
    loss_delta = nbeta * _half_difference(draws[healthy])
    loss_t, loss_se = _t_statistic(loss_delta)
    loss_change = float(loss_delta.mean())
    loss_trend = abs(loss_t) > TREND_T and abs(loss_change) > TREND_RELATIVE * abs(level)
    resolution = TREND_T * loss_se / abs(level) if level else math.inf
    sq = sq_distance[healthy]
    scale = float(sq.mean())
    distance_t: float | None = None
    distance_change: float | None = None
    distance_trend = False
    if scale > 0 and math.isfinite(scale):
        dist_delta = _half_difference(sq)
        distance_t, dist_se = _t_statistic(dist_delta)
        first = float(sq[:, : sq.shape[1] // 2].mean())
        distance_change = float(sq[:, sq.shape[1] // 2 :].mean()) / first - 1 if first > 0 else math.inf
        distance_trend = abs(distance_t) > TREND_T and abs(float(dist_delta.mean())) > TREND_RELATIVE * scale
        resolution = min(resolution, TREND_T * dist_se / scale)
    found = (loss_t, distance_t, loss_change, distance_change)
    if loss_trend or distance_trend:
        return TrendResult(
            "trend", "", *found, resolution=resolution, loss_flagged=loss_trend, distance_flagged=distance_trend
        )
    if resolution > UNJUDGED_RESOLUTION:
        return TrendResult(
            "not judged",
            f"the traces are too noisy: the smallest drift either statistic would flag is {resolution:.0%} of its "
            f"level (more than {UNJUDGED_RESOLUTION:.0%}); run more chains or draws",
            *found,
            resolution=resolution,
        )
    return TrendResult("flat", "", *found, resolution=resolution)


def _trend_message(trend: TrendResult) -> str:
    parts = []
    if trend.loss_flagged and trend.loss_change is not None and trend.loss_t is not None:
        direction = "rising" if trend.loss_change > 0 else "falling"
        parts.append(
            f"the draw losses are still {direction}: second half minus first half = {trend.loss_change:.4g} "
            f"(t = {trend.loss_t:.1f})"
        )
    if trend.distance_flagged and trend.distance_change is not None and trend.distance_t is not None:
        parts.append(
            f"‖w − w*‖² still changes by {trend.distance_change:+.1%} from the first to the second half of the "
            f"draws (t = {trend.distance_t:.1f}): slow directions have not equilibrated"
        )
    return "; ".join(parts) + "; raise burnin (or epsilon)"


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
    distance_trace: Floats | None = None,
    epsilon: float | None = None,
    gamma: float = 0.0,
    roundoff: float = 0.0,
    w0_sq: float = 0.0,
    step_tolerance: float = 0.05,
    step_check: StepCheck | None = None,
    emit: bool = True,
) -> Diagnostics:
    """Run every check of the module docstring.

    :param losses: ``[C, steps]`` loss traces.
    :param draw_steps: ``[D]`` the steps that are draws.
    :param d: sampled parameters.
    :param moved: ``[C]`` whether each chain's final parameters differ from w*.
    :param distance_trace: ``[C, steps]`` ``‖w − w*‖₂`` at each step's pre-step parameters; ``None`` skips the
        escape and distance-trend checks.
    :param epsilon: ε and ``gamma`` γ of the run (the escape bound and the localization bias); ``None`` skips them.
    :param roundoff: the sampling dtype's unit roundoff; ``w0_sq`` ``‖w*‖²`` (the escape bound's rounding term).
    :param step_tolerance: the relative bias above which the step size is flagged.
    :param step_check: the ε/2 check's result, whose verdict is flagged here.
    :param emit: also issue each failed check as an :class:`LlcWarning`.
    """
    n_chains, steps = losses.shape
    llcs = per_chain_llc(losses, draw_steps, init_loss, nbeta)
    draws = losses[:, draw_steps]
    threshold = default_explode_threshold(d) if explode_threshold is None else explode_threshold
    tail = max(1, math.ceil(TAIL_FRACTION * draws.shape[1]))
    if distance_trace is not None and epsilon is not None:
        bound = escape_bound(steps, d, epsilon, gamma, roundoff=roundoff, w0_sq=w0_sq)
        spread = localization_spread(steps, d, epsilon, gamma)
    else:
        bound = np.full(steps, np.nan)
        spread = np.full(steps, np.nan)
    sq_distance = np.full_like(losses, np.nan) if distance_trace is None else distance_trace**2
    chains: list[ChainHealth] = []
    for c in range(n_chains):
        finite = np.isfinite(losses[c]) & (np.isfinite(sq_distance[c]) | np.isnan(bound))
        nonfinite_trace = not bool(finite.all())
        diverged = nonfinite_trace or not math.isfinite(float(llcs[c]))
        first_bad = int(np.argmin(finite)) if nonfinite_trace else None
        with np.errstate(over="ignore", invalid="ignore"):
            tail_excess = float(nbeta * (draws[c, -tail:].mean() - init_loss)) if not diverged else math.nan
        chain_draws = draws[c]
        constant = chain_draws.size > 1 and not diverged and bool(chain_draws.max() == chain_draws.min())
        stuck = (not bool(moved[c])) or constant
        accept = acceptance[c] if acceptance.size else np.empty(0)
        accept_mean = float(np.nanmean(accept)) if accept.size and not diverged else None
        escape_step, escape_ratio, distance_ratio = None, math.nan, math.nan
        if not diverged and not np.isnan(bound).all():
            checked = bound > 0
            ratio = np.zeros(steps)
            ratio[checked] = sq_distance[c, checked] / bound[checked]
            escape_ratio = float(ratio.max())
            if escape_ratio > 1:
                escape_step = int(np.argmax(ratio > 1))
            usable = draw_steps[spread[draw_steps] > 0]
            if usable.size:
                distance_ratio = float(np.mean(sq_distance[c, usable] / spread[usable]))
        final = float(distance_trace[c, -1]) if distance_trace is not None and steps else None
        chains.append(
            ChainHealth(
                chain=c,
                llc=float(llcs[c]) if not diverged else math.nan,
                diverged=diverged,
                first_nonfinite_step=first_bad,
                exploding=(not diverged) and tail_excess > threshold,
                tail_excess=tail_excess,
                escaped=escape_step is not None,
                escape_step=escape_step,
                escape_ratio=escape_ratio,
                distance_ratio=distance_ratio,
                stuck=stuck,
                mala_acceptance=accept_mean,
                final_distance=final,
            )
        )
    found: list[dict[str, Any]] = []

    def flag(check: str, chain_ids: list[int], message: str) -> None:
        found.append({"check": check, "chains": chain_ids, "message": message})

    diverged_ids = [c.chain for c in chains if c.diverged]
    if diverged_ids:
        where = {c.chain: c.first_nonfinite_step for c in chains if c.diverged}
        flag(
            "diverged",
            diverged_ids,
            f"chain(s) {diverged_ids} diverged (first non-finite loss or distance at step {where}; None: λ̂ "
            "itself overflowed); they are left out of the estimate: lower epsilon or raise gamma",
        )
    exploding_ids = [c.chain for c in chains if c.exploding]
    if exploding_ids:
        flag(
            "exploding",
            exploding_ids,
            f"chain(s) {exploding_ids} left the basin of w*: nβ·(tail loss − L0) > {threshold:g}; they are left out "
            "of the estimate: lower epsilon or raise gamma",
        )
    escaped_ids = [c.chain for c in chains if c.escaped]
    if escaped_ids:
        detail = {c.chain: (c.escape_step, round(c.escape_ratio, 3)) for c in chains if c.escaped}
        flag(
            "escaped",
            escaped_ids,
            f"chain(s) {escaped_ids} went further from w* than the localization alone allows ((first step, "
            f"largest ‖w − w*‖²/bound) = {detail}): the loss pushed them out of the basin of w* (not a local "
            "minimum) or the step is unstable for its curvature; they are left out of the estimate: lower epsilon, "
            "raise gamma, or check that w* is trained",
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
    level = float(np.mean(llcs[healthy])) if healthy else math.nan
    trend = judge_trend(draws, sq_distance[:, draw_steps], healthy, nbeta=nbeta, level=level)
    if trend.verdict == "trend":
        flag("trend", healthy, _trend_message(trend))
    elif trend.verdict == "not judged" and healthy:
        flag("trend_not_judged", healthy, f"the trend check cannot judge this run: {trend.reason}")
    loc_bias = math.nan if epsilon is None else localization_bias(epsilon, gamma)
    if loc_bias > step_tolerance:
        flag(
            "step_size",
            healthy,
            f"ε·γ = {epsilon * gamma if epsilon is not None else math.nan:.3g}: the localization step alone "
            f"inflates the spread of every direction it governs by {loc_bias:.1%} (ULA's stationary variance "
            f"1/(γ(1 − εγ/4)) against 1/γ), above the {step_tolerance:.0%} bound: lower epsilon",
        )
    if step_check is not None and step_check.verdict != "ok":
        flag("step_size", list(step_check.chains), step_check.message)
    if healthy and level < 0:
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
        trend=trend,
        localization_bias=loc_bias,
        step_check=step_check,
        mala_steps=mala_steps,
        acceptance=acceptance,
        distance=distance,
        distance_trace=np.empty((n_chains, 0)) if distance_trace is None else distance_trace,
        escape_bound=bound,
    )
