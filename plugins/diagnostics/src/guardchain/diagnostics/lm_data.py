"""Batches for a model loaded by an adapter: seeded disjoint draws of token windows or labelled texts, the loss.

- ``causal_lm`` (``TokenWindows``): the windows' content tokens, right-padded; ``targets[:, t] = ids[:, t + 1]``,
  scored where both tokens are real. Loss: mean next-token cross-entropy over scored positions (nats/token).
- ``masked_lm`` (``TokenWindows``): ``[CLS] content [SEP]`` when the tokenizer has both, right-padded; a seeded
  ``mask_fraction`` of the content tokens (at least one per window) replaced by ``[MASK]``. Loss: mean
  cross-entropy of the original tokens at the masked positions (nats/token).
- ``classification`` (``LabeledTexts``): each text through the tokenizer with its special tokens, cut to
  ``max_length``, right-padded. Loss: mean cross-entropy of the class logits over the examples (nats/example).

The draw: ``numpy.random.default_rng(seed).permutation(n)`` of the windows (or examples) of the split, cut into
``min(n_batches, n // batch_size)`` batches of ``batch_size``; fewer than two is an error. Hidden-state statistics
count every token with attention mask 1 (special tokens included, padding never).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from guardchain.core.handles import ModelHandle
from guardchain.core.windows import LabeledTexts, TokenWindows, right_padded
from guardchain.diagnostics.batches import PreparedBatch
from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error
from guardchain.diagnostics.config import FaDiagnosticsConfig

#: ``handle.provenance["objective"]`` / ``["head"]`` values and the loss each means.
OBJECTIVES: dict[str, str] = {
    "causal": "causal_lm",
    "causal_lm": "causal_lm",
    "clm": "causal_lm",
    "masked": "masked_lm",
    "masked_lm": "masked_lm",
    "mlm": "masked_lm",
    "classification": "classification",
    "classifier": "classification",
    "sequence_classification": "classification",
}
REDUCTIONS: dict[str, str] = {
    "causal_lm": "mean next-token cross-entropy over scored positions (nats/token)",
    "masked_lm": "mean cross-entropy over the masked positions (nats/token)",
    "classification": "mean cross-entropy of the class logits over examples (nats/example)",
}


def resolve_loss(requested: str, handle: ModelHandle, data: Any) -> tuple[str, str]:
    """``(loss, source)``: the configured loss, else the adapter's recorded objective, else one from the data."""
    if requested != "auto":
        return requested, "config"
    for key in ("objective", "head"):
        found = OBJECTIVES.get(str(handle.provenance.get(key, "")).lower())
        if found is not None:
            return found, f"provenance.{key}"
    return ("classification" if isinstance(data, LabeledTexts) else "causal_lm"), "data"


