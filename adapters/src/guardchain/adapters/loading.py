"""Turn a model reference into a loaded ``ModelHandle``: locate, check the architecture, load, record provenance.

Loading never touches the network unless the reference is a hub id and ``GUARDCHAIN_ALLOW_NETWORK=1``: local
checkpoints are read with ``local_files_only=True``. Weights are read from safetensors when the checkpoint has
them; a checkpoint with only ``pytorch_model.bin`` is read by transformers through ``torch.load(weights_only=True)``
(which transformers enforces), so no pickled code runs. ``trust_remote_code`` is never set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from packaging.version import Version

from guardchain.adapters import gguf, hub
from guardchain.adapters.architectures import adapter_for_model_type
from guardchain.adapters.config import CausalLMAdapterConfig
from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.named import NAMED_MODELS
from guardchain.adapters.offload import OffloadStore, materialize_offloaded, offload_summary
from guardchain.adapters.provenance import json_safe, library_versions, tokenizer_sha256
from guardchain.adapters.refs import (
    cache_root,
    classify_ref,
    gguf_model_type,
    missing_error,
    network_allowed,
    network_disabled_error,
    read_model_type,
)
from guardchain.adapters.weights import n_parameters, weights_digest
from guardchain.core.handles import ModelHandle
from guardchain.core.logs import get_logger

HeadKind = Literal["causal_lm", "masked_lm", "sequence_classification", "base"]
Source = Literal["named", "dir", "gguf", "hub"]

#: Module names whose parameters belong to a task head (missing ones would be freshly initialised).
HEAD_COMPONENTS = frozenset({"lm_head", "cls", "classifier", "pooler", "score"})

_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_log = get_logger("guardchain.adapters.loading")


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (float32, bfloat16 or float16)."""
    return _DTYPES[name]


def dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """The ``from_pretrained`` keyword for a dtype: ``dtype=`` from transformers 4.56 on, ``torch_dtype=`` before."""
    import transformers

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: dtype}


@dataclass(frozen=True)
class Located:
    """Where a reference's checkpoint is, and what it is.

    :ivar ref: the reference as given.
    :ivar source: ``named``, ``dir``, ``gguf`` or ``hub``.
    :ivar checkpoint: a ``save_pretrained`` directory to load from (for GGUF: the safetensors cache).
    :ivar resolved_path: what the reference resolved to (directory, ``.gguf`` file, hub snapshot directory).
    :ivar model_type: the checkpoint's ``config.model_type``.
    :ivar weights_format: ``safetensors`` or ``bin``.
    :ivar details: source-specific provenance (``gguf``, ``hub`` or ``named`` facts).
    """

    ref: str
    source: Source
    checkpoint: Path
    resolved_path: Path
    model_type: str
    weights_format: Literal["safetensors", "bin"]
    details: dict[str, Any] = field(default_factory=dict)


def locate_missing(ref: str) -> Exception:
    """The ``GC-HF-NOT-FOUND`` error for a reference that names nothing (raise it)."""
    return missing_error(ref)


def require_network(ref: str) -> None:
    """Raise ``GC-HF-NETWORK-DISABLED`` (naming ``GUARDCHAIN_ALLOW_NETWORK=1``) unless network access is allowed."""
    if not network_allowed():
        raise network_disabled_error(ref)


def _check_type(ref: str, model_type: str | None, adapter: str, accepted: frozenset[str]) -> str:
    if model_type is None:
        raise hf_error(
            HFErrorCode.ARCHITECTURE,
            f"cannot tell the architecture of {ref!r}: no model_type in its config",
            expected="model_type one of " + ", ".join(sorted(accepted)),
        )
    if model_type not in accepted:
        other = adapter_for_model_type(model_type)
        raise hf_error(
            HFErrorCode.ARCHITECTURE,
            f"adapter {adapter!r} handles model_type {', '.join(sorted(accepted))}, but {ref!r} is {model_type!r}",
            expected="model_type one of " + ", ".join(sorted(accepted)),
            hint=f"use the adapter {other!r} (or hf_auto)"
            if other
            else "no adapter of guardchain-adapters handles this architecture",
            details={"model_type": model_type},
        )
    return model_type


