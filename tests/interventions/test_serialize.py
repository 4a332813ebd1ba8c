"""Save and load: versioned JSON naming registered plugins, safetensors weights, any device, checked model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

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
from guardchain.interventions.catalog import catalog
from guardchain.interventions.codes import InterventionErrorCode
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
    assert all(cls.plugin_name == name for name, (cls, _) in catalog().items())


# ----------------------------------------------------------------------------------------------------------------
# Tampered saves: every case is a coded error (never a raw exception), found before anything is allocated.
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved_das(load_tiny, tmp_path):
    """(adapter, handle, directory, document) of a saved rotated + add pair on the tiny GPT-2."""
    adapter, handle = load_tiny("gpt2")
    im = IntervenedModel.from_sites(
        adapter,
        handle,
        [
            ("blocks[0].output", RotatedSpace(32, 2), Units(positions=[0])),
            ("transformer.h.1.attn.c_proj.input", Add(torch.linspace(0, 1, 32)), Units(positions=[1])),
        ],
    )
    directory = save_interventions(im, tmp_path / "saved")
    return adapter, handle, directory, json.loads((directory / CONFIG_FILE).read_text())


def _expect_load_error(directory, model, match, **kwargs):
    with pytest.raises(GuardchainError) as caught:
        load_interventions(directory, model, **kwargs)
    assert caught.value.code == InterventionErrorCode.LOAD, caught.value
    assert match in str(caught.value), str(caught.value)
    return caught.value


def _tamper(document, edit):
    changed = json.loads(json.dumps(document))
    edit(changed)
    return changed


def test_truncated_weights_are_a_coded_error(saved_das):
    _, handle, directory, _ = saved_das
    weights = directory / WEIGHTS_FILE
    data = weights.read_bytes()
    for cut in (len(data) - 7, 200, 9, 3):
        weights.write_bytes(data[:cut])
        _expect_load_error(directory, handle.model, WEIGHTS_FILE)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(interventions={"0": 1}), "interventions"),
        (lambda d: d["interventions"].__setitem__(0, "rotated"), "interventions.0"),
        (lambda d: d["interventions"][0].update(dim="32"), "dim"),
        (lambda d: d["interventions"][0].update(dim=32.0), "dim"),
        (lambda d: d["interventions"][0].update(params=[2]), "params"),
        (lambda d: d["interventions"][0].update(name=7), "name"),
        (lambda d: d["interventions"][0]["params"].update(interchange_dim="2"), "interchange_dim"),
        (lambda d: d["interventions"][1]["params"].update(vector="abc"), "vector"),
        (lambda d: d.update(bindings=None), "bindings"),
        (lambda d: d["bindings"][0].update(intervention="0"), "bindings.0.intervention"),
        (lambda d: d["bindings"][0].update(intervention=True), "bindings.0.intervention"),
        (lambda d: d["bindings"][0].update(source=-1), "source"),
        (lambda d: d["bindings"][0]["site"].update(hook="middle"), "hook"),
        (lambda d: d["bindings"][0]["site"].update(block="0"), "block"),
        (lambda d: d["bindings"][0]["site"].update(details={"tuple_index": "x"}), "tuple_index"),
        (lambda d: d["bindings"][0].update(units={"positions": "nonsense"}), "units"),
        (lambda d: d.update(generation=3), "generation"),
        (lambda d: d.update(format_version=True), "format_version"),
    ],
)
def test_wrong_types_are_coded_errors(saved_das, edit, match):
    _, handle, directory, document = saved_das
    (directory / CONFIG_FILE).write_text(json.dumps(_tamper(document, edit)))
    with pytest.raises(GuardchainError) as caught:
        load_interventions(directory, handle.model)
    assert caught.value.code in (InterventionErrorCode.LOAD, InterventionErrorCode.CONFIG_VERSION)
    assert match in str(caught.value), str(caught.value)


def test_absurd_sizes_are_refused_before_allocating(saved_das, tmp_path):
    """A rotation declared 10⁷ wide would take 400 TB: the declared sizes are checked against the file first."""
    _, handle, directory, document = saved_das
    (directory / CONFIG_FILE).write_text(
        json.dumps(_tamper(document, lambda d: d["interventions"][0].update(dim=10**7)))
    )
    _expect_load_error(directory, handle.model, "(10000000, 10000000)")
    no_weights = _tamper(document, lambda d: d["interventions"][0].update(dim=10**7, tensors=[]))
    (directory / CONFIG_FILE).write_text(json.dumps(no_weights))
    _expect_load_error(directory, handle.model, "rotation")
    # a header that declares the 400 TB tensor the config asks for, in a file of a few hundred bytes
    huge = _tamper(document, lambda d: d["interventions"][0].update(dim=10**7))
    (directory / CONFIG_FILE).write_text(json.dumps(huge))
    declared = {
        "interventions.0.rotation": {"dtype": "F32", "shape": [10**7, 10**7], "data_offsets": [0, 4 * 10**14]},
    }
    header = json.dumps(declared).encode()
    (directory / WEIGHTS_FILE).write_bytes(len(header).to_bytes(8, "little") + header + bytes(256))
    _expect_load_error(directory, handle.model, "truncated or corrupt")
    (directory / CONFIG_FILE).write_text("[" * 100_000 + "]" * 100_000)  # nesting deeper than the parser's stack
    _expect_load_error(directory, handle.model, CONFIG_FILE)


def test_a_binding_index_out_of_range_is_refused(saved_das):
    _, handle, directory, document = saved_das
    for index in (-1, 2, 10**9):
        (directory / CONFIG_FILE).write_text(
            json.dumps(_tamper(document, lambda d, i=index: d["bindings"][0].update(intervention=i)))
        )
        _expect_load_error(directory, handle.model, "bindings.0.intervention" if index < 0 else "binding 0")


def test_a_module_path_that_does_not_match_the_site_is_refused(saved_das):
    adapter, handle, directory, document = saved_das
    moved = _tamper(document, lambda d: d["bindings"][0]["site"].update(module_path="transformer.h.1"))
    (directory / CONFIG_FILE).write_text(json.dumps(moved))
    _expect_load_error(directory, handle.model, "blocks[0]")  # without an adapter: the block index on the path
    _expect_load_error(directory, handle.model, "transformer.h.0", adapter=adapter)  # re-resolved by the adapter
    inside = _tamper(document, lambda d: d["bindings"][0]["site"].update(module_path="transformer.h.0.mlp"))
    (directory / CONFIG_FILE).write_text(json.dumps(inside))
    _expect_load_error(directory, handle.model, "transformer.h.0", adapter=adapter)
    raw = _tamper(document, lambda d: d["bindings"][1]["site"].update(module_path="transformer.h.0.attn.c_proj"))
    (directory / CONFIG_FILE).write_text(json.dumps(raw))
    _expect_load_error(directory, handle.model, "transformer.h.1.attn.c_proj.input")
    nowhere = _tamper(document, lambda d: d["bindings"][1]["site"].update(module_path="transformer.h.9"))
    (directory / CONFIG_FILE).write_text(json.dumps(nowhere))
    _expect_load_error(directory, handle.model, "no module")
    (directory / CONFIG_FILE).write_text(json.dumps(document))
    loaded = load_interventions(directory, handle.model, adapter=adapter)
    assert [b.site.module_path for b in loaded.bindings] == ["transformer.h.0", "transformer.h.1.attn.c_proj"]


def test_non_finite_values_are_refused_unless_allowed(saved_das):
    _, handle, directory, document = saved_das
    weights = directory / WEIGHTS_FILE
    stored = load_file(str(weights))
    poisoned = dict(stored)
    poisoned["interventions.0.rotation"] = stored["interventions.0.rotation"].clone()
    poisoned["interventions.0.rotation"][3, 4] = float("nan")
    save_file(poisoned, str(weights))
    _expect_load_error(directory, handle.model, "not finite")
    loaded = load_interventions(directory, handle.model, allow_nonfinite=True)
    assert torch.isnan(loaded.interventions[0].rotation).any()
    save_file(stored, str(weights))
    steer = _tamper(document, lambda d: d["interventions"][1]["params"]["vector"].__setitem__(3, float("inf")))
    (directory / CONFIG_FILE).write_text(json.dumps(steer))
    _expect_load_error(directory, handle.model, "not finite")
    assert load_interventions(directory, handle.model, allow_nonfinite=True).interventions[1].vector[3] == math.inf
