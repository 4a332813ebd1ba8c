"""The registration module: the resolve hook, config models, documented error codes."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

import guardchain.adapters.plugin as hf_plugin
from guardchain.adapters.config import AutoAdapterConfig, BertAdapterConfig, CausalLMAdapterConfig
from guardchain.adapters.errors import ERROR_DESCRIPTIONS, HFErrorCode
from guardchain.adapters.gguf_meta import read_gguf_architecture
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

README = Path(__file__).resolve().parents[2] / "adapters" / "README.md"


@pytest.fixture
def resolve() -> Any:
    registry = Registry.from_plugins({"hf": hf_plugin})

    def ask(ref: str, **hints: Any) -> str | None:
        name, problems = registry.resolve_adapter(ref, hints)
        assert problems == []
        return name

    return ask


@pytest.fixture
def refusal() -> Any:
    """``refusal(ref)``: the code with which the resolve hook refuses ``ref`` (it must not claim it)."""
    registry = Registry.from_plugins({"hf": hf_plugin})

    def ask(ref: str, **hints: Any) -> str:
        name, problems = registry.resolve_adapter(ref, hints)
        assert name is None and len(problems) == 1, (name, problems)
        assert problems[0].details["refused"] is True and problems[0].details["plugin"] == "hf"
        return str(problems[0].code)

    return ask


def _gguf(path: Path, arch_value: bytes) -> Path:
    key = b"general.architecture"
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(arch_value))
        + arch_value
    )
    return path


def test_resolve_hook_by_config_model_type(resolve: Any, tiny_dirs: dict[str, Path]) -> None:
    assert resolve(str(tiny_dirs["gpt2"])) == "hf_gpt2"
    assert resolve(str(tiny_dirs["llama"])) == "hf_llama"
    assert resolve(str(tiny_dirs["bert"])) == "hf_bert"
    assert resolve(str(tiny_dirs["bert_base"])) == "hf_bert"


def test_resolve_hook_named_models_hub_ids_and_hints(
    resolve: Any, refusal: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve("smollm2-135m") == "hf_llama"
    assert resolve("minilm-l6") == "hf_bert"
    assert resolve("tiny-gpt2") == "hf_gpt2"
    monkeypatch.setenv("GUARDCHAIN_ALLOW_NETWORK", "1")
    assert resolve("Qwen/Qwen2-0.5B") == "hf_auto"
    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK")
    assert refusal("Qwen/Qwen2-0.5B") == "GC-HF-NETWORK-DISABLED"  # offline: said now, not "another architecture"
    assert resolve("HuggingFaceTB/SmolLM2-135M", model_type="llama") == "hf_llama"
    assert resolve("anything", model_type="qwen2") == "hf_llama"
    assert resolve("anything", model_type="mistral") == "hf_llama"
    assert resolve(str(tmp_path), model_type="t5") is None
    assert resolve("gpt2") is None  # a bare name is neither named nor a hub id (those are org/name)
    assert resolve("fake:2") is None  # another plugin's reference
    assert refusal(str(tmp_path / "missing")) == "GC-HF-NOT-FOUND"  # a path: named as missing
    assert refusal(str(tmp_path)) == "GC-HF-NOT-FOUND"  # a directory without config.json
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "t5"}')
    assert refusal(str(tmp_path / "odd")) == "GC-HF-ARCHITECTURE"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "gpt2", "n_embd": ')
    assert refusal(str(tmp_path / "broken")) == "GC-HF-LOAD-FAILED"  # the broken config.json is named


def test_a_broken_config_json_is_named_not_called_unclaimed(tmp_path: Path) -> None:
    registry = Registry.from_plugins({"hf": hf_plugin})
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_embd": ')
    name, problems = registry.resolve_adapter(str(tmp_path), {})
    assert name is None
    assert "config.json" in problems[0].message and "cannot be read" in problems[0].message


def test_resolve_hook_reads_gguf_architecture(resolve: Any, refusal: Any, tmp_path: Path) -> None:
    assert resolve(str(_gguf(tmp_path / "a.gguf", b"gpt2"))) == "hf_gpt2"
    assert resolve(str(_gguf(tmp_path / "b.gguf", b"qwen2"))) == "hf_llama"
    assert refusal(str(_gguf(tmp_path / "c.gguf", b"phi3"))) == "GC-HF-ARCHITECTURE"
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file")
    assert resolve(str(tmp_path / "junk.gguf")) == "hf_llama"  # unreadable: the Llama family is the default


def test_gguf_reader_skips_values_before_the_architecture(tmp_path: Path) -> None:
    def string(text: bytes) -> bytes:
        return struct.pack("<Q", len(text)) + text

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 4)
    body += string(b"a.u32") + struct.pack("<II", 4, 7)
    body += string(b"a.strings") + struct.pack("<IIQ", 9, 8, 2) + string(b"x") + string(b"yz")
    body += string(b"a.floats") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 1, 2, 3)
    body += string(b"general.architecture") + struct.pack("<I", 8) + string(b"llama")
    (tmp_path / "m.gguf").write_bytes(body)
    assert read_gguf_architecture(tmp_path / "m.gguf") == "llama"
    (tmp_path / "cut.gguf").write_bytes(body[:-3])
    assert read_gguf_architecture(tmp_path / "cut.gguf") is None


def test_registration_imports_nothing_heavy_in_process() -> None:
    registry = Registry.from_plugins({"hf": hf_plugin})
    assert registry.names(CapabilityKind.ADAPTER) == ["hf_auto", "hf_bert", "hf_gpt2", "hf_llama"]
    for spec in registry.specs(CapabilityKind.ADAPTER):
        assert isinstance(spec.factory, str) and spec.factory.startswith("guardchain.adapters.adapters:")
    source = Path(hf_plugin.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+(torch|transformers)\b", source, flags=re.M)


def test_config_models_document_every_field() -> None:
    for model in (CausalLMAdapterConfig, BertAdapterConfig, AutoAdapterConfig):
        assert model.model_config.get("extra") == "forbid" and model.model_config.get("frozen") is True
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    assert set(AutoAdapterConfig.model_fields) == set(BertAdapterConfig.model_fields)
    assert CausalLMAdapterConfig().dtype == "float32" and BertAdapterConfig().mlm_mask_groups == 7


def test_every_error_code_is_described_and_in_the_readme() -> None:
    readme = README.read_text()
    for code in HFErrorCode:
        assert ERROR_DESCRIPTIONS.get(code), code
        assert f"`{code.value}`" in readme, f"README misses {code.value}"
    documented = set(re.findall(r"`(GC-HF-[A-Z-]+)`", readme))
    assert documented == {c.value for c in HFErrorCode}
