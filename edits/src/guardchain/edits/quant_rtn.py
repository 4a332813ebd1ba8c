"""``quant_rtn``: symmetric round-to-nearest fake quantization of a model's weight matrices, in place.

``plan`` selects the weight matrices (by family or by explicit names / module prefixes) and checks the group size;
``apply`` quantizes each target with :func:`guardchain.edits.quantization.fake_quantize` (formula there: Jacob et
al. 2018 symmetric RTN, group-wise as in GPTQ/AWQ practice) and writes the result back with ``param.copy_`` under
``torch.no_grad``, so parameters that share storage (tied embeddings) stay tied. A tied group is quantized once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle, ModelStructure, WeightFamily, WeightMatrix
from guardchain.core.results import EditPlan, EditReport, ModuleEditStats
from guardchain.edits.codes import EditErrorCode
from guardchain.edits.config import QuantRTNConfig
from guardchain.edits.quantization import fake_quantize, q_max_for

EDIT_NAME = "quant_rtn"
SCHEME = "symmetric-rtn"
_SCOPE_FAMILIES: dict[str, frozenset[WeightFamily]] = {
    "attn": frozenset({WeightFamily.ATTN}),
    "ffn": frozenset({WeightFamily.FFN}),
    "all": frozenset({WeightFamily.ATTN, WeightFamily.FFN}),
}


def _matches(entry: str, name: str) -> bool:
    """``entry`` is the parameter name itself or a module-path prefix of it."""
    return name == entry or name.startswith(entry + ".")


def _is_lm_head(name: str) -> bool:
    module = name.rpartition(".")[0]
    return module == "lm_head" or module.endswith(".lm_head")


def _aliases(structure: ModelStructure) -> dict[str, tuple[str, ...]]:
    """Every name of a tied group -> the whole group."""
    return {name: group for group in structure.tied for name in group}


class QuantRTN:
    """The ``quant_rtn`` edit (see the module docstring and :mod:`guardchain.edits.quantization`)."""

    def __init__(self, config: QuantRTNConfig) -> None:
        self.config = config

    # -- plan -------------------------------------------------------------------------------------------------

    def _select(self, structure: ModelStructure) -> list[WeightMatrix]:
        config = self.config
        aliases = _aliases(structure)
        weights = structure.weights
        if isinstance(config.scope, tuple):
            chosen: list[WeightMatrix] = []
            unknown: list[str] = []
            for entry in config.scope:
                hits = [w for w in weights if any(_matches(entry, n) for n in aliases.get(w.name, (w.name,)))]
                if not hits:
                    unknown.append(entry)
                chosen.extend(hits)
            if unknown:
                existing = ", ".join(w.name for w in weights)
                raise GuardchainError.single(
                    EditErrorCode.SCOPE_UNKNOWN,
                    f"scope entries {unknown} match no weight matrix of this model",
                    path="scope",
                    expected=f"parameter names or module-path prefixes of: {existing}",
                )
        else:
            families = _SCOPE_FAMILIES[config.scope]
            chosen = [w for w in weights if w.family in families]
        if config.include_embeddings:
            chosen.extend(w for w in weights if w.family == WeightFamily.EMBED)
        if config.include_lm_head:
            chosen.extend(w for w in weights if any(_is_lm_head(n) for n in aliases.get(w.name, (w.name,))))
        return chosen

    def plan(self, handle: ModelHandle, structure: ModelStructure) -> EditPlan:
        """Select the target matrices (sorted names; one name per tied group) and check the group size.

        :raises GuardchainError: ``GC-EDIT-SCOPE-UNKNOWN`` for an explicit scope entry that matches nothing,
            ``GC-EDIT-GROUP-SIZE`` when ``group_size`` does not divide a target's input dimension.
        """
        config = self.config
        aliases = _aliases(structure)
        targets: dict[str, WeightMatrix] = {}
        covered: dict[str, str] = {}  # every name of a chosen tied group -> the name that is quantized
        skipped: dict[str, str] = {}
        for weight in self._select(structure):
            if weight.name in targets:
                continue
            if weight.name in covered:
                if covered[weight.name] != weight.name:
                    skipped[weight.name] = covered[weight.name]
                continue
            targets[weight.name] = weight
            for alias in aliases.get(weight.name, (weight.name,)):
                covered[alias] = weight.name
        for weight in targets.values():
            self._check_group_size(weight.name, weight.shape, weight.out_axis)
        names = sorted(targets)
        tied_aliases = {name: [a for a in aliases[name] if a != name] for name in names if name in aliases}
        details: dict[str, Any] = {
            "bits": config.bits,
            "group_size": config.group_size,
            "clamp_percentile": config.clamp_percentile,
            "scope": config.scope if isinstance(config.scope, str) else list(config.scope),
            "include_embeddings": config.include_embeddings,
            "include_lm_head": config.include_lm_head,
            "scheme": SCHEME,
            "q_max": q_max_for(config.bits),
            "out_axis": {name: targets[name].out_axis for name in names},
            "tied_aliases": tied_aliases,
            "tied_skipped": skipped,
        }
        if tied_aliases or skipped:
            details["tied_note"] = (
                "each tied group is quantized once, through the name in targets; its other names share the storage "
                "and change with it"
            )
        return EditPlan(edit=EDIT_NAME, targets=tuple(names), details=details)

    def _check_group_size(self, name: str, shape: tuple[int, ...], out_axis: int) -> None:
        size = self.config.group_size
        if size is None or len(shape) != 2:
            return
        n_in = shape[1 - out_axis]
        if n_in % size:
            raise GuardchainError.single(
                EditErrorCode.GROUP_SIZE,
                f"group_size {size} does not divide the input dimension {n_in} of {name} (shape {list(shape)})",
                path="group_size",
                expected=f"a divisor of {n_in}",
            )

    # -- apply ------------------------------------------------------------------------------------------------

    def apply(self, handle: ModelHandle, plan: EditPlan) -> EditReport:
        """Quantize every target of ``plan`` in place and report the error per matrix.

        :raises GuardchainError: ``GC-EDIT-PLAN`` for a plan of another edit or naming a missing or non-matrix
            parameter; ``GC-EDIT-GROUP-SIZE`` as in :meth:`plan`.
        """
        if plan.edit != EDIT_NAME:
            raise GuardchainError.single(EditErrorCode.PLAN, f"plan was made by edit {plan.edit!r}, not {EDIT_NAME!r}")
        config = self.config
        out_axes: dict[str, int] = dict(plan.details.get("out_axis", {}))
        params = self._parameters(handle, plan.targets)
        per_module: dict[str, ModuleEditStats] = {}
        scales: dict[str, dict[str, float]] = {}
        total = 0
        with torch.no_grad():
            for name, param in params:
                out_axis = int(out_axes.get(name, 0))
                self._check_group_size(name, tuple(param.shape), out_axis)
                original = param.detach().clone()
                quantized, scale = fake_quantize(
                    original,
                    bits=config.bits,
                    group_size=config.group_size,
                    clamp_percentile=config.clamp_percentile,
                    out_axis=out_axis,
                )
                param.copy_(quantized.to(param.dtype))
                diff = param.detach().to(quantized.dtype) - original.to(quantized.dtype)
                per_module[name] = ModuleEditStats(
                    max_abs_error=float(diff.abs().max()) if diff.numel() else 0.0,
                    rms_error=float(diff.pow(2).mean().sqrt()) if diff.numel() else 0.0,
                    numel=param.numel(),
                )
                scales[name] = _scale_summary(scale)
                total += param.numel()
        details: dict[str, Any] = {
            "bits": config.bits,
            "group_size": config.group_size,
            "clamp_percentile": config.clamp_percentile,
            "scheme": SCHEME,
            "q_max": q_max_for(config.bits),
            "scales": scales,
            "scales_overall": _overall(scales.values()),
        }
        return EditReport(
            edit=EDIT_NAME,
            modules_changed=tuple(name for name, _ in params),
            parameters_changed=total,
            per_module=per_module,
            details=details,
        )

    @staticmethod
    def _parameters(handle: ModelHandle, names: Iterable[str]) -> list[tuple[str, torch.Tensor]]:
        found: list[tuple[str, torch.Tensor]] = []
        for name in names:
            try:
                param = handle.model.get_parameter(name)
            except (AttributeError, TypeError) as exc:
                raise GuardchainError.single(
                    EditErrorCode.PLAN, f"the plan names {name!r}, which is not a parameter of this model", cause=exc
                ) from exc
            if param.dim() != 2:
                raise GuardchainError.single(
                    EditErrorCode.PLAN, f"the plan names {name!r} of shape {list(param.shape)}, not a 2-D matrix"
                )
            found.append((name, param))
        return found


def _scale_summary(scale: torch.Tensor) -> dict[str, float]:
    """min / mean / max of the scales of one matrix, their count and how many are zero."""
    flat = scale.reshape(-1).to(torch.float64)
    return {
        "n_scales": float(flat.numel()),
        "zero_scales": float((flat == 0).sum()),
        "min": float(flat.min()),
        "mean": float(flat.mean()),
        "max": float(flat.max()),
    }


def _overall(summaries: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(summaries)
    if not rows:
        return {"n_scales": 0.0, "zero_scales": 0.0}
    n = sum(r["n_scales"] for r in rows)
    return {
        "n_scales": n,
        "zero_scales": sum(r["zero_scales"] for r in rows),
        "min": min(r["min"] for r in rows),
        "mean": sum(r["mean"] * r["n_scales"] for r in rows) / n,
        "max": max(r["max"] for r in rows),
    }
