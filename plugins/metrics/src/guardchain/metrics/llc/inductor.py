"""Compile options for the SGLD step on CPU: tiny matrix products become fused loops instead of BLAS calls.

Vmapped over chains, a small network's step is a handful of batched matrix products of a few thousand
multiply-adds each (a 4-3-3-4 linear network on 256 rows: ``[8, 256, 4] @ [8, 4, 3]``, 24 576 MACs). Inductor
hands every ``bmm``/``mm`` to the BLAS library (``extern_kernels.bmm``), whose per-call cost (~10–25 µs on one CPU
thread) is most of such a step. :class:`DecomposeSmallMatmuls` rewrites each product of at most
:data:`MAX_DECOMPOSED_MACS` multiply-adds as ``sum(a[..., :, :, None] * b[..., None, :, :], dim=-2)`` after the
post-grad passes, so that inductor fuses it with its neighbours into generated C++ loops (the whole step of that
network becomes one kernel). Larger products keep the BLAS call. Same product, different summation order: results
agree to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch

try:  # inductor's custom-pass API is private and recent (torch >= 2.6); without it the pass is skipped
    from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

    HAVE_CUSTOM_PASSES = True
except ImportError:  # pragma: no cover - depends on the installed torch
    CustomGraphPass = object  # type: ignore[misc,assignment]
    HAVE_CUSTOM_PASSES = False

#: Products of at most this many multiply-adds (``batch·m·k·n``) are decomposed.
MAX_DECOMPOSED_MACS = 1 << 16

_aten = torch.ops.aten


class DecomposeSmallMatmuls(CustomGraphPass):
    """Inductor post-grad pass: ``bmm``/``mm`` of at most ``max_macs`` multiply-adds on CPU -> broadcast product
    and sum (module docstring).

    :param max_macs: the size limit (``batch·m·k·n`` multiply-adds).
    """

    def __init__(self, max_macs: int = MAX_DECOMPOSED_MACS) -> None:
        self.max_macs = max_macs

    def __call__(self, graph: torch.fx.Graph) -> None:
        """Rewrite the small products of ``graph`` in place."""
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target not in (_aten.bmm.default, _aten.mm.default):
                continue
            a, b = node.args
            if not isinstance(a, torch.fx.Node) or not isinstance(b, torch.fx.Node):
                continue
            va, vb = a.meta.get("val"), b.meta.get("val")
            if not isinstance(va, torch.Tensor) or not isinstance(vb, torch.Tensor) or va.device.type != "cpu":
                continue
            if va.numel() * vb.shape[-1] > self.max_macs:
                continue
            rank = va.dim()  # 2 (mm: [m, k] @ [k, n]) or 3 (bmm: [B, m, k] @ [B, k, n])
            with graph.inserting_before(node):
                left = graph.call_function(_aten.unsqueeze.default, (a, rank))  # [..., m, k, 1]
                right = graph.call_function(_aten.unsqueeze.default, (b, rank - 2))  # [..., 1, k, n]
                product = graph.call_function(_aten.mul.Tensor, (left, right))  # [..., m, k, n]
                total = graph.call_function(_aten.sum.dim_IntList, (product, [rank - 1]))  # [..., m, n]
            node.replace_all_uses_with(total)
            graph.erase_node(node)

    def __eq__(self, other: object) -> bool:
        # torch.compile compares backends' options: an equal pass lets a new sampler reuse compiled code.
        return isinstance(other, DecomposeSmallMatmuls) and other.max_macs == self.max_macs

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.max_macs))

    def uuid(self) -> Any:
        """Inductor's cache key for this pass: this file's hash and the size limit."""
        return (get_hash_for_files((__file__,)), self.max_macs)


def compile_step(fn: Any, mode: str, device: torch.device) -> Any:
    """``torch.compile(fn)`` in ``mode`` with static shapes; on CPU with :class:`DecomposeSmallMatmuls` added to
    the mode's inductor options (``torch.compile`` takes a mode or options, not both). Without inductor's
    custom-pass API (torch < 2.6) it is a plain ``torch.compile``: same results, slower small products."""
    if device.type != "cpu" or not HAVE_CUSTOM_PASSES:
        return torch.compile(fn, mode=mode, dynamic=False)
    from torch._inductor import list_mode_options

    options: dict[str, Any] = dict(list_mode_options(mode, dynamic=False))
    options["post_grad_custom_post_pass"] = DecomposeSmallMatmuls()
    return torch.compile(fn, options=options, dynamic=False)
