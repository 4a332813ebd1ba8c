"""token_logprobs and class_logits: agreement with transformers, padding invariance, pseudo-log-likelihood."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from guardchain.adapters.scoring import mask_groups
from guardchain.core.errors import GuardchainError


def _windows(lengths: list[int], seed: int = 0, low: int = 5, high: int = 40) -> dict[str, torch.Tensor]:
    """Right-padded content windows of the given lengths (padding ids are deliberately not 0)."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), 7, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(low, high, (length,), generator=gen)
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_perplexity_matches_transformers_labels_loss(load: Any, arch: str) -> None:
    adapter, handle = load(arch)
    batch = _windows([24, 24, 24], seed=3)
    logprobs = adapter.token_logprobs(handle, batch)
    assert logprobs.dtype == torch.float32 and logprobs.device.type == "cpu"
    assert logprobs.shape == (3, 24)
    assert torch.isnan(logprobs[:, 0]).all() and not torch.isnan(logprobs[:, 1:]).any()
    for row in range(3):
        ids = batch["input_ids"][row : row + 1]
        with torch.no_grad():
            loss = handle.model(input_ids=ids, labels=ids).loss.item()
        ours = -logprobs[row, 1:].mean().item()
        assert ours == pytest.approx(loss, rel=1e-5)
        assert math.exp(ours) == pytest.approx(math.exp(loss), rel=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_right_padding_does_not_change_logprobs(load: Any, arch: str) -> None:
    adapter, handle = load(arch)
    batch = _windows([20, 9, 14], seed=5)
    together = adapter.token_logprobs(handle, batch)
    for row, length in enumerate([20, 9, 14]):
        alone = adapter.token_logprobs(
            handle, {"input_ids": batch["input_ids"][row : row + 1, :length], "attention_mask": None}
        )
        torch.testing.assert_close(together[row, 1:length], alone[0, 1:], rtol=0, atol=1e-5)
        assert torch.isnan(together[row, length:]).all()
        assert torch.isnan(together[row, 0])


def test_forward_batch_size_does_not_change_results(load: Any) -> None:
    _, handle = load("llama")
    big, _ = load("llama", forward_batch_size=1)
    adapter, _ = load("llama", forward_batch_size=64)
    batch = _windows([12, 5, 9, 12], seed=2)
    torch.testing.assert_close(
        big.token_logprobs(handle, batch), adapter.token_logprobs(handle, batch), equal_nan=True, rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_vocabulary_projection_in_row_chunks_equals_the_full_forward(
    load: Any, arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardchain.adapters import scoring

    adapter, handle = load(arch)
    assert scoring.split_head(handle.model) is not None
    batch = _windows([24, 17, 24, 5], seed=11)
    monkeypatch.setattr(scoring, "HEAD_CHUNK_ELEMENTS", 1)  # one row per projection
    chunked = adapter.token_logprobs(handle, batch)
    monkeypatch.setattr(scoring, "split_head", lambda model: None)  # the model's own forward, whole logits
    full = adapter.token_logprobs(handle, batch)
    assert torch.equal(chunked.isnan(), full.isnan())
    assert torch.allclose(chunked.nan_to_num(), full.nan_to_num(), rtol=0, atol=1e-6)


def test_bfloat16_models_score_in_float32(load: Any) -> None:
    adapter32, handle32 = load("gpt2")
    adapter16, handle16 = load("gpt2", dtype="bfloat16")
    assert next(handle16.model.parameters()).dtype == torch.bfloat16
    batch = _windows([16, 16], seed=4)
    low = adapter16.token_logprobs(handle16, batch)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, adapter32.token_logprobs(handle32, batch), equal_nan=True, rtol=0, atol=0.1)


class _ForwardSpy:
    """Records the input_ids of every forward pass of a model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[torch.Tensor] = []
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _m: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        self.calls.append(kwargs["input_ids"].clone())

    def remove(self) -> None:
        self._handle.remove()


def test_pseudo_log_likelihood_masks_each_content_position_exactly_once(load: Any) -> None:
    adapter, handle = load("bert", mlm_mask_groups=4)
    tok = handle.tokenizer
    batch = _windows([10, 6, 3], seed=7)
    spy = _ForwardSpy(handle.model)
    try:
        out = adapter.token_logprobs(handle, batch)
    finally:
        spy.remove()
    assert out.shape == (3, 10) and out.dtype == torch.float32
    assert len(spy.calls) == 4  # one forward per group (all rows fit one chunk)
    masked_count = torch.zeros((3, 12), dtype=torch.long)
    for ids in spy.calls:
        masked_count[:, : ids.shape[1]] += (ids == tok.mask_token_id).long()
        for row, length in enumerate([10, 6, 3]):
            assert ids[row, 0] == tok.cls_token_id and ids[row, length + 1] == tok.sep_token_id
            unmasked = ids[row, 1 : length + 1] != tok.mask_token_id
            assert torch.equal(ids[row, 1 : length + 1][unmasked], batch["input_ids"][row, :length][unmasked])
            assert (ids[row, length + 2 :] == tok.pad_token_id).all()
    for row, length in enumerate([10, 6, 3]):
        assert masked_count[row, 0] == 0 and masked_count[row, length + 1] == 0  # [CLS] / [SEP] never masked
        assert (masked_count[row, 1 : length + 1] == 1).all()  # every content position exactly once
        assert not torch.isnan(out[row, :length]).any() and torch.isnan(out[row, length:]).all()
        assert (out[row, :length] <= 0).all()


def test_pseudo_log_likelihood_is_independent_of_batch_composition(load: Any) -> None:
    adapter, handle = load("bert")
    batch = _windows([11, 4, 8], seed=9)
    together = adapter.token_logprobs(handle, batch)
    for row, length in enumerate([11, 4, 8]):
        alone = adapter.token_logprobs(handle, {"input_ids": batch["input_ids"][row : row + 1, :length]})
        torch.testing.assert_close(together[row, :length], alone[0], rtol=0, atol=1e-5)
    reordered = adapter.token_logprobs(handle, {k: v[[2, 0, 1]] for k, v in batch.items()})
    torch.testing.assert_close(reordered, together[[2, 0, 1]], equal_nan=True, rtol=0, atol=1e-5)


def test_pseudo_log_likelihood_matches_masking_one_group_by_hand(load: Any) -> None:
    adapter, handle = load("bert", mlm_mask_groups=3, mlm_seed=11)
    tok = handle.tokenizer
    content = torch.randint(5, 40, (9,), generator=torch.Generator().manual_seed(0))
    out = adapter.token_logprobs(handle, {"input_ids": content[None]})
    groups = mask_groups(9, 3, 11)
    for group in range(3):
        chosen = groups == group
        ids = torch.cat([torch.tensor([tok.cls_token_id]), content, torch.tensor([tok.sep_token_id])])
        ids[1:10][chosen] = tok.mask_token_id
        with torch.no_grad():
            logits = handle.model(input_ids=ids[None]).logits[0, 1:10]
        expected = torch.log_softmax(logits, -1).gather(-1, content[:, None]).squeeze(-1)
        torch.testing.assert_close(out[0][chosen], expected[chosen], rtol=0, atol=1e-5)


def test_mask_groups_partition_positions_deterministically() -> None:
    groups = mask_groups(20, 7, 0)
    assert sorted(groups.tolist()) == sorted([i % 7 for i in range(20)])
    assert torch.equal(groups, mask_groups(20, 7, 0))
    assert not torch.equal(groups, mask_groups(20, 7, 1))
    assert set(mask_groups(3, 7, 0).tolist()) <= set(range(7))
    assert mask_groups(1, 7, 0).tolist() == [0]


def test_class_logits_match_the_classifier(load: Any) -> None:
    adapter, handle = load("bert_cls")
    tok = handle.tokenizer
    batch = _windows([6, 3], seed=1)
    logits = adapter.class_logits(handle, batch)
    assert logits.shape == (2, 3) and logits.dtype == torch.float32
    for row, length in enumerate([6, 3]):
        ids = torch.cat(
            [torch.tensor([tok.cls_token_id]), batch["input_ids"][row, :length], torch.tensor([tok.sep_token_id])]
        )
        with torch.no_grad():
            expected = handle.model(input_ids=ids[None]).logits[0]
        torch.testing.assert_close(logits[row], expected, rtol=0, atol=1e-5)


def test_heads_without_token_predictions_refuse_token_logprobs(load: Any) -> None:
    for kind in ("bert_cls", "bert_base"):
        adapter, handle = load(kind)
        with pytest.raises(GuardchainError) as caught:
            adapter.token_logprobs(handle, _windows([4]))
        assert caught.value.code == "GC-HF-HEAD-UNSUPPORTED"
    adapter, handle = load("bert")
    with pytest.raises(GuardchainError, match="sequence-classification") as caught:
        adapter.class_logits(handle, _windows([4]))
    assert caught.value.code == "GC-HF-HEAD-UNSUPPORTED"


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        ({"input_ids": torch.tensor([5, 6, 7])}, "2-D"),
        ({"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.tensor([[0, 1, 1]])}, "right-padded"),
        ({"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.tensor([[1, 2, 0]])}, "only 0 and 1"),
        ({"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.tensor([[1, 1]])}, "shape"),
        ({"input_ids": torch.tensor([[5, 6, 9999]])}, "token ids"),
        ({"input_ids": torch.tensor([[5.0, 6.0]])}, "integers"),
        ({"input_ids": torch.full((1, 65), 5)}, "exceed"),
        ({"tokens": [[1, 2]]}, "mapping"),
    ],
)
def test_malformed_batches_are_refused(load: Any, batch: Any, fragment: str) -> None:
    adapter, handle = load("gpt2")
    with pytest.raises(GuardchainError, match=fragment) as caught:
        adapter.token_logprobs(handle, batch)
    assert caught.value.code == "GC-HF-BATCH-INVALID"


def test_nested_lists_and_empty_rows_are_accepted(load: Any) -> None:
    adapter, handle = load("gpt2")
    out = adapter.token_logprobs(
        handle, {"input_ids": [[5, 6, 7], [8, 0, 0]], "attention_mask": [[1, 1, 1], [0, 0, 0]]}
    )
    assert not torch.isnan(out[0, 1:]).any() and torch.isnan(out[1]).all()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_a_nan_weight_scores_as_impossible_not_as_unscored(load: Any, arch: str) -> None:
    """NaN marks unscored positions, so a broken model's NaN must come back as -inf (metrics then refuse it)."""
    adapter, handle = load(arch)
    batch = _windows([12, 7], seed=2)
    before = adapter.token_logprobs(handle, batch)
    with torch.no_grad():
        next(p for n, p in handle.model.named_parameters() if n.endswith("weight") and p.dim() == 2).fill_(math.nan)
    after = adapter.token_logprobs(handle, batch)
    scored = ~torch.isnan(before)
    assert scored.any()
    assert torch.equal(torch.isnan(after), ~scored)  # unscored stays NaN, nothing else does
    assert torch.isneginf(after[scored]).all()
