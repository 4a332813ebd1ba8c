"""``llc`` as a chain step: the Metric contract, the runner with a reference adapter, and the example chain file on
the committed tiny GPT-2 through ``guardchain run`` (heavy)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from guardchain.core.config import validate_chain
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner
from guardchain.core.windows import LabeledTexts
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc.config import LlcConfig
from guardchain.metrics.llc.metric import LocalLearningCoefficient
from guardchain.metrics.llc.plot import matplotlib_available
from guardchain.testing import MetricContract

REPO = Path(__file__).resolve().parents[3]
SMALL = {"chains": 2, "draws": 6, "burnin": 2, "batch_size": 4, "max_windows": 8, "epsilon": 1e-5, "gamma": 100.0}

pytestmark = pytest.mark.filterwarnings("ignore::guardchain.metrics.llc.diagnostics.LlcWarning")


class TestLlcContract(MetricContract):
    name = "llc"

    @pytest.fixture
    def registry(self) -> Registry:
        import guardchain.metrics.plugin

        return Registry.from_plugins({"metrics": guardchain.metrics.plugin})

    @pytest.fixture
    def config(self):
        return SMALL

    @pytest.fixture
    def handle(self, causal):
        return causal

    @pytest.fixture
    def data(self, windows):
        return windows

    @pytest.fixture
    def context(self, tmp_path, registry, adapter, handle) -> RunContext:
        return RunContext(
            run_id="contract-test", seed=0, out_dir=tmp_path / "run", registry=registry, adapter=adapter, handle=handle
        )


def test_the_result_is_the_mean_over_chains_with_their_standard_error(causal, windows, make_context):
    context = make_context(causal)
    before = {k: v.clone() for k, v in causal.model.state_dict().items()}
    result = LocalLearningCoefficient(LlcConfig(**{**SMALL, "chains": 3}, plot=False)).compute(causal, windows, context)
    assert result.unit_ids == ("chain0", "chain1", "chain2")
    values = torch.tensor(result.per_unit, dtype=torch.float64)
    assert result.value == pytest.approx(float(values.mean()))
    assert result.uncertainty == pytest.approx(float(values.std(correction=1)) / math.sqrt(3))
    details = result.details
    assert details["n_windows"] == 8 and details["n_batches"] == 2 and details["seed"] == 0
    assert details["llc_std_ddof"] == 1 and details["loss"].startswith("causal_lm")
    assert details["nbeta"] == pytest.approx(8 / math.log(8)) and details["nbeta_source"].startswith("n/ln(n)")
    assert details["init_loss_source"].startswith("mean of the per-batch mean losses at w* over batches 0..1")
    assert all(torch.equal(before[k], v) for k, v in causal.model.state_dict().items())
    traces = json.loads((context.out_dir / details["traces"]).read_text())
    assert len(traces["loss_trace"]) == 3 and len(traces["loss_trace"][0]) == 8
    assert traces["draw_steps"] == [2, 3, 4, 5, 6, 7]


def test_sites_restrict_sampling_to_their_modules(causal, windows, make_context, adapter):
    class Sites:
        def resolve_sites(self, handle, site):
            from guardchain.core.handles import HookPoint, SiteRef

            if site != "blocks[1].mlp.output":
                raise GuardchainError.single("GC-TEST-SITE", f"unknown site {site!r}")
            return [SiteRef(site, "transformer.h.1.mlp", HookPoint.OUTPUT, 1)]

    context = make_context(causal, with_adapter=Sites())
    metric = LocalLearningCoefficient(LlcConfig(**SMALL, sites=("blocks[1].mlp.output",), plot=False))
    result = metric.compute(causal, windows, context)
    expected = sum(p.numel() for n, p in causal.model.named_parameters() if n.startswith("transformer.h.1.mlp."))
    assert result.details["n_params"] == expected and result.details["params"] == ["transformer.h.1.mlp"]
    bad = LocalLearningCoefficient(LlcConfig(**SMALL, sites=("blocks[9].nowhere",), plot=False))
    with pytest.raises(GuardchainError) as caught:
        bad.compute(causal, windows, context)
    assert caught.value.code == MetricErrorCode.LLC_PARAMS


def test_wrong_data_and_models_are_coded_errors(causal, windows, make_context):
    context = make_context(causal)
    metric = LocalLearningCoefficient(LlcConfig(**SMALL, plot=False))
    texts = LabeledTexts(ids=("a",), texts=("x",), labels=(0,), dataset_sha256="0" * 64)
    with pytest.raises(GuardchainError) as caught:
        metric.compute(causal, texts, context)
    assert caught.value.code == MetricErrorCode.DATA_TYPE
    from dataclasses import replace

    with pytest.raises(GuardchainError) as caught:
        metric.compute(replace(causal, model=object()), windows, context)
    assert caught.value.code == MetricErrorCode.LLC_MODEL
    only_preview = LocalLearningCoefficient(LlcConfig(**SMALL, split="preview", plot=False))
    with pytest.raises(GuardchainError) as caught:
        only_preview.compute(causal, windows.select("final"), context)
    assert caught.value.code == MetricErrorCode.EMPTY


def test_a_non_finite_initial_loss_fails_the_step_with_the_documented_code(causal, windows, make_context):
    """Before: status ok, λ̂ NaN, every chain 'healthy'."""
    metric = LocalLearningCoefficient(LlcConfig(**SMALL, init_loss=math.nan, plot=False))
    with pytest.raises(GuardchainError) as caught:
        metric.compute(causal, windows, make_context(causal))
    assert caught.value.code == MetricErrorCode.LLC_LOSS


@pytest.mark.parametrize(("epsilon", "gamma", "flag"), [(0.1, 100.0, None), (1.0, 1.0, None), (0.1, 1.0, "trend")])
def test_a_step_size_ten_thousand_times_too_large_is_never_reported_healthy(
    causal, windows, make_context, epsilon, gamma, flag
):
    """ε = 10⁴ × SMALL's 1e-5 (or × the default 1e-4). With γ = 100 the localization step (ε·γ = 10) multiplies
    w − w* by −4 per step while LayerNorm keeps the loss finite: before, every chain came back 'healthy' with a
    finite λ̂; now the chains pass the escape bound and no estimate is returned. With γ = 1 and ε = 1 the steepest
    directions are unstable and escape too; with ε = 0.1 the chains still fill the localization ball at the end
    of the run, which the distance trend reports."""
    config = LlcConfig(**{**SMALL, "chains": 3, "epsilon": epsilon, "gamma": gamma}, plot=False, save_traces=False)
    metric = LocalLearningCoefficient(config)
    if flag is None:
        with pytest.raises(GuardchainError) as caught:
            metric.compute(causal, windows, make_context(causal))
        assert caught.value.code == MetricErrorCode.LLC_DIVERGED
        return
    result = metric.compute(causal, windows, make_context(causal))
    assert flag in [w["check"] for w in result.details["diagnostics"]["warnings"]]


def test_the_step_size_check_from_a_chain_step(causal, windows, make_context):
    config = LlcConfig(**{**SMALL, "chains": 3, "draws": 20}, step_check_chains=2, plot=False, save_traces=False)
    result = LocalLearningCoefficient(config).compute(causal, windows, make_context(causal))
    check = result.details["diagnostics"]["step_check"]
    assert check["chains"] == [0, 1] and check["epsilon_half"] == SMALL["epsilon"] / 2
    assert len(check["llc_fine"]) == 2 and math.isfinite(check["difference"])
    assert check["verdict"] in ("ok", "bias", "inconclusive")
    assert result.details["step_check_chains"] == 2


def test_two_llc_steps_in_a_chain_write_separate_artifacts(adapter, tmp_path):
    from pydantic import BaseModel, ConfigDict

    from guardchain.core import PLUGIN_API_VERSION, hookimpl

    class NoConfig(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    class ReferencePlugin:
        GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

        @hookimpl
        def guardchain_register_adapters(self, registrar):
            registrar.register("reference", summary="Tiny models.", config_model=NoConfig, factory=lambda c: adapter)

    import guardchain.data.plugin
    import guardchain.metrics.plugin

    registry = Registry.from_plugins(
        {"data": guardchain.data.plugin, "metrics": guardchain.metrics.plugin, "ref": ReferencePlugin()}
    )
    words = sorted(w for w in adapter.tokenizer.get_vocab() if not w.startswith("["))
    text = " ".join(np.random.default_rng(0).choice(words, size=1200))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    raw = {
        "name": "llc-twice",
        "seed": 5,
        "model": {"ref": "tiny-causal:0", "adapter": "reference"},
        "data": {"dataset": "text", "config": {"paths": [str(tmp_path / "*.txt")], "seq_len": 16, "n_final": 8}},
        "steps": [
            {"metric": "llc", "id": "first", "config": SMALL},
            {"metric": "llc", "id": "second", "config": {**SMALL, "params": ["transformer.h.0"]}},
        ],
    }
    record = ChainRunner(registry).run(validate_chain(raw, registry), out_dir=tmp_path / "run")
    assert record.status == "ok", record.problems
    first, second = (step.result for step in record.steps)
    assert first["details"]["seed"] == 5  # the chain's seed
    assert (first["details"]["traces"], second["details"]["traces"]) == ("llc/traces.json", "llc-2/traces.json")
    if matplotlib_available():
        assert set(record.artifacts) == {"llc/traces.json", "llc/traces.png", "llc-2/traces.json", "llc-2/traces.png"}
    else:  # the plot is skipped, and the result says why
        assert set(record.artifacts) == {"llc/traces.json", "llc-2/traces.json"}
        assert "matplotlib" in first["details"]["plot_skipped"]
    assert all((tmp_path / "run" / name).stat().st_size > 0 for name in record.artifacts)
    assert second["details"]["n_params"] < first["details"]["n_params"]


@pytest.mark.heavy
def test_the_example_chain_runs_on_the_tiny_gpt2_through_the_cli(cli, tmp_path):
    pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    done = cli("run", str(REPO / "examples" / "llc_tiny_gpt2.yaml"), "--out", str(out), "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok" and record["model"]["adapter"]["name"] == "hf_gpt2"
    result = record["steps"][0]["result"]
    assert result["metric"] == "llc" and math.isfinite(result["value"]) and result["value"] > 0
    assert result["details"]["diagnostics"]["healthy_chains"] == list(range(len(result["unit_ids"])))
    png = (out / "llc" / "traces.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((out / "llc" / "traces.json").read_text())["loss_trace"]) == len(result["unit_ids"])
