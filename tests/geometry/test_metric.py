"""``geometry`` as a chain step: the conformance kit, the result's pairing units, artifacts, drift across an edit,
and coded errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from guardchain.core.config import validate_chain
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner
from guardchain.core.windows import LabeledTexts
from guardchain.geometry import GeometryResult, compare
from guardchain.geometry.codes import DESCRIPTIONS, GeometryErrorCode
from guardchain.testing import MetricContract, PluginContract

MEMBER = Path(__file__).resolve().parents[2] / "plugins" / "geometry"


class TestGeometryMetric(MetricContract):
    name = "geometry"

    @pytest.fixture
    def registry(self, geo_registry) -> Registry:
        return geo_registry

    @pytest.fixture
    def config(self):
        return {"sample_size": 24, "diagnostics": ["normalization_ablation"], "batch_size": 3}

    @pytest.fixture
    def loaded(self, load_tiny):
        return load_tiny("gpt2")

    @pytest.fixture
    def handle(self, loaded):
        return loaded[1]

    @pytest.fixture
    def data(self, windows):
        return windows

    @pytest.fixture
    def context(self, geo_context, loaded):
        return geo_context(*loaded)

    def test_the_units_are_the_sites(self, capability, handle, data, context):
        result = capability.compute(handle, data, context)
        assert result.unit_ids == ("blocks[0].input", "blocks[1].input")
        d_pr = [row["d_pr"] for row in result.details["metrics"]]
        assert list(result.per_unit) == pytest.approx(d_pr)
        assert result.value == pytest.approx(float(np.mean(d_pr)))
        assert result.units.startswith("effective dimensions")
        assert result.details["tokens_observed"] == data.n_tokens
        assert result.details["sample"] == {"size": 24, "seed": 0, "tokens": 24}
        assert result.details["drift"] is None
        json.dumps(result.model_dump(mode="json"), allow_nan=False)  # details are JSON-sized and NaN-free

    def test_every_artifact_is_written(self, capability, handle, data, context, every_file):
        result = capability.compute(handle, data, context)
        root = context.out_dir / "geometry"
        written = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        assert written == every_file
        assert set(context.artifacts) == {f"geometry/{name}" for name in every_file}
        metadata = json.loads((root / "metadata.json").read_text())
        for field in (
            "artifact_schema_version",
            "model_id",
            "model_class",
            "tokens_observed",
            "batches_observed",
            "hook_point",
            "hook_targets",
            "sample_limit",
            "sample_seed",
            "novelty_k",
            "software",
        ):
            assert field in metadata, field
        loaded = GeometryResult.load(root)
        assert loaded.sites == list(result.unit_ids)
        assert loaded.site_values("d_pr") == pytest.approx(list(result.per_unit))
        assert set(loaded.eigenvalues) == {"layer_00", "layer_01"}

    def test_another_statistic_can_be_the_per_unit_value(self, registry, handle, data, context):
        metric = registry.create("metric", self.name, {"per_unit": "sv_effective_rank", "sample_size": 16}).instance
        result = metric.compute(handle, data, context)
        assert list(result.per_unit) == pytest.approx([r["sv_effective_rank"] for r in result.details["metrics"]])
        with pytest.raises(GuardchainError) as caught:
            registry.create("metric", self.name, {"per_unit": "sv_effective_rank", "families": ["spectrum"]})
        assert "per_unit" in str(caught.value)


@pytest.mark.skipif(
    not any(
        ep.name == "geometry"
        for ep in __import__("importlib.metadata").metadata.entry_points(group="guardchain.plugins")
    ),
    reason="guardchain-geometry is not installed (pip install -e ./plugins/geometry)",
)
class TestGeometryPlugin(PluginContract):
    entry_point = "geometry"


def test_the_readme_documents_every_error_code():
    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-GEOM-[A-Z-]+)`", readme)) == {c.value for c in GeometryErrorCode}
    assert set(DESCRIPTIONS) == set(GeometryErrorCode)


def _compute(registry, config, handle, data, context):
    return registry.create("metric", "geometry", config).instance.compute(handle, data, context)


def test_bad_input_in_a_chain_step_gets_coded_errors(geo_registry, load_tiny, geo_context, windows):
    adapter, handle = load_tiny("gpt2")
    context = geo_context(adapter, handle)
    cases = [
        ({"sites": ["blocks[5].output"], "sample_size": 8}, windows, context, "GC-GEOM-SITE"),
        ({"sample_size": windows.n_tokens + 1}, windows, context, "GC-GEOM-SAMPLE-SIZE"),
        ({"router": True, "sample_size": 8}, windows, context, "GC-GEOM-NO-ROUTER"),
        ({}, LabeledTexts(("a",), ("x",), (0,), "0" * 64), context, "GC-GEOM-DATA-TYPE"),
        ({"sample_size": 8}, windows, geo_context(None, handle), "GC-GEOM-NO-ADAPTER"),
        ({"baseline": "nope", "sample_size": 8}, windows, context, "GC-GEOM-BASELINE"),
    ]
    for config, data, ctx, code in cases:
        with pytest.raises(GuardchainError) as caught:
            _compute(geo_registry, config, handle, data, ctx)
        assert str(caught.value.code) == code, (config, caught.value)


def _chain(model_dir: Path, steps: list[dict]) -> dict:
    return {
        "version": 1,
        "name": "geometry-drift",
        "seed": 5,
        "model": {"ref": str(model_dir), "adapter": "hf_gpt2"},
        "data": {"dataset": "kjv_excerpt", "config": {"seq_len": 32, "n_preview": 0, "n_final": 12}},
        "steps": steps,
    }


def test_a_chain_measures_drift_across_an_edit(geo_registry, tiny_model_dirs, tmp_path, every_file):
    pytest.importorskip("guardchain.data")
    pytest.importorskip("guardchain.edits")
    geometry = {
        "metric": "geometry",
        "config": {"sample_size": 64, "sites": ["blocks[*].output"], "diagnostics": ["normalization_ablation"]},
    }
    steps = [
        {**geometry, "id": "before"},
        {"edit": "quant_rtn", "config": {"bits": 2}},
        {**geometry, "id": "after"},
        {"metric": "geometry", "id": "elsewhere", "config": {"sample_size": 64, "sites": ["blocks[1].mlp.output"]}},
    ]
    chain = validate_chain(_chain(tiny_model_dirs["gpt2"], steps), geo_registry)
    record = ChainRunner(geo_registry).run(chain, out_dir=tmp_path / "run")
    assert record.status == "ok", record.problems
    before, _edit, after, elsewhere = (step.result for step in record.steps)
    assert before["details"]["drift"] is None and before["details"]["artifact_dir"] == "geometry"
    assert after["details"]["baseline_step"] == "before" and after["details"]["artifact_dir"] == "geometry-2"
    assert elsewhere["details"]["drift"] is None  # other sites: nothing comparable
    assert after["details"]["sample"] == before["details"]["sample"] == {"size": 64, "seed": 5, "tokens": 64}

    rows = after["details"]["drift"]["rows"]
    assert [r["site"] for r in rows] == list(before["unit_ids"]) == list(after["unit_ids"])
    for row, b, a in zip(rows, before["per_unit"], after["per_unit"], strict=True):
        assert row["d_pr_baseline"] == pytest.approx(b) and row["d_pr_subject"] == pytest.approx(a)
        assert row["d_pr_ratio"] == pytest.approx(a / b)
        assert 0 < row["linear_cka"] < 1 and 0 < row["feature_subspace_novelty"] <= 1
    run_dir = tmp_path / "run"
    for name in ("drift.json", "drift.csv", *every_file):
        assert (run_dir / "geometry-2" / name).is_file(), name
    assert "geometry-2/drift.json" in record.artifacts

    # the Python API on the stored results gives the same drift
    again = compare(GeometryResult.load(run_dir / "geometry"), GeometryResult.load(run_dir / "geometry-2"))
    for mine, stored in zip(again.rows, rows, strict=True):
        for key, value in stored.items():
            assert (mine[key] == pytest.approx(value)) if isinstance(value, float) else mine[key] == value, key
    identical = compare(GeometryResult.load(run_dir / "geometry"), GeometryResult.load(run_dir / "geometry"))
    assert all(r["linear_cka"] == pytest.approx(1.0) and r["d_pr_ratio"] == 1.0 for r in identical.rows)
    assert all(r["feature_subspace_novelty"] == pytest.approx(0.0, abs=1e-6) for r in identical.rows)
    with pytest.raises(GuardchainError) as caught:
        compare(GeometryResult.load(run_dir / "geometry"), GeometryResult.load(run_dir / "geometry-3"))
    assert caught.value.code == "GC-GEOM-BASELINE"


def test_an_explicit_baseline_on_other_sites_is_refused(geo_registry, tiny_model_dirs, tmp_path):
    pytest.importorskip("guardchain.data")
    steps = [
        {"metric": "geometry", "id": "a", "config": {"sample_size": 32, "sites": ["blocks[0].output"]}},
        {"metric": "geometry", "id": "b", "config": {"sample_size": 32, "baseline": "a"}},
    ]
    record = ChainRunner(geo_registry).run(
        validate_chain(_chain(tiny_model_dirs["gpt2"], steps), geo_registry), out_dir=tmp_path / "run"
    )
    assert record.status == "failed"
    assert record.problems[0].code == "GC-GEOM-BASELINE" and record.problems[0].path == "steps[1]"
    assert math.isfinite(record.steps[0].result["value"])
