"""guardchain's representation geometry: streaming covariance spectra, sample, novelty and router statistics.

Capability (kind ``metric``, registered by :mod:`guardchain.geometry.plugin`): ``geometry``. The Python API —
:func:`analyze`, :func:`summarize`, :func:`compare` (drift), :class:`GeometryResult`, :class:`DriftResult`,
:class:`Collector` / :class:`CollectionState` (streaming and merging), the plots and the pure formulas — is
importable from here; importing this package imports neither torch nor pydantic until one of those names is used.

Modules: ``formulas`` (numpy formulas), ``accumulate`` (Chan covariance, reservoir, router counts), ``collect``
(hooks and the early-stopping forward), ``sites`` (sites of a bare module, router discovery), ``analysis`` (the API),
``results`` (tables and files), ``drift``, ``plot``, ``metric`` (the chain step), ``config``, ``codes``.
"""

from __future__ import annotations

from guardchain.core.markers import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "analyze": "guardchain.geometry.analysis",
    "summarize": "guardchain.geometry.analysis",
    "compare": "guardchain.geometry.drift",
    "DriftResult": "guardchain.geometry.drift",
    "GeometryResult": "guardchain.geometry.results",
    "Collector": "guardchain.geometry.collect",
    "CollectionState": "guardchain.geometry.collect",
    "RouterRef": "guardchain.geometry.collect",
    "CovarianceAccumulator": "guardchain.geometry.accumulate",
    "TokenReservoir": "guardchain.geometry.accumulate",
    "GeometrySettings": "guardchain.geometry.config",
    "resolve_module_sites": "guardchain.geometry.sites",
    "find_routers": "guardchain.geometry.sites",
    "spectra_figure": "guardchain.geometry.plot",
    "d_pr_figure": "guardchain.geometry.plot",
    "save_plots": "guardchain.geometry.plot",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
