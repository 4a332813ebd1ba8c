"""Streaming state: the Chan covariance against a two-pass float64 computation, exact merges, the bottom-k sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.geometry.accumulate import CovarianceAccumulator, RouterCounter, TokenReservoir, sample_keys


def _rows(seed: int = 0, n: int = 1000, d: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    x[:, 0] += 300.0  # a massive-activation channel: a large mean next to unit-scale spread
    x[:, 3] *= 50.0
    return x.astype(np.float32)


def _stream(acc: CovarianceAccumulator, x: np.ndarray, sizes: list[int]) -> None:
    start = 0
    for size in sizes:
        acc.update(torch.from_numpy(x[start : start + size]))
        start += size
    assert start == len(x)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_the_streamed_covariance_equals_a_two_pass_float64_computation():
    x = _rows()
    acc = CovarianceAccumulator(x.shape[1])
    _stream(acc, x, [1, 7, 300, 2, 190, 500])
    exact = np.cov(x.astype(np.float64), rowvar=False)  # two-pass, float64
    assert acc.n == len(x)
    assert _relative(acc.covariance().numpy(), exact) < 1e-10
    assert np.allclose(acc.mean.numpy(), x.astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)


def test_merging_two_halves_equals_one_pass():
    x = _rows(1)
    one = CovarianceAccumulator(x.shape[1])
    _stream(one, x, [250, 250, 250, 250])
    left, right = CovarianceAccumulator(x.shape[1]), CovarianceAccumulator(x.shape[1])
    _stream(left, x[:333], [100, 233])
    _stream(right, x[333:], [667])
    left.merge(right)
    assert left.n == one.n
    assert _relative(left.covariance().numpy(), one.covariance().numpy()) < 1e-12
    assert np.allclose(left.mean.numpy(), one.mean.numpy(), rtol=1e-13, atol=1e-12)


def test_merging_into_an_empty_accumulator_and_an_empty_batch_change_nothing():
    x = _rows(2, n=50)
    acc = CovarianceAccumulator(x.shape[1])
    _stream(acc, x, [50])
    empty = CovarianceAccumulator(x.shape[1])
    empty.merge(acc)
    acc.update(torch.zeros((0, x.shape[1])))
    acc.merge(CovarianceAccumulator(x.shape[1]))
    assert empty.n == acc.n == 50
    assert torch.equal(empty.m2, acc.m2)
    with pytest.raises(GuardchainError) as caught:
        acc.merge(CovarianceAccumulator(3))
    assert caught.value.code == "GC-GEOM-MERGE"
    assert torch.isnan(CovarianceAccumulator(3).covariance()).all()


def _keys_in_order(seed: int, sizes: list[int]) -> torch.Tensor:
    return sample_keys(seed, 0, sum(sizes))


def test_keys_depend_on_the_seed_and_the_position_only():
    whole = sample_keys(5, 0, 1000)
    parts = torch.cat([sample_keys(5, 0, 3), sample_keys(5, 3, 400), sample_keys(5, 403, 597)])
    assert torch.equal(whole, parts)
    assert whole.dtype == torch.float64 and bool(((whole >= 0) & (whole < 1)).all())
    assert not torch.equal(whole, sample_keys(6, 0, 1000))
    assert abs(float(whole.mean()) - 0.5) < 0.03 and abs(float(whole.var()) - 1 / 12) < 0.01
    assert len(set(whole.tolist())) == 1000


@pytest.mark.parametrize("sizes", [[3, 4, 50, 1, 2, 40], [200], [1] * 30, [5, 0, 5]])
def test_the_sample_is_the_k_tokens_with_the_smallest_keys(sizes):
    k = 10
    reservoir = TokenReservoir(k, seed=7)
    for size in sizes:
        reservoir.offer(size)
    keys = _keys_in_order(7, [s for s in sizes if s])
    expected = torch.sort(torch.topk(keys, min(k, keys.numel()), largest=False).indices).values
    assert torch.equal(torch.sort(reservoir.tokens).values, expected)
    assert reservoir.seen == sum(sizes)


def test_slots_receive_the_rows_that_enter():
    k = 6
    reservoir = TokenReservoir(k, seed=3)
    rows_by_slot = torch.full((k,), -1, dtype=torch.int64)
    first = 0
    for size in [4, 5, 9, 2]:
        update = reservoir.offer(size)
        rows_by_slot[update.slots] = update.rows + first  # what a site does with its activations
        first += size
    assert torch.equal(rows_by_slot, reservoir.tokens)


def test_every_token_is_equally_likely_to_be_sampled():
    n, k, trials = 20, 5, 2000
    counts = np.zeros(n)
    for seed in range(trials):
        reservoir = TokenReservoir(k, seed=seed)
        for size in (3, 9, 8):
            reservoir.offer(size)
        counts[reservoir.tokens.numpy()] += 1
    frequency = counts / trials
    assert np.all(np.abs(frequency - k / n) < 0.04), frequency  # binomial sd ~0.0097 per token


def test_two_reservoirs_merge_into_the_bottom_k_of_both():
    a, b = TokenReservoir(8, seed=1), TokenReservoir(8, seed=2)
    for size in (5, 6):
        a.offer(size)
    b.offer(4)
    keys = torch.cat([_keys_in_order(1, [5, 6]), _keys_in_order(2, [4])])
    kept_self, kept_other = a.merge_plan(b)
    expected = torch.sort(torch.topk(keys, 8, largest=False).indices).values
    assert torch.equal(torch.sort(a.tokens).values, expected)  # b's tokens are numbered after a's 11
    assert len(kept_self) + len(kept_other) == 8 and a.seen == 15
    with pytest.raises(GuardchainError):
        a.merge_plan(TokenReservoir(3, seed=0))


def test_router_counts_add_up_and_merge():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.5]])
    counter = RouterCounter(top_k=2)
    counter.update(logits)
    assert counter.to_host().tolist() == [2, 0, 2, 2]
    other = RouterCounter(top_k=2, experts=4)
    other.update(logits[:1])
    counter.merge(other)
    assert counter.to_host().tolist() == [3, 0, 3, 2]
    assert RouterCounter(top_k=2, experts=3).to_host().tolist() == [0, 0, 0]
