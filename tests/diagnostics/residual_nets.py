"""Small pre-LN residual MLPs trained in the tests by backprop (BP) and by direct feedback alignment (DFA), on a
seeded synthetic task, in about two CPU-seconds each.

Task: 3-bit parity of the signs of the first three of 8 Gaussian coordinates (two classes); 3072 training and 1024
held-out samples. A linear read-out of the input cannot solve it, so the deep blocks must do the work.

Network (faeval's ``model(x, return_hidden=True)`` contract): ``h_0 = embed(x)``, ``h_{l+1} = h_l + f_l(h_l)`` with
``f_l = Linear(ReLU(Linear(LayerNorm(h_l))))`` (4 blocks, width 32), logits ``= out_head(out_ln(h_L))``.

DFA (Nøkland 2016, "Direct Feedback Alignment Provides Learning in Deep Neural Networks"): with the output error
``e = (softmax(z) − onehot(y)) / B`` (the gradient of the mean cross-entropy with respect to the logits), the output
of block ``l`` receives ``e B_{l+1}`` and the embedding output ``e B_0`` as its teaching signal, ``B_l`` fixed random
``[classes, width]`` matrices; each block's input is detached, so no gradient crosses a block. ``out_ln`` and
``out_head`` get their true gradients. The same Adam settings train both rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IN, WIDTH, DEPTH, CLASSES = 8, 32, 4, 2
STEPS, BATCH, LR = 600, 128, 1e-2
N_TRAIN, N_EVAL = 3072, 1024


class ResMLP(nn.Module):
    """The network of the module docstring."""

    def __init__(self, width: int = WIDTH, depth: int = DEPTH) -> None:
        super().__init__()
        self.embed = nn.Linear(IN, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(depth)
        )
        self.out_ln = nn.LayerNorm(width)
        self.out_head = nn.Linear(width, CLASSES)

    def forward(self, x, return_hidden=False):
        h = self.embed(x)
        hidden = [h]
        for block in self.blocks:
            h = h + block(h)
            hidden.append(h)
        logits = self.out_head(self.out_ln(h))
        return (logits, hidden) if return_hidden else logits


@dataclass(frozen=True)
class Task:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor

    def eval_batches(self, n: int = 4, size: int = 128):
        """``n`` disjoint held-out batches ``(x, y)`` of ``size`` samples."""
        return [(self.x_eval[k * size : (k + 1) * size], self.y_eval[k * size : (k + 1) * size]) for k in range(n)]


def parity_task(seed: int = 1234) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN + N_EVAL, IN, generator=g)
    y = (x[:, :3] > 0).sum(dim=1) % 2
    return Task(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:])


def make_model(seed: int) -> ResMLP:
    torch.manual_seed(seed)
    return ResMLP()


def _dfa_backward(model: ResMLP, x: torch.Tensor, y: torch.Tensor, feedback: list[torch.Tensor]) -> None:
    h0 = model.embed(x)
    current = h0.detach()
    outputs = []
    for block in model.blocks:
        out = block(current)
        outputs.append(out)
        current = (current + out).detach()
    last = current.requires_grad_(True)
    logits = model.out_head(model.out_ln(last))
    F.cross_entropy(logits, y).backward()  # true gradients of out_ln and out_head only
    error = (logits.softmax(dim=-1) - F.one_hot(y, CLASSES).to(logits.dtype)).detach() / x.shape[0]
    if h0.requires_grad:
        h0.backward(error @ feedback[0])
    for layer, out in enumerate(outputs):
        if out.requires_grad:
            out.backward(error @ feedback[layer + 1])


def train(model: ResMLP, task: Task, rule: str, seed: int, steps: int = STEPS, lr: float = LR) -> ResMLP:
    """Train ``model`` in place by ``rule`` (``"bp"`` or ``"dfa"``): Adam, ``steps`` minibatches of ``BATCH``."""
    generator = torch.Generator().manual_seed(seed)
    feedback = [torch.randn(CLASSES, WIDTH, generator=generator) / CLASSES**0.5 for _ in range(DEPTH + 1)]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, task.x_train.shape[0], (BATCH,), generator=generator)
        x, y = task.x_train[rows], task.y_train[rows]
        optimizer.zero_grad()
        if rule == "bp":
            F.cross_entropy(model(x), y).backward()
        else:
            _dfa_backward(model, x, y, feedback)
        optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, task: Task) -> float:
    return float((model(task.x_eval).argmax(dim=-1) == task.y_eval).float().mean())
