"""Run a model for the diagnostics: eval mode, float32 or wider, optionally no parameter gradients; all undone after.

Gradients near the 1e-7 floor underflow in float16 (smallest subnormal ~6e-8): the second pitfall of the reference's
checklist. Half-precision parameters and buffers are upcast in place to float32 for the measurement and cast back
afterwards (bfloat16 → float32 → bfloat16 and float16 → float32 → float16 are exact, so the weights come back bit
for bit); float32 and float64 tensors are left alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

HALF = (torch.float16, torch.bfloat16)


def dtype_names(model: torch.nn.Module) -> list[str]:
    """The distinct dtypes of the model's floating parameters, sorted by name (``["bfloat16"]``)."""
    names = {str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
    return sorted(names)


@contextmanager
def measurement_mode(model: torch.nn.Module, *, freeze_parameters: bool) -> Iterator[None]:
    """Inside the block the model is in eval mode with no half-precision floating tensor, and (when
    ``freeze_parameters``) no parameter requires a gradient, so a backward pass to the hidden states computes no
    weight gradient. Training mode, dtypes and ``requires_grad`` flags are restored on exit, even on error."""
    was_training = model.training
    cast: list[tuple[torch.Tensor, torch.dtype]] = []
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if tensor.is_floating_point() and tensor.dtype in HALF:
                cast.append((tensor, tensor.dtype))
                tensor.data = tensor.data.to(torch.float32)
        if freeze_parameters:
            for parameter, _ in flags:
                parameter.requires_grad_(False)
        model.eval()
        yield
    finally:
        for tensor, dtype in cast:
            tensor.data = tensor.data.to(dtype)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(was_training)
