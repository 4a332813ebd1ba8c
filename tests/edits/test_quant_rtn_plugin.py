"""``quant_rtn`` through the registry on tiny HF models: selection, layout, tying, errors, and perplexity."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.registry import Registry
from guardchain.core.results import EditPlan
from guardchain.edits.codes import DESCRIPTIONS, EditErrorCode

README = Path(__file__).resolve().parents[2] / "edits" / "README.md"


def _edit(registry: Registry, **config: Any) -> Any:
    return registry.create("edit", "quant_rtn", config).instance


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()


def _run(registry: Registry, adapter: Any, handle: Any, **config: Any) -> tuple[Any, Any]:
    edit = _edit(registry, **config)
    plan = edit.plan(handle, adapter.describe(handle))
    return plan, edit.apply(handle, plan)


def test_gpt2_conv1d_is_quantized_per_output_column(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    name = "transformer.h.0.mlp.c_fc.weight"
    assert next(w for w in adapter.describe(handle).weights if w.name == name).out_axis == 1
    w = handle.model.get_parameter(name).detach().clone()  # (in=32, out=128)
    plan, report = _run(edits_registry, adapter, handle, bits=4, scope=["transformer.h.0.mlp.c_fc"])
    assert plan.targets == (name,) and plan.details["out_axis"] == {name: 1}
    s = w.abs().amax(dim=0, keepdim=True) / 7  # one scale per output column
    expected = torch.clamp(torch.round(w / s), -7, 7) * s
    torch.testing.assert_close(handle.model.get_parameter(name).detach(), expected, rtol=0, atol=1e-7)
    assert report.per_module[name].numel == w.numel()
    assert report.per_module[name].max_abs_error <= float(s.max()) / 2 + 1e-7
    assert report.details["scales"][name]["n_scales"] == w.shape[1]


def test_default_scope_leaves_embeddings_and_head_alone_and_keeps_tying(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    structure = adapter.describe(handle)
    untouched = {
        w.name: _digest(model.get_parameter(w.name)) for w in structure.weights if w.family in ("embed", "other")
    }
    assert "transformer.wte.weight" in untouched
    before = adapter.weights_digest(handle)
    plan, report = _run(edits_registry, adapter, handle, bits=4)
    expected_targets = sorted(w.name for w in structure.weights if w.family in ("attn", "ffn"))
    assert list(plan.targets) == expected_targets and len(expected_targets) == 8
    assert plan.details["scheme"] == "symmetric-rtn" and plan.details["bits"] == 4
    assert report.modules_changed == plan.targets
    assert report.parameters_changed == sum(model.get_parameter(n).numel() for n in plan.targets)
    assert adapter.weights_digest(handle) != before
    assert {n: _digest(model.get_parameter(n)) for n in untouched} == untouched
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_include_lm_head_quantizes_the_tied_matrix_once(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    model = handle.model
    plan, report = _run(edits_registry, adapter, handle, scope=["transformer.h.0.attn.c_proj"], include_lm_head=True)
    assert plan.targets == ("transformer.h.0.attn.c_proj.weight", "transformer.wte.weight")
    assert plan.details["tied_aliases"] == {"transformer.wte.weight": ["lm_head.weight"]}
    assert "tied_note" in plan.details
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert report.per_module["transformer.wte.weight"].max_abs_error > 0


def test_tied_names_in_an_explicit_list_are_quantized_once(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    structure = adapter.describe(handle)
    # A structure that lists both names of the tied pair (the adapter lists one): the second is skipped.
    head = next(w for w in structure.weights if w.name == "transformer.wte.weight")
    doubled = type(structure)(
        blocks=structure.blocks,
        weights=(*structure.weights, type(head)(name="lm_head.weight", family="other", shape=head.shape)),
        tied=structure.tied,
    )
    plan = _edit(edits_registry, scope=["transformer.wte", "lm_head"]).plan(handle, doubled)
    assert plan.targets == ("transformer.wte.weight",)
    assert plan.details["tied_skipped"] == {"lm_head.weight": "transformer.wte.weight"}


def test_family_scopes_and_prefix_lists_on_llama(edits_registry, load_tiny):
    adapter, handle = load_tiny("llama")
    structure = adapter.describe(handle)
    attn = _edit(edits_registry, scope="attn").plan(handle, structure)
    ffn = _edit(edits_registry, scope="ffn").plan(handle, structure)
    assert attn.targets and all(".self_attn." in n for n in attn.targets)
    assert ffn.targets and all(".mlp." in n for n in ffn.targets)
    assert set(_edit(edits_registry).plan(handle, structure).targets) == set(attn.targets) | set(ffn.targets)
    block = _edit(edits_registry, scope=["model.layers.1"]).plan(handle, structure)
    assert block.targets and all(n.startswith("model.layers.1.") for n in block.targets)
    head = _edit(edits_registry, scope=["lm_head.weight"]).plan(handle, structure)
    assert head.targets == ("lm_head.weight",)
    embeddings = _edit(edits_registry, scope="attn", include_embeddings=True).plan(handle, structure)
    assert set(embeddings.targets) - set(attn.targets) == {"model.embed_tokens.weight"}
    lm = _edit(edits_registry, scope="ffn", include_lm_head=True).plan(handle, structure)
    assert set(lm.targets) - set(ffn.targets) == {"lm_head.weight"}


def test_unknown_scope_entry_is_a_coded_error_listing_what_exists(edits_registry, load_tiny):
    adapter, handle = load_tiny("llama")
    with pytest.raises(GuardchainError) as caught:
        _edit(edits_registry, scope=["model.layers.0", "model.layers.9"]).plan(handle, adapter.describe(handle))
    assert caught.value.code == EditErrorCode.SCOPE_UNKNOWN
    assert "model.layers.9" in str(caught.value) and "model.layers.0.self_attn.q_proj.weight" in str(caught.value)


def test_bad_group_size_is_a_coded_error_naming_the_matrix(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    with pytest.raises(GuardchainError) as caught:
        _edit(edits_registry, group_size=5).plan(handle, adapter.describe(handle))
    assert caught.value.code == EditErrorCode.GROUP_SIZE
    assert re.search(r"transformer\.h\.\d\.\S+\.weight", str(caught.value))


def test_group_wise_plan_applies(edits_registry, load_tiny):
    adapter, handle = load_tiny("gpt2")
    _, per_channel = _run(edits_registry, adapter, handle, bits=4)
    adapter, handle = load_tiny("gpt2")
    _, grouped = _run(edits_registry, adapter, handle, bits=4, group_size=8)
    total = lambda r: sum(m.rms_error**2 * m.numel for m in r.per_module.values())  # noqa: E731
    assert total(grouped) < total(per_channel)


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"bits": 1}, ErrorCode.CONFIG_VALUE),
        ({"bits": 9}, ErrorCode.CONFIG_VALUE),
        ({"group_size": 0}, ErrorCode.CONFIG_VALUE),
        ({"clamp_percentile": 50}, ErrorCode.CONFIG_VALUE),
        ({"scope": "embed"}, None),
        ({"scope": []}, None),
    ],
)
def test_invalid_configs_are_rejected(edits_registry, config, code):
    with pytest.raises(GuardchainError) as caught:
        _edit(edits_registry, **config)
    if code is not None:
        assert caught.value.code == code


def test_apply_rejects_a_foreign_or_broken_plan(edits_registry, load_tiny):
    _, handle = load_tiny("gpt2")
    edit = _edit(edits_registry)
    for plan in (
        EditPlan(edit="other", targets=()),
        EditPlan(edit="quant_rtn", targets=("no.such.weight",)),
        EditPlan(edit="quant_rtn", targets=("transformer.h.0.ln_1.weight",)),
    ):
        with pytest.raises(GuardchainError) as caught:
            edit.apply(handle, plan)
        assert caught.value.code == EditErrorCode.PLAN


def test_readme_documents_every_error_code():
    text = README.read_text()
    assert set(re.findall(r"GC-EDIT-[A-Z-]+[A-Z]", text)) == {c.value for c in EditErrorCode}
    assert set(DESCRIPTIONS) == set(EditErrorCode)


# -- the committed tiny GPT-2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gpt2(edits_registry, tmp_path_factory):
    context = RunContext(run_id="edits-ppl", seed=0, out_dir=tmp_path_factory.mktemp("ppl"), registry=edits_registry)
    adapter = edits_registry.create("adapter", "hf_gpt2").instance
    context.adapter = adapter
    try:
        context.handle = adapter.load("tiny-gpt2", context)
    except GuardchainError as exc:
        pytest.skip(f"the tiny GPT-2 checkpoint cannot be loaded: {exc}")
    context.data = edits_registry.create("dataset", "kjv_excerpt", {"n_final": 16}).instance.load(context)
    metric = edits_registry.create("metric", "ppl").instance
    snapshot = adapter.snapshot(context.handle)
    values = {"fp32": metric.compute(context.handle, context.data, context).value}
    for bits in (8, 4, 2):
        _run(edits_registry, adapter, context.handle, bits=bits)
        values[f"int{bits}"] = metric.compute(context.handle, context.data, context).value
        adapter.restore(context.handle, snapshot)
    return values


def test_int8_barely_changes_perplexity_and_int4_changes_it_more(tiny_gpt2):
    ppl = tiny_gpt2
    print("tiny-gpt2 ppl (kjv_excerpt, 16 final windows):", {k: round(v, 3) for k, v in ppl.items()})
    int8 = abs(ppl["int8"] / ppl["fp32"] - 1)
    int4 = abs(ppl["int4"] / ppl["fp32"] - 1)
    assert int8 < 0.01, ppl
    assert int4 > int8, ppl
    assert ppl["int2"] > ppl["int4"], ppl
