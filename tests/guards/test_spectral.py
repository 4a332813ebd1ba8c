"""``spectral`` on tiny models with known answers: x3 trips exactly that matrix and is capped, a baseline outlier is
not flagged on a null edit, the budget, stable rank, non-finite matrices, monitor mode."""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.core.results import GuardStatus
from guardchain.guards.linalg import top_singular_values
from guardchain.guards.tiers import TIERS

TARGET = "transformer.h.1.mlp.c_fc.weight"


def sigma1(tensor: torch.Tensor) -> float:
    return float(torch.linalg.svdvals(tensor.detach().double())[0])


def test_a_matrix_scaled_by_three_trips_exactly_that_matrix_and_is_capped(load) -> None:
    m = load("gpt2")
    guard = m.guard("spectral")
    guard.prepare(m.handle, m.context)
    before = m.param(TARGET).detach().clone()
    with torch.no_grad():
        m.param(TARGET).mul_(3.0)
    (report,) = m.finish([guard], (TARGET,))
    assert report.status == GuardStatus.WARN
    assert report.details["violations"] == [TARGET]
    assert [f.target for f in report.findings] == [TARGET]
    assert report.findings[0].code == "SPECTRAL-SIGMA-CAP"
    (action,) = report.actions
    assert action.applied and action.target == TARGET and action.kind == "spectral_cap"
    t = TIERS["balanced"].spectral
    cap = t.kappa["ffn"] * t.sigma_scale["ffn"]
    assert action.parameters["log_sigma_ratio"] == pytest.approx(math.log(3.0), rel=1e-5)
    assert action.parameters["scale"] == pytest.approx(math.exp(cap) / 3.0, rel=1e-5)
    # the matrix is back under its cap: exactly the baseline times exp(cap)
    torch.testing.assert_close(m.param(TARGET).detach(), before * math.exp(cap), rtol=1e-5, atol=1e-7)
    assert sigma1(m.param(TARGET)) / sigma1(before) == pytest.approx(math.exp(cap), rel=1e-5)
    assert report.measurements["caps_applied"] == 1 and report.measurements["changed"] == 1


def test_monitor_mode_proposes_but_does_not_correct(load) -> None:
    m = load("llama")
    name = "model.layers.0.self_attn.o_proj.weight"
    guard = m.guard("spectral", mode="monitor")
    guard.prepare(m.handle, m.context)
    with torch.no_grad():
        m.param(name).mul_(3.0)
    scaled = m.param(name).detach().clone()
    (report,) = m.finish([guard], (name,))
    assert report.status == GuardStatus.WARN
    assert [(a.target, a.applied) for a in report.actions] == [(name, False)]
    assert torch.equal(m.param(name).detach(), scaled)


def test_a_baseline_outlier_is_not_flagged_on_a_null_edit(load) -> None:
    """InvarLock z-scores sigma_1 against the family mean of the baseline; ours against the matrix's own baseline."""
    m = load("gpt2")
    with torch.no_grad():
        m.param(TARGET).mul_(10.0)  # already an outlier of its family before any edit
    guard = m.guard("spectral")
    guard.prepare(m.handle, m.context)
    (report,) = m.finish([guard], ())
    assert report.status == GuardStatus.PASS
    assert report.measurements["max_abs_z_sigma"] == 0.0
    family = [sigma1(m.param(n)) for n in ("transformer.h.0.mlp.c_fc.weight", TARGET)]
    assert family[1] > 5 * family[0], "the family-mean z of InvarLock would flag it"


def test_more_violations_than_max_caps_fail_and_nothing_is_corrected(load) -> None:
    m = load("gpt2")
    names = ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight", TARGET]
    guard = m.guard("spectral", max_caps=2)
    guard.prepare(m.handle, m.context)
    with torch.no_grad():
        for name in names:
            m.param(name).mul_(3.0)
    scaled = {n: m.param(n).detach().clone() for n in names}
    (report,) = m.finish([guard], tuple(names))
    assert report.status == GuardStatus.FAIL
    assert "SPECTRAL-CAPS-EXCEEDED" in {f.code for f in report.findings}
    assert sorted(report.details["violations"]) == sorted(names)
    assert all(not a.applied for a in report.actions) and len(report.actions) == 3
    assert all(torch.equal(m.param(n).detach(), scaled[n]) for n in names)


def test_a_stable_rank_collapse_is_flagged_but_not_rescaled(load) -> None:
    m = load("gpt2")
    guard = m.guard("spectral")
    guard.prepare(m.handle, m.context)
    w = m.param(TARGET).detach()
    u, s, vh = torch.linalg.svd(w)
    with torch.no_grad():
        m.param(TARGET).copy_(s[0] * torch.outer(u[:, 0], vh[0]))  # same sigma_1, rank one
    (report,) = m.finish([guard], (TARGET,))
    assert report.status == GuardStatus.WARN
    (found,) = report.findings
    assert found.code == "SPECTRAL-SRANK-CAP" and found.target == TARGET
    assert found.measurements["log_sigma_ratio"] == pytest.approx(0.0, abs=1e-4)
    assert report.actions == ()


def test_a_nonfinite_matrix_fails_closed(load) -> None:
    m = load("gpt2")
    guard = m.guard("spectral")
    guard.prepare(m.handle, m.context)
    with torch.no_grad():
        m.param(TARGET)[0, 0] = float("nan")
    (report,) = m.finish([guard], (TARGET,))
    assert report.status == GuardStatus.FAIL
    assert [(f.code, f.target) for f in report.findings] == [("SPECTRAL-NONFINITE", TARGET)]


def test_int8_passes_and_int2_fails_on_the_packaged_tiny_gpt2(load) -> None:
    for bits, status in ((8, GuardStatus.PASS), (2, GuardStatus.FAIL)):
        m = load("tiny-gpt2")
        guard = m.guard("spectral")
        guard.prepare(m.handle, m.context)
        targets = m.quantize(bits)
        (report,) = m.finish([guard], targets)
        assert report.status == status, (bits, report.findings[:3])
        assert report.measurements["changed"] == len(targets)


def test_the_report_is_per_family_and_uses_each_matrix_own_baseline(load) -> None:
    m = load("llama")
    guard = m.guard("spectral")
    guard.prepare(m.handle, m.context)
    name = "model.layers.1.mlp.down_proj.weight"
    base = top_singular_values(m.param(name).detach(), exact_max_dim=128)
    with torch.no_grad():
        m.param(name).mul_(1.001)
    (report,) = m.finish([guard], (name,))
    families = report.details["families"]
    assert set(families) == {"attn", "ffn", "other"}  # the untied lm_head is "other"; embed is opt-in
    (row,) = report.details["matrices"]
    assert row["name"] == name
    assert row["log_sigma_ratio"] == pytest.approx(math.log(1.001), rel=1e-4)
    assert row["sigma_base"] == pytest.approx(base.sigma1, rel=1e-6)
    tau = TIERS["balanced"].spectral.sigma_scale["ffn"]
    assert row["z_sigma"] == pytest.approx(math.log(1.001) / tau, rel=1e-4)
    assert row["log_srank_ratio"] == 0.0, "stable rank is scale-invariant (within the deadband)"
