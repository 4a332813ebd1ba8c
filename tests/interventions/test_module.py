"""The intervened model as an nn.Module inside another model, and the package's light import."""

from __future__ import annotations

import subprocess
import sys

import torch

from guardchain.interventions import AlignmentBatch, IntervenedModel, RotatedSpace, Units, train_alignment


class Probe(torch.nn.Module):
    """A user model that runs an intervened transformer and reads its last position through a linear head."""

    def __init__(self, inner: IntervenedModel) -> None:
        super().__init__()
        self.inner = inner
        self.head = torch.nn.Linear(32, 3)

    def forward(self, ids: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        hidden = self.inner(ids, sources=[source], output_hidden_states=True).hidden_states[-1]
        return self.head(hidden[:, -1])


def test_an_intervened_model_trains_inside_another_module(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    for p in handle.model.parameters():
        p.requires_grad_(False)
    rot = RotatedSpace(32, 2, seed=0)
    probe = Probe(IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", rot, Units(positions=[-1]))]))
    trainable = [p for p in probe.parameters() if p.requires_grad]
    assert len(trainable) == 3, "the head's weight and bias and the rotation"
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    ids, source = tokens("gpt2", 4, 6)["input_ids"], tokens("gpt2", 4, 6, seed=3)["input_ids"]
    with torch.no_grad():
        handle.model(ids, output_hidden_states=True)  # transformers installs its own output-recording hooks once
    hooks = {n: dict(m._forward_hooks) for n, m in handle.model.named_modules()}
    before = rot.rotation.detach().clone()
    loss = torch.nn.functional.cross_entropy(probe(ids, source), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    assert not torch.equal(rot.rotation.detach(), before), "gradients reached the intervention through the model"
    assert {n: dict(m._forward_hooks) for n, m in handle.model.named_modules()} == hooks, "only ours were removed"


def test_train_alignment_needs_trainable_parameters(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    from guardchain.interventions import Interchange

    im = IntervenedModel.from_sites(adapter, handle, [("blocks[0].output", Interchange())])
    ids = tokens("gpt2", 2, 4)["input_ids"]
    try:
        train_alignment(im, [AlignmentBatch(ids, [ids], torch.tensor([0, 1]))])
    except ValueError as exc:
        assert "no trainable" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def test_importing_the_package_imports_no_torch():
    code = "import sys, guardchain.interventions, guardchain.interventions.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
