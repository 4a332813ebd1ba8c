"""How the residual stream ``h_0 .. h_L`` is read out of a model during one forward pass.

Two contracts:

- :class:`PlainProbe`: a research network that returns its hidden states itself (the reference's contract):
  ``model(x, return_hidden=True) -> (logits, [h_0, ..., h_L])``, each ``h_l`` of shape ``[B, d]`` or ``[B, T, d]``
  and part of the autograd graph of the logits.
- :class:`SiteProbe`: any model an adapter can address. The adapter resolves ``blocks[*].input`` (the residual
  stream entering each block, ``h_0 .. h_{L-1}``) and ``blocks[-1].output`` (``h_L``, the last block's output
  before any final norm) to modules and hook points; a forward pre-hook on block 0 replaces its input with a leaf
  tensor that requires a gradient (so no weight gradient is needed), the other hooks keep references to the
  tensors as they flow. Nothing here knows a model family: GPT-2, Llama and BERT differ only in what the adapter
  returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, SiteRef
from guardchain.diagnostics.batches import PreparedBatch
from guardchain.diagnostics.codes import DiagnosticsErrorCode, diag_error

PLAIN_CONTRACT = "model(x, return_hidden=True) -> (logits, [h_0, ..., h_L])"


def _call(model: torch.nn.Module, inputs: Mapping[str, Any] | tuple[Any, ...], **extra: Any) -> Any:
    try:
        if isinstance(inputs, Mapping):
            return model(**inputs, **extra)
        return model(*inputs, **extra)
    except GuardchainError:
        raise
    except Exception as exc:
        raise diag_error(
            DiagnosticsErrorCode.FORWARD, f"the model raised on a batch: {type(exc).__name__}: {exc}", cause=exc
        ) from exc


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, ``.logits``, ``["logits"]`` or the first element.

    :raises GuardchainError: ``GC-DIAG-MODEL`` when there is none.
    """
    if isinstance(output, torch.Tensor):
        return output
    found = getattr(output, "logits", None)
    if found is None and isinstance(output, Mapping):
        found = output.get("logits")
    if found is None and isinstance(output, tuple | list) and output:
        found = output[0]
    if not isinstance(found, torch.Tensor):
        raise diag_error(DiagnosticsErrorCode.MODEL, f"no logits in the model's output ({type(output).__name__})")
    return found


class PlainProbe:
    """Hidden states returned by the model itself (:data:`PLAIN_CONTRACT`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        try:
            parameters = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):  # builtins without a signature: let the call decide
            parameters = {}  # type: ignore[assignment]
        accepts = "return_hidden" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
        if parameters and not accepts:
            raise diag_error(
                DiagnosticsErrorCode.NO_BLOCKS,
                f"{type(model).__name__}.forward takes no return_hidden argument, so its blocks cannot be addressed",
                hint=f"follow the contract {PLAIN_CONTRACT}, or diagnose a model an adapter can address "
                "(diagnose_handle)",
            )
        self.model = model

    def __call__(self, batch: PreparedBatch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        output = _call(self.model, batch.inputs, return_hidden=True)
        if not (isinstance(output, tuple | list) and len(output) == 2 and isinstance(output[1], Sequence)):
            raise diag_error(
                DiagnosticsErrorCode.NO_BLOCKS,
                f"the model returned {type(output).__name__}, not (logits, [h_0, ..., h_L])",
                hint=f"follow the contract {PLAIN_CONTRACT}",
            )
        hidden = list(output[1])
        if len(hidden) < 2 or not all(isinstance(h, torch.Tensor) for h in hidden):
            raise diag_error(
                DiagnosticsErrorCode.NO_BLOCKS,
                f"the model returned {len(hidden)} hidden states; the protocol needs tensors h_0 .. h_L with L >= 1",
                hint=f"follow the contract {PLAIN_CONTRACT}",
            )
        return logits_of(output[0]), hidden


def _read_input(ref: SiteRef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, int | str, Any]:
    """Where the block's input is (``("arg", i)`` or ``("kwarg", name)``) and its value."""
    if "input_kwarg" in ref.details:
        name = str(ref.details["input_kwarg"])
        return "kwarg", name, kwargs.get(name)
    index = int(ref.details.get("input_arg", 0))
    if index < len(args):
        return "arg", index, args[index]
    if "hidden_states" in kwargs:  # an adapter that recorded no details, a module called by keyword
        return "kwarg", "hidden_states", kwargs["hidden_states"]
    return "arg", index, None


class SiteProbe:
    """Hidden states read through an adapter's resolved sites (see the module docstring).

    :param model: the handle's module.
    :param inputs: the sites of ``blocks[*].input``, one per block in order (hook point ``input``).
    :param output: the site of ``blocks[-1].output`` (hook point ``output``).
    :raises GuardchainError: ``GC-DIAG-NO-BLOCKS`` when the sites are not block inputs and a block output, or
        name modules the model does not have.
    """

    def __init__(self, model: torch.nn.Module, inputs: Sequence[SiteRef], output: SiteRef) -> None:
        if not inputs or any(r.hook is not HookPoint.INPUT for r in inputs) or output.hook is not HookPoint.OUTPUT:
            raise diag_error(
                DiagnosticsErrorCode.NO_BLOCKS,
                "the adapter resolved blocks[*].input / blocks[-1].output to unexpected hook points",
            )
        try:
            self.blocks = [model.get_submodule(r.module_path) for r in inputs]
            self.last = model.get_submodule(output.module_path)
        except AttributeError as exc:
            raise diag_error(
                DiagnosticsErrorCode.NO_BLOCKS, f"a resolved block is not a module of the model: {exc}", cause=exc
            ) from exc
        self.model = model
        self.inputs = list(inputs)
        self.output = output

    def __call__(self, batch: PreparedBatch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        captured: dict[int, torch.Tensor] = {}
        n = len(self.blocks)

        def pre_hook(index: int) -> Any:
            ref = self.inputs[index]

            def hook(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                where, key, value = _read_input(ref, args, kwargs)
                if not isinstance(value, torch.Tensor):
                    raise diag_error(
                        DiagnosticsErrorCode.NO_BLOCKS, f"block {index} ({ref.module_path}) received no tensor input"
                    )
                if index != 0:
                    captured[index] = value
                    return None
                leaf = value.detach().requires_grad_(True)  # h_0: the gradient stops here, no weight gradients
                captured[0] = leaf
                if where == "kwarg":
                    return args, {**kwargs, str(key): leaf}
                new_args = list(args)
                new_args[int(key)] = leaf
                return tuple(new_args), kwargs

            return hook

        def post_hook(_module: torch.nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            index = self.output.details.get("tuple_index")
            value = out[int(index)] if index is not None and isinstance(out, tuple | list) else out
            if isinstance(value, tuple | list) and value:
                value = value[0]
            if isinstance(value, torch.Tensor):
                captured[n] = value

        handles = [b.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, b in enumerate(self.blocks)]
        handles.append(self.last.register_forward_hook(post_hook))
        try:
            output = _call(self.model, batch.inputs)
        finally:
            for handle in handles:
                handle.remove()
        missing = [i for i in range(n + 1) if i not in captured]
        if missing:
            raise diag_error(
                DiagnosticsErrorCode.FORWARD,
                f"the forward pass never reached the hidden state(s) h_{missing} (a block was skipped?)",
            )
        return logits_of(output), [captured[i] for i in range(n + 1)]
