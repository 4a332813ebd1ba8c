"""``rmt``: two measurements against the Marchenko-Pastur (MP) law (Marchenko & Pastur 1967).

**(a) Activation edge risk** (InvarLock 0.3.7's measurement, kept for comparability). For each activation site
(default: every block's attention output and MLP output) the calibration windows' activations form a
``T x d`` matrix ``A`` (``T`` tokens, ``d`` features). It is standardised *globally*,
``A' = (A - mu) / s`` with one scalar mean and standard deviation, and

    ``r = sigma_max(A') / (sqrt(T) + sqrt(d))``,

the top singular value over the MP edge of a ``T x d`` unit-variance noise matrix (``r ~ 1`` for noise, larger
with structure). ``sigma_max`` comes from the streamed Gram matrix:
``A'^T A' = (A^T A - mu (c 1^T + 1 c^T) + mu^2 T 1 1^T) / s^2`` with ``c = A^T 1``, whose top eigenvalue is
found by Lanczos. Per family (``attn``, ``ffn``) the edge risk is the maximum over its sites; a family violates
when ``r > (1 + epsilon_f) r_base``. Differences from InvarLock: one ``T x d`` matrix over all calibration tokens
instead of a token-weighted average of per-batch ratios, and an exact top eigenvalue instead of 3 fixed power
iterations.
Cost: one forward pass per calibration window (shared with ``variance``; see :mod:`guardchain.guards.capture`),
``O(T d^2)`` per site to accumulate the Gram, ``O(j d^2)`` for ``j`` Lanczos steps; memory ``O(d^2)`` per site
whatever ``T``.

**(b) Weight-spectrum outliers.** For each weight matrix ``W`` (``m x n``) of the configured families, the MP
bulk edge for its aspect ratio and moment-fitted scale is ``s (sqrt(m) + sqrt(n))`` with ``s^2 = ||W||_F^2 /
(m n)`` (:func:`guardchain.guards.mp.mp_edge`); singular values above ``(1 + margin)`` times that edge are
**outliers** (spikes beyond the bulk: Baik, Ben Arous & Peche 2005; Martin & Mahoney 2021 on trained weights).
Per family the outlier counts are summed; a family violates when
``|C - C_base| > outlier_tolerance_f * C_base + outlier_slack``. The margin is applied, unlike InvarLock's,
whose deadband/margin knobs never reached its gate. The count is scale-invariant (scaling ``W`` scales the edge
too): it measures the *shape* of the spectrum, which quantization noise flattens.
Cost: the top of each spectrum by Golub-Kahan-Lanczos, ``O(j m n)`` for ``j`` steps (``j`` grows with the number
of outliers), shared with ``spectral`` through the run memo; nothing for matrices the edit did not change.

Any violation (or non-finite activations / weights) fails in gate mode and warns in monitor mode; ``rmt`` never
corrects anything.

Measurement and decision are separate: this module measures (torch) and records the evidence (per-site edge
risks, the changed matrices' spectra above twice their edge); the decision is the pure function
:func:`guardchain.guards.rmt_decide.build_report`, which ``guardchain verify`` re-runs on the recorded evidence.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle, SiteRef
from guardchain.core.results import GuardMode, GuardReport
from guardchain.guards.capture import SiteStats, capture
from guardchain.guards.common import (
    WindowRows,
    parameter,
    preview_rows,
    progress,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.linalg import top_eigenvalue_psd
from guardchain.guards.reporting import finite_or_none
from guardchain.guards.rmt_config import RMTConfig
from guardchain.guards.rmt_decide import RMTEvidence, build_report, thresholds
from guardchain.guards.weights import MatrixInput, MatrixRecord, matrices_in, measure_all

NAME = "rmt"


@dataclass(frozen=True)
class EdgeRisk:
    """Edge risk of one site: ``r``, its inputs, and the top eigenvector (warm start for the subject)."""

    site: str
    family: str
    r: float
    sigma_max: float
    tokens: int
    features: int
    finite: bool
    vector: torch.Tensor | None = None


def edge_risk(stats: SiteStats, family: str, v0: torch.Tensor | None = None) -> EdgeRisk:
    """:class:`EdgeRisk` of one site from its streaming sums (see the module docstring)."""
    t, d = stats.count, stats.features
    if not stats.finite or stats.gram is None or stats.colsum is None:
        return EdgeRisk(stats.site, family, math.nan, math.nan, t, d, False)
    mu = stats.mean
    var = stats.variance
    if var <= 0.0:
        return EdgeRisk(stats.site, family, 0.0, 0.0, t, d, True)
    col = stats.colsum
    ones = torch.ones(d, dtype=torch.float64)
    raw = stats.gram.to(torch.float64)  # centre in float64: the mean terms cancel
    gram = (raw - mu * (torch.outer(col, ones) + torch.outer(ones, col)) + mu * mu * t * torch.outer(ones, ones)) / var
    gram = ((gram + gram.T) / 2).to(torch.float32)
    top, vector = top_eigenvalue_psd(gram, v0=v0)
    sigma = math.sqrt(max(top, 0.0))
    return EdgeRisk(stats.site, family, sigma / (math.sqrt(t) + math.sqrt(d)), sigma, t, d, True, vector)


@dataclass
class _Measured:
    rows: WindowRows | None = None
    sites: dict[str, EdgeRisk] = field(default_factory=dict)
    stats: dict[str, SiteStats] = field(default_factory=dict)
    matrices: dict[str, MatrixRecord] = field(default_factory=dict)


class RMTGuard:
    """The ``rmt`` guard (see the module docstring)."""

    def __init__(self, config: RMTConfig | None = None) -> None:
        self.config = config if config is not None else RMTConfig()
        self.mode = GuardMode(self.config.mode)
        self.thresholds = thresholds(self.config)
        self._baseline: _Measured | None = None
        self._report: GuardReport | None = None

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Measure the baseline's activation edge risks and weight outlier counts."""
        self._baseline = self._measure(baseline, context, None)
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure the subject the same way, record the evidence and decide
        (:func:`guardchain.guards.rmt_decide.build_report`)."""
        require(self._baseline is not None, "rmt.after_edit called before prepare")
        assert self._baseline is not None
        base = self._baseline
        current = self._measure(subject, context, base)
        sites = {
            site: {
                "family": risk.family,
                "base": finite_or_none(risk.r),
                "subject": finite_or_none(current.sites[site].r) if site in current.sites else None,
            }
            for site, risk in base.sites.items()
        }
        changed: list[dict[str, object]] = []
        unchanged: dict[str, list[dict[str, object]]] = {}
        for name, record in base.matrices.items():
            now = current.matrices.get(name)
            if now is not None and now.reused:
                unchanged.setdefault(record.family, []).append(_spectrum(record))  # type: ignore[arg-type]
                continue
            changed.append(
                {
                    "name": name,
                    "family": record.family,
                    "base": _spectrum(record),
                    "subject": _spectrum(now) if now is not None else None,
                    "missing": now is None,
                }
            )
        evidence = RMTEvidence.model_validate(
            {
                "sites": sites,
                "weights": {"changed": changed, "unchanged": unchanged},
                "calibration": current.rows.describe() if current.rows is not None else None,
            }
        )
        self._report = build_report(evidence, self.config)

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "rmt.finalize called before after_edit")
        assert self._report is not None
        return self._report

    def _measure(self, handle: ModelHandle, context: RunContext, base: _Measured | None) -> _Measured:
        adapter = resolve_adapter(handle, context)
        structure = adapter.describe(handle)
        model = torch_model(handle)
        out = _Measured()
        if self.config.activation_sites:
            out.rows = preview_rows(
                context, handle, structure, count=self.config.calibration_windows, tokens=self.config.window_tokens
            )
            refs: list[tuple[str, SiteRef]] = []
            for family, site_strings in self.config.activation_sites.items():
                for site in site_strings:
                    refs.extend((family, ref) for ref in adapter.resolve_sites(handle, site))
            stats = capture(
                adapter,
                handle,
                out.rows,
                [ref for _, ref in refs],
                with_gram=True,
                context=context,
                task="rmt: calibration windows",
            )
            todo: list[tuple[str, SiteStats, torch.Tensor | None]] = []
            for site_family, ref in refs:
                out.stats[ref.site] = stats[ref.site]
                if base is not None and base.stats.get(ref.site) is stats[ref.site]:
                    out.sites[ref.site] = base.sites[ref.site]  # the same capture (unchanged weights): same answer
                    continue
                warm = base.sites[ref.site].vector if base is not None and ref.site in base.sites else None
                todo.append((site_family, stats[ref.site], warm))
            # independent small eigenproblems: side by side on a few threads (see weights.measure_all)
            with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
                for risk in pool.map(lambda job: edge_risk(job[1], job[0], job[2]), todo):
                    out.sites[risk.site] = risk
        inputs: list[MatrixInput] = []
        for name, weight_family, _ in matrices_in(structure, self.config.weight_families):
            tensor = parameter(model, name)
            previous = base.matrices.get(name) if base is not None else None
            if tensor is None or (previous is not None and tuple(tensor.shape) != previous.shape):
                continue
            inputs.append(MatrixInput(name, weight_family, tensor, previous))
        report = progress(context)
        records = measure_all(
            context,
            inputs,
            exact_max_dim=self.config.exact_max_dim,
            report=lambda done, total: report("rmt: weight spectra", done, total),
        )
        out.matrices = {r.name: r for r in records}
        return out


def _spectrum(record: MatrixRecord) -> dict[str, object] | None:
    """The evidence of one measured spectrum (:class:`~guardchain.guards.rmt_decide.SpectrumEvidence`), ``None``
    when the matrix (or its energy) is not finite."""
    spectrum = record.spectrum
    if not record.finite or spectrum is None:
        return None
    values = [float(v) for v in spectrum.values]
    edge = spectrum.edge
    if not (math.isfinite(edge) and all(math.isfinite(v) for v in values)):
        return None
    return {"edge": edge, "values": values}
