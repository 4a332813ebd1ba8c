"""Model references: what a ``ref`` string names, cheaply (json and header reads only; no torch).

A reference is, in this order of precedence:

1. a **named model** (:data:`~guardchain.adapters.named.NAMED_MODELS`: ``smollm2-135m``, ``minilm-l6``,
   ``tiny-gpt2``);
2. an existing **directory** (a ``save_pretrained`` checkpoint: ``config.json`` plus weights);
3. an existing **``.gguf`` file**;
4. a **hub id** ``org/name`` that is not an existing path — loaded only when ``GUARDCHAIN_ALLOW_NETWORK=1``;
5. anything else is **missing** (``GC-HF-NOT-FOUND``).

Environment variables: ``GUARDCHAIN_ALLOW_NETWORK`` (``1``/``true``/``yes``/``on`` allows hub downloads; read by
the kernel's :func:`guardchain.core.network.network_allowed`) and ``GUARDCHAIN_CACHE`` (cache root; default
``~/.cache/guardchain``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from guardchain.adapters.architectures import GGUF_ARCHITECTURES
from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.gguf_meta import read_gguf_architecture
from guardchain.adapters.named import NAMED_MODELS
from guardchain.core.errors import GuardchainError
from guardchain.core.network import ENV_ALLOW_NETWORK, network_allowed

__all__ = [
    "ENV_ALLOW_NETWORK",
    "ENV_CACHE",
    "cache_root",
    "classify_ref",
    "fresh_folder",
    "missing_error",
    "network_allowed",
    "network_disabled_error",
    "read_model_type",
]

ENV_CACHE = "GUARDCHAIN_CACHE"
DEFAULT_CACHE = Path("~/.cache/guardchain")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

RefKind = Literal["named", "dir", "gguf", "hub", "missing"]


def cache_root(configured: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The cache root: ``configured`` if set, else ``$GUARDCHAIN_CACHE``, else ``~/.cache/guardchain``."""
    env = os.environ if environ is None else environ
    raw = configured or env.get(ENV_CACHE) or str(DEFAULT_CACHE)
    return Path(raw).expanduser()


def fresh_folder(parent: Path, prefix: str, what: str, hint: str) -> Path:
    """A new, empty folder ``parent/<prefix><random>`` (``parent`` created if needed), for a cache entry being
    written or an offload store.

    :raises GuardchainError: ``GC-HF-LOAD-FAILED`` naming ``what`` and ``hint`` when it cannot be created.
    """
    import tempfile

    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise hf_error(
            HFErrorCode.LOAD_FAILED, f"cannot create {what} under {parent}: {exc}", hint=hint, cause=exc
        ) from exc


def classify_ref(ref: str) -> RefKind:
    """What ``ref`` names (see the module docstring for the precedence). Touches the file system only."""
    if ref in NAMED_MODELS:
        return "named"
    path = Path(ref).expanduser()
    if path.is_dir():
        return "dir"
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "gguf"
    if HUB_ID.match(ref) and not path.exists():
        return "hub"
    return "missing"


def read_model_type(directory: Path) -> str | None:
    """``model_type`` from ``directory/config.json``; ``None`` when there is no ``config.json`` or it names none.

    :raises GuardchainError: ``GC-HF-LOAD-FAILED`` naming the file when ``config.json`` exists but cannot be read
        or is not valid JSON (a broken checkpoint must be named as such, not as "no adapter claims it").
    """
    file = directory / "config.json"
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            f"the checkpoint's config.json ({file}) cannot be read: {reason}",
            expected="a JSON object with a model_type, as save_pretrained writes it",
            hint="the file is damaged or truncated: save the checkpoint again",
            cause=exc,
        ) from exc
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def looks_like_path(ref: str) -> bool:
    """True for references written as paths: ``./x``, ``/x``, ``~/x``, ``a/b/c`` (a hub id has one slash), or a
    file name ending in ``.gguf``."""
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref or ref.lower().endswith(".gguf")


def missing_error(ref: str) -> GuardchainError:
    """The ``GC-HF-NOT-FOUND`` error for a reference that names nothing (raise it)."""
    path = Path(ref).expanduser()
    what = "is a file, not a checkpoint directory or a .gguf file" if path.is_file() else "does not exist"
    return hf_error(
        HFErrorCode.NOT_FOUND,
        f"model reference {ref!r} {what}",
        expected="a named model (" + ", ".join(NAMED_MODELS) + "), a save_pretrained directory, a .gguf file, "
        "or a hub id org/name",
        hint="hub ids always have the form org/name (e.g. openai-community/gpt2)",
    )


def network_disabled_error(ref: str) -> GuardchainError:
    """The ``GC-HF-NETWORK-DISABLED`` error for a hub id while network access is off (raise it)."""
    return hf_error(
        HFErrorCode.NETWORK_DISABLED,
        f"{ref!r} is a hub id, but network access is disabled (guardchain is offline by default)",
        hint=f"set {ENV_ALLOW_NETWORK}=1 to allow downloading it from the Hugging Face hub, "
        "or pass a local save_pretrained directory",
    )


def gguf_model_type(path: Path) -> str | None:
    """The transformers ``model_type`` of a ``.gguf`` file from its ``general.architecture``, or ``None`` when the
    header is unreadable. An architecture no adapter here handles is returned as-is (e.g. ``"phi3"``)."""
    arch = read_gguf_architecture(path)
    if arch is None:
        return None
    return GGUF_ARCHITECTURES.get(arch, arch)


def cheap_model_type(ref: str) -> str | None:
    """The ``model_type`` of a named model, a local directory or a ``.gguf`` file, without loading anything;
    ``None`` for hub ids, missing references and unreadable files."""
    kind = classify_ref(ref)
    if kind == "named":
        return NAMED_MODELS[ref].model_type
    if kind == "dir":
        return read_model_type(Path(ref).expanduser())
    if kind == "gguf":
        return gguf_model_type(Path(ref).expanduser())
    return None
