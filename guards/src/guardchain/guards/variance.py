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

Measurement and decision are separate: this module measures (torch) and records the evidence (variances per site,
the held-out NLL differences); the decision is the pure function
:func:`guardchain.guards.variance_decide.build_report`, which ``guardchain verify`` re-runs on the recorded
evidence. Applied scales are announced to the runner first (``context.will_change_weights``). The predictive check
scales the producing matrices in place for its trial forward passes and restores them bit for bit itself before
it returns (also when scoring raises), so that trial is no correction and is not announced.

Cost: the calibration forward passes (shared with ``rmt``), ``O(T d)`` per site; when scales are proposed, two
scoring passes over the held-out windows (with and without) and, if applied, one more calibration capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import HookPoint, ModelHandle, ModelStructure, SiteRef
from guardchain.core.results import GuardMode, GuardReport
from guardchain.guards.capture import SiteStats, capture
from guardchain.guards.common import (
    WindowRows,
    available_preview,
    classifier_only,
    parameter,
    preview_rows,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.reporting import finite_or_none
from guardchain.guards.variance_config import VarianceConfig
from guardchain.guards.variance_decide import (
    MIN_HELDOUT,
    CheckEvidence,
    SiteEvidence,
    VarianceEvidence,
    build_report,
    needs_check,
    predictive_check,
    propose,
    thresholds,
)
from guardchain.guards.verifying import Rows

NAME = "variance"


@dataclass(frozen=True)
class _Site:
    ref: SiteRef
    variance: float | None
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


def _variances(stats: dict[str, SiteStats]) -> dict[str, float | None]:
    return {site: finite_or_none(s.variance) if s.finite else None for site, s in stats.items()}


class VarianceGuard:
    """The ``variance`` guard (see the module docstring)."""

    def __init__(self, config: VarianceConfig | None = None) -> None:
        self.config = config if config is not None else VarianceConfig()
        self.mode = GuardMode(self.config.mode)
        self.thresholds = thresholds(self.config)
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
        variances = _variances(stats)
        sites: dict[str, _Site] = {}
        for ref in refs:
            matrix, bias = producer(structure, model, ref, stats[ref.site].features)
            sites[ref.site] = _Site(ref, variances[ref.site], matrix, bias)
        self._sites = sites
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure the variances; propose scales and run the predictive check when the decision asks for it; in gate
        mode apply accepted scales and measure again; decide (:mod:`guardchain.guards.variance_decide`)."""
        require(self._sites is not None, "variance.after_edit called before prepare")
        assert self._sites is not None and self._rows is not None
        t = self.thresholds
        adapter = resolve_adapter(subject, context)
        model = torch_model(subject)
        refs = [s.ref for s in self._sites.values()]
        now = _variances(self._capture(adapter, subject, refs, context))
        sites = [
            SiteEvidence(site=site, matrix=info.matrix, bias=info.bias, variance_base=info.variance, variance=now[site])
            for site, info in self._sites.items()
        ]
        proposals = propose(sites, t)
        measured: dict[str, object] = {}
        if needs_check(sites, proposals):
            count = min(self.config.heldout_windows, available_preview(context) - self.config.calibration_windows)
            if classifier_only(adapter, subject):
                count = 0  # no next-token loss to check a repair against: drifts cannot be repaired, only judged
            measured["heldout_windows"] = count
            if count >= MIN_HELDOUT:
                rows, deltas = self._heldout_deltas(adapter, subject, model, proposals, context, count)
                measured.update(seed=int(context.seed), deltas=[finite_or_none(d) for d in deltas], **rows.describe())
        check_evidence = CheckEvidence.model_validate(measured)
        check = predictive_check(sites, proposals, check_evidence, t, self.config)
        if check.get("accepted") is True and self.mode == GuardMode.GATE:
            context.will_change_weights(self._producers(proposals))
            self._scale(model, proposals, inverse=False)
            after = _variances(self._capture(adapter, subject, refs, context))
            sites = [s.model_copy(update={"variance_after": after[s.site]}) for s in sites]
        evidence = VarianceEvidence(
            sites=sites, predictive_check=check_evidence, calibration=Rows.model_validate(self._rows.describe())
        )
        self._report = build_report(evidence, self.config)

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "variance.finalize called before after_edit")
        assert self._report is not None
        return self._report

    # -- pieces -----------------------------------------------------------------------------------------------

    def _producers(self, proposals: dict[str, tuple[float, float]]) -> list[str]:
        """The parameters the scales of ``proposals`` change (each site's matrix and bias)."""
        assert self._sites is not None
        names = [(self._sites[site].matrix, self._sites[site].bias) for site in proposals]
        return [name for pair in names for name in pair if name is not None]

    def _scale(self, model: torch.nn.Module, proposals: dict[str, tuple[float, float]], *, inverse: bool) -> None:
        assert self._sites is not None
        with torch.no_grad():
            for site, (_, scale) in proposals.items():
                info = self._sites[site]
                for name in (info.matrix, info.bias):
                    if name is None:
                        continue
                    tensor = parameter(model, name)
                    assert tensor is not None
                    tensor.mul_(1.0 / scale if inverse else scale)

    def _window_nll(self, adapter: object, handle: ModelHandle, rows: WindowRows) -> list[float]:
        batch = {"input_ids": [list(r) for r in rows.rows], "attention_mask": [[1] * len(r) for r in rows.rows]}
        logprobs = torch.as_tensor(adapter.token_logprobs(handle, batch))  # type: ignore[attr-defined]
        return [
            float(-torch.nanmean(row[1 : len(r)].to(torch.float64))) for row, r in zip(logprobs, rows.rows, strict=True)
        ]

    def _heldout_deltas(
        self,
        adapter: object,
        subject: ModelHandle,
        model: torch.nn.Module,
        proposals: dict[str, tuple[float, float]],
        context: RunContext,
        count: int,
    ) -> tuple[WindowRows, list[float]]:
        """``NLL_w(with the scales) - NLL_w(without)`` per held-out window (the preview windows after the calibration
        ones, scored whole); the scaled tensors are restored bit for bit before returning."""
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
        for name in self._producers(proposals):
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
        return rows, [a - b for a, b in zip(with_scales, without, strict=True)]
