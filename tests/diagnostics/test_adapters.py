"""Hidden states read through the real adapters' sites (GPT-2, Llama, BERT), checked against the models' own
``output_hidden_states`` and autograd; padding excluded; half-precision models measured in float32 and restored."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from guardchain.core.windows import LabeledTexts
from guardchain.diagnostics import FaDiagnosticsConfig, diagnose_handle

from .conftest import random_windows

pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")


def by_id(windows):
    return dict(zip(windows.ids, windows.tokens, strict=True))


@pytest.mark.parametrize(("kind", "loss"), [("gpt2", "causal_lm"), ("llama", "causal_lm"), ("bert", "masked_lm")])
def test_every_family_is_diagnosed_through_its_adapter(load, kind, loss):
    m = load(kind)
    report = diagnose_handle(m.handle, m.adapter, m.context.data, FaDiagnosticsConfig(batch_size=3), seed=0)
    assert len(report.residual_norms) == 3  # two blocks: h_0, h_1, h_2
    assert report.setup["loss"] == loss and report.setup["loss_source"] == "provenance.head"
    assert report.setup["n_batches"] == 4 and report.setup["drift_mode"] == "flattened"
    assert all(g > 0 for g in report.bp_grad_norms)
    assert report.verdict == "trustworthy"  # small random-init models: nothing explodes
    assert [len(ids) for ids in report.batch_ids] == [3] * 4
    assert len({i for ids in report.batch_ids for i in ids}) == 12  # disjoint
    assert not any(p.requires_grad is False for p in m.model.parameters())  # flags restored


def reference_causal(model, windows):
    """``R_l``, ``G_l`` for ``l < L`` from ``output_hidden_states`` (each window run alone: no padding at all)."""
    hidden, total = [], 0
    for tokens in windows:
        ids = torch.tensor([tokens])
        out = model(input_ids=ids, output_hidden_states=True)
        states = out.hidden_states[:-1]  # the last one is after the final norm: not h_L
        for h in states:
            h.retain_grad()
        hidden.append((states, out.logits, ids))
        total += len(tokens) - 1
    loss = sum(F.cross_entropy(z[0, :-1], ids[0, 1:], reduction="sum") for _, z, ids in hidden) / total
    loss.backward()
    layers = len(hidden[0][0])
    norms = [torch.cat([s[layer][0].detach().norm(dim=-1) for s, _, _ in hidden]) for layer in range(layers)]
    grads = [torch.cat([s[layer].grad[0] for s, _, _ in hidden]) for layer in range(layers)]
    return [float(n.double().median()) for n in norms], [float(g.double().norm()) for g in grads]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_causal_models_match_output_hidden_states_with_padding_excluded(load, kind):
    m = load(kind)
    windows = random_windows(len(m.handle.tokenizer), n=8, seq_len=10, lengths=[10, 4, 7, 10, 3, 9, 10, 6])
    report = diagnose_handle(m.handle, m.adapter, windows, FaDiagnosticsConfig(batch_size=4), seed=3)
    assert report.setup["drift_mode"] == "token_mean"  # unequal lengths: token positions do not align
    first = [by_id(windows)[i] for i in report.batch_ids[0]]
    assert report.setup["tokens_per_batch"][0] == sum(len(t) for t in first)
    norms, grads = reference_causal(m.model, first)
    assert report.residual_norms[:-1] == pytest.approx(norms, rel=1e-5)
    assert report.bp_grad_norms[:-1] == pytest.approx(grads, rel=1e-4)


def test_bert_classification_matches_output_hidden_states_for_every_layer(load):
    m = load("bert_cls")
    texts = LabeledTexts(
        ids=tuple(f"ex{i}" for i in range(8)),
        texts=tuple(" ".join(["the", "lord", "of", "israel", "king", "son"][: 2 + i % 5]) for i in range(8)),
        labels=tuple(i % 3 for i in range(8)),
        dataset_sha256="0" * 64,
    )
    report = diagnose_handle(m.handle, m.adapter, texts, FaDiagnosticsConfig(batch_size=4), seed=1)
    assert report.setup["loss"] == "classification"
    rows = [texts.ids.index(i) for i in report.batch_ids[0]]
    encoded = m.handle.tokenizer([texts.texts[r] for r in rows], padding=True, return_tensors="pt")
    out = m.model(**encoded, output_hidden_states=True)
    for h in out.hidden_states:
        h.retain_grad()
    F.cross_entropy(out.logits, torch.tensor([texts.labels[r] for r in rows])).backward()
    keep = encoded["attention_mask"].bool()
    norms = [float(h[keep].detach().double().norm(dim=-1).median()) for h in out.hidden_states]
    grads = [float(h.grad[keep].double().norm()) for h in out.hidden_states]
    assert len(report.residual_norms) == len(out.hidden_states) == 3  # BERT has no final norm: h_L included
    assert report.residual_norms == pytest.approx(norms, rel=1e-5)
    assert report.bp_grad_norms == pytest.approx(grads, rel=1e-4)
    hits = int((out.logits.argmax(-1) == torch.tensor([texts.labels[r] for r in rows])).sum())
    assert 0 <= hits <= 4 and report.setup["headline_source"] == "measured"


def test_masked_lm_masks_a_seeded_fraction_and_records_it(load):
    m = load("bert")
    cfg = FaDiagnosticsConfig(batch_size=4, mask_fraction=0.25)
    a = diagnose_handle(m.handle, m.adapter, m.context.data, cfg, seed=5)
    b = diagnose_handle(m.handle, m.adapter, m.context.data, cfg, seed=5)
    c = diagnose_handle(m.handle, m.adapter, m.context.data, cfg, seed=6)
    assert a == b and a.bp_grad_norms != c.bp_grad_norms
    assert a.seeds == {"batches": 5, "masking": 5} and a.setup["mask_fraction"] == 0.25
    assert all(4 <= s <= 4 * 12 for s in a.setup["scored_per_batch"])  # at least one masked token per window
    assert a.setup["tokens_per_batch"] == [4 * 14] * 4  # [CLS] + 12 content + [SEP]


def test_a_bfloat16_model_is_measured_in_float32_and_restored_bit_for_bit(load):
    m = load("gpt2", dtype="bfloat16")
    digest = m.adapter.weights_digest(m.handle)
    report = diagnose_handle(m.handle, m.adapter, m.context.data, FaDiagnosticsConfig(), seed=0)
    assert report.setup["compute_dtype"] == "float32" and report.setup["model_dtypes"] == ["bfloat16"]
    assert m.adapter.weights_digest(m.handle) == digest
    assert {p.dtype for p in m.model.parameters()} == {torch.bfloat16}
    reference = load("gpt2")  # the same weights in float32 give nearly the same numbers
    full = diagnose_handle(reference.handle, reference.adapter, reference.context.data, FaDiagnosticsConfig(), seed=0)
    assert report.residual_norms == pytest.approx(full.residual_norms, rel=0.05)


def test_the_same_seed_draws_the_same_batches_and_another_seed_others(load):
    m = load("gpt2")
    a = diagnose_handle(m.handle, m.adapter, m.context.data, FaDiagnosticsConfig(), seed=0)
    b = diagnose_handle(m.handle, m.adapter, m.context.data, FaDiagnosticsConfig(seed=0), seed=99)
    c = diagnose_handle(m.handle, m.adapter, m.context.data, FaDiagnosticsConfig(), seed=1)
    assert a == b and a.batch_ids != c.batch_ids
    assert a.to_json() == b.to_json()
