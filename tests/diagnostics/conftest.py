"""Shared fixtures of the diagnostics tests: the installed registry, models loaded by the real adapters from the
session's tiny checkpoints (``tiny_model_dirs`` in ``tests/conftest.py``), and seeded random token windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.windows import TokenWindows


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Every installed plugin (the adapters, data, and this member)."""
    return Registry.discover(RegistrySettings())


def random_windows(
    vocab: int, *, n: int = 16, seq_len: int = 12, seed: int = 0, lengths: Sequence[int] | None = None, low: int = 5
) -> TokenWindows:
    """``n`` windows of seeded random ids in ``low .. vocab - 1`` (no special tokens); ``lengths`` cuts window ``i``
    to ``lengths[i]`` tokens."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(low, vocab, (n, seq_len), generator=generator).tolist()
    if lengths is not None:
        rows = [row[:length] for row, length in zip(rows, lengths, strict=True)]
    return TokenWindows(
        ids=tuple(f"doc:{i * seq_len}" for i in range(n)),
        tokens=tuple(tuple(r) for r in rows),
        splits=("final",) * n,
        seq_len=seq_len,
        stride=seq_len,
        seed=seed,
        dataset_sha256="0" * 64,
        tokenizer_sha256="0" * 64,
        source="random test windows",
    )


@dataclass
class Loaded:
    adapter: Any
    handle: Any
    context: RunContext

    @property
    def model(self) -> torch.nn.Module:
        return self.handle.model  # type: ignore[no-any-return]


@pytest.fixture
def load(registry: Registry, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> Callable[..., Loaded]:
    """``load("gpt2" | "llama" | "bert" | "bert_cls" | "tiny-gpt2", **adapter_config)``: a fresh handle loaded by
    ``hf_auto``, and a run context carrying the adapter, the handle and random windows over its vocabulary."""
    pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")

    def do(kind: str, **adapter_config: Any) -> Loaded:
        if kind == "bert_cls":
            adapter_config.setdefault("head", "sequence_classification")
        context = RunContext(run_id="diagnostics-test", seed=0, out_dir=tmp_path / "run", registry=registry)
        adapter = registry.create("adapter", "hf_auto", adapter_config).instance
        handle = adapter.load(kind if kind == "tiny-gpt2" else str(tiny_model_dirs[kind]), context)
        context.adapter, context.handle = adapter, handle
        context.data = random_windows(len(handle.tokenizer))
        return Loaded(adapter, handle, context)

    return do
