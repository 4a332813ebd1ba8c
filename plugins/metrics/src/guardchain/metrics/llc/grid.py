"""Grid search over (ε, γ, nβ): one short estimate per point on one pre-collated sampler (one compilation).

Default grid: ε log-spaced over ``1e-6 … 1e-2`` (five points, devinterp's ``EpsilonBetaAnalyzer`` range; canonical
spaces linearly), γ in ``(1, 10, 100)``, nβ the sampler's default. Each record holds the point, λ̂ with its sem,
the mean MALA acceptance, the failed checks (:mod:`~guardchain.metrics.llc.diagnostics`) and the wall seconds.

**Recommendation**: among the points whose traces are *stable* (no divergence, explosion, escape, stuck chain,
trend or negative λ̂), preferring those whose MALA acceptance is not low when there are any, the one with the
largest ε (fastest mixing, while the traces stay flat); ties go to the smallest relative sem. ``None`` when no point is
stable. (Low acceptance alone does not make a trace unstable: in a model with 10⁵ sampled weights the acceptance
of SGLD steps is often below 0.5 at every ε that mixes in a few hundred steps; it is reported per point.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc.config import SamplerSettings
from guardchain.metrics.llc.data import LossFn, Unpack
from guardchain.metrics.llc.estimator import LlcSampler

DEFAULT_EPSILONS = tuple(float(x) for x in np.logspace(-6, -2, 5))
DEFAULT_GAMMAS = (1.0, 10.0, 100.0)
#: Checks that make a point's traces unstable (``low_acceptance`` only lowers its preference).
UNSTABLE = frozenset({"diverged", "exploding", "escaped", "stuck", "trend", "negative"})


@dataclass(frozen=True)
class GridResult:
    """The grid's records (one per point, in grid order) and the recommended one (module docstring)."""

    records: tuple[dict[str, Any], ...]
    recommended: dict[str, Any] | None

    def table(self) -> Any:
        """A pandas ``DataFrame`` of the records when pandas is installed, else the list of records."""
        try:
            import pandas as pd
        except ImportError:
            return [dict(r) for r in self.records]
        return pd.DataFrame([dict(r) for r in self.records])


def grid_search(
    model: Any,
    data: Any,
    *,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
    nbetas: Sequence[float] | None = None,
    loss: str | LossFn = "auto",
    unpack: Unpack | None = None,
    settings: SamplerSettings | None = None,
    **overrides: Any,
) -> GridResult:
    """Estimate λ̂ at every ``(ε, γ, nβ)`` of the grid and recommend a stable point.

    ``overrides`` are :class:`SamplerSettings` fields applied to every point (e.g. ``chains=4, draws=200,
    burnin=100``). ``nbetas=None`` uses the default nβ only.

    :raises GuardchainError: ``GC-METRIC-LLC-SETTINGS`` for an empty grid or bad settings, and the codes of
        :class:`LlcSampler`.
    """
    if not epsilons or not gammas or (nbetas is not None and not nbetas):
        raise GuardchainError.single(MetricErrorCode.LLC_SETTINGS, "the grid has no point (an empty axis)")
    sampler = LlcSampler(model, data, loss=loss, unpack=unpack, settings=settings, **overrides)
    records: list[dict[str, Any]] = []
    for nbeta in nbetas if nbetas is not None else (None,):
        for gamma in gammas:
            for epsilon in epsilons:
                result = sampler.estimate(
                    epsilon=float(epsilon),
                    gamma=float(gamma),
                    nbeta=nbeta,
                    raise_if_all_diverged=False,
                    emit_warnings=False,
                )
                summary = result.diagnostics.summary()
                records.append(
                    {
                        "epsilon": float(epsilon),
                        "gamma": float(gamma),
                        "nbeta": result.nbeta,
                        "llc_mean": result.llc_mean,
                        "llc_sem": result.llc_sem,
                        "llc_std": result.llc_std,
                        "mala_acceptance": summary["mala_acceptance_mean"],
                        "healthy_chains": len(summary["healthy_chains"]),
                        "checks": ",".join(result.diagnostics.checks),
                        "stable": not set(result.diagnostics.checks) & UNSTABLE,
                        "seconds": result.timings["sampling"],
                    }
                )
    recommended = _recommend(records)
    for record in records:
        record["recommended"] = record is recommended
    return GridResult(tuple(records), recommended)


def _recommend(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    stable = [r for r in records if r["stable"] and math.isfinite(r["llc_mean"])]
    if not stable:
        return None
    accepted = [r for r in stable if "low_acceptance" not in r["checks"].split(",")]
    stable = accepted or stable

    def relative_sem(r: dict[str, Any]) -> float:
        sem = r["llc_sem"]
        return math.inf if not math.isfinite(sem) else sem / max(abs(r["llc_mean"]), 1e-12)

    return max(stable, key=lambda r: (r["epsilon"], -relative_sem(r)))
