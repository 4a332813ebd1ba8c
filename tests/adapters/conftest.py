"""Tiny random-init transformers models with tiny offline tokenizers, saved with ``save_pretrained``.

Nothing is downloaded: configs are built in code, tokenizers are ``tokenizers`` WordLevel models over a fixed
word list wrapped in ``PreTrainedTokenizerFast``. Each model is built once per session (seeded) into a temporary
directory; tests load it through the adapters like any local checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import guardchain.adapters.plugin as hf_plugin
from guardchain.core.context import RunContext
from guardchain.core.kinds import CapabilityKind
from guardchain.core.registry import Registry

WORDS = (  # noqa: SIM905 - a word list reads best as one string
    "the of and to in that he shall unto for i his a lord they be is him not them it with all thou thy "
    "was god which my me said but ye their have will thee from as are when this out were by upon man israel king son"
).split()

#: architecture -> adapter that handles it
ADAPTERS = {"gpt2": "hf_gpt2", "llama": "hf_llama", "bert": "hf_bert", "bert_cls": "hf_bert", "bert_base": "hf_bert"}


def _tokenizer(specials: list[str], unk: str, **special_kwargs: str) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, **special_kwargs)


def gpt2_tokenizer() -> Any:
    return _tokenizer(["<|endoftext|>"], "<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def llama_tokenizer() -> Any:
    return _tokenizer(["<unk>", "<s>", "</s>"], "<unk>", bos_token="<s>", eos_token="</s>")


def bert_tokenizer() -> Any:
    return _tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_model(kind: str) -> tuple[Any, Any]:
    """A random-init tiny model (2 blocks, hidden 32) and its tokenizer, seeded."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(0)
    if kind == "gpt2":
        tok = gpt2_tokenizer()
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
        tok = llama_tokenizer()
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
    tok = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=0,
        initializer_range=0.1,
        num_labels=3,
    )
    if kind == "bert":
        return BertForMaskedLM(config), tok
    if kind == "bert_cls":
        return BertForSequenceClassification(config), tok
    if kind == "bert_base":
        return BertModel(config), tok
    raise ValueError(kind)


def save_model(kind: str, directory: Path, **save_kwargs: Any) -> Path:
    model, tok = build_model(kind)
    model.save_pretrained(directory, **save_kwargs)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"gpt2", "llama", "bert", "bert_cls", "bert_base"}`` -> a save_pretrained directory."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_model(kind, root / kind) for kind in ADAPTERS}


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
