"""Symmetric round-to-nearest (RTN) fake quantization of one weight matrix: pure tensor code, no model.

The scheme is the standard symmetric uniform quantizer (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", with the zero point fixed at 0), applied per output
channel or, as in GPTQ (Frantar et al. 2023) and AWQ (Lin et al. 2024) practice, per group of ``group_size``
consecutive input columns within each output channel. With ``q_max = 2^(bits-1) - 1`` and, for each channel or
group ``G``::

    a = max_{i in G} |w_i|              (or the p-th percentile of |w_i| over G when clamp_percentile = p)
    s = a / q_max
    w'_i = clamp(round(w_i / s), -q_max, q_max) * s

``round`` is ``torch.round`` (half to even). A channel/group with ``s = 0`` is set to zero (no division, no NaN).
Without clamping every ``|w'_i - w_i| <= s / 2``. The result stays floating point ("fake" quantization): the
values lie on the grid ``s * {-q_max, ..., q_max}`` up to the rounding of the product ``q * s``.
"""

from __future__ import annotations

import torch


def q_max_for(bits: int) -> int:
    """``2^(bits-1) - 1``: the largest integer level of a symmetric ``bits``-bit quantizer (127 for 8 bits)."""
    if bits < 2:
        raise ValueError(f"bits must be at least 2, got {bits}")
    return int(2 ** (bits - 1) - 1)


def _percentile(values: torch.Tensor, percentile: float) -> torch.Tensor:
    """The ``percentile``-th percentile along the last axis, linear interpolation (numpy's default), keepdim.

    Written with ``sort`` rather than ``torch.quantile``, which refuses inputs of more than 2^24 elements.
    """
    n = values.shape[-1]
    ordered = values.sort(dim=-1).values
    position = percentile / 100.0 * (n - 1)
    lo = int(position // 1)
    hi = min(lo + 1, n - 1)
    frac = position - lo
    low = ordered[..., lo : lo + 1]
    high = ordered[..., hi : hi + 1]
    return low + (high - low) * frac


def fake_quantize(
    weight: torch.Tensor,
    *,
    bits: int,
    group_size: int | None = None,
    clamp_percentile: float | None = None,
    out_axis: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a 2-D weight matrix symmetric-RTN and return ``(w', scales)``.

    :param weight: the matrix, any float dtype; it is not modified.
    :param bits: bit width (``q_max = 2^(bits-1) - 1``).
    :param group_size: input columns per scale within each output channel; ``None`` = one scale per channel.
    :param clamp_percentile: if set, ``a`` is this percentile (0-100] of ``|w|`` over the channel/group instead of
        the maximum, and values beyond ``+-a`` are clamped.
    :param out_axis: the axis indexing output channels: 0 for ``(out, in)`` storage (``nn.Linear``), 1 for
        ``(in, out)`` storage (GPT-2 ``Conv1D``).
    :returns: ``w'`` in the computation dtype (float64 for float64 input, float32 otherwise) and in the layout of
        ``weight``; ``scales`` of shape ``(out, in // group_size)`` (one column when per channel).
    :raises ValueError: for a matrix that is not 2-D, a bad ``out_axis``, or a group size that does not divide
        the input dimension.
    """
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight matrix, got shape {tuple(weight.shape)}")
    if out_axis not in (0, 1):
        raise ValueError(f"out_axis must be 0 or 1, got {out_axis}")
    q_max = q_max_for(bits)
    compute = torch.float64 if weight.dtype == torch.float64 else torch.float32
    w = weight.detach().to(compute)
    if out_axis == 1:
        w = w.t()
    n_out, n_in = w.shape
    size = n_in if group_size is None else group_size
    if size < 1 or n_in % size:
        raise ValueError(f"group_size {group_size} does not divide the input dimension {n_in}")
    grouped = w.reshape(n_out, n_in // size, size)
    magnitude = grouped.abs()
    if clamp_percentile is None:
        amax = magnitude.amax(dim=-1, keepdim=True)
    else:
        amax = _percentile(magnitude, clamp_percentile)
    scale = amax / q_max
    nonzero = scale > 0
    safe = torch.where(nonzero, scale, torch.ones_like(scale))
    levels = torch.clamp(torch.round(grouped / safe), -q_max, q_max)
    quantized = torch.where(nonzero, levels * scale, torch.zeros_like(grouped))
    result = quantized.reshape(n_out, n_in)
    if out_axis == 1:
        result = result.t()
    return result.contiguous(), scale.squeeze(-1)
