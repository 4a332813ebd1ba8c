"""Shared fixtures: the fixture plugin distributions, built and installed once per session, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["guardchain.testing.fixtures"]

REPO = Path(__file__).resolve().parents[1]
DISTS = REPO / "tests" / "fixtures" / "dists"
FAKES_SRC = DISTS / "gc-fakes" / "src"


def pytest_configure(config: pytest.Config) -> None:
    # certify caches baseline evaluations by default: tests never write to the user's ~/.cache
    os.environ.setdefault("GUARDCHAIN_CACHE_DIR", tempfile.mkdtemp(prefix="guardchain-test-cache-"))
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@dataclass(frozen=True)
class FixtureSites:
    """Per-distribution install directories of the fixture dists (``pip install --target``), split by RECORD."""

    root: Path
    by_dist: dict[str, Path]

    def pythonpath(self, dists: Iterable[str]) -> str:
        return os.pathsep.join(str(self.by_dist[d]) for d in dists)

    @property
    def all(self) -> list[str]:
        return sorted(self.by_dist)


def _split_by_record(site: Path, out: Path) -> dict[str, Path]:
    sites: dict[str, Path] = {}
    for dist_info in site.glob("*.dist-info"):
        meta = (dist_info / "METADATA").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in meta if line.startswith("Name:"))
        target = out / name
        for row in (dist_info / "RECORD").read_text().splitlines():
            rel = row.split(",", 1)[0]
            if not rel or rel.startswith(".."):
                continue
            src = site / rel
            if src.is_file():
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        sites[name] = target
    return sites


@pytest.fixture(scope="session")
def fixture_sites(tmp_path_factory: pytest.TempPathFactory) -> FixtureSites:
    """Build every dist under tests/fixtures/dists with the real backend and install it with pip, once."""
    root = tmp_path_factory.mktemp("fixture-dists")
    site = root / "site"
    dists = sorted(str(p) for p in DISTS.iterdir() if (p / "pyproject.toml").is_file())
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "--disable-pip-version-check", "--target", str(site), *dists]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return FixtureSites(root=root, by_dist=_split_by_record(site, root / "by-dist"))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def run_cli(
    *args: str,
    pythonpath: str = "",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prelude: str = "",
) -> CliResult:
    """Run ``guardchain ARGS`` in a fresh interpreter, as the console script does (optionally after ``prelude``
    code), with PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_")}
    environ["PYTHONPATH"] = pythonpath
    environ.update(env or {})
    entry = f"import sys\nfrom guardchain.core.cli import console_main\nsys.exit(console_main({list(args)!r}))"
    code = f"{prelude}\n{entry}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def fakes_module(monkeypatch: pytest.MonkeyPatch):
    """The gc_fakes registration module imported from source (for in-process registry tests)."""
    monkeypatch.syspath_prepend(str(FAKES_SRC))
    import gc_fakes.plugin

    return gc_fakes.plugin


@pytest.fixture
def cli():
    """``cli(*args, pythonpath=..., env=...)`` runs the guardchain CLI in a subprocess."""
    return run_cli


WORDS = (  # noqa: SIM905 - a word list reads best as one string
    "the of and to in that he shall unto for i his a lord they be is him not them it with all thou thy "
    "was god which my me said but ye their have will thee from as are when this out were by upon man israel king son"
).split()


def _word_tokenizer(specials: list[str], unk: str, **special_kwargs: str) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=unk, **special_kwargs)


#: The tiny models every test folder shares: architecture kind -> the adapter that handles it.
TINY_MODEL_ADAPTERS = {
    "gpt2": "hf_gpt2",
    "llama": "hf_llama",
    "bert": "hf_bert",
    "bert_cls": "hf_bert",
    "bert_base": "hf_bert",
}


def build_tiny_model(kind: str) -> tuple[Any, Any]:
    """A random-init tiny model (2 blocks, hidden 32, 4 heads) and its WordLevel tokenizer, seeded.

    ``kind``: ``gpt2`` (``GPT2LMHeadModel``), ``llama`` (``LlamaForCausalLM``, 2 KV heads, untied), ``bert``
    (``BertForMaskedLM``), ``bert_cls`` (``BertForSequenceClassification``, 3 labels) or ``bert_base``
    (``BertModel``). Nothing is downloaded: configs are built in code.
    """
    import torch
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
        tok = _word_tokenizer(["<|endoftext|>"], "<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
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
        tok = _word_tokenizer(["<unk>", "<s>", "</s>"], "<unk>", bos_token="<s>", eos_token="</s>")
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
    if kind not in ("bert", "bert_cls", "bert_base"):
        raise ValueError(kind)
    tok = _word_tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        "[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    bert = BertConfig(
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
    head = {"bert": BertForMaskedLM, "bert_cls": BertForSequenceClassification, "bert_base": BertModel}[kind]
    return head(bert), tok


def save_tiny_model(kind: str, directory: Path, **save_kwargs: Any) -> Path:
    """:func:`build_tiny_model` saved with ``save_pretrained`` (model and tokenizer) into ``directory``."""
    model, tok = build_tiny_model(kind)
    model.save_pretrained(directory, **save_kwargs)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of :data:`TINY_MODEL_ADAPTERS` -> its ``save_pretrained`` directory, built once per session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_tiny_model(kind, root / kind) for kind in TINY_MODEL_ADAPTERS}


@pytest.fixture(scope="session")
def tiny_model_saver() -> Any:
    """``tiny_model_saver("gpt2", directory, **save_kwargs)``: a fresh copy of a tiny model (see
    :func:`save_tiny_model`), for tests that modify or re-serialise the checkpoint."""
    return save_tiny_model
