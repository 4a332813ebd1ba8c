"""Tiny random-init models for the geometry tests: the session's GPT-2 / Llama checkpoints through the HF adapters,
random token windows over their vocabulary, and run contexts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.windows import TokenWindows

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
pytest.importorskip("guardchain.geometry", reason="guardchain-geometry is not installed")

ADAPTERS = {"gpt2": "hf_gpt2", "llama": "hf_llama"}
#: first content token id of each kind's tiny tokenizer (specials come first) and the content vocabulary size
CONTENT_IDS = {"gpt2": (1, 50), "llama": (3, 50)}


@pytest.fixture(scope="session")
def geo_registry() -> Registry:
    """Every installed plugin (the HF adapters, the edits and this member among them)."""
    return Registry.discover(RegistrySettings())


@pytest.fixture
def geo_context(tmp_path: Path, geo_registry: Registry) -> Callable[..., RunContext]:
    """``geo_context(adapter=None, handle=None)``: a fresh run context (seed 0) under a temporary directory."""

    def make(adapter: Any = None, handle: Any = None) -> RunContext:
        return RunContext(
            run_id="geometry-test",
            seed=0,
            out_dir=tmp_path / "run",
            registry=geo_registry,
            adapter=adapter,
            handle=handle,
        )

    return make


@pytest.fixture
def load_tiny(geo_registry: Registry, tiny_model_dirs: dict[str, Path], geo_context: Any) -> Callable[[str], Any]:
    """``adapter, handle = load_tiny("gpt2")``: a fresh handle of a tiny model through its adapter."""

    def do(kind: str) -> tuple[Any, Any]:
        adapter = geo_registry.create("adapter", ADAPTERS[kind], {}).instance
        return adapter, adapter.load(str(tiny_model_dirs[kind]), geo_context())

    return do


def random_windows(kind: str = "gpt2", *, n: int = 8, seq_len: int = 16, seed: int = 0, short: tuple[int, ...] = ()):
    """Random content-token windows of ``kind``'s tokenizer; ``short`` lists windows cut to ``seq_len // 2``."""
    low, size = CONTENT_IDS[kind]
    rng = np.random.default_rng(seed)
    tokens = rng.integers(low, low + size, size=(n, seq_len))
    rows = tuple(tuple(int(t) for t in row[: seq_len // 2 if i in short else seq_len]) for i, row in enumerate(tokens))
    return TokenWindows(
        ids=tuple(f"doc{i}:0" for i in range(n)),
        tokens=rows,
        splits=("final",) * n,
        seq_len=seq_len,
        stride=seq_len,
        seed=seed,
        dataset_sha256="d" * 64,
        tokenizer_sha256="t" * 64,
        source="random tokens",
    )


@pytest.fixture
def make_windows() -> Callable[..., TokenWindows]:
    """``make_windows(kind="gpt2", n=8, seq_len=16, seed=0, short=())`` (see :func:`random_windows`)."""
    return random_windows


@pytest.fixture
def windows() -> TokenWindows:
    return random_windows()


def _hook_counts(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
        if m._forward_hooks or m._forward_pre_hooks
    }


@pytest.fixture
def hook_counts() -> Callable[[torch.nn.Module], dict[str, tuple[int, int]]]:
    """``hook_counts(model)``: forward and forward-pre hook counts of every module that has any."""
    return _hook_counts


@pytest.fixture(scope="session")
def every_file() -> frozenset[str]:
    """The files a geometry step writes in its folder (the reference's names, plus samples and plots)."""
    return frozenset(
        {
            "metrics.json",
            "metrics.csv",
            "novelty.json",
            "novelty.csv",
            "diagnostics/normalization_ablation.json",
            "diagnostics/normalization_ablation.csv",
            "eigenvalues.npz",
            "samples.npz",
            "metadata.json",
            "spectra.png",
            "d_pr.png",
        }
    )
