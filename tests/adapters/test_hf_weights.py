"""describe(), weights_digest, snapshot/restore and tied parameters."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch

from guardchain.adapters.structure import output_axis
from guardchain.core.errors import GuardchainError
from guardchain.core.handles import WeightFamily


def test_gpt2_structure_records_conv1d_shapes_as_stored_and_the_tied_head(load: Any) -> None:
    adapter, handle = load("gpt2")
    structure = adapter.describe(handle)
    assert structure.blocks == ("transformer.h.0", "transformer.h.1")
    by_name = {w.name: w for w in structure.weights}
    vocab = handle.model.config.vocab_size
    assert by_name["transformer.wte.weight"].family == WeightFamily.EMBED
    assert by_name["transformer.wpe.weight"].family == WeightFamily.EMBED
    fc = by_name["transformer.h.1.mlp.c_fc.weight"]
    assert (fc.family, fc.shape, fc.block) == (WeightFamily.FFN, (32, 128), 1)  # Conv1D: (in, out)
    attn = by_name["transformer.h.0.attn.c_attn.weight"]
    assert (attn.family, attn.shape, attn.block) == (WeightFamily.ATTN, (32, 96), 0)
    assert by_name["transformer.h.0.attn.c_proj.weight"].family == WeightFamily.ATTN
    assert by_name["transformer.h.0.mlp.c_proj.weight"].family == WeightFamily.FFN
    assert "lm_head.weight" not in by_name  # tied: listed once, under its first name
    assert structure.tied == (("transformer.wte.weight", "lm_head.weight"),)
    assert by_name["transformer.wte.weight"].shape == (vocab, 32)
    assert all(len(w.shape) == 2 for w in structure.weights)
    assert len(structure.by_family(WeightFamily.ATTN)) == 4 and len(structure.by_family(WeightFamily.FFN)) == 4
    assert output_axis(handle.model, "transformer.h.0.mlp.c_fc.weight") == 1
    assert output_axis(handle.model, "transformer.wte.weight") == 0
    assert (fc.out_axis, attn.out_axis, by_name["transformer.wte.weight"].out_axis) == (1, 1, 0)


def test_llama_structure_has_gqa_projections_and_an_untied_head(load: Any) -> None:
    adapter, handle = load("llama")
    structure = adapter.describe(handle)
    by_name = {w.name: w for w in structure.weights}
    assert by_name["model.layers.0.self_attn.q_proj.weight"].shape == (32, 32)
    assert by_name["model.layers.0.self_attn.k_proj.weight"].shape == (16, 32)  # 2 KV heads of 8
    assert by_name["model.layers.1.mlp.down_proj.weight"].shape == (32, 64)
    assert by_name["lm_head.weight"].family == WeightFamily.OTHER
    assert by_name["model.embed_tokens.weight"].family == WeightFamily.EMBED
    families = {w.name.rsplit(".", 2)[-2]: w.family for w in structure.weights if w.block == 0}
    assert families == {
        "q_proj": WeightFamily.ATTN,
        "k_proj": WeightFamily.ATTN,
        "v_proj": WeightFamily.ATTN,
        "o_proj": WeightFamily.ATTN,
        "gate_proj": WeightFamily.FFN,
        "up_proj": WeightFamily.FFN,
        "down_proj": WeightFamily.FFN,
    }
    assert structure.tied == ()
    assert output_axis(handle.model, "model.layers.0.mlp.up_proj.weight") == 0


@pytest.mark.parametrize(
    ("kind", "others"),
    [
        ("bert", {"cls.predictions.transform.dense.weight"}),
        ("bert_cls", {"bert.pooler.dense.weight", "classifier.weight"}),
        ("bert_base", {"pooler.dense.weight"}),
    ],
)
def test_bert_structure_families(load: Any, kind: str, others: set[str]) -> None:
    adapter, handle = load(kind)
    structure = adapter.describe(handle)
    prefix = "" if kind == "bert_base" else "bert."
    assert structure.blocks == (f"{prefix}encoder.layer.0", f"{prefix}encoder.layer.1")
    by_name = {w.name: w for w in structure.weights}
    layer = f"{prefix}encoder.layer.1."
    for name, family in {
        "attention.self.query.weight": WeightFamily.ATTN,
        "attention.self.value.weight": WeightFamily.ATTN,
        "attention.output.dense.weight": WeightFamily.ATTN,
        "intermediate.dense.weight": WeightFamily.FFN,
        "output.dense.weight": WeightFamily.FFN,
    }.items():
        assert (by_name[layer + name].family, by_name[layer + name].block) == (family, 1)
    embeds = {w.name for w in structure.by_family(WeightFamily.EMBED)}
    assert embeds == {f"{prefix}embeddings.{n}_embeddings.weight" for n in ("word", "position", "token_type")}
    assert {w.name for w in structure.by_family(WeightFamily.OTHER)} == others


def _sha_of_parameters(model: torch.nn.Module) -> str:
    """The documented digest recipe, written out independently."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}|{str(p.dtype).removeprefix('torch.')}|{','.join(map(str, p.shape))}|".encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "bert_cls"])
