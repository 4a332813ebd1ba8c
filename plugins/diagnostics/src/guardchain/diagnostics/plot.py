"""The per-layer plot of a :class:`~.report.DiagnosticReport` (matplotlib, the ``plot`` extra; a bare ``Figure``,
so pyplot's global backend and state are left alone).

Four panels, one per quantity, with each threshold drawn where it applies: (a) ``R_l`` per layer (log scale) and,
beside it, the per-block growth ``R_{l+1}/R_l`` with the explosion ratio; (b) ``G_l`` and the median per-token
gradient norm per layer (log scale) with the floor; (c) ``s_l`` per layer with the drift ceiling (layer 0 shown
hollow: it never counts). The title carries the verdict. Kept apart from the metric so that other renderers (an
HTML report) can call it.
"""

from __future__ import annotations

from pathlib import Path

from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error
from guardchain.diagnostics.report import DiagnosticReport


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_report(report: DiagnosticReport, path: str | Path) -> Path:
    """Draw the plot of the module docstring into ``path`` (PNG, or what matplotlib infers from the suffix).

    :raises GuardchainError: ``GC-DIAG-PLOT`` when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise diag_error(
            DiagnosticsErrorCode.PLOT,
            "plotting the FA diagnostics needs matplotlib",
            hint="pip install 'guardchain-diagnostics[plot]'",
        ) from exc
    t = report.thresholds
    layers = list(range(len(report.residual_norms)))
    figure = Figure(figsize=(11, 7.5), layout="constrained")
    (norms, growth), (grads, drift) = figure.subplots(2, 2)

    norms.plot(layers, report.residual_norms, marker="o", color="tab:blue")
    norms.set_yscale("log")
    norms.set_title("(a) residual stream: median over tokens of ‖h_l‖₂")
    norms.set_xlabel("layer l (h_L = last block's output)")
    norms.set_ylabel("R_l")

    blocks = list(range(len(report.block_growth)))
    ratios = [float("nan") if g is None else g for g in report.block_growth]
    colors = [
        "tab:red" if g is not None and g > t.residual_explosion_ratio else "tab:blue" for g in report.block_growth
    ]
    growth.bar(blocks, ratios, color=colors)
    growth.axhline(
        t.residual_explosion_ratio, color="black", linestyle="--", label=f"fires above {t.residual_explosion_ratio:g}"
    )
    growth.set_yscale("log")
    first = report.growth_from_first
    extra = "" if first is None else f"; max R_l/R_0 = {first:.3g}"
    growth.set_title(f"(a) per-block growth R_(l+1)/R_l{extra}")
    growth.set_xlabel("block l")
    growth.legend(fontsize="small")

    grads.plot(layers, report.bp_grad_norms, marker="o", color="tab:green", label="‖g_l‖_F (batch 1)")
    if report.grad_token_median:
        grads.plot(
            layers,
            report.grad_token_median,
            marker=".",
            linestyle=":",
            color="tab:olive",
            label="median per-token ‖g_l,t‖₂",
        )
    grads.axhline(t.grad_norm_floor, color="black", linestyle="--", label=f"floor {t.grad_norm_floor:g}")
    grads.set_yscale("log")
    grads.set_title("(b) BP gradient norms of the loss w.r.t. h_l")
    grads.set_xlabel("layer l")
    grads.legend(fontsize="small")

    values = [float("nan") if s is None else s for s in report.per_layer_stability]
    drift.plot(layers[1:], values[1:], marker="o", color="tab:purple", label="s_l (counts)")
    drift.plot(
        layers[:1],
        values[:1],
        marker="o",
        markerfacecolor="none",
        linestyle="none",
        color="tab:purple",
        label="s_0 (excluded)",
    )
    drift.axhline(t.drift_ceiling, color="black", linestyle="--", label=f"ceiling {t.drift_ceiling:g}")
    drift.set_ylim(-1.05, 1.05)
    drift.set_title("(c) cross-batch gradient-direction cosine")
    drift.set_xlabel("layer l")
    drift.legend(fontsize="small")

    for axes in (norms, growth, grads, drift):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    margin = report.frozen_margin_pp
    frozen = "(d) skipped: no frozen baseline" if margin is None else f"(d) frozen-blocks margin {margin:+.2f} pp"
    figure.suptitle(f"FA diagnostics — {report.method_name}: {report.verdict}\n{frozen}", fontsize="medium")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out
