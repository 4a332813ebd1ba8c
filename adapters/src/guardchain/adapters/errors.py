"""The plugin's own stable error codes (``GC-HF-*``) and a helper to raise them.

Codes are part of the public contract, like the kernel's: they never change meaning and are never reused. The
member's README lists every code (a test keeps the two in step). Errors are raised as the kernel's
:class:`~guardchain.core.errors.GuardchainError`, so the CLI prints them without a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from guardchain.core.errors import GuardchainError, Problem


class HFErrorCode(StrEnum):
    """Stable error codes of ``guardchain-adapters``."""

    NOT_FOUND = "GC-HF-NOT-FOUND"
    NETWORK_DISABLED = "GC-HF-NETWORK-DISABLED"
    ARCHITECTURE = "GC-HF-ARCHITECTURE"
    HEAD_MISSING = "GC-HF-HEAD-MISSING"
    HEAD_UNSUPPORTED = "GC-HF-HEAD-UNSUPPORTED"
    LOAD_FAILED = "GC-HF-LOAD-FAILED"
    GGUF_UNAVAILABLE = "GC-HF-GGUF-UNAVAILABLE"
    SITE_UNKNOWN = "GC-HF-SITE-UNKNOWN"
    BATCH_INVALID = "GC-HF-BATCH-INVALID"
    SNAPSHOT_MISMATCH = "GC-HF-SNAPSHOT-MISMATCH"
    CONFIG_MISMATCH = "GC-HF-CONFIG-MISMATCH"


ERROR_DESCRIPTIONS: Mapping[HFErrorCode, str] = {
    HFErrorCode.NOT_FOUND: "The model reference is neither a named model, an existing directory with a "
    "config.json and weights, a .gguf file, nor a hub id (org/name); or a named model's package is not installed.",
    HFErrorCode.NETWORK_DISABLED: "The reference is a hub id but network access is off; set "
    "GUARDCHAIN_ALLOW_NETWORK=1 to allow downloads.",
    HFErrorCode.ARCHITECTURE: "The checkpoint's model_type (or GGUF architecture) is not one this adapter handles, "
    "or a handle from another architecture was passed to it.",
    HFErrorCode.HEAD_MISSING: "The checkpoint lacks the weights of the requested head (masked-LM, classifier, "
    "LM head), which would be freshly initialised; set allow_new_head=true to accept a random head.",
    HFErrorCode.HEAD_UNSUPPORTED: "The operation needs a head the loaded model does not have (token_logprobs on a "
    "classifier or bare encoder, class_logits on a model without a classifier).",
    HFErrorCode.LOAD_FAILED: "transformers could not load the checkpoint, it lacks backbone weights, its "
    "config.json cannot be read or is not valid JSON (the file is named), or a hub download failed with network "
    "access on (no connection, unknown repository or revision); the original cause is attached.",
    HFErrorCode.GGUF_UNAVAILABLE: "Loading a .gguf file needs the optional packages gguf and accelerate "
    "(pip install 'guardchain-adapters[gguf]').",
    HFErrorCode.SITE_UNKNOWN: "A site string does not follow the site grammar, names a module the model does not "
    "have, or selects blocks outside the model's range.",
    HFErrorCode.BATCH_INVALID: "A batch is not {'input_ids': LongTensor[B,T], 'attention_mask': LongTensor[B,T]} "
    "with right padding, token ids inside the vocabulary and T within the model's positions.",
    HFErrorCode.SNAPSHOT_MISMATCH: "restore() was given a snapshot whose parameter names, shapes or dtypes do not "
    "match the model (a snapshot of another model, or parameters replaced since).",
    HFErrorCode.CONFIG_MISMATCH: "hf_auto was configured with a BERT-only option (head, num_labels, "
    "allow_new_head, mlm_*) but the checkpoint resolved to an adapter that has no such option.",
}


def hf_error(
    code: HFErrorCode,
    message: str,
    *,
    expected: str = "",
    hint: str = "",
    details: Mapping[str, Any] | None = None,
    cause: BaseException | None = None,
) -> GuardchainError:
    """A :class:`GuardchainError` carrying one problem with a ``GC-HF-*`` code (raise it)."""
    problem = Problem(code, message, expected=expected, hint=hint, details=dict(details or {}))
    return GuardchainError(problem, cause=cause)