def _weights_format(directory: Path, ref: str) -> Literal["safetensors", "bin"]:
    if any(directory.glob("*.safetensors")) or (directory / "model.safetensors.index.json").is_file():
        return "safetensors"
    if any(directory.glob("pytorch_model*.bin")):
        return "bin"
    raise hf_error(
        HFErrorCode.NOT_FOUND,
        f"{ref!r} ({directory}) has no weights",
        expected="model.safetensors (or sharded *.safetensors), or pytorch_model.bin",
    )


def locate(ref: str, *, adapter: str, accepted: frozenset[str], config: CausalLMAdapterConfig) -> Located:
    """Find the checkpoint behind ``ref`` and check that ``adapter`` handles its architecture.

    A hub id is fetched (through :func:`guardchain.adapters.hub.fetch_hub_model`) only when network is allowed;
    a ``.gguf`` file is converted to the safetensors cache on first use.

    :raises GuardchainError: ``GC-HF-NOT-FOUND``, ``GC-HF-NETWORK-DISABLED``, ``GC-HF-ARCHITECTURE``,
        ``GC-HF-GGUF-UNAVAILABLE`` or ``GC-HF-LOAD-FAILED``.
    """
    kind = classify_ref(ref)
    details: dict[str, Any] = {}
    source: Source
    if kind == "named":
        named = NAMED_MODELS[ref]
        _check_type(ref, named.model_type, adapter, accepted)
        path = named.locate()
        details["named"] = {"name": named.name, "description": named.description}
        source = "named"
        if named.format == "gguf":
            return _locate_gguf(ref, path, "named", details, adapter=adapter, accepted=accepted, config=config)
    elif kind == "dir":
        path = Path(ref).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise hf_error(
                HFErrorCode.NOT_FOUND,
                f"directory {ref!r} has no config.json, so it is not a save_pretrained checkpoint",
            )
        source = "dir"
    elif kind == "gguf":
        path = Path(ref).expanduser().resolve()
        return _locate_gguf(ref, path, "gguf", details, adapter=adapter, accepted=accepted, config=config)
    elif kind == "hub":
        require_network(ref)
        path = hub.fetch_hub_model(ref, revision=config.revision, cache_dir=cache_root(config.cache_dir) / "hub")
        details["hub"] = {"repo_id": ref, "revision": config.revision, "local_dir": str(path)}
        source = "hub"
    else:
        raise locate_missing(ref)
    model_type = _check_type(ref, read_model_type(path), adapter, accepted)
    return Located(ref, source, path, path, model_type, _weights_format(path, ref), details)


def _locate_gguf(
    ref: str,
    path: Path,
    source: Source,
    details: dict[str, Any],
    *,
    adapter: str,
    accepted: frozenset[str],
    config: CausalLMAdapterConfig,
) -> Located:
    header_type = gguf_model_type(path)
    if header_type is not None:
        _check_type(ref, header_type, adapter, accepted)
    cache = gguf.ensure_cache(path, cache_root(config.cache_dir), config.gguf_cache_dtype)
    model_type = _check_type(ref, read_model_type(cache.directory), adapter, accepted)
    details["gguf"] = cache.provenance()
    return Located(ref, source, cache.directory, path, model_type, "safetensors", details)


def _auto_class(head: HeadKind) -> Any:
    import transformers

    return {
        "causal_lm": transformers.AutoModelForCausalLM,
        "masked_lm": transformers.AutoModelForMaskedLM,
        "sequence_classification": transformers.AutoModelForSequenceClassification,
        "base": transformers.AutoModel,
    }[head]


def _is_head_key(key: str) -> bool:
    return any(part in HEAD_COMPONENTS for part in key.split("."))


