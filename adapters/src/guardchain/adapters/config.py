"""Configuration models of the adapters (pydantic; imported by the registration module, so no torch here).

``hf_gpt2`` and ``hf_llama`` take :class:`CausalLMAdapterConfig`; ``hf_bert`` takes :class:`BertAdapterConfig`,
which adds the head and the masked-LM scoring options; ``hf_auto`` takes :class:`AutoAdapterConfig` (the same
fields as BERT's) and passes to the adapter it delegates to the fields that adapter's config has. A BERT-only field
set to a non-default value while the checkpoint resolves to a causal LM is an error (``GC-HF-CONFIG-MISMATCH``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DTypeName = Literal["float32", "bfloat16", "float16"]
HeadName = Literal["masked_lm", "sequence_classification", "base"]


class CausalLMAdapterConfig(BaseModel):
    """Options shared by every Hugging Face adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = Field(
        default="cpu",
        pattern=r"^(cpu|cuda(:\d+)?|mps)$",
        description="Torch device the model is placed on: 'cpu', 'cuda', 'cuda:N' or 'mps'.",
    )
    dtype: DTypeName = Field(
        default="float32",
        description="Parameter dtype of the loaded model. Log-probabilities are always computed in float32.",
    )
    attn_implementation: Literal["eager", "sdpa"] | None = Field(
        default=None,
        description="transformers attention implementation; null keeps transformers' default (sdpa when available).",
    )
    forward_batch_size: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Rows per forward pass when scoring a batch (bounds memory: logits are rows x T x vocabulary).",
    )
    revision: str | None = Field(
        default=None,
        description="Hub revision (branch, tag or commit) for hub ids; pin a commit for reproducible runs.",
    )
    gguf_cache_dtype: DTypeName = Field(
        default="float32",
        description="dtype of the safetensors cache written the first time a .gguf file is loaded "
        "(float32 keeps the dequantised weights exactly; bfloat16 halves the cache but rounds them).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Cache root for converted GGUF models and hub downloads; null = $GUARDCHAIN_CACHE, "
        "else ~/.cache/guardchain.",
    )


class BertAdapterConfig(CausalLMAdapterConfig):
    """Options of the BERT adapter: which head to load, and how masked-LM pseudo-log-likelihood is computed."""

    head: HeadName = Field(
        default="masked_lm",
        description="Head to load: 'masked_lm' (BertForMaskedLM, scored by pseudo-log-likelihood), "
        "'sequence_classification' (BertForSequenceClassification, use class_logits) or 'base' (BertModel).",
    )
    num_labels: int | None = Field(
        default=None,
        ge=1,
        description="Number of classes of a sequence-classification head; null = the checkpoint's config.",
    )
    allow_new_head: bool = Field(
        default=False,
        description="Accept a head that the checkpoint lacks and transformers initialises randomly (seeded by the "
        "run's seed); otherwise loading fails with GC-HF-HEAD-MISSING.",
    )
    mlm_mask_groups: int = Field(
        default=7,
        ge=1,
        le=4096,
        description="Pseudo-log-likelihood: content positions are split into this many groups, one forward pass "
        "per group with that group's positions masked.",
    )
    mlm_seed: int = Field(
        default=0,
        ge=0,
        description="Seed of the position -> group pattern (which depends only on this seed, the position and the "
        "window's length).",
    )


class AutoAdapterConfig(BertAdapterConfig):
    """Options of ``hf_auto``: every field of the adapter it may delegate to. BERT-only fields (head, num_labels,
    allow_new_head, mlm_mask_groups, mlm_seed) must keep their defaults unless the checkpoint is a BERT."""
