"""Static interventions against raw torch hooks (ground truth) on tiny GPT-2, Llama and BERT via their adapters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.interventions import Add, Collect, IntervenedModel, Noise, Replace, Scale, Units, Zero
from guardchain.interventions.codes import InterventionErrorCode

KINDS = ["gpt2", "llama", "bert"]
#: site -> (how to read the activation in a raw hook)
SITES = ["blocks[1].output", "blocks[0].attn.input", "blocks[1].mlp.output"]


def _raw_capture(model: torch.nn.Module, ref: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """A plain torch hook that stores the site's activation (the ground truth)."""
    seen: dict[str, torch.Tensor] = {}
    module = model.get_submodule(ref.module_path)
    if ref.hook == "output":

        def out_hook(_m: Any, _a: Any, output: Any) -> None:
            seen["x"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return seen, module.register_forward_hook(out_hook)

    def in_hook(_m: Any, args: Any, kwargs: Any) -> None:
        seen["x"] = (kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).detach().clone()

    return seen, module.register_forward_pre_hook(in_hook, with_kwargs=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("positions", [[5], [2, -1], list(range(16))], ids=["1pos", "2pos", "16pos"])
def test_collect_equals_a_raw_hook(load_tiny, tokens, kind, site, positions):
    adapter, handle = load_tiny(kind)
    batch = tokens(kind, 3, 20)
    (ref,) = adapter.resolve_sites(handle, site)
    collect = Collect()
    im = IntervenedModel.from_sites(adapter, handle, [(site, collect, Units(positions=positions))])
    seen, raw = _raw_capture(handle.model, ref)
    try:
        with torch.no_grad(), im:
            intervened = handle.model(**batch).logits
        plain = handle.model(**batch).logits
    finally:
        raw.remove()
    (got,) = collect.records[ref.site]
    expected = seen["x"][:, [p % 20 for p in positions]]
    assert got.shape == (3, len(positions), expected.shape[-1])
    assert torch.equal(got, expected)
    assert torch.equal(intervened, plain), "collect must not change the forward pass"


@pytest.mark.parametrize("kind", KINDS)
def test_collect_every_position_keeps_the_true_shape(load_tiny, tokens, kind):
    adapter, handle = load_tiny(kind)
    batch = tokens(kind, 2, 17)
    collect = Collect()
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[*].output", collect)])
    with torch.no_grad():
        im(**batch)
        im(**tokens(kind, 4, 9, seed=2))
    assert sorted(collect.records) == ["blocks[0].output", "blocks[1].output"]
    assert [tuple(t.shape) for t in collect.records["blocks[1].output"]] == [(2, 17, 32), (4, 9, 32)]


def test_collect_per_row_slice_and_heads(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    batch = tokens("gpt2", 3, 12)
    seen, raw = _raw_capture(handle.model, adapter.resolve_sites(handle, "blocks[0].output")[0])
    rows, by_slice, by_heads = Collect(), Collect(), Collect()
    im = IntervenedModel.from_sites(
        adapter,
        handle,
        [
            ("blocks[0].output", rows, Units(positions=[[0, 3], [1, 4], [2, 11]])),
            ("blocks[0].output", by_slice, Units(positions=slice(2, 10, 3))),
            ("blocks[0].output", by_heads, Units(positions=[1, -1], heads=[3, 0])),
        ],
    )
    with torch.no_grad():
        im(**batch)
    raw.remove()
    x = seen["x"]
    expected_rows = torch.stack([x[0, [0, 3]], x[1, [1, 4]], x[2, [2, 11]]])
    assert torch.equal(rows.last("blocks[0].output"), expected_rows)
    assert torch.equal(by_slice.last("blocks[0].output"), x[:, 2:10:3])
    heads = x.view(3, 12, 4, 8)[:, [1, 11]][:, :, [3, 0]]
    assert by_heads.last("blocks[0].output").shape == (3, 2, 2, 8)
    assert torch.equal(by_heads.last("blocks[0].output"), heads)


def _edited_logits(handle: Any, site_ref: Any, batch: dict[str, torch.Tensor], edit: Callable[[torch.Tensor], None]):
    """Logits with a raw forward hook that edits a clone of the site's output in place (the ground truth)."""
    module = handle.model.get_submodule(site_ref.module_path)

    def hook(_m: Any, _a: Any, output: Any) -> Any:
        x = (output[0] if isinstance(output, tuple) else output).clone()
        edit(x)
        return (x, *output[1:]) if isinstance(output, tuple) else x

    raw = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return handle.model(**batch).logits
    finally:
        raw.remove()


@pytest.mark.parametrize("kind", KINDS)
def test_static_edits_equal_raw_hook_edits(load_tiny, tokens, kind):
    adapter, handle = load_tiny(kind)
    batch = tokens(kind, 2, 10)
    site = "blocks[0].output"
    (ref,) = adapter.resolve_sites(handle, site)
    v = torch.linspace(-1, 1, 32)
    cases: list[tuple[Any, Units, Callable[[torch.Tensor], None]]] = [
        (Zero(), Units(positions=[3]), lambda x: x[:, 3].zero_()),
        (Add(v, 2.5), Units(positions=[-1]), lambda x: x[:, -1].add_(2.5 * v)),
        (Add(v, -1.0), Units(), lambda x: x.add_(-1.0 * v)),
        (Scale(0.25), Units(positions=[0, 4]), lambda x: x[:, 0::4][:, :2].mul_(0.25)),
        (Replace(v), Units(positions=[[1], [7]]), lambda x: (x[0, 1].copy_(v), x[1, 7].copy_(v))),
        (Replace(3.0), Units(positions=[2], heads=[1]), lambda x: x.view(2, 10, 4, 8)[:, 2, 1].fill_(3.0)),
    ]
    for intervention, units, edit in cases:
        expected = _edited_logits(handle, ref, batch, edit)
        im = IntervenedModel.from_sites(adapter, handle, [(site, intervention, units)])
        with torch.no_grad():
            got = im(**batch).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=intervention.plugin_name)
        assert not torch.allclose(got, handle.model(**batch).logits), f"{intervention.plugin_name} changed nothing"


def test_noise_is_seeded(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    batch = tokens("gpt2", 2, 8)
    (ref,) = adapter.resolve_sites(handle, "blocks[0].output")
    eps = torch.randn((2, 1, 32), generator=torch.Generator().manual_seed(7))

    def edit(x: torch.Tensor) -> None:
        x[:, [5]] += 0.5 * eps

    expected = _edited_logits(handle, ref, batch, edit)
    noise = Noise(0.5, seed=7)
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", noise, Units(positions=[5]))])
    with torch.no_grad():
        first = im(**batch).logits
        second = im(**batch).logits
        noise.reset()
        third = im(**batch).logits
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-6)
    assert not torch.equal(first, second), "the generator advances between calls"
    assert torch.equal(first, third)


def test_shape_and_unit_errors_are_clear(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    batch = tokens("gpt2", 2, 6)

    def run(intervention: Any, units: Units, site: str = "blocks[0].output") -> None:
        im = IntervenedModel.from_sites(adapter, handle, [(site, intervention, units)])
        with torch.no_grad():
            im(**batch)

    cases = [
        (Add(torch.ones(31)), Units(positions=[0]), InterventionErrorCode.SHAPE, "length 31"),
        (Add(torch.ones(32)), Units(positions=[0], heads=[0]), InterventionErrorCode.SHAPE, "hidden size 8"),
        (Zero(), Units(positions=[6]), InterventionErrorCode.UNITS, "out of range"),
        (Zero(), Units(positions=[[0], [1], [2]]), InterventionErrorCode.UNITS, "3 per-row position lists"),
        (Zero(), Units(positions=[[0], [1, 2]]), InterventionErrorCode.UNITS, "equal length"),
        (Zero(), Units(positions=[1, -5]), InterventionErrorCode.UNITS, "same position twice"),
        (Zero(), Units(heads=[4]), InterventionErrorCode.UNITS, "head 4"),
        (Zero(), Units(heads=[0], n_heads=5), InterventionErrorCode.UNITS, "cannot be split"),
    ]
    for intervention, units, code, text in cases:
        with pytest.raises(GuardchainError, match=text) as caught:
            run(intervention, units)
        assert caught.value.code == code


def test_a_site_the_model_lacks_is_refused(load_tiny):
    _, handle = load_tiny("gpt2")
    from guardchain.core.handles import HookPoint, SiteRef
    from guardchain.interventions import Binding

    ref = SiteRef(site="nowhere.output", module_path="transformer.nowhere", hook=HookPoint.OUTPUT)
    with pytest.raises(GuardchainError) as caught:
        IntervenedModel(handle.model, [Binding(ref, Zero())])
    assert caught.value.code == InterventionErrorCode.SITE
