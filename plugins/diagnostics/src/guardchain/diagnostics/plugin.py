"""Registration module of guardchain-diagnostics (entry point ``diagnostics``): light, no torch at import.

The factory and config model are ``"module:attr"`` strings, imported (with torch) only when a chain uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar
    from guardchain.core.views import ResultView

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_metrics(registrar: Registrar) -> None:
    """Register ``fa_diagnostics``."""
    registrar.register(
        "fa_diagnostics",
        summary="FA diagnostic protocol: residual growth, BP-gradient floor, cross-batch drift, frozen-blocks margin.",
        config_model="guardchain.diagnostics.config:FaDiagnosticsConfig",
        factory="guardchain.diagnostics.metric:FaDiagnostics",
        docs="Four checks (faeval, Y. Hao) on the residual stream h_0..h_L read through the adapter's "
        "blocks[*].input / blocks[-1].output: (a) R_l = median_t ||h_l,t||_2, fires when max_l R_{l+1}/R_l > 50; "
        "(b) G_l = ||dLoss/dh_l||_F of the mean cross-entropy in float32, fires when G_L < 1e-7; (c) mean pairwise "
        "cosine of gradient directions over disjoint seeded batches, fires when max_{l>=1} s_l > 0.30; (d) headline "
        "minus frozen-random-blocks accuracy, fires below 2.0 pp (skipped without a baseline). verdict = "
        "'trustworthy' or 'needs walk-back: <reasons>'; value = diagnostics fired. Artifacts "
        "fa_diagnostics/report.json, report.txt, diagnostics.png. Python API: guardchain.diagnostics.diagnose(model, "
        "batches) for modules returning (logits, [h_0..h_L]).",
    )


@hookimpl
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any]
) -> ResultView | None:
    """Draw ``fa_diagnostics`` results in the HTML report (:mod:`guardchain.diagnostics.render`)."""
    if kind != "metric" or name != "fa_diagnostics" or distribution not in {"guardchain-diagnostics", None}:
        return None
    from guardchain.diagnostics.render import render_fa  # only when a report is drawn

    return render_fa(result)
