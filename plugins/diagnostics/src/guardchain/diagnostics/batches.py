"""Batches in the one form the engine runs, and the default loss: mean cross-entropy over scored positions.

A :class:`PreparedBatch` says how to call the model (``inputs``), which positions the loss scores (``targets``,
``target_mask``) and which tokens of the hidden states count (``token_mask``, the attention mask: padding never
enters a statistic).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error


@dataclass(frozen=True)
class PreparedBatch:
    """One batch, ready to run.

    :ivar ids: ids of the batch's samples (windows, examples, or ``"b<k>:<row>"``).
    :ivar inputs: keyword arguments (a mapping) or positional arguments (a tuple) of the model call.
    :ivar token_mask: bool over the hidden states' leading axes (``[B]`` or ``[B, T]``): tokens that count.
    :ivar targets: int64 class per position, shaped like the logits without their class axis (``[B]`` or
        ``[B, T]``; for a causal LM, ``targets[:, t]`` is token ``t + 1``), or ``None`` for a custom loss.
    :ivar target_mask: bool, shaped like ``targets``: the positions the loss scores.
    :ivar loss_target: what a caller's custom loss receives with the logits (the plain API's ``y``).
    """

    ids: tuple[str, ...]
    inputs: Mapping[str, Any] | tuple[Any, ...]
    token_mask: torch.Tensor
    targets: torch.Tensor | None = None
    target_mask: torch.Tensor | None = None
    loss_target: Any = None

    @property
    def layout(self) -> str:
        """Identifies the token layout (shape and mask): equal layouts mean aligned token positions."""
        mask = self.token_mask.detach().to(torch.uint8).cpu().contiguous()
        return f"{tuple(mask.shape)}:{hashlib.sha256(mask.numpy().tobytes()).hexdigest()}"

    @property
    def n_scored(self) -> int:
        """Positions the default loss scores."""
        return 0 if self.target_mask is None else int(self.target_mask.sum())


def mean_cross_entropy(logits: torch.Tensor, batch: PreparedBatch) -> torch.Tensor:
    """Mean cross-entropy (nats) over the scored positions: ``(1/N) Σ_{scored p} −log softmax(z_p)[y_p]``, in
    float32 or wider. The mean (not the sum) keeps ``G_l`` independent of the token count."""
    if batch.targets is None or batch.target_mask is None:
        raise diag_error(DiagnosticsErrorCode.SETTINGS, "the default loss needs targets; pass loss_fn instead")
    if logits.shape[:-1] != batch.targets.shape:
        raise diag_error(
            DiagnosticsErrorCode.MODEL,
            f"logits of shape {tuple(logits.shape)} do not match targets of shape {tuple(batch.targets.shape)}",
        )
    scored = logits[batch.target_mask]
    targets = batch.targets[batch.target_mask]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= scored.shape[-1]):
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"a target class is outside 0 .. {scored.shape[-1] - 1} (the model's number of classes)",
        )
    wide = scored.to(torch.promote_types(scored.dtype, torch.float32))
    return F.cross_entropy(wide, targets, reduction="mean")


def correct_predictions(logits: torch.Tensor, batch: PreparedBatch) -> tuple[int, int]:
    """``(correct, scored)``: how many scored positions have ``argmax z_p == y_p``."""
    if batch.targets is None or batch.target_mask is None or logits.shape[:-1] != batch.targets.shape:
        return 0, 0
    scored = logits.detach()[batch.target_mask]
    hits = scored.argmax(dim=-1) == batch.targets[batch.target_mask]
    return int(hits.sum()), int(hits.numel())


def _as_mask(value: Any, shape: torch.Size, what: str) -> torch.Tensor:
    mask = torch.as_tensor(value)
    if mask.shape != shape:
        raise diag_error(DiagnosticsErrorCode.BATCHES, f"{what} has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    return mask.to(torch.bool)


def plain_batch(batch: Any, index: int, device: torch.device, ids: Sequence[str] | None) -> PreparedBatch:
    """A plain-module batch ``(x, y)`` or ``(x, y, mask)``.

    ``x`` is the model's one positional input (a tensor ``[B, ...]``). ``y`` holds int64 labels ``[B]`` (one class
    per sample: each sample is one token of the hidden states ``[B, d]``) or ``[B, T]`` (one class per token of
    hidden states ``[B, T, d]``); ``mask`` (``[B]`` or ``[B, T]``, 1 = counts) excludes padding from the loss and
    from every statistic.

    :raises GuardchainError: ``GC-DIAG-BATCHES`` for any other shape.
    """
    if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"batch {index} is a {type(batch).__name__}, expected a tuple (x, y) or (x, y, mask)",
        )
    x, y = batch[0], batch[1]
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        raise diag_error(DiagnosticsErrorCode.BATCHES, f"batch {index}: x must be a tensor with a batch axis")
    y_tensor = torch.as_tensor(y)
    if y_tensor.dim() not in (1, 2) or y_tensor.shape[0] != x.shape[0]:
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"batch {index}: y has shape {tuple(y_tensor.shape)}; expected [B] or [B, T] with B = {x.shape[0]}",
        )
    mask = _as_mask(batch[2], y_tensor.shape, f"batch {index}: mask") if len(batch) == 3 else None
    if mask is None:
        mask = torch.ones(y_tensor.shape, dtype=torch.bool)
    if x.is_floating_point() and x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    rows = list(ids) if ids is not None else [f"b{index}:{row}" for row in range(x.shape[0])]
    targets = y_tensor.to(device=device, dtype=torch.int64) if not y_tensor.is_floating_point() else None
    return PreparedBatch(
        ids=tuple(rows),
        inputs=(x.to(device),),
        token_mask=mask.to(device),
        targets=targets,
        target_mask=mask.to(device) if targets is not None else None,
        loss_target=y_tensor.to(device),
    )


def check_disjoint(inputs: Sequence[torch.Tensor]) -> None:
    """Refuse batches that share a sample (a row of ``x``, compared exactly), vectorized over all rows.

    :raises GuardchainError: ``GC-DIAG-BATCHES`` naming two batches that share a sample.
    """
    rows = [x.detach().reshape(x.shape[0], -1).cpu() for x in inputs]
    if len({r.shape[1] for r in rows}) != 1:
        return  # samples of different sizes cannot be equal
    every = torch.cat([r.to(torch.float64) if r.is_floating_point() else r for r in rows])
    owner = torch.cat([torch.full((r.shape[0],), k, dtype=torch.int64) for k, r in enumerate(rows)])
    _, sample = torch.unique(every, dim=0, return_inverse=True)
    pairs = torch.unique(sample * len(rows) + owner)  # distinct (sample, batch) pairs
    batches_per_sample = torch.bincount(pairs // len(rows))
    shared = torch.nonzero(batches_per_sample > 1).flatten()
    if shared.numel():
        holders = sorted({int(k) for k in owner[sample == shared[0]]})
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"batches {holders[0]} and {holders[1]} share a sample: the drift check (c) needs disjoint batches",
            hint="draw the batches without replacement, or pass require_disjoint=False to measure anyway",
        )
