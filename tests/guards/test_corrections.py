"""Corrections through the kernel: a guard announces what it changes (``context.will_change_weights``) before it
writes, the runner copies just those tensors, ``context.corrected`` puts them in the last ``invariants``' scope, and
the rollback restores them bit for bit. Through the kernel's own ``apply_guarded_edit`` on the packaged tiny GPT-2."""

from __future__ import annotations

import torch

from guardchain.core.registry import Registry

from .conftest import CANONICAL, ScaleEdit, guarded_run

ATTN = "transformer.h.1.attn.c_proj.weight"
C_PROJ = "transformer.h.1.mlp.c_proj"


def test_a_spectral_cap_is_announced_evaluable_without_it_and_rolled_back(guards_registry: Registry, tmp_path) -> None:
    run = guarded_run(guards_registry, tmp_path, ScaleEdit({ATTN: 3.0}), [(n, {}) for n in CANONICAL])
    spectral, last = run.reports[1], run.reports[-1]
    assert [(a["target"], a["applied"]) for a in spectral["actions"]] == [(ATTN, True)]
    assert run.edited.corrected == (ATTN,)
    assert last["status"] == "pass" and ATTN in last["details"]["declared_scope"]
    capped = run.loaded.param(ATTN).detach().clone()
    with run.edited.without_corrections():
        tripled = run.loaded.param(ATTN).detach().clone()
    assert torch.equal(run.loaded.param(ATTN).detach(), capped), "the corrections are back after the block"
    run.edited.rollback()  # verified bit for bit against the digest before the edit, or it raises
    assert torch.equal(run.loaded.param(ATTN).detach() * 3.0, tripled)


def test_a_variance_repair_outside_the_plan_is_in_scope_and_rolled_back(guards_registry: Registry, tmp_path) -> None:
    """The edit scales only the down projection's weight; the repair scales weight *and* bias. The bias is no target
    of the plan: the announcement copies its baseline value for the rollback and puts it in invariants' scope."""
    bias = f"{C_PROJ}.bias"
    chain = [("variance", {"max_step": 0.2}), ("invariants", {})]
    run = guarded_run(guards_registry, tmp_path, ScaleEdit({f"{C_PROJ}.weight": 1.2}), chain)
    variance, invariants = run.reports
    assert variance["status"] == "warn" and [f["code"] for f in variance["findings"]] == ["VARIANCE-REPAIRED"]
    assert run.edited.plan.targets == (f"{C_PROJ}.weight",)
    assert run.edited.corrected == (bias, f"{C_PROJ}.weight")
    assert invariants["status"] == "pass", invariants["findings"]
    assert bias in invariants["details"]["declared_scope"]
    baseline_bias = run.loaded.param(bias).detach().clone() / variance["actions"][0]["parameters"]["scale"]
    run.edited.rollback()
    torch.testing.assert_close(run.loaded.param(bias).detach(), baseline_bias, rtol=1e-6, atol=0.0)


def test_monitor_mode_changes_nothing_and_announces_nothing(guards_registry: Registry, tmp_path) -> None:
    chain = [("spectral", {"mode": "monitor"}), ("variance", {"mode": "monitor", "max_step": 0.2})]
    edit = ScaleEdit({ATTN: 3.0, f"{C_PROJ}.weight": 1.2})
    run = guarded_run(guards_registry, tmp_path, edit, chain)
    assert [len(r["actions"]) for r in run.reports] == [2, 1], "each proposes its corrections (two caps, one scale)"
    assert all(not a["applied"] for r in run.reports for a in r["actions"])
    assert run.edited.corrected == () and run.loaded.context.corrected == set()
