"""The statistics from their definitions: norms along the feature axis, the median, and the streamed cross-batch
stability against the explicit mean over pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from guardchain.diagnostics.statistics import StabilityAccumulator, frobenius, median, token_norms


def test_token_norms_are_along_the_feature_axis_not_the_l_minus_one_norm():
    h = torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    assert token_norms(h).tolist() == [5.0, 10.0, 1.0]
    assert float(h.norm(-1)) != 5.0  # the pitfall: p = -1 over the whole tensor
    assert frobenius(h) == pytest.approx(float((h.double() ** 2).sum().sqrt()), rel=1e-15)


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0], [4.0, 1.0, 3.0, 2.0]])
def test_median_is_numpys(values):
    assert median(torch.tensor(values)) == float(np.median(values))


def explicit(vectors: list[torch.Tensor]) -> float:
    units = [v.double().flatten() / v.double().norm() for v in vectors]
    pairs = list(itertools.combinations(units, 2))
    return float(sum(float(a @ b) for a, b in pairs) / len(pairs))


def test_identical_batches_give_stability_one():
    g = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    acc = StabilityAccumulator()
    for _ in range(4):
        acc.add([g, 2.5 * g], layout="same")
    assert acc.result() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert acc.mode == "flattened"


def test_independent_random_directions_in_high_dimension_give_about_zero():
    gen = torch.Generator().manual_seed(1)
    acc = StabilityAccumulator()
    for _ in range(6):
        acc.add([torch.randn(64, 256, generator=gen)], layout="same")
    (s,) = acc.result()
    assert abs(s) < 4 / np.sqrt(64 * 256)  # the mean of 15 cosines, each with standard deviation 1/sqrt(16384)


def test_the_streamed_value_is_the_mean_over_pairs():
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(5, 8, generator=gen)
    grads = [base + 0.7 * torch.randn(5, 8, generator=gen) for _ in range(5)]
    acc = StabilityAccumulator()
    for g in grads:
        acc.add([g], layout="same")
    assert acc.result()[0] == pytest.approx(explicit(grads), abs=1e-12)


def test_unequal_layouts_fall_back_to_token_mean_gradients():
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(n, 8, generator=gen) + 1.0 for n in (5, 7, 5)]
    acc = StabilityAccumulator()
    for k, g in enumerate(grads):
        acc.add([g], layout=("shape", g.shape[0], k))
    assert acc.mode == "token_mean"
    assert acc.result()[0] == pytest.approx(explicit([g.double().mean(dim=0) for g in grads]), abs=1e-12)


def test_a_zero_gradient_has_no_direction():
    acc = StabilityAccumulator()
    acc.add([torch.ones(2, 3), torch.zeros(2, 3)], layout="x")
    acc.add([torch.ones(2, 3), torch.ones(2, 3)], layout="x")
    assert acc.result() == [pytest.approx(1.0), None]


def test_one_batch_is_not_enough():
    acc = StabilityAccumulator()
    acc.add([torch.ones(2, 3)], layout="x")
    with pytest.raises(ValueError, match="at least two"):
        acc.result()
