"""The stable error codes of guardchain-data (documented in the member's README; a test keeps the two in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`.
"""

from __future__ import annotations

from enum import StrEnum


class DataErrorCode(StrEnum):
    """Codes of expected failures while reading data or cutting windows."""

    NO_TOKENIZER = "GC-DATA-NO-TOKENIZER"
    NOT_LOADED = "GC-DATA-NOT-LOADED"
    TOO_FEW_WINDOWS = "GC-DATA-TOO-FEW-WINDOWS"
    NOT_FOUND = "GC-DATA-NOT-FOUND"
    READ_FAILED = "GC-DATA-READ-FAILED"
    INVALID_RECORD = "GC-DATA-INVALID-RECORD"
    DUPLICATE_ID = "GC-DATA-DUPLICATE-ID"
    MISSING_EXTRA = "GC-DATA-MISSING-EXTRA"
    NETWORK_DISABLED = "GC-DATA-NETWORK-DISABLED"


DESCRIPTIONS: dict[DataErrorCode, str] = {
    DataErrorCode.NO_TOKENIZER: "A text dataset was loaded without a model whose handle carries a tokenizer "
    "(the chain has no `model`, or the adapter's handle has `tokenizer=None`).",
    DataErrorCode.NOT_LOADED: "`fingerprint()` was called before `load()`.",
    DataErrorCode.TOO_FEW_WINDOWS: "The documents hold fewer distinct windows of `seq_len` tokens than "
    "`n_preview + n_final`; the message gives both numbers.",
    DataErrorCode.NOT_FOUND: "A configured path or glob matches no file, or a saved dataset directory is missing.",
    DataErrorCode.READ_FAILED: "A file exists but cannot be read or decoded as UTF-8.",
    DataErrorCode.INVALID_RECORD: "A JSONL line or dataset row is not a JSON object, lacks the text, label or id "
    "field, or has a value of the wrong type (the message names the record).",
    DataErrorCode.DUPLICATE_ID: "Two documents or examples have the same id.",
    DataErrorCode.MISSING_EXTRA: "The dataset needs an optional dependency that is not installed; the message "
    "names the extra (`pip install 'guardchain-data[hf]'` or `[bible]`).",
    DataErrorCode.NETWORK_DISABLED: "`hf_datasets` would download from the Hugging Face hub, but network access "
    "is off: set `GUARDCHAIN_ALLOW_NETWORK=1`, or point `local_path` at a dataset saved with `save_to_disk`.",
}
