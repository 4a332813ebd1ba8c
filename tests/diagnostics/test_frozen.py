"""The frozen-blocks control of (d): the blocks keep their initial weights bit for bit, the rest trains."""

from __future__ import annotations

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.diagnostics import frozen_blocks_baseline
from guardchain.diagnostics.codes import DiagnosticsErrorCode

from .residual_nets import ResMLP, accuracy, make_model, parity_task, train


@pytest.fixture(scope="module")
def task():
    return parity_task()


def test_the_blocks_start_at_the_trained_networks_initialisation_and_never_move(task):
    seen = {}

    def training(model):
        seen["init"] = {k: v.clone() for k, v in model.state_dict().items()}
        seen["flags"] = {n: p.requires_grad for n, p in model.named_parameters()}
        train(model, task, "bp", seed=0, steps=50)
        seen["after"] = {k: v.clone() for k, v in model.state_dict().items()}

    state = torch.random.get_rng_state()
    result = frozen_blocks_baseline(ResMLP, training, lambda m: accuracy(m, task), seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    reference = make_model(0).state_dict()  # the trainable network under the same seed
    assert all(torch.equal(seen["init"][k], reference[k]) for k in reference)
    blocks = [k for k in reference if k.startswith("blocks.")]
    others = [k for k in reference if not k.startswith("blocks.")]
    assert all(torch.equal(seen["after"][k], reference[k]) for k in blocks)
    assert all(not torch.equal(seen["after"][k], reference[k]) for k in others)
    assert not any(seen["flags"][k] for k in blocks) and all(seen["flags"][k] for k in others)
    assert result.frozen_parameters == sum(reference[k].numel() for k in blocks)
    assert result.trained_parameters == sum(reference[k].numel() for k in others)
    assert 0.0 <= result.accuracy <= 1.0 and result.seed == 0


def test_a_training_function_that_moves_the_blocks_is_refused(task):
    def careless(model):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)

    with pytest.raises(GuardchainError) as caught:
        frozen_blocks_baseline(ResMLP, careless, lambda m: accuracy(m, task), seed=0)
    assert caught.value.code == DiagnosticsErrorCode.FROZEN and "changed 24 frozen" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"blocks": "layers"}, "no submodule 'layers'"),
        ({"blocks": lambda m: []}, "hold no parameter"),
        ({"blocks": lambda m: [m]}, "no parameter is left to train"),
    ],
)
def test_bad_block_selections_are_coded_errors(task, kwargs, fragment):
    with pytest.raises(GuardchainError) as caught:
        frozen_blocks_baseline(ResMLP, lambda m: None, lambda m: 0.5, seed=0, **kwargs)
    assert caught.value.code == DiagnosticsErrorCode.FROZEN and fragment in str(caught.value)


def test_an_accuracy_in_percent_is_refused():
    with pytest.raises(GuardchainError) as caught:
        frozen_blocks_baseline(ResMLP, lambda m: None, lambda m: 87.0, seed=0)
    assert caught.value.code == DiagnosticsErrorCode.FROZEN and "in [0, 1]" in str(caught.value)
