"""The statistics of the four diagnostics on per-layer token tensors (vectorized; float64 accumulation).

Every norm is taken along the feature axis with ``norm(dim=-1)`` (never ``norm(-1)``, which is the L₋₁ "norm" of
the whole tensor: the first pitfall of the reference's checklist).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def token_norms(hidden: torch.Tensor) -> torch.Tensor:
    """Per-token Euclidean norms ``‖h_t‖₂`` of ``hidden`` ``[n_tokens, d]``, as float64 ``[n_tokens]``."""
    norms: torch.Tensor = hidden.detach().to(torch.float64).norm(dim=-1)
    return norms


def median(values: torch.Tensor) -> float:
    """The median of a 1-D tensor: the middle value, or the mean of the two middle values for an even count (the
    usual definition, as ``numpy.median``; ``torch.median`` would return the lower one)."""
    ordered = values.detach().flatten().to(torch.float64).sort().values
    n = ordered.numel()
    if n == 0:
        raise ValueError("the median of no value is undefined")
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


def frobenius(grad: torch.Tensor) -> float:
    """``‖g‖_F``: the Euclidean norm of every element of ``grad`` (tokens × features), in float64."""
    return float(grad.detach().to(torch.float64).flatten().norm())


class StabilityAccumulator:
    """Cross-batch direction stability ``s_l``, streamed: one batch's gradients at a time, O(one batch) memory.

    For batches ``k = 1 .. K`` and layer ``l``, ``u_{l,k}`` is the unit vector of the layer's gradient on batch
    ``k``; ``s_l`` is the mean over pairs ``k < k'`` of ``⟨u_{l,k}, u_{l,k'}⟩``. With ``S_l = Σ_k u_{l,k}``,
    ``‖S_l‖² = K + 2 Σ_{k<k'} ⟨u_{l,k}, u_{l,k'}⟩``, so ``s_l = (‖S_l‖² − K) / (K(K − 1))``: only the running sum
    is kept. The vector is the flattened gradient over tokens × features when every batch has the same token
    layout (same shape and mask: mode ``flattened``), else the token-mean gradient ``ḡ_{l,k} ∈ R^d`` (mode
    ``token_mean``), as the definitions in ``docs/diagnostics.md`` say. A layer where some batch's vector is
    exactly zero has no direction: its ``s_l`` is ``None``.
    """

    def __init__(self) -> None:
        self.count = 0
        self._layout: Hashable | None = None
        self._flat: list[torch.Tensor] | None = None
        self._mean: list[torch.Tensor] = []
        self._zero_flat: list[bool] = []
        self._zero_mean: list[bool] = []

    @staticmethod
    def _unit(vector: torch.Tensor) -> tuple[torch.Tensor, bool]:
        norm = vector.norm()
        if not bool(norm > 0):
            return torch.zeros_like(vector), True
        return vector / norm, False

    def add(self, grads: Sequence[torch.Tensor], layout: Hashable) -> None:
        """Add one batch: ``grads[l]`` is layer ``l``'s gradient ``[n_tokens, d]`` on the batch's counted tokens;
        ``layout`` identifies the token layout (batches with equal layouts have aligned tokens)."""
        vectors = [g.detach().to(torch.float64) for g in grads]
        if self.count == 0:
            self._layout = layout
            self._flat = [torch.zeros(v.numel(), dtype=torch.float64, device=v.device) for v in vectors]
            self._mean = [torch.zeros(v.shape[-1], dtype=torch.float64, device=v.device) for v in vectors]
            self._zero_flat = [False] * len(vectors)
            self._zero_mean = [False] * len(vectors)
        elif len(vectors) != len(self._mean):
            raise ValueError(f"batch has {len(vectors)} layers, earlier batches {len(self._mean)}")
        if self._flat is not None and layout != self._layout:
            self._flat = None  # the layouts differ: token positions do not align, fall back to token means
        for layer, vector in enumerate(vectors):
            if self._flat is not None:
                unit, zero = self._unit(vector.flatten())
                self._flat[layer] += unit
                self._zero_flat[layer] |= zero
            unit, zero = self._unit(vector.mean(dim=0))
            self._mean[layer] += unit
            self._zero_mean[layer] |= zero
        self.count += 1

    @property
    def mode(self) -> str:
        """``flattened`` or ``token_mean`` (see the class docstring)."""
        return "flattened" if self._flat is not None else "token_mean"

    def result(self) -> list[float | None]:
        """``s_l`` for every layer (clamped to [-1, 1] against rounding), ``None`` where undefined.

        :raises ValueError: with fewer than two batches.
        """
        k = self.count
        if k < 2:
            raise ValueError("cross-batch stability needs at least two batches")
        sums, zeros = (self._flat, self._zero_flat) if self._flat is not None else (self._mean, self._zero_mean)
        out: list[float | None] = []
        for total, zero in zip(sums, zeros, strict=True):
            if zero:
                out.append(None)
                continue
            value = (float(total.dot(total)) - k) / (k * (k - 1))
            out.append(min(1.0, max(-1.0, value)))
        return out
