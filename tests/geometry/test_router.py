"""MoE router statistics on tiny random-init Mixtral and Qwen2-MoE models built from transformers configs.

No adapter handles these architectures, so the Python API runs on the bare module (sites resolved by
``guardchain.geometry.sites``); the ground truth is the model's own ``router_logits`` output.
"""

from __future__ import annotations

import pytest
import torch

from guardchain.geometry import analyze, find_routers, formulas, resolve_module_sites
from guardchain.geometry.collect import Collector


def _mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=64,
        initializer_range=0.5,
    )
    return MixtralForCausalLM(config).eval()


def _qwen2_moe():
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    config = Qwen2MoeConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=16,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=6,
        num_experts_per_tok=3,
        decoder_sparse_step=1,
        max_position_embeddings=64,
        initializer_range=0.5,
    )
    return Qwen2MoeForCausalLM(config).eval()


BUILDERS = {"mixtral": _mixtral, "qwen2_moe": _qwen2_moe}


def _batches():
    generator = torch.Generator().manual_seed(3)
    out = []
    for lengths in ([12, 7, 12], [5, 12, 9]):
        ids = torch.randint(1, 64, (3, 12), generator=generator)
        mask = (torch.arange(12)[None, :] < torch.tensor(lengths)[:, None]).long()
        out.append({"input_ids": torch.where(mask.bool(), ids, 0), "attention_mask": mask})
    return out


def _true_counts(model, batches, top_k, experts):
    counts = torch.zeros((model.config.num_hidden_layers, experts), dtype=torch.long)
    with torch.no_grad():
        for batch in batches:
            out = model(**batch, output_router_logits=True, use_cache=False)
            keep = batch["attention_mask"].reshape(-1).bool()
            for layer, logits in enumerate(out.router_logits):
                chosen = torch.topk(logits[keep], top_k, dim=-1).indices.flatten()
                counts[layer] += torch.bincount(chosen, minlength=experts)
    return counts


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_router_counts_equal_the_models_own_router_logits_without_padding(arch):
    model = BUILDERS[arch]()
    top_k = model.config.num_experts_per_tok
    experts = getattr(model.config, "num_local_experts", None) or model.config.num_experts
    batches = _batches()
    truth = _true_counts(model, batches, top_k, experts)
    routers = find_routers(model)
    assert [r.block for r in routers] == [0, 1] and all(r.top_k == top_k for r in routers)
    # only the last block's input is a site: the forward must still run until block 1's router has fired
    refs = resolve_module_sites(model, ["blocks[1].input"])
    state = Collector(model, refs, routers, sample_size=0, seed=0).collect(batches)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    for layer, router in enumerate(routers):
        counts = state.routers[router.module_path].to_host()
        assert counts.tolist() == truth[layer].tolist()
        assert counts.sum() == tokens * top_k

    result = analyze(model, batches, sites=["blocks[1].input"], sample_size=16)
    assert [row["layer"] for row in result.router] == [0, 1]
    for layer, row in enumerate(result.router):
        expected = formulas.router_metrics(truth[layer].numpy())
        for key, value in expected.items():
            assert row[key] == pytest.approx(value), (layer, key)
        assert row["top_k"] == top_k and row["module"] == routers[layer].module_path


def test_router_modules_can_be_named_and_forbidding_them_skips_them():
    model = _mixtral()
    named = find_routers(model, ["model.layers.1.mlp.gate"])
    assert [r.module_path for r in named] == ["model.layers.1.mlp.gate"] and named[0].block == 1
    result = analyze(model, _batches(), sites=["blocks[0].output"], sample_size=8, router=False)
    assert result.router == []
    only_one = analyze(
        model, _batches(), sites=["blocks[0].output"], sample_size=8, router_modules=["model.layers.1.mlp.gate"]
    )
    assert [row["layer"] for row in only_one.router] == [1]
    assert only_one.metadata["router_modules"] == ["model.layers.1.mlp.gate"]
