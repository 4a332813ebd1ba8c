"""How a metric gate compares a baseline result with a subject result, and what its bounds say.

The same pure functions decide the gate when a certification (or a chain) runs and when ``verify`` re-derives it
from the recorded arrays, so the two cannot drift apart.

Comparisons (``compare``):

* ``ratio`` — per-unit values on a log scale (a negative log-likelihood): the paired BCa interval of
  exp(Σ w Δ / Σ w), Δ = subject − baseline per unit (:func:`guardchain.certify.statistics.paired_comparison`);
* ``difference`` — per-unit values on their own scale (accuracy per example, d_pr per site): the paired BCa
  interval of Σ w Δ / Σ w;
* ``z`` — a scalar with a standard error (LLC over chains): z = (v_s − v_b) / √(se_b² + se_s²), the interval
  ``[z, z]``; an infinite z when both errors are zero and the values differ;
* ``verdict`` — the subject's :class:`~guardchain.core.results.MetricVerdict` must pass.

Bounds: ``max`` applies to the interval's upper end (``z`` itself for ``z``), ``min`` to its lower end; a gate
passes when every bound it has holds. A missing interval (fewer than two units) fails a bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from guardchain.certify.codes import CertifyErrorCode
from guardchain.certify.statistics import BootstrapSettings, paired_comparison
from guardchain.core.errors import GuardchainError
from guardchain.core.results import MetricResult

CompareKind = Literal["ratio", "difference", "z", "verdict"]


@dataclass(frozen=True)
class Bound:
    """One bound of a gate and its outcome.

    :ivar side: ``max`` (upper end ≤ threshold), ``min`` (lower end ≥ threshold) or ``verdict``.
    :ivar measured: the interval end (or z, or the verdict's ``passed``) the threshold applies to.
    """

    side: Literal["max", "min", "verdict"]
    measured: float | bool | None
    threshold: float | None
    passed: bool

    @property
    def comparison(self) -> Literal["le", "ge", "true"]:
        """The certificate gate's comparison for this bound."""
        return {"max": "le", "min": "ge", "verdict": "true"}[self.side]  # type: ignore[return-value]


@dataclass(frozen=True)
class GateComparison:
    """A metric gate's comparison of subject against baseline.

    :ivar estimate: ratio, difference, or z (``None`` for a verdict comparison).
    :ivar ci_low: lower end of the interval the bounds apply to (z for ``z``).
    :ivar ci_high: upper end.
    :ivar bounds: each bound with its outcome.
    """

    compare: CompareKind
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    bounds: tuple[Bound, ...]

    @property
    def passed(self) -> bool:
        """Whether every bound holds."""
        return all(b.passed for b in self.bounds)


def summarize(result: MetricResult) -> dict[str, Any]:
    """What a gate records of one side's result: enough to recompute the comparison."""
    return {
        "metric": result.metric,
        "value": _finite(result.value),
        "uncertainty": _finite(result.uncertainty),
        "units": result.units,
        "unit_ids": list(result.unit_ids),
        "per_unit": [_finite(v) for v in result.per_unit],
        "unit_weights": list(result.unit_weights),
        "verdict": result.verdict.model_dump(mode="json") if result.verdict is not None else None,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def compare(
    kind: CompareKind,
    baseline: Mapping[str, Any],
    subject: Mapping[str, Any],
    *,
    upper: float | None,
    lower: float | None,
    settings: BootstrapSettings,
) -> GateComparison:
    """Compare two recorded sides (:func:`summarize` form) and apply the bounds (see the module docstring).

    :raises GuardchainError: ``GC-CERT-GATE-METRIC`` when the results lack what the comparison needs (per-unit
        values, standard errors, a verdict), ``GC-PAIRING-MISMATCH`` when the units cannot be paired.
    """
    if kind == "verdict":
        verdict = subject.get("verdict")
        if not isinstance(verdict, Mapping) or not isinstance(verdict.get("passed"), bool):
            raise _no("a verdict", subject)
        passed = bool(verdict["passed"])
        return GateComparison(kind, None, None, None, (Bound("verdict", passed, None, passed),))
    if kind == "z":
        values = [baseline.get("value"), subject.get("value")]
        errors = [baseline.get("uncertainty"), subject.get("uncertainty")]
        if not all(isinstance(v, int | float) for v in values + errors):
            raise _no("a finite value and standard error", subject)
        difference = float(values[1]) - float(values[0])  # type: ignore[arg-type]
        se = math.hypot(float(errors[0]), float(errors[1]))  # type: ignore[arg-type]
        z = difference / se if se > 0 else (0.0 if difference == 0 else math.copysign(math.inf, difference))
        return GateComparison(kind, z, z, z, _bounds(z, z, upper, lower))
    sides = []
    for side in (baseline, subject):
        per_unit = side.get("per_unit") or []
        if not per_unit or any(v is None for v in per_unit):
            raise _no("finite per-unit values", side)
        sides.append(
            MetricResult(
                metric=str(side.get("metric", "")),
                value=0.0,
                unit_ids=tuple(side.get("unit_ids") or ()),
                per_unit=tuple(float(v) for v in per_unit),
                unit_weights=tuple(side.get("unit_weights") or ()),
            )
        )
    paired = paired_comparison(sides[0], sides[1], kind=kind, settings=settings)
    return GateComparison(
        kind, paired.estimate, paired.ci_low, paired.ci_high, _bounds(paired.ci_low, paired.ci_high, upper, lower)
    )


def _bounds(low: float | None, high: float | None, upper: float | None, lower: float | None) -> tuple[Bound, ...]:
    out = []
    if upper is not None:
        out.append(Bound("max", high, upper, high is not None and not math.isnan(high) and high <= upper))
    if lower is not None:
        out.append(Bound("min", low, lower, low is not None and not math.isnan(low) and low >= lower))
    return tuple(out)


def _no(what: str, side: Mapping[str, Any]) -> GuardchainError:
    return GuardchainError.single(
        CertifyErrorCode.GATE_METRIC,
        f"metric {side.get('metric')!r} gave no {what}, which this gate's comparison needs",
    )
