"""Trace plot of an LLC estimate (matplotlib, the ``plot`` extra; a bare ``Figure``, so pyplot's global backend and
state are left alone).

Top panel: every chain's ``nβ·(L_t − L0)`` against the step, the burn-in shaded and the estimate λ̂ as a horizontal
line (a healthy run shows flat, overlapping traces after the burn-in). Middle panel: every chain's ``‖w − w*‖₂``
with the escape bound ``√(D_t·q_d)`` (:mod:`~guardchain.metrics.llc.diagnostics`) dashed: flat traces below the
bound are equilibrated chains in the basin. Bottom panel: the MALA acceptance at the checked steps, when estimated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode

if TYPE_CHECKING:
    from guardchain.metrics.llc.estimator import LlcResult


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_traces(result: LlcResult, path: Path) -> Path:
    """Draw the plot of the module docstring into ``path`` (PNG, or any format matplotlib infers from the suffix).

    :raises GuardchainError: ``GC-METRIC-LLC-PLOT`` when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise GuardchainError.single(
            MetricErrorCode.LLC_PLOT,
            "plotting the LLC traces needs matplotlib",
            hint="pip install 'guardchain-metrics[plot]'",
        ) from exc
    excess = result.nbeta * (result.loss_trace - result.init_loss)
    steps = np.arange(excess.shape[1])
    figure = Figure(figsize=(9, 8), layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=(3, 2, 1))
    for c in range(excess.shape[0]):
        top.plot(steps, excess[c], linewidth=0.6, alpha=0.7, label=f"chain {c}")
    if result.settings.burnin:
        top.axvspan(0, result.settings.burnin, color="0.85", label="burn-in")
    top.axhline(result.llc_mean, color="black", linestyle="--", linewidth=1.2, label=f"λ̂ = {result.llc_mean:.4g}")
    top.set_ylabel("nβ·(L_t − L0)")
    top.set_title(
        f"LLC traces: λ̂ = {result.llc_mean:.4g} ± {result.llc_sem:.2g} (sem), ε = {result.settings.epsilon:g}, "
        f"γ = {result.settings.gamma:g}, nβ = {result.nbeta:.4g}"
    )
    if excess.shape[0] <= 12:
        top.legend(fontsize="small", ncols=2)
    d = result.diagnostics
    if d.distance_trace.size:
        for c in range(d.distance_trace.shape[0]):
            middle.plot(steps, d.distance_trace[c], linewidth=0.6, alpha=0.7)
        if np.isfinite(d.escape_bound).any():
            middle.plot(
                steps, np.sqrt(d.escape_bound), color="black", linestyle="--", linewidth=1.0, label="escape bound"
            )
            middle.legend(fontsize="small", loc="lower right")
        if result.settings.burnin:
            middle.axvspan(0, result.settings.burnin, color="0.85")
        middle.set_ylabel("‖w − w*‖₂")
    if d.mala_steps.size:
        for c in range(d.acceptance.shape[0]):
            bottom.plot(d.mala_steps, d.acceptance[c], marker=".", linewidth=0.5)
        bottom.set_ylabel("MALA acceptance")
        bottom.set_ylim(-0.05, 1.05)
    else:
        bottom.text(0.5, 0.5, "MALA acceptance not estimated (mala_every = 0)", ha="center", va="center")
        bottom.set_yticks([])
    bottom.set_xlabel("SGLD step")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
