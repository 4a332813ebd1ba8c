"""Reading and replacing a site's activation from torch hooks, and resolving sites through an adapter.

A :class:`~guardchain.core.handles.SiteRef` (from an adapter's ``resolve_sites``) names a module, the hook point
(its input or its output) and how to find the tensor there: ``details["tuple_index"]`` for a module that returns a
tuple, ``details["input_arg"]`` / ``details["input_kwarg"]`` for its input. :func:`hook_site` registers one torch
hook that hands that tensor to a callback and puts back what the callback returns. It returns torch's own
``RemovableHandle``: removing it removes that hook and nothing else, so a user's hooks and other plugins' hooks on
the same module survive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from guardchain.core.context import RunContext
from guardchain.core.handles import HookPoint, ModelHandle, SiteRef
from guardchain.core.kinds import CapabilityKind
from guardchain.interventions.codes import InterventionErrorCode, intervention_error

#: receives the site's activation; returns its replacement, or None to leave it unchanged
SiteCallback = Callable[[torch.Tensor], torch.Tensor | None]


def _site_error(ref: SiteRef, message: str) -> Exception:
    return intervention_error(
        InterventionErrorCode.SITE, f"site {ref.site!r} ({ref.module_path}, {ref.hook}): {message}"
    )


def _checked(ref: SiteRef, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 3:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise _site_error(ref, f"expected a (batch, positions, hidden) tensor, found {shape}")
    return value


def find_module(model: torch.nn.Module, ref: SiteRef) -> torch.nn.Module:
    """The module a site hooks. :raises GuardchainError: ``GC-INTERVENTION-SITE`` if the model has none there."""
    try:
        return model.get_submodule(ref.module_path)
    except AttributeError as exc:
        raise _site_error(ref, "this model has no such module") from exc


def hook_site(module: torch.nn.Module, ref: SiteRef, callback: SiteCallback) -> RemovableHandle:
    """Register one hook on ``module`` that passes the site's activation to ``callback``."""
    if ref.hook is HookPoint.OUTPUT:
        index = int(ref.details.get("tuple_index", 0))

        def output_hook(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
            if isinstance(output, torch.Tensor):
                return callback(_checked(ref, output))
            if isinstance(output, tuple | list) and len(output) > index:
                new = callback(_checked(ref, output[index]))
                if new is None:
                    return None
                items = list(output)
                items[index] = new
                return type(output)(items) if isinstance(output, list) else tuple(items)
            raise _site_error(ref, f"cannot find a tensor in a module output of type {type(output).__name__}")

        return module.register_forward_hook(output_hook)

    kwarg = ref.details.get("input_kwarg")
    position = int(ref.details.get("input_arg", 0))

    def input_hook(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwarg is not None and kwarg in kwargs:
            new = callback(_checked(ref, kwargs[kwarg]))
            if new is None:
                return None
            return args, {**kwargs, kwarg: new}
        where = position if len(args) > position else (0 if kwarg is not None and args else None)
        if where is None:
            raise _site_error(ref, "the module was called without that input")
        new = callback(_checked(ref, args[where]))
        if new is None:
            return None
        return (*args[:where], new, *args[where + 1 :]), kwargs

    return module.register_forward_pre_hook(input_hook, with_kwargs=True)


def adapter_for(handle: ModelHandle, context: RunContext | None) -> Any:
    """The adapter that resolves ``handle``'s sites: ``context.adapter``, else the handle's adapter created through
    ``context.registry``.

    :raises GuardchainError: ``GC-INTERVENTION-SITE`` if neither is available.
    """
    if context is not None and context.adapter is not None:
        return context.adapter
    if context is not None and context.registry is not None:
        return context.registry.create(CapabilityKind.ADAPTER, handle.adapter, {}).instance
    raise intervention_error(
        InterventionErrorCode.SITE,
        f"no adapter to resolve sites of a model loaded by {handle.adapter!r}: the run context has neither an "
        "adapter nor a registry",
        hint="pass the adapter explicitly: IntervenedModel.from_sites(adapter, handle, ...)",
    )


def resolve(adapter: Any, handle: ModelHandle, sites: Sequence[str] | str) -> list[SiteRef]:
    """Every concrete site of ``sites`` (an adapter's ``resolve_sites`` on each string, in order).

    :raises GuardchainError: the adapter's own error for an unknown site (``GC-HF-SITE-UNKNOWN`` for the HF
        adapters), or ``GC-INTERVENTION-SITE`` when the adapter returns no site.
    """
    refs: list[SiteRef] = []
    for site in [sites] if isinstance(sites, str) else sites:
        found = list(adapter.resolve_sites(handle, site))
        if not found:
            raise intervention_error(InterventionErrorCode.SITE, f"the adapter resolved {site!r} to no site")
        refs.extend(found)
    return refs


class _Probed(Exception):
    """Raised from a probe hook once every site was seen, to skip the rest of the forward pass."""


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Call arguments of a model from a tensor (the first positional argument, e.g. ``input_ids``), a mapping
    (keyword arguments) or an ``(args, kwargs)`` pair."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[1], Mapping):
        return tuple(inputs[0]), dict(inputs[1])
    raise TypeError(f"model inputs must be a tensor, a mapping or an (args, kwargs) pair, not {type(inputs).__name__}")


def run_until(model: torch.nn.Module, hooks: Sequence[tuple[SiteRef, SiteCallback]], inputs: Any) -> None:
    """Run ``model`` on ``inputs`` under ``no_grad`` with ``hooks``, stopping once each hook has fired (the rest of
    the forward pass, e.g. the later blocks and the LM head, is skipped).

    :raises GuardchainError: ``GC-INTERVENTION-SITE`` if a site never ran.
    """
    pending = set(range(len(hooks)))
    handles: list[RemovableHandle] = []

    def wrap(i: int, callback: SiteCallback) -> SiteCallback:
        def fire(value: torch.Tensor) -> None:
            callback(value)
            pending.discard(i)
            if not pending:
                raise _Probed
            return None

        return fire

    try:
        for i, (ref, callback) in enumerate(hooks):
            handles.append(hook_site(find_module(model, ref), ref, wrap(i, callback)))
        args, kwargs = split_inputs(inputs)
        with torch.no_grad():
            model(*args, **kwargs)
    except _Probed:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if pending:
        missing = sorted({hooks[i][0].site for i in pending})
        raise intervention_error(InterventionErrorCode.SITE, f"sites {missing} did not run during the forward pass")


def probe_hidden_sizes(model: torch.nn.Module, refs: Sequence[SiteRef], inputs: Any = None) -> dict[str, int]:
    """The hidden size (last axis) of each site's activation, read from one short forward pass.

    :param inputs: what to run; default ``input_ids = [[0, 0]]`` on the model's device.
    """
    if inputs is None:
        device = next(model.parameters()).device
        inputs = {"input_ids": torch.zeros((1, 2), dtype=torch.long, device=device)}
    sizes: dict[str, int] = {}

    def record(ref: SiteRef) -> SiteCallback:
        def callback(value: torch.Tensor) -> None:
            sizes[ref.site] = int(value.shape[-1])
            return None

        return callback

    run_until(model, [(ref, record(ref)) for ref in refs], inputs)
    return sizes
