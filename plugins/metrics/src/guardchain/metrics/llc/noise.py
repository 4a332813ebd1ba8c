"""Seeds: per-chain Gaussian noise and the batch order, derived from one master seed.

Chain ``c`` draws its noise from its own ``torch.Generator`` seeded with
``SeedSequence(seed, spawn_key=(0, c))`` (numpy's seed-sequence hashing: streams of different chains are
independent, and neighbouring master seeds do not give overlapping chains, devinterp issue #40). Each generator
fills blocks of ``K × d`` normals, ``K = noise_block(d)`` steps at a time, a number that depends on ``d`` only. So a
chain's noise is the same whichever chains share its vmapped call, its device thread or its chunk: results do not
depend on how chains are batched (on devices of one type; CPU and CUDA generators give different streams).

The step-size check (:mod:`~guardchain.metrics.llc.stepcheck`) runs chains at ε/2 on the *same Brownian path*:
:class:`RefinedNoise` splits each coarse step's normal ``ξ`` into the two half-step normals ``(ξ + ζ)/√2`` and
``(ξ − ζ)/√2``, with ``ζ`` from the chain's stream ``SeedSequence(seed, spawn_key=(2, c))`` (the Brownian bridge
at the midpoint of a step; the two halves are independent standard normals and sum to ``√2·ξ``, so
``√(ε/2)·(η₁ + η₂) = √ε·ξ``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

#: Normals generated per chain per block are at most this many (bounds the noise buffer to ~4 MiB per chain).
NOISE_BLOCK_ELEMENTS = 1 << 20
#: Steps per noise block are at most this many.
MAX_NOISE_BLOCK = 64


#: Stream keys: 0 the chains' noise, 1 the batch order, 2 the midpoint normals of the step-size check.
CHAIN_STREAM = 0
REFINE_STREAM = 2


def chain_seed(seed: int, chain: int, stream: int = CHAIN_STREAM) -> int:
    """The 63-bit seed of chain ``chain``'s generator for ``stream`` (``SeedSequence(seed, spawn_key=(stream,
    chain))``)."""
    state = np.random.SeedSequence(seed, spawn_key=(stream, chain)).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def noise_block(d: int) -> int:
    """Steps of noise generated per call for ``d`` sampled parameters: ``min(64, max(1, 2**20 // d))``."""
    return min(MAX_NOISE_BLOCK, max(1, NOISE_BLOCK_ELEMENTS // max(1, d)))


def batch_order(n_batches: int, steps: int, seed: int, *, shuffle: bool) -> npt.NDArray[np.int64]:
    """Index of the batch each step uses, shared by every chain: ``0, 1, …, n−1, 0, 1, …`` or, with ``shuffle``, a
    fresh permutation per epoch from ``SeedSequence(seed, spawn_key=(1,))``."""
    epochs = -(-steps // n_batches)
    if not shuffle:
        return np.tile(np.arange(n_batches, dtype=np.int64), epochs)[:steps]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    return np.concatenate([rng.permutation(n_batches) for _ in range(epochs)]).astype(np.int64)[:steps]


class ChainNoise:
    """Standard normal noise ``[C, d]`` per step for the chains ``chain_ids`` (see the module docstring).

    :param seed: the master seed.
    :param chain_ids: global indices of the chains this object serves, in row order.
    :param d: sampled parameters per chain.
    :param device: where the noise lives.
    :param dtype: its dtype (half types are drawn in float32 and rounded, so every dtype sees one stream).
    :param stream: which stream of each chain (:data:`CHAIN_STREAM` for the SGLD noise).
    """

    def __init__(
        self,
        seed: int,
        chain_ids: list[int],
        d: int,
        device: torch.device,
        dtype: torch.dtype,
        stream: int = CHAIN_STREAM,
    ) -> None:
        self.block = noise_block(d)
        self._draw_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        self._generators = []
        for chain in chain_ids:
            generator = torch.Generator(device=device)
            generator.manual_seed(chain_seed(seed, chain, stream))
            self._generators.append(generator)
        self._buffer = torch.empty((len(chain_ids), self.block, d), device=device, dtype=self._draw_dtype)
        self._cast = None if dtype == self._draw_dtype else dtype
        self._cast_buffer = None if self._cast is None else torch.empty_like(self._buffer, dtype=dtype)
        self._position = self.block

    def _refill(self) -> None:
        for row, generator in enumerate(self._generators):
            torch.randn(self._buffer.shape[1:], generator=generator, out=self._buffer[row])
        if self._cast_buffer is not None:
            self._cast_buffer.copy_(self._buffer)
        self._position = 0

    def next(self) -> torch.Tensor:
        """The noise of the next step, ``[C, d]`` (a view, valid until the block is refilled)."""
        if self._position == self.block:
            self._refill()
        source = self._buffer if self._cast_buffer is None else self._cast_buffer
        step = source[:, self._position]
        self._position += 1
        return step

    def take(self, k: int) -> torch.Tensor:
        """The noise of the next ``k`` steps, ``[C, k, d]``: row ``j`` along dim 1 is what ``k`` calls of
        :meth:`next` would give. A view into the block when the ``k`` steps lie in it (valid until the block is
        refilled), else a new tensor."""
        if self._position == self.block:
            self._refill()
        source = self._buffer if self._cast_buffer is None else self._cast_buffer
        if self._position + k <= self.block:
            steps = source[:, self._position : self._position + k]
            self._position += k
            return steps
        out = torch.empty((source.shape[0], k, source.shape[2]), device=source.device, dtype=source.dtype)
        for j in range(k):
            out[:, j] = self.next()  # copied at once: a refill overwrites the views of the block
        return out


class RefinedNoise:
    """Half-step noise ``[C, d]`` for chains run at ε/2 on the Brownian path of the ε chains (module docstring):
    fine steps ``2k`` and ``2k + 1`` get ``(ξ_k + ζ_k)/√2`` and ``(ξ_k − ζ_k)/√2``, ``ξ_k`` the ε chains' noise of
    step ``k`` (:class:`ChainNoise` on :data:`CHAIN_STREAM`), ``ζ_k`` from :data:`REFINE_STREAM`. Same interface as
    :class:`ChainNoise`; tensors are computed in the draw dtype and cast to ``dtype``.
    """

    def __init__(self, seed: int, chain_ids: list[int], d: int, device: torch.device, dtype: torch.dtype) -> None:
        draw = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        self._coarse = ChainNoise(seed, chain_ids, d, device, draw)
        self._mid = ChainNoise(seed, chain_ids, d, device, draw, stream=REFINE_STREAM)
        self._dtype = dtype
        self._second: torch.Tensor | None = None  # the odd half of the current pair, once the even one was taken

    def _pairs(self, n: int) -> torch.Tensor:
        """The next ``n`` coarse steps' half-step noise, ``[C, 2n, d]`` (a new tensor)."""
        xi, zeta = self._coarse.take(n), self._mid.take(n)
        halves = torch.empty((xi.shape[0], 2 * n, xi.shape[2]), device=xi.device, dtype=xi.dtype)
        halves[:, 0::2] = (xi + zeta) * (0.5**0.5)
        halves[:, 1::2] = (xi - zeta) * (0.5**0.5)
        return halves

    def take(self, k: int) -> torch.Tensor:
        """The noise of the next ``k`` fine steps, ``[C, k, d]`` (a new tensor)."""
        parts: list[torch.Tensor] = []
        if self._second is not None and k > 0:
            parts.append(self._second[:, None])
            self._second = None
            k -= 1
        if k:
            halves = self._pairs(-(-k // 2))
            parts.append(halves[:, :k])
            if k % 2:
                self._second = halves[:, k]
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out.to(self._dtype)

    def next(self) -> torch.Tensor:
        """The noise of the next fine step, ``[C, d]``."""
        return self.take(1)[:, 0]
