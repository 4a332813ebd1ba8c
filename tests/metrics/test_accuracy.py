"""accuracy: 1.0 on a classifier's own predictions, lower after its weights change; clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from guardchain.certify.statistics import paired_comparison
from guardchain.core.errors import GuardchainError
from guardchain.core.windows import LabeledTexts
from guardchain.metrics.accuracy import Accuracy
from guardchain.metrics.config import AccuracyConfig


def accuracy(batch_size=4, max_length=128):
    return Accuracy(AccuracyConfig(batch_size=batch_size, max_length=max_length))


def sentences(tokenizer, n=30, seed=0):
    """``n`` random sentences of 3 to 11 words from the tokenizer's vocabulary (special tokens excluded)."""
    words = sorted(w for w in tokenizer.get_vocab() if not w.startswith("["))
    rng = np.random.default_rng(seed)
    return tuple(" ".join(rng.choice(words, size=int(rng.integers(3, 12)))) for _ in range(n))


def n_labels(classifier):
    return classifier.model.config.num_labels


def own_predictions(classifier, texts):
    """The classifier's arg-max class per text, one text at a time with [CLS] ... [SEP] added by hand."""
    tokenizer = classifier.tokenizer
    labels, margins = [], []
    with torch.no_grad():
        for text in texts:
            ids = [
                tokenizer.cls_token_id,
                *tokenizer(text, add_special_tokens=False)["input_ids"],
                tokenizer.sep_token_id,
            ]
            logits = classifier.model(input_ids=torch.tensor([ids])).logits[0]
            top = torch.topk(logits, 2).values
            labels.append(int(logits.argmax()))
            margins.append(float(top[0] - top[1]))
    return tuple(labels), min(margins)


def labelled(texts, labels):
    return LabeledTexts(
        ids=tuple(f"ex{i}" for i in range(len(texts))), texts=texts, labels=labels, dataset_sha256="0" * 64
    )


def test_accuracy_on_the_classifiers_own_predictions_is_one_and_drops_after_perturbation(classifier, make_context):
    texts = sentences(classifier.tokenizer)
    labels, margin = own_predictions(classifier, texts)
    assert margin > 1e-4, "the test data must not sit on a decision boundary"
    assert len(set(labels)) > 1, "the labels must not be constant"
    data = labelled(texts, labels)
    before = accuracy().compute(classifier, data, make_context(classifier))
    assert before.value == 1.0 and before.uncertainty == 0.0
    assert before.per_unit == (1.0,) * len(texts) and before.unit_ids == data.ids
    assert before.units == "fraction" and before.details["n_classes"] == n_labels(classifier) == 3

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head = classifier.model.classifier
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        head.bias.copy_(torch.randn(head.bias.shape, generator=generator))
    after = accuracy().compute(classifier, data, make_context(classifier))
    assert after.value < 1.0
    assert after.value == pytest.approx(sum(after.per_unit) / len(texts))
    assert after.uncertainty == pytest.approx(math.sqrt(after.value * (1 - after.value) / len(texts)))
    comparison = paired_comparison(before, after, kind="difference")
    assert comparison.estimate == pytest.approx(after.value - 1.0)


def test_batching_does_not_change_the_predictions(classifier, make_context):
    texts = sentences(classifier.tokenizer, 17, seed=3)
    labels, _ = own_predictions(classifier, texts)
    data = labelled(texts, labels)
    results = [accuracy(batch_size=b).compute(classifier, data, make_context(classifier)) for b in (1, 5, 32)]
    assert all(r.per_unit == results[0].per_unit for r in results)
    assert results[0].value == 1.0


def test_texts_are_truncated_to_max_length(classifier, make_context):
    texts = ("the model " * 20, "a token")
    result = accuracy(max_length=8).compute(classifier, labelled(texts, (0, 0)), make_context(classifier))
    assert result.details["n_truncated"] == 1 and result.details["max_length"] == 8


def test_accuracy_refuses_data_that_is_not_labelled_texts(classifier, make_context, windows):
    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(classifier, windows, make_context(classifier))
    assert caught.value.code == "GC-METRIC-DATA-TYPE"


def test_a_label_the_model_cannot_predict_is_an_error(classifier, make_context):
    data = labelled(("the model", "a weight"), (0, n_labels(classifier)))
    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(classifier, data, make_context(classifier))
    assert caught.value.code == "GC-METRIC-LABEL-RANGE"
    assert "'ex1'" in str(caught.value)


def test_accuracy_needs_class_logits_and_a_tokenizer(classifier, make_context, adapter):
    data = labelled(("the model",), (0,))

    class TokenOnly:
        def token_logprobs(self, handle, batch):
            raise AssertionError("not called")

    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(classifier, data, make_context(classifier, with_adapter=TokenOnly()))
    assert caught.value.code == "GC-METRIC-NO-ADAPTER"
    from dataclasses import replace

    no_tokenizer = replace(classifier, tokenizer=None)
    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(no_tokenizer, data, make_context(no_tokenizer))
    assert caught.value.code == "GC-METRIC-NO-TOKENIZER"


def test_wrongly_shaped_logits_are_an_error(classifier, make_context):
    class Flat:
        def class_logits(self, handle, batch):
            return torch.zeros(batch["input_ids"].shape[0] * 3)

    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(classifier, labelled(("a",), (0,)), make_context(classifier, with_adapter=Flat()))
    assert caught.value.code == "GC-METRIC-ADAPTER-OUTPUT"


def test_no_examples_is_an_error(classifier, make_context):
    with pytest.raises(GuardchainError) as caught:
        accuracy().compute(classifier, labelled((), ()), make_context(classifier))
    assert caught.value.code == "GC-METRIC-EMPTY"