def _pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = right_padded(rows, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _draw(n: int, config: FaDiagnosticsConfig, seed: int, what: str) -> list[np.ndarray]:
    used = min(config.n_batches, n // config.batch_size)
    if used < 2:
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"{n} {what} give {used} disjoint batch(es) of {config.batch_size}; the drift check (c) needs at least two",
            hint="lower batch_size, or load more data",
        )
    order = np.random.default_rng(seed).permutation(n)[: used * config.batch_size]
    return [order[k * config.batch_size : (k + 1) * config.batch_size] for k in range(used)]


def _token_id(tokenizer: Any, name: str) -> int | None:
    value = getattr(tokenizer, name, None)
    return int(value) if isinstance(value, int) else None


def _causal(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.zeros_like(ids)
    scored = torch.zeros_like(mask)
    targets[:, :-1] = ids[:, 1:]
    scored[:, :-1] = mask[:, 1:] & mask[:, :-1]
    return targets, scored


def _masked(
    ids: torch.Tensor, mask: torch.Tensor, tokenizer: Any, fraction: float, generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    mask_id = _token_id(tokenizer, "mask_token_id")
    if mask_id is None:
        raise diag_error(DiagnosticsErrorCode.NO_TOKENIZER, "masked_lm needs a tokenizer with a [MASK] token")
    cls_id, sep_id = _token_id(tokenizer, "cls_token_id"), _token_id(tokenizer, "sep_token_id")
    content = mask.clone()
    if cls_id is not None and sep_id is not None:
        rows = torch.arange(ids.shape[0])
        lengths = mask.sum(dim=1)
        wrapped = torch.full((ids.shape[0], ids.shape[1] + 2), _token_id(tokenizer, "pad_token_id") or 0)
        wrapped[:, 0] = cls_id
        wrapped[:, 1:-1] = ids
        wrapped[rows, lengths + 1] = sep_id
        attention = torch.arange(wrapped.shape[1])[None, :] < (lengths + 2)[:, None]
        content = torch.zeros_like(attention)
        content[:, 1:-1] = mask
        ids, mask = wrapped, attention
    draws = torch.rand(ids.shape, generator=generator)
    chosen = (draws < fraction) & content
    fallback = torch.where(content, draws, torch.full_like(draws, 2.0)).argmin(dim=1)  # one per row at least
    rows_without = ~chosen.any(dim=1) & content.any(dim=1)
    chosen[rows_without, fallback[rows_without]] = True
    inputs = torch.where(chosen, torch.full_like(ids, mask_id), ids)
    return {"input_ids": inputs, "attention_mask": mask.long()}, mask, ids, chosen


def lm_batches(
    handle: ModelHandle, data: Any, config: FaDiagnosticsConfig, loss: str, seed: int, device: torch.device
) -> tuple[list[PreparedBatch], dict[str, Any]]:
    """The batches of the module docstring, on ``device``, and facts for the report's ``setup``.

    :raises GuardchainError: ``GC-DIAG-DATA-TYPE``, ``GC-DIAG-BATCHES``, ``GC-DIAG-NO-TOKENIZER``.
    """
    tokenizer = handle.tokenizer
    pad_id = _token_id(tokenizer, "pad_token_id") or 0
    if loss == "classification":
        if not isinstance(data, LabeledTexts):
            raise diag_error(
                DiagnosticsErrorCode.DATA_TYPE,
                f"loss 'classification' needs LabeledTexts, got {type(data).__name__}",
                hint="use a dataset with label_field (jsonl, hf_datasets)",
            )
        if tokenizer is None:
            raise diag_error(
                DiagnosticsErrorCode.NO_TOKENIZER, f"classification texts need the tokenizer of {handle.ref!r}"
            )
        batches = []
        for chosen in _draw(len(data), config, seed, "examples"):
            encoded = tokenizer([data.texts[i] for i in chosen], truncation=True, max_length=config.max_length)
            ids, mask = _pad(encoded["input_ids"], pad_id)
            labels = torch.tensor([data.labels[i] for i in chosen], dtype=torch.int64)
            batches.append(
                PreparedBatch(
                    ids=tuple(data.ids[i] for i in chosen),
                    inputs={"input_ids": ids.to(device), "attention_mask": mask.long().to(device)},
                    token_mask=mask.to(device),
                    targets=labels.to(device),
                    target_mask=torch.ones(len(chosen), dtype=torch.bool, device=device),
                )
            )
        return batches, {
            "n_available": len(data),
            "dataset_sha256": data.dataset_sha256,
            "max_length": config.max_length,
        }
    if not isinstance(data, TokenWindows):
        raise diag_error(
            DiagnosticsErrorCode.DATA_TYPE,
            f"loss {loss!r} needs TokenWindows, got {type(data).__name__}",
            hint="use a text dataset (text, jsonl, kjv_excerpt, ...)",
        )
    windows = data if config.split == "all" else data.select(config.split)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for chosen in _draw(len(windows), config, seed, f"{config.split!r} windows"):
        ids, mask = _pad([windows.tokens[i] for i in chosen], pad_id)
        if loss == "causal_lm":
            targets, scored = _causal(ids, mask)
            inputs = {"input_ids": ids, "attention_mask": mask.long()}
        else:
            inputs, mask, targets, scored = _masked(ids, mask, tokenizer, config.mask_fraction, generator)
        batches.append(
            PreparedBatch(
                ids=tuple(windows.ids[i] for i in chosen),
                inputs={k: v.to(device) for k, v in inputs.items()},
                token_mask=mask.to(device),
                targets=targets.to(device),
                target_mask=scored.to(device),
            )
        )
    facts: dict[str, Any] = {
        "n_available": len(windows),
        "split": config.split,
        "seq_len": windows.seq_len,
        "windows_digest": windows.digest(),
        "dataset_sha256": windows.dataset_sha256,
    }
    if loss == "masked_lm":
        facts["mask_fraction"] = config.mask_fraction
    return batches, facts