def load_model(
    located: Located,
    *,
    head: HeadKind,
    config: CausalLMAdapterConfig,
    seed: int,
    num_labels: int | None = None,
    allow_new_head: bool = False,
) -> tuple[Any, Any, list[str]]:
    """Load model and tokenizer from ``located.checkpoint``; return ``(model, tokenizer, new_head_keys)``.

    The model is put on ``config.device`` in ``config.dtype`` and in eval mode. Parameters the checkpoint lacks
    are refused: head parameters (``lm_head``, ``cls``, ``classifier``, ``pooler``, ``score``) with
    ``GC-HF-HEAD-MISSING`` unless ``allow_new_head`` (they are then initialised by transformers under
    ``torch.manual_seed(seed)``, so the result is reproducible), any other with ``GC-HF-LOAD-FAILED``. A bare
    encoder (``head="base"``) whose checkpoint has no pooler is loaded without one (``model.pooler = None``).
    """

    kwargs: dict[str, Any] = {
        **dtype_kwargs(torch_dtype(config.dtype)),
        "local_files_only": True,
        "use_safetensors": located.weights_format == "safetensors",
        "output_loading_info": True,
    }
    if config.attn_implementation is not None:
        kwargs["attn_implementation"] = config.attn_implementation
    store = None
    if config.device_map is not None:
        store = _offload_store(config)
        kwargs.update(_placement_kwargs(config, store))
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
        kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(num_labels)}
        kwargs["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, info = _auto_class(head).from_pretrained(str(located.checkpoint), **kwargs)
    except Exception as exc:
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            f"transformers could not load {located.ref!r} ({located.checkpoint}) as {head}: "
            f"{type(exc).__name__}: {exc}",
            cause=exc,
        ) from exc
    missing = sorted(info.get("missing_keys") or [])
    head_keys = [k for k in missing if _is_head_key(k)]
    other_keys = [k for k in missing if not _is_head_key(k)]
    if other_keys:
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            f"{located.ref!r} lacks {len(other_keys)} backbone parameter(s) of {type(model).__name__}: "
            + ", ".join(other_keys[:8])
            + (" ..." if len(other_keys) > 8 else ""),
            hint="the checkpoint does not match the architecture its config.json declares",
        )
    if head == "base" and head_keys and all(".pooler." in f".{k}" for k in head_keys):
        # A bare encoder from a checkpoint without a pooler (e.g. saved from BertForMaskedLM): the pooler would be
        # random, and a bare encoder's outputs are its hidden states, so it is dropped rather than refused.
        model.pooler = None
        _log.info("hf.pooler_dropped", ref=located.ref, missing=head_keys)
        head_keys = []
    if head_keys and not allow_new_head:
        raise hf_error(
            HFErrorCode.HEAD_MISSING,
            f"{located.ref!r} has no weights for the {head} head of {type(model).__name__}; they would be freshly "
            "initialised (random): " + ", ".join(head_keys[:8]) + (" ..." if len(head_keys) > 8 else ""),
            hint="load another head (e.g. head: base for an encoder without a masked-LM head), or set "
            "allow_new_head: true to accept a randomly initialised head (e.g. a classifier to train)",
            details={"missing_keys": head_keys},
        )
    if store is not None:
        materialize_offloaded(model, store)
    else:
        try:
            model.to(config.device)
        except (RuntimeError, AssertionError) as exc:
            raise hf_error(
                HFErrorCode.LOAD_FAILED, f"cannot move the model to device {config.device!r}: {exc}", cause=exc
            ) from exc
    model.eval()
    return model, load_tokenizer(located), head_keys


def _offload_store(config: CausalLMAdapterConfig) -> OffloadStore:
    """A fresh offload store under ``offload_folder`` (default ``<cache root>/offload``).

    :raises GuardchainError: ``GC-HF-LOAD-FAILED`` when accelerate, which places the modules, is not installed,
        or the folder cannot be created.
    """
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            "device_map needs the accelerate package, which is not installed",
            hint="pip install accelerate (it comes with guardchain-adapters[gguf])",
        )
    configured = config.offload_folder
    return OffloadStore.create(
        Path(configured).expanduser() if configured else cache_root(config.cache_dir) / "offload"
    )


def _placement_kwargs(config: CausalLMAdapterConfig, store: OffloadStore) -> dict[str, Any]:
    """``device_map`` / ``max_memory`` / ``offload_folder`` for ``from_pretrained`` (see :mod:`.offload`)."""
    device_map: Any = config.device_map
    if isinstance(device_map, dict):
        device_map = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in device_map.items()}
    max_memory = None
    if config.max_memory is not None:
        max_memory = {int(k) if k.isdigit() else k: v for k, v in config.max_memory.items()}
    return {"device_map": device_map, "max_memory": max_memory, "offload_folder": str(store.folder)}


