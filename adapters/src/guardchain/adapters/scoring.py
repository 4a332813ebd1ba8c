"""Scoring batches of token windows: causal log-probabilities, masked-LM pseudo-log-likelihood, class logits.

A batch is ``{"input_ids": LongTensor[B, T], "attention_mask": LongTensor[B, T]}`` of **content** tokens (no
special tokens), right-padded: row ``b`` holds ``L_b`` tokens in columns ``0..L_b-1`` and ``attention_mask`` is 1
there and 0 after. ``attention_mask`` may be omitted (every position is content). Nested lists are accepted in
place of tensors. Every forward pass runs under ``torch.no_grad()``; log-softmax is computed in float32 whatever
the model's dtype; results are float32 CPU tensors. Natural logarithms (nats) throughout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from guardchain.adapters.errors import HFErrorCode, hf_error


@dataclass(frozen=True)
class Batch:
    """A validated batch, on the CPU.

    :ivar input_ids: ``LongTensor[B, T]``; padded positions hold 0.
    :ivar attention_mask: ``LongTensor[B, T]`` of 0/1, right-padded.
    :ivar lengths: ``LongTensor[B]``, content tokens per row (``attention_mask.sum(1)``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, T)``."""
        return int(self.input_ids.shape[0]), int(self.input_ids.shape[1])


def _as_long(value: Any, key: str) -> torch.Tensor:
    try:
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise hf_error(HFErrorCode.BATCH_INVALID, f"batch[{key!r}] is not a tensor of integers: {exc}") from exc
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise hf_error(HFErrorCode.BATCH_INVALID, f"batch[{key!r}] must hold integers, got {tensor.dtype}")
    if tensor.dim() != 2:
        raise hf_error(
            HFErrorCode.BATCH_INVALID,
            f"batch[{key!r}] must be 2-D [batch, positions], got shape {tuple(tensor.shape)}",
            hint="wrap a single window as [window]",
        )
    return tensor.detach().to("cpu", torch.long)


def validate_batch(batch: Any, *, vocab_size: int, max_positions: int | None) -> Batch:
    """Check and normalise a batch (see the module docstring).

    :param vocab_size: content token ids must lie in ``[0, vocab_size)``.
    :param max_positions: largest ``T`` the model accepts (``None``: no limit).
    :raises GuardchainError: ``GC-HF-BATCH-INVALID`` naming what is wrong.
    """
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise hf_error(
            HFErrorCode.BATCH_INVALID,
            f"a batch is a mapping with 'input_ids' (and 'attention_mask'), got {type(batch).__name__}",
        )
    ids = _as_long(batch["input_ids"], "input_ids")
    raw_mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if raw_mask is None else _as_long(raw_mask, "attention_mask")
    if mask.shape != ids.shape:
        raise hf_error(
            HFErrorCode.BATCH_INVALID,
            f"attention_mask has shape {tuple(mask.shape)} but input_ids has {tuple(ids.shape)}",
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise hf_error(HFErrorCode.BATCH_INVALID, "attention_mask must hold only 0 and 1")
    if ids.shape[1] > 1 and not bool((mask[:, 1:] <= mask[:, :-1]).all()):
        raise hf_error(
            HFErrorCode.BATCH_INVALID,
            "attention_mask is not right-padded: every row must be ones (content) followed by zeros (padding)",
        )
    if max_positions is not None and ids.shape[1] > max_positions:
        raise hf_error(
            HFErrorCode.BATCH_INVALID,
            f"windows of {ids.shape[1]} positions exceed the model's {max_positions}",
        )
    content = mask.bool()
    if bool(content.any()):
        lowest, highest = int(ids[content].min()), int(ids[content].max())
        if lowest < 0 or highest >= vocab_size:
            raise hf_error(
                HFErrorCode.BATCH_INVALID,
                f"token ids must lie in [0, {vocab_size}), found {lowest if lowest < 0 else highest}",
            )
    return Batch(ids.masked_fill(~content, 0), mask, mask.sum(dim=1))


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


#: Logits the vocabulary projection produces at once (rows x positions x vocabulary), about 64 MB in float32: the
#: full batch's logits (8 x 128 x 49,152 floats = 201 MB for SmolLM2, and as much again for their log-softmax) are
#: never held at the same time.
HEAD_CHUNK_ELEMENTS = 1 << 24


def causal_token_logprobs(model: torch.nn.Module, batch: Batch, *, forward_batch_size: int) -> torch.Tensor:
    """Next-token log-probabilities of a causal LM.

    ``out[b, t] = log p(x_t | x_0..x_{t-1}) = log_softmax(logits[b, t-1])[x_t]`` for ``1 <= t < L_b``; ``out[b, 0]``
    (no context) and padded positions are NaN. Rows are run ``forward_batch_size`` at a time, each chunk cut to its
    longest row (right padding never changes a causal LM's values at content positions). When the model is a
    decoder followed by a plain vocabulary projection (:func:`split_head`), the decoder runs on the whole chunk
    and the projection on a few rows at a time (:data:`HEAD_CHUNK_ELEMENTS`), so peak memory does not grow with
    the vocabulary times the batch.

    :returns: ``FloatTensor[B, T]`` on the CPU, in nats.
    """
    rows, width = batch.shape
    out = torch.full((rows, width), float("nan"), dtype=torch.float32)
    device = _device(model)
    parts = split_head(model)
    with torch.no_grad():
        for part in _chunks(rows, forward_batch_size):
            span = int(batch.lengths[part].max()) if rows else 0
            if span < 2:
                continue
            ids = batch.input_ids[part, :span].to(device)
            mask = batch.attention_mask[part, :span].to(device)
            if parts is None:
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                picked = _picked(logits, ids)
            else:
                decoder, head = parts
                hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
                step = max(1, HEAD_CHUNK_ELEMENTS // (span * int(head.weight.shape[0])))
                picked = torch.cat([_picked(head(hidden[r]), ids[r]) for r in _chunks(hidden.shape[0], step)])
            out[part, 1:span] = _nan_as_impossible(picked).cpu()
    out[batch.attention_mask == 0] = float("nan")
    return out


def _picked(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)[:, t-1]`` at token ``ids[:, t]``: ``[rows, span - 1]``."""
    # log_softmax of the whole (contiguous) logits, sliced after: a non-contiguous input takes a slower kernel
    # (~1.7x here), which costs more than the one extra position per row.
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)


