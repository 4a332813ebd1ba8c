"""How each module of a model receives its input and returns its output, found by one tiny forward pass.

Hooks need to know whether a module's output is a tuple (GPT-2 and Llama attention return
``(hidden_states, attn_weights)``; BERT's ``attention`` too) and whether its input tensor arrives positionally or
as a keyword (Llama's ``self_attn`` is called as ``self_attn(hidden_states=...)``, which a plain forward pre-hook
does not see). These facts change between transformers versions, so instead of hard-coding them this module runs
the model once on three token ids with a hook on every submodule and records what it observed. The result is
cached per model object, so the probe runs at most once per loaded model — normally at the first
``resolve_sites`` call, before any intervention is attached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import torch

_CACHE: WeakKeyDictionary[torch.nn.Module, dict[str, ModuleIO]] = WeakKeyDictionary()


@dataclass(frozen=True)
class ModuleIO:
    """What one module did during the probe.

    :ivar output_is_tuple: the module returned a tuple; the activation is element 0.
    :ivar input_kwarg: the input activation arrived as this keyword argument, or ``None`` when it was the first
        positional argument.
    """

    output_is_tuple: bool
    input_kwarg: str | None


def _input_kwarg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if args and isinstance(args[0], torch.Tensor):
        return None
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return "hidden_states"
    return next((k for k, v in kwargs.items() if isinstance(v, torch.Tensor)), None)


def module_io(model: torch.nn.Module, *, causal: bool) -> dict[str, ModuleIO]:
    """Module path -> :class:`ModuleIO` for every submodule that ran during a 3-token forward pass.

    :param model: a transformers model (its first parameter's device is used).
    :param causal: pass ``use_cache=False`` (causal LMs) so that no key/value cache is built.
    """
    cached = _CACHE.get(model)
    if cached is not None:
        return cached
    seen_inputs: dict[str, str | None] = {}
    seen_outputs: dict[str, bool] = {}
    handles = []
    for path, module in model.named_modules():
        if not path:
            continue

        def pre(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], path: str = path) -> None:
            seen_inputs.setdefault(path, _input_kwarg(args, kwargs))

        def post(_m: torch.nn.Module, _args: tuple[Any, ...], output: Any, path: str = path) -> None:
            seen_outputs.setdefault(path, isinstance(output, tuple))

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post))
    try:
        device = next(model.parameters()).device
        vocab = int(getattr(model.config, "vocab_size", 3) or 3)
        ids = (torch.arange(3, device=device) % vocab).unsqueeze(0)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if causal:
            kwargs["use_cache"] = False
        with torch.no_grad():
            model(**kwargs)
    finally:
        for handle in handles:
            handle.remove()
    result = {
        path: ModuleIO(output_is_tuple=seen_outputs.get(path, False), input_kwarg=seen_inputs.get(path))
        for path in seen_inputs
    }
    _CACHE[model] = result
    return result
