"""The conformance kit on ``quant_rtn`` (tiny HF GPT-2 and Llama) and on the ``edits`` plugin distribution."""

from __future__ import annotations

from typing import Any

import pytest

from guardchain.testing.contracts import EditContract, PluginContract


class _QuantRTNContract(EditContract):
    name = "quant_rtn"
    model_kind: str

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {"bits": 8}

    @pytest.fixture
    def loaded(self, load_tiny: Any) -> tuple[Any, Any]:
        return load_tiny(self.model_kind)

    @pytest.fixture
    def handle(self, loaded: tuple[Any, Any]) -> Any:
        return loaded[1]

    @pytest.fixture
    def structure(self, loaded: tuple[Any, Any]) -> Any:
        adapter, handle = loaded
        return adapter.describe(handle)


class TestQuantRTNOnGPT2(_QuantRTNContract):
    model_kind = "gpt2"


class TestQuantRTNOnLlama(_QuantRTNContract):
    model_kind = "llama"


class TestEditsPlugin(PluginContract):
    entry_point = "edits"
