"""ppl through the real Hugging Face adapter on the repository's tiny GPT-2 and the bundled KJV chapters.

Skipped when guardchain-adapters (or its tiny checkpoint) is not installed: the rest of this suite uses an in-test
reference adapter, this module checks that the real one and the metric agree on the contract.
"""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.certify.statistics import paired_comparison
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry, RegistrySettings

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    registry = Registry.discover(RegistrySettings())
    try:
        adapter = registry.create("adapter", "hf_gpt2").instance
        context = RunContext(run_id="hf", seed=0, out_dir=tmp_path_factory.mktemp("run"), registry=registry)
        context.adapter = adapter
        context.handle = adapter.load("tiny-gpt2", context)
    except GuardchainError as exc:
        pytest.skip(f"the tiny GPT-2 checkpoint cannot be loaded: {exc}")
    context.data = registry.create("dataset", "kjv_excerpt", {"n_final": 16}).instance.load(context)
    return registry, context


def test_ppl_of_the_tiny_gpt2_on_kjv_validation_matches_its_own_loss(loaded):
    registry, context = loaded
    handle, windows = context.handle, context.data
    result = registry.create("metric", "ppl").instance.compute(handle, windows, context)
    total, count = 0.0, 0
    with torch.no_grad():
        for tokens in windows.select("final").tokens:
            ids = torch.tensor([tokens])
            total += handle.model(input_ids=ids, labels=ids).loss.item() * (len(tokens) - 1)
            count += len(tokens) - 1
    assert result.value == pytest.approx(math.exp(total / count), rel=1e-5)
    assert 20 < result.value < 100  # a trained model: far below the unigram baseline (~418)
    assert result.details["n_tokens"] == count
    assert (result.details["mode"], result.details["mode_source"]) == ("causal", "provenance")
    assert result.details["tokenizer_checked"] is True
    assert paired_comparison(result, result).estimate == 1.0
