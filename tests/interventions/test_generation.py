"""Generation semantics: prompt-only vs every step, explicit, and identical with and without a KV cache."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.interventions import Add, Collect, Interchange, IntervenedModel, Units
from guardchain.interventions.codes import InterventionErrorCode


def _generate(im: IntervenedModel, ids: torch.Tensor, *, generation: str, use_cache: bool, **kw: Any) -> Any:
    return im.generate(
        ids,
        generation=generation,
        max_new_tokens=5,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_logits=True,
        **kw,
    )


def _logits(out: Any) -> torch.Tensor:
    return torch.stack(out.logits, dim=1)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_cached_and_uncached_generation_apply_the_same_edit(load_tiny, tokens, kind):
    adapter, handle = load_tiny(kind)
    ids = tokens(kind, 2, 6)["input_ids"]
    v = torch.linspace(-2, 2, 32)
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", Add(v, 3.0), Units(positions=[-1]))])
    results = {}
    for policy in ("prompt", "every_step"):
        cached = _generate(im, ids, generation=policy, use_cache=True)
        uncached = _generate(im, ids, generation=policy, use_cache=False)
        assert torch.equal(cached.sequences, uncached.sequences)
        torch.testing.assert_close(_logits(cached), _logits(uncached), rtol=1e-4, atol=1e-4)
        results[policy] = _logits(cached)
    plain = _logits(
        handle.model.generate(
            ids, max_new_tokens=5, do_sample=False, pad_token_id=0, return_dict_in_generate=True, output_logits=True
        )
    )
    # the first generated token depends on the prompt only: both policies agree there, and differ from no edit
    torch.testing.assert_close(results["prompt"][:, 0], results["every_step"][:, 0], rtol=0, atol=1e-5)
    assert not torch.allclose(results["prompt"][:, 0], plain[:, 0], atol=1e-3)
    # later steps differ: every_step also edits each generated position
    assert not torch.allclose(results["prompt"][:, 1:], results["every_step"][:, 1:], atol=1e-3)


def test_prompt_policy_edits_only_prompt_positions_and_every_step_each_new_one(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    ids = tokens("gpt2", 1, 4)["input_ids"]
    for policy, cached in (("prompt", True), ("every_step", True), ("every_step", False)):
        seen = Collect()
        im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", seen, Units(positions=[1]))])
        im.generate(ids, generation=policy, max_new_tokens=3, do_sample=False, use_cache=cached, pad_token_id=0)
        shapes = [tuple(t.shape) for t in seen.records["blocks[0].output"]]
        if policy == "prompt":
            assert shapes == [(1, 1, 32)], "the prefill only: decode steps see no prompt position"
        elif cached:
            # prompt position 1 on the prefill, then the one new position on each decode step
            assert shapes == [(1, 1, 32), (1, 1, 32), (1, 1, 32)]
        else:
            # uncached: every step recomputes the prompt edit and all generated positions so far
            assert shapes == [(1, 1, 32), (1, 1, 32), (1, 1, 32), (1, 1, 32), (1, 2, 32)]


def test_generation_policy_is_explicit_and_validated(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    ids = tokens("gpt2", 1, 4)["input_ids"]
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", Interchange(), Units(positions=[0]))])
    with pytest.raises(TypeError):
        im.generate(ids, max_new_tokens=2)  # no policy given
    with pytest.raises(GuardchainError) as caught:
        im.generate(ids, generation="every_step", sources=[ids], max_new_tokens=2)
    assert caught.value.code == InterventionErrorCode.GENERATION
    with pytest.raises(GuardchainError) as caught:
        im.generate(ids, generation="sometimes", sources=[ids], max_new_tokens=2)
    assert caught.value.code == InterventionErrorCode.GENERATION
    out = im.generate(ids, generation="prompt", sources=[ids], max_new_tokens=2, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 6)


def test_context_manager_around_a_bare_cached_generate(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    ids = tokens("gpt2", 1, 5)["input_ids"]
    v = torch.linspace(-2, 2, 32)
    kw = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0, "return_dict_in_generate": True}
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[1].output", Add(v, 2.0), Units(positions=[-1]))])
    with im:
        bare = handle.model.generate(ids, output_logits=True, **kw)
    wrapped = im.generate(ids, generation="prompt", output_logits=True, **kw)
    torch.testing.assert_close(_logits(bare), _logits(wrapped), rtol=0, atol=1e-6)
