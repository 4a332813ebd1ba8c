"""guardchain's FA diagnostics: the four-check protocol that decides whether a network trained by a non-backprop
rule (feedback alignment, DFA, ...) can be analysed by its alignment with backprop gradients (faeval, Y. Hao).

Capability (kind ``metric``, registered by :mod:`guardchain.diagnostics.plugin`): ``fa_diagnostics``.

Public API (imported lazily, so that the registration module stays torch-free): :func:`diagnose` (a plain module
returning its hidden states), :func:`diagnose_handle` (a model an adapter loaded), :class:`DiagnosticReport`,
:class:`DiagnosticThresholds`, :class:`FaDiagnosticsConfig`, :func:`frozen_blocks_baseline`,
:class:`FrozenBaseline`, :func:`plot_report`.
"""

from __future__ import annotations

from guardchain.core.markers import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "diagnose": "guardchain.diagnostics.api",
    "diagnose_handle": "guardchain.diagnostics.api",
    "DiagnosticReport": "guardchain.diagnostics.report",
    "DiagnosticThresholds": "guardchain.diagnostics.config",
    "FaDiagnosticsConfig": "guardchain.diagnostics.config",
    "frozen_blocks_baseline": "guardchain.diagnostics.frozen",
    "FrozenBaseline": "guardchain.diagnostics.frozen",
    "plot_report": "guardchain.diagnostics.plot",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
