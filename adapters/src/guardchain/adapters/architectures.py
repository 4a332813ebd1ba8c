"""Which model families each adapter handles, and where their parts live (pure data: no torch import).

A transformer block is found by its parent ``ModuleList`` (e.g. ``transformer.h`` for GPT-2); inside a block,
module paths are relative. The same four roles exist in every family so that site strings and weight families
mean the same thing for GPT-2, Llama and BERT:

========== ================================ ================================ =================================
role       GPT-2 (``GPT2Block``)            Llama family (``LlamaDecoderLayer``) BERT (``BertLayer``)
========== ================================ ================================ =================================
attention  ``attn``                         ``self_attn``                    ``attention`` (includes the residual
                                                                             add and LayerNorm of BertSelfOutput)
mlp input  ``mlp`` (its input)              ``mlp`` (its input)              ``intermediate`` (its input)
mlp output ``mlp`` (its output)             ``mlp`` (its output)             ``output.dense`` (its output, before
                                                                             the residual add and LayerNorm)
ffn params ``mlp.*``                        ``mlp.*``                        ``intermediate.*``, ``output.*``
========== ================================ ================================ =================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["causal_lm", "encoder"]


@dataclass(frozen=True)
class Architecture:
    """Where the parts of one model family live.

    :ivar family: short family name (``"gpt2"``, ``"llama"``, ``"bert"``).
    :ivar adapter: the registered adapter that handles it.
    :ivar model_types: ``config.model_type`` values of this family.
    :ivar kind: ``causal_lm`` (next-token log-probabilities) or ``encoder`` (BERT: pseudo-log-likelihood).
    :ivar block_lists: dotted paths of the ``ModuleList`` holding the blocks, as found in the bare model and in
        its task wrappers (matched as a whole path or as a ``.``-separated suffix of one).
    :ivar attn: attention module, relative to a block.
    :ivar mlp_in: module whose *input* is the MLP input, relative to a block.
    :ivar mlp_out: module whose *output* is the MLP output before the residual add, relative to a block.
    :ivar attn_params: parameter-path prefixes (relative to a block) of the ``attn`` weight family.
    :ivar ffn_params: parameter-path prefixes (relative to a block) of the ``ffn`` weight family.
    """

    family: str
    adapter: str
    model_types: frozenset[str]
    kind: ModelKind
    block_lists: tuple[str, ...]
    attn: str
    mlp_in: str
    mlp_out: str
    attn_params: tuple[str, ...]
    ffn_params: tuple[str, ...]


GPT2 = Architecture(
    family="gpt2",
    adapter="hf_gpt2",
    model_types=frozenset({"gpt2"}),
    kind="causal_lm",
    block_lists=("transformer.h", "h"),
    attn="attn",
    mlp_in="mlp",
    mlp_out="mlp",
    attn_params=("attn.",),
    ffn_params=("mlp.",),
)

LLAMA = Architecture(
    family="llama",
    adapter="hf_llama",
    model_types=frozenset({"llama", "mistral", "qwen2"}),
    kind="causal_lm",
    block_lists=("model.layers", "layers"),
    attn="self_attn",
    mlp_in="mlp",
    mlp_out="mlp",
    attn_params=("self_attn.",),
    ffn_params=("mlp.",),
)

BERT = Architecture(
    family="bert",
    adapter="hf_bert",
    model_types=frozenset({"bert"}),
    kind="encoder",
    block_lists=("encoder.layer",),
    attn="attention",
    mlp_in="intermediate",
    mlp_out="output.dense",
    attn_params=("attention.",),
    ffn_params=("intermediate.", "output."),
)

ARCHITECTURES: tuple[Architecture, ...] = (GPT2, LLAMA, BERT)

#: GGUF ``general.architecture`` -> transformers ``model_type`` (only the families adapters here handle).
GGUF_ARCHITECTURES: dict[str, str] = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "gpt2": "gpt2"}


def architecture_for(model_type: str) -> Architecture | None:
    """The architecture whose ``model_types`` contain ``model_type``, or ``None``."""
    for arch in ARCHITECTURES:
        if model_type in arch.model_types:
            return arch
    return None


def adapter_for_model_type(model_type: str) -> str | None:
    """The registered adapter name that handles ``model_type`` (``"llama"`` -> ``"hf_llama"``), or ``None``."""
    arch = architecture_for(model_type)
    return arch.adapter if arch is not None else None


def supported_model_types() -> list[str]:
    """Every ``model_type`` some adapter of this package handles, sorted."""
    return sorted(t for arch in ARCHITECTURES for t in arch.model_types)
