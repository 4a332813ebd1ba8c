"""How the HTML report shows an ``fa_diagnostics`` result (``guardchain_render_result``): the verdict, the four
checks against their thresholds, and the per-layer curves they are read from, as declarative charts of
:mod:`guardchain.core.views`. Torch-free: the report imports it without loading a model.

Per layer ``l`` of the residual stream ``h_0 … h_L`` (``details.per_layer``): ``R_l`` = median over tokens of
‖h_l,t‖₂ (check (a) fires when the growth ``R_{l+1} / R_l`` of a block exceeds its ratio), ``G_l`` = ‖∂Loss/∂h_l‖_F
of the mean cross-entropy (check (b) fires when ``G_L`` is below its floor), and ``s_l``, the mean pairwise cosine
of gradient directions across disjoint batches (check (c) fires when ``max_{l≥1} s_l`` exceeds its ceiling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from guardchain.core import views as fmt
from guardchain.core.views import Chart, ResultView, Rule, Series, Table, Text

Block = Chart | Table | Text

CHECKS = {
    "residual_explosion": "(a) residual growth",
    "grad_floor": "(b) BP-gradient floor",
    "drift": "(c) cross-batch drift",
    "frozen_margin": "(d) frozen-blocks margin",
}


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _values(values: Any) -> list[float | None]:
    return [_num(v) for v in values] if isinstance(values, list) else []


def render_fa(result: Mapping[str, Any]) -> ResultView | None:
    """The view of an ``fa_diagnostics`` result (``None`` when it has no per-layer record)."""
    d = result.get("details")
    if not isinstance(d, Mapping) or not isinstance(d.get("per_layer"), Mapping):
        return None
    per_layer: Mapping[str, Any] = d["per_layer"]
    thresholds = _map(d.get("thresholds"))
    verdict = _map(result.get("verdict"))
    reasons = [str(r) for r in verdict.get("reasons") or d.get("reasons") or []]
    summary = (
        f"verdict: {verdict.get('label') or d.get('verdict')}; {fmt.number(result.get('value'))} diagnostic(s) fired"
    )
    summary += f" ({'; '.join(reasons)})" if reasons else ""
    blocks: list[Block] = [_checks_table(d)]
    residual = _values(per_layer.get("residual_norms"))
    if residual:
        blocks.append(
            _layer_chart(
                "Residual-stream norm per layer",
                residual,
                "median ‖h_l‖₂ over tokens",
                caption="R_l: the median over tokens of the residual stream's L2 norm at the input of block l (the "
                "last point is the last block's output).",
            )
        )
    growth = _values(per_layer.get("block_growth"))
    ratio = _num(thresholds.get("residual_explosion_ratio"))
    if growth:
        blocks.append(
            _layer_chart(
                "Growth of the residual norm per block",
                growth,
                "R_{l+1} / R_l",
                x_label="block",
                rules=[Rule(y=ratio, label="explosion ratio")] if ratio else [],
                caption="Check (a) fires when a block multiplies the residual norm by more than the ratio.",
            )
        )
    grads = _values(per_layer.get("bp_grad_norms"))
    floor = _num(thresholds.get("grad_norm_floor"))
    if grads:
        blocks.append(
            _layer_chart(
                "Backprop gradient norm per layer",
                grads,
                "‖∂Loss/∂h_l‖_F",
                rules=[Rule(y=floor, label="gradient floor")] if floor else [],
                caption="G_l of the mean next-token cross-entropy, in float32; check (b) fires when the last "
                "layer's is below the floor.",
            )
        )
    stability = _values(per_layer.get("stability"))
    ceiling = _num(thresholds.get("drift_ceiling"))
    if stability:
        blocks.append(
            _layer_chart(
                "Cross-batch gradient-direction similarity per layer",
                stability,
                "mean pairwise cosine s_l",
                rules=[Rule(y=ceiling, label="drift ceiling")] if ceiling is not None else [],
                caption="Mean cosine between gradient directions of disjoint batches; check (c) fires when the "
                "largest over l ≥ 1 exceeds the ceiling.",
                log=False,
            )
        )
    return ResultView(title="fa_diagnostics: the four-check FA protocol", summary=summary, blocks=blocks)


def _checks_table(d: Mapping[str, Any]) -> Table:
    diagnostics = _map(d.get("diagnostics"))
    rows = []
    for key, label in CHECKS.items():
        check = _map(diagnostics.get(key))
        value = check.get("value", check.get("last_layer_norm", check.get("margin_pp")))
        if check.get("skipped"):
            outcome = "skipped"
        else:
            outcome = "fired" if check.get("fired") else "not fired" if check.get("fired") is False else fmt.DASH
        rows.append([label, value, check.get("threshold"), outcome])
    return Table(title="The four checks", columns=["check", "statistic", "threshold", "outcome"], rows=rows)


def _layer_chart(
    title: str,
    values: Sequence[float | None],
    y_label: str,
    *,
    x_label: str = "layer l",
    rules: Sequence[Rule] = (),
    caption: str = "",
    log: bool = True,
) -> Chart:
    positive = [v for v in values if v is not None and v > 0]
    spread = max(positive) / min(positive) if positive else 1.0
    limits = [r.y for r in rules if r.y is not None and r.y > 0]
    if limits and positive:
        spread = max(spread, max(positive + limits) / min(positive + limits))
    log_y = log and len(positive) == len([v for v in values if v is not None]) and spread > 50
    return Chart(
        kind="line",
        title=title,
        x_label=x_label,
        y_label=y_label,
        series=[Series(name=y_label, x=[float(i) for i in range(len(values))], y=list(values))],
        rules=list(rules),
        log_y=log_y,
        caption=caption + (" Logarithmic scale." if log_y else ""),
    )
