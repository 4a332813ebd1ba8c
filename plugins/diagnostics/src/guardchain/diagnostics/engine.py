"""One pass over the batches: the measurements of (a), (b) and (c), and the accuracy (d) may use.

For each batch ``k`` (in order): a forward pass that yields the logits and ``h_0 .. h_L``, the loss, and one
``torch.autograd.grad`` of the loss with respect to every ``h_l`` (true backprop through the network, whatever
trained it). On the first batch ``B_1``: ``R_l = median_t ‖h_{l,t}‖₂`` and ``G_l = ‖g_l‖_F`` over the counted
tokens, and the median per-token gradient norm. On every batch: the streamed direction sums of (c). Only one
batch's graph is alive at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from guardchain.diagnostics.batches import PreparedBatch, correct_predictions, mean_cross_entropy
from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error
from guardchain.diagnostics.statistics import StabilityAccumulator, frobenius, median, token_norms

Forward = Callable[[PreparedBatch], tuple[torch.Tensor, Sequence[torch.Tensor]]]
LossFn = Callable[[torch.Tensor, PreparedBatch], torch.Tensor]


@dataclass
class Measurements:
    """The raw per-layer numbers of one run.

    :ivar residual_norms: ``R_l`` on the first batch.
    :ivar bp_grad_norms: ``G_l`` on the first batch.
    :ivar grad_token_median: median over the first batch's tokens of ``‖g_{l,t}‖₂``.
    :ivar stability: ``s_l`` over every batch (``None``: no direction).
    :ivar drift_mode: ``flattened`` or ``token_mean``.
    :ivar losses: the loss of each batch (nats).
    :ivar tokens: counted tokens per batch.
    :ivar scored: loss positions per batch.
    :ivar correct: arg-max hits over every batch's scored positions (``None`` when not a classification loss).
    :ivar compute_dtype: dtype of the hidden states and gradients.
    """

    residual_norms: list[float] = field(default_factory=list)
    bp_grad_norms: list[float] = field(default_factory=list)
    grad_token_median: list[float] = field(default_factory=list)
    stability: list[float | None] = field(default_factory=list)
    drift_mode: str = ""
    losses: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)
    correct: int = 0
    predicted: int = 0
    compute_dtype: str = ""

    @property
    def accuracy(self) -> float | None:
        """Fraction of scored positions predicted right, over every batch (``None`` when nothing was scored)."""
        return self.correct / self.predicted if self.predicted else None


def _counted(hidden: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
    if hidden.dim() < 2 or hidden.shape[:-1] != mask.shape:
        raise diag_error(
            DiagnosticsErrorCode.MODEL,
            f"h_{layer} has shape {tuple(hidden.shape)}; expected {(*tuple(mask.shape), 'd')} (the batch's tokens "
            "times features)",
        )
    return hidden[mask]


def measure(forward: Forward, batches: Sequence[PreparedBatch], loss_fn: LossFn | None = None) -> Measurements:
    """Run every batch and collect :class:`Measurements`.

    :param forward: returns ``(logits, [h_0 .. h_L])`` for a batch (a probe).
    :param batches: at least two disjoint batches; the first one is ``B_1``.
    :param loss_fn: ``(logits, batch) -> scalar``; default :func:`~.batches.mean_cross_entropy`.
    :raises GuardchainError: ``GC-DIAG-BATCHES`` (fewer than two batches), ``GC-DIAG-TOO-FEW-TOKENS``,
        ``GC-DIAG-NONFINITE``, ``GC-DIAG-NO-GRAD``, ``GC-DIAG-MODEL``, and what ``forward`` raises.
    """
    if len(batches) < 2:
        raise diag_error(
            DiagnosticsErrorCode.BATCHES,
            f"the drift check (c) needs at least two disjoint batches, got {len(batches)}",
            hint="give more batches (the protocol suggests four or more)",
        )
    loss_of = loss_fn or mean_cross_entropy
    out = Measurements()
    stability = StabilityAccumulator()
    n_layers: int | None = None
    for k, batch in enumerate(batches):
        n_tokens = int(batch.token_mask.sum())
        if n_tokens < 2:
            raise diag_error(
                DiagnosticsErrorCode.TOO_FEW_TOKENS,
                f"batch {k} has {n_tokens} counted token(s); per-token statistics need at least two",
            )
        if loss_fn is None and batch.n_scored == 0:
            raise diag_error(
                DiagnosticsErrorCode.TOO_FEW_TOKENS,
                f"batch {k} has no position the loss scores (a causal LM needs windows of at least two tokens)",
            )
        with torch.enable_grad():
            logits, hidden = forward(batch)
            if n_layers is None:
                n_layers = len(hidden)
            elif len(hidden) != n_layers:
                raise diag_error(
                    DiagnosticsErrorCode.MODEL, f"batch {k} gave {len(hidden)} hidden states, not {n_layers}"
                )
            counted = [_counted(h, batch.token_mask, layer) for layer, h in enumerate(hidden)]
            if k == 0:
                norms = [token_norms(c) for c in counted]
                for layer, values in enumerate(norms):
                    if not bool(torch.isfinite(values).all()):
                        raise diag_error(
                            DiagnosticsErrorCode.NONFINITE, f"h_{layer} has a non-finite norm on the first batch"
                        )
                out.residual_norms = [median(v) for v in norms]
                out.compute_dtype = str(hidden[-1].dtype).removeprefix("torch.")
            loss = loss_of(logits, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise diag_error(DiagnosticsErrorCode.SETTINGS, "the loss function must return a scalar tensor")
            value = float(loss.detach())
            if not math.isfinite(value):
                raise diag_error(
                    DiagnosticsErrorCode.NONFINITE,
                    f"the loss on batch {k} is {value}: no gradient can be measured",
                    hint="check the model for NaN/inf weights, and the targets",
                )
            detached = [layer for layer, h in enumerate(hidden) if not h.requires_grad]
            if detached:
                raise diag_error(
                    DiagnosticsErrorCode.NO_GRAD,
                    f"hidden state(s) h_{detached} do not require a gradient: they are not connected to the loss",
                    hint="return the tensors the forward pass uses (not detached copies), with trainable parameters",
                )
            grads = torch.autograd.grad(loss.reshape(()), list(hidden), allow_unused=True)
        layer_grads = [
            _counted(torch.zeros_like(h) if g is None else g, batch.token_mask, layer)
            for layer, (h, g) in enumerate(zip(hidden, grads, strict=True))
        ]
        if k == 0:
            out.bp_grad_norms = [frobenius(g) for g in layer_grads]
            out.grad_token_median = [median(token_norms(g)) for g in layer_grads]
        stability.add(layer_grads, batch.layout)
        hits, scored = correct_predictions(logits, batch)
        out.correct += hits
        out.predicted += scored
        out.losses.append(value)
        out.tokens.append(n_tokens)
        out.scored.append(batch.n_scored)
        del logits, hidden, counted, grads, layer_grads, loss
    out.stability = stability.result()
    out.drift_mode = stability.mode
    return out
