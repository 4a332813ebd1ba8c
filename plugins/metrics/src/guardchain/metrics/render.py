"""How the HTML report shows this member's metrics (``guardchain_render_result``), as declarative charts and tables
of :mod:`guardchain.core.views`. Torch-free: the report imports it without loading a model.

* ``ppl`` — the mean NLL of every window (nats/token) with the token-weighted mean, and the perplexity
  ``exp(Σ w_i l_i / Σ w_i)``;
* ``accuracy`` — the running accuracy over the examples, ending at the reported fraction, with its binomial
  standard error;
* ``llc`` — the SGLD loss trace of every chain with the burn-in shaded and L0 (the loss at w*) marked, read from
  the run's ``llc/traces.json`` (the file the result names in ``details.traces``); λ̂ per chain with their mean;
  the sampler's health checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guardchain.core import views as fmt
from guardchain.core.views import Band, Chart, ResultView, Rule, Series, Table, Text

Block = Chart | Table | Text
#: the largest traces file read, in bytes (the report treats files as untrusted input)
MAX_TRACES_BYTES = 64 << 20
#: windows up to this many are drawn as bars labelled by id; more as a line over the window index
MAX_BARS = 40


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def render_metric(name: str, result: Mapping[str, Any], artifacts: Mapping[str, Path]) -> ResultView | None:
    """The view of a ``ppl``, ``accuracy`` or ``llc`` result (``None`` for any other metric)."""
    if name == "ppl":
        return _ppl(result)
    if name == "accuracy":
        return _accuracy(result)
    if name == "llc":
        return _llc(result, artifacts)
    return None


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _details(result: Mapping[str, Any]) -> Mapping[str, Any]:
    details = result.get("details")
    return details if isinstance(details, Mapping) else {}


# -- ppl ---------------------------------------------------------------------------------------------------------


def _ppl(result: Mapping[str, Any]) -> ResultView:
    d = _details(result)
    nll = [_num(v) for v in result.get("per_unit") or []]
    ids = [str(u) for u in result.get("unit_ids") or []]
    mode = "pseudo-perplexity" if d.get("mode") == "pseudo" else "perplexity"
    summary = (
        f"{mode} {fmt.number(result.get('value'))}"
        + (f" ± {fmt.number(result.get('uncertainty'))}" if result.get("uncertainty") is not None else "")
        + f" on {d.get('n_windows', len(nll))} {d.get('split', '')} windows ({fmt.number(d.get('n_tokens'))} tokens); "
        f"mean NLL {fmt.number(d.get('mean_nll'))} nats/token"
    )
    rows = [
        [mode, result.get("value")],
        ["uncertainty (delta method, windows as clusters)", result.get("uncertainty")],
        ["mean NLL (token-weighted), nats/token", d.get("mean_nll")],
        ["windows", d.get("n_windows")],
        ["tokens scored", d.get("n_tokens")],
        ["window length, tokens", d.get("seq_len")],
        ["split", d.get("split")],
        ["mode", f"{d.get('mode')} ({d.get('mode_source')})" if d.get("mode") else None],
    ]
    blocks: list[Block] = [Table(title="Perplexity", columns=["quantity", "value"], rows=rows)]
    if nll and any(v is not None for v in nll):
        mean = _num(d.get("mean_nll"))
        rules = [Rule(y=mean, label="token-weighted mean")] if mean is not None else []
        x = [float(i) for i in range(len(nll))]
        bars = len(nll) <= MAX_BARS and len(ids) == len(nll)
        blocks.append(
            Chart(
                kind="bar" if bars else "line",
                title="Loss per window",
                x_label="window" if bars else "window index",
                y_label="mean NLL",
                y_unit="nats/token",
                categories=ids if bars else None,
                series=[Series(name="mean NLL", x=x, y=nll)],
                rules=rules,
                caption=f"perplexity = exp(token-weighted mean NLL) = {fmt.number(result.get('value'))}.",
            )
        )
    return ResultView(title=f"ppl: {mode}", summary=summary, blocks=blocks)


# -- accuracy ----------------------------------------------------------------------------------------------------


def _accuracy(result: Mapping[str, Any]) -> ResultView:
    d = _details(result)
    correct = [_num(v) for v in result.get("per_unit") or []]
    value, se = _num(result.get("value")), _num(result.get("uncertainty"))
    summary = f"accuracy {fmt.number(value)}" + (f" ± {fmt.number(se)}" if se is not None else "")
    summary += f" ({d.get('n_correct')} of {d.get('n_examples', len(correct))} examples correct)"
    labels = d.get("label_names")
    rows: list[list[Any]] = [
        ["accuracy (fraction correct)", value],
        ["standard error √(p(1 − p)/n)", se],
        ["examples", d.get("n_examples")],
        ["correct", d.get("n_correct")],
        ["classes", d.get("n_classes")],
        ["labels", ", ".join(map(str, labels)) if isinstance(labels, list) else None],
        ["texts truncated", d.get("n_truncated")],
        ["tokens kept per text", d.get("max_length")],
    ]
    blocks: list[Block] = [Table(title="Accuracy", columns=["quantity", "value"], rows=rows)]
    finite = [v for v in correct if v is not None]
    if finite:
        running: list[float | None] = []
        total = 0.0
        for i, v in enumerate(finite, start=1):
            total += v
            running.append(total / i)
        rules = [Rule(y=value, label="accuracy")] if value is not None else []
        blocks.append(
            Chart(
                kind="line",
                title="Running accuracy over the examples",
                x_label="examples seen",
                y_label="accuracy",
                y_unit="fraction",
                series=[Series(name="running accuracy", x=[float(i) for i in range(1, len(running) + 1)], y=running)],
                rules=rules,
                caption="Fraction correct among the first n examples; a curve still moving at the end says more "
                "examples would change the estimate.",
            )
        )
    return ResultView(title="accuracy", summary=summary, blocks=blocks)


# -- llc ---------------------------------------------------------------------------------------------------------


def read_traces(details: Mapping[str, Any], artifacts: Mapping[str, Path]) -> dict[str, Any] | None:
    """The traces file the result names (``details.traces``), parsed, or ``None`` when it is absent, too large or
    not a traces payload."""
    name = details.get("traces")
    path = artifacts.get(name) if isinstance(name, str) else None
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_TRACES_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    trace = data.get("loss_trace") if isinstance(data, dict) else None
    if not isinstance(trace, list) or not all(isinstance(row, list) for row in trace):
        return None
    payload: dict[str, Any] = data
    return payload


def _llc(result: Mapping[str, Any], artifacts: Mapping[str, Path]) -> ResultView:
    d = _details(result)
    diag = _map(d.get("diagnostics"))
    per_chain = [_num(v) for v in result.get("per_unit") or []]
    healthy = diag.get("healthy_chains")
    trend = _map(diag.get("trend"))
    summary = (
        f"λ̂ = {fmt.number(result.get('value'))}"
        + (
            f" ± {fmt.number(result.get('uncertainty'))} (standard error)"
            if result.get("uncertainty") is not None
            else ""
        )
        + f" over {len(healthy) if isinstance(healthy, list) else len(per_chain)} healthy of {len(per_chain)} chains; "
        f"nβ = {fmt.number(d.get('nbeta'))}, L0 = {fmt.number(d.get('init_loss'))} nats/token"
        + (f"; trend {trend.get('verdict')}" if trend.get("verdict") else "")
    )
    blocks: list[Block] = []
    traces = read_traces(d, artifacts)
    if traces is not None:
        blocks.append(_trace_chart(traces, per_chain))
    elif d.get("traces"):
        blocks.append(Text(text=f"The traces file {d.get('traces')} is not in the run folder; no trace plot."))
    else:
        blocks.append(Text(text="The traces were not saved (save_traces: false); no trace plot."))
    if per_chain:
        mean = _num(result.get("value"))
        blocks.append(
            Chart(
                kind="bar",
                title="λ̂ per chain",
                x_label="chain",
                y_label="λ̂",
                categories=[str(u) for u in result.get("unit_ids") or [f"chain{i}" for i in range(len(per_chain))]],
                series=[Series(name="λ̂", x=[float(i) for i in range(len(per_chain))], y=per_chain)],
                rules=[Rule(y=mean, label="mean over healthy chains")] if mean is not None else [],
                caption="λ̂_c = nβ · (mean minibatch loss over chain c's draws − L0); a missing bar is a diverged "
                "chain.",
            )
        )
    acceptance = diag.get("mala_acceptance_per_chain")
    rows: list[list[Any]] = [
        ["λ̂ (mean over healthy chains)", result.get("value")],
        ["standard error", result.get("uncertainty")],
        ["nβ", f"{fmt.number(d.get('nbeta'))} ({d.get('nbeta_source')})"],
        ["L0 at w*, nats/token", d.get("init_loss")],
        ["chains, draws, burn-in", f"{d.get('chains')}, {d.get('draws')}, {d.get('burnin')}"],
        ["ε (step), γ (localization)", f"{fmt.short(d.get('epsilon'))}, {fmt.short(d.get('gamma'))}"],
        ["parameters sampled", d.get("n_params")],
        ["sites", ", ".join(map(str, d.get("sites") or [])) or None],
        [
            "MALA acceptance per chain",
            ", ".join(fmt.number(a) for a in acceptance) if isinstance(acceptance, list) else None,
        ],
        ["trend of the draws", f"{trend.get('verdict')} (t = {fmt.number(trend.get('loss_t'))})" if trend else None],
        [
            "diverged, exploding, escaped, stuck",
            ", ".join(
                str(len(diag.get(k) or []))
                for k in ("diverged_chains", "exploding_chains", "escaped_chains", "stuck_chains")
            ),
        ],
    ]
    blocks.append(Table(title="Sampler", columns=["quantity", "value"], rows=rows))
    warnings = [w for w in diag.get("warnings") or [] if isinstance(w, Mapping)]
    if warnings:
        blocks.append(
            Table(
                title="Warnings",
                columns=["check", "chains", "message"],
                rows=[
                    [str(w.get("check")), ", ".join(map(str, w.get("chains") or [])), str(w.get("message"))]
                    for w in warnings
                ],
            )
        )
    return ResultView(title="llc: local learning coefficient", summary=summary, blocks=blocks)


def _trace_chart(traces: Mapping[str, Any], per_chain: list[float | None]) -> Chart:
    rows = traces["loss_trace"]
    burnin = _num(traces.get("burnin"))
    init = _num(traces.get("init_loss"))
    series = []
    for c, row in enumerate(rows):
        estimate = per_chain[c] if c < len(per_chain) else None
        label = f"chain {c} (λ̂ = {fmt.number(estimate)})"
        series.append(Series(name=label, x=[float(t) for t in range(len(row))], y=[_num(v) for v in row]))
    return Chart(
        kind="line",
        title="SGLD loss traces per chain",
        x_label="SGLD step",
        y_label="minibatch loss",
        y_unit="nats/token",
        series=series,
        bands=[Band(start=0.0, end=burnin, label="burn-in")] if burnin else [],
        rules=[Rule(y=init, label="L0 at w*")] if init is not None else [],
        caption="The loss at each step's pre-step weights. Draws after the burn-in give λ̂; flat traces above L0 "
        "mean the chains have mixed.",
    )
