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
    LLC_SETTINGS = "GC-METRIC-LLC-SETTINGS"
    LLC_MODEL = "GC-METRIC-LLC-MODEL"
    LLC_PARAMS = "GC-METRIC-LLC-PARAMS"
    LLC_DATA = "GC-METRIC-LLC-DATA"
    LLC_LOSS = "GC-METRIC-LLC-LOSS"
    LLC_DEVICE = "GC-METRIC-LLC-DEVICE"
    LLC_DIVERGED = "GC-METRIC-LLC-DIVERGED"
    LLC_PLOT = "GC-METRIC-LLC-PLOT"


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
    MetricErrorCode.LLC_SETTINGS: "`estimate_llc` / `grid_search` got an invalid setting (the message lists each "
    "one: a non-finite `epsilon`, `gamma`, `nbeta` or `explode_threshold`, `step_check_chains` not 0 or 2 … "
    "`chains`; a chain file's step config gets the kernel's `GC-CONFIG-*` codes instead), or a grid with no point.",
    MetricErrorCode.LLC_MODEL: "`llc` needs a `torch.nn.Module` with floating-point parameters (the handle's "
    "`model` for a chain step).",
    MetricErrorCode.LLC_PARAMS: "An entry of `params` or `sites` selects no floating-point parameter of the model "
    "(the message lists some that exist), or a site cannot be resolved by the adapter.",
    MetricErrorCode.LLC_DATA: "The data give no batch, a batch cannot be unpacked into (inputs, targets), or the "
    "model cannot be called on it.",
    MetricErrorCode.LLC_LOSS: "The loss function does not return a scalar, the loss L0 at w* is not finite (a "
    "given `init_loss` of NaN or ±inf, or an L0 batch), or the loss at w* of the first step's batch is not finite.",
    MetricErrorCode.LLC_DEVICE: "A requested device is not available (e.g. `cuda:1` on a machine with one GPU).",
    MetricErrorCode.LLC_DIVERGED: "No finite estimate exists: every chain diverged (a NaN or infinite loss or "
    "λ̂), exploded or escaped the basin of w* (further from w* than the localization allows), or the mean over the "
    "healthy chains overflowed. Lower `epsilon`, raise `gamma`, or run `grid_search`.",
    MetricErrorCode.LLC_PLOT: "A trace plot was requested from the Python API but matplotlib is not installed "
    "(install the `plot` extra: `pip install guardchain-metrics[plot]`).",
}
