"""How ``certify`` runs guards, whatever guards are installed: timing, corrections evaluated both ways, a failing
gate guard rolls the edit back, a non-finite subject fails the ``subject_finite`` gate, and the default chain.

Test guards are registered in memory beside the installed plugins; the model is the committed tiny GPT-2.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from guardchain.certify.certificate import Certificate
from guardchain.certify.pipeline import certify
from guardchain.certify.policy import TIER_GUARDS, GuardStep
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.certify.verify import verify_certificate
from guardchain.core import hookimpl
from guardchain.core.errors import GuardchainError
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.results import GuardAction, GuardMode, GuardReport, GuardStatus

pytestmark = pytest.mark.members


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: GuardMode = GuardMode.GATE
    action: str = "none"  # none | scale | poison | fail | sneak (changes a weight without announcing it)


class ProbeGuard:
    """Records what the kernel hands it, and optionally changes the subject (as a correction) or fails."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.actions: list[GuardAction] = []

    def prepare(self, baseline: Any, context: Any) -> None:
        ProbeGuard.seen.append({"call": "prepare", "plan": context.edit_plan, "data": context.data})

    def after_edit(self, subject: Any, context: Any) -> None:
        ProbeGuard.seen.append({"call": "after_edit", "plan": context.edit_plan, "data": context.data})
        weight = subject.model.transformer.h[0].mlp.c_fc.weight
        name = "transformer.h.0.mlp.c_fc.weight"
        if self.config.action == "scale":
            context.will_change_weights([name])
        with torch.no_grad():
            if self.config.action == "sneak":  # a parameter the edit does not target: no copy of it exists
                subject.model.transformer.ln_f.weight.mul_(1.5)
            if self.config.action == "scale":
                weight.mul_(1.5)
                self.actions.append(GuardAction(kind="rescale", target="transformer.h.0.mlp.c_fc.weight", applied=True))
            elif self.config.action == "poison":
                weight[0, 0] = float("nan")

    def finalize(self, context: Any) -> GuardReport:
        failing = self.config.action == "fail"
        status = GuardStatus.FAIL if failing and self.config.mode == GuardMode.GATE else GuardStatus.PASS
        return GuardReport(guard="probe", mode=self.config.mode, status=status, actions=tuple(self.actions))


@hookimpl
def guardchain_register_guards(registrar: Any) -> None:
    registrar.register("probe", summary="test guard", config_model=ProbeConfig, factory=ProbeGuard)


def registry_with_probe() -> Registry:
    registry = Registry.discover()
    plugin = types.ModuleType("probe_plugin")
    plugin.GUARDCHAIN_PLUGIN_API = 1  # type: ignore[attr-defined]
    plugin.guardchain_register_guards = guardchain_register_guards  # type: ignore[attr-defined]
    registry.add_plugin("probe_plugin", plugin)
    return registry


def run(tmp_path: Path, *guards: dict[str, Any], edit_config: dict[str, Any] | None = None) -> Certificate:
    preset = CertifyPreset(
        guards=[GuardStep(guard="probe", config=g) for g in guards], edit_config=edit_config or {"bits": 8}
    )
    request = CertifyRequest(baseline="tiny-gpt2", preset=preset, out=tmp_path / "cert")
    return certify(request, registry_with_probe())


def verified(out: Path) -> tuple[Certificate | None, list[Any]]:
    result = verify_certificate(json.loads((out / "certificate.json").read_text()))
    return result.certificate, result.mismatches


