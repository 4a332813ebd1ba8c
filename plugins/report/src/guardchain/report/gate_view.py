"""The view of a ``metric_gate`` report (guardchain-certify): the metric on baseline and subject, unit by unit,
the compared quantity with its interval, and each bound with its outcome.

What is compared (``details.compare``): ``ratio`` — exp of the weighted mean of per-unit log differences, with its
BCa interval; ``difference`` — the weighted mean per-unit difference, with its BCa interval; ``z`` —
``(v_s − v_b) / √(se_b² + se_s²)``; ``verdict`` — the subject's own verdict. ``max`` bounds the interval's upper end,
``min`` its lower end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from guardchain.core import views as fmt
from guardchain.core.views import Chart, ResultView, Series, Table, Text
from guardchain.report.generic import MAX_BAR_UNITS, findings_table

#: units longer than this go to the caption instead of the axis title
MAX_UNIT_CHARS = 20

QUANTITY = {
    "ratio": "ratio exp(mean Δ log value)",
    "difference": "mean difference (subject − baseline)",
    "z": "z = (v_s − v_b) / √(se_b² + se_s²)",
    "verdict": "the subject's verdict",
}


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def metric_gate_view(report: Mapping[str, Any]) -> ResultView:
    """The view of one metric gate's report."""
    d = report.get("details") or {}
    label, metric, compare = str(d.get("label")), str(d.get("metric")), str(d.get("compare"))
    base = _map(d.get("baseline"))
    subj = d.get("subject") if isinstance(d.get("subject"), Mapping) else None
    interval = d.get("interval") if isinstance(d.get("interval"), list) else None
    confidence = (d.get("bootstrap") or {}).get("confidence")
    bounds = [b for b in d.get("bounds") or [] if isinstance(b, Mapping)]
    outcome = ", ".join(
        f"{b.get('side')} {fmt.threshold(b.get('threshold'), 'le' if b.get('side') == 'max' else 'ge')}: "
        f"{'pass' if b.get('passed') else 'FAIL'}"
        for b in bounds
        if b.get("side") in {"max", "min"}
    )
    summary = f"{report.get('status')} — {QUANTITY.get(compare, compare)} = {fmt.number(d.get('estimate'))}"
    if interval and compare in {"ratio", "difference"} and isinstance(confidence, float):
        summary += f", {confidence:.0%} BCa interval {fmt.interval(interval[0], interval[1])}"
    summary += f"; {outcome}" if outcome else ""
    rows: list[list[Any]] = [
        ["baseline", _value(base)],
        ["subject", _value(subj) if subj is not None else "not finite"],
        [QUANTITY.get(compare, compare), d.get("estimate")],
    ]
    if interval and len(interval) == 2 and compare in {"ratio", "difference"}:
        label_ci = f"{confidence:.0%} BCa interval" if isinstance(confidence, float) else "interval"
        rows.append([label_ci, fmt.interval(interval[0], interval[1])])
    for bound in bounds:
        side = str(bound.get("side"))
        comparison = {"max": "le", "min": "ge"}.get(side, "true")
        rows.append(
            [
                f"bound ({side})",
                f"{fmt.threshold(bound.get('threshold'), comparison)}: {'pass' if bound.get('passed') else 'FAIL'}",
            ]
        )
    blocks: list[Chart | Table | Text] = [Table(title=f"Gate {label}", columns=["quantity", "value"], rows=rows)]
    chart = _per_unit(label, metric, base, subj)
    if chart is not None:
        blocks.append(chart)
    findings = [f for f in report.get("findings") or [] if isinstance(f, Mapping)]
    if findings:
        blocks.append(findings_table(findings))
    return ResultView(title=f"Metric gate {label}: {metric} ({compare})", summary=summary, blocks=blocks)


def _value(side: Mapping[str, Any]) -> str:
    text = fmt.number(side.get("value"))
    if side.get("uncertainty") is not None:
        text += f" ± {fmt.number(side.get('uncertainty'))}"
    units = side.get("units")
    verdict = side.get("verdict")
    if isinstance(verdict, Mapping):
        text += f" ({verdict.get('label')})"
    return f"{text} {units}" if units else text


def _numbers(values: Any) -> list[float | None]:
    return [float(v) if isinstance(v, int | float) and math.isfinite(v) else None for v in values or []]


def _per_unit(label: str, metric: str, base: Mapping[str, Any], subj: Mapping[str, Any] | None) -> Chart | None:
    b = _numbers(base.get("per_unit"))
    s = _numbers(subj.get("per_unit")) if subj is not None else []
    if not b or all(v is None for v in b):
        return None
    ids = [str(u) for u in base.get("unit_ids") or []]
    units = str(base.get("units") or "")
    bare = metric.rpartition(":")[2]
    series = [Series(name="baseline", x=[float(i) for i in range(len(b))], y=b)]
    if s and len(s) == len(b):
        series.append(Series(name="subject", x=[float(i) for i in range(len(s))], y=s))
    title = f"{label}: {bare} per unit, baseline and subject"
    unit = units if len(units) <= MAX_UNIT_CHARS else ""
    caption = f"{bare}: {units}." if units and not unit else ""
    if len(b) <= MAX_BAR_UNITS and len(ids) == len(b):
        return Chart(
            kind="bar",
            title=title,
            x_label="unit",
            y_label=bare,
            y_unit=unit,
            categories=ids,
            series=series,
            caption=caption,
        )
    return Chart(
        kind="line", title=title, x_label="unit index", y_label=bare, y_unit=unit, series=series, caption=caption
    )