def split_head(model: torch.nn.Module) -> tuple[Any, torch.nn.Linear] | None:
    """``(decoder, head)`` when ``model(x).logits == head(decoder(x).last_hidden_state)`` exactly by construction:
    a transformers causal LM whose output embedding is a plain ``nn.Linear`` and whose config asks for no logit
    post-processing (soft-capping, scaling). ``None`` otherwise (the full forward is used)."""
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    config = getattr(model, "config", None)
    if not callable(get_decoder) or not callable(get_head) or config is None:
        return None
    for attribute in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
        if getattr(config, attribute, None) not in (None, 1, 1.0):
            return None
    head = get_head()
    if type(head) is not torch.nn.Linear or hasattr(model, "logit_scale"):
        return None
    return get_decoder(), head


def _nan_as_impossible(logprobs: torch.Tensor) -> torch.Tensor:
    """A scored position whose log-probability is NaN (non-finite logits) becomes ``-inf``.

    NaN is how this module marks *unscored* positions, so a broken model's NaN must not be mistaken for one: the
    model gave the observed token no valid probability, and metrics then refuse the window as non-finite.
    """
    return logprobs.masked_fill(torch.isnan(logprobs), float("-inf"))


def _pattern_seed(seed: int, length: int) -> int:
    digest = hashlib.sha256(f"guardchain-mlm:{seed}:{length}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@lru_cache(maxsize=1024)
def _groups(length: int, n_groups: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(_pattern_seed(seed, length))
    order = torch.randperm(length, generator=generator)
    groups = torch.empty(length, dtype=torch.long)
    groups[order] = torch.arange(length) % n_groups
    return groups


def mask_groups(length: int, n_groups: int, seed: int) -> torch.Tensor:
    """The group (``0..n_groups-1``) of each content position ``0..length-1`` of a window of ``length`` tokens.

    A seeded permutation of the positions is dealt round-robin into the groups, so group sizes differ by at most
    one and neighbouring tokens are rarely masked together. The pattern depends only on ``(seed, length,
    n_groups)`` — never on the other windows of a batch — and is identical on every platform (a CPU
    ``torch.Generator`` seeded from SHA-256 of ``"guardchain-mlm:{seed}:{length}"``).

    :returns: ``LongTensor[length]`` (a copy; callers may modify it).
    """
    return _groups(length, n_groups, seed).clone()


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the encoder needs: ``[CLS]``, ``[SEP]``, ``[MASK]`` (``None`` when absent) and padding."""

    cls: int
    sep: int
    mask: int | None
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, need_mask: bool) -> SpecialTokens:
        """Read the ids from a BERT tokenizer.

        :raises GuardchainError: ``GC-HF-HEAD-UNSUPPORTED`` when the tokenizer (or one of the tokens) is missing.
        """
        ids: dict[str, int] = {}
        for name in ("cls", "sep", "mask", "pad"):
            value = getattr(tokenizer, f"{name}_token_id", None)
            if isinstance(value, int):
                ids[name] = value
        needed = ["cls", "sep", *(["mask"] if need_mask else [])]
        absent = [name for name in needed if name not in ids]
        if absent:
            raise hf_error(
                HFErrorCode.HEAD_UNSUPPORTED,
                "scoring an encoder needs a tokenizer with "
                + ", ".join(f"[{n.upper()}]" for n in needed)
                + " tokens; missing: "
                + ", ".join(absent),
                hint="load a checkpoint that ships its tokenizer files",
            )
        return cls(cls=ids["cls"], sep=ids["sep"], mask=ids.get("mask"), pad=ids.get("pad", 0))


def _wrap(batch: Batch, part: slice, special: SpecialTokens) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``[CLS] content [SEP] pad...`` ids ``[b, span + 2]``, its attention mask, and ``span`` (longest row)."""
    span = int(batch.lengths[part].max())
    lengths = batch.lengths[part]
    rows = lengths.shape[0]
    ids = torch.full((rows, span + 2), special.pad, dtype=torch.long)
    ids[:, 0] = special.cls
    ids[:, 1 : span + 1] = torch.where(
        batch.attention_mask[part, :span].bool(), batch.input_ids[part, :span], special.pad
    )
    ids[torch.arange(rows), lengths + 1] = special.sep
    positions = torch.arange(span + 2)
    mask = (positions[None, :] < (lengths[:, None] + 2)).long()
    return ids, mask, span


def mlm_pseudo_loglik(
    model: torch.nn.Module,
    batch: Batch,
    special: SpecialTokens,
    *,
    n_groups: int,
    seed: int,
    forward_batch_size: int,
) -> torch.Tensor:
    """Pseudo-log-likelihood of each content token under a masked LM.

    Each window is wrapped as ``[CLS] x_0 .. x_{L-1} [SEP]`` by this function (the batch holds content only).
    Its content positions are split into ``n_groups`` groups by :func:`mask_groups` (depends only on ``seed``,
    the position and ``L``); for each group one forward pass replaces that group's positions with ``[MASK]`` and
    reads ``out[b, t] = log_softmax(logits[b, 1 + t])[x_t]`` at them. Every content position is thus scored exactly
    once, from a context where its own group is masked; ``[CLS]``/``[SEP]`` are never masked nor scored; padded
    positions are NaN. Cost: ``n_groups`` forward passes per chunk of ``forward_batch_size`` rows.

    :returns: ``FloatTensor[B, T]`` on the CPU, in nats.
    """
    if special.mask is None:
        raise hf_error(HFErrorCode.HEAD_UNSUPPORTED, "pseudo-log-likelihood needs a [MASK] token")
    rows, width = batch.shape
    out = torch.full((rows, width), float("nan"), dtype=torch.float32)
    groups = torch.full((rows, width), -1, dtype=torch.long)
    for row in range(rows):
        length = int(batch.lengths[row])
        if length:
            groups[row, :length] = mask_groups(length, n_groups, seed)
    device = _device(model)
    with torch.no_grad():
        for part in _chunks(rows, forward_batch_size):
            if int(batch.lengths[part].max()) == 0:
                continue
            ids, attention, span = _wrap(batch, part, special)
            part_groups = groups[part, :span]
            targets = batch.input_ids[part, :span]
            for group in range(n_groups):
                chosen = part_groups == group  # [b, span]
                if not bool(chosen.any()):
                    continue
                masked = ids.clone()
                masked[:, 1 : span + 1][chosen] = special.mask
                logits = model(
                    input_ids=masked.to(device),
                    attention_mask=attention.to(device),
                    token_type_ids=torch.zeros_like(masked).to(device),
                ).logits[:, 1 : span + 1]
                picked = torch.log_softmax(logits[chosen.to(device)].float(), dim=-1)
                values = _nan_as_impossible(picked.gather(-1, targets[chosen].to(device)[:, None]).squeeze(-1)).cpu()
                out[part, :span][chosen] = values  # basic slicing is a view: writes through
    return out


def class_logits(
    model: torch.nn.Module, batch: Batch, special: SpecialTokens, *, forward_batch_size: int
) -> torch.Tensor:
    """Classifier logits of each window, wrapped as ``[CLS] content [SEP]`` by this function.

    :returns: ``FloatTensor[B, num_labels]`` on the CPU (unnormalised scores; softmax gives class
        probabilities). A row without content tokens is classified from ``[CLS] [SEP]``.
    """
    rows, _ = batch.shape
    config: Any = model.config
    labels = int(config.num_labels)
    out = torch.empty((rows, labels), dtype=torch.float32)
    device = _device(model)
    with torch.no_grad():
        for part in _chunks(rows, forward_batch_size):
            ids, attention, _ = _wrap(batch, part, special)
            logits = model(
                input_ids=ids.to(device),
                attention_mask=attention.to(device),
                token_type_ids=torch.zeros_like(ids).to(device),
            ).logits
            out[part] = logits.float().cpu()
    return out
