"""``invariants``: every violation names the parameter; scope comes from the plan and the guards' corrections."""

from __future__ import annotations

import torch

import guardchain.guards.invariants as invariants_module
from guardchain.core.results import EditPlan, GuardStatus

C_FC = "transformer.h.0.mlp.c_fc.weight"


def run(m, mutate, targets, **config):
    guard = m.guard("invariants", **config)
    guard.prepare(m.handle, m.context)
    with torch.no_grad():
        mutate(m)
    (report,) = m.finish([guard], targets)
    return report


def codes(report) -> list[tuple[str, str]]:
    return sorted((f.code, f.target) for f in report.findings)


def test_nan_in_one_matrix_fails_naming_it(load) -> None:
    m = load("gpt2")
    report = run(m, lambda m: m.param(C_FC).__setitem__((1, 2), float("nan")), (C_FC,))
    assert report.status == GuardStatus.FAIL
    assert ("INVARIANTS-NONFINITE", C_FC) in codes(report)
    assert ("INVARIANTS-LOGITS-NONFINITE", "probe") in codes(report)
    nan = next(f for f in report.findings if f.code == "INVARIANTS-NONFINITE")
    assert nan.measurements["nonfinite"] == 1 and C_FC in nan.message


def test_monitor_mode_warns_instead(load) -> None:
    m = load("gpt2")
    report = run(m, lambda m: m.param(C_FC).__setitem__((0, 0), float("inf")), (C_FC,), mode="monitor")
    assert report.status == GuardStatus.WARN
    assert all(f.severity == GuardStatus.WARN for f in report.findings)


def test_an_out_of_scope_change_is_named_and_an_in_scope_one_passes(load) -> None:
    m = load("gpt2")
    bias = "transformer.h.0.attn.c_attn.bias"

    def mutate(m) -> None:
        m.param(C_FC).mul_(1.01)
        m.param(bias).add_(1e-6)

    report = run(m, mutate, (C_FC,))
    assert report.status == GuardStatus.FAIL
    assert codes(report) == [("INVARIANTS-OUT-OF-SCOPE", bias)]
    again = load("gpt2")
    assert run(again, mutate, (C_FC, bias)).status == GuardStatus.PASS


def test_a_change_a_guard_announced_is_in_scope(load) -> None:
    m = load("gpt2")
    bias = "transformer.h.0.attn.c_attn.bias"

    def mutate(m) -> None:
        m.context.will_change_weights([bias])  # what a correcting guard does before it writes
        m.param(bias).add_(1e-3)

    report = run(m, mutate, (C_FC,))
    assert report.status == GuardStatus.PASS, report.findings
    assert bias in report.details["declared_scope"]


def test_the_baseline_is_hashed_once_per_run_for_the_same_weights(load, monkeypatch) -> None:
    m = load("gpt2")
    calls: list[int] = []
    real = invariants_module.tensor_digests

    def counting(tensors):
        calls.append(len(tensors))
        return real(tensors)

    monkeypatch.setattr(invariants_module, "tensor_digests", counting)
    first, second = m.guard("invariants"), m.guard("invariants")
    first.prepare(m.handle, m.context)
    second.prepare(m.handle, m.context)
    assert len(calls) == 1 and calls[0] == len(first._baseline.digests) - 1, "one hash of every distinct storage"
    assert second._baseline.digests == first._baseline.digests
    with torch.no_grad():
        m.param(C_FC).mul_(1.0)  # same bits, but an in-place write: the memo may not vouch for it any more
    m.guard("invariants").prepare(m.handle, m.context)
    assert len(calls) == 2
    m.context.edit_plan = EditPlan(edit="test", targets=(C_FC,))
    first.after_edit(m.handle, m.context)
    second.after_edit(m.handle, m.context)
    assert len(calls) == 4, "after the edit each instance hashes what is out of scope itself"


def test_compare_mode_does_not_check_scope(load) -> None:
    m = load("gpt2")
    report = run(m, lambda m: m.param(C_FC).mul_(1.01), None)
    assert report.status == GuardStatus.PASS
    assert report.details["scope_checked"] is False


def test_tied_weights_stay_tied_by_storage_or_by_value(load) -> None:
    m = load("gpt2")
    assert [list(g) for g in run(m, lambda m: None, ()).details["tied_groups"]] == [
        ["lm_head.weight", "transformer.wte.weight"]
    ]

    def untie(scale: float):
        def mutate(m) -> None:
            copy = torch.nn.Parameter(m.param("transformer.wte.weight").detach().clone() * scale)
            m.model.lm_head.weight = copy

        return mutate

    equal = load("gpt2")
    assert run(equal, untie(1.0), ()).status == GuardStatus.PASS, "separate storage, equal values: still tied"
    broken = load("gpt2")
    report = run(broken, untie(1.5), ())
    assert report.status == GuardStatus.FAIL
    assert ("INVARIANTS-TIE-BROKEN", "transformer.wte.weight") in codes(report) or (
        "INVARIANTS-TIE-BROKEN",
        "lm_head.weight",
    ) in codes(report)


def test_shape_and_dtype_changes_are_named(load) -> None:
    m = load("llama")
    down = "model.layers.0.mlp.down_proj.weight"
    up = "model.layers.1.mlp.up_proj.weight"

    def mutate(m) -> None:
        m.model.model.layers[0].mlp.down_proj.weight = torch.nn.Parameter(torch.zeros(32, 32))
        m.model.model.layers[1].mlp.up_proj.weight = torch.nn.Parameter(m.param(up).detach().double())

    report = run(m, mutate, (down, up), check_logits=False)
    assert ("INVARIANTS-SHAPE-CHANGED", down) in codes(report)
    assert ("INVARIANTS-DTYPE-CHANGED", up) in codes(report)


def test_finite_weights_with_nonfinite_logits_fail_the_probe(load) -> None:
    m = load("llama")  # untied lm_head
    report = run(m, lambda m: m.param("lm_head.weight").mul_(3e38), ("lm_head.weight",))  # finite, but logits overflow
    assert report.status == GuardStatus.FAIL
    assert codes(report) == [("INVARIANTS-LOGITS-NONFINITE", "probe")]
    assert report.details["probe"]["source"] == "preview"


def test_without_data_the_probe_uses_seeded_token_ids(load) -> None:
    m = load("gpt2", data=False)
    report = run(m, lambda m: None, ())
    assert report.status == GuardStatus.PASS
    assert report.details["probe"]["source"] == "synthetic"
