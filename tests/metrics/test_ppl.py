"""ppl: agrees with the model's own loss, pairs exactly, and refuses what it cannot score."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from guardchain.certify.statistics import paired_comparison
from guardchain.core.errors import GuardchainError
from guardchain.core.windows import LabeledTexts
from guardchain.metrics.config import PplConfig
from guardchain.metrics.perplexity import Perplexity, weighted_perplexity


def ppl(split="final", batch_size=8):
    return Perplexity(PplConfig(split=split, batch_size=batch_size))


def labels_loss_perplexity(model, windows):
    """exp of the token-weighted mean NLL from the model's own ``labels=`` loss, one window at a time (no padding)."""
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for tokens in windows.tokens:
            ids = torch.tensor([tokens])
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over the len - 1 predicted tokens
            total_nll += loss * (len(tokens) - 1)
            total_tokens += len(tokens) - 1
    return math.exp(total_nll / total_tokens), total_tokens


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_ppl_is_exp_of_the_token_weighted_mean_nll_of_the_models_own_loss(
    causal, make_context, make_windows, batch_size
):
    windows = make_windows(short=(5, 9))  # two shorter windows: batches are padded
    result = ppl("all", batch_size).compute(causal, windows, make_context(causal))
    expected, n_tokens = labels_loss_perplexity(causal.model, windows)
    assert result.value == pytest.approx(expected, rel=1e-5)
    assert result.details["n_tokens"] == n_tokens == sum(result.unit_weights)
    assert result.unit_weights[5] == 7.0 and result.unit_weights[0] == 15.0
    assert result.unit_ids == windows.ids
    assert result.units == "perplexity"
    assert result.details["mode"] == "causal"


def test_per_unit_is_each_windows_mean_nll(causal, make_context, windows):
    result = ppl("all").compute(causal, windows, make_context(causal))
    with torch.no_grad():
        for tokens, nll in zip(windows.tokens, result.per_unit, strict=True):
            ids = torch.tensor([tokens])
            assert nll == pytest.approx(causal.model(input_ids=ids, labels=ids).loss.item(), rel=1e-5)


def test_the_split_selects_windows(causal, make_context, windows):
    context = make_context(causal)
    final = ppl("final").compute(causal, windows, context)
    preview = ppl("preview").compute(causal, windows, context)
    both = ppl("all").compute(causal, windows, context)
    assert final.unit_ids == windows.select("final").ids and len(final.unit_ids) == 8
    assert preview.unit_ids == windows.select("preview").ids and len(preview.unit_ids) == 4
    assert both.unit_ids == windows.ids
    assert final.details["windows_digest"] == windows.select("final").digest()
    assert both.details["windows_digest"] == windows.digest()


def test_a_model_paired_with_itself_has_ratio_exactly_one(causal, make_context, windows):
    metric, context = ppl(), make_context(causal)
    baseline = metric.compute(causal, windows, context)
    subject = metric.compute(causal, windows, context)
    comparison = paired_comparison(baseline, subject)
    assert comparison.estimate == 1.0
    assert (comparison.ci_low, comparison.ci_high) == (1.0, 1.0)


def test_exp_of_the_weighted_mean_delta_is_the_perplexity_ratio(causal, causal_other, make_context, make_windows):
    windows = make_windows(n_final=12, short=(6,))
    metric = ppl()
    baseline = metric.compute(causal, windows, make_context(causal))
    subject = metric.compute(causal_other, windows, make_context(causal_other))
    assert subject.value != baseline.value
    comparison = paired_comparison(baseline, subject)
    assert comparison.estimate == pytest.approx(subject.value / baseline.value, rel=1e-9)
    assert comparison.ci_low < comparison.estimate < comparison.ci_high


def test_the_uncertainty_is_the_delta_method_standard_error(causal, make_context, windows):
    result = ppl("all").compute(causal, windows, make_context(causal))
    nll = np.array(result.per_unit)
    # all windows are full, so the weights are equal and the formula reduces to ppl * sd(l) / sqrt(n)
    assert len(set(result.unit_weights)) == 1
    assert result.uncertainty == pytest.approx(result.value * nll.std(ddof=1) / math.sqrt(len(nll)), rel=1e-9)


def test_weighted_perplexity_weights_tokens_not_windows():
    value, mean, stderr = weighted_perplexity(np.array([1.0, 3.0]), np.array([3.0, 1.0]))
    assert mean == pytest.approx(1.5) and value == pytest.approx(math.exp(1.5))
    # n/(n-1) * sum((w/W)^2 (l - mean)^2) = 2 * (0.75^2 * 0.25 + 0.25^2 * 2.25) = 0.5625
    assert stderr == pytest.approx(math.exp(1.5) * math.sqrt(0.5625))
    assert weighted_perplexity(np.array([2.0]), np.array([5.0]))[2] is None


