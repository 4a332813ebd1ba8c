"""``fa_diagnostics``: the four-check FA protocol as a chain step.

Data: the chain's ``TokenWindows`` (``causal_lm`` / ``masked_lm``) or ``LabeledTexts`` (``classification``), drawn
into ``n_batches`` disjoint seeded batches (:mod:`.lm_data`). Hidden states through the run context's adapter
(``resolve_sites``). The result:

- ``value``: how many diagnostics fired (0 .. 4), units ``diagnostics fired``;
- ``unit_ids`` / ``per_unit``: the statistic of each diagnostic that ran, in order: ``residual_explosion`` (the
  deciding growth ratio), ``grad_floor`` (``G_L``), ``drift`` (``max_{l>=1} s_l``), ``frozen_margin`` (pp); one
  without a value (no ratio, no direction, no baseline) is left out;
- ``verdict``: ``MetricVerdict(passed, label = "trustworthy" | "needs walk-back: ...", reasons)``;
- ``details``: the report's ``to_dict()`` plus ``artifacts``.

Artifacts: ``fa_diagnostics/report.json`` (the report), ``fa_diagnostics/report.txt`` (its text rendering) and
``fa_diagnostics/diagnostics.png`` (the per-layer plot, when matplotlib is installed; else ``artifacts.plot_skipped``
says why); the n-th ``fa_diagnostics`` step of a chain writes under ``fa_diagnostics-n/``.
"""

from __future__ import annotations

from typing import Any

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.core.results import MetricResult
from guardchain.diagnostics.api import diagnose_handle
from guardchain.diagnostics.config import FaDiagnosticsConfig
from guardchain.diagnostics.plot import matplotlib_available, plot_report
from guardchain.diagnostics.report import DiagnosticReport


def per_diagnostic_values(report: DiagnosticReport) -> dict[str, float]:
    """The statistic of each diagnostic that has one, in the protocol's order."""
    values: dict[str, float | None] = {
        "residual_explosion": report.growth,
        "grad_floor": report.bp_grad_norms[-1],
        "drift": report.cross_batch_stability,
        "frozen_margin": report.frozen_margin_pp,
    }
    return {name: float(v) for name, v in values.items() if v is not None}


class FaDiagnostics:
    """The ``fa_diagnostics`` metric (module docstring)."""

    name = "fa_diagnostics"

    def __init__(self, config: FaDiagnosticsConfig | None = None) -> None:
        self.config = config or FaDiagnosticsConfig()

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """Diagnose ``handle`` on ``data``; write the report and the plot as artifacts.

        :raises GuardchainError: the ``GC-DIAG-*`` codes of the member's README.
        """
        report = diagnose_handle(handle, context.adapter, data, self.config, seed=context.seed)
        values = per_diagnostic_values(report)
        fired = sum(1 for f in report.fired.values() if f)
        return MetricResult(
            metric=self.name,
            value=float(fired),
            uncertainty=None,
            units="diagnostics fired",
            unit_ids=tuple(values),
            per_unit=tuple(values.values()),
            verdict=report.metric_verdict(),
            details={**report.to_dict(), "artifacts": self._write_artifacts(report, context)},
        )

    def _write_artifacts(self, report: DiagnosticReport, context: RunContext) -> dict[str, Any]:
        # The n-th fa_diagnostics step of a chain writes under fa_diagnostics-n/ (earlier results are in
        # context.results); repeated calls outside a chain overwrite fa_diagnostics/ with identical content.
        earlier = sum(1 for r in context.results.values() if isinstance(r, dict) and r.get("metric") == self.name)
        stem = self.name if earlier == 0 else f"{self.name}-{earlier + 1}"
        written: dict[str, Any] = {"report": f"{stem}/report.json", "text": f"{stem}/report.txt"}
        context.artifact_path(written["report"]).write_text(report.to_json() + "\n", encoding="utf-8")
        context.artifact_path(written["text"]).write_text(report.render() + "\n", encoding="utf-8")
        if self.config.plot:
            if matplotlib_available():
                plot_report(report, context.artifact_path(f"{stem}/diagnostics.png"))
                written["plot"] = f"{stem}/diagnostics.png"
            else:
                written["plot"] = None
                written["plot_skipped"] = "matplotlib is not installed (pip install 'guardchain-diagnostics[plot]')"
        return written
