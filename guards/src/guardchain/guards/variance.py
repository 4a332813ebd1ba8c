"""``variance``: activation-variance drift per tapped site, with a repair that must earn its place.

**Measurement.** At each site (default ``blocks[*].mlp.output``: each block's MLP output, i.e. the down
projection's output before the residual add) the activations of the calibration windows (preview split) give the
population variance ``v`` over all tokens and features (streaming sums, :mod:`guardchain.guards.capture`). The
drift of a site is the log standard-deviation ratio

    ``drift = 1/2 ln(v_subject / v_baseline)``.

**Gate.** A site with ``|drift| > max_drift`` is a drift violation (thresholds from the tier table, calibrated on
null edits and real damage in ``docs/guards/calibration.md``).

**Repair.** For each site whose ideal scale ``exp(-drift)`` (the one that restores the baseline variance, since
scaling the output by ``a`` scales its variance by ``a^2``) differs from 1 by at least ``deadband``, the proposed
scale is that value clamped to ``[1 - max_step, 1 + max_step]`` (a bounded step). The scales are applied to the
matrix that produces the site (the last weight inside the site's module whose output dimension is the site's
width: GPT-2 ``mlp.c_proj``, Llama ``mlp.down_proj``) and its bias, jointly, **only if** a paired predictive check
on held-out preview windows (disjoint from the calibration windows) shows the per-window mean NLL falls:
``delta_w = NLL_w(with scales) - NLL_w(without)``, and the bootstrap bound of ``mean(delta)`` (BCa,
:func:`guardchain.guards.stats.paired_interval`) is below ``-min_effect`` — the one-sided upper bound for
``sided = "one"``, the upper end of the two-sided interval for ``"two"``. Then the drift is measured again.
Every proposed and every applied scale is an action (``applied`` false / true).

**Decision.** A drift violation that no accepted repair removed fails (gate) or warns (monitor); an applied repair
that leaves no violation warns (the subject was corrected); non-finite activations fail. Unlike InvarLock 0.3.7's
VE, which only proposes a repair and passes in practically every run, this gate fails on real drift.

Cost: the calibration forward passes (shared with ``rmt``), ``O(T d)`` per site; when scales are proposed, two
scoring passes over the held-out windows (with and without) and, if applied, one more calibration capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import HookPoint, ModelHandle, ModelStructure, SiteRef
from guardchain.core.results import Finding, GuardAction, GuardMode, GuardReport, GuardStatus
from guardchain.guards.capture import SiteStats, capture
from guardchain.guards.codes import FindingCode
from guardchain.guards.common import (
    WindowRows,
    available_preview,
    build_report,
    finding,
    finite_or_none,
    parameter,
    preview_rows,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.runstate import run_state
from guardchain.guards.stats import PairedBound, paired_interval
from guardchain.guards.tiers import VariancePreset, preset
from guardchain.guards.variance_config import VarianceConfig

NAME = "variance"


@dataclass(frozen=True)
class _Site:
    ref: SiteRef
    variance: float
    finite: bool
    matrix: str | None
    bias: str | None


def producer(
    structure: ModelStructure, model: torch.nn.Module, ref: SiteRef, width: int
) -> tuple[str | None, str | None]:
    """The weight matrix (and its bias, if any) whose output is the site's activation, or ``(None, None)``.

    The last 2-D weight, in parameter order, inside the site's module whose output dimension (``shape[out_axis]``)
    equals the site's width; only output sites can be repaired by scaling it.
    """
    if ref.hook != HookPoint.OUTPUT:
        return None, None
    prefix = ref.module_path + "."
    found = [
        w
        for w in structure.weights
        if len(w.shape) == 2
        and (w.name.startswith(prefix) or w.name.rpartition(".")[0] == ref.module_path)
        and w.shape[w.out_axis] == width
    ]
    if not found:
        return None, None
    matrix = found[-1].name
    bias_name = matrix.rpartition(".")[0] + ".bias"
    bias = parameter(model, bias_name)
    return matrix, bias_name if bias is not None else None


class VarianceGuard:
    """The ``variance`` guard (see the module docstring)."""

    def __init__(self, config: VarianceConfig | None = None) -> None:
        self.config = config if config is not None else VarianceConfig()
        self.mode = GuardMode(self.config.mode)
        resolved = preset("variance", self.config.tier, self.config.overrides())
        assert isinstance(resolved, VariancePreset)
        self.thresholds = resolved
        self._sites: dict[str, _Site] | None = None
        self._rows: WindowRows | None = None
        self._report: GuardReport | None = None

    def _refs(self, adapter: object, handle: ModelHandle) -> list[SiteRef]:
        refs: list[SiteRef] = []
        for site in self.config.sites:
            refs.extend(adapter.resolve_sites(handle, site))  # type: ignore[attr-defined]
        return refs

    def _capture(
        self, adapter: object, handle: ModelHandle, refs: list[SiteRef], context: RunContext
    ) -> dict[str, SiteStats]:
        assert self._rows is not None
        return capture(
            adapter, handle, self._rows, refs, with_gram=False, context=context, task="variance: calibration windows"
        )

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Measure each site's activation variance on the calibration windows; find the matrix producing it."""
        adapter = resolve_adapter(baseline, context)
        structure = adapter.describe(baseline)
        model = torch_model(baseline)
        self._rows = preview_rows(
            context, baseline, structure, count=self.config.calibration_windows, tokens=self.config.window_tokens
        )
        refs = self._refs(adapter, baseline)
        stats = self._capture(adapter, baseline, refs, context)
        sites: dict[str, _Site] = {}
        for ref in refs:
            s = stats[ref.site]
            matrix, bias = producer(structure, model, ref, s.features)
            sites[ref.site] = _Site(ref, s.variance if s.finite else math.nan, s.finite, matrix, bias)
        self._sites = sites
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure drift; propose, check and (gate mode) apply scales; decide (see the module docstring)."""
        require(self._sites is not None, "variance.after_edit called before prepare")
        assert self._sites is not None
        t = self.thresholds
        mode = self.mode
        adapter = resolve_adapter(subject, context)
        model = torch_model(subject)
        refs = [s.ref for s in self._sites.values()]
        drifts = self._drifts(self._capture(adapter, subject, refs, context))
        findings: list[Finding] = []
        for site, drift in drifts.items():
            if drift is None:
                findings.append(
                    finding(FindingCode.VAR_NONFINITE, GuardStatus.FAIL, mode, f"{site}: non-finite activations", site)
                )
        proposals: dict[str, tuple[float, float]] = {}
        for site, drift in drifts.items():
            info = self._sites[site]
            if drift is None or info.matrix is None:
                continue
            ideal = math.exp(-drift)
            if abs(ideal - 1.0) >= t.deadband:
                proposals[site] = (ideal, min(max(ideal, 1.0 - t.max_step), 1.0 + t.max_step))
        check: dict[str, object] = {"evaluated": False, "reason": "no scale proposed"}
        accepted = False
        if proposals and any(d is None for d in drifts.values()):
            check = {"evaluated": False, "reason": "non-finite activations"}
        elif proposals:
            accepted, check = self._predictive_check(adapter, subject, model, proposals, context)
        applied = accepted and mode == GuardMode.GATE
        actions = [
            GuardAction(
                kind="variance_scale",
                target=self._sites[site].matrix or site,
                applied=applied,
                parameters={"scale": scale, "ideal_scale": ideal, "drift": drifts[site] or 0.0},
                reason=f"restore the baseline variance at {site} (bounded step {t.max_step:g})",
            )
            for site, (ideal, scale) in sorted(proposals.items())
        ]
        after: dict[str, float | None] = dict(drifts)
        if applied:
            touched = self._scale(model, proposals, inverse=False)
            run_state(context).record_corrections(context, touched)
            after = self._drifts(self._capture(adapter, subject, refs, context))
        violations = [s for s, d in after.items() if d is not None and abs(d) > t.max_drift]
        for site in violations:
            drift = after[site]
            assert drift is not None
            findings.append(
                finding(
                    FindingCode.VAR_DRIFT,
                    GuardStatus.FAIL,
                    mode,
                    f"{site}: activation std x{math.exp(drift):.4g} vs baseline (|drift| {abs(drift):.3g} > "
                    f"{t.max_drift:g})"
                    + ("" if not proposals else " after the repair" if applied else ", not repaired"),
                    site,
                    drift=drift,
                    drift_before=drifts[site] or 0.0,
                )
            )
        if applied:
            findings.append(
                finding(
                    FindingCode.VAR_REPAIRED,
                    GuardStatus.WARN,
                    mode,
                    f"{len(proposals)} site(s) rescaled after the held-out NLL fell by "
                    f"{-float(check.get('mean', 0.0)):.4g} nats/token",  # type: ignore[arg-type]
                    "model",
                    sites=len(proposals),
                )
            )
        elif proposals:
            why = "monitor mode (the predictive check accepted them)" if accepted else check.get("reason")
            findings.append(
                finding(
                    FindingCode.VAR_REJECTED,
                    GuardStatus.PASS,
                    mode,
                    f"{len(proposals)} proposed scale(s) not applied: {why}",
                    "model",
                    sites=len(proposals),
                )
            )
        self._report = self._build(drifts, after, proposals, applied, check, findings, actions, violations)

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "variance.finalize called before after_edit")
        assert self._report is not None
        return self._report

    # -- pieces -----------------------------------------------------------------------------------------------

    def _drifts(self, stats: dict[str, SiteStats]) -> dict[str, float | None]:
        assert self._sites is not None
        out: dict[str, float | None] = {}
        for site, info in self._sites.items():
            s = stats[site]
            if not s.finite or not info.finite:
                out[site] = None
            elif info.variance <= 0.0 or s.variance <= 0.0:
                out[site] = 0.0 if s.variance == info.variance else (math.inf if s.variance > 0 else -math.inf)
            else:
                out[site] = 0.5 * math.log(s.variance / info.variance)
        return out

    def _scale(self, model: torch.nn.Module, proposals: dict[str, tuple[float, float]], *, inverse: bool) -> set[str]:
        assert self._sites is not None
        touched: set[str] = set()
        with torch.no_grad():
            for site, (_, scale) in proposals.items():
                info = self._sites[site]
                for name in (info.matrix, info.bias):
                    if name is None:
                        continue
                    tensor = parameter(model, name)
                    assert tensor is not None
                    tensor.mul_(1.0 / scale if inverse else scale)
                    touched.add(name)
        return touched

    def _window_nll(self, adapter: object, handle: ModelHandle, rows: WindowRows) -> list[float]:
        batch = {"input_ids": [list(r) for r in rows.rows], "attention_mask": [[1] * len(r) for r in rows.rows]}
        logprobs = torch.as_tensor(adapter.token_logprobs(handle, batch))  # type: ignore[attr-defined]
        return [
            float(-torch.nanmean(row[1 : len(r)].to(torch.float64))) for row, r in zip(logprobs, rows.rows, strict=True)
        ]

    def _predictive_check(
        self,
        adapter: object,
        subject: ModelHandle,
        model: torch.nn.Module,
        proposals: dict[str, tuple[float, float]],
        context: RunContext,
    ) -> tuple[bool, dict[str, object]]:
        t = self.thresholds
        assert self._sites is not None
        spare = available_preview(context) - self.config.calibration_windows
        count = min(self.config.heldout_windows, spare)
        if count < 2:
            return False, {"evaluated": False, "reason": f"only {max(count, 0)} held-out preview window(s); 2 needed"}
        structure = adapter.describe(subject)  # type: ignore[attr-defined]
        rows = preview_rows(
            context,
            subject,
            structure,
            count=count,
            tokens=1 << 20,  # whole windows: the check's power grows with tokens
            offset=self.config.calibration_windows,
        )
        without = self._window_nll(adapter, subject, rows)
        originals = {}
        for site in proposals:
            for name in (self._sites[site].matrix, self._sites[site].bias):
                if name is not None:
                    tensor = parameter(model, name)
                    assert tensor is not None
                    originals[name] = tensor.detach().clone()
        try:
            self._scale(model, proposals, inverse=False)
            with_scales = self._window_nll(adapter, subject, rows)
        finally:
            with torch.no_grad():
                for name, value in originals.items():
                    tensor = parameter(model, name)
                    assert tensor is not None
                    tensor.copy_(value)
        deltas = [a - b for a, b in zip(with_scales, without, strict=True)]
        if not all(math.isfinite(d) for d in deltas):
            return False, {"evaluated": True, "reason": "non-finite held-out NLL", **rows.describe()}
        bound: PairedBound = paired_interval(
            deltas,
            confidence=t.confidence,
            sided=t.sided,
            n_resamples=self.config.n_resamples,
            seed=int(context.seed),
        )
        accepted = bound.high < 0.0 and bound.high <= -t.min_effect
        reason = (
            f"bound {bound.high:.4g} <= -min_effect {-t.min_effect:g}"
            if accepted
            else f"the {'one' if t.sided == 'one' else 'two'}-sided bound {bound.high:.4g} of the mean NLL change is "
            f"not below -min_effect {-t.min_effect:g} (and 0)"
        )
        return accepted, {
            "evaluated": True,
            "accepted": accepted,
            "reason": reason,
            "deltas": deltas,
            "mean": bound.mean,
            "low": finite_or_none(bound.low),
            "high": bound.high,
            "method": bound.method,
            "sided": t.sided,
            "confidence": t.confidence,
            "min_effect": t.min_effect,
            **rows.describe(),
        }

    def _build(
        self,
        drifts: dict[str, float | None],
        after: dict[str, float | None],
        proposals: dict[str, tuple[float, float]],
        applied: bool,
        check: dict[str, object],
        findings: list[Finding],
        actions: list[GuardAction],
        violations: list[str],
    ) -> GuardReport:
        assert self._sites is not None and self._rows is not None
        finite = [abs(d) for d in drifts.values() if d is not None and math.isfinite(d)]
        finite_after = [abs(d) for d in after.values() if d is not None and math.isfinite(d)]
        sites = []
        for site, info in self._sites.items():
            ideal, scale = proposals.get(site, (None, None))
            d = drifts[site]
            a = after[site]
            sites.append(
                {
                    "site": site,
                    "matrix": info.matrix,
                    "bias": info.bias,
                    "variance_base": finite_or_none(info.variance),
                    "drift": None if d is None else finite_or_none(d),
                    "ideal_scale": ideal,
                    "proposed_scale": scale,
                    "applied": applied and site in proposals,
                    "drift_after": None if a is None else finite_or_none(a),
                }
            )
        measurements = {
            "sites": float(len(self._sites)),
            "max_abs_drift": max(finite, default=0.0),
            "max_abs_drift_after": max(finite_after, default=0.0),
            "violations": float(len(violations)),
            "proposed": float(len(proposals)),
            "applied": float(len(proposals) if applied else 0),
        }
        if check.get("evaluated") and "mean" in check:
            measurements["delta_nll_mean"] = float(check["mean"])  # type: ignore[arg-type]
            measurements["delta_nll_bound"] = float(check["high"])  # type: ignore[arg-type]
        return build_report(
            NAME,
            self.mode,
            findings,
            actions=actions,
            measurements=measurements,
            details={
                "tier": self.config.tier,
                "thresholds": self.thresholds.model_dump(mode="json"),
                "sites": sites,
                "predictive_check": check,
                "calibration": self._rows.describe(),
            },
        )
