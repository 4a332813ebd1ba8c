"""``accuracy``: the fraction of labelled texts whose arg-max class is the label.

For example ``i`` with label ``y_i`` and class logits ``z_i`` (from the adapter's ``class_logits``):

    c_i = 1 if argmax_k z_ik == y_i else 0      (``per_unit``; ties go to the lowest class index)
    p   = (1/n) Σ_i c_i                          (``value``, a fraction)
    SE  = sqrt(p (1 − p) / n)                    (``uncertainty``: binomial standard error)

Per-example scores pair baseline and subject with ``paired_comparison(kind="difference")``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.results import MetricResult
from guardchain.core.windows import LabeledTexts, pad_token_id
from guardchain.metrics.batching import padded_batches
from guardchain.metrics.checks import require_adapter_method, require_data, require_tokenizer
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.config import AccuracyConfig


def encode_truncated(tokenizer: Any, texts: tuple[str, ...], max_length: int) -> tuple[list[list[int]], int]:
    """Content tokens of each text (no special tokens), cut to ``max_length``.

    :returns: ``(token ids per text, number of texts that were truncated)``.
    """
    encoded = tokenizer(
        list(texts),
        add_special_tokens=False,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        verbose=False,
    )["input_ids"]
    truncated = sum(1 for ids in encoded if len(ids) > max_length)
    return [list(ids[:max_length]) for ids in encoded], truncated


class Accuracy:
    """The ``accuracy`` metric (see the module docstring for the formulas)."""

    name = "accuracy"

    def __init__(self, config: AccuracyConfig) -> None:
        self.config = config

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """Accuracy of ``handle`` on ``data``.

        :param handle: the model; its adapter is ``context.adapter``.
        :param data: :class:`~guardchain.core.windows.LabeledTexts`.
        :param context: the run context.
        :raises GuardchainError: ``GC-METRIC-DATA-TYPE``, ``GC-METRIC-NO-ADAPTER``, ``GC-METRIC-NO-TOKENIZER``,
            ``GC-METRIC-EMPTY``, ``GC-METRIC-ADAPTER-OUTPUT``, ``GC-METRIC-LABEL-RANGE``.
        """
        examples = require_data(
            data, LabeledTexts, metric=self.name, produced_by="jsonl or hf_datasets with label_field"
        )
        class_logits = require_adapter_method(context, "class_logits", metric=self.name)
        tokenizer = require_tokenizer(handle, metric=self.name)
        if not len(examples):
            raise GuardchainError.single(MetricErrorCode.EMPTY, "the data holds no labelled examples")

        sequences, n_truncated = encode_truncated(tokenizer, examples.texts, self.config.max_length)
        predictions = np.zeros(len(examples), dtype=np.int64)
        n_classes = 0
        for batch in padded_batches(sequences, self.config.batch_size, pad_token_id(tokenizer)):
            with torch.no_grad():
                logits = class_logits(handle, batch.as_dict())
            logits = torch.as_tensor(logits).detach().cpu()
            rows = int(batch.input_ids.shape[0])
            if logits.ndim != 2 or int(logits.shape[0]) != rows or int(logits.shape[1]) < 1:
                raise GuardchainError.single(
                    MetricErrorCode.ADAPTER_OUTPUT,
                    f"class_logits returned shape {tuple(logits.shape)} for a batch of {rows} texts",
                    expected=f"shape ({rows}, n_classes)",
                )
            n_classes = int(logits.shape[1])
            predictions[batch.start : batch.start + rows] = logits.argmax(dim=1).numpy()

        labels = np.asarray(examples.labels, dtype=np.int64)
        out_of_range = np.flatnonzero(labels >= n_classes)
        if out_of_range.size:
            first = int(out_of_range[0])
            raise GuardchainError.single(
                MetricErrorCode.LABEL_RANGE,
                f"example {examples.ids[first]!r} has label {int(labels[first])}, but the model predicts "
                f"{n_classes} classes",
            )
        correct = (predictions == labels).astype(np.float64)
        n = len(examples)
        p = float(correct.mean())
        return MetricResult(
            metric=self.name,
            value=p,
            uncertainty=math.sqrt(p * (1.0 - p) / n),
            units="fraction",
            unit_ids=examples.ids,
            per_unit=tuple(float(c) for c in correct),
            unit_weights=(1.0,) * n,
            details={
                "n_examples": n,
                "n_correct": int(correct.sum()),
                "n_classes": n_classes,
                "n_truncated": n_truncated,
                "max_length": self.config.max_length,
                "label_names": list(examples.label_names),
                "dataset_sha256": examples.dataset_sha256,
                "per_unit": "1.0 if the arg-max class is the label, else 0.0",
                "uncertainty": "binomial: sqrt(p(1-p)/n)",
            },
        )
