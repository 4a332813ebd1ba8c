"""Batches and losses for the SGLD estimator: pre-collated once, cycled by index in the hot loop.

A *batch* is what the data yield; ``unpack(batch) -> (inputs, targets)`` splits it. ``inputs`` is what the model is
called with: a tensor (one positional argument), a tuple/list (positional arguments) or a mapping (keyword
arguments). ``targets`` is whatever the loss takes second. The loss maps ``(outputs, targets)`` to a scalar tensor:
the *mean* loss of the batch (the SGLD gradient is ``nβ`` times its gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode

Unpack = Callable[[Any], tuple[Any, Any]]
LossFn = Callable[[Any, Any], torch.Tensor]

#: Names accepted for ``loss``; a callable ``(outputs, targets) -> scalar`` is accepted too.
LOSS_NAMES = ("auto", "mse", "cross_entropy", "causal_lm")


@dataclass(frozen=True)
class StackedBatches:
    """Uniform batches stacked leaf by leaf, for the fused multi-step graph (``sgld.py``).

    Every batch's ``(inputs, targets)`` has the same pytree structure ``spec``; each leaf is either ``None`` in every
    batch or a tensor of one shape, dtype and device in every batch. Tensor leaf ``j`` of batch ``b`` is
    ``leaves[j][b]`` (``leaves[j]``: ``[n_batches, *leaf_shape]``).

    :ivar leaves: the stacked leaves (``None`` where the batches have ``None``).
    :ivar spec: the pytree structure of one batch's ``(inputs, targets)``.
    """

    leaves: tuple[torch.Tensor | None, ...]
    spec: pytree.TreeSpec

    def select(self, index: torch.Tensor) -> tuple[Any, Any]:
        """``(inputs, targets)`` of batch ``index`` (a ``[1]`` integer tensor, so that a compiled graph gathers it
        without a host sync)."""
        leaves = [None if leaf is None else leaf.index_select(0, index).squeeze(0) for leaf in self.leaves]
        inputs, targets = pytree.tree_unflatten(leaves, self.spec)
        return inputs, targets


def _uniform(leaves: Sequence[Any]) -> bool:
    """Whether one leaf position holds ``None`` in every batch or tensors of one shape, dtype and device."""
    first = leaves[0]
    if first is None:
        return all(leaf is None for leaf in leaves)
    return isinstance(first, torch.Tensor) and all(
        isinstance(leaf, torch.Tensor)
        and leaf.shape == first.shape
        and leaf.dtype == first.dtype
        and leaf.device == first.device
        for leaf in leaves
    )


def stack_uniform(items: Sequence[tuple[Any, Any]]) -> tuple[tuple[tuple[Any, Any], ...], StackedBatches | None]:
    """Stack ``items`` when they are uniform (see :class:`StackedBatches`).

    :returns: ``(items, stacked)``: with stacking, the items rebuilt as views into the stacked leaves (no second
        copy of the data); otherwise the items unchanged and ``None`` (a ragged last batch, non-tensor leaves,
        differing structures).
    """
    flat = [pytree.tree_flatten(item) for item in items]
    spec = flat[0][1]
    if any(other != spec for _, other in flat[1:]):
        return tuple(items), None
    columns = [[leaves[j] for leaves, _ in flat] for j in range(len(flat[0][0]))]
    if not columns or not all(_uniform(column) for column in columns):
        return tuple(items), None
    stacked = tuple(None if column[0] is None else torch.stack(column) for column in columns)
    views = []
    for b in range(len(items)):
        inputs, targets = pytree.tree_unflatten([None if leaf is None else leaf[b] for leaf in stacked], spec)
        views.append((inputs, targets))
    return tuple(views), StackedBatches(stacked, spec)


@dataclass(frozen=True)
class Batches:
    """The data, pre-collated on one device.

    :ivar items: ``(inputs, targets)`` per batch, floating tensors in the sampling dtype.
    :ivar rows: rows (samples) per batch: the leading size of the first tensor in ``inputs``.
    :ivar stacked: the same batches stacked (:func:`stack_uniform`) when they are uniform, else ``None``; the
        items are then views into it.
    """

    items: tuple[tuple[Any, Any], ...]
    rows: tuple[int, ...]
    stacked: StackedBatches | None = None

    @classmethod
    def build(cls, items: Sequence[tuple[Any, Any]], rows: Sequence[int]) -> Batches:
        """Batches over ``items``, stacked when uniform."""
        kept, stacked = stack_uniform(items)
        return cls(kept, tuple(rows), stacked)

    @property
    def n_samples(self) -> int:
        """Rows over all batches: the ``n`` of the default ``nβ = n/ln n``."""
        return sum(self.rows)

    def __len__(self) -> int:
        return len(self.items)

    def to(self, device: torch.device) -> Batches:
        """A copy on ``device`` (same dtypes)."""
        return Batches.build([(move(i, device), move(t, device)) for i, t in self.items], self.rows)


def default_unpack(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` for a 2-sequence, ``(x, None)`` for a tensor or a 1-sequence, ``(mapping, mapping)`` for a mapping
    (the model is called with its keys as keyword arguments; the loss gets the whole mapping)."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        return dict(batch), dict(batch)
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) in (1, 2):
        return batch[0], (batch[1] if len(batch) == 2 else None)
    raise GuardchainError.single(
        MetricErrorCode.LLC_DATA,
        f"cannot unpack a batch of type {type(batch).__name__} into (inputs, targets)",
        hint="pass unpack=lambda batch: (inputs, targets)",
    )


def move(value: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """``value`` with every tensor moved to ``device`` (floating ones cast to ``dtype`` when given), recursively
    through tuples, lists and mappings; other objects unchanged."""
    if isinstance(value, torch.Tensor):
        cast = dtype if dtype is not None and value.is_floating_point() else None
        return value.detach().to(device=device, dtype=cast)
    if isinstance(value, Mapping):
        return {k: move(v, device, dtype) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(move(v, device, dtype) for v in value)
    if isinstance(value, list):
        return [move(v, device, dtype) for v in value]
    return value


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor found in ``value`` (depth first), or ``None``."""
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, tuple | list) else ()
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def collate(
    data: Any,
    *,
    unpack: Unpack | None,
    batch_size: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Batches:
    """Iterate ``data`` once and keep every batch on ``device``.

    :param data: an iterable of batches (a ``DataLoader``, a list of tuples), or tensors: ``X``, ``(X,)`` or
        ``(X, Y)`` cut into consecutive batches of ``batch_size`` rows (default 32; the last may be smaller).
    :raises GuardchainError: ``GC-METRIC-LLC-DATA`` when there is no batch or one cannot be unpacked.
    """
    split = unpack or default_unpack
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
        data = _tensor_batches(data, batch_size or 32)
    items: list[tuple[Any, Any]] = []
    rows: list[int] = []
    if not isinstance(data, Iterable):
        raise GuardchainError.single(
            MetricErrorCode.LLC_DATA, f"the data must be iterable (a DataLoader, a list of batches), got {data!r}"
        )
    for index, batch in enumerate(data):
        try:
            inputs, targets = split(batch)
        except GuardchainError:
            raise
        except Exception as exc:
            raise GuardchainError.single(
                MetricErrorCode.LLC_DATA, f"unpack failed on batch {index}: {type(exc).__name__}: {exc}"
            ) from exc
        lead = first_tensor(inputs)
        if lead is None or lead.dim() == 0:
            raise GuardchainError.single(
                MetricErrorCode.LLC_DATA, f"batch {index} has no input tensor with a batch dimension"
            )
        items.append((move(inputs, device, dtype), move(targets, device, dtype)))
        rows.append(int(lead.shape[0]))
    if not items:
        raise GuardchainError.single(MetricErrorCode.LLC_DATA, "the data yield no batch")
    return Batches.build(items, rows)


def _tensor_batches(tensors: tuple[torch.Tensor, ...], batch_size: int) -> list[tuple[torch.Tensor, ...]]:
    n = int(tensors[0].shape[0])
    if any(int(t.shape[0]) != n for t in tensors):
        raise GuardchainError.single(
            MetricErrorCode.LLC_DATA, f"tensors disagree on the number of rows: {[tuple(t.shape) for t in tensors]}"
        )
    return [tuple(t[start : start + batch_size] for t in tensors) for start in range(0, n, batch_size)]


def call_model(model: torch.nn.Module, params: tuple[dict[str, torch.Tensor], ...], inputs: Any) -> Any:
    """``model(inputs)`` with ``params`` (name -> tensor dicts) substituted via :func:`torch.func.functional_call`."""
    if isinstance(inputs, Mapping):
        return torch.func.functional_call(model, params, (), dict(inputs))
    if isinstance(inputs, tuple | list):
        return torch.func.functional_call(model, params, tuple(inputs))
    return torch.func.functional_call(model, params, (inputs,))


def logits_of(outputs: Any) -> torch.Tensor:
    """The logits in a model's outputs: the tensor itself, ``.logits``, ``["logits"]`` or the first element."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    found = getattr(outputs, "logits", None)
    if isinstance(found, torch.Tensor):
        return found
    if isinstance(outputs, Mapping) and isinstance(outputs.get("logits"), torch.Tensor):
        return outputs["logits"]  # type: ignore[no-any-return]
    if isinstance(outputs, tuple | list) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise GuardchainError.single(
        MetricErrorCode.LLC_LOSS, f"cannot find logits in model outputs of type {type(outputs).__name__}"
    )


def mse_loss(outputs: Any, targets: Any) -> torch.Tensor:
    """Mean squared error over every element: ``mean((f(x) − y)²)``."""
    return F.mse_loss(logits_of(outputs), targets)


def cross_entropy_loss(outputs: Any, targets: Any) -> torch.Tensor:
    """Mean cross-entropy (nats) of class logits ``[B, K]`` (or ``[B, K, ...]``) against integer labels."""
    return F.cross_entropy(logits_of(outputs), targets)


def causal_lm_loss(outputs: Any, targets: Any) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) over scored positions.

    ``targets`` is ``{"input_ids": [B, T], "attention_mask": [B, T]}`` (or the pair ``(ids, mask)``); position
    ``t ≥ 1`` is scored when ``mask[t] = 1``; the logits at ``t − 1`` predict token ``t``.
    """
    ids: torch.Tensor
    mask: torch.Tensor | None
    if isinstance(targets, Mapping):
        ids, mask = targets["input_ids"], targets.get("attention_mask")
    elif isinstance(targets, tuple | list):
        ids, mask = targets[0], targets[1] if len(targets) > 1 else None
    else:
        ids, mask = targets, None
    logits = logits_of(outputs)[:, :-1]
    token_nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    if mask is None:
        return token_nll.mean()
    weights = mask[:, 1:].reshape(-1).to(token_nll.dtype)
    loss: torch.Tensor = (token_nll * weights).sum() / weights.sum()
    return loss


def resolve_loss(loss: str | LossFn, batches: Batches) -> tuple[LossFn, str]:
    """The loss callable and the name recorded in the result.

    ``auto`` picks cross-entropy for integer targets and mean squared error for floating ones (by the first
    batch's targets).

    :raises GuardchainError: ``GC-METRIC-LLC-SETTINGS`` for an unknown name, ``GC-METRIC-LLC-LOSS`` when ``auto``
        cannot decide.
    """
    if callable(loss):
        return loss, getattr(loss, "__qualname__", type(loss).__name__)
    table: dict[str, LossFn] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss, "causal_lm": causal_lm_loss}
    if loss in table:
        return table[loss], loss
    if loss != "auto":
        raise GuardchainError.single(
            MetricErrorCode.LLC_SETTINGS, f"unknown loss {loss!r}", expected=f"one of {LOSS_NAMES} or a callable"
        )
    target = batches.items[0][1]
    if not isinstance(target, torch.Tensor):
        raise GuardchainError.single(
            MetricErrorCode.LLC_LOSS,
            f"loss='auto' needs tensor targets to choose between mse and cross_entropy, got {type(target).__name__}",
            hint="pass loss='mse', 'cross_entropy', 'causal_lm' or a callable (outputs, targets) -> scalar",
        )
    name = "mse" if target.is_floating_point() else "cross_entropy"
    return table[name], name


def default_nbeta(n: int) -> float:
    """The WBIC inverse temperature times ``n``: ``nβ = n/ln n`` (β = 1/ln n, Watanabe 2013).

    ``n`` is the number of samples the mean loss is over (dataset rows); devinterp 1.x uses the batch size here
    instead, which makes λ̂ depend on the batch size.

    :raises GuardchainError: ``GC-METRIC-LLC-SETTINGS`` for ``n < 2`` (``ln n`` would be 0).
    """
    if n < 2:
        raise GuardchainError.single(
            MetricErrorCode.LLC_SETTINGS, f"nβ = n/ln(n) needs n >= 2 samples, got {n}", hint="pass nbeta"
        )
    return n / math.log(n)
