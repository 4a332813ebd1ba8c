"""The conformance kit on every registered intervention (tiny HF GPT-2) and on the plugin distribution."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from guardchain.testing.contracts import InterventionContract, PluginContract

SOURCE = {"source_input_ids": [[5, 6, 7, 8]], "positions": [-1]}
CONFIGS: dict[str, dict[str, Any]] = {
    "collect": {"positions": [0, -1]},
    "zero": {"positions": [1]},
    "add": {"vector": [0.1] * 32, "scale": 2.0, "positions": "0:2"},
    "scale": {"factor": 0.5, "heads": [0, 1]},
    "replace": {"value": 1.5, "positions": [[0], [1]]},
    "noise": {"std": 0.1, "seed": 3},
    "interchange": SOURCE,
    "rotated": {**SOURCE, "interchange_dim": 2},
    "low_rank_rotated": {**SOURCE, "rank": 2},
    "boundless": {**SOURCE, "init_temperature": 0.5},
}


class _Contract(InterventionContract):
    settings: ClassVar[dict[str, Any]]

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return self.settings

    @pytest.fixture
    def handle(self, load_tiny: Any) -> Any:
        return load_tiny("gpt2")[1]

    @pytest.fixture
    def sites(self) -> list[str]:
        return ["blocks[0].output", "blocks[-1].mlp.output"]


for _name, _config in CONFIGS.items():
    _cls = type(f"Test{_name.title().replace('_', '')}Contract", (_Contract,), {"name": _name, "settings": _config})
    globals()[_cls.__name__] = _cls


class TestInterventionsPlugin(PluginContract):
    entry_point = "interventions"
