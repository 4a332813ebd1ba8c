"""Fused SGLD steps: the noise blocks, stacked batches, the small-matmul compile pass, and results that do not depend
on how many steps one graph takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guardchain.metrics.llc import LlcSampler, estimate_llc
from guardchain.metrics.llc.data import collate
from guardchain.metrics.llc.inductor import DecomposeSmallMatmuls
from guardchain.metrics.llc.noise import ChainNoise, noise_block

from .conftest import mlp, mlp_data

pytestmark = pytest.mark.filterwarnings("ignore:llc ")


def test_take_gives_the_steps_next_would_give_across_block_boundaries():
    d, chains = 50, [0, 3]
    block = noise_block(d)
    single = ChainNoise(7, chains, d, torch.device("cpu"), torch.float32)
    expected = torch.stack([single.next().clone() for _ in range(3 * block)], dim=1)  # [C, 3·block, d]
    fused = ChainNoise(7, chains, d, torch.device("cpu"), torch.float32)
    parts, taken = [], 0
    for k in (5, 7, block, 1, 9, block + 3):  # inside a block, straddling, longer than a block
        parts.append(fused.take(k).clone())
        taken += k
    got = torch.cat(parts, dim=1)
    assert got.shape == (2, taken, d)
    torch.testing.assert_close(got, expected[:, :taken], rtol=0, atol=0)


def test_uniform_batches_are_stacked_and_their_items_are_views():
    x, y = mlp_data()
    batches = collate((x, y), unpack=None, batch_size=16, device=torch.device("cpu"), dtype=torch.float64)
    assert batches.stacked is not None
    leaf_x, leaf_y = batches.stacked.leaves
    assert leaf_x is not None and leaf_y is not None
    assert leaf_x.shape == (3, 16, 3) and leaf_y.shape == (3, 16, 2)
    inputs, _ = batches.items[2]
    assert inputs.data_ptr() == leaf_x[2].data_ptr()  # a view: the data are stored once
    picked_x, picked_y = batches.stacked.select(torch.tensor([2]))
    torch.testing.assert_close(picked_x, x[32:48], rtol=0, atol=0)
    torch.testing.assert_close(picked_y, y[32:48], rtol=0, atol=0)
    only_x = collate(x, unpack=None, batch_size=16, device=torch.device("cpu"), dtype=torch.float64)
    assert only_x.stacked is not None and only_x.stacked.leaves[1] is None  # targets None in every batch
    dicts = collate(
        [{"a": x[i : i + 16], "b": y[i : i + 16]} for i in range(0, 48, 16)],
        unpack=None, batch_size=None, device=torch.device("cpu"), dtype=torch.float64,
    )  # fmt: skip
    assert dicts.stacked is not None
    ragged = collate((x[:40], y[:40]), unpack=None, batch_size=16, device=torch.device("cpu"), dtype=torch.float64)
    assert ragged.stacked is None  # 16, 16, 8 rows: single steps


@pytest.mark.parametrize("shapes", [((4, 16, 3), (4, 3, 5)), ((16, 3), (3, 5))])
def test_small_matmuls_become_a_broadcast_sum(shapes):
    a, b = torch.randn(shapes[0], dtype=torch.float64), torch.randn(shapes[1], dtype=torch.float64)
    op = torch.bmm if len(shapes[0]) == 3 else torch.mm
    gm = torch.fx.experimental.proxy_tensor.make_fx(op, tracing_mode="fake")(a, b)
    targets = {node.target for node in gm.graph.nodes}
    assert {torch.ops.aten.bmm.default, torch.ops.aten.mm.default} & targets
    DecomposeSmallMatmuls()(gm.graph)
    gm.recompile()
    targets = {node.target for node in gm.graph.nodes}
    assert not {torch.ops.aten.bmm.default, torch.ops.aten.mm.default} & targets
    torch.testing.assert_close(gm(a, b), op(a, b), rtol=1e-12, atol=1e-12)
    big = torch.fx.experimental.proxy_tensor.make_fx(op, tracing_mode="fake")(a, b)
    DecomposeSmallMatmuls(max_macs=8)(big.graph)  # over the limit: kept
    assert {torch.ops.aten.bmm.default, torch.ops.aten.mm.default} & {node.target for node in big.graph.nodes}
    assert DecomposeSmallMatmuls() == DecomposeSmallMatmuls()  # equal passes: a new sampler reuses compiled code


COMMON = dict(loss="mse", batch_size=16, chains=3, draws=57, burnin=6, epsilon=1e-3, gamma=2.0, seed=4, mala_every=10)


@pytest.mark.parametrize("fuse_steps", [4, 7, 64])
def test_fused_blocks_do_not_change_the_result(fuse_steps):
    """Eager blocks of k steps (the bookkeeping of the compiled blocks: batch ids, noise views, trace columns, MALA
    steps in between, leftovers) against single steps, float64."""
    model, data = mlp(), mlp_data()
    single = estimate_llc(model, data, dtype="float64", **COMMON)
    fused = estimate_llc(model, data, dtype="float64", fuse_steps=fuse_steps, **COMMON)
    np.testing.assert_allclose(fused.loss_trace, single.loss_trace, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fused.diagnostics.acceptance, single.diagnostics.acceptance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fused.llc_per_chain, single.llc_per_chain, rtol=1e-9)
    split = estimate_llc(model, data, dtype="float64", fuse_steps=fuse_steps, chains_per_call=2, **COMMON)
    np.testing.assert_allclose(split.loss_trace, single.loss_trace, rtol=1e-12, atol=1e-14)


@pytest.mark.heavy
def test_compiled_blocks_match_single_eager_steps():
    """Compiled, float64: blocks of 1 and 5 steps and the eager single steps give one result; a ragged last batch
    falls back to single compiled steps."""
    model, data = mlp(), mlp_data()
    eager = estimate_llc(model, data, dtype="float64", **COMMON)
    for k in (1, 5):
        compiled = LlcSampler(model, data, dtype="float64", compile=True, fuse_steps=k, **COMMON).estimate()
        np.testing.assert_allclose(compiled.loss_trace, eager.loss_trace, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(compiled.llc_per_chain, eager.llc_per_chain, rtol=1e-7, atol=1e-9)
    x, y = data
    ragged = (x[:40], y[:40])
    eager = estimate_llc(model, ragged, dtype="float64", **COMMON)
    compiled = estimate_llc(model, ragged, dtype="float64", compile=True, fuse_steps=5, **COMMON)
    np.testing.assert_allclose(compiled.loss_trace, eager.loss_trace, rtol=1e-9, atol=1e-12)
