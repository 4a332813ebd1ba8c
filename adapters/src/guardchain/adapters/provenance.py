"""Facts that identify exactly what was loaded: tokenizer hash, library versions, a JSON-safe config."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors")


def tokenizer_sha256(tokenizer: Any) -> str | None:
    """SHA-256 hex digest of a fast tokenizer's backend JSON (``tokenizer.backend_tokenizer.to_str()``: vocabulary,
    merges, normalizer, pre-tokenizer, post-processor, special tokens); ``None`` for no or a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of torch, transformers, tokenizers, safetensors (and ``extra``); ``None`` if absent."""
    found: dict[str, str | None] = {}
    for name in (*LIBRARIES, *extra):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def json_safe(value: Any) -> Any:
    """``value`` round-tripped through JSON; objects JSON cannot encode (dtypes, enums) become strings."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))
