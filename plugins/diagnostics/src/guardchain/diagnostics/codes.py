"""The stable error codes of guardchain-diagnostics (documented in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`.
"""

from __future__ import annotations

from enum import StrEnum

from guardchain.core.errors import GuardchainError


class DiagnosticsErrorCode(StrEnum):
    """Codes of expected failures while running the FA diagnostics."""

    NO_BLOCKS = "GC-DIAG-NO-BLOCKS"
    MODEL = "GC-DIAG-MODEL"
    NO_ADAPTER = "GC-DIAG-NO-ADAPTER"
    DATA_TYPE = "GC-DIAG-DATA-TYPE"
    NO_TOKENIZER = "GC-DIAG-NO-TOKENIZER"
    BATCHES = "GC-DIAG-BATCHES"
    TOO_FEW_TOKENS = "GC-DIAG-TOO-FEW-TOKENS"
    FORWARD = "GC-DIAG-FORWARD"
    NONFINITE = "GC-DIAG-NONFINITE"
    NO_GRAD = "GC-DIAG-NO-GRAD"
    SETTINGS = "GC-DIAG-SETTINGS"
    FROZEN = "GC-DIAG-FROZEN"
    PLOT = "GC-DIAG-PLOT"


DESCRIPTIONS: dict[DiagnosticsErrorCode, str] = {
    DiagnosticsErrorCode.NO_BLOCKS: "The model has no addressable blocks: the adapter cannot resolve "
    "`blocks[*].input` and `blocks[-1].output`, a plain module does not follow the `model(x, return_hidden=True) -> "
    "(logits, [h_0, ..., h_L])` contract, or it returns fewer than two hidden states.",
    DiagnosticsErrorCode.MODEL: "The model is not a `torch.nn.Module`, its outputs hold no logits, or a hidden "
    "state does not have the batch's token layout (`[..., d]` over the batch's leading dimensions).",
    DiagnosticsErrorCode.NO_ADAPTER: "The run context has no adapter, or the adapter has no `resolve_sites`.",
    DiagnosticsErrorCode.DATA_TYPE: "The chain's data is not what the loss consumes: `TokenWindows` for "
    "`causal_lm` / `masked_lm`, `LabeledTexts` for `classification`.",
    DiagnosticsErrorCode.NO_TOKENIZER: "The handle has no tokenizer, or it lacks the token the loss needs "
    "(`[MASK]` for `masked_lm`).",
    DiagnosticsErrorCode.BATCHES: "Fewer than two disjoint batches for the drift check (c), batches that share a "
    "sample, a batch that is not `(x, y)` / `(x, y, mask)`, or a target class outside the model's classes.",
    DiagnosticsErrorCode.TOO_FEW_TOKENS: "A batch has fewer than two tokens, or no position the loss scores (a "
    "causal LM needs windows of at least two tokens).",
    DiagnosticsErrorCode.FORWARD: "The model raised while running a batch (the message carries the cause), or a "
    "block it declares was never called.",
    DiagnosticsErrorCode.NONFINITE: "The loss, or the norm of a hidden state, is NaN or infinite: no gradient can "
    "be measured.",
    DiagnosticsErrorCode.NO_GRAD: "A hidden state is not connected to the loss by autograd (detached, or computed "
    "from frozen parameters and inputs only).",
    DiagnosticsErrorCode.SETTINGS: "An invalid argument to the Python API: an accuracy outside [0, 1], a frozen "
    "baseline without a headline accuracy, an unknown growth statistic, invalid thresholds, or a loss function "
    "that does not return a scalar.",
    DiagnosticsErrorCode.FROZEN: "The frozen-blocks baseline helper found no block parameters to freeze or none "
    "left to train, the training function changed a frozen parameter, or the evaluation did not return a fraction.",
    DiagnosticsErrorCode.PLOT: "A plot was requested but matplotlib is not installed (install the `plot` extra: "
    "`pip install 'guardchain-diagnostics[plot]'`).",
}


def diag_error(
    code: DiagnosticsErrorCode, message: str, *, hint: str = "", cause: BaseException | None = None
) -> GuardchainError:
    """A :class:`GuardchainError` with one problem of this member."""
    return GuardchainError.single(code, message, hint=hint, cause=cause)