def test_masked_models_give_pseudo_perplexity(masked, make_context, windows, adapter):
    result = ppl().compute(masked, windows, make_context(masked))
    assert result.details["mode"] == "pseudo" and result.details["mode_source"] == "provenance"
    assert all(w == windows.seq_len for w in result.unit_weights)  # every position is scored
    undeclared = replace(masked, provenance={})
    detected = ppl().compute(undeclared, windows, make_context(undeclared))
    assert (detected.details["mode"], detected.details["mode_source"]) == ("pseudo", "detected")
    assert detected.value == result.value


def test_causal_mode_is_detected_without_provenance(causal, make_context, windows):
    undeclared = replace(causal, provenance={})
    result = ppl().compute(undeclared, windows, make_context(undeclared))
    assert (result.details["mode"], result.details["mode_source"]) == ("causal", "detected")


def test_the_hf_adapters_head_names_the_mode(masked, make_context, windows):
    # a wrong declaration wins over detection: the provenance is the adapter's word
    declared = replace(masked, provenance={"head": "causal_lm"})
    result = ppl().compute(declared, windows, make_context(declared))
    assert (result.details["mode"], result.details["mode_source"]) == ("causal", "provenance")


def test_ppl_refuses_data_that_is_not_token_windows(causal, make_context):
    examples = LabeledTexts(ids=("a",), texts=("the model",), labels=(0,), dataset_sha256="0" * 64)
    for data in (examples, [[1, 2, 3]], None):
        with pytest.raises(GuardchainError) as caught:
            ppl().compute(causal, data, make_context(causal))
        assert caught.value.code == "GC-METRIC-DATA-TYPE"


def test_ppl_needs_an_adapter_with_token_logprobs(causal, make_context, windows):
    for adapter in (None, object()):
        with pytest.raises(GuardchainError) as caught:
            ppl().compute(causal, windows, make_context(causal, with_adapter=adapter))
        assert caught.value.code == "GC-METRIC-NO-ADAPTER"


def test_an_empty_split_is_an_error(causal, make_context, make_windows):
    with pytest.raises(GuardchainError) as caught:
        ppl("preview").compute(causal, make_windows(n_preview=0), make_context(causal))
    assert caught.value.code == "GC-METRIC-EMPTY"


def test_windows_from_another_tokenizer_are_refused(causal, make_context, windows):
    recorded = replace(causal, provenance={"tokenizer_sha256": "e" * 64})
    with pytest.raises(GuardchainError) as caught:
        ppl().compute(recorded, windows, make_context(recorded))
    assert caught.value.code == "GC-METRIC-TOKENIZER-MISMATCH"
    matching = replace(causal, provenance={"tokenizer_sha256": "t" * 64})
    assert ppl().compute(matching, windows, make_context(matching)).details["tokenizer_checked"] is True


class StubAdapter:
    """Returns fixed log-probabilities, to provoke the metric's checks."""

    def __init__(self, make):
        self.make = make

    def token_logprobs(self, handle, batch):
        return self.make(batch["input_ids"].shape)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda shape: torch.full(shape, float("nan")), "GC-METRIC-NO-SCORED-TOKENS"),
        (lambda shape: torch.full(shape, -float("inf")), "GC-MODEL-NONFINITE"),
        (lambda shape: torch.zeros(shape[0], shape[1] + 1), "GC-METRIC-ADAPTER-OUTPUT"),
    ],
)
def test_unusable_adapter_output_is_an_error(causal, make_context, windows, make, code):
    with pytest.raises(GuardchainError) as caught:
        ppl().compute(causal, windows, make_context(causal, with_adapter=StubAdapter(make)))
    assert caught.value.code == code


def test_padding_is_never_scored_even_if_the_adapter_returns_values_there(causal, make_context, make_windows):
    windows = make_windows(n_preview=0, n_final=2, short=(1,))
    result = ppl().compute(causal, windows, make_context(causal, with_adapter=StubAdapter(lambda s: -torch.ones(s))))
    assert result.unit_weights == (16.0, 8.0)
    assert result.per_unit == (1.0, 1.0) and result.value == pytest.approx(math.e)
    assert result.details["mode"] == "causal"  # from the handle's provenance, not from the stub's output


def test_progress_is_reported_per_batch_through_the_context(causal, make_context, windows):
    context = make_context(causal)
    calls: list[tuple[str, int, int]] = []
    context.progress = lambda task, done, total: calls.append((task, done, total))
    ppl("final", 3).compute(causal, windows, context)
    n = len(windows.select("final"))
    assert [c[1] for c in calls] == [min(k, n) for k in range(3, n + 3, 3)]
    assert {(c[0], c[2]) for c in calls} == {("ppl: final windows", n)}
