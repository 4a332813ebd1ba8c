"""Streaming state of a geometry collection: float64 covariance by the batched Chan merge, a seeded bottom-k
reservoir of token rows shared by every site, and router assignment counts. All of it stays on the device the
activations come from; nothing is copied to the host until :meth:`CovarianceAccumulator.to_host`.

Covariance (Chan, Golub & LeVeque 1979, *Updating formulae and a pairwise algorithm for computing sample
variances*; the batched form of Welford's update). For a batch ``X`` of ``n_b`` rows (float64):

    μ_b  = mean of the rows of X;   M2_b = (X − μ_b)ᵀ (X − μ_b)
    δ    = μ_b − μ
    M2  ← M2 + M2_b + δ δᵀ · n·n_b / (n + n_b)
    μ   ← μ + δ · n_b / (n + n_b)
    n   ← n + n_b;                  Cov = M2 / (n − 1)

Two accumulators merge by the same three lines with ``(n_b, μ_b, M2_b)`` taken from the other one, so sharded or
multi-process collection gives the one-pass answer up to float64 rounding.

Sample (bottom-k sampling, a vectorized form of reservoir sampling; Efraimidis & Spirakis 2006 with equal weights):
the ``i``-th unmasked token of the stream gets the key ``u_i = splitmix64(seed, i) / 2⁶⁴ ∈ [0, 1)``
(:func:`sample_keys`, SplitMix64 of Steele, Lea & Flood 2014: a counter-based generator, so a key depends on the seed
and the token's position only — not on the batching, the device or the activations); the sample is the ``k`` tokens
with the smallest keys, a uniform ``k``-subset of all tokens seen. Every site therefore samples the *same* tokens
(rows are token-aligned across sites), and two models run on the same windows with the same seed sample the same
tokens (baseline and subject rows are aligned too). Two reservoirs merge exactly by keeping the ``k`` smallest keys of
both; give each shard of a sharded collection its own seed so that their keys are independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from guardchain.geometry.codes import GeometryErrorCode, geometry_error

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(state: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def sample_keys(seed: int, first: int, n: int) -> torch.Tensor:
    """Keys ``u_i ∈ [0, 1)`` (float64, CPU) of stream positions ``first … first + n − 1`` under ``seed``: the 53 top
    bits of SplitMix64's output for state ``mix(seed) + (i + 1)·γ`` (uint64 arithmetic wraps modulo 2⁶⁴)."""
    with np.errstate(over="ignore"):
        base = _splitmix(np.array([seed], dtype=np.uint64) * _GAMMA + _GAMMA)[0]
        positions = np.arange(first + 1, first + n + 1, dtype=np.uint64)
        bits = _splitmix(base + positions * _GAMMA) >> np.uint64(11)
    return torch.from_numpy(bits.astype(np.float64) * 2.0**-53)


