"""The vmapped SGLD sampler on one device: every chain of a call advances in one fused step.

The sampled parameters of a chain live in one flat vector ``w ∈ R^d``; the chains of a call are the rows of
``W ∈ R^{C×d}``. One step is one ``torch.func.vmap(torch.func.grad_and_value(loss_of_flat))`` call over the rows
(the minibatch and the frozen parameters are shared, not copied) followed by the update of Lau et al. 2023
(arXiv 2308.12108), eq. (9) with a localization term::

    W ← W − (ε/2)·[nβ·∇L_B(W) + γ·(W − w*)] + √ε·Ξ,     Ξ ~ N(0, I) per chain (noise.py)

written in place as ``W.lerp_(w*, εγ/2)``, ``W += −(εnβ/2)·G``, ``W += √ε·Ξ``. The loss recorded for a step is
``L_B`` at the pre-step parameters: the same forward pass that gave the gradient, as devinterp and
canonical-interp record it. Losses go into a preallocated ``[C, steps]`` tensor on the device, and so does the
distance ``‖w − w*‖₂`` at the same pre-step parameters (one reduction per step, for the basin and equilibration
checks of :mod:`~guardchain.metrics.llc.diagnostics`): no host sync per step. With ``compile`` the step (gradient
and update) is one ``torch.compile``d graph taking ``(ε, γ, nβ)`` as a tensor, so a grid over them reuses one
compilation.

**Fused steps.** For a small model the step is mostly per-call overhead (the Python loop, dynamo's guard check and
the compiled call's dispatch, the trace write, the noise slice): about 0.2 ms for 8 chains of a 33-parameter
network. So with ``compile`` and uniform batches (:class:`~guardchain.metrics.llc.data.StackedBatches`), ``K =
fuse_steps`` consecutive steps are unrolled into one compiled graph: it takes the stacked batches, the ``[K]``
batch ids of those steps, their noise ``[C, K, d]`` (a view of the noise block) and returns the new ``W`` and the
losses ``[C, K]``, written into the trace with one copy. The math and the noise stream are those of single steps,
so results do not depend on ``K`` beyond float rounding. Steps that cannot be fused (a MALA step, the steps left
before it or at the end when fewer than ``K`` remain) run eagerly; with non-uniform batches (a ragged last batch,
non-tensor leaves) every step is a single compiled step. In eager mode ``fuse_steps > 1`` runs the same blocks
eagerly (no speed-up, same bookkeeping: tests use it). On CPU tiny matrix products are compiled into fused loops
instead of BLAS calls (:mod:`~guardchain.metrics.llc.inductor`).

Every ``mala_every``-th step also estimates the Metropolis-adjusted acceptance probability of the transition
(MALA; Furman & Lau 2024, arXiv 2402.07843): with ``U(w) = nβ·L_B(w) + (γ/2)·‖w − w*‖²`` on the step's batch,
``log α = U(w) − U(w') + (‖w' − w + (ε/2)∇U(w)‖² − ‖w − w' + (ε/2)∇U(w')‖²)/(2ε)`` and the acceptance is
``min(1, α)``: one extra forward and backward at the proposal ``w'`` on the *same* batch (devinterp uses the next
step's batch, which mixes minibatch noise into the ratio), computed in float64.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc.data import Batches, LossFn, StackedBatches, call_model
from guardchain.metrics.llc.inductor import compile_step
from guardchain.metrics.llc.noise import ChainNoise, RefinedNoise

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ParamLayout:
    """Where each sampled parameter sits in the flat vector.

    :ivar names: sampled parameter names, in ``named_parameters`` order (tied parameters once).
    :ivar shapes: their shapes.
    :ivar sizes: their element counts; the flat vector is their concatenation.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    sizes: tuple[int, ...]

    @property
    def d(self) -> int:
        """Sampled parameters (elements)."""
        return sum(self.sizes)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Name -> view of ``flat`` (shape ``[d]``) with the parameter's shape."""
        parts = torch.split(flat, list(self.sizes))
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}

    def flatten(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The flat vector ``[d]`` of ``values``."""
        return torch.cat([values[name].reshape(-1) for name in self.names])


def select_parameters(model: torch.nn.Module, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the floating-point parameters into (sampled, frozen) names.

    A pattern selects a parameter when it equals its name, is a module-path prefix of it (``transformer.h.1``
    selects ``transformer.h.1.mlp.c_fc.weight``) or matches it as an ``fnmatch`` pattern. No pattern: all.

    :raises GuardchainError: ``GC-METRIC-LLC-MODEL`` (no floating parameter), ``GC-METRIC-LLC-PARAMS`` (a pattern
        matches nothing).
    """
    names = [name for name, p in model.named_parameters() if p.is_floating_point()]
    if not names:
        raise GuardchainError.single(MetricErrorCode.LLC_MODEL, "the model has no floating-point parameter")
    if not patterns:
        return names, []
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if n == pattern or n.startswith(pattern + ".") or fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            raise GuardchainError.single(
                MetricErrorCode.LLC_PARAMS,
                f"params entry {pattern!r} selects no floating-point parameter",
                expected=f"a name, module prefix or pattern such as {names[0]!r}",
            )
        chosen |= hits
    return [n for n in names if n in chosen], [n for n in names if n not in chosen]


@dataclass
class ChunkTrace:
    """What one call of :meth:`SGLDKernel.run` records, for chains in row order.

    :ivar losses: ``[C, steps]`` minibatch loss at each step's pre-step parameters.
    :ivar distance_trace: ``[C, steps]`` ``‖w − w*‖₂`` at the same pre-step parameters (0 at step 0).
    :ivar mala_steps: the steps where the acceptance was estimated, ``[M]``.
    :ivar acceptance: ``[C, M]`` MALA acceptance probability of those steps' transitions.
    :ivar distance: ``[C, M]`` ``‖w − w*‖₂`` after those steps.
    :ivar moved: ``[C]`` whether the chain's final parameters differ from w* at all.
    """

    losses: Floats
    distance_trace: Floats
    mala_steps: npt.NDArray[np.int64]
    acceptance: Floats
    distance: Floats
    moved: npt.NDArray[np.bool_]


class SGLDKernel:
    """The sampler for one model copy on one device (see the module docstring).

    :param model: the module, on ``device``; it is called through ``functional_call`` and never modified.
    :param layout: the sampled parameters.
    :param w0: ``[d]`` the flat sampled parameters at w*, in the sampling dtype.
    :param frozen: every other parameter and floating buffer, in the sampling dtype.
    :param loss_fn: ``(outputs, targets) -> scalar`` mean loss of a batch.
    :param compile_mode: a ``torch.compile`` mode, or ``None`` for eager.
    :param fuse_steps: ``K``, steps per call of :meth:`_fused_block` (one compiled graph under ``compile``) when
        the batches are uniform (module docstring). In eager mode ``K > 1`` runs the same block eagerly (no
        speed-up; it exercises the bookkeeping).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layout: ParamLayout,
        w0: torch.Tensor,
        frozen: dict[str, torch.Tensor],
        loss_fn: LossFn,
        compile_mode: str | None,
        fuse_steps: int = 1,
    ) -> None:
        self.model = model
        self.layout = layout
        self.w0 = w0
        self.frozen = frozen
        self.loss_fn = loss_fn
        self.device = w0.device
        self.dtype = w0.dtype
        self.compile_mode = compile_mode
        self._vgrad = torch.func.vmap(
            torch.func.grad_and_value(self.loss_of_flat), in_dims=(0, None, None), randomness="different"
        )
        self.fuse_steps = max(1, fuse_steps)
        step: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = self._fused_step
        block: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = self._fused_block
        if compile_mode is None:
            self._step, self._block = step, block
        else:
            self._step = compile_step(step, compile_mode, self.device)
            self._block = compile_step(block, compile_mode, self.device)

    def loss_of_flat(self, flat: torch.Tensor, inputs: Any, targets: Any) -> torch.Tensor:
        """The mean loss of a batch with the sampled parameters set to ``flat`` (``[d]``)."""
        outputs = call_model(self.model, (self.layout.unflatten(flat), self.frozen), inputs)
        return self.loss_fn(outputs, targets)

    def batch_loss(self, inputs: Any, targets: Any) -> torch.Tensor:
        """The loss at w* of one batch (no gradient), checked to be a scalar.

        :raises GuardchainError: ``GC-METRIC-LLC-DATA`` when the model cannot be called on the batch,
            ``GC-METRIC-LLC-LOSS`` when the loss is not a scalar tensor.
        """
        try:
            with torch.no_grad():
                value = self.loss_of_flat(self.w0, inputs, targets)
        except GuardchainError:
            raise
        except Exception as exc:
            raise GuardchainError.single(
                MetricErrorCode.LLC_DATA, f"calling the model and loss on a batch failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise GuardchainError.single(
                MetricErrorCode.LLC_LOSS, f"the loss must return a scalar tensor (the batch mean), got {shape}"
            )
        return value

    def _fused_step(
        self, w: torch.Tensor, inputs: Any, targets: Any, noise: torch.Tensor, coef: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Functional step for ``torch.compile``: ``coef = [εγ/2, −εnβ/2, √ε]``; returns (new W, losses, pre-step
        distances ``‖w − w*‖₂``)."""
        grads, losses = self._vgrad(w, inputs, targets)
        offset = self.w0 - w
        updated = w + coef[0] * offset + coef[1] * grads + coef[2] * noise
        return updated, losses, torch.linalg.vector_norm(offset, dim=1)

    def _fused_block(
        self,
        w: torch.Tensor,
        stacked: StackedBatches,
        ids: torch.Tensor,
        noise: torch.Tensor,
        coef: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``K = len(ids)`` steps unrolled (one graph under ``torch.compile``): step ``k`` uses batch ``ids[k]``
        and noise ``noise[:, k]`` (``[C, K, d]``); returns (W after the ``K`` steps ``[C, d]``, losses ``[C, K]``
        and distances ``‖w − w*‖₂`` ``[C, K]`` at each step's pre-step parameters). Same update as
        :meth:`_fused_step`."""
        losses, distances = [], []
        for k in range(ids.shape[0]):
            inputs, targets = stacked.select(ids[k : k + 1])
            grads, loss = self._vgrad(w, inputs, targets)
            offset = self.w0 - w
            w = w + coef[0] * offset + coef[1] * grads + coef[2] * noise[:, k]
            losses.append(loss)
            distances.append(torch.linalg.vector_norm(offset, dim=1))
        return w, torch.stack(losses, dim=1), torch.stack(distances, dim=1)

    def _eager_step(
        self, w: torch.Tensor, inputs: Any, targets: Any, noise: torch.Tensor, scalars: tuple[float, float, float]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grads, losses = self._vgrad(w, inputs, targets)
        w.lerp_(self.w0, scalars[0])
        w.add_(grads, alpha=scalars[1])
        w.add_(noise, alpha=scalars[2])
        return grads, losses

    def _mala_step(
        self,
        w: torch.Tensor,
        inputs: Any,
        targets: Any,
        noise: torch.Tensor,
        eps: float,
        gamma: float,
        nbeta: float,
        scalars: tuple[float, float, float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        before = w.detach().clone()
        grads, losses = self._eager_step(w, inputs, targets, noise, scalars)
        grads_after, losses_after = self._vgrad(w, inputs, targets)
        f64 = torch.float64
        w_prev, w_new, w0 = before.to(f64), w.to(f64), self.w0.to(f64)
        d_prev, d_new = w_prev - w0, w_new - w0
        u_prev = nbeta * losses.to(f64) + 0.5 * gamma * (d_prev * d_prev).sum(1)
        u_new = nbeta * losses_after.to(f64) + 0.5 * gamma * (d_new * d_new).sum(1)
        forward = w_new - w_prev + 0.5 * eps * (nbeta * grads.to(f64) + gamma * d_prev)
        backward = w_prev - w_new + 0.5 * eps * (nbeta * grads_after.to(f64) + gamma * d_new)
        log_alpha = u_prev - u_new + ((forward * forward).sum(1) - (backward * backward).sum(1)) / (2 * eps)
        acceptance = torch.exp(torch.clamp(log_alpha, max=0.0))
        acceptance = torch.where(torch.isnan(log_alpha), torch.zeros_like(acceptance), acceptance)
        return losses, acceptance, torch.linalg.vector_norm(d_new, dim=1)

    def run(
        self,
        batches: Batches,
        order: npt.NDArray[np.int64],
        chain_ids: list[int],
        *,
        seed: int,
        epsilon: float,
        gamma: float,
        nbeta: float,
        mala_every: int,
        refined: bool = False,
    ) -> ChunkTrace:
        """Advance the chains ``chain_ids`` (from w*) for ``len(order)`` steps; step ``i`` uses batch
        ``order[i]``. With ``refined`` the noise is :class:`~guardchain.metrics.llc.noise.RefinedNoise`: the
        half-step noise of the chains' Brownian path (the caller halves ``epsilon`` and repeats each batch)."""
        steps, n_chains = len(order), len(chain_ids)
        w = self.w0.expand(n_chains, -1).clone()
        trace = torch.empty((n_chains, steps), device=self.device, dtype=torch.float64)
        dist_trace = torch.empty_like(trace)
        source = RefinedNoise if refined else ChainNoise
        noise = source(seed, chain_ids, self.layout.d, self.device, self.dtype)
        scalars = (0.5 * epsilon * gamma, -0.5 * epsilon * nbeta, math.sqrt(epsilon))
        coef = torch.tensor(scalars, device=self.device, dtype=self.dtype)
        mala_steps = [i for i in range(steps) if mala_every and (i + 1) % mala_every == 0]
        acceptance = torch.empty((n_chains, len(mala_steps)), device=self.device, dtype=torch.float64)
        distance = torch.empty_like(acceptance)
        cudagraphs = self.compile_mode is not None and self.device.type == "cuda" and "overhead" in self.compile_mode
        stacked = batches.stacked if self.fuse_steps > 1 or self.compile_mode is not None else None
        k_steps = self.fuse_steps
        ids = None if stacked is None else torch.as_tensor(order, dtype=torch.int64, device=self.device)
        pending_mala = list(reversed(mala_steps))  # next MALA step last
        with torch.no_grad():
            column, i = 0, 0
            while i < steps:
                next_mala = pending_mala[-1] if pending_mala else steps
                if ids is not None and stacked is not None and i + k_steps <= next_mala:
                    if cudagraphs:
                        torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
                    updated, block_losses, block_dist = self._block(
                        w, stacked, ids[i : i + k_steps], noise.take(k_steps), coef
                    )
                    # CUDA graphs reuse their output memory at the next replay: copy; elsewhere keep the output.
                    w = w.copy_(updated) if cudagraphs else updated
                    trace[:, i : i + k_steps] = block_losses
                    dist_trace[:, i : i + k_steps] = block_dist
                    i += k_steps
                    continue
                inputs, targets = batches.items[int(order[i])]
                xi = noise.next()
                if i == next_mala:
                    pending_mala.pop()
                    dist_trace[:, i] = torch.linalg.vector_norm(w - self.w0, dim=1)
                    losses, acceptance[:, column], distance[:, column] = self._mala_step(
                        w, inputs, targets, xi, epsilon, gamma, nbeta, scalars
                    )
                    column += 1
                elif self.compile_mode is None or ids is not None:
                    dist_trace[:, i] = torch.linalg.vector_norm(w - self.w0, dim=1)
                    _, losses = self._eager_step(w, inputs, targets, xi, scalars)
                else:
                    if cudagraphs:
                        torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
                    updated, losses, dist_trace[:, i] = self._step(w, inputs, targets, xi, coef)
                    w.copy_(updated)
                trace[:, i] = losses
                i += 1
            moved = (w != self.w0).any(dim=1)
        return ChunkTrace(
            losses=trace.cpu().numpy(),
            distance_trace=dist_trace.cpu().numpy(),
            mala_steps=np.asarray(mala_steps, dtype=np.int64),
            acceptance=acceptance.cpu().numpy(),
            distance=distance.cpu().numpy(),
            moved=moved.cpu().numpy(),
        )
