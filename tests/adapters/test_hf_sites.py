"""Site strings resolve identically for GPT-2, Llama and BERT, and the hooks they name see what they claim."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, SiteRef

IN, OUT = HookPoint.INPUT, HookPoint.OUTPUT

#: site string -> [(canonical site, hook, block)], the same for every architecture (all tiny models have 2 blocks)
EXPANSIONS: dict[str, list[tuple[str, HookPoint, int]]] = {
    "blocks[0].attn.input": [("blocks[0].attn.input", IN, 0)],
    "blocks[1].attn.output": [("blocks[1].attn.output", OUT, 1)],
    "blocks[0].mlp.input": [("blocks[0].mlp.input", IN, 0)],
    "blocks[-1].mlp.output": [("blocks[1].mlp.output", OUT, 1)],
    "blocks[-2].input": [("blocks[0].input", IN, 0)],
    "blocks[1].output": [("blocks[1].output", OUT, 1)],
    " blocks[ 1 ].residual_pre ": [("blocks[1].residual_pre", IN, 1)],
    "blocks[*].residual_post": [("blocks[0].residual_post", OUT, 0), ("blocks[1].residual_post", OUT, 1)],
    "blocks[0:1].attn_out": [("blocks[0].attn_out", OUT, 0)],
    "blocks[-1:].mlp_out": [("blocks[1].mlp_out", OUT, 1)],
    "blocks[:].mlp.input": [("blocks[0].mlp.input", IN, 0), ("blocks[1].mlp.input", IN, 1)],
    "blocks[::-1].output": [("blocks[1].output", OUT, 1), ("blocks[0].output", OUT, 0)],
    "residual_pre": [("blocks[0].residual_pre", IN, 0), ("blocks[1].residual_pre", IN, 1)],
    "residual_post": [("blocks[0].residual_post", OUT, 0), ("blocks[1].residual_post", OUT, 1)],
    "attn_out": [("blocks[0].attn_out", OUT, 0), ("blocks[1].attn_out", OUT, 1)],
    "mlp_out": [("blocks[0].mlp_out", OUT, 0), ("blocks[1].mlp_out", OUT, 1)],
}

UNKNOWN = [
    "blocks[2].mlp.output",  # out of range (2 blocks)
    "blocks[-3].attn.input",
    "blocks[5:9].output",  # empty slice
    "blocks[::0].output",  # zero step
    "blocks[x].output",
    "blocks[0].mlp",  # a part needs its hook
    "blocks[0].ffn.output",
    "blocks.0.mlp.output",
    "residual",
    "no_such_thing[12345].nowhere",
    "",
    ".output",
]

#: architecture -> (raw module path inside block 1, its expected canonical site; the block list path)
RAW = {
    "gpt2": ("transformer.h.1.mlp.c_proj", "transformer.h"),
    "llama": ("model.layers.1.mlp.down_proj", "model.layers"),
    "bert": ("bert.encoder.layer.1.output.dense", "bert.encoder.layer"),
}
#: where the roles live, relative to a block
ROLES = {
    "gpt2": {"attn": "attn", "mlp.input": "mlp", "mlp.output": "mlp"},
    "llama": {"attn": "self_attn", "mlp.input": "mlp", "mlp.output": "mlp"},
    "bert": {"attn": "attention", "mlp.input": "intermediate", "mlp.output": "output.dense"},
}


def _summary(refs: list[SiteRef]) -> list[tuple[str, HookPoint, int | None]]:
    return [(r.site, r.hook, r.block) for r in refs]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_site_grammar_is_identical_across_architectures(load: Any, arch: str) -> None:
    adapter, handle = load(arch)
    blocks = adapter.describe(handle).blocks
    assert len(blocks) == 2
    modules = dict(handle.model.named_modules())
    for site, expected in EXPANSIONS.items():
        refs = list(adapter.resolve_sites(handle, site))
        assert _summary(refs) == expected, site
        for ref in refs:
            assert ref.module_path in modules, ref
            part = ref.site.split("].", 1)[1]
            role = {"attn.input": "attn", "attn.output": "attn", "attn_out": "attn", "mlp_out": "mlp.output"}.get(
                part, part
            )
            relative = ROLES[arch].get(role, "")
            assert ref.module_path == (f"{blocks[ref.block]}.{relative}" if relative else blocks[ref.block]), ref
            # a canonical site string resolves to itself
            assert adapter.resolve_sites(handle, ref.site) == [ref]

    raw, block_list = RAW[arch]
    for text, hook in ((raw, OUT), (raw + ".output", OUT), (raw + ".input", IN)):
        (ref,) = adapter.resolve_sites(handle, text)
        assert (ref.site, ref.module_path, ref.hook, ref.block) == (f"{raw}.{hook.value}", raw, hook, 1)
    (outside,) = adapter.resolve_sites(handle, block_list.rpartition(".")[0] or block_list)
    assert outside.block is None and outside.hook is OUT

    for bad in UNKNOWN:
        with pytest.raises(GuardchainError) as caught:
            adapter.resolve_sites(handle, bad)
        message = str(caught.value)
        assert caught.value.code == "GC-HF-SITE-UNKNOWN", bad
        assert "site" in message
        for listed in ("blocks[I].PART", "attn.input", "mlp.output", "residual_pre", "mlp_out", "2 blocks", "0..1"):
            assert listed in message, (bad, listed)


def test_a_module_named_output_is_a_module_first(load: Any) -> None:
    adapter, handle = load("bert")
    (ref,) = adapter.resolve_sites(handle, "bert.encoder.layer.0.output")
    assert (ref.module_path, ref.hook) == ("bert.encoder.layer.0.output", OUT)
    (ref,) = adapter.resolve_sites(handle, "bert.encoder.layer.0.output.input")
    assert (ref.module_path, ref.hook) == ("bert.encoder.layer.0.output", IN)


def test_unknown_module_paths_suggest_close_names(load: Any) -> None:
    adapter, handle = load("gpt2")
    with pytest.raises(GuardchainError) as caught:
        adapter.resolve_sites(handle, "transformer.h.1.mlp.c_prj")
    assert "transformer.h.1.mlp.c_proj" in caught.value.problems[0].hint


def _capture(model: torch.nn.Module, refs: list[SiteRef]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Hook each site as its details say and keep the activation tensor."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for ref in refs:
        module = model.get_submodule(ref.module_path)
        if ref.hook is HookPoint.OUTPUT:

            def post(_m: Any, _a: Any, out: Any, ref: SiteRef = ref) -> None:
                seen[ref.site] = out[ref.details["tuple_index"]] if "tuple_index" in ref.details else out

            handles.append(module.register_forward_hook(post))
        else:

            def pre(_m: Any, args: Any, kwargs: Any, ref: SiteRef = ref) -> None:
                key = ref.details.get("input_kwarg")
                seen[ref.site] = kwargs[key] if key else args[ref.details["input_arg"]]

            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
    return seen, handles


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_hooks_at_resolved_sites_see_the_residual_stream(load: Any, arch: str) -> None:
    adapter, handle = load(arch)
    model = handle.model
    hidden = model.config.hidden_size
    refs = [
        r
        for site in ("residual_pre", "residual_post", "attn_out", "mlp_out")
        for r in adapter.resolve_sites(handle, site)
    ]
    refs += list(adapter.resolve_sites(handle, "blocks[*].attn.input")) + list(
        adapter.resolve_sites(handle, "blocks[*].mlp.input")
    )
    seen, handles = _capture(model, refs)
    ids = torch.randint(5, 40, (2, 7), generator=torch.Generator().manual_seed(1))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        for h in handles:
            h.remove()
    assert set(seen) == {r.site for r in refs}
    for site, tensor in seen.items():
        assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, 7, hidden), (site, tensor.shape)
    # the residual stream leaving block 0 is what enters block 1
    torch.testing.assert_close(seen["blocks[0].residual_post"], seen["blocks[1].residual_pre"], rtol=0, atol=0)
    if arch != "bert":  # pre-norm blocks: out = in + attn_out + mlp_out (BERT normalises after each add)
        for i in range(2):
            total = seen[f"blocks[{i}].residual_pre"] + seen[f"blocks[{i}].attn_out"] + seen[f"blocks[{i}].mlp_out"]
            torch.testing.assert_close(seen[f"blocks[{i}].residual_post"], total, rtol=1e-5, atol=1e-5)


def test_llama_attention_input_arrives_by_keyword(load: Any) -> None:
    adapter, handle = load("llama")
    (ref,) = adapter.resolve_sites(handle, "blocks[0].attn.input")
    assert ref.details == {"input_kwarg": "hidden_states"}
    (ref,) = adapter.resolve_sites(handle, "blocks[0].attn_out")
    assert ref.details == {"tuple_index": 0}
    (ref,) = adapter.resolve_sites(handle, "blocks[0].mlp.input")
    assert ref.details == {"input_arg": 0}
