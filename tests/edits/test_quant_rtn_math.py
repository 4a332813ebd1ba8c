"""Properties of the pure quantizer :func:`guardchain.edits.quantization.fake_quantize`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from guardchain.edits.quantization import fake_quantize, q_max_for

PROPS = settings(derandomize=True, deadline=None, max_examples=60)
_MAGNITUDE = st.floats(min_value=2.0**-20, max_value=1024.0, width=32)
_VALUE = st.one_of(st.just(0.0), _MAGNITUDE, _MAGNITUDE.map(lambda x: -x))


@st.composite
def matrices(draw: st.DrawFn) -> tuple[torch.Tensor, int, int]:
    """``(w, group_size, bits)``: a float32 ``(out, groups * group_size)`` matrix, possibly with zero rows."""
    out = draw(st.integers(1, 6))
    group_size = draw(st.integers(1, 8))
    groups = draw(st.integers(1, 4))
    values = draw(arrays(np.float32, (out, groups * group_size), elements=_VALUE))
    bits = draw(st.integers(2, 8))
    return torch.from_numpy(values), group_size, bits


def _expand(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-element scale from ``(out, groups)`` scales of an ``(out, in)`` matrix."""
    return scale.repeat_interleave(like.shape[1] // scale.shape[1], dim=1)


@PROPS
@given(matrices(), st.booleans())
def test_error_is_at_most_half_a_step(case: tuple[torch.Tensor, int, int], grouped: bool) -> None:
    w, group_size, bits = case
    wq, scale = fake_quantize(w, bits=bits, group_size=group_size if grouped else None)
    step = _expand(scale, w)
    assert torch.isfinite(wq).all()
    assert ((wq - w).abs() <= step / 2 + 1e-6 * w.abs().amax()).all()


@PROPS
@given(matrices(), st.booleans(), st.sampled_from([None, 90.0, 99.9]))
def test_every_value_lies_on_the_grid(
    case: tuple[torch.Tensor, int, int], grouped: bool, percentile: float | None
) -> None:
    w, group_size, bits = case
    q_max = q_max_for(bits)
    wq, scale = fake_quantize(w, bits=bits, group_size=group_size if grouped else None, clamp_percentile=percentile)
    step = _expand(scale, w)
    assert torch.isfinite(wq).all()
    assert (wq[step == 0] == 0).all(), "a zero-scale channel/group is zero"
    levels = torch.cat([wq[step > 0] / step[step > 0], torch.zeros(1)])
    assert (levels - levels.round()).abs().max() <= 1e-4
    assert levels.round().abs().max() <= q_max


@PROPS
@given(matrices())
def test_group_wise_error_is_within_the_per_channel_bound(case: tuple[torch.Tensor, int, int]) -> None:
    w, group_size, bits = case
    _, channel_scale = fake_quantize(w, bits=bits)
    grouped, group_scale = fake_quantize(w, bits=bits, group_size=group_size)
    assert (group_scale <= channel_scale + 1e-12).all()
    bound = channel_scale / 2 + 1e-6 * w.abs().amax()
    assert ((grouped - w).abs().amax(dim=1) <= bound[:, 0]).all()


@PROPS
@given(matrices(), st.booleans())
def test_quantizing_twice_changes_nothing(case: tuple[torch.Tensor, int, int], grouped: bool) -> None:
    w, group_size, bits = case
    size = group_size if grouped else None
    once, _ = fake_quantize(w, bits=bits, group_size=size)
    twice, _ = fake_quantize(once, bits=bits, group_size=size)
    torch.testing.assert_close(twice, once, rtol=1e-6, atol=1e-6 * float(w.abs().amax()) + 1e-30)


@PROPS
@given(matrices(), st.booleans(), st.sampled_from([None, 95.0]))
def test_out_axis_one_is_the_transpose(case: tuple[torch.Tensor, int, int], grouped: bool, pct: float | None) -> None:
    w, group_size, bits = case
    size = group_size if grouped else None
    direct, scale = fake_quantize(w, bits=bits, group_size=size, clamp_percentile=pct)
    stored_in_out, scale_t = fake_quantize(
        w.t().contiguous(), bits=bits, group_size=size, clamp_percentile=pct, out_axis=1
    )
    assert torch.equal(stored_in_out, direct.t())
    assert torch.equal(scale_t, scale)


def test_int8_error_of_a_standard_normal_matrix_is_range_over_254() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(512, 1024, generator=gen)
    wq, scale = fake_quantize(w, bits=8)
    amax = w.abs().amax(dim=1)
    torch.testing.assert_close(scale[:, 0], amax / 127)
    err = (wq - w).abs().amax(dim=1)
    assert (err <= amax / 254 * (1 + 1e-5)).all()
    relative = float((err / amax).max())
    assert 0.5 / 254 <= relative <= 1 / 254 * (1 + 1e-5), relative


def test_group_wise_beats_per_channel_on_a_normal_matrix() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(128, 512, generator=gen)
    for bits in (8, 4, 2):
        rms_channel = float((fake_quantize(w, bits=bits)[0] - w).pow(2).mean().sqrt())
        rms_group = float((fake_quantize(w, bits=bits, group_size=32)[0] - w).pow(2).mean().sqrt())
        assert rms_group < rms_channel, (bits, rms_group, rms_channel)


def test_clamp_percentile_uses_the_percentile_and_clamps() -> None:
    w = torch.tensor([[0.1, -0.2, 0.3, 10.0, -0.4]])
    wq, scale = fake_quantize(w, bits=8, clamp_percentile=75.0)
    a = float(np.percentile(np.abs(w.numpy()), 75.0))
    assert float(scale[0, 0]) == pytest.approx(a / 127)
    assert float(wq[0, 3]) == pytest.approx(a, rel=1e-6)  # clamped to +a
    assert float(wq.abs().max()) == pytest.approx(a, rel=1e-6)


def test_zero_channels_stay_zero_and_float64_is_kept() -> None:
    w = torch.zeros(3, 4, dtype=torch.float64)
    w[1] = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    wq, scale = fake_quantize(w, bits=4, group_size=2)
    assert wq.dtype == torch.float64
    assert torch.equal(wq[0], w[0]) and torch.equal(wq[2], w[2])
    assert scale[0].eq(0).all() and torch.isfinite(wq).all()


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="divide"):
        fake_quantize(torch.ones(2, 6), bits=8, group_size=4)
    with pytest.raises(ValueError, match="2-D"):
        fake_quantize(torch.ones(6), bits=8)
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(torch.ones(2, 2), bits=1)
