"""How the report draws fa_diagnostics results (guardchain.diagnostics.render)."""

from __future__ import annotations

from guardchain.core.views import Chart, Table
from guardchain.diagnostics.render import render_fa


def test_per_layer_curves_with_their_thresholds():
    details = {
        "per_layer": {
            "residual_norms": [1.0, 20.0, 22.0],
            "block_growth": [20.0, 1.1],
            "bp_grad_norms": [0.8, 0.03, 0.04],
            "stability": [0.0, 0.1, 0.05],
        },
        "thresholds": {"residual_explosion_ratio": 50.0, "grad_norm_floor": 1e-7, "drift_ceiling": 0.3},
        "diagnostics": {
            "residual_explosion": {"fired": False, "value": 20.0, "threshold": 50.0},
            "frozen_margin": {"skipped": True},
        },
    }
    result = {"value": 0.0, "verdict": {"label": "trustworthy", "passed": True, "reasons": []}, "details": details}
    view = render_fa(result)
    charts = {b.title: b for b in view.blocks if isinstance(b, Chart)}
    grads = charts["Backprop gradient norm per layer"]
    assert grads.log_y and grads.rules[0].y == 1e-7  # seven decades between the norms and their floor
    assert not charts["Cross-batch gradient-direction similarity per layer"].log_y
    checks = next(b for b in view.blocks if isinstance(b, Table))
    assert checks.rows[0][-1] == "not fired" and checks.rows[3][-1] == "skipped"
    assert "trustworthy" in view.summary
    assert render_fa({"details": {}}) is None
