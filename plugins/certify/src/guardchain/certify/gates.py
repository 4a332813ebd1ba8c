"""The gates of a certificate, derived from the primary metric, the guard reports and the policy.

One function (:func:`derive_gates`) builds the list when a certification runs and again when ``verify``
re-derives it from the certificate's recorded values, so what decides and what checks cannot drift apart.

Order: ``subject_finite``; the primary metric's ``primary_ratio_ci_upper``, ``preview_final_drift``, ``pairing``,
``catastrophe``; then per gate-mode guard in chain order either ``guard:<position>:<name>`` (its status is not
``fail``) or, for a metric gate, one ``metric:<position>:<label>:<bound>`` per bound. Guards in monitor mode make
no gate. A certification without a primary metric (``policy.primary_metric`` false) has neither
``subject_finite`` nor the primary gates. Rolling an edit back follows :func:`rollback_required`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from guardchain.certify.certificate import Gate, PrimaryMetric
from guardchain.certify.policy import ROLLBACK_GATES, Policy, is_metric_gate

PRIMARY_GATES = ("primary_ratio_ci_upper", "preview_final_drift", "pairing", "catastrophe")


def pairing_holds(pm: PrimaryMetric) -> bool:
    """Same window ids and weights for both models on each split, counts consistent, preview and final disjoint."""
    return (
        len(pm.preview.unit_ids) == pm.preview.n_windows
        and len(pm.final.unit_ids) == pm.final.n_windows
        and not set(pm.preview.unit_ids) & set(pm.final.unit_ids)
        and pm.preview.baseline.unit_weights == pm.preview.subject.unit_weights
        and pm.final.baseline.unit_weights == pm.final.subject.unit_weights
    )


def derive_gates(
    policy: Policy, primary: PrimaryMetric | None, guard_reports: Sequence[Mapping[str, Any]]
) -> list[Gate]:
    """Every gate with its measured value, threshold, outcome and rollback flag (see the module docstring).

    :param guard_reports: the guards' reports as JSON, in chain order (position = index in this list).
    """
    t = policy.thresholds
    gates = (
        []
        if not policy.primary_metric
        else [
            Gate(
                name="subject_finite",
                comparison="true",
                measured=primary is not None,
                threshold=None,
                passed=primary is not None,
                rollback=True,
                detail="the subject's log-probabilities are finite on every window (else GC-MODEL-NONFINITE)",
            )
        ]
    )
    if primary is not None:
        final = primary.final
        drift = _json(primary.preview.ratio / final.ratio) if final.ratio else None
        measured: dict[str, Any] = {
            "primary_ratio_ci_upper": _json(final.ci_high),
            "preview_final_drift": drift,
            "pairing": pairing_holds(primary),
            "catastrophe": _json(final.ratio),
        }
        rules: dict[str, tuple[str, Any, str]] = {
            "primary_ratio_ci_upper": (
                "le",
                t.ratio_ci_upper_max,
                "upper end of the BCa CI of ppl_subject / ppl_baseline on the final windows",
            ),
            "preview_final_drift": (
                "within",
                [t.drift_min, t.drift_max],
                "ratio on preview windows / ratio on final windows",
            ),
            "pairing": ("true", None, "same window ids and weights for both models; preview and final disjoint"),
            "catastrophe": ("le", t.catastrophe_ratio, "final ratio; above it the edit is rolled back"),
        }
        for name in PRIMARY_GATES:
            comparison, threshold, detail = rules[name]
            gates.append(
                Gate(
                    name=name,
                    comparison=comparison,  # type: ignore[arg-type]
                    measured=measured[name],
                    threshold=threshold,
                    passed=gate_passes(comparison, measured[name], threshold),
                    rollback=name in ROLLBACK_GATES,
                    detail=detail,
                )
            )
    for index, report in enumerate(guard_reports):
        if report.get("mode") != "gate":
            continue
        name = str(report.get("guard"))
        step = policy.guards[index] if index < len(policy.guards) else None
        if step is not None and is_metric_gate(step.guard):
            gates += _metric_gates(index, report)
            continue
        status = report.get("status")
        fails = [str(f.get("code")) for f in report.get("findings") or () if f.get("severity") == "fail"]
        gates.append(
            Gate(
                name=f"guard:{index}:{name}",
                comparison="not_fail",
                measured=str(status),
                threshold=None,
                passed=status != "fail",
                rollback=True,
                detail="; ".join(fails),
            )
        )
    return gates


def _metric_gates(index: int, report: Mapping[str, Any]) -> list[Gate]:
    details = report.get("details") or {}
    label = str(details.get("label"))
    interval = details.get("interval")
    bounds = details.get("bounds") or []
    if details.get("subject") is None:  # the subject's outputs were not finite: one failed gate
        return [
            Gate(
                name=f"metric:{index}:{label}:finite",
                comparison="true",
                measured=False,
                threshold=None,
                passed=False,
                rollback=True,
                detail=f"{details.get('metric')} of the subject is not finite",
            )
        ]
    out = []
    for bound in bounds:
        side = bound.get("side")
        comparison = {"max": "le", "min": "ge", "verdict": "true"}.get(str(side), "true")
        out.append(
            Gate(
                name=f"metric:{index}:{label}:{side}",
                comparison=comparison,  # type: ignore[arg-type]
                measured=bound.get("measured"),
                threshold=bound.get("threshold"),
                passed=gate_passes(comparison, bound.get("measured"), bound.get("threshold")),
                rollback=True,
                interval=list(interval) if isinstance(interval, list) else None,
                detail=f"{details.get('compare')} of {details.get('metric')}, subject vs baseline",
            )
        )
    return out


def gate_passes(comparison: str, measured: Any, threshold: Any) -> bool:
    """How a gate's outcome follows from its measured value and threshold (see :class:`Gate`); anything malformed
    (a missing or non-numeric value, a threshold of the wrong shape, NaN) does not pass."""
    if comparison == "true":
        return measured is True
    if comparison == "not_fail":
        return isinstance(measured, str) and measured in {"pass", "warn"}
    value = _number(measured)
    if value is None:
        return False
    if comparison in {"le", "ge"}:
        bound = _number(threshold)
        if bound is None:
            return False
        return value <= bound if comparison == "le" else value >= bound
    if comparison == "within":
        if not isinstance(threshold, list | tuple) or len(threshold) != 2:
            return False
        low, high = _number(threshold[0]), _number(threshold[1])
        return low is not None and high is not None and low <= value <= high
    return False


def rollback_required(gates: Sequence[Gate]) -> bool:
    """An edit is rolled back when a gate whose ``rollback`` flag is set failed."""
    return any(g.rollback and not g.passed for g in gates)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _json(value: float | None) -> float | None:
    """A float as a certificate can hold it (JSON has no NaN or infinity): those become ``None``."""
    return value if value is not None and math.isfinite(value) else None
