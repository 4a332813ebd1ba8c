"""How the report draws guard reports (guardchain.guards.render)."""

from __future__ import annotations

from guardchain.core.views import Chart
from guardchain.guards.render import render_guard, short_names


def test_short_names_drop_the_shared_prefix_and_weight():
    names = ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight"]
    assert short_names(names) == ["0.attn.c_attn", "1.mlp.c_fc"]
    assert short_names(["model.embed.weight"]) == ["model.embed"]


def test_spectral_draws_before_and_after_per_family_and_the_caps():
    matrix = {
        "family": "attn",
        "name": "h.0.attn.weight",
        "sigma": 1.0,
        "sigma_base": 1.2,
        "srank": 5.0,
        "srank_base": 4.0,
        "z_sigma": -9.0,
        "z_srank": 7.0,
    }
    report = {
        "guard": "spectral",
        "mode": "gate",
        "status": "fail",
        "findings": [{"severity": "fail", "code": "SPECTRAL-SIGMA-CAP", "target": "h.0.attn.weight", "message": "m"}],
        "details": {
            "families": {"attn": {"count": 1, "changed": 1, "kappa": 8.0}},
            "matrices": [matrix],
            "tier": "balanced",
        },
    }
    view = render_guard("spectral", report)
    charts = {b.title: b for b in view.blocks if isinstance(b, Chart)}
    sigma = charts["σ_max per attn matrix, before and after"]
    assert [s.y for s in sigma.series] == [[1.2], [1.0]]
    assert sorted(r.y for r in charts["Change per matrix in standard units"].rules) == [-8.0, 8.0]
    assert "1 finding(s)" in view.summary and any(getattr(b, "title", "") == "Findings" for b in view.blocks)
    assert render_guard("unknown", report) is None
