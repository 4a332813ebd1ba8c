"""Interchange on a tiny GPT-2 trained here to copy a token: patched runs give the counterfactual output.

Task: ``[x, r, SEP] -> x`` (copy the first token, ignore the distractor ``r``). Patching the source's first
position into the base must make the model answer the source's ``x``; patching the distractor position must not
change the answer; patching the last position at the last block carries the source's answer with it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.interventions import Interchange, IntervenedModel, Units
from guardchain.interventions.codes import InterventionErrorCode

N_TOKENS = 12
SEP = N_TOKENS


def _batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, N_TOKENS, (n,), generator=generator)
    r = torch.randint(0, N_TOKENS, (n,), generator=generator)
    return torch.stack([x, r, torch.full_like(x, SEP)], dim=1), x


@pytest.fixture(scope="module")
def copier() -> tuple[Any, Any]:
    """(adapter, handle) of a 2-layer GPT-2 trained to copy; accuracy checked before use."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from guardchain.adapters.adapters import GPT2Adapter

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=N_TOKENS + 1, n_positions=3, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0)
    config.embd_pdrop = config.attn_pdrop = 0.0
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(250):
        ids, target = _batch(128, generator)
        loss = torch.nn.functional.cross_entropy(model(ids).logits[:, -1], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    ids, target = _batch(512, generator)
    with torch.no_grad():
        accuracy = (model(ids).logits[:, -1].argmax(-1) == target).float().mean().item()
    assert accuracy > 0.99, f"the copy model did not learn the task ({accuracy:.3f})"
    return GPT2Adapter(), ModelHandle(model=model, adapter="hf_gpt2", ref="copier")


def _answers(adapter: Any, handle: Any, site: str, position: int, base: torch.Tensor, source: torch.Tensor) -> Any:
    im = IntervenedModel.from_sites(adapter, handle, [(site, Interchange(), Units(positions=[position]))])
    with torch.no_grad():
        return im(base, sources=[source]).logits[:, -1].argmax(-1)


def test_interchange_gives_the_counterfactual_output(copier):
    adapter, handle = copier
    generator = torch.Generator().manual_seed(1)
    base, base_x = _batch(256, generator)
    source, source_x = _batch(256, generator)
    assert (base_x != source_x).float().mean() > 0.8
    # the copied token lives at position 0 on the way in: patching it there swaps the answer
    assert torch.equal(_answers(adapter, handle, "blocks[0].input", 0, base, source), source_x)
    # the distractor position carries nothing the answer depends on
    assert torch.equal(_answers(adapter, handle, "blocks[0].input", 1, base, source), base_x)
    # at the end of the network the answer has moved to the last position
    assert torch.equal(_answers(adapter, handle, "blocks[1].output", 2, base, source), source_x)
    assert torch.equal(_answers(adapter, handle, "blocks[1].output", 0, base, source), base_x)


def test_source_positions_and_one_source_row_broadcast(copier):
    adapter, handle = copier
    base = torch.tensor([[1, 2, SEP], [3, 4, SEP], [5, 6, SEP]])
    source = torch.tensor([[7, 9, SEP]])
    units = Units(positions=[0], source_positions=[1])  # read the source's distractor, write it as the copied token
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].input", Interchange(), units)])
    with torch.no_grad():
        answers = im(base, sources=[source]).logits[:, -1].argmax(-1)
    assert answers.tolist() == [9, 9, 9]


def test_interchange_with_a_cached_source_and_mismatched_batches(copier):
    adapter, handle = copier
    base = torch.tensor([[1, 2, SEP], [3, 4, SEP]])
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].input", Interchange(), Units(positions=[0]))])
    with torch.no_grad(), im.attach(sources=[torch.tensor([[8, 1, SEP], [10, 1, SEP]])]):
        first = handle.model(base).logits[:, -1].argmax(-1)
        second = handle.model(base.flip(0)).logits[:, -1].argmax(-1)
    assert first.tolist() == [8, 10] and second.tolist() == [8, 10]
    with pytest.raises(GuardchainError) as caught:
        im(base, sources=[torch.tensor([[8, 1, SEP]] * 3)])
    assert caught.value.code == InterventionErrorCode.SHAPE
    with pytest.raises(GuardchainError) as caught:
        im(base)
    assert caught.value.code == InterventionErrorCode.SOURCE
    with pytest.raises(GuardchainError) as caught:
        IntervenedModel.from_sites(adapter, handle, [("blocks[0].input", Interchange(), Units(positions=[0]), 1)])(
            base, sources=[base]
        )
    assert caught.value.code == InterventionErrorCode.SOURCE


def test_source_runs_stop_after_the_last_site(copier):
    adapter, handle = copier
    fired: list[str] = []
    head = handle.model.lm_head.register_forward_hook(lambda *_: fired.append("lm_head"))
    try:
        im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].input", Interchange(), Units(positions=[0]))])
        fired.clear()
        with torch.no_grad():
            im(torch.tensor([[1, 2, SEP]]), sources=[torch.tensor([[3, 4, SEP]])])
    finally:
        head.remove()
    assert fired == ["lm_head"], "the source run skipped the head; only the base run reached it"
