"""Training and evaluating trainable interventions against counterfactual labels (DAS).

Each :class:`AlignmentBatch` pairs a base input with its source input(s) and the **counterfactual** label: the
output a causal model predicts when the hypothesised variable takes the source's value in the base run. Training
minimises the loss of the intervened model's prediction against that label with the base model frozen; the
metric is interchange-intervention accuracy (IIA, Geiger et al. 2021/2024): the fraction of examples whose
intervened prediction (argmax) equals the counterfactual label.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from guardchain.interventions.model import IntervenedModel
from guardchain.interventions.sites import split_inputs

OutputFn = Callable[[Any], torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AlignmentBatch:
    """One batch of interchange examples.

    :ivar base: the base input: a tensor (first positional argument, e.g. input ids), a mapping of keyword
        arguments, or an ``(args, kwargs)`` pair.
    :ivar sources: one input per source index, in the same forms.
    :ivar labels: the counterfactual labels, ``LongTensor (B,)``.
    """

    base: Any
    sources: Sequence[Any]
    labels: torch.Tensor


@dataclass
class AlignmentReport:
    """What :func:`train_alignment` did.

    :ivar losses: mean training loss per epoch.
    :ivar metrics: evaluation metric (IIA by default) per epoch, when evaluation batches were given.
    :ivar best_metric: the best evaluation metric (the training loss's negative when none was given).
    :ivar best_epoch: the epoch (0-based) whose weights were kept.
    :ivar stopped_early: whether patience ran out before ``epochs``.
    """

    losses: list[float] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    best_metric: float = -math.inf
    best_epoch: int = -1
    steps: int = 0
    stopped_early: bool = False


def last_position_logits(output: Any) -> torch.Tensor:
    """``(B, C)`` predictions from a model output: ``output.logits`` (or the output itself, or its first element),
    at the last position when it has a position axis."""
    logits = getattr(output, "logits", output)
    if isinstance(logits, tuple | list):
        logits = logits[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"cannot read logits from a {type(output).__name__}")
    return logits[:, -1] if logits.dim() == 3 else logits


def _predict(im: IntervenedModel, batch: AlignmentBatch, output_fn: OutputFn) -> torch.Tensor:
    args, kwargs = split_inputs(batch.base)
    return output_fn(im(*args, sources=list(batch.sources), **kwargs))


def eval_alignment(
    im: IntervenedModel, batches: Iterable[AlignmentBatch], *, output_fn: OutputFn = last_position_logits
) -> float:
    """Interchange-intervention accuracy: correct counterfactual predictions / examples, in [0, 1]."""
    correct = total = 0
    modes = [(module, module.training) for module in im.modules()]
    im.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                predicted = _predict(im, batch, output_fn).argmax(dim=-1)
                labels = batch.labels.to(predicted.device)
                correct += int((predicted == labels).sum())
                total += int(labels.numel())
    finally:
        for module, mode in modes:
            module.training = mode
    if total == 0:
        raise ValueError("eval_alignment got no examples")
    return correct / total


def train_alignment(
    im: IntervenedModel,
    batches: Iterable[AlignmentBatch],
    *,
    eval_batches: Iterable[AlignmentBatch] | None = None,
    epochs: int = 10,
    lr: float = 1e-2,
    loss_fn: LossFn | None = None,
    metric_fn: Callable[[IntervenedModel, Iterable[AlignmentBatch]], float] | None = None,
    output_fn: OutputFn = last_position_logits,
    extra_loss: Callable[[], torch.Tensor] | None = None,
    patience: int = 3,
    min_delta: float = 0.0,
    target: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> AlignmentReport:
    """Train the trainable interventions of ``im`` (the base model frozen) on counterfactual labels.

    Each epoch runs every batch of ``batches`` (a re-iterable such as a list), then evaluates ``metric_fn``
    (default: :func:`eval_alignment`, IIA) on ``eval_batches``. Early stopping: training stops after ``patience``
    epochs without an improvement larger than ``min_delta``, or as soon as the metric reaches ``target``; the
    weights of the best epoch are restored at the end.

    :param loss_fn: ``(predictions (B, C), labels (B,)) -> loss``; default cross-entropy.
    :param extra_loss: a term added to every step's loss (e.g. a boundless intervention's ``boundary`` to keep
        the subspace small).
    :param optimizer: default Adam over :meth:`IntervenedModel.intervention_parameters` with ``lr``.
    """
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    metric_fn = metric_fn or (lambda model, data: eval_alignment(model, data, output_fn=output_fn))
    params = im.intervention_parameters()
    if not params:
        raise ValueError("this IntervenedModel has no trainable intervention parameters")
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    model_flags = [(p, p.requires_grad) for p in im.model.parameters()]
    model_was_training = im.model.training
    report = AlignmentReport()
    best_state: dict[str, Any] | None = None
    stale = 0
    try:
        for p, _ in model_flags:
            p.requires_grad_(False)
        im.model.eval()
        for epoch in range(epochs):
            im.interventions.train()
            total, count = 0.0, 0
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                predictions = _predict(im, batch, output_fn)
                loss = loss_fn(predictions, batch.labels.to(predictions.device))
                if extra_loss is not None:
                    loss = loss + extra_loss()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += float(loss.detach())
                count += 1
                report.steps += 1
            report.losses.append(total / max(count, 1))
            score = metric_fn(im, eval_batches) if eval_batches is not None else -report.losses[-1]
            if eval_batches is not None:
                report.metrics.append(score)
            if score > report.best_metric + min_delta or best_state is None:
                report.best_metric, report.best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(im.interventions.state_dict())
            else:
                stale += 1
            if target is not None and score >= target:
                break
            if stale >= patience:
                report.stopped_early = True
                break
    finally:
        for p, flag in model_flags:
            p.requires_grad_(flag)
        im.model.train(model_was_training)
        im.interventions.eval()
    if best_state is not None:
        im.interventions.load_state_dict(best_state)
    return report