def test_guards_see_the_windows_and_the_plan_and_are_timed(tmp_path):
    ProbeGuard.seen.clear()
    cert = run(tmp_path, {"mode": "monitor"}, {})
    prepare, _, after, _ = ProbeGuard.seen
    assert prepare["plan"] is None and after["plan"] is not None and after["plan"].edit == "quant_rtn"
    assert after["data"] is not None and len(after["data"]) == 24  # dev profile: 8 preview + 16 final
    overhead = cert.guard_overhead
    assert overhead is not None and set(overhead.guard_time_s) == {"guard:0:probe_s", "guard:1:probe_s"}
    assert 0 <= overhead.guard_share < 1 and overhead.corrections_applied == 0 and overhead.uncorrected_final is None
    assert [g.name for g in cert.gates][-1] == "guard:1:probe"  # only the gate-mode guard has a gate
    assert cert.verdict == "PASS"
    assert verified(tmp_path / "cert")[1] == []


def test_a_correction_is_evaluated_with_and_without(tmp_path):
    cert = run(tmp_path, {"action": "scale"})
    overhead = cert.guard_overhead
    assert overhead is not None and overhead.corrections_applied == 1
    assert cert.primary_metric is not None and overhead.uncorrected_final is not None
    # The primary metric is the corrected subject; the uncorrected arm is the int8 edit alone (ratio ~1).
    corrected_ppl = cert.primary_metric.final.subject.ppl
    assert overhead.uncorrected_final.ppl != corrected_ppl
    assert abs(overhead.uncorrected_final.ppl / cert.primary_metric.final.baseline.ppl - 1) < 0.01
    assert verified(tmp_path / "cert")[1] == []


def test_a_failing_gate_guard_fails_and_rolls_back(tmp_path):
    cert = run(tmp_path, {"action": "fail"})
    assert cert.verdict == "FAIL" and cert.rolled_back
    gate = next(g for g in cert.gates if g.name == "guard:0:probe")
    assert not gate.passed and gate.measured == "fail"
    assert verified(tmp_path / "cert")[1] == []


def test_a_non_finite_subject_fails_subject_finite_and_rolls_back(tmp_path):
    cert = run(tmp_path, {"action": "poison", "mode": "monitor"})
    assert cert.primary_metric is None and cert.verdict == "FAIL" and cert.rolled_back
    assert [(g.name, g.passed) for g in cert.gates] == [("subject_finite", False)]
    parsed, mismatches = verified(tmp_path / "cert")
    assert mismatches == [] and parsed is not None
    assert "not finite" in (tmp_path / "cert" / "certificate.md").read_text()


def test_verify_rejects_a_rollback_claim_without_a_failed_gate(tmp_path):
    run(tmp_path, {})
    data = json.loads((tmp_path / "cert" / "certificate.json").read_text())
    data["rolled_back"] = True
    mismatches = verify_certificate(data).mismatches
    assert any(m.field == "rolled_back" for m in mismatches)


def test_the_default_chain_is_canonical_and_missing_guards_are_named():
    assert (
        tuple(f"guardchain-guards:{name}" for name in ("invariants", "spectral", "rmt", "variance", "invariants"))
        == TIER_GUARDS
    )
    discovered = Registry.discover()
    providers = {s.plugin for s in discovered.specs(CapabilityKind.GUARD) if s.distribution == "guardchain-guards"}
    registry = Registry.discover(RegistrySettings(block=frozenset(providers)))
    request = CertifyRequest(baseline="tiny-gpt2", out=Path("never-written"))
    with pytest.raises(GuardchainError) as caught:
        certify(request, registry)
    problem = next(p for p in caught.value.problems if p.path == "guards[0].guard")
    assert problem.code in {"GC-PLUGIN-UNKNOWN", "GC-PLUGIN-UNAVAILABLE"} and "--no-guards" in (problem.hint or "")
    assert "invariants" in problem.message
    assert not Path("never-written").exists()


def test_a_guard_that_changes_weights_without_announcing_it_cannot_be_rolled_back_silently(tmp_path):
    with pytest.raises(GuardchainError) as caught:
        run(tmp_path, {"action": "sneak"}, {"action": "fail"})
    assert "did not restore the weights bit for bit" in caught.value.problems[0].message
    assert not (tmp_path / "cert").exists()  # the run created the folder, and a failed run leaves nothing
