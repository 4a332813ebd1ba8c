"""Fixtures of the guardchain-data tests: a small byte-level BPE tokenizer and a run context that carries it.

The tokenizer is trained here, offline, on Python's own reference prose (about 0.2 s); no model is needed to cut
windows, only ``handle.tokenizer``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.core.registry import Registry


def train_bpe(vocab_size: int = 512):
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([topics[k] for k in sorted(topics)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


_TOKENIZER_HANDLE = object()


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE tokenizer (512 tokens) wrapped as a Hugging Face fast tokenizer."""
    return train_bpe()


@pytest.fixture
def tokenizer_handle(bpe_tokenizer) -> ModelHandle:
    """A model handle that carries only the tokenizer (datasets need nothing else)."""
    return ModelHandle(model=None, adapter="tokenizer_only", ref="bpe-512", tokenizer=bpe_tokenizer)


@pytest.fixture
def data_registry() -> Registry:
    """A registry holding only guardchain-data, built from the registration module in memory."""
    import guardchain.data.plugin

    return Registry.from_plugins({"data": guardchain.data.plugin})


@pytest.fixture
def make_data_context(tmp_path: Path, tokenizer_handle):
    """``make(seed=0, handle=<the tokenizer handle>)`` builds a run context."""

    def make(seed: int = 0, handle: object = _TOKENIZER_HANDLE) -> RunContext:
        chosen = tokenizer_handle if handle is _TOKENIZER_HANDLE else handle
        return RunContext(run_id="data-test", seed=seed, out_dir=tmp_path / "run", handle=chosen)

    return make


@pytest.fixture
def data_context(make_data_context) -> RunContext:
    """A run context (seed 0) whose handle carries the BPE tokenizer."""
    return make_data_context()
