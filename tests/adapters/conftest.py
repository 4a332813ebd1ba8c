"""The adapters under test, created through an in-memory registry, and the session's tiny checkpoints.

The checkpoints are ``tiny_model_dirs`` of ``tests/conftest.py``: random-init tiny models with WordLevel
tokenizers, built in code (nothing is downloaded), saved once per session; tests load them through the adapters
like any local checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import guardchain.adapters.plugin as hf_plugin
from guardchain.core.context import RunContext
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

#: architecture -> adapter that handles it
ADAPTERS = {"gpt2": "hf_gpt2", "llama": "hf_llama", "bert": "hf_bert", "bert_cls": "hf_bert", "bert_base": "hf_bert"}


@pytest.fixture(scope="session")
def tiny_dirs(tiny_model_dirs: dict[str, Path]) -> dict[str, Path]:
    """``{"gpt2", "llama", "bert", "bert_cls", "bert_base"}`` -> a save_pretrained directory (shared session
    checkpoints, ``tests/conftest.py``)."""
    return {kind: tiny_model_dirs[kind] for kind in ADAPTERS}


@pytest.fixture
def hf_registry() -> Registry:
    """A registry holding only this plugin (in memory, whatever is installed)."""
    return Registry.from_plugins({"hf": hf_plugin})


@pytest.fixture
def run_context(tmp_path: Path, hf_registry: Registry) -> RunContext:
    return RunContext(run_id="hf-test", seed=0, out_dir=tmp_path / "run", registry=hf_registry)


@pytest.fixture
def make_adapter(hf_registry: Registry) -> Callable[..., Any]:
    """``make_adapter("hf_bert", head="base")``: an adapter created through the registry with a config."""

    def make(name: str, **config: Any) -> Any:
        return hf_registry.create(CapabilityKind.ADAPTER, name, config).instance

    return make


@pytest.fixture
def load(make_adapter: Callable[..., Any], tiny_dirs: dict[str, Path], run_context: RunContext) -> Callable[..., Any]:
    """``adapter, handle = load("gpt2", dtype="bfloat16")``: a fresh handle of a tiny model."""

    def do(kind: str, **config: Any) -> tuple[Any, Any]:
        if kind in ("bert_cls", "bert_base"):
            config.setdefault("head", "sequence_classification" if kind == "bert_cls" else "base")
        adapter = make_adapter(ADAPTERS[kind], **config)
        return adapter, adapter.load(str(tiny_dirs[kind]), run_context)

    return do
