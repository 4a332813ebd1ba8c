"""Registration module of guardchain-geometry (entry point ``geometry``): light, no torch at import.

The factory and config model are ``"module:attr"`` strings, imported (with torch) only when a chain uses the metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_metrics(registrar: Registrar) -> None:
    """Register ``geometry``."""
    registrar.register(
        "geometry",
        summary="Representation geometry per site: streamed float64 covariance spectra, sample, novelty, router stats.",
        config_model="guardchain.geometry.config:GeometryConfig",
        factory="guardchain.geometry.metric:Geometry",
        docs="At each adapter site (default blocks[*].input) the unmasked tokens' covariance is streamed in float64 "
        "(batched Chan merge, on the model's device; the forward stops after the last hooked site, no LM head). "
        "Spectrum family from its eigenvalues: d_pr = (Σλ)²/Σλ², d_entropy = exp(H(λ/Σλ)), stable_rank = Σλ/λ_1, "
        "top-k shares, k90/k95, log_spectrum_slope_10_200 (semi-log) and loglog_spectrum_slope_10_200; sample "
        "family (sv_effective_rank, sv_stable_rank, sv_participation_ratio, cos_sim_mean/std, ve_k) on a seeded "
        "reservoir sample; novelty between consecutive sites (subspace novelty, linear CKA, layer cosine); "
        "normalization_ablation diagnostic; MoE router load statistics. unit_ids = sites, per_unit = per_unit "
        "statistic (d_pr), value = its mean. A later geometry step of the chain (after an edit) reports drift: "
        "d_pr ratio, CKA and cosine between baseline and subject activations of the same sampled tokens. Artifacts "
        "under geometry/: metrics, novelty, router, diagnostics (.json/.csv), eigenvalues.npz, samples.npz, "
        "metadata.json, drift.*, spectra.png, d_pr.png. Python API: guardchain.geometry.analyze(model, loader).",
    )


if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from guardchain.core.views import ResultView


@hookimpl
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any], artifacts: dict[str, Path]
) -> ResultView | None:
    """Draw ``geometry`` results in the HTML report (:mod:`guardchain.geometry.render`)."""
    if kind != "metric" or name != "geometry" or distribution not in {"guardchain-geometry", None}:
        return None
    from guardchain.geometry.render import render_geometry  # only when a report is drawn (numpy, no torch)

    return render_geometry(result, artifacts)
