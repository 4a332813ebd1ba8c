"""Tiny random-init GPT-2, Llama and BERT models (the session's shared checkpoints, ``tiny_model_dirs`` in
``tests/conftest.py``), loaded through the HF adapters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
pytest.importorskip("guardchain.interventions", reason="guardchain-interventions is not installed")

ADAPTERS = {"gpt2": "hf_gpt2", "llama": "hf_llama", "bert": "hf_bert"}
#: first content token id and content vocabulary size of each kind's tiny tokenizer (specials come first)
CONTENT_IDS = {"gpt2": (1, 50), "llama": (3, 50), "bert": (5, 50)}


@pytest.fixture(scope="session")
def tiny_dirs(tiny_model_dirs: dict[str, Path]) -> dict[str, Path]:
    """``{"gpt2", "llama", "bert"}`` -> a save_pretrained directory (shared session checkpoints)."""
    return {kind: tiny_model_dirs[kind] for kind in ADAPTERS}


@pytest.fixture(scope="session")
def iv_registry() -> Registry:
    """Every installed plugin (the HF adapters and this member among them)."""
    return Registry.discover(RegistrySettings())


@pytest.fixture
def iv_context(tmp_path: Path, iv_registry: Registry) -> RunContext:
    return RunContext(run_id="interventions-test", seed=0, out_dir=tmp_path / "run", registry=iv_registry)


@pytest.fixture
def load_tiny(
    iv_registry: Registry, tiny_dirs: dict[str, Path], iv_context: RunContext
) -> Callable[[str], tuple[Any, Any]]:
    """``adapter, handle = load_tiny("gpt2")``: a fresh handle of a tiny model through its adapter."""

    def do(kind: str) -> tuple[Any, Any]:
        adapter = iv_registry.create("adapter", ADAPTERS[kind], {}).instance
        return adapter, adapter.load(str(tiny_dirs[kind]), iv_context)

    return do


@pytest.fixture(scope="session")
def tokens() -> Callable[..., dict[str, torch.Tensor]]:
    """``tokens("gpt2", batch, length, seed=1)``: random content token ids with an all-ones attention mask."""

    def make(kind: str, batch: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
        low, size = CONTENT_IDS[kind]
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(low, low + size, (batch, length), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return make
