"""Configuration models of the adapters (pydantic; imported by the registration module, so no torch here).

``hf_gpt2`` and ``hf_llama`` take :class:`CausalLMAdapterConfig`; ``hf_bert`` takes :class:`BertAdapterConfig`,
which adds the head and the masked-LM scoring options; ``hf_auto`` takes :class:`AutoAdapterConfig` (the same
fields as BERT's) and passes to the adapter it delegates to the fields that adapter's config has. A BERT-only field
set to a non-default value while the checkpoint resolves to a causal LM is an error (``GC-HF-CONFIG-MISMATCH``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DTypeName = Literal["float32", "bfloat16", "float16"]
HeadName = Literal["masked_lm", "sequence_classification", "base"]
DeviceMapName = Literal["auto", "balanced", "balanced_low_0", "sequential"]

#: A device a ``device_map`` / ``max_memory`` may name: ``cpu``, ``disk``, ``mps``, a GPU index or ``cuda:N``.
_PLACE = re.compile(r"^(cpu|disk|mps|\d+|cuda:\d+)$")
#: A memory size as accelerate reads it: bytes, or a number with a unit (``500MB``, ``2GiB``).
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)


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
        default=16,
        ge=1,
        le=4096,
        description="Rows per forward pass when scoring a batch. The vocabulary projection runs on a few of them at "
        "a time, so memory grows with rows x T x hidden, not with the vocabulary. 16 measured ~20% faster per window "
        "than 8 on a small Llama on 2 CPU cores (and no slower on SmolLM2-135M).",
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
    device_map: DeviceMapName | dict[str, str | int] | None = Field(
        default=None,
        description="Spread the model over devices with accelerate (needs accelerate): 'auto', 'balanced', "
        "'balanced_low_0', 'sequential', or {module prefix: device} with devices cpu, disk, N or cuda:N. Modules "
        "that do not fit (max_memory) are offloaded; their weights become file-backed CPU tensors (disk) or CPU "
        "tensors (cpu) and run on the CPU. Replaces 'device'.",
    )
    max_memory: dict[str, int | str] | None = Field(
        default=None,
        description="With device_map: memory per device, {device: bytes or '500MB' / '2GiB'}; devices cpu, N, "
        "cuda:N, mps. What does not fit goes to the next device, then to disk.",
    )
    offload_folder: str | None = Field(
        default=None,
        description="With device_map: where disk-offloaded weights (and their rollback copies) are memory-mapped "
        "from while the model is loaded; files are unlinked at once, nothing stays after the process. null = "
        "<cache root>/offload.",
    )

    snapshot_storage: Literal["auto", "memory", "disk"] = Field(
        default="auto",
        description="Where rollback copies of the weights an edit targets live: 'memory', or 'disk' (file-backed "
        "and unlinked at once: the page cache holds them, so they do not count against RAM and nothing stays "
        "after the process); 'auto' = disk when one snapshot of CPU weights exceeds 64 MiB.",
    )

    @field_validator("device_map")
    @classmethod
    def _places(cls, value: str | dict[str, str | int] | None) -> str | dict[str, str | int] | None:
        if isinstance(value, dict):
            if not value:
                raise ValueError("a device_map mapping needs at least one {module prefix: device} entry")
            bad = [f"{k}: {v!r}" for k, v in value.items() if not _PLACE.match(str(v))]
            if bad:
                raise ValueError(f"unknown device(s) {', '.join(bad)}; use cpu, disk, mps, N or cuda:N")
        return value

    @field_validator("max_memory")
    @classmethod
    def _sizes(cls, value: dict[str, int | str] | None) -> dict[str, int | str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("max_memory needs at least one {device: size} entry")
        for device, size in value.items():
            if not _PLACE.match(device) or device == "disk":
                raise ValueError(f"max_memory device {device!r} is not one of cpu, mps, N or cuda:N")
            if isinstance(size, bool) or (isinstance(size, int) and size <= 0):
                raise ValueError(f"max_memory[{device!r}] must be a positive number of bytes")
            if isinstance(size, str) and not _SIZE.match(size.strip()):
                raise ValueError(f"max_memory[{device!r}] = {size!r} is not a size such as 500MB or 2GiB")
        return value

    @model_validator(mode="after")
    def _placement_options(self) -> CausalLMAdapterConfig:
        if self.device_map is None and (self.max_memory is not None or self.offload_folder is not None):
            raise ValueError("max_memory and offload_folder need device_map (e.g. device_map: auto)")
        if self.device_map is not None and "device" in self.model_fields_set and self.device != "cpu":
            raise ValueError("set either device or device_map: a device_map places the model itself")
        return self


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
