"""Tiny random-init GPT-2, Llama and BERT models (built offline, seeded), loaded through the HF adapters.

The builders follow the adapters' test conftest (test folders do not import each other): configs in code,
WordLevel tokenizers over a fixed word list, ``save_pretrained`` into a session temporary directory.
"""

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

WORDS = (  # noqa: SIM905 - a word list reads best as one string
    "the of and to in that he shall unto for i his a lord they be is him not them it with all thou thy "
    "was god which my me said but ye their have will thee from as are when this out were by upon man israel king son"
).split()

ADAPTERS = {"gpt2": "hf_gpt2", "llama": "hf_llama", "bert": "hf_bert"}


def _tokenizer(specials: list[str], unk: str, **special_kwargs: str) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, **special_kwargs)


def build_model(kind: str) -> tuple[Any, Any]:
    """A random-init tiny model (2 blocks, hidden 32, 4 heads) and its tokenizer, seeded."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        tok = _tokenizer(["<|endoftext|>"], "<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
        config = GPT2Config(
            vocab_size=len(tok),
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
            initializer_range=0.1,
        )
        return GPT2LMHeadModel(config), tok
    if kind == "llama":
        tok = _tokenizer(["<unk>", "<s>", "</s>"], "<unk>", bos_token="<s>", eos_token="</s>")
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            initializer_range=0.1,
        )
        return LlamaForCausalLM(config), tok
    if kind == "bert":
        tok = _tokenizer(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            "[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
        config = BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=66,
            pad_token_id=0,
            initializer_range=0.1,
        )
        return BertForMaskedLM(config), tok
    raise ValueError(kind)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"gpt2", "llama", "bert"}`` -> a save_pretrained directory."""
    root = tmp_path_factory.mktemp("interventions-tiny-models")
    dirs = {}
    for kind in ADAPTERS:
        model, tok = build_model(kind)
        model.save_pretrained(root / kind)
        tok.save_pretrained(root / kind)
        dirs[kind] = root / kind
    return dirs


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
        low = {"gpt2": 1, "llama": 3, "bert": 5}[kind]
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(low, low + len(WORDS), (batch, length), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return make
