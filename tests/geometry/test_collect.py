"""Collection on tiny GPT-2 / Llama through the HF adapters: ground truth from the model's own hidden states,
padding, early stop, hook hygiene, coexistence with interventions, and coded errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, SiteRef
from guardchain.geometry import analyze, summarize
from guardchain.geometry.collect import Collector
from guardchain.geometry.config import GeometrySettings
from guardchain.geometry.metric import window_batches


def _batches(windows, batch_size=4, pad_id=0):
    return list(window_batches(windows.tokens, batch_size, pad_id))


def _collect(adapter, handle, sites, batches, *, sample_size=16, seed=0):
    refs = [r for s in sites for r in adapter.resolve_sites(handle, s)]
    return Collector(handle.model, refs, sample_size=sample_size, seed=seed).collect(batches)


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_block_inputs_equal_the_models_hidden_states_two_pass(kind, load_tiny, make_windows):
    adapter, handle = load_tiny(kind)
    windows = make_windows(kind, n=6, short=(1, 4))
    batches = _batches(windows, batch_size=3)
    state = _collect(adapter, handle, ["blocks[*].input"], batches)
    hidden: list[list[np.ndarray]] = [[], []]
    with torch.no_grad():
        for batch in batches:
            out = handle.model(**batch, output_hidden_states=True, use_cache=False)
            keep = batch["attention_mask"].bool()
            for i in range(2):
                hidden[i].append(out.hidden_states[i][keep].double().numpy())
    for i, site in enumerate(state.sites):
        rows = np.concatenate(hidden[i])
        assert site.covariance is not None and site.covariance.n == len(rows) == windows.n_tokens
        assert _relative(site.covariance.covariance().numpy(), np.cov(rows, rowvar=False)) < 1e-10


def test_skipped_positions_leave_the_statistics_but_not_the_model(load_tiny, make_windows):
    adapter, handle = load_tiny("llama")
    windows = make_windows("llama", n=4, short=(2,))
    batches = _batches(windows, batch_size=4)
    refs = adapter.resolve_sites(handle, "blocks[0].output")
    state = Collector(handle.model, refs, sample_size=8, seed=0, skip_positions=2).collect(batches)
    with torch.no_grad():
        out = handle.model(**batches[0], output_hidden_states=True, use_cache=False)
    keep = batches[0]["attention_mask"].bool().clone()
    keep[:, :2] = False
    rows = out.hidden_states[1][keep].double().numpy()  # the last entry has the final norm applied
    assert state.tokens == state.sites[0].covariance.n == windows.n_tokens - 2 * 4 == len(rows)
    assert _relative(state.sites[0].covariance.covariance().numpy(), np.cov(rows, rowvar=False)) < 1e-10


def test_padding_changes_nothing(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    windows = make_windows(n=6, short=(0, 3, 5))
    sites = ["blocks[*].output"]
    one_by_one = _collect(adapter, handle, sites, _batches(windows, batch_size=1))
    padded = _collect(adapter, handle, sites, _batches(windows, batch_size=6, pad_id=7))
    other_pad = _collect(adapter, handle, sites, _batches(windows, batch_size=6, pad_id=0))

    def garbage_on_padding(_module, _args, output):  # a user hook writing huge values where the mask is 0
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[~garbage_on_padding.mask] = 1e6

    batches = _batches(windows, batch_size=6, pad_id=7)
    garbage_on_padding.mask = batches[0]["attention_mask"].bool()
    spy = handle.model.get_submodule("transformer.h.0").register_forward_hook(garbage_on_padding)
    garbage = _collect(adapter, handle, sites, batches)
    spy.remove()
    by_token_a = torch.argsort(one_by_one.reservoir.tokens)
    by_token_b = torch.argsort(padded.reservoir.tokens)
    for a, b, c, g in zip(one_by_one.sites, padded.sites, other_pad.sites, garbage.sites, strict=True):
        assert a.covariance.n == b.covariance.n == windows.n_tokens
        # batched float32 forwards round differently from one-by-one ones (~1e-7), the accumulation does not
        assert _relative(b.covariance.covariance().numpy(), a.covariance.covariance().numpy()) < 1e-6
        assert torch.allclose(a.rows[by_token_a], b.rows[by_token_b], atol=1e-5)
        for other in (c, g):
            assert torch.equal(b.covariance.m2, other.covariance.m2) and torch.equal(b.rows, other.rows)
    assert torch.equal(one_by_one.reservoir.tokens.sort().values, padded.reservoir.tokens.sort().values)


def test_sites_that_see_one_tensor_get_equal_samples_and_spectra(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    result = analyze(
        handle, _batches(make_windows()), adapter=adapter, sites=["blocks[0].output", "blocks[1].input"], sample_size=32
    )
    first, second = result.sites
    assert (first, second) == ("blocks[0].output", "blocks[1].input")
    np.testing.assert_array_equal(result.samples[first], result.samples[second])
    assert result.metrics[0]["d_pr"] == pytest.approx(result.metrics[1]["d_pr"], rel=1e-12)
    novelty = result.novelty[0]
    assert novelty["linear_cka"] == pytest.approx(1.0) and novelty["layer_cosine_sim"] == pytest.approx(1.0)
    assert novelty["feature_subspace_novelty"] == pytest.approx(0.0, abs=1e-6)


def test_merging_two_shards_equals_one_pass(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    batches = _batches(make_windows(n=8), batch_size=2)
    whole = _collect(adapter, handle, ["blocks[*].input"], batches, sample_size=0)
    left = _collect(adapter, handle, ["blocks[*].input"], batches[:1], sample_size=0)
    left.merge(_collect(adapter, handle, ["blocks[*].input"], batches[1:], sample_size=0))
    assert left.tokens == whole.tokens and left.batches == whole.batches
    for a, b in zip(left.sites, whole.sites, strict=True):
        assert _relative(a.covariance.covariance().numpy(), b.covariance.covariance().numpy()) < 1e-12
    settings = GeometrySettings(families=["spectrum"], sample_size=0)
    merged, single = summarize(left, settings), summarize(whole, settings)
    for key in single.eigenvalues:
        np.testing.assert_allclose(merged.eigenvalues[key], single.eigenvalues[key], rtol=1e-9, atol=1e-12)


def test_sharded_samples_merge_into_the_bottom_k_of_both(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    batches = _batches(make_windows(n=8), batch_size=4)
    left = _collect(adapter, handle, ["blocks[0].input"], batches[:1], sample_size=20, seed=1)
    right = _collect(adapter, handle, ["blocks[0].input"], batches[1:], sample_size=20, seed=2)
    rows = torch.cat([left.sites[0].rows, right.sites[0].rows])
    keys = torch.cat([left.reservoir.keys, right.reservoir.keys])
    left.merge(right)
    chosen = torch.topk(keys, 20, largest=False).indices
    assert sorted(left.reservoir.keys.tolist()) == sorted(keys[chosen].tolist())
    assert sorted(map(tuple, left.sites[0].rows.tolist())) == sorted(map(tuple, rows[chosen].tolist()))


def test_the_forward_stops_after_the_last_hooked_site(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    adapter.resolve_sites(handle, "blocks[0].output")  # the adapter's one-off probe forward runs before the spies
    ran: list[str] = []
    spies = [
        model.get_submodule(p).register_forward_hook(lambda *_, p=p: ran.append(p))
        for p in ("transformer.h.0", "transformer.h.1", "transformer.ln_f", "lm_head")
    ]
    _collect(adapter, handle, ["blocks[0].mlp.output"], _batches(make_windows(n=4), batch_size=2))
    assert "transformer.h.1" not in ran and "lm_head" not in ran and "transformer.ln_f" not in ran
    assert "transformer.h.0" not in ran  # stopped inside block 0, right after its MLP
    ran.clear()
    _collect(adapter, handle, ["blocks[1].output"], _batches(make_windows(n=4), batch_size=2))
    assert ran == ["transformer.h.0", "transformer.h.1"] * 2, "block 1's output hook fired, then nothing else"
    for spy in spies:
        spy.remove()


def test_only_its_own_hooks_are_removed_and_user_hooks_keep_firing(load_tiny, make_windows, hook_counts):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    fired: list[str] = []
    block = model.get_submodule("transformer.h.0")
    user_post = block.register_forward_hook(lambda *_: fired.append("post"))
    user_pre = block.register_forward_pre_hook(lambda *_: fired.append("pre"))
    adapter.resolve_sites(handle, "blocks[0].output")  # the adapter's one-off probe runs before counting
    fired.clear()
    before = hook_counts(model)
    analyze(
        handle, _batches(make_windows(n=2), batch_size=1), adapter=adapter, sites=["blocks[*].output"], sample_size=8
    )
    assert fired == ["pre", "post"] * 2
    assert hook_counts(model) == before
    with pytest.raises(GuardchainError):  # an error in the middle of a pass removes the hooks too
        analyze(
            handle,
            [{"input_ids": torch.ones((1, 3), dtype=torch.long)}],
            adapter=adapter,
            sites=["blocks[*].output"],
            sample_size=8,
        )
    assert hook_counts(model) == before
    user_post.remove()
    user_pre.remove()
    assert hook_counts(model) == {}


def test_an_attached_intervention_is_seen_and_survives(load_tiny, make_windows, geo_registry, geo_context, hook_counts):
    pytest.importorskip("guardchain.interventions")
    adapter, handle = load_tiny("gpt2")
    batches = _batches(make_windows(n=4), batch_size=2)
    plain = analyze(handle, batches, adapter=adapter, sites=["blocks[0].output"], sample_size=24)
    vector = [0.25 * (i % 5) for i in range(32)]
    add = geo_registry.create("intervention", "add", {"vector": vector}).instance
    attached = add.attach(handle, ["blocks[0].output"], geo_context(adapter, handle))
    with_hooks = hook_counts(handle.model)
    steered = analyze(handle, batches, adapter=adapter, sites=["blocks[0].output"], sample_size=24)
    assert hook_counts(handle.model) == with_hooks, "the intervention's hooks are still attached"
    attached.remove()
    site = "blocks[0].output"
    np.testing.assert_allclose(steered.samples[site], plain.samples[site] + np.array(vector, np.float32), atol=1e-5)
    np.testing.assert_allclose(steered.eigenvalues["layer_00"], plain.eigenvalues["layer_00"], rtol=1e-6)  # a shift


def test_the_python_api_works_on_a_bare_module_with_module_paths(load_tiny, make_windows):
    _adapter, handle = load_tiny("llama")
    batches = _batches(make_windows("llama", n=4), batch_size=2)
    result = analyze(
        handle.model,
        batches,
        sites=["model.layers.*.mlp", "model.layers.1.input", "blocks[-1].output"],
        sample_size=16,
        diagnostics=["normalization_ablation"],
    )
    assert result.sites == [
        "model.layers.0.mlp.output",
        "model.layers.1.mlp.output",
        "model.layers.1.input",
        "blocks[1].output",
    ]
    assert [row["layer"] for row in result.metrics] == [0, 1, 1, 1]
    assert list(result.eigenvalues) == ["site_00", "site_01", "site_02", "site_03"]  # blocks repeat: keyed by site
    assert len(result.diagnostics["normalization_ablation"]) == 4 * 4
    assert result.metadata["tokens_observed"] == 64 and result.metadata["batches_observed"] == 2


def test_max_tokens_stops_after_whole_batches(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    batches = _batches(make_windows(n=8), batch_size=2)  # 32 tokens per batch
    result = analyze(handle, batches, adapter=adapter, max_tokens=40, sample_size=8)
    assert result.metadata["tokens_observed"] == 64 and result.metadata["batches_observed"] == 2


def _code(excinfo) -> str:
    return str(excinfo.value.code)


def test_bad_input_gets_coded_errors(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    batches = _batches(make_windows(n=2), batch_size=2)
    with pytest.raises(GuardchainError) as caught:
        analyze(handle, batches, adapter=adapter, sites=["blocks[7].output"])
    assert _code(caught) == "GC-GEOM-SITE" and caught.value.problems[0].details["cause_code"] == "GC-HF-SITE-UNKNOWN"
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, batches, sites=["transformer.h.9"])
    assert _code(caught) == "GC-GEOM-SITE"
    with pytest.raises(GuardchainError) as caught:
        analyze(handle, batches, adapter=adapter, sample_size=33)  # 32 tokens
    assert _code(caught) == "GC-GEOM-SAMPLE-SIZE" and "larger than the 32 tokens" in str(caught.value)
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, batches, router=True)
    assert _code(caught) == "GC-GEOM-NO-ROUTER"
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, batches, sample_size=-1, bogus=3)
    assert _code(caught) == "GC-GEOM-SETTINGS" and "bogus" in str(caught.value) and "sample_size" in str(caught.value)
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, ["not a batch"])
    assert _code(caught) == "GC-GEOM-DATA"
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, [{"input_ids": torch.ones((2, 4), dtype=torch.long), "attention_mask": torch.ones(2)}])
    assert _code(caught) == "GC-GEOM-DATA"
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, batches, sites=["transformer.wte.input"])  # token ids are not activations
    assert _code(caught) == "GC-GEOM-ACTIVATION"
    with pytest.raises(GuardchainError) as caught:
        analyze(
            handle.model,
            [
                {
                    "input_ids": torch.ones((1, 4), dtype=torch.long),
                    "attention_mask": torch.zeros((1, 4), dtype=torch.long),
                }
            ],
        )
    assert _code(caught) == "GC-GEOM-EMPTY"
    with pytest.raises(GuardchainError) as caught:
        analyze(torch.nn.ReLU(), batches)
    assert _code(caught) == "GC-GEOM-MODEL"
    handle.model.unused = torch.nn.Linear(32, 32)
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, batches, sites=["unused", "blocks[0].output"], sample_size=4)
    assert _code(caught) == "GC-GEOM-SITE-SILENT" and "'unused.output'" in str(caught.value)


def test_non_finite_activations_are_the_kernels_nonfinite_error(load_tiny, make_windows):
    _adapter, handle = load_tiny("gpt2")
    with torch.no_grad():
        handle.model.transformer.h[0].mlp.c_proj.bias[0] = float("nan")
    with pytest.raises(GuardchainError) as caught:
        analyze(handle.model, _batches(make_windows(n=2)), sites=["blocks[1].input"], sample_size=4)
    assert _code(caught) == "GC-MODEL-NONFINITE"


def test_a_collector_ignores_forwards_outside_its_pass(load_tiny):
    _adapter, handle = load_tiny("gpt2")
    ref = SiteRef("blocks[0].input", "transformer.h.0", HookPoint.INPUT, 0)
    collector = Collector(handle.model, [ref], sample_size=0, seed=0)
    state = collector.collect([])
    assert state.tokens == 0 and state.sites[0].covariance is None