def load_tokenizer(located: Located) -> Any:
    """The checkpoint's tokenizer, or ``None`` when it has none (a checkpoint without tokenizer files still scores
    token ids; a text dataset then fails with ``GC-DATA-NO-TOKENIZER``, naming the model).

    transformers builds an *empty* tokenizer for a GPT-2 checkpoint without tokenizer files instead of failing;
    it would turn every text into zero tokens ("0 distinct windows"), so a tokenizer whose vocabulary holds
    nothing but special tokens counts as none.
    """
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(located.checkpoint), local_files_only=True)
    except Exception as exc:
        _log.warning("hf.tokenizer_unavailable", ref=located.ref, error=f"{type(exc).__name__}: {exc}")
        return None
    try:
        n_vocab = len(tokenizer.get_vocab())
        n_special = len(set(tokenizer.all_special_tokens))
    except Exception as exc:
        _log.warning("hf.tokenizer_unavailable", ref=located.ref, error=f"{type(exc).__name__}: {exc}")
        return None
    if n_vocab <= n_special:
        _log.warning(
            "hf.tokenizer_unavailable",
            ref=located.ref,
            error=f"the tokenizer files in {located.checkpoint} are missing or empty ({n_vocab} token(s), all special)",
        )
        return None
    return tokenizer


def head_kind(model: Any) -> HeadKind:
    """The head of a loaded model from its class name: ``causal_lm`` (``*ForCausalLM``, ``*LMHeadModel``),
    ``masked_lm`` (``*ForMaskedLM``), ``sequence_classification`` (``*ForSequenceClassification``) or ``base``."""
    name = type(model).__name__
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal_lm"
    if name.endswith("ForMaskedLM"):
        return "masked_lm"
    if name.endswith("ForSequenceClassification"):
        return "sequence_classification"
    return "base"


def load_handle(
    ref: str,
    *,
    adapter: str,
    accepted: frozenset[str],
    head: HeadKind,
    config: CausalLMAdapterConfig,
    seed: int,
    num_labels: int | None = None,
    allow_new_head: bool = False,
) -> ModelHandle:
    """Locate, load and describe the provenance of ``ref``: the body of every HF adapter's ``load``.

    Provenance keys: ``weights_sha256`` (= ``weights_digest``), ``tokenizer_sha256``, ``config`` (the model
    config as a JSON-safe dict), ``dtype``, ``device``, ``source`` (``named``/``dir``/``gguf``/``hub``),
    ``resolved_path``, ``checkpoint_path``, ``versions`` (torch, transformers, tokenizers, safetensors),
    ``model_class``, ``model_type``, ``head``, ``n_parameters`` (distinct parameters, tied counted once),
    ``weights_format``, ``adapter``, plus ``named`` / ``gguf`` / ``hub`` facts for those sources
    and ``new_head_keys`` when a random head was accepted.
    """
    started = time.perf_counter()
    located = locate(ref, adapter=adapter, accepted=accepted, config=config)
    model, tokenizer, new_head_keys = load_model(
        located, head=head, config=config, seed=seed, num_labels=num_labels, allow_new_head=allow_new_head
    )
    digest = weights_digest(model)
    extra_versions = ("gguf", "accelerate") if "gguf" in located.details else ()
    provenance: dict[str, Any] = {
        "adapter": adapter,
        "source": located.source,
        "ref": ref,
        "resolved_path": str(located.resolved_path),
        "checkpoint_path": str(located.checkpoint),
        "model_type": located.model_type,
        "model_class": type(model).__name__,
        "head": head_kind(model),
        "weights_format": located.weights_format,
        "weights_sha256": digest,
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "config": json_safe(model.config.to_dict()),
        "dtype": config.dtype,
        "device": config.device,
        "n_parameters": n_parameters(model),
        "versions": library_versions(extra_versions),
        **json_safe(located.details),
    }
    if new_head_keys:
        provenance["new_head_keys"] = new_head_keys
    placement = offload_summary(model)
    if placement is not None:
        provenance["placement"] = placement
        provenance["device"] = str(next(model.parameters()).device)
    seconds = round(time.perf_counter() - started, 3)
    _log.info("hf.loaded", ref=ref, adapter=adapter, source=located.source, seconds=seconds)
    return ModelHandle(
        model=model,
        adapter=adapter,
        ref=ref,
        tokenizer=tokenizer,
        device=str(provenance["device"]),
        dtype=config.dtype,
        provenance=provenance,
    )
