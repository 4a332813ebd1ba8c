"""The local learning coefficient (LLC, Lau et al. 2023, arXiv 2308.12108) by vmapped SGLD.

Public API (imported lazily, so that importing :mod:`guardchain.metrics.llc.config` from the registration module
stays torch-free): :func:`estimate_llc`, :class:`LlcSampler`, :class:`LlcResult`, :func:`default_nbeta`,
:func:`grid_search`, :class:`GridResult`, :class:`SamplerSettings`, :class:`LlcWarning`.

Modules: ``config`` (settings), ``data`` (pre-collated batches and losses), ``noise`` (per-chain seeds),
``sgld`` (the vmapped sampler on one device), ``estimator`` (the API and multi-device orchestration),
``diagnostics`` (chain health: divergence, leaving the basin, trends, step size), ``stepcheck`` (the ε/2 re-run and
the extrapolated estimate), ``grid`` (grid search), ``plot`` (trace plot), ``metric`` (the chain step).
"""

from __future__ import annotations

from guardchain.core.markers import lazy_exports

_EXPORTS = {
    "estimate_llc": "guardchain.metrics.llc.estimator",
    "LlcSampler": "guardchain.metrics.llc.estimator",
    "LlcResult": "guardchain.metrics.llc.estimator",
    "default_nbeta": "guardchain.metrics.llc.data",
    "grid_search": "guardchain.metrics.llc.grid",
    "GridResult": "guardchain.metrics.llc.grid",
    "SamplerSettings": "guardchain.metrics.llc.config",
    "LlcWarning": "guardchain.metrics.llc.diagnostics",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
