"""Load a ``.gguf`` file once through transformers and cache it as a safetensors checkpoint.

transformers reads GGUF files itself (``from_pretrained(directory, gguf_file=name)``, needing the ``gguf`` and
``accelerate`` packages) and dequantises every tensor to float. It marks such a model "not serializable", so the
cache is written by rebuilding it (the recipe of ``/work/shared/anchors/offline_assets.md``):

1. take ``model.config.to_dict()`` without ``quantization_config`` and rebuild the config class from it;
2. build a fresh model of the same class on the ``meta`` device, ``load_state_dict(..., assign=True)`` the
   dequantised weights (all keys must match) and re-tie the embeddings;
3. cast to ``gguf_cache_dtype`` and ``save_pretrained`` it, with the tokenizer converted from the GGUF metadata,
   into a temporary directory under the cache root, then rename that directory into place (atomic on one file
   system: a reader sees either no cache or a complete one; a concurrent writer that loses the race discards its
   copy).

The cache lives at ``<cache root>/gguf/<key>`` with ``key = <file stem>-<file size>-<sha256 of the first MiB, 16 hex>
-<cache dtype>-v1``, so a different file (or dtype) never reuses a stale cache. Every load, the first included,
then reads the cached checkpoint, so the first and later loads give bit-identical weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.refs import fresh_folder
from guardchain.core.logs import get_logger

CACHE_FORMAT = "v1"
HEAD_BYTES = 1024 * 1024
MARKER = "guardchain-gguf.json"

_log = get_logger("guardchain.adapters.gguf")


@dataclass(frozen=True)
class GGUFCache:
    """Where a GGUF file's converted checkpoint lives.

    :ivar source: the ``.gguf`` file.
    :ivar directory: the cached ``save_pretrained`` directory.
    :ivar key: the cache key (directory name).
    :ivar file_size: size of the ``.gguf`` file in bytes.
    :ivar head_sha256: SHA-256 hex digest of the file's first MiB.
    :ivar hit: True when the cache existed before this call (False: it was just converted).
    """

    source: Path
    directory: Path
    key: str
    file_size: int
    head_sha256: str
    hit: bool

    def provenance(self) -> dict[str, Any]:
        """JSON-ready facts for the handle's provenance. Whether the cache was hit is deliberately left out (it is
        logged): provenance identifies what was loaded, and must not differ between a first and a later run."""
        return {
            "file": str(self.source),
            "file_size": self.file_size,
            "head_sha256": self.head_sha256,
            "cache_key": self.key,
            "cache_path": str(self.directory),
        }


def require_gguf_support() -> None:
    """Raise ``GC-HF-GGUF-UNAVAILABLE`` unless the ``gguf`` and ``accelerate`` packages are importable."""
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise hf_error(
            HFErrorCode.GGUF_UNAVAILABLE,
            f"loading a .gguf file needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed",
            hint="pip install 'guardchain-adapters[gguf]'",
        )


def cache_key(path: Path, cache_dtype: str) -> tuple[str, int, str]:
    """``(key, file size, sha256 of the first MiB)`` of the GGUF file at ``path``."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)
    return f"{stem}-{size}-{head[:16]}-{cache_dtype}-{CACHE_FORMAT}", size, head


def ensure_cache(path: Path, cache_root: Path, cache_dtype: str) -> GGUFCache:
    """The cached checkpoint of the GGUF file ``path``, converting it first if needed.

    :param path: the ``.gguf`` file.
    :param cache_root: the cache root (``<root>/gguf/<key>`` is used).
    :param cache_dtype: ``float32``, ``bfloat16`` or ``float16``: dtype of the cached weights.
    :raises GuardchainError: ``GC-HF-GGUF-UNAVAILABLE`` without gguf/accelerate; ``GC-HF-LOAD-FAILED`` when
        transformers cannot read the file or the cache cannot be written.
    """
    key, size, head = cache_key(path, cache_dtype)
    parent = cache_root / "gguf"
    target = parent / key
    if (target / MARKER).is_file() and (target / "config.json").is_file():
        _log.info("gguf.cache_hit", source=str(path), cache=str(target))
        return GGUFCache(path, target, key, size, head, hit=True)
    require_gguf_support()
    staging = fresh_folder(
        parent, f".{key}.", "the GGUF cache", "set cache_dir (or GUARDCHAIN_CACHE) to a writable directory"
    )
    try:
        _convert(path, staging, cache_dtype)
        marker = {"source": str(path), "file_size": size, "head_sha256": head, "dtype": cache_dtype}
        (staging / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / MARKER).is_file():
                raise
            _log.info("gguf.cache_race", key=key)  # another process finished first: use its copy
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise hf_error(
                HFErrorCode.LOAD_FAILED,
                f"cannot write the GGUF cache {target}: {exc}",
                hint="set cache_dir (or GUARDCHAIN_CACHE) to a writable directory with ~4x the .gguf size free",
                cause=exc,
            ) from exc
        raise
    _log.info("gguf.cached", source=str(path), cache=str(target))
    return GGUFCache(path, target, key, size, head, hit=False)


def _convert(path: Path, out: Path, cache_dtype: str) -> None:
    """Dequantise ``path`` with transformers and ``save_pretrained`` model and tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from guardchain.adapters.loading import dtype_kwargs, torch_dtype

    directory, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=name, local_files_only=True, **dtype_kwargs(torch.float32)
        )
    except Exception as exc:
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            f"transformers could not load the GGUF file {path}: {type(exc).__name__}: {exc}",
            cause=exc,
        ) from exc
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    config = type(loaded.config).from_dict(settings)
    with torch.device("meta"):
        fresh: Any = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    fresh.tie_weights()
    fresh.to(torch_dtype(cache_dtype)).save_pretrained(out)
    tokenizer.save_pretrained(out)
