"""Registration module of ``guardchain-adapters`` (entry point ``hf`` in ``guardchain.plugins``).

Imported by every ``guardchain`` invocation, so it imports neither torch nor transformers: factories are
``"module:attr"`` strings, imported only when a chain uses the adapter. ``guardchain_resolve_adapter`` reads json
files and GGUF headers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardchain.adapters.architectures import adapter_for_model_type, supported_model_types
from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.named import NAMED_MODELS
from guardchain.adapters.refs import (
    classify_ref,
    gguf_model_type,
    looks_like_path,
    missing_error,
    network_allowed,
    network_disabled_error,
    read_model_type,
)
from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

_IMPL = "guardchain.adapters.adapters"
_REFS = (
    "References: a named model (" + ", ".join(NAMED_MODELS) + "), a save_pretrained directory (safetensors "
    "preferred; .bin only through torch.load(weights_only=True)), a .gguf file, or a hub id org/name when "
    "GUARDCHAIN_ALLOW_NETWORK=1."
)
_SITES = (
    "Sites: blocks[I].attn.input|output, blocks[I].mlp.input|output, blocks[I].input|output, "
    "blocks[I].residual_pre|residual_post|attn_out|mlp_out (I: integer, negative, '*' or a:b), the bare names "
    "residual_pre, residual_post, attn_out, mlp_out (every block), or a module path with optional .input/.output."
)


@hookimpl
def guardchain_register_adapters(registrar: Registrar) -> None:
    """Register ``hf_gpt2``, ``hf_llama``, ``hf_bert`` and ``hf_auto``."""
    registrar.register(
        "hf_gpt2",
        summary="Hugging Face GPT-2 causal LMs (GPT2LMHeadModel): load, describe, score, sites, rollback.",
        config_model="guardchain.adapters.config:CausalLMAdapterConfig",
        factory=f"{_IMPL}:GPT2Adapter",
        docs="model_type gpt2. token_logprobs: log p(x_t | x_<t), NaN at t=0 and on padding. "
        "GPT-2's Conv1D weights are stored (in, out) and described as stored. " + _REFS + " " + _SITES,
    )
    registrar.register(
        "hf_llama",
        summary="Hugging Face Llama-family causal LMs (Llama, Mistral, Qwen2, SmolLM), incl. GGUF files.",
        config_model="guardchain.adapters.config:CausalLMAdapterConfig",
        factory=f"{_IMPL}:LlamaAdapter",
        docs="model_type llama, mistral or qwen2. A .gguf file is dequantised by transformers once and cached as "
        "safetensors under the cache root. " + _REFS + " " + _SITES,
    )
    registrar.register(
        "hf_bert",
        summary="Hugging Face BERT encoders: masked-LM (pseudo-log-likelihood), sequence classification, bare.",
        config_model="guardchain.adapters.config:BertAdapterConfig",
        factory=f"{_IMPL}:BertAdapter",
        docs="model_type bert. head masked_lm scores windows by pseudo-log-likelihood over mlm_mask_groups "
        "seeded groups; sequence_classification exposes class_logits(handle, batch). " + _REFS + " " + _SITES,
    )
    registrar.register(
        "hf_auto",
        summary="Reads the checkpoint's model_type and delegates to the adapter the resolve hook names.",
        config_model="guardchain.adapters.config:AutoAdapterConfig",
        factory=f"{_IMPL}:AutoAdapter",
        docs="Supported model types: " + ", ".join(supported_model_types()) + ". " + _REFS,
    )


@hookimpl
def guardchain_resolve_adapter(model_ref: str, hints: dict[str, Any]) -> str | None:
    """Name the adapter for ``model_ref`` from cheap facts (json and GGUF headers; nothing is loaded).

    * ``hints["model_type"]``, when given, decides alone (``"llama"`` -> ``hf_llama``; unsupported -> ``None``);
    * named models and local directories: by their ``config.json`` ``model_type``;
    * ``.gguf`` files: by the GGUF ``general.architecture`` if readable, else ``hf_llama``;
    * hub ids (``org/name`` that is not a local path): ``hf_auto``, which fetches and reads the config;
    * anything else: ``None`` (not this plugin's).

    References this plugin recognises but cannot load are *refused* with their own code (the kernel reports it
    before anything runs, and still asks the other plugins): a hub id while the network is off
    (``GC-HF-NETWORK-DISABLED``), a directory without ``config.json`` or a path that does not exist
    (``GC-HF-NOT-FOUND``), a ``config.json`` that is not valid JSON (``GC-HF-LOAD-FAILED``), a ``model_type`` no
    adapter here handles (``GC-HF-ARCHITECTURE``).
    """
    hinted = hints.get("model_type")
    if isinstance(hinted, str) and hinted:
        return adapter_for_model_type(hinted)
    kind = classify_ref(model_ref)
    if kind == "named":
        return adapter_for_model_type(NAMED_MODELS[model_ref].model_type)
    if kind == "dir":
        directory = Path(model_ref).expanduser()
        if not (directory / "config.json").is_file():
            raise hf_error(
                HFErrorCode.NOT_FOUND,
                f"directory {model_ref!r} has no config.json, so it is not a save_pretrained checkpoint",
            )
        return _adapter_for(model_ref, read_model_type(directory))
    if kind == "gguf":
        model_type = gguf_model_type(Path(model_ref).expanduser())
        return "hf_llama" if model_type is None else _adapter_for(model_ref, model_type)
    if kind == "hub":
        if not network_allowed():
            raise network_disabled_error(model_ref)
        return "hf_auto"
    if looks_like_path(model_ref):
        raise missing_error(model_ref)
    return None


def _adapter_for(ref: str, model_type: str | None) -> str:
    """The adapter for ``model_type``; refuses (``GC-HF-ARCHITECTURE``) a missing or unsupported one."""
    if model_type is None:
        raise hf_error(
            HFErrorCode.ARCHITECTURE,
            f"cannot tell the architecture of {ref!r}: its config has no model_type",
            expected="model_type one of " + ", ".join(supported_model_types()),
        )
    name = adapter_for_model_type(model_type)
    if name is None:
        raise hf_error(
            HFErrorCode.ARCHITECTURE,
            f"{ref!r} is a {model_type!r} model, which no adapter of guardchain-adapters handles",
            expected="model_type one of " + ", ".join(supported_model_types()),
            details={"model_type": model_type},
        )
    return name