class CovarianceAccumulator:
    """Running ``n``, mean ``(d,)`` and ``M2 = Σ (x − μ)(x − μ)ᵀ`` ``(d, d)`` in float64 on one device.

    :param dim: the hidden size ``d``.
    :param device: where the state lives (the activations' device).
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        self.dim = dim
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros((dim, dim), dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        """The device the state lives on."""
        return self.mean.device

    def update(self, rows: torch.Tensor) -> None:
        """Add the rows of ``rows`` ``(n_b, d)`` (any floating dtype; cast to float64 here)."""
        n_b = int(rows.shape[0])
        if n_b == 0:
            return
        x = rows.to(dtype=torch.float64)
        mean_b = x.mean(dim=0)
        centred = x - mean_b
        self._combine(n_b, mean_b, torch.mm(centred.T, centred))

    def _combine(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        n = self.n
        total = n + n_b
        delta = mean_b - self.mean
        self.m2.add_(m2_b)
        if n:
            self.m2.addr_(delta, delta, alpha=n * n_b / total)
        self.mean.add_(delta, alpha=n_b / total)
        self.n = total

    def merge(self, other: CovarianceAccumulator) -> None:
        """Fold ``other`` (same ``d``) into this accumulator, exactly as if its rows had been added here.

        :raises GuardchainError: ``GC-GEOM-MERGE`` for a different hidden size.
        """
        if other.dim != self.dim:
            raise geometry_error(
                GeometryErrorCode.MERGE, f"cannot merge a {other.dim}-wide accumulator into a {self.dim}-wide one"
            )
        if other.n:
            self._combine(other.n, other.mean.to(self.device), other.m2.to(self.device))

    def covariance(self) -> torch.Tensor:
        """``M2 / (n − 1)`` ``(d, d)`` float64 (NaN-filled for fewer than 2 rows)."""
        if self.n < 2:
            return torch.full_like(self.m2, float("nan"))
        return self.m2 / (self.n - 1)


@dataclass(frozen=True)
class ReservoirUpdate:
    """Which rows of a batch enter the sample and where.

    :ivar rows: indices, among the batch's unmasked tokens in stream order, of the tokens that enter (CPU int64).
    :ivar slots: the reservoir slot each of them takes (CPU int64, same length).
    """

    rows: torch.Tensor
    slots: torch.Tensor

    def __len__(self) -> int:
        return int(self.rows.numel())


class TokenReservoir:
    """The keys and token indices of a seeded bottom-``k`` sample (CPU); sites keep their rows in the same slots.

    :param size: ``k``, the sample size.
    :param seed: seeds the key generator.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.keys = torch.empty(0, dtype=torch.float64)
        self.tokens = torch.empty(0, dtype=torch.int64)
        self.seen = 0

    @property
    def filled(self) -> int:
        """Slots in use (``min(k, tokens seen)``)."""
        return int(self.keys.numel())

    def offer(self, n_new: int) -> ReservoirUpdate:
        """Draw keys for the next ``n_new`` tokens of the stream and say which of them enter the sample."""
        first = self.seen
        self.seen += n_new
        empty = torch.empty(0, dtype=torch.int64)
        if n_new == 0 or self.size == 0:
            return ReservoirUpdate(empty, empty)
        new_keys = sample_keys(self.seed, first, n_new)
        filled = self.filled
        free = self.size - filled
        if n_new <= free:
            slots = torch.arange(filled, filled + n_new)
            rows = torch.arange(n_new)
        else:
            combined = torch.cat([self.keys, new_keys])
            kept = torch.zeros(combined.numel(), dtype=torch.bool)
            kept[torch.topk(combined, self.size, largest=False, sorted=False).indices] = True
            rows = torch.nonzero(kept[filled:]).flatten()
            evicted = torch.nonzero(~kept[:filled]).flatten()
            slots = torch.cat([evicted, torch.arange(filled, self.size)])[: rows.numel()]
        if free > 0:
            grow = min(free, int(rows.numel()))
            self.keys = torch.cat([self.keys, torch.empty(grow, dtype=torch.float64)])
            self.tokens = torch.cat([self.tokens, torch.empty(grow, dtype=torch.int64)])
        self.keys[slots] = new_keys[rows]
        self.tokens[slots] = rows + first
        return ReservoirUpdate(rows, slots)

    def merge_plan(self, other: TokenReservoir) -> tuple[torch.Tensor, torch.Tensor]:
        """Merge ``other`` into this reservoir (bottom-``k`` of both key sets; ``other``'s token indices are
        shifted past this stream's, as if its tokens came after). Returns ``(kept_self, kept_other)``: the slots of
        each side that survive, in the order the merged slots hold them (``kept_self`` first).

        :raises GuardchainError: ``GC-GEOM-MERGE`` for different sample sizes.
        """
        if other.size != self.size:
            raise geometry_error(
                GeometryErrorCode.MERGE, f"cannot merge a reservoir of {other.size} into one of {self.size}"
            )
        combined = torch.cat([self.keys, other.keys])
        keep = min(self.size, int(combined.numel()))
        chosen = torch.topk(combined, keep, largest=False, sorted=False).indices
        kept_self = torch.sort(chosen[chosen < self.filled]).values
        kept_other = torch.sort(chosen[chosen >= self.filled]).values - self.filled
        self.keys = torch.cat([self.keys[kept_self], other.keys[kept_other]])
        self.tokens = torch.cat([self.tokens[kept_self], other.tokens[kept_other] + self.seen])
        self.seen += other.seen
        return kept_self, kept_other


class RouterCounter:
    """Per-expert counts of top-``k`` assignments of one router, ``(E,)`` int64 on the logits' device.

    :param experts: ``E``; ``None`` takes it from the first logits' last axis.
    :param top_k: experts chosen per token.
    """

    def __init__(self, top_k: int, experts: int | None = None) -> None:
        self.top_k = top_k
        self.experts = experts
        self.counts: torch.Tensor | None = None

    def update(self, logits: torch.Tensor) -> None:
        """Count the top-``k`` experts of each row of ``logits`` ``(tokens, E)``."""
        experts = self.experts or int(logits.shape[-1])
        self.experts = experts
        chosen = torch.topk(logits, min(self.top_k, int(logits.shape[-1])), dim=-1).indices.flatten()
        counts = torch.bincount(chosen, minlength=experts)[:experts]
        self.counts = counts if self.counts is None else self.counts + counts

    def merge(self, other: RouterCounter) -> None:
        """Add ``other``'s counts."""
        if other.counts is None:
            return
        if self.counts is None:
            self.counts, self.experts = other.counts.clone(), other.experts
            return
        if other.counts.shape != self.counts.shape:
            raise geometry_error(GeometryErrorCode.MERGE, "cannot merge router counts over different expert counts")
        self.counts = self.counts + other.counts.to(self.counts.device)

    def to_host(self) -> npt.NDArray[np.int64]:
        """The counts as a numpy array (zeros of length ``E`` before any update)."""
        if self.counts is None:
            return np.zeros(self.experts or 0, dtype=np.int64)
        return self.counts.to("cpu").numpy().astype(np.int64)
