"""The canonical chain ``invariants, spectral, rmt, variance, invariants`` on the packaged tiny GPT-2, through the
lifecycle the runner documents, and inside ``certify`` (a NaN edit is named and rolled back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ConfigDict

from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.core import PLUGIN_API_VERSION, hookimpl
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.results import EditPlan, EditReport, GuardStatus

ATTN = "transformer.h.1.attn.c_proj.weight"


def statuses(reports: list[Any]) -> list[tuple[str, str]]:
    return [(r.guard, str(r.status)) for r in reports]


def test_a_null_edit_passes_every_guard(load) -> None:
    m = load("tiny-gpt2")
    chain = m.chain()
    m.prepare(chain)
    reports = m.finish(chain, ())
    assert all(r.status == GuardStatus.PASS for r in reports), statuses(reports)
    assert all(r.actions == () for r in reports)


def test_int8_passes_every_guard(load) -> None:
    m = load("tiny-gpt2")
    chain = m.chain()
    m.prepare(chain)
    reports = m.finish(chain, m.quantize(8))
    assert all(r.status == GuardStatus.PASS for r in reports), [(r.guard, r.findings) for r in reports]


def test_nan_in_one_matrix_fails_invariants_naming_it(load) -> None:
    m = load("tiny-gpt2")
    chain = m.chain()
    m.prepare(chain)
    with torch.no_grad():
        m.param(ATTN)[3, 5] = float("nan")
    reports = m.finish(chain, (ATTN,))
    first, last = reports[0], reports[-1]
    for report in (first, last):
        assert report.status == GuardStatus.FAIL
        assert ("INVARIANTS-NONFINITE", ATTN) in {(f.code, f.target) for f in report.findings}


def test_one_matrix_times_three_is_flagged_by_spectral_alone(load) -> None:
    m = load("tiny-gpt2")
    chain = m.chain()
    m.prepare(chain)
    with torch.no_grad():
        m.param(ATTN).mul_(3.0)
    reports = m.finish(chain, (ATTN,))
    by_guard = dict(statuses(reports[:4]))
    assert by_guard == {"invariants": "pass", "spectral": "warn", "rmt": "pass", "variance": "pass"}
    spectral = reports[1]
    assert spectral.details["violations"] == [ATTN]
    assert [(a.target, a.applied) for a in spectral.actions] == [(ATTN, True)]
    assert reports[-1].status == GuardStatus.PASS, "the cap is in scope: the matrix is a target of the plan"


def test_guards_report_progress(load) -> None:
    m = load("tiny-gpt2")
    seen: list[tuple[str, int, int]] = []
    m.context.progress = lambda task, done, total: seen.append((task, done, total))
    chain = m.chain(("spectral", "rmt"))
    m.prepare(chain)
    m.finish(chain, ())
    tasks = {task for task, _, _ in seen}
    assert {"spectral: baseline matrices", "spectral: subject matrices", "rmt: calibration windows"} <= tasks
    assert all(0 < done <= total for _, done, total in seen)


@pytest.mark.parametrize("name", ["invariants", "spectral", "rmt", "variance"])
def test_lifecycle_order_is_enforced(load, name: str) -> None:
    m = load("gpt2")
    guard = m.guard(name)
    with pytest.raises(GuardchainError) as caught:
        guard.after_edit(m.handle, m.context)
    assert caught.value.code == "GC-GUARD-LIFECYCLE"
    guard.prepare(m.handle, m.context)
    with pytest.raises(GuardchainError) as caught:
        guard.finalize(m.context)
    assert caught.value.code == "GC-GUARD-LIFECYCLE"


def test_unsupported_data_is_refused(load) -> None:
    m = load("gpt2")
    m.context.data = ["not", "windows"]
    with pytest.raises(GuardchainError) as caught:
        m.guard("rmt").prepare(m.handle, m.context)
    assert caught.value.code == "GC-GUARD-DATA"


# -- inside certify -------------------------------------------------------------------------------------------


class NanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str = ATTN


class NanEdit:
    """Writes one NaN into one matrix (a broken edit)."""

    def __init__(self, config: NanConfig) -> None:
        self.config = config

    def plan(self, handle: Any, structure: Any) -> EditPlan:
        return EditPlan(edit="nan_inject", targets=(self.config.target,))

    def apply(self, handle: Any, plan: EditPlan) -> EditReport:
        with torch.no_grad():
            handle.model.get_parameter(self.config.target)[0, 0] = float("nan")
        return EditReport(edit="nan_inject", modules_changed=plan.targets, parameters_changed=1)


class NanPlugin:
    GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

    @hookimpl
    def guardchain_register_edits(self, registrar: Any) -> None:
        registrar.register(
            "nan_inject", summary="Writes one NaN into one matrix.", config_model=NanConfig, factory=NanEdit
        )


def test_certify_names_the_nan_matrix_and_rolls_the_edit_back(tmp_path: Path) -> None:
    registry = Registry.discover(RegistrySettings())
    registry.add_plugin("nan_test", NanPlugin())
    request = CertifyRequest(baseline="tiny-gpt2", preset=CertifyPreset(edit="nan_inject"), out=tmp_path / "cert")
    cert = certify(request, registry)
    assert cert.verdict == "FAIL" and cert.rolled_back
    invariants = cert.guards[0]
    assert invariants["guard"] == "invariants" and invariants["status"] == "fail"
    assert {"code": "INVARIANTS-NONFINITE", "target": ATTN} in [
        {"code": f["code"], "target": f["target"]} for f in invariants["findings"]
    ]
    failed = {g.name for g in cert.gates if not g.passed}
    assert any(name.startswith("guard:") and name.endswith("invariants") for name in failed), failed
