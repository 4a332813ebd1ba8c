"""Models larger than one device: ``device_map`` / ``max_memory`` / ``offload_folder``, tested on the CPU with a
``max_memory`` small enough to force part (or all) of the packaged tiny GPT-2 (3.7 MB of float32 weights) onto
disk. The offloaded weights must be real, file-backed tensors, and every number — the weights digest, the
log-probabilities, an edit, its rollback, a whole certificate — must equal the one without offloading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from guardchain.adapters.offload import store_of
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.guarded_edit import Participant, apply_guarded_edit
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

#: 3 MB of CPU memory holds the embeddings but not the blocks of the packaged tiny GPT-2: the blocks go to disk.
PARTIAL = {"device_map": "auto", "max_memory": {"cpu": "3MB"}}
#: 10 KB holds nothing: the whole model, tied embedding and head included, goes to disk.
EVERYTHING = {"device_map": "auto", "max_memory": {"cpu": "10KB"}}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


def _load(registry: Registry, tmp_path: Path, **config: Any) -> tuple[Any, Any]:
    if "device_map" in config:
        config = {**config, "offload_folder": str(tmp_path / "offload")}
    adapter = registry.create(CapabilityKind.ADAPTER, "hf_gpt2", config).instance
    context = RunContext(run_id="offload", seed=0, out_dir=tmp_path, registry=registry)
    return adapter, adapter.load("tiny-gpt2", context)


def _mapped_deleted_files(folder: Path) -> int:
    """Memory mappings of this process backed by unlinked files under ``folder`` (``/proc/self/maps``)."""
    text = Path("/proc/self/maps").read_text()
    return sum(1 for line in text.splitlines() if str(folder) in line and line.endswith("(deleted)"))


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 4000, (3, 40), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_placement_options_are_validated(registry: Registry) -> None:
    for config, fragment in [
        ({"max_memory": {"cpu": "3MB"}}, "need device_map"),
        ({"device_map": "auto", "max_memory": {"cpu": "three"}}, "not a size"),
        ({"device_map": "auto", "max_memory": {"disk": "1GB"}}, "max_memory device"),
        ({"device_map": {"transformer": "gpu7"}}, "unknown device"),
        ({"device_map": "auto", "device": "cuda"}, "either device or device_map"),
    ]:
        with pytest.raises(GuardchainError) as caught:
            registry.create(CapabilityKind.ADAPTER, "hf_gpt2", config)
        assert caught.value.code == "GC-CONFIG-VALUE" and fragment in caught.value.problems[0].message, config


def test_offloaded_weights_are_file_backed_and_give_the_same_numbers(registry: Registry, tmp_path: Path) -> None:
    plain_adapter, plain = _load(registry, tmp_path)
    adapter, handle = _load(registry, tmp_path, **PARTIAL)
    placement = handle.provenance["placement"]
    assert "disk" in placement["device_map"].values() and "cpu" in placement["device_map"].values()
    model = handle.model
    assert all(p.device.type == "cpu" for p in model.parameters())  # no meta tensor left
    store = store_of(model)
    assert store is not None and placement["file_backed_parameters"] == len(store.names) > 0
    assert all(name.startswith(("transformer.h.", "transformer.ln_f.")) for name in store.names)
    assert _mapped_deleted_files(tmp_path / "offload") >= len(store.names)  # mapped from disk, names unlinked
    assert not any(p.is_file() for p in (tmp_path / "offload").rglob("*"))  # nothing left on disk by name
    assert adapter.weights_digest(handle) == plain_adapter.weights_digest(plain) == plain.provenance["weights_sha256"]
    assert torch.equal(
        adapter.token_logprobs(handle, _batch()).nan_to_num(),
        plain_adapter.token_logprobs(plain, _batch()).nan_to_num(),
    )


def test_a_fully_offloaded_model_keeps_its_tied_head(registry: Registry, tmp_path: Path) -> None:
    plain_adapter, plain = _load(registry, tmp_path)
    adapter, handle = _load(registry, tmp_path, **EVERYTHING)
    assert handle.provenance["placement"]["device_map"] == {"": "disk"}
    model = handle.model
    assert model.lm_head.weight is model.transformer.wte.weight  # one parameter, materialised once
    assert adapter.weights_digest(handle) == plain.provenance["weights_sha256"]
    assert torch.equal(
        adapter.token_logprobs(handle, _batch()).nan_to_num(),
        plain_adapter.token_logprobs(plain, _batch()).nan_to_num(),
    )


def test_an_edit_under_a_guard_and_its_rollback_are_bit_exact_on_an_offloaded_model(
    registry: Registry, tmp_path: Path
) -> None:
    digests = {}
    for name, config in (("plain", {}), ("offloaded", PARTIAL)):
        adapter, handle = _load(registry, tmp_path, **config)
        context = RunContext(run_id=name, seed=0, out_dir=tmp_path, registry=registry, adapter=adapter, handle=handle)
        edit = Participant.of(registry.create(CapabilityKind.EDIT, "quant_rtn", {"bits": 4, "group_size": 32}))
        guard = Participant.of(registry.create(CapabilityKind.GUARD, "invariants", {"mode": "gate"}))
        guard.instance.prepare(handle, context)
        before = adapter.weights_digest(handle)
        maps_before = _mapped_deleted_files(tmp_path / "offload")
        edited = apply_guarded_edit(context, edit, [guard])
        if name == "offloaded":  # the rollback's copies of file-backed weights are file-backed too
            assert _mapped_deleted_files(tmp_path / "offload") > maps_before
        edited_digest = adapter.weights_digest(handle)
        assert edited_digest != before and edited.report.parameters_changed > 0
        edited.rollback()  # verified bit for bit against the digest before the edit
        assert adapter.weights_digest(handle) == before
        digests[name] = (before, edited_digest, edited.report.model_dump(), edited.guard_reports[0].status)
    assert digests["plain"] == digests["offloaded"]


def _numbers(certificate: Any) -> dict[str, Any]:
    data = certificate.model_dump(mode="json")
    return {
        "primary_metric": data["primary_metric"],
        "gates": data["gates"],
        "guards": [
            {k: r[k] for k in ("guard", "status", "measurements", "findings", "actions")} for r in data["guards"]
        ],
        "edit": {k: data["edit"][k] for k in ("plan", "report")},
        "verdict": data["verdict"],
        "rolled_back": data["rolled_back"],
        "weights": [data["provenance"][arm]["weights_sha256"] for arm in ("baseline", "subject")],
    }


@pytest.mark.members
@pytest.mark.parametrize("bits", [8, 4])
def test_a_certification_with_forced_offloading_gives_the_same_certificate_numbers(
    registry: Registry, tmp_path: Path, bits: int
) -> None:
    from guardchain.certify.pipeline import certify
    from guardchain.certify.request import CertifyPreset, CertifyRequest
    from guardchain.certify.verify import verify_certificate

    certificates = {}
    for name, config in (("plain", {}), ("offloaded", {**PARTIAL, "offload_folder": str(tmp_path / "offload")})):
        preset = CertifyPreset(adapter_config=config, edit_config={"bits": bits})
        request = CertifyRequest(baseline="tiny-gpt2", preset=preset, out=tmp_path / name)
        certificates[name] = certify(request, registry)
        assert verify_certificate(certificates[name].model_dump(mode="json"), registry=registry).mismatches == []
    offloaded = certificates["offloaded"]
    assert offloaded.request["preset"]["adapter_config"]["max_memory"] == {"cpu": "3MB"}
    assert _numbers(certificates["plain"]) == _numbers(offloaded)
    assert math.isfinite(offloaded.primary_metric.final.ratio)  # type: ignore[union-attr]


def test_offloading_deletes_only_inside_its_own_fresh_folder_and_removes_that_folder_when_done(
    registry: Registry, tmp_path: Path
) -> None:
    import gc

    root = tmp_path / "offload"
    root.mkdir()
    (root / "notes.txt").write_text("the user's")
    (root / "theirs").mkdir()
    (root / "theirs" / "weights.bin").write_bytes(b"\0" * 16)
    adapter, handle = _load(registry, tmp_path, **PARTIAL)
    store = store_of(handle.model)
    assert store is not None and store.folder.parent == root and store.folder.name.startswith("guardchain-offload-")
    folder = store.folder
    assert folder.is_dir() and not any(p.is_file() for p in folder.rglob("*"))  # accelerate's files: removed
    del adapter, handle, store
    gc.collect()
    assert not folder.exists()  # the store's own folder goes with it
    assert (root / "notes.txt").read_text() == "the user's"  # nothing else under the offload folder is touched
    assert (root / "theirs" / "weights.bin").read_bytes() == b"\0" * 16
