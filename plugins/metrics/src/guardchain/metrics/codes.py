"""The stable error codes of guardchain-metrics (documented in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`.
"""

from __future__ import annotations

from enum import StrEnum


class MetricErrorCode(StrEnum):
    """Codes of expected failures while computing a metric."""

    DATA_TYPE = "GC-METRIC-DATA-TYPE"
    NO_ADAPTER = "GC-METRIC-NO-ADAPTER"
    NO_TOKENIZER = "GC-METRIC-NO-TOKENIZER"
    EMPTY = "GC-METRIC-EMPTY"
    ADAPTER_OUTPUT = "GC-METRIC-ADAPTER-OUTPUT"
    NO_SCORED_TOKENS = "GC-METRIC-NO-SCORED-TOKENS"
    TOKENIZER_MISMATCH = "GC-METRIC-TOKENIZER-MISMATCH"
    LABEL_RANGE = "GC-METRIC-LABEL-RANGE"


DESCRIPTIONS: dict[MetricErrorCode, str] = {
    MetricErrorCode.DATA_TYPE: "The chain's data is not what the metric consumes: `ppl` needs `TokenWindows` "
    "(a text dataset), `accuracy` needs `LabeledTexts` (a dataset with `label_field`).",
    MetricErrorCode.NO_ADAPTER: "The run context has no adapter, or the adapter lacks the method the metric calls "
    "(`token_logprobs` for `ppl`, `class_logits` for `accuracy`).",
    MetricErrorCode.NO_TOKENIZER: "`accuracy` tokenizes its texts with the model's tokenizer, but the handle has none.",
    MetricErrorCode.EMPTY: "The selected split holds no windows, or the dataset no examples.",
    MetricErrorCode.ADAPTER_OUTPUT: "The adapter returned something of the wrong shape (the message gives the "
    "expected and the actual shape).",
    MetricErrorCode.NO_SCORED_TOKENS: "A window has no scored position (every log-probability is NaN), so its "
    "negative log-likelihood is undefined.",
    MetricErrorCode.TOKENIZER_MISMATCH: "The windows were tokenized with a different tokenizer than the model's "
    "(their `tokenizer_sha256` differs from the handle's provenance).",
    MetricErrorCode.LABEL_RANGE: "A label is not below the number of classes the model predicts.",
}
