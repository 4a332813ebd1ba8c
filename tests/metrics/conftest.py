"""A reference adapter over tiny random-init Hugging Face models, built offline in milliseconds.

The real adapters live in ``guardchain.adapters``; these tests must not depend on them, so
:class:`ReferenceAdapter` implements the adapter contract the metrics rely on, exactly:

- ``token_logprobs(handle, batch)``: ``batch = {"input_ids", "attention_mask"}`` (LongTensor ``[B, T]``, content
  tokens, right-padded); returns float32 CPU ``[B, T]`` with ``log p(token)`` per position and NaN where nothing is
  predicted (causal: position 0 and padding; masked: padding; each masked-LM position is scored with that token
  replaced by ``[MASK]``, i.e. pseudo-log-likelihood);
- ``class_logits(handle, batch)``: adds ``[CLS]`` / ``[SEP]`` around the content and returns ``[B, n_labels]``.

Model references: ``tiny-causal:<seed>`` (GPT-2), ``tiny-masked:<seed>`` (BERT masked LM),
``tiny-classifier:<seed>`` (BERT sequence classifier, 3 labels).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import HookPoint, ModelHandle, ModelStructure, SiteRef, WeightFamily, WeightMatrix
from guardchain.core.windows import TokenWindows

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# fmt: off
WORDS = [
    "the", "a", "an", "of", "to", "in", "and", "or", "not", "is", "was", "be",
    "are", "it", "this", "that", "with", "for", "on", "by", "from", "at", "as", "def",
    "class", "return", "if", "else", "while", "import", "yield", "lambda", "value", "list", "dict", "tuple",
    "set", "int", "str", "float", "none", "true", "false", "model", "weight", "edit", "guard", "token",
    "window", "layer", "head", "loss", "mean", "sum", "exp", "log",
]
# fmt: on
N_LABELS = 3


def build_tokenizer():
    """A WordLevel tokenizer over a small vocabulary (5 specials + ~60 words), whitespace pre-tokenized."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_model(kind: str, seed: int, vocab_size: int):
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
    )

    torch.manual_seed(seed)
    if kind == "causal":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=2,
            bos_token_id=0,
            eos_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        return GPT2LMHeadModel(config).eval()
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=N_LABELS,
        # A wide initialisation, so that a random classifier's predictions vary from text to text.
        initializer_range=0.02 if kind == "masked" else 0.5,
    )
    model = BertForMaskedLM(config) if kind == "masked" else BertForSequenceClassification(config)
    return model.eval()


