"""``variance``: drift has a known answer, repairs are bounded, applied only when held-out NLL improves, recorded,
and accepted by the last ``invariants`` of the chain."""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.core.results import GuardStatus

C_PROJ = "transformer.h.1.mlp.c_proj"


def scale_output(m, factor: float) -> None:
    """Scale the MLP output of block 1 exactly (weight and bias of its down projection)."""
    with torch.no_grad():
        m.param(f"{C_PROJ}.weight").mul_(factor)
        m.param(f"{C_PROJ}.bias").mul_(factor)


def test_drift_is_the_log_std_ratio_of_the_site(load) -> None:
    m = load("gpt2")
    guard = m.guard("variance", mode="monitor")
    guard.prepare(m.handle, m.context)
    scale_output(m, 1.2)
    (report,) = m.finish([guard], (f"{C_PROJ}.weight", f"{C_PROJ}.bias"))
    sites = {s["site"]: s for s in report.details["sites"]}
    assert sites["blocks[1].mlp.output"]["drift"] == pytest.approx(math.log(1.2), rel=1e-5)
    assert sites["blocks[0].mlp.output"]["drift"] == 0.0, "upstream of the change"
    assert sites["blocks[1].mlp.output"]["matrix"] == f"{C_PROJ}.weight"
    assert sites["blocks[1].mlp.output"]["bias"] == f"{C_PROJ}.bias"
    assert report.status == GuardStatus.WARN  # a drift of 0.18 > 0.05 would fail in gate mode
    assert [(a.target, a.applied) for a in report.actions] == [(f"{C_PROJ}.weight", False)]


def test_a_small_drift_is_repaired_when_held_out_nll_improves(load) -> None:
    m = load("tiny-gpt2")
    original = m.param(f"{C_PROJ}.weight").detach().clone()
    chain = [m.guard("variance", max_step=0.2), m.guard("invariants")]
    m.prepare(chain)
    scale_output(m, 1.2)  # drift ln 1.2 = 0.18 > 0.05; the ideal scale 1/1.2 is within a 20% step
    variance, invariants = m.finish(chain, (f"{C_PROJ}.weight",))  # the bias is not in the plan...
    assert variance.status == GuardStatus.WARN
    assert [f.code for f in variance.findings] == ["VARIANCE-REPAIRED"]
    (action,) = variance.actions
    assert action.applied and action.parameters["scale"] == pytest.approx(1 / 1.2, rel=1e-5)
    check = variance.details["predictive_check"]
    assert check["accepted"] and check["high"] < 0 and len(check["deltas"]) == 6
    assert set(check["ids"]).isdisjoint(variance.details["calibration"]["ids"]), "held out from calibration"
    torch.testing.assert_close(m.param(f"{C_PROJ}.weight").detach(), original, rtol=1e-5, atol=1e-7)
    assert variance.measurements["max_abs_drift_after"] < 1e-5
    # ...but the repair scaled it too, announced with will_change_weights: in scope for the last invariants
    assert invariants.status == GuardStatus.PASS, invariants.findings


def test_a_drift_beyond_the_bounded_step_still_fails(load) -> None:
    m = load("tiny-gpt2")
    guard = m.guard("variance")
    guard.prepare(m.handle, m.context)
    scale_output(m, 3.0)
    (report,) = m.finish([guard], (f"{C_PROJ}.weight", f"{C_PROJ}.bias"))
    assert report.status == GuardStatus.FAIL
    (action,) = report.actions
    assert action.parameters["ideal_scale"] == pytest.approx(1 / 3, rel=1e-5)
    assert action.parameters["scale"] == pytest.approx(0.9)
    drift = next(f for f in report.findings if f.code == "VARIANCE-DRIFT")
    assert drift.target == "blocks[1].mlp.output"
    if action.applied:  # the held-out check accepted the bounded step: drift after it is ln(3 * 0.9)
        assert drift.measurements["drift"] == pytest.approx(math.log(2.7), rel=1e-4)


def test_a_rejected_repair_changes_nothing_and_the_drift_fails(load) -> None:
    m = load("tiny-gpt2")
    guard = m.guard("variance", min_effect=10.0)  # no repair can gain 10 nats/token
    guard.prepare(m.handle, m.context)
    scale_output(m, 1.08)
    scaled = {n: m.param(n).detach().clone() for n in (f"{C_PROJ}.weight", f"{C_PROJ}.bias")}
    (report,) = m.finish([guard], tuple(scaled))
    assert report.status == GuardStatus.FAIL
    assert {f.code for f in report.findings} == {"VARIANCE-DRIFT", "VARIANCE-REPAIR-REJECTED"}
    assert [a.applied for a in report.actions] == [False]
    assert all(torch.equal(m.param(n).detach(), v) for n, v in scaled.items()), "restored bit for bit"


def test_too_few_held_out_windows_reject_the_repair(load) -> None:
    m = load("gpt2")
    guard = m.guard("variance", calibration_windows=5)  # 6 preview windows: 1 left over
    guard.prepare(m.handle, m.context)
    scale_output(m, 1.5)
    (report,) = m.finish([guard], (f"{C_PROJ}.weight", f"{C_PROJ}.bias"))
    assert report.status == GuardStatus.FAIL
    assert "2 needed" in report.details["predictive_check"]["reason"]


def test_nonfinite_activations_fail(load) -> None:
    m = load("gpt2")
    guard = m.guard("variance")
    guard.prepare(m.handle, m.context)
    with torch.no_grad():
        m.param("transformer.h.0.mlp.c_fc.weight")[0, 0] = float("nan")
    (report,) = m.finish([guard], ("transformer.h.0.mlp.c_fc.weight",))
    assert report.status == GuardStatus.FAIL
    assert "VARIANCE-NONFINITE" in {f.code for f in report.findings}