def test_snapshot_perturb_restore_is_bit_identical(load: Any, kind: str) -> None:
    adapter, handle = load(kind)
    before = adapter.weights_digest(handle)
    assert before == _sha_of_parameters(handle.model) == handle.provenance["weights_sha256"]
    saved = adapter.snapshot(handle)
    with torch.no_grad():
        for _, p in handle.model.named_parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    assert adapter.weights_digest(handle) != before
    adapter.restore(handle, saved)
    assert adapter.weights_digest(handle) == before
    adapter.restore(handle, saved)  # restoring twice is harmless
    assert adapter.weights_digest(handle) == before


@pytest.mark.parametrize("storage", ["disk", "memory", "auto"])
def test_snapshots_on_disk_are_file_backed_and_restore_bit_for_bit(
    load: Any, storage: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardchain.adapters import weights

    monkeypatch.setattr(weights, "DISK_SNAPSHOT_BYTES", 1)  # 'auto' then goes to disk for any snapshot
    adapter, handle = load("gpt2", snapshot_storage=storage, cache_dir=str(tmp_path))
    before = adapter.weights_digest(handle)
    names = [w.name for w in adapter.describe(handle).weights if w.family != "embed"]
    saved = adapter.snapshot(handle, names)
    backed = {name: bool(t.untyped_storage().filename) for name, t in saved.tensors.items()}
    assert all(backed.values()) if storage != "memory" else not any(backed.values())
    assert not list((tmp_path / "snapshots").rglob("*.bin"))  # unlinked at once: nothing left on disk
    with torch.no_grad():
        for name in names:
            handle.model.get_parameter(name).mul_(3.0)
    adapter.restore(handle, saved)
    assert adapter.weights_digest(handle) == before


def test_one_flipped_bit_changes_the_digest(load: Any) -> None:
    adapter, handle = load("llama")
    before = adapter.weights_digest(handle)
    weight = handle.model.model.layers[1].mlp.down_proj.weight
    with torch.no_grad():
        bits = weight.view(torch.int32)
        bits[3, 5] ^= 1  # lowest mantissa bit
    assert adapter.weights_digest(handle) != before


def test_tying_survives_restore(load: Any) -> None:
    adapter, handle = load("gpt2")
    model = handle.model
    before = adapter.weights_digest(handle)
    saved = adapter.snapshot(handle)
    assert len(saved.tensors) == len(list(model.parameters()))  # the tied pair is saved once
    with torch.no_grad():
        model.transformer.wte.weight.mul_(2.0)
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)
    adapter.restore(handle, saved)
    assert adapter.weights_digest(handle) == before
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert adapter.describe(handle).tied == (("transformer.wte.weight", "lm_head.weight"),)


def test_restore_refuses_a_foreign_snapshot(load: Any) -> None:
    gpt2, gpt2_handle = load("gpt2")
    llama, llama_handle = load("llama")
    before = llama.weights_digest(llama_handle)
    with pytest.raises(GuardchainError) as caught:
        llama.restore(llama_handle, gpt2.snapshot(gpt2_handle))
    assert caught.value.code == "GC-HF-SNAPSHOT-MISMATCH"
    with pytest.raises(GuardchainError):
        llama.restore(llama_handle, {"not": "a snapshot"})
    assert llama.weights_digest(llama_handle) == before


def test_adapters_refuse_handles_of_other_architectures(load: Any) -> None:
    gpt2, _ = load("gpt2")
    _, llama_handle = load("llama")
    for call in (gpt2.describe, gpt2.weights_digest, gpt2.snapshot):
        with pytest.raises(GuardchainError) as caught:
            call(llama_handle)
        assert caught.value.code == "GC-HF-ARCHITECTURE"
