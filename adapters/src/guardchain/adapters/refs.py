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
from guardchain.adapters.gguf_meta import read_gguf_architecture
from guardchain.adapters.named import NAMED_MODELS
from guardchain.core.network import ENV_ALLOW_NETWORK, network_allowed

__all__ = ["ENV_ALLOW_NETWORK", "ENV_CACHE", "cache_root", "classify_ref", "network_allowed", "read_model_type"]

ENV_CACHE = "GUARDCHAIN_CACHE"
DEFAULT_CACHE = Path("~/.cache/guardchain")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

RefKind = Literal["named", "dir", "gguf", "hub", "missing"]


def cache_root(configured: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The cache root: ``configured`` if set, else ``$GUARDCHAIN_CACHE``, else ``~/.cache/guardchain``."""
    env = os.environ if environ is None else environ
    raw = configured or env.get(ENV_CACHE) or str(DEFAULT_CACHE)
    return Path(raw).expanduser()


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
    """``model_type`` from ``directory/config.json``, or ``None`` if absent or unreadable."""
    try:
        data = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


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
