"""Bad input gets a clear coded error, never a traceback: no addressable blocks, batches of one token, fewer than
two disjoint batches, a non-finite loss, and the rest of the member's codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.windows import LabeledTexts
from guardchain.diagnostics import FaDiagnosticsConfig, diagnose, diagnose_handle
from guardchain.diagnostics.codes import DiagnosticsErrorCode as Code
from guardchain.diagnostics.metric import FaDiagnostics

from .conftest import random_windows
from .test_definitions import ScaleStack, batches


def code_of(call) -> str:
    with pytest.raises(GuardchainError) as caught:
        call()
    return caught.value.code


class LogitsOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3, dtype=torch.float64)

    def forward(self, x, **kwargs):
        return self.linear(x)


class OneState(LogitsOnly):
    def forward(self, x, return_hidden=False):
        return self.linear(x), [x]


class NoKeyword(LogitsOnly):
    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize("model", [NoKeyword(), LogitsOnly(), OneState()])
def test_a_plain_model_without_addressable_blocks(model):
    assert code_of(lambda: diagnose(model, batches())) == Code.NO_BLOCKS


def test_an_adapter_that_cannot_address_the_blocks(load):
    m = load("gpt2")
    handle = ModelHandle(model=nn.Sequential(nn.Linear(4, 4)), adapter="hf_gpt2", ref="not-a-transformer")
    with pytest.raises(GuardchainError) as caught:
        diagnose_handle(handle, m.adapter, m.context.data)
    assert caught.value.code == Code.NO_BLOCKS and "GC-HF-" in str(caught.value)


def test_no_adapter_in_the_run_context(load):
    m = load("gpt2")
    m.context.adapter = None
    assert code_of(lambda: FaDiagnostics().compute(m.handle, m.context.data, m.context)) == Code.NO_ADAPTER


def test_batches_of_one_token(load):
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), batches(rows=1))) == Code.TOO_FEW_TOKENS
    m = load("gpt2")
    ones = random_windows(len(m.handle.tokenizer), n=8, lengths=[1] * 8)
    with pytest.raises(GuardchainError) as caught:
        diagnose_handle(m.handle, m.adapter, ones)
    assert caught.value.code == Code.TOO_FEW_TOKENS and "at least two tokens" in str(caught.value)


def test_fewer_than_two_disjoint_batches(load):
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), batches(n=1))) == Code.BATCHES
    data = batches(n=3)
    with pytest.raises(GuardchainError) as caught:
        diagnose(
            ScaleStack((2.0,)),
            [data[0], data[1], (torch.cat([data[2][0], data[0][0][:1]]), torch.cat([data[2][1], data[0][1][:1]]))],
        )
    assert caught.value.code == Code.BATCHES and "batches 0 and 2 share a sample" in str(caught.value)
    m = load("gpt2")
    few = random_windows(len(m.handle.tokenizer), n=5)
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, few, FaDiagnosticsConfig(batch_size=3))) == Code.BATCHES


def test_a_non_finite_loss(load):
    model = ScaleStack((2.0,))
    with torch.no_grad():
        model.out[0, 0] = float("nan")
    with pytest.raises(GuardchainError) as caught:
        diagnose(model, batches())
    assert caught.value.code == Code.NONFINITE and "loss on batch 0 is nan" in str(caught.value)
    m = load("gpt2")
    with torch.no_grad():
        m.model.transformer.ln_f.weight[0] = float("inf")
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, m.context.data)) == Code.NONFINITE


def test_a_non_finite_hidden_state():
    model = ScaleStack((2.0,))
    with torch.no_grad():
        model.embed[0, 0] = float("inf")
    with pytest.raises(GuardchainError) as caught:
        diagnose(model, batches())
    assert caught.value.code == Code.NONFINITE and "h_0 has a non-finite norm" in str(caught.value)


def test_detached_hidden_states_have_no_gradient():
    class Detached(ScaleStack):
        def forward(self, x, return_hidden=False):
            logits, hidden = super().forward(x, return_hidden=True)
            return logits, [h.detach() for h in hidden]

    assert code_of(lambda: diagnose(Detached((2.0,)), batches())) == Code.NO_GRAD


def test_the_data_must_match_the_loss(load):
    m = load("gpt2")
    texts = LabeledTexts(ids=("a", "b"), texts=("the lord", "the king"), labels=(0, 1), dataset_sha256="0" * 64)
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, texts)) == Code.DATA_TYPE  # causal_lm by provenance
    cls = FaDiagnosticsConfig(loss="classification")
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, m.context.data, cls)) == Code.DATA_TYPE
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, [1, 2, 3])) == Code.DATA_TYPE
    masked = FaDiagnosticsConfig(loss="masked_lm")
    assert code_of(lambda: diagnose_handle(m.handle, m.adapter, m.context.data, masked)) == Code.NO_TOKENIZER


def test_a_model_that_raises(load):
    m = load("gpt2")
    huge = random_windows(10_000, n=8, low=5_000)  # ids beyond the vocabulary
    with pytest.raises(GuardchainError) as caught:
        diagnose_handle(m.handle, m.adapter, huge)
    assert caught.value.code == Code.FORWARD and "the model raised" in str(caught.value)
    assert not any(p.requires_grad is False for p in m.model.parameters())  # restored after the failure


def test_settings_errors():
    assert code_of(lambda: diagnose(nn.Linear(2, 2), batches())) == Code.NO_BLOCKS  # no return_hidden argument
    assert code_of(lambda: diagnose("model", batches())) == Code.MODEL
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), batches(), thresholds={"drift_ceiling": 3})) == Code.SETTINGS
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), batches(), headline_acc=93.0)) == Code.SETTINGS
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), [(torch.ones(2, 8), torch.zeros(3))] * 2)) == Code.BATCHES
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), [torch.ones(2, 8)] * 2)) == Code.BATCHES
    floats = [(torch.randn(4, 8, dtype=torch.float64), torch.rand(4)) for _ in range(2)]
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), floats)) == Code.SETTINGS
    assert diagnose(ScaleStack((2.0,)), floats, loss_fn=lambda z, y: ((z[:, 0] - y) ** 2).mean()).headline_acc is None
    labels = [(torch.randn(4, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 7]))] * 2
    assert code_of(lambda: diagnose(ScaleStack((2.0,)), labels, require_disjoint=False)) == Code.BATCHES


def test_the_cli_prints_a_coded_line_and_no_traceback(cli, tmp_path):
    pytest.importorskip("guardchain.adapters", reason="guardchain-adapters is not installed")
    chain = tmp_path / "bad.yaml"
    chain.write_text(
        "version: 1\nname: bad\nmodel: {ref: tiny-gpt2}\n"
        "data: {dataset: kjv_excerpt, config: {seq_len: 64, n_preview: 0, n_final: 5}}\n"
        "steps:\n  - metric: fa_diagnostics\n    config: {batch_size: 4}\n",
        encoding="utf-8",
    )
    done = cli("run", str(chain), "--out", str(tmp_path / "run"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "GC-DIAG-BATCHES steps[0]:" in done.stderr + done.stdout
    problems = json.loads(Path(tmp_path / "run" / "run.json").read_text())["problems"]
    assert [p["code"] for p in problems] == ["GC-DIAG-BATCHES"]
