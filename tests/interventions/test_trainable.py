"""Trainable interventions: formulas, orthogonality, frozen base model, and DAS recovering a planted variable.

The synthetic task plants a 1-D causal variable: inputs ``(a, b, n_1..n_6)`` uniform in [0, 1]; a fixed random
orthogonal ``Q`` writes ``h = Q [v, a - b, n]`` with ``v = a + b``; the readout depends on ``v = (h Q)_0`` only:
label ``1[v > 1]``. The counterfactual label of an interchange on the true subspace is the
source's label. DAS with k = 1 must find ``Q[:, 0]`` (up to sign).
"""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import HookPoint, SiteRef
from guardchain.interventions import (
    AlignmentBatch,
    Binding,
    BoundlessRotatedSpace,
    IntervenedModel,
    LowRankRotatedSpace,
    RotatedSpace,
    Units,
    eval_alignment,
    train_alignment,
)
from guardchain.interventions.codes import InterventionErrorCode

D = 8


class Planted(torch.nn.Module):
    """``(B, 1, D)`` inputs -> ``(B, 1, D)`` hidden (module ``hidden``) -> ``(B, 2)`` logits."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=generator))
        self.register_buffer("q", q)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.hidden = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., 0], x[..., 1]
        v = a + b
        features = torch.cat([v[..., None], (a - b)[..., None], x[..., 2:]], dim=-1) * self.scale
        h = self.hidden(features @ self.q.T)
        v_read = (h @ self.q)[..., 0]
        logit = 12.0 * (v_read - 1.0)
        return torch.stack([-logit, logit], dim=-1)[:, 0]


def _examples(n: int, seed: int, batch: int = 256) -> list[AlignmentBatch]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        base = torch.rand(batch, 1, D, generator=generator)
        source = torch.rand(batch, 1, D, generator=generator)
        label = (source[:, 0, :2].sum(-1) > 1).long()
        out.append(AlignmentBatch(base=base, sources=[source], labels=label))
    return out


SITE = SiteRef(site="hidden.output", module_path="hidden", hook=HookPoint.OUTPUT)


@pytest.mark.parametrize(
    "make", [lambda: RotatedSpace(D, 1, seed=0), lambda: LowRankRotatedSpace(D, 1, seed=0)], ids=["rotated", "low"]
)
def test_das_recovers_a_planted_one_dimensional_variable(make):
    model = Planted()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    intervention = make()
    im = IntervenedModel(model, [Binding(SITE, intervention, Units())])
    train, held_out = _examples(8, seed=0), _examples(4, seed=1)
    start = eval_alignment(im, held_out)
    report = train_alignment(im, train, eval_batches=held_out, epochs=60, lr=0.05, patience=8, target=0.99)
    iia = eval_alignment(im, held_out)
    assert start < 0.85, f"a random subspace should not already be aligned (IIA {start:.3f})"
    assert iia >= 0.95, report
    direction = intervention.rotation[:, 0] if isinstance(intervention, RotatedSpace) else intervention.basis[:, 0]
    cosine = abs(float(direction.detach() @ model.q[:, 0]))
    assert cosine > 0.95, f"the learned direction is not the planted one (|cos| = {cosine:.3f})"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the base model stayed frozen"
    assert all(p.requires_grad for p in model.parameters()), "requires_grad flags are restored"


def test_boundless_learns_a_small_boundary_on_the_planted_variable():
    model = Planted()
    boundless = BoundlessRotatedSpace(D, init_boundary=0.5, init_temperature=0.5, seed=0)
    im = IntervenedModel(model, [Binding(SITE, boundless, Units())])
    train, held_out = _examples(8, seed=0), _examples(4, seed=1)
    train_alignment(
        im, train, eval_batches=held_out, epochs=60, lr=0.05, patience=10, extra_loss=lambda: boundless.boundary
    )
    assert eval_alignment(im, held_out) >= 0.9
    assert float(boundless.boundary.detach()) * D < 4, "the boundary shrank below half of the coordinates"


def test_rotated_formula_and_orthogonality():
    torch.manual_seed(0)
    b, s = torch.randn(3, 4, 16), torch.randn(3, 4, 16)
    rot = RotatedSpace(16, 5, seed=1)
    r = rot.rotation.detach()
    torch.testing.assert_close(r @ r.T, torch.eye(16), atol=1e-5, rtol=0)
    rb, rs = b @ r, s @ r
    rb[..., :5] = rs[..., :5]
    torch.testing.assert_close(rot(b, s), rb @ r.T, atol=1e-5, rtol=0)
    assert torch.equal(RotatedSpace(16, 5, seed=1).rotation, rot.rotation), "seeded init"

    low = LowRankRotatedSpace(16, 3, seed=1)
    w = low.basis.detach()
    torch.testing.assert_close(w.T @ w, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(low(b, s), b + (s @ w - b @ w) @ w.T, atol=1e-5, rtol=0)

    bl = BoundlessRotatedSpace(16, init_boundary=0.25, init_temperature=0.01, seed=1)
    mask = bl.mask().detach()
    assert torch.equal(mask.round(), torch.tensor([1.0] * 4 + [0.0] * 12))
    rb, rs = b @ bl.rotation.detach(), s @ bl.rotation.detach()
    expected = (rb * (1 - mask) + rs * mask) @ bl.rotation.detach().T
    torch.testing.assert_close(bl(b, s), expected, atol=1e-5, rtol=0)
    bl.set_temperature(4.0)
    assert math.isclose(float(bl.temperature.detach()), 4.0, rel_tol=1e-6)


def test_trainable_shape_errors():
    rot = RotatedSpace(16, 2)
    with pytest.raises(GuardchainError) as caught:
        rot(torch.zeros(2, 1, 8), torch.zeros(2, 1, 8))
    assert caught.value.code == InterventionErrorCode.SHAPE
    with pytest.raises(GuardchainError) as caught:
        rot(torch.zeros(2, 1, 16), None)
    assert caught.value.code == InterventionErrorCode.SOURCE
    with pytest.raises(GuardchainError) as caught:
        RotatedSpace(16, 17)
    assert caught.value.code == InterventionErrorCode.SHAPE


def test_das_on_heads_of_a_transformer_trains_only_the_intervention(load_tiny, tokens):
    adapter, handle = load_tiny("gpt2")
    site = "transformer.h.0.attn.c_proj.input"
    rot = RotatedSpace(8, 2, seed=0)
    im = IntervenedModel.from_sites(adapter, handle, [(site, rot, Units(positions=[-1], heads=[1, 2]))])
    base, source = tokens("gpt2", 4, 6, seed=1)["input_ids"], tokens("gpt2", 4, 6, seed=2)["input_ids"]
    labels = torch.randint(0, 20, (4,), generator=torch.Generator().manual_seed(0))
    weights = {k: v.clone() for k, v in handle.model.state_dict().items()}
    report = train_alignment(im, [AlignmentBatch(base, [source], labels)], epochs=3, lr=0.1)
    assert report.steps == 3 and len(report.losses) == 3
    assert report.losses[-1] < report.losses[0]
    assert all(torch.equal(v, weights[k]) for k, v in handle.model.state_dict().items())
    assert [p.shape for p in im.intervention_parameters()] == [torch.Size([8, 8])]
    assert not handle.model.training, "training and evaluating left the model in eval mode"
    eval_alignment(im, [AlignmentBatch(base, [source], labels)])
    assert not handle.model.training