class ReferenceAdapter:
    """The adapter protocol for the tiny models (see the module docstring)."""

    _REF = re.compile(r"^tiny-(causal|masked|classifier):(\d+)$")

    def __init__(self, config=None, *, record_objective: bool = True):
        self.config = config
        self.record_objective = record_objective
        self.tokenizer = build_tokenizer()

    def load(self, ref, context):
        match = self._REF.match(ref)
        if not match:
            raise ValueError(f"not a tiny model reference: {ref!r}")
        kind, seed = match.group(1), int(match.group(2))
        provenance = {"objective": kind} if self.record_objective and kind != "classifier" else {}
        model = build_model(kind, seed, len(self.tokenizer))
        return ModelHandle(model=model, adapter="reference", ref=ref, tokenizer=self.tokenizer, provenance=provenance)

    def describe(self, handle):
        weights = []
        for name, parameter in handle.model.named_parameters():
            block = re.search(r"\.(?:h|layer)\.(\d+)\.", name)
            family = WeightFamily.ATTN if "attn" in name or "attention" in name else WeightFamily.OTHER
            weights.append(WeightMatrix(name, family, tuple(parameter.shape), int(block[1]) if block else None))
        blocks = sorted({f"block.{w.block}" for w in weights if w.block is not None})
        return ModelStructure(blocks=tuple(blocks), weights=tuple(weights))

    @torch.no_grad()
    def token_logprobs(self, handle, batch):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        nan = torch.full(ids.shape, float("nan"))
        if handle.ref.startswith("tiny-causal"):
            logits = handle.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            out = nan.clone()
            out[:, 1:] = logp
        else:  # pseudo-log-likelihood: one copy of the batch per position, that position masked
            batch_size, width = ids.shape
            masked = ids.repeat_interleave(width, dim=0)
            rows = torch.arange(batch_size * width)
            masked[rows, rows % width] = self.tokenizer.mask_token_id
            logits = handle.model(input_ids=masked, attention_mask=mask.repeat_interleave(width, dim=0)).logits
            logp = torch.log_softmax(logits.float()[rows, rows % width], dim=-1)
            out = logp.gather(-1, ids.reshape(-1, 1))[:, 0].reshape(batch_size, width)
        return torch.where(mask.bool(), out, nan)

    @torch.no_grad()
    def class_logits(self, handle, batch):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = mask.sum(dim=1)
        width = ids.shape[1] + 2
        wrapped = torch.full((ids.shape[0], width), self.tokenizer.pad_token_id, dtype=torch.long)
        wrapped[:, 0] = self.tokenizer.cls_token_id
        wrapped[:, 1:-1] = torch.where(mask.bool(), ids, self.tokenizer.pad_token_id)
        wrapped[torch.arange(ids.shape[0]), lengths + 1] = self.tokenizer.sep_token_id
        wrapped_mask = (torch.arange(width)[None, :] < (lengths + 2)[:, None]).long()
        return handle.model(input_ids=wrapped, attention_mask=wrapped_mask).logits.float()

    def resolve_sites(self, handle, site):
        match = re.fullmatch(r"blocks\[(\d+)\]\.output", site)
        if not match:
            raise ValueError(f"unknown site {site!r}")
        return [SiteRef(site, f"block.{match[1]}", HookPoint.OUTPUT, int(match[1]))]

    def snapshot(self, handle, names=None):
        state = handle.model.state_dict()
        return {k: state[k].detach().clone() for k in (state if names is None else names)}

    def restore(self, handle, snapshot):
        handle.model.load_state_dict(snapshot, strict=False)

    def weights_digest(self, handle):
        digest = hashlib.sha256()
        for name, value in sorted(handle.model.state_dict().items()):
            digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
            digest.update(value.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()


@pytest.fixture(scope="session")
def adapter() -> ReferenceAdapter:
    return ReferenceAdapter()


@pytest.fixture
def make_context(tmp_path, adapter):
    """``make(handle=None, adapter=<reference>)`` builds a run context (seed 0)."""

    def make(handle=None, with_adapter=adapter):
        return RunContext(run_id="metric-test", seed=0, out_dir=tmp_path / "run", adapter=with_adapter, handle=handle)

    return make


@pytest.fixture
def causal(adapter, make_context):
    return adapter.load("tiny-causal:0", make_context())


@pytest.fixture
def causal_other(adapter, make_context):
    return adapter.load("tiny-causal:1", make_context())


@pytest.fixture
def masked(adapter, make_context):
    return adapter.load("tiny-masked:0", make_context())


@pytest.fixture
def classifier(adapter, make_context):
    return adapter.load("tiny-classifier:0", make_context())


def random_windows(vocab_size: int, *, n_preview=4, n_final=8, seq_len=16, seed=0, short=()) -> TokenWindows:
    """Windows of random content tokens; ``short`` lists window indices cut to ``seq_len // 2`` tokens."""
    rng = np.random.default_rng(seed)
    n = n_preview + n_final
    tokens = rng.integers(len(SPECIALS), vocab_size, size=(n, seq_len))
    rows = tuple(tuple(int(t) for t in row[: seq_len // 2 if i in short else seq_len]) for i, row in enumerate(tokens))
    return TokenWindows(
        ids=tuple(f"doc{i}:0" for i in range(n)),
        tokens=rows,
        splits=("preview",) * n_preview + ("final",) * n_final,
        seq_len=seq_len,
        stride=seq_len,
        seed=seed,
        dataset_sha256="d" * 64,
        tokenizer_sha256="t" * 64,
        source="random tokens",
    )


@pytest.fixture
def windows(adapter) -> TokenWindows:
    return random_windows(len(adapter.tokenizer))


@pytest.fixture
def make_windows(adapter):
    """``make(**kwargs)`` builds random windows over the reference vocabulary (see ``random_windows``)."""

    def make(**kwargs):
        return random_windows(len(adapter.tokenizer), **kwargs)

    return make
