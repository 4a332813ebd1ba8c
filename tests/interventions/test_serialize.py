"""Save and load: versioned JSON naming registered plugins, safetensors weights, any device, checked model."""

from __future__ import annotations

import json

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.interventions import (
    Add,
    BoundlessRotatedSpace,
    Collect,
    IntervenedModel,
    LowRankRotatedSpace,
    Noise,
    Replace,
    RotatedSpace,
    Units,
    load_interventions,
    save_interventions,
)
from guardchain.interventions.catalog import CATALOG
from guardchain.interventions.codes import InterventionErrorCode
from guardchain.interventions.plugin import INTERVENTIONS
from guardchain.interventions.serialize import CONFIG_FILE, WEIGHTS_FILE


def _trained_like(intervention: torch.nn.Module) -> None:
    """Move the parameters away from their seeded start, as training would."""
    with torch.no_grad():
        for p in intervention.parameters():
            p.add_(0.3 * torch.randn_like(p))


def test_round_trip_gives_identical_outputs(load_tiny, tokens, tmp_path):
    adapter, handle = load_tiny("gpt2")
    batch = tokens("gpt2", 2, 7)
    source = tokens("gpt2", 2, 7, seed=5)["input_ids"]
    rot, low, bl = RotatedSpace(32, 3, seed=4), LowRankRotatedSpace(8, 2, seed=5), BoundlessRotatedSpace(32, seed=6)
    for module in (rot, low, bl):
        _trained_like(module)
    im = IntervenedModel.from_sites(
        adapter,
        handle,
        [
            ("blocks[0].output", rot, Units(positions=[[1, 2], [3, 4]])),
            ("transformer.h.1.attn.c_proj.input", low, Units(positions=slice(-3, None), heads=[0, 2])),
            ("blocks[*].mlp.output", bl, Units(positions=[-1])),
            ("blocks[1].output", Add(torch.linspace(0, 1, 32), 0.5), Units(positions=[0])),
            ("blocks[1].output", Replace(2.0), Units(positions=[1])),
            ("blocks[0].attn.output", Noise(0.1, seed=9), Units(positions=[2])),
            ("blocks[0].output", Collect(), Units(positions=[0])),
        ],
    )
    with torch.no_grad():
        expected = im(**batch, sources=[source]).logits
    save_interventions(im, tmp_path / "saved")
    document = json.loads((tmp_path / "saved" / CONFIG_FILE).read_text())
    assert document["format_version"] == 1
    assert [e["name"] for e in document["interventions"]] == [
        "rotated",
        "low_rank_rotated",
        "boundless",
        "add",
        "replace",
        "noise",
        "collect",
    ]
    assert len(document["bindings"]) == 8, "blocks[*] expanded to two bindings sharing one intervention"
    text = (tmp_path / "saved" / CONFIG_FILE).read_text()
    assert "class '" not in text and "guardchain.interventions." not in text, "no Python type strings"

    loaded = load_interventions(tmp_path / "saved", handle.model, map_location="cpu")
    with torch.no_grad():
        got = loaded(**batch, sources=[source]).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # W is restored to float rounding
    assert loaded.bindings[0].units.positions == [[1, 2], [3, 4]]
    assert loaded.bindings[1].units.positions == slice(-3, None)


def test_load_chooses_the_device_and_never_reads_one_from_the_file(load_tiny, tmp_path):
    adapter, handle = load_tiny("gpt2")
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", RotatedSpace(32, 2), Units(positions=[0]))])
    save_interventions(im, tmp_path / "saved")
    assert "cuda" not in (tmp_path / "saved" / CONFIG_FILE).read_text()
    for where in ("cpu", torch.device("cpu")):
        loaded = load_interventions(tmp_path / "saved", handle.model, map_location=where)
        assert {p.device.type for p in loaded.interventions.parameters()} == {"cpu"}
    if torch.cuda.is_available():  # only on a GPU host
        on_gpu = load_interventions(tmp_path / "saved", handle.model.cuda(), map_location="cuda:0")
        assert {p.device.type for p in on_gpu.interventions.parameters()} == {"cuda"}
        ids, src = torch.tensor([[1, 2, 3]], device="cuda:0"), torch.tensor([[4, 5, 6]], device="cuda:0")
        with torch.no_grad():
            got = on_gpu(ids, sources=[src]).logits.cpu()
            handle.model.cpu()
            expected = im(ids.cpu(), sources=[src.cpu()]).logits
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_bad_directories_fail_with_stable_codes(load_tiny, tmp_path):
    adapter, handle = load_tiny("gpt2")
    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", RotatedSpace(32, 2), Units(positions=[0]))])
    saved = save_interventions(im, tmp_path / "saved")
    config = saved / CONFIG_FILE
    original = json.loads(config.read_text())

    def expect(code: InterventionErrorCode, model: torch.nn.Module = handle.model) -> None:
        with pytest.raises(GuardchainError) as caught:
            load_interventions(saved, model)
        assert caught.value.code == code

    config.write_text(json.dumps({**original, "format_version": 2}))
    expect(InterventionErrorCode.CONFIG_VERSION)
    bad = json.loads(json.dumps(original))
    bad["interventions"][0]["name"] = "guardchain.interventions.trainable.RotatedSpace"
    config.write_text(json.dumps(bad))
    expect(InterventionErrorCode.LOAD)
    config.write_text(json.dumps(original))
    _, llama = load_tiny("llama")
    expect(InterventionErrorCode.MODEL_MISMATCH, llama.model)
    (saved / WEIGHTS_FILE).unlink()
    expect(InterventionErrorCode.LOAD)
    config.unlink()
    expect(InterventionErrorCode.LOAD)


def test_saved_names_are_the_registered_names():
    assert set(CATALOG) == set(INTERVENTIONS)
    assert all(cls.plugin_name == name for name, (cls, _) in CATALOG.items())
