"""Sites and router modules of a plain ``torch.nn.Module``, for the Python API when no adapter is given.

A chain step resolves sites only through the run context's adapter. :func:`analyze` on a bare module (any
architecture, e.g. a Mixtral that no adapter handles) uses this small resolver instead:

- ``blocks[I].input`` / ``blocks[I].output`` (``I``: an integer, negative from the end, ``*`` or a slice ``a:b``):
  the residual stream entering / leaving block ``I``. The block list is the first ``ModuleList`` found at one of
  :data:`BLOCK_LISTS` (as a whole path or a ``.``-suffix of one), as the reference package looks for it;
- a module path, optionally with ``*`` / ``?`` wildcards (``model.layers.*.mlp``), hooked at its output, or at its
  input with a final ``.input`` (``.output`` is accepted too).

Router modules (:func:`find_routers`) are the modules the model itself declares as the source of its
``router_logits`` output (transformers ≥ 5: ``_can_record_outputs["router_logits"]``, a module class and the
output's tuple index), or those matching explicit path patterns.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

import torch

from guardchain.core.handles import HookPoint, SiteRef
from guardchain.geometry.codes import GeometryErrorCode, geometry_error
from guardchain.geometry.collect import RouterRef

#: where blocks live, tried in order (GPT-2, Llama/Mistral/Qwen/Mixtral, GPT-NeoX, OPT/BART, BERT, generic)
BLOCK_LISTS: tuple[str, ...] = (
    "transformer.h",
    "model.layers",
    "gpt_neox.layers",
    "model.decoder.layers",
    "decoder.layers",
    "encoder.layer",
    "layers",
    "blocks",
    "h",
)
_BLOCK_SITE = re.compile(r"^blocks\[(?P<selector>[^\]]*)\]\.(?P<part>input|output)$")
_SLICE = re.compile(r"^(?P<start>-?\d+)?:(?P<stop>-?\d+)?(?::(?P<step>-?\d+)?)?$")


def find_blocks(model: torch.nn.Module) -> tuple[str, int] | None:
    """``(path of the block list, number of blocks)`` or ``None`` when the model has none of :data:`BLOCK_LISTS`."""
    lists = {p: m for p, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)}
    for suffix in BLOCK_LISTS:
        for path, module in lists.items():
            if path == suffix or path.endswith("." + suffix):
                return path, len(module)
    return None


def block_of(path: str, blocks: tuple[str, int] | None) -> int | None:
    """The index of the block that contains module ``path``, or ``None``."""
    if blocks is None:
        return None
    prefix = blocks[0] + "."
    if not path.startswith(prefix):
        return None
    head = path[len(prefix) :].partition(".")[0]
    return int(head) if head.isdigit() else None


def _select(selector: str, n: int, site: str) -> list[int]:
    text = selector.replace(" ", "")
    if text == "*":
        return list(range(n))
    if re.fullmatch(r"-?\d+", text):
        index = int(text)
        if -n <= index < n:
            return [index % n]
    match = _SLICE.match(text)
    if match and match.group("step") != "0":
        start, stop, step = (None if v is None else int(v) for v in match.group("start", "stop", "step"))
        chosen = list(range(n)[slice(start, stop, step)])
        if chosen:
            return chosen
    raise geometry_error(
        GeometryErrorCode.SITE,
        f"unknown site {site!r}: {selector!r} selects no block of the {n} (an integer in -{n}..{n - 1}, '*' or a "
        "slice a:b)",
    )


def resolve_module_sites(model: torch.nn.Module, sites: Sequence[str]) -> list[SiteRef]:
    """Expand site strings (module docstring) into :class:`SiteRef` s, in the order given.

    :raises GuardchainError: ``GC-GEOM-SITE`` for a site that matches nothing.
    """
    blocks = find_blocks(model)
    modules = [p for p, _ in model.named_modules() if p]
    refs: list[SiteRef] = []
    for site in sites:
        text = site.strip()
        match = _BLOCK_SITE.match(text)
        if match:
            if blocks is None:
                raise geometry_error(
                    GeometryErrorCode.SITE,
                    f"unknown site {site!r}: no block list ({', '.join(BLOCK_LISTS)}) in {type(model).__name__}",
                    hint="name modules by path instead (e.g. 'model.layers.*' or 'model.layers.3.input')",
                )
            hook = HookPoint(match.group("part"))
            for i in _select(match.group("selector"), blocks[1], site):
                refs.append(SiteRef(f"blocks[{i}].{hook.value}", f"{blocks[0]}.{i}", hook, i))
            continue
        path, hook = text, HookPoint.OUTPUT
        head, _, last = text.rpartition(".")
        if last in ("input", "output") and head and not fnmatch.filter(modules, text):
            path, hook = head, HookPoint(last)
        found = fnmatch.filter(modules, path) if any(c in path for c in "*?[") else [p for p in modules if p == path]
        if not found:
            close = [m for m in modules if m.endswith(path.rpartition(".")[2])][:3]
            raise geometry_error(
                GeometryErrorCode.SITE,
                f"unknown site {site!r}: no module of {type(model).__name__} has that path",
                hint=("modules with a similar name: " + ", ".join(close)) if close else "",
            )
        refs.extend(SiteRef(f"{p}.{hook.value}", p, hook, block_of(p, blocks)) for p in found)
    return refs


def _router_recorder(model: torch.nn.Module) -> tuple[Any, int] | None:
    for module in model.modules():
        recorders = getattr(type(module), "_can_record_outputs", None)
        entry = recorders.get("router_logits") if isinstance(recorders, dict) else None
        if entry is None:
            continue
        if isinstance(entry, type):
            return entry, 0
        target = getattr(entry, "target_class", None) or getattr(entry, "class_name", None)
        if target is not None:
            return target, int(getattr(entry, "index", 0) or 0)
    return None


def expert_count(model: torch.nn.Module) -> int | None:
    """``config.num_local_experts`` (Mixtral) or ``config.num_experts`` (Qwen2-MoE), or ``None`` for a dense model."""
    config = getattr(model, "config", None)
    for key in ("num_local_experts", "num_experts"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def find_routers(model: torch.nn.Module, patterns: Sequence[str] = ()) -> list[RouterRef]:
    """The router modules of a mixture-of-experts model (module docstring), in module order; ``[]`` for a model
    whose config declares no experts or where none is found.

    ``top_k`` is ``config.num_experts_per_tok`` (default 2, as the reference).
    """
    experts = expert_count(model)
    if experts is None:
        return []
    top_k = int(getattr(getattr(model, "config", None), "num_experts_per_tok", None) or 2)
    blocks = find_blocks(model)
    named = [(p, m) for p, m in model.named_modules() if p]
    if patterns:
        chosen = [(p, 0) for p, _ in named if any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    else:
        recorder = _router_recorder(model)
        if recorder is None:
            return []
        target, index = recorder

        def matches(module: torch.nn.Module) -> bool:
            if isinstance(target, type):
                return isinstance(module, target)
            return type(module).__name__.endswith(str(target))

        chosen = [(p, index) for p, m in named if matches(m)]
    return [RouterRef(p, i, block_of(p, blocks), top_k, experts) for p, i in chosen]
