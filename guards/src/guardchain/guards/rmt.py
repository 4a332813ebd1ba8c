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
(m n)`` (:func:`guardchain.guards.linalg.mp_edge`); singular values above ``(1 + margin)`` times that edge are
**outliers** (spikes beyond the bulk: Baik, Ben Arous & Peche 2005; Martin & Mahoney 2021 on trained weights).
Per family the outlier counts are summed; a family violates when
``|C - C_base| > outlier_tolerance_f * C_base + outlier_slack``. The margin is applied, unlike InvarLock's,
whose deadband/margin knobs never reached its gate. The count is scale-invariant (scaling ``W`` scales the edge
too): it measures the *shape* of the spectrum, which quantization noise flattens.
Cost: the top of each spectrum by Golub-Kahan-Lanczos, ``O(j m n)`` for ``j`` steps (``j`` grows with the number
of outliers), shared with ``spectral`` through the run memo; nothing for matrices the edit did not change.

Any violation (or non-finite activations / weights) fails in gate mode and warns in monitor mode; ``rmt`` never
corrects anything.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle, SiteRef
from guardchain.core.results import Finding, GuardMode, GuardReport, GuardStatus
from guardchain.guards.capture import SiteStats, capture
from guardchain.guards.codes import FindingCode
from guardchain.guards.common import (
    WindowRows,
    build_report,
    finding,
    finite_or_none,
    parameter,
    preview_rows,
    progress,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.linalg import top_eigenvalue_psd
from guardchain.guards.rmt_config import RMTConfig
from guardchain.guards.tiers import RMTPreset, preset
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
        resolved = preset("rmt", self.config.tier, self.config.overrides())
        assert isinstance(resolved, RMTPreset)
        self.thresholds = resolved
        self._baseline: _Measured | None = None
        self._report: GuardReport | None = None

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Measure the baseline's activation edge risks and weight outlier counts."""
        self._baseline = self._measure(baseline, context, None)
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure the subject the same way and compare family by family."""
        require(self._baseline is not None, "rmt.after_edit called before prepare")
        assert self._baseline is not None
        base = self._baseline
        current = self._measure(subject, context, base)
        t = self.thresholds
        mode = self.mode
        findings: list[Finding] = []
        measurements: dict[str, float] = {}
        edge_details: dict[str, dict[str, object]] = {}
        for family in sorted({e.family for e in base.sites.values()}):
            before = [e for e in base.sites.values() if e.family == family]
            after = [current.sites[e.site] for e in before if e.site in current.sites]
            if not all(e.finite for e in after) or not all(e.finite for e in before):
                bad = [e.site for e in after if not e.finite]
                findings.append(
                    finding(
                        FindingCode.RMT_NONFINITE,
                        GuardStatus.FAIL,
                        mode,
                        f"{family}: non-finite activations at {bad or 'the baseline'}",
                        family,
                    )
                )
                continue
            r_base = max(e.r for e in before)
            r_cur = max(e.r for e in after)
            epsilon = float(t.epsilon[family])  # type: ignore[index]
            limit = (1.0 + epsilon) * r_base
            measurements[f"{family}.edge_risk_base"] = r_base
            measurements[f"{family}.edge_risk"] = r_cur
            measurements[f"{family}.edge_ratio"] = r_cur / r_base if r_base > 0 else 1.0
            deltas = sorted(
                ((current.sites[e.site].r / e.r - 1.0 if e.r > 0 else 0.0, e.site) for e in before),
                key=lambda item: -abs(item[0]),
            )
            edge_details[family] = {
                "edge_risk_base": r_base,
                "edge_risk": r_cur,
                "epsilon": epsilon,
                "limit": limit,
                "sites": len(before),
                "top_site_deltas": [{"site": s, "relative_change": d} for d, s in deltas[:3]],
            }
            if r_base > 0 and r_cur > limit:
                findings.append(
                    finding(
                        FindingCode.RMT_EDGE,
                        GuardStatus.FAIL,
                        mode,
                        f"{family}: activation edge risk {r_cur:.4g} > (1 + {epsilon:g}) x baseline {r_base:.4g}",
                        family,
                        edge_risk=r_cur,
                        edge_risk_base=r_base,
                        limit=limit,
                    )
                )
        outlier_details: dict[str, dict[str, object]] = {}
        for family in sorted({m.family for m in base.matrices.values()}):
            names = [n for n, m in base.matrices.items() if m.family == family]
            broken = [n for n in names if n in current.matrices and not current.matrices[n].finite]
            if broken:
                findings.append(
                    finding(
                        FindingCode.RMT_NONFINITE,
                        GuardStatus.FAIL,
                        mode,
                        f"{family}: non-finite weights in {broken}",
                        family,
                    )
                )
                continue
            count_base = sum(self._count(base.matrices[n]) for n in names)
            count = sum(self._count(current.matrices[n]) for n in names if n in current.matrices)
            tolerance = float(t.outlier_tolerance[family])  # type: ignore[index]
            allowed = tolerance * count_base + t.outlier_slack
            measurements[f"{family}.outliers_base"] = count_base
            measurements[f"{family}.outliers"] = count
            changed = sorted(
                (
                    (self._count(current.matrices[n]) - self._count(base.matrices[n]), n)
                    for n in names
                    if n in current.matrices
                ),
                key=lambda item: (-abs(item[0]), item[1]),
            )
            outlier_details[family] = {
                "outliers_base": count_base,
                "outliers": count,
                "allowed_change": allowed,
                "matrices": len(names),
                "top_matrix_changes": [{"name": n, "change": c} for c, n in changed[:3] if c != 0],
            }
            if abs(count - count_base) > allowed:
                findings.append(
                    finding(
                        FindingCode.RMT_OUTLIERS,
                        GuardStatus.FAIL,
                        mode,
                        f"{family}: {count} singular values beyond (1 + {t.margin:g}) x MP edge, baseline "
                        f"{count_base} (allowed change {allowed:.3g})",
                        family,
                        outliers=count,
                        outliers_base=count_base,
                        allowed_change=allowed,
                    )
                )
        measurements["violations"] = float(len(findings))
        self._report = build_report(
            NAME,
            mode,
            findings,
            measurements=measurements,
            details={
                "tier": self.config.tier,
                "thresholds": t.model_dump(mode="json"),
                "edge_risk": edge_details,
                "outliers": outlier_details,
                "sites": {
                    s: {"base": finite_or_none(e.r), "subject": finite_or_none(current.sites[s].r)}
                    for s, e in base.sites.items()
                    if s in current.sites
                },
                "calibration": current.rows.describe() if current.rows is not None else None,
            },
        )

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "rmt.finalize called before after_edit")
        assert self._report is not None
        return self._report

    def _count(self, record: MatrixRecord) -> int:
        return record.spectrum.outliers(self.thresholds.margin) if record.spectrum is not None else 0

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
