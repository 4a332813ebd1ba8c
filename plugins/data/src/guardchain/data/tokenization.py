"""The model's tokenizer, as the data sources use it: content tokens only, and a digest that identifies it.

The tokenizer is whatever the adapter put in ``handle.tokenizer`` (for Hugging Face adapters a fast tokenizer).
It is called through its ``__call__`` rather than its Rust backend: the wrapper resets truncation and padding on
every call, whereas the backend keeps whatever a previous caller (a classification metric truncating to 128
tokens, say) left set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.data.codes import DataErrorCode

TokenIds = npt.NDArray[np.int64]
#: Texts in, one int64 array of content-token ids per text out.
Encoder = Callable[[Sequence[str]], list[TokenIds]]


def require_tokenizer(handle: ModelHandle | None) -> tuple[ModelHandle, Any]:
    """The handle and its tokenizer.

    :raises GuardchainError: ``GC-DATA-NO-TOKENIZER`` when there is no handle or it carries no tokenizer.
    """
    tokenizer = None if handle is None else handle.tokenizer
    if handle is None or tokenizer is None:
        if handle is None:
            where = "the chain loads no model"
            hint = "add a `model` section to the chain (the runner loads the model before the data)"
        else:
            where = f"the model {handle.ref!r} has no tokenizer"
            hint = (
                "its checkpoint lacks tokenizer files (tokenizer.json, or vocab/merges files): save them next to "
                "the weights with tokenizer.save_pretrained(<checkpoint directory>)"
            )
        raise GuardchainError.single(
            DataErrorCode.NO_TOKENIZER, f"text datasets tokenize with the model's tokenizer, but {where}", hint=hint
        )
    return handle, tokenizer


def make_encoder(tokenizer: Any) -> Encoder:
    """An :data:`Encoder` over a Hugging Face tokenizer: no special tokens, no truncation, no padding.

    :param tokenizer: a callable tokenizer returning a mapping with ``"input_ids"`` (one list per text).
    """

    def encode(texts: Sequence[str]) -> list[TokenIds]:
        if not texts:
            return []
        encoded = tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            verbose=False,
        )
        return [np.asarray(ids, dtype=np.int64) for ids in encoded["input_ids"]]

    return encode


def tokenizer_sha256(handle: ModelHandle, tokenizer: Any) -> str:
    """SHA-256 hex digest identifying the tokenizer that produced the token ids.

    Uses ``handle.provenance["tokenizer_sha256"]`` when the adapter recorded one; otherwise the SHA-256 of the
    fast tokenizer's full JSON serialization (``backend_tokenizer.to_str()``: vocabulary, merges, normalizer,
    pre-tokenizer, special tokens); for a tokenizer without a Rust backend, of its class name and sorted
    vocabulary as JSON.
    """
    recorded = handle.provenance.get("tokenizer_sha256")
    if isinstance(recorded, str) and recorded:
        return recorded
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        serialized = str(backend.to_str())
    else:
        vocab = dict(tokenizer.get_vocab())
        serialized = json.dumps({"class": type(tokenizer).__name__, "vocab": sorted(vocab.items())})
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()
