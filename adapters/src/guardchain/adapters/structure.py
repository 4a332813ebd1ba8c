"""``describe``: the ordered blocks of a model, every weight matrix with its family, and tied parameters.

Families (:class:`~guardchain.core.handles.WeightFamily`), for 2-D parameters only (biases, LayerNorm/RMSNorm
scales are not matrices and are not listed):

* ``attn`` — inside a block, under the attention module: GPT-2 ``attn.c_attn`` (fused q/k/v) and ``attn.c_proj``;
  Llama ``self_attn.{q,k,v,o}_proj``; BERT ``attention.self.{query,key,value}`` and ``attention.output.dense``;
* ``ffn`` — inside a block, under the MLP: GPT-2 ``mlp.c_fc`` / ``mlp.c_proj``; Llama ``mlp.{gate,up,down}_proj``;
  BERT ``intermediate.dense`` and ``output.dense``;
* ``embed`` — ``nn.Embedding`` weights outside the blocks (token, position, token-type embeddings);
* ``other`` — everything else: ``lm_head`` (when not tied), BERT's pooler, classifier, masked-LM transform.

Shapes are recorded **as stored**. ``nn.Linear`` stores ``(out_features, in_features)``; GPT-2's ``Conv1D`` stores
``(in_features, out_features)`` — :func:`output_axis` tells which axis indexes output features.

A tied parameter is listed once, under the first name ``named_parameters()`` reaches it by (GPT-2:
``transformer.wte.weight``, family ``embed``); ``tied`` lists every name of each group of parameters that share
storage (``named_parameters(remove_duplicate=False)`` grouped by data pointer, dtype, shape and strides).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from guardchain.adapters.architectures import Architecture, architecture_for, supported_model_types
from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.weights import distinct_parameters
from guardchain.core.handles import ModelStructure, WeightFamily, WeightMatrix


@dataclass(frozen=True)
class BlockLayout:
    """Where a model's blocks are.

    :ivar arch: the model's architecture.
    :ivar list_path: dotted path of the ``ModuleList`` of blocks (``transformer.h``).
    :ivar blocks: module path of each block, in execution order (``transformer.h.0``, ...).
    """

    arch: Architecture
    list_path: str
    blocks: tuple[str, ...]

    def block_of(self, path: str) -> tuple[int, str] | None:
        """``(block index, path relative to the block)`` of a module or parameter path inside a block, else
        ``None``. The block itself has relative path ``""``."""
        prefix = self.list_path + "."
        if not path.startswith(prefix):
            return None
        index, _, rest = path[len(prefix) :].partition(".")
        if not index.isdigit() or int(index) >= len(self.blocks):
            return None
        return int(index), rest


def architecture_of(model: Any, accepted: frozenset[str] | None = None) -> Architecture:
    """The :class:`Architecture` of a loaded model, from ``model.config.model_type``.

    :param accepted: model types the calling adapter handles; ``None`` accepts every supported type.
    :raises GuardchainError: ``GC-HF-ARCHITECTURE`` for an unsupported (or not accepted) model type.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    arch = architecture_for(model_type) if isinstance(model_type, str) else None
    if arch is None or (accepted is not None and model_type not in accepted):
        allowed = sorted(accepted) if accepted is not None else supported_model_types()
        raise hf_error(
            HFErrorCode.ARCHITECTURE,
            f"this handle holds a {type(model).__name__} with model_type {model_type!r}, which this adapter does not "
            "handle",
            expected="model_type one of " + ", ".join(allowed),
        )
    return arch


def block_layout(model: torch.nn.Module, accepted: frozenset[str] | None = None) -> BlockLayout:
    """Find the block list of ``model`` (e.g. ``bert.encoder.layer`` in ``BertForMaskedLM``)."""
    arch = architecture_of(model, accepted)
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and any(
            path == suffix or path.endswith("." + suffix) for suffix in arch.block_lists
        ):
            blocks = tuple(f"{path}.{i}" for i in range(len(module)))
            return BlockLayout(arch, path, blocks)
    raise hf_error(
        HFErrorCode.ARCHITECTURE,
        f"no block list ({' or '.join(arch.block_lists)}) found in {type(model).__name__}",
    )


def _family(layout: BlockLayout, name: str, module: torch.nn.Module) -> tuple[WeightFamily, int | None]:
    inside = layout.block_of(name)
    if inside is not None:
        index, relative = inside
        if relative.startswith(layout.arch.attn_params):
            return WeightFamily.ATTN, index
        if relative.startswith(layout.arch.ffn_params):
            return WeightFamily.FFN, index
        return WeightFamily.OTHER, index
    if isinstance(module, torch.nn.Embedding):
        return WeightFamily.EMBED, None
    return WeightFamily.OTHER, None


def tied_groups(model: torch.nn.Module) -> tuple[tuple[str, ...], ...]:
    """Groups (of two or more names) of parameters sharing storage, each in ``named_parameters`` order."""
    groups: dict[tuple[int, torch.dtype, tuple[int, ...], tuple[int, ...]], list[str]] = defaultdict(list)
    for name, param in model.named_parameters(remove_duplicate=False):
        if param.data_ptr() == 0:  # meta or empty tensors share no real storage
            continue
        groups[(param.data_ptr(), param.dtype, tuple(param.shape), tuple(param.stride()))].append(name)
    return tuple(tuple(names) for names in groups.values() if len(names) > 1)


def describe_model(model: torch.nn.Module, accepted: frozenset[str] | None = None) -> ModelStructure:
    """The :class:`~guardchain.core.handles.ModelStructure` of ``model`` (see the module docstring)."""
    layout = block_layout(model, accepted)
    modules = dict(model.named_modules())
    weights: list[WeightMatrix] = []
    for name, param in distinct_parameters(model):
        if param.dim() != 2:
            continue
        owner = modules.get(name.rpartition(".")[0], model)
        family, block = _family(layout, name, owner)
        out_axis = 1 if type(owner).__name__ == "Conv1D" else 0
        weights.append(WeightMatrix(name=name, family=family, shape=tuple(param.shape), block=block, out_axis=out_axis))
    return ModelStructure(blocks=layout.blocks, weights=tuple(weights), tied=tied_groups(model))


def output_axis(model: torch.nn.Module, name: str) -> int:
    """The axis of parameter ``name`` that indexes output features: ``1`` for GPT-2 ``Conv1D`` weights (stored
    ``(in, out)``), ``0`` for ``nn.Linear`` (``(out, in)``) and embeddings (``(vocabulary, hidden)``: one row per
    token).

    :raises KeyError: if ``name`` is not a parameter of ``model``.
    """
    module_path, _, attr = name.rpartition(".")
    module = model.get_submodule(module_path) if module_path else model
    if not isinstance(getattr(module, attr, None), torch.nn.Parameter):
        raise KeyError(name)
    return 1 if type(module).__name__ == "Conv1D" else 0
