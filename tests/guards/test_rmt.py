"""``rmt``: edge risk from streaming sums equals the direct computation and is ~1 on noise; the guard on tiny
models (null, int8, int2, scale invariance of the outlier count)."""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.core.results import GuardStatus
from guardchain.guards.capture import SiteStats
from guardchain.guards.rmt import edge_risk


def streamed(a: torch.Tensor, chunks: int = 3) -> SiteStats:
    stats = SiteStats(site="s", module_path="m")
    for block in a.chunk(chunks):
        stats.add(block, with_gram=True)
    return stats


def direct(a: torch.Tensor) -> float:
    x = a.double()
    z = (x - x.mean()) / x.std(unbiased=False)
    return float(torch.linalg.svdvals(z)[0]) / (math.sqrt(a.shape[0]) + math.sqrt(a.shape[1]))


def test_edge_risk_from_streaming_sums_equals_the_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    a = (
        0.3
        + 2.0 * torch.randn(500, 160, generator=g)
        + torch.outer(torch.randn(500, generator=g), torch.randn(160, generator=g))
    )
    risk = edge_risk(streamed(a), "ffn")
    assert risk.tokens == 500 and risk.features == 160 and risk.finite
    assert risk.r == pytest.approx(direct(a), rel=1e-6)


def test_gaussian_activations_sit_at_the_mp_edge_and_structure_rises_above_it() -> None:
    g = torch.Generator().manual_seed(1)
    noise = 5.0 + 3.0 * torch.randn(600, 300, generator=g)
    assert edge_risk(streamed(noise), "attn").r == pytest.approx(1.0, abs=0.03)
    spike = noise + 20.0 * torch.outer(torch.randn(600, generator=g), torch.randn(300, generator=g)) / math.sqrt(300)
    assert edge_risk(streamed(spike), "attn").r > 1.5


def test_nonfinite_activations_are_reported_not_summed() -> None:
    a = torch.randn(20, 8)
    a[3, 4] = float("nan")
    risk = edge_risk(streamed(a), "ffn")
    assert not risk.finite and math.isnan(risk.r)


def test_null_and_int8_pass_int2_fails(load) -> None:
    for edit, status in ((None, GuardStatus.PASS), (8, GuardStatus.PASS), (2, GuardStatus.FAIL)):
        m = load("tiny-gpt2")
        guard = m.guard("rmt")
        guard.prepare(m.handle, m.context)
        targets = m.quantize(edit) if edit is not None else ()
        (report,) = m.finish([guard], targets)
        assert report.status == status, (edit, report.findings)
        assert report.details["calibration"]["source"] == "preview"
        assert set(report.details["edge_risk"]) == {"attn", "ffn"}
        if edit is None:
            assert report.measurements["attn.edge_ratio"] == 1.0
            assert report.measurements["ffn.outliers"] == report.measurements["ffn.outliers_base"]


def test_the_outlier_count_is_scale_invariant(load) -> None:
    m = load("tiny-gpt2")
    guard = m.guard("rmt", activation_sites={})
    guard.prepare(m.handle, m.context)
    name = "transformer.h.0.mlp.c_fc.weight"
    with torch.no_grad():
        m.param(name).mul_(3.0)
    (report,) = m.finish([guard], (name,))
    assert report.status == GuardStatus.PASS
    assert report.measurements["ffn.outliers"] == report.measurements["ffn.outliers_base"] > 0
    assert report.details["edge_risk"] == {}
