"""The Python API on plain modules, checked against closed forms: a stack whose block l multiplies by c_l, loss
scaling, identical batches, padding, half precision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guardchain.diagnostics import DiagnosticThresholds, diagnose


class ScaleStack(nn.Module):
    """``h_0 = x W_e`` (a trainable embedding), ``h_{l+1} = c_l h_l``, logits ``h_L W_o``: the contract
    ``model(x, return_hidden=True) -> (logits, [h_0 .. h_L])``."""

    def __init__(self, factors, width=8, classes=3, dtype=torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.embed = nn.Parameter(torch.randn(width, width, generator=gen, dtype=dtype))
        self.out = nn.Parameter(torch.randn(width, classes, generator=gen, dtype=dtype) / 100)
        self.factors = list(factors)

    def forward(self, x, return_hidden=False):
        h = x @ self.embed
        hidden = [h]
        for c in self.factors:
            h = c * h
            hidden.append(h)
        logits = h @ self.out
        return (logits, hidden) if return_hidden else logits


def batches(n=4, rows=16, width=8, classes=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(rows, width, generator=gen, dtype=dtype), torch.randint(0, classes, (rows,), generator=gen))
        for _ in range(n)
    ]


@pytest.mark.parametrize(("factors", "fires"), [((2.0, 32.0, 0.5), False), ((4.0, 64.0, 2.0), True)])
def test_a_stack_of_multipliers_has_growth_max_c_exactly_and_fires_iff_above_50(factors, fires):
    report = diagnose(ScaleStack(factors), batches())
    assert report.growth == max(factors)  # powers of two: exact in floating point
    assert report.block_growth == tuple(factors)
    assert report.residual_exploded is fires
    assert ("residual stream exploded" in report.reasons) is fires


def test_growth_equals_the_largest_factor_in_float64_for_any_factors():
    factors = (1.7, 49.9, 0.3, 3.1)
    report = diagnose(ScaleStack(factors), batches())
    assert report.block_growth == pytest.approx(factors, rel=1e-13)
    assert not report.residual_exploded
    assert report.growth_from_first == pytest.approx(1.7 * 49.9, rel=1e-13)


def test_the_gradients_are_those_of_the_mean_cross_entropy():
    model = ScaleStack((2.0, 3.0))
    data = batches()
    report = diagnose(model, data)
    x, y = data[0]
    logits, hidden = model(x, return_hidden=True)
    grads = torch.autograd.grad(nn.functional.cross_entropy(logits, y), hidden)
    assert report.bp_grad_norms == pytest.approx([float(g.norm()) for g in grads], rel=1e-12)
    assert report.residual_norms[1] == pytest.approx(2 * report.residual_norms[0], rel=1e-14)


def test_scaling_the_loss_scales_every_gradient_norm_by_the_same_factor():
    model, data = ScaleStack((2.0, 3.0, 0.5)), batches()
    mean = diagnose(model, data, loss_fn=lambda z, y: nn.functional.cross_entropy(z, y))
    scaled = diagnose(model, data, loss_fn=lambda z, y: 7.0 * nn.functional.cross_entropy(z, y))
    default = diagnose(model, data)
    assert default.bp_grad_norms == pytest.approx(mean.bp_grad_norms, rel=1e-14)  # the default is the mean
    assert [s / m for s, m in zip(scaled.bp_grad_norms, mean.bp_grad_norms, strict=True)] == pytest.approx(
        [7.0] * 4, rel=1e-12
    )
    assert scaled.per_layer_stability == pytest.approx(mean.per_layer_stability, abs=1e-12)
    assert default.setup["reduction"].startswith("mean cross-entropy")
    assert "loss_fn" in scaled.setup["reduction"]
    summed = diagnose(model, data, loss_fn=lambda z, y: nn.functional.cross_entropy(z, y, reduction="sum"))
    assert summed.bp_grad_norms == pytest.approx([16 * g for g in mean.bp_grad_norms], rel=1e-12)  # N = 16


def test_identical_batches_give_stability_one_and_fire():
    data = batches(n=1) * 3
    report = diagnose(ScaleStack((2.0, 3.0)), data, require_disjoint=False)
    assert report.per_layer_stability == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert report.drift_dominated and report.verdict == "needs walk-back: BP grad direction is drift-dominated"


def test_padding_never_enters_a_statistic():
    class Tokens(nn.Module):
        """Per-token hidden states ``[B, T, d]`` and per-token logits."""

        def __init__(self):
            super().__init__()
            self.stack = ScaleStack((2.0, 3.0))

        def forward(self, x, return_hidden=False):
            logits, hidden = self.stack(x, return_hidden=True)
            return (logits, hidden) if return_hidden else logits

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 6, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (4, 6), generator=gen)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:, 4:] = False
    padded = x.clone()
    padded[:, 4:] = 1e6  # padding with absurd values and labels
    labels = y.clone()
    labels[:, 4:] = 2
    model = Tokens()
    data = [(x[:2], y[:2], mask[:2]), (x[2:], y[2:], mask[2:])]
    with_pad = [(padded[:2], labels[:2], mask[:2]), (padded[2:], labels[2:], mask[2:])]
    cut = [(x[:2, :4], y[:2, :4]), (x[2:, :4], y[2:, :4])]
    a, b, c = diagnose(model, data), diagnose(model, with_pad), diagnose(model, cut)
    assert a.residual_norms == b.residual_norms == pytest.approx(c.residual_norms, rel=1e-14)
    assert a.bp_grad_norms == pytest.approx(c.bp_grad_norms, rel=1e-12)
    assert b.bp_grad_norms == pytest.approx(c.bp_grad_norms, rel=1e-12)
    assert a.setup["tokens_per_batch"] == [8, 8]


def test_half_precision_models_are_measured_in_float32_and_restored_bit_for_bit():
    tiny = 1e-5  # output weights ~1e-7 make the per-token gradients ~1e-8: below float16's smallest subnormal
    model = ScaleStack((1.0, 1.0), dtype=torch.float16)
    with torch.no_grad():
        model.out.mul_(tiny)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = batches(dtype=torch.float16)
    report = diagnose(model, data)
    assert report.setup["compute_dtype"] == "float32" and report.setup["model_dtypes"] == ["float16"]
    assert 0 < report.grad_token_median[-1] < 6e-8  # every element would be 0 in float16
    assert report.grad_at_floor  # a real value below the floor, not an underflowed zero
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float16 and torch.equal(value, before[key]), key
    assert model.training  # the mode is restored too


def test_thresholds_can_be_given_as_a_mapping():
    report = diagnose(ScaleStack((4.0,)), batches(), thresholds={"residual_explosion_ratio": 3.0})
    assert report.thresholds == DiagnosticThresholds(residual_explosion_ratio=3.0) and report.residual_exploded


def test_the_headline_accuracy_is_measured_unless_given():
    model, data = ScaleStack((2.0,)), batches()
    measured = diagnose(model, data, frozen_baseline_acc=0.0)
    hits = sum(int((model(x).argmax(-1) == y).sum()) for x, y in data)
    assert measured.headline_acc == hits / 64 and measured.setup["headline_source"] == "measured"
    given = diagnose(model, data, headline_acc=0.9, frozen_baseline_acc=0.89, batch_ids=[["a"] * 16] * 4, seed=7)
    assert given.setup["headline_source"] == "given" and given.frozen_undercut
    assert given.seeds == {"batches": 7} and given.batch_ids[0][0] == "a"
