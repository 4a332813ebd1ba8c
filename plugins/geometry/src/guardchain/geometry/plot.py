"""Plots of a geometry result (matplotlib, the ``plot`` extra), kept apart from the computation.

Each ``*_figure`` function returns a bare ``matplotlib.figure.Figure`` (pyplot's global state and backend are left
alone), so a report renderer can embed it; :func:`save_plots` writes the two standard files:

- ``spectra.png``: every site's normalised covariance spectrum ``p_i = λ_i / Σλ`` against the rank ``i`` on log-log
  axes, coloured by depth (a straight line is a power law; the log-log slope is its exponent);
- ``d_pr.png``: the participation ratio ``d_pr``, the entropy dimension and the stable rank per site (log scale);
  with a drift result, the baseline's ``d_pr`` (open grey circles) under the subject's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from guardchain.geometry.codes import GeometryErrorCode, geometry_error
from guardchain.geometry.results import GeometryResult, PathFor

if TYPE_CHECKING:
    from guardchain.geometry.drift import DriftResult


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise geometry_error(
            GeometryErrorCode.PLOT, "plotting geometry needs matplotlib", hint="pip install 'guardchain-geometry[plot]'"
        ) from exc
    return Figure(layout="constrained", **kwargs)


def spectra_figure(result: GeometryResult) -> Any:
    """Log-log normalised spectra of every site (module docstring).

    :raises GuardchainError: ``GC-GEOM-PLOT`` without matplotlib.
    """
    from matplotlib import colormaps

    figure = _figure(figsize=(7.5, 5))
    axes = figure.subplots()
    keys = list(result.eigenvalues)
    colours = colormaps["viridis"](np.linspace(0.0, 1.0, max(len(keys), 1)))
    for colour, key in zip(colours, keys, strict=False):
        values = result.eigenvalues[key]
        total = float(values.sum())
        if total <= 0:
            continue
        share = values / total
        ranks = np.arange(1, share.size + 1)
        keep = share > 0
        axes.loglog(ranks[keep], share[keep], color=colour, linewidth=1.0, label=result.eigenvalue_sites.get(key, key))
    axes.set_xlabel("rank i")
    axes.set_ylabel("eigenvalue share  λ_i / Σλ")
    axes.set_title(f"Covariance spectra — {result.metadata.get('model_id') or 'model'}")
    axes.grid(True, which="major", alpha=0.3)
    if 0 < len(keys) <= 16:
        axes.legend(fontsize=7, ncols=2 if len(keys) > 8 else 1)
    elif keys:
        mappable = axes.scatter([], [], c=[], cmap="viridis", vmin=0, vmax=len(keys) - 1)
        figure.colorbar(mappable, ax=axes, label="site index (depth)")
    return figure


def d_pr_figure(result: GeometryResult, drift: DriftResult | None = None) -> Any:
    """``d_pr``, entropy dimension and stable rank per site; the baseline's ``d_pr`` when ``drift`` is given.

    :raises GuardchainError: ``GC-GEOM-PLOT`` without matplotlib.
    """
    figure = _figure(figsize=(7.5, 4.5))
    axes = figure.subplots()
    x = np.arange(len(result.metrics))
    if drift is not None:
        baseline = [float(r["d_pr_baseline"]) for r in drift.rows]
        axes.plot(x, baseline, "o--", color="grey", markersize=7, fillstyle="none", label="d_pr (baseline)")
    for stat, style in (("d_pr", "o-"), ("d_entropy", "s--"), ("stable_rank", "^:")):
        if any(stat in row for row in result.metrics):
            label = "d_pr (subject)" if stat == "d_pr" and drift is not None else stat
            axes.plot(x, result.site_values(stat), style, label=label, markersize=4)
    axes.set_yscale("log")
    axes.set_xticks(x, [str(row.get("layer", i)) for i, row in enumerate(result.metrics)], fontsize=7)
    axes.set_xlabel("layer (block index of the site)")
    axes.set_ylabel("effective dimensions")
    axes.set_title(f"Effective dimension per site — {result.metadata.get('model_id') or 'model'}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def save_plots(result: GeometryResult, path_for: PathFor, drift: DriftResult | None = None) -> dict[str, str]:
    """Write ``spectra.png`` and ``d_pr.png`` through ``path_for``; returns ``kind -> name``.

    :raises GuardchainError: ``GC-GEOM-PLOT`` without matplotlib.
    """
    spectra_figure(result).savefig(path_for("spectra.png"), dpi=110)
    d_pr_figure(result, drift).savefig(path_for("d_pr.png"), dpi=110)
    return {"plot_spectra": "spectra.png", "plot_d_pr": "d_pr.png"}
