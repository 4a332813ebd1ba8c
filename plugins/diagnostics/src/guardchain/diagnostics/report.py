"""The FA diagnostic report: per-layer numbers, the four verdicts, the overall verdict, a text rendering and JSON.

Torch-free, so that a report can be read back (:meth:`DiagnosticReport.from_dict`) and rendered anywhere.

The verdict follows the reference implementation (faeval by Y. Hao, ``protocol/report.py``): ``trustworthy`` when
no diagnostic fires, else ``"needs walk-back: "`` followed by the reasons of the diagnostics that fired, in the
order (a), (b), (c), (d), joined by ``"; "``. Every comparison is strict:

- (a) ``residual_explosion``: growth > ``residual_explosion_ratio``, with growth the per-block statistic
  ``max_{0<=l<L} R_{l+1}/R_l`` (default) or the reference's first statistic ``max_l R_l / R_0``;
- (b) ``grad_floor``: ``G_L < grad_norm_floor`` (the deepest layer's BP gradient norm);
- (c) ``drift``: ``max_{l>=1} s_l > drift_ceiling`` (layer 0 never counts);
- (d) ``frozen_margin``: ``(headline_acc - frozen_baseline_acc) * 100 < frozen_margin_pp``, accuracies as fractions;
  skipped (``None``) without a frozen baseline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from guardchain.core.results import MetricVerdict
from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error
from guardchain.diagnostics.config import DiagnosticThresholds, GrowthStatistic

TRUSTWORTHY = "trustworthy"
WALK_BACK_PREFIX = "needs walk-back: "
#: The reference report's reason for each diagnostic, in its order.
REASONS: dict[str, str] = {
    "residual_explosion": "residual stream exploded",
    "grad_floor": "BP grad at numerical floor",
    "drift": "BP grad direction is drift-dominated",
    "frozen_margin": "deep blocks fail to beat frozen-random baseline",
}
RULE = "=" * 72


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _optional_floats(values: Sequence[Any]) -> tuple[float | None, ...]:
    return tuple(None if v is None else float(v) for v in values)


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise diag_error(
            DiagnosticsErrorCode.SETTINGS, f"{name} must be a fraction in [0, 1], got {value!r}", hint="0.87, not 87"
        )


@dataclass(frozen=True)
class DiagnosticReport:
    """Everything the four diagnostics measured, and what they conclude.

    :ivar method_name: the method (or model) the report is about.
    :ivar residual_norms: ``R_l``, ``l = 0 .. L``: median over the first batch's unmasked tokens of ``‖h_l‖₂``
        (``h_l`` the residual stream entering block ``l``; ``h_L`` the last block's output, before any final norm).
    :ivar bp_grad_norms: ``G_l = ‖∂Loss/∂h_l‖_F`` over the first batch's unmasked tokens × features, float32 or
        wider.
    :ivar per_layer_stability: ``s_l``, the mean over pairs of disjoint batches of the cosine between their
        gradient directions at layer ``l``; ``None`` where a batch's gradient is exactly zero (no direction).
    :ivar headline_acc: the accuracy (a fraction) that (d) compares, or ``None``.
    :ivar frozen_baseline_acc: the frozen-random-blocks accuracy (a fraction), or ``None`` to skip (d).
    :ivar thresholds: the four thresholds.
    :ivar growth_statistic: which statistic of (a) fires (``per_block`` or ``from_first``); both are reported.
    :ivar notes: free text.
    :ivar grad_token_median: per layer, the median over tokens of the per-token gradient norm ``‖g_{l,t}‖₂``.
    :ivar seeds: the seeds used (batch draw, masking), by name.
    :ivar batch_ids: the ids of the samples (windows, examples) of each batch, in batch order.
    :ivar setup: how the numbers were obtained: loss and its reduction, dtypes, token counts, drift mode, the
        source of the headline accuracy.
    """

    method_name: str
    residual_norms: tuple[float, ...]
    bp_grad_norms: tuple[float, ...]
    per_layer_stability: tuple[float | None, ...]
    headline_acc: float | None = None
    frozen_baseline_acc: float | None = None
    thresholds: DiagnosticThresholds = field(default_factory=DiagnosticThresholds)
    growth_statistic: GrowthStatistic = "per_block"
    notes: str = ""
    grad_token_median: tuple[float, ...] = ()
    seeds: Mapping[str, int] = field(default_factory=dict)
    batch_ids: tuple[tuple[str, ...], ...] = ()
    setup: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "residual_norms", _floats(self.residual_norms))
        object.__setattr__(self, "bp_grad_norms", _floats(self.bp_grad_norms))
        object.__setattr__(self, "per_layer_stability", _optional_floats(self.per_layer_stability))
        object.__setattr__(self, "grad_token_median", _floats(self.grad_token_median))
        object.__setattr__(self, "batch_ids", tuple(tuple(str(i) for i in b) for b in self.batch_ids))
        n = len(self.residual_norms)
        if n < 2:
            raise diag_error(DiagnosticsErrorCode.NO_BLOCKS, f"a report needs h_0 .. h_L with L >= 1, got {n} layers")
        lengths = {len(self.bp_grad_norms), len(self.per_layer_stability)}
        if self.grad_token_median:
            lengths.add(len(self.grad_token_median))
        if lengths != {n}:
            raise diag_error(DiagnosticsErrorCode.SETTINGS, f"per-layer arrays disagree on the layer count ({n} norms)")
        if self.growth_statistic not in get_args(GrowthStatistic):
            raise diag_error(
                DiagnosticsErrorCode.SETTINGS,
                f"unknown growth statistic {self.growth_statistic!r}",
                hint=f"one of {get_args(GrowthStatistic)}",
            )
        _check_fraction("headline_acc", self.headline_acc)
        _check_fraction("frozen_baseline_acc", self.frozen_baseline_acc)
        if self.frozen_baseline_acc is not None and self.headline_acc is None:
            raise diag_error(
                DiagnosticsErrorCode.SETTINGS, "a frozen baseline accuracy needs a headline accuracy to compare with"
            )

    # -- (a) residual growth -------------------------------------------------------------------------------------

    @property
    def block_growth(self) -> tuple[float | None, ...]:
        """``R_{l+1} / R_l`` for ``l = 0 .. L-1``; ``None`` where ``R_l = 0`` (no ratio)."""
        r = self.residual_norms
        return tuple(r[i + 1] / r[i] if r[i] > 0 else None for i in range(len(r) - 1))

    @property
    def growth_per_block(self) -> float | None:
        """The largest single-block amplification ``max_l R_{l+1}/R_l`` (``None`` when no ratio exists)."""
        ratios = [g for g in self.block_growth if g is not None]
        return max(ratios) if ratios else None

    @property
    def growth_from_first(self) -> float | None:
        """The reference's first statistic, ``max_l R_l / R_0`` (``None`` when ``R_0 <= 0``)."""
        first = self.residual_norms[0]
        return max(self.residual_norms) / first if first > 0 else None

    @property
    def growth(self) -> float | None:
        """The statistic (a) fires on (``growth_statistic``)."""
        return self.growth_per_block if self.growth_statistic == "per_block" else self.growth_from_first

    def _exceeds(self, value: float | None) -> bool:
        return value is not None and value > self.thresholds.residual_explosion_ratio

    @property
    def residual_exploded(self) -> bool:
        """(a) fired."""
        return self._exceeds(self.growth)

    # -- (b) gradient floor --------------------------------------------------------------------------------------

    @property
    def grad_at_floor(self) -> bool:
        """(b) fired: the deepest layer's gradient norm is below the floor."""
        return self.bp_grad_norms[-1] < self.thresholds.grad_norm_floor

    # -- (c) drift -----------------------------------------------------------------------------------------------

    @property
    def stability_layer(self) -> int | None:
        """The layer ``l >= 1`` with the largest ``s_l`` (the lowest such layer on ties); ``None`` if none has one."""
        best: int | None = None
        for layer, value in enumerate(self.per_layer_stability):
            if layer == 0 or value is None:
                continue
            current = self.per_layer_stability[best] if best is not None else None
            if current is None or value > current:
                best = layer
        return best

    @property
    def cross_batch_stability(self) -> float | None:
        """``max_{l>=1} s_l``, or ``None`` when no layer >= 1 has a direction."""
        layer = self.stability_layer
        return None if layer is None else self.per_layer_stability[layer]

    @property
    def drift_dominated(self) -> bool:
        """(c) fired."""
        value = self.cross_batch_stability
        return value is not None and value > self.thresholds.drift_ceiling

    # -- (d) frozen-blocks margin ----------------------------------------------------------------------------------

    @property
    def frozen_margin_pp(self) -> float | None:
        """``(headline_acc - frozen_baseline_acc) * 100`` in percentage points, or ``None`` without a baseline."""
        if self.frozen_baseline_acc is None or self.headline_acc is None:
            return None
        return (self.headline_acc - self.frozen_baseline_acc) * 100.0

    @property
    def frozen_undercut(self) -> bool | None:
        """(d) fired; ``None`` when skipped (no frozen baseline)."""
        margin = self.frozen_margin_pp
        return None if margin is None else margin < self.thresholds.frozen_margin_pp

    # -- verdict -------------------------------------------------------------------------------------------------

    @property
    def fired(self) -> dict[str, bool | None]:
        """Each diagnostic's verdict, in the reference's order (``None``: skipped)."""
        return {
            "residual_explosion": self.residual_exploded,
            "grad_floor": self.grad_at_floor,
            "drift": self.drift_dominated,
            "frozen_margin": self.frozen_undercut,
        }

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons of the diagnostics that fired, in order."""
        return tuple(REASONS[name] for name, fired in self.fired.items() if fired)

    @property
    def passed(self) -> bool:
        """No diagnostic fired."""
        return not self.reasons

    @property
    def verdict(self) -> str:
        """``"trustworthy"`` or ``"needs walk-back: <reason>; <reason>"``."""
        return TRUSTWORTHY if self.passed else WALK_BACK_PREFIX + "; ".join(self.reasons)

    def metric_verdict(self) -> MetricVerdict:
        """The verdict as the kernel's :class:`~guardchain.core.results.MetricVerdict` (a certification gates on
        it)."""
        return MetricVerdict(passed=self.passed, label=self.verdict, reasons=self.reasons)

    # -- serialization -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the reference report's fields (``method_name``, ``notes``, ``residual_norms``,
        ``bp_grad_norms``, ``stability_layer``, ``cross_batch_stability``, ``headline_acc``, ``frozen_baseline_acc``,
        ``thresholds``) and ``verdict``, then ``passed``, ``reasons``, ``growth_statistic``, per-diagnostic
        ``diagnostics``, the raw ``per_layer`` arrays, ``seeds``, ``batch_ids`` and ``setup``."""
        t = self.thresholds
        fired = self.fired
        min_layer = min(range(len(self.bp_grad_norms)), key=lambda i: self.bp_grad_norms[i])
        return {
            "method_name": self.method_name,
            "notes": self.notes,
            "residual_norms": list(self.residual_norms),
            "bp_grad_norms": list(self.bp_grad_norms),
            "stability_layer": self.stability_layer,
            "cross_batch_stability": self.cross_batch_stability,
            "headline_acc": self.headline_acc,
            "frozen_baseline_acc": self.frozen_baseline_acc,
            "thresholds": t.model_dump(),
            "verdict": self.verdict,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "growth_statistic": self.growth_statistic,
            "diagnostics": {
                "residual_explosion": {
                    "fired": fired["residual_explosion"],
                    "statistic": self.growth_statistic,
                    "value": self.growth,
                    "per_block_growth": self.growth_per_block,
                    "growth_from_first": self.growth_from_first,
                    "per_block_exceeds": self._exceeds(self.growth_per_block),
                    "from_first_exceeds": self._exceeds(self.growth_from_first),
                    "threshold": t.residual_explosion_ratio,
                },
                "grad_floor": {
                    "fired": fired["grad_floor"],
                    "last_layer_norm": self.bp_grad_norms[-1],
                    "min_norm": self.bp_grad_norms[min_layer],
                    "min_layer": min_layer,
                    "threshold": t.grad_norm_floor,
                },
                "drift": {
                    "fired": fired["drift"],
                    "value": self.cross_batch_stability,
                    "layer": self.stability_layer,
                    "excluded_layers": [0],
                    "threshold": t.drift_ceiling,
                },
                "frozen_margin": {
                    "fired": fired["frozen_margin"],
                    "skipped": fired["frozen_margin"] is None,
                    "margin_pp": self.frozen_margin_pp,
                    "threshold": t.frozen_margin_pp,
                },
            },
            "per_layer": {
                "residual_norms": list(self.residual_norms),
                "block_growth": list(self.block_growth),
                "bp_grad_norms": list(self.bp_grad_norms),
                "grad_token_median": list(self.grad_token_median),
                "stability": list(self.per_layer_stability),
            },
            "seeds": dict(self.seeds),
            "batch_ids": [list(b) for b in self.batch_ids],
            "setup": dict(self.setup),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiagnosticReport:
        """Rebuild a report from :meth:`to_dict` (derived keys are recomputed, not trusted; extra keys such as a
        chain step's ``artifacts`` are ignored)."""
        per_layer = data.get("per_layer", {})
        return cls(
            method_name=data["method_name"],
            residual_norms=tuple(data["residual_norms"]),
            bp_grad_norms=tuple(data["bp_grad_norms"]),
            per_layer_stability=tuple(per_layer["stability"]),
            headline_acc=data.get("headline_acc"),
            frozen_baseline_acc=data.get("frozen_baseline_acc"),
            thresholds=DiagnosticThresholds(**data.get("thresholds", {})),
            growth_statistic=data.get("growth_statistic", "per_block"),
            notes=data.get("notes", ""),
            grad_token_median=tuple(per_layer.get("grad_token_median", ())),
            seeds=dict(data.get("seeds", {})),
            batch_ids=tuple(tuple(b) for b in data.get("batch_ids", ())),
            setup=dict(data.get("setup", {})),
        )

    # -- text ----------------------------------------------------------------------------------------------------

    def render(self) -> str:
        """The plain-text report, with the reference pretty printer's sections in its order: a rule of 72 ``=``,
        the title, ``Notes:`` (when given), (a) per-layer norms, (b) per-layer gradient norms, (c) the stability at
        its layer, (d) the frozen-blocks comparison or ``NOT PROVIDED — diagnostic skipped.``, a ``FLAG:`` line
        under each diagnostic that fired, ``VERDICT: <verdict>`` and the closing rule."""
        t = self.thresholds
        lines = [RULE, f"FA Diagnostic Protocol Report — method: {self.method_name}"]
        if self.notes:
            lines.append(f"Notes: {self.notes}")
        lines += ["", "(a) Residual stream norms: median over tokens of ||h_l||_2"]
        lines += [f"  h_{layer}: {value:.3e}" for layer, value in enumerate(self.residual_norms)]
        for name, value, label in (
            ("per_block", self.growth_per_block, "max per-block growth  max_l R_{l+1}/R_l"),
            ("from_first", self.growth_from_first, "growth from layer 0   max_l R_l/R_0    "),
        ):
            role = "decides" if name == self.growth_statistic else "reported"
            shown = "undefined" if value is None else f"{value:.3e}"
            lines.append(f"  {label}: {shown} ({role})")
        if self.residual_exploded:
            lines.append(
                f"  FLAG: {REASONS['residual_explosion']} ({self.growth_statistic.replace('_', '-')} growth "
                f"{self.growth:.3e} > {t.residual_explosion_ratio:g})"
            )
        reduction = self.setup.get("reduction", "mean cross-entropy")
        lines += ["", f"(b) BP gradient norms: ||dLoss/dh_l||_F, loss = {reduction}"]
        lines += [f"  g_{layer}: {value:.3e}" for layer, value in enumerate(self.bp_grad_norms)]
        if self.grad_at_floor:
            lines.append(
                f"  FLAG: {REASONS['grad_floor']} (g_{len(self.bp_grad_norms) - 1} = {self.bp_grad_norms[-1]:.3e} "
                f"< {t.grad_norm_floor:g})"
            )
        n_batches = self.setup.get("n_batches", len(self.batch_ids) or "?")
        lines += ["", f"(c) Cross-batch direction stability: mean pairwise cosine over {n_batches} disjoint batches"]
        layer = self.stability_layer
        if layer is None:
            lines.append("  no layer >= 1 has a gradient direction (zero gradients)")
        else:
            lines.append(f"  layer {layer}: {self.cross_batch_stability:.3f} (max over layers >= 1; layer 0 excluded)")
        if self.drift_dominated:
            lines.append(f"  FLAG: {REASONS['drift']} ({self.cross_batch_stability:.3f} > {t.drift_ceiling:g})")
        lines += ["", "(d) Frozen-random-blocks baseline"]
        margin = self.frozen_margin_pp
        if margin is None or self.headline_acc is None or self.frozen_baseline_acc is None:
            lines.append("  NOT PROVIDED — diagnostic skipped.")
        else:
            lines += [
                f"  headline acc: {self.headline_acc:.4f}",
                f"  frozen acc:   {self.frozen_baseline_acc:.4f}",
                f"  margin:       {margin:+.2f} pp",
            ]
            if self.frozen_undercut:
                lines.append(f"  FLAG: {REASONS['frozen_margin']} ({margin:+.2f} pp < {t.frozen_margin_pp:g} pp)")
        lines += ["", f"VERDICT: {self.verdict}", RULE]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
