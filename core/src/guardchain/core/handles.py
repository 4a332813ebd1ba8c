"""What an Adapter hands to every other capability: the loaded model and a description of its structure.

These types hold framework objects (a ``torch.nn.Module``, a tokenizer) as ``Any``: the kernel never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WeightFamily(StrEnum):
    """Which part of a transformer a weight matrix belongs to; guards calibrate thresholds per family."""

    ATTN = "attn"
    FFN = "ffn"
    EMBED = "embed"
    OTHER = "other"


@dataclass
class ModelHandle:
    """A loaded model, owned by the adapter that loaded it.

    :ivar model: the framework model object (for Hugging Face adapters a ``torch.nn.Module``).
    :ivar tokenizer: the tokenizer, or ``None`` for models that take tensors directly.
    :ivar adapter: registered name of the adapter that produced this handle; other capabilities use it to find
        the adapter again through the run context.
    :ivar ref: the model reference it was loaded from (local directory, hub id, packaged name).
    :ivar device: device string, e.g. ``"cpu"`` or ``"cuda:0"``.
    :ivar dtype: parameter dtype name, e.g. ``"float32"``.
    :ivar provenance: hashes and versions that identify exactly what was loaded (weights, tokenizer, config,
        library versions); copied into run records and certificates.
    """

    model: Any
    adapter: str
    ref: str
    tokenizer: Any = None
    device: str = "cpu"
    dtype: str = "float32"
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WeightMatrix:
    """One weight matrix of the model.

    :ivar name: parameter path as the framework names it (``transformer.h.3.mlp.c_fc.weight``).
    :ivar family: the :class:`WeightFamily` it belongs to.
    :ivar shape: parameter shape, outermost dimension first.
    :ivar block: index of the transformer block that owns it, or ``None`` outside the blocks (embeddings, head).
    :ivar out_axis: the axis of ``shape`` that indexes output features: ``0`` for ``(out, in)`` storage (PyTorch
        ``nn.Linear``), ``1`` for ``(in, out)`` storage (GPT-2's ``Conv1D``). Per-output-channel edits and
        spectra depend on it.
    """

    name: str
    family: WeightFamily
    shape: tuple[int, ...]
    block: int | None = None
    out_axis: int = 0


@dataclass(frozen=True)
class ModelStructure:
    """The ordered blocks and every weight matrix of a model.

    :ivar blocks: module paths of the transformer blocks in execution order.
    :ivar weights: every weight matrix, in parameter order.
    :ivar tied: groups of parameter names that share storage (e.g. GPT-2's ``wte`` and ``lm_head``).
    """

    blocks: tuple[str, ...]
    weights: tuple[WeightMatrix, ...]
    tied: tuple[tuple[str, ...], ...] = ()

    def by_family(self, family: WeightFamily) -> tuple[WeightMatrix, ...]:
        """The weight matrices of one family, in parameter order."""
        return tuple(w for w in self.weights if w.family == family)


class HookPoint(StrEnum):
    """Where on a module an activation is read or replaced."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class SiteRef:
    """A resolved site: the module to hook, the hook point, and the block it belongs to.

    :ivar site: the site string as the user wrote it, after expansion (``blocks[3].mlp.output``).
    :ivar module_path: dotted module path inside the model (``transformer.h.3.mlp``).
    :ivar hook: whether the activation is the module's input or its output.
    :ivar block: the block index, or ``None`` for sites outside the blocks.
    :ivar details: adapter-specific extras (e.g. the tuple index of a module output that is a tuple).
    """

    site: str
    module_path: str
    hook: HookPoint
    block: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
