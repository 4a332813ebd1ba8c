"""The conformance kit's contracts, run against every adapter of guardchain-adapters on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import guardchain.adapters.plugin as hf_plugin
from guardchain.core.handles import ModelHandle
from guardchain.core.registry import Registry
from guardchain.testing import AdapterContract, PluginContract


class _TinyHF(AdapterContract):
    """Shared setup: a registry holding only this plugin, a tiny checkpoint, a weight nudge."""

    kind_of_model: str

    @pytest.fixture
    def registry(self) -> Registry:
        return Registry.from_plugins({"hf": hf_plugin})

    @pytest.fixture
    def model_ref(self, tiny_dirs: dict[str, Path]) -> str:
        return str(tiny_dirs[self.kind_of_model])

    def perturb(self, handle: ModelHandle) -> None:
        with torch.no_grad():
            next(handle.model.parameters()).add_(0.5)


class TestGPT2Adapter(_TinyHF):
    name = "hf_gpt2"
    kind_of_model = "gpt2"
    valid_site = "blocks[*].mlp.output"


class TestLlamaAdapter(_TinyHF):
    name = "hf_llama"
    kind_of_model = "llama"
    valid_site = "blocks[-1].attn.input"


class TestBertAdapter(_TinyHF):
    name = "hf_bert"
    kind_of_model = "bert"
    valid_site = "residual_post"


class TestAutoAdapter(_TinyHF):
    name = "hf_auto"
    kind_of_model = "llama"
    valid_site = "blocks[0:2].mlp_out"


class TestHFPlugin(PluginContract):
    entry_point = "hf"
