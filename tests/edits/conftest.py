"""Tiny random-init GPT-2 and Llama checkpoints (built offline, seeded) and an installed-plugin registry.

The models are the session's shared tiny checkpoints (``tiny_model_dirs`` in ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
pytest.importorskip("guardchain.edits", reason="guardchain-edits is not installed")


@pytest.fixture(scope="session")
def tiny_dirs(tiny_model_dirs: dict[str, Path]) -> dict[str, Path]:
    """``{"gpt2", "llama"}`` -> a save_pretrained directory (the session's shared tiny causal LMs)."""
    return {kind: tiny_model_dirs[kind] for kind in ("gpt2", "llama")}


@pytest.fixture(scope="session")
def edits_registry() -> Registry:
    """Every installed plugin (the HF adapters, the data and metrics members, this member)."""
    return Registry.discover(RegistrySettings())


@pytest.fixture
def edits_context(tmp_path: Path, edits_registry: Registry) -> RunContext:
    return RunContext(run_id="edits-test", seed=0, out_dir=tmp_path / "run", registry=edits_registry)


@pytest.fixture
def load_tiny(
    edits_registry: Registry, tiny_dirs: dict[str, Path], edits_context: RunContext
) -> Callable[[str], tuple[Any, Any]]:
    """``adapter, handle = load_tiny("gpt2")``: a fresh handle of a tiny model through ``hf_auto``."""

    def do(kind: str) -> tuple[Any, Any]:
        adapter = edits_registry.create("adapter", "hf_auto", {}).instance
        return adapter, adapter.load(str(tiny_dirs[kind]), edits_context)

    return do
