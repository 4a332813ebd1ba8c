"""How the report draws ppl, accuracy and llc results (guardchain.metrics.render)."""

from __future__ import annotations

import json
import math

from guardchain.core.views import Chart, Text
from guardchain.metrics.render import render_metric


def charts(view):
    return {b.title: b for b in view.blocks if isinstance(b, Chart)}


def llc_result(traces: str | None = "llc/traces.json"):
    details = {"burnin": 2, "chains": 2, "nbeta": 9.2, "init_loss": 3.9, "diagnostics": {"healthy_chains": [0]}}
    if traces:
        details["traces"] = traces
    return {
        "metric": "llc",
        "value": 3.0,
        "uncertainty": None,
        "units": "learning coefficient (dimensionless)",
        "unit_ids": ["chain0", "chain1"],
        "per_unit": [3.0, math.nan],
        "details": details,
    }


def test_llc_traces_come_from_the_artifact_the_result_names(tmp_path):
    path = tmp_path / "traces.json"
    path.write_text(
        json.dumps({"loss_trace": [[3.9, 4.1, 4.0, 4.2], [3.9, 4.0, 5.0, 9.0]], "burnin": 2, "init_loss": 3.9})
    )
    view = render_metric("llc", llc_result(), {"llc/traces.json": path})
    drawn = charts(view)
    traces = drawn["SGLD loss traces per chain"]
    assert [len(s.y) for s in traces.series] == [4, 4] and traces.series[0].name == "chain 0 (λ̂ = 3.000)"
    assert (traces.bands[0].start, traces.bands[0].end) == (0.0, 2.0) and traces.rules[0].y == 3.9
    assert drawn["λ̂ per chain"].series[0].y == [3.0, None]  # a diverged chain has no bar


def test_llc_without_its_traces_says_so(tmp_path):
    assert any(
        isinstance(b, Text) and "not in the run folder" in b.text for b in render_metric("llc", llc_result(), {}).blocks
    )
    broken = tmp_path / "traces.json"
    broken.write_text("{not json")
    view = render_metric("llc", llc_result(), {"llc/traces.json": broken})
    assert "SGLD loss traces per chain" not in charts(view)
    assert any(isinstance(b, Text) and "not saved" in b.text for b in render_metric("llc", llc_result(None), {}).blocks)


def test_ppl_and_accuracy_views():
    nll = [3.0 + 0.01 * i for i in range(50)]
    ppl = {
        "metric": "ppl",
        "value": 20.0,
        "per_unit": nll,
        "unit_ids": [f"w{i}" for i in range(50)],
        "details": {"mean_nll": 3.2},
    }
    chart = charts(render_metric("ppl", ppl, {}))["Loss per window"]
    assert chart.kind == "line" and chart.rules[0].y == 3.2  # more windows than bars can label
    correct = [1.0, 0.0, 1.0, 1.0]
    accuracy = {"metric": "accuracy", "value": 0.75, "uncertainty": 0.2165, "per_unit": correct, "details": {}}
    running = charts(render_metric("accuracy", accuracy, {}))["Running accuracy over the examples"].series[0].y
    assert running == [1.0, 0.5, 2 / 3, 0.75]
    assert render_metric("other", accuracy, {}) is None
