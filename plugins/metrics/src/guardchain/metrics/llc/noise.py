"""Seeds: per-chain Gaussian noise and the batch order, derived from one master seed.

Chain ``c`` draws its noise from its own ``torch.Generator`` seeded with
``SeedSequence(seed, spawn_key=(0, c))`` (numpy's seed-sequence hashing: streams of different chains are
independent, and neighbouring master seeds do not give overlapping chains, devinterp issue #40). Each generator
fills blocks of ``K × d`` normals, ``K = noise_block(d)`` steps at a time, a number that depends on ``d`` only. So a
chain's noise is the same whichever chains share its vmapped call, its device thread or its chunk: results do not
depend on how chains are batched (on devices of one type; CPU and CUDA generators give different streams).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

#: Normals generated per chain per block are at most this many (bounds the noise buffer to ~4 MiB per chain).
NOISE_BLOCK_ELEMENTS = 1 << 20
#: Steps per noise block are at most this many.
MAX_NOISE_BLOCK = 64


def chain_seed(seed: int, chain: int) -> int:
    """The 63-bit seed of chain ``chain``'s noise generator."""
    state = np.random.SeedSequence(seed, spawn_key=(0, chain)).generate_state(1, dtype=np.uint64)
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
    """

    def __init__(self, seed: int, chain_ids: list[int], d: int, device: torch.device, dtype: torch.dtype) -> None:
        self.block = noise_block(d)
        self._draw_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        self._generators = []
        for chain in chain_ids:
            generator = torch.Generator(device=device)
            generator.manual_seed(chain_seed(seed, chain))
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
