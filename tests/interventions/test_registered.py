"""The registered interventions through the kernel: attach in chains, artifacts, saved weights, adapter lookup."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from guardchain.core.config import validate_chain
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.runner import ChainRunner
from guardchain.interventions import IntervenedModel, RotatedSpace, Units, save_interventions
from guardchain.interventions.codes import InterventionErrorCode

WORDS = ["the", "of", "and", "to", "in", "that", "he", "shall", "unto", "for", "lord", "they", "be", "is"]


def test_a_chain_attaches_interventions_that_change_later_steps(iv_registry, tiny_dirs, tmp_path):
    rng = random.Random(0)
    (tmp_path / "a.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(600)))
    raw = {
        "version": 1,
        "name": "interventions-in-a-chain",
        "seed": 0,
        "model": {"ref": str(tiny_dirs["gpt2"]), "adapter": "hf_gpt2"},
        "data": {"dataset": "text", "config": {"paths": [str(tmp_path / "a.txt")], "seq_len": 16, "n_final": 4}},
        "steps": [
            {"metric": "ppl", "id": "plain"},
            {
                "intervention": "collect",
                "id": "collect",
                "sites": ["blocks[0].output"],
                "config": {"positions": [-1], "artifact": "acts.safetensors"},
            },
            {"intervention": "zero", "id": "ablate", "sites": ["blocks[1].mlp.output"], "config": {"positions": "0:8"}},
            {"metric": "ppl", "id": "ablated"},
        ],
    }
    record = ChainRunner(iv_registry).run(validate_chain(raw, iv_registry), out_dir=tmp_path / "run")
    assert record.status == "ok", record.problems
    plain, _, _, ablated = (step.result for step in record.steps)
    assert plain["value"] != ablated["value"]
    acts = load_file(str(tmp_path / "run" / "acts.safetensors"))
    assert acts and all(t.shape[1:] == (1, 32) for t in acts.values())
    assert all(name.startswith("blocks[0].output/") for name in acts)


def test_registered_rotated_loads_trained_weights(load_tiny, iv_registry, iv_context, tokens, tmp_path):
    adapter, handle = load_tiny("gpt2")
    trained = RotatedSpace(32, 4, seed=11)
    with torch.no_grad():
        trained.rotate.parametrizations.weight.original.add_(0.2)
    python_api = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", trained, Units(positions=[-1]))])
    save_interventions(python_api, tmp_path / "das")
    source = [[7, 8, 9, 10, 11]]
    batch = tokens("gpt2", 2, 5)
    with torch.no_grad():
        expected = python_api(**batch, sources=[torch.tensor(source)]).logits
    config = {"interchange_dim": 4, "load_from": str(tmp_path / "das"), "source_input_ids": source, "positions": [-1]}
    plugin = iv_registry.create("intervention", "rotated", config).instance
    with torch.no_grad(), plugin.attach(handle, ["blocks[0].output"], iv_context):
        got = handle.model(**batch).logits
    assert torch.equal(got, expected)
    mismatch = iv_registry.create(
        "intervention", "low_rank_rotated", {"rank": 2, "load_from": str(tmp_path / "das"), "source_input_ids": source}
    ).instance
    with pytest.raises(GuardchainError) as caught:
        mismatch.attach(handle, ["blocks[0].output"], iv_context)
    assert caught.value.code == InterventionErrorCode.LOAD


def test_source_text_is_tokenized_with_the_handle_tokenizer(load_tiny, iv_registry, iv_context, tokens):
    _, handle = load_tiny("gpt2")
    text = "the lord said unto him"
    ids = torch.tensor([handle.tokenizer(text, add_special_tokens=False)["input_ids"]])
    from_text = iv_registry.create("intervention", "interchange", {"source_text": [text], "positions": [0, 1]}).instance
    from_ids = iv_registry.create(
        "intervention", "interchange", {"source_input_ids": ids.tolist(), "positions": [0, 1]}
    ).instance
    batch = tokens("gpt2", 3, 5)
    outputs = []
    for plugin in (from_text, from_ids):
        with torch.no_grad(), plugin.attach(handle, ["blocks[0].output"], iv_context):
            outputs.append(handle.model(**batch).logits)
    assert torch.equal(outputs[0], outputs[1])
    bad = iv_registry.create("intervention", "interchange", {"source_text": ["the lord", "the"]}).instance
    with pytest.raises(GuardchainError) as caught:
        bad.attach(handle, ["blocks[0].output"], iv_context)
    assert caught.value.code == InterventionErrorCode.SHAPE
    missing = iv_registry.create("intervention", "interchange", {}).instance
    with pytest.raises(GuardchainError) as caught:
        missing.attach(handle, ["blocks[0].output"], iv_context)
    assert caught.value.code == InterventionErrorCode.SOURCE


def test_sites_need_an_adapter(load_tiny, iv_registry, tmp_path: Path):
    _, handle = load_tiny("gpt2")
    plugin = iv_registry.create("intervention", "zero", {}).instance
    bare = RunContext(run_id="x", seed=0, out_dir=tmp_path)
    with pytest.raises(GuardchainError) as caught:
        plugin.attach(handle, ["blocks[0].output"], bare)
    assert caught.value.code == InterventionErrorCode.SITE
    with pytest.raises(GuardchainError, match="GC-HF-SITE-UNKNOWN"):
        plugin.attach(
            handle, ["blocks[9].output"], RunContext(run_id="x", seed=0, out_dir=tmp_path, registry=iv_registry)
        )


def test_registration_catalogue_and_factory_come_from_one_table(iv_registry):
    """One row per name: the registry's specs, the catalogue and the classes' plugin_name all come from TABLE."""
    from guardchain.interventions.catalog import catalog, lookup
    from guardchain.interventions.registered import RegisteredIntervention
    from guardchain.interventions.table import CONFIG_MODULE, FACTORY, TABLE

    specs = {s.name: s for s in iv_registry.specs("intervention") if s.distribution == "guardchain-interventions"}
    assert sorted(specs) == sorted(entry.name for entry in TABLE)
    assert list(catalog()) == [entry.name for entry in TABLE]
    for entry in TABLE:
        spec = specs[entry.name]
        assert spec.factory == FACTORY and spec.config_model_ref == f"{CONFIG_MODULE}:{entry.config}"
        assert spec.summary == entry.summary and spec.docs.startswith(entry.docs)
        cls, config_model = lookup(entry.name)
        assert cls.plugin_name == entry.name and config_model.__name__ == entry.config
        assert f"{cls.__module__}:{cls.__qualname__}" == entry.implementation
    created = iv_registry.create("intervention", "low_rank_rotated", {"rank": 2}).instance
    assert isinstance(created, RegisteredIntervention) and created.intervention_class.plugin_name == "low_rank_rotated"
    with pytest.raises(GuardchainError) as caught:
        lookup("guardchain.interventions.trainable.RotatedSpace")
    assert caught.value.code == InterventionErrorCode.LOAD
