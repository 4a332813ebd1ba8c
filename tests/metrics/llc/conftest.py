"""Problems with known answers for the LLC tests: linear regression at its least-squares fit, and potentials
``K(w)`` written as a module whose output *is* the loss (used with ``loss=identity``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


class Potential(torch.nn.Module):
    """``K(w) = Π_i w_i^{2k_i}`` (``kind="product"``) or ``Σ_i w_i^{2k_i}`` (``"sum"``), w* = 0.

    ``forward`` ignores its input and returns ``K(w)``; sample it with ``loss=potential_loss``.
    """

    def __init__(self, powers, kind="product", dtype=torch.float64):
        super().__init__()
        self.powers = tuple(powers)
        self.kind = kind
        self.w = torch.nn.Parameter(torch.zeros(len(self.powers), dtype=dtype))

    def forward(self, x):
        terms = [self.w[i] ** (2 * k) for i, k in enumerate(self.powers)]
        if self.kind == "product":
            return math.prod(terms[1:], start=terms[0])
        return sum(terms[1:], start=terms[0])


def potential_loss(outputs, targets):
    """The loss of a :class:`Potential` is its output."""
    return outputs


#: One dummy batch: the potentials ignore their input.
DUMMY_DATA = [(torch.zeros(1, 1), torch.zeros(1, 1))]


def monomial_expectation(nbeta, gamma, k, *, points=400_001, radius=None):
    """Exact ``E[nβ·w^{2k}]`` under ``p(w) ∝ exp(−nβ w^{2k} − γ w²/2)`` by quadrature on a fine grid."""
    radius = radius or min(8 / math.sqrt(gamma), 8.0)
    w = np.linspace(-radius, radius, points)
    k_of_w = w ** (2 * k)
    log_p = -nbeta * k_of_w - gamma * w**2 / 2
    p = np.exp(log_p - log_p.max())
    return float((nbeta * k_of_w * p).sum() / p.sum())


def product_expectation(nbeta, gamma, k1, k2, *, points=6001):
    """Exact ``E[nβ·w1^{2k1} w2^{2k2}]`` under ``exp(−nβ K − γ‖w‖²/2)`` by 2-D quadrature."""
    radius = 7 / math.sqrt(gamma)
    w = np.linspace(-radius, radius, points)
    w1, w2 = np.meshgrid(w, w, indexing="ij")
    k_of_w = w1 ** (2 * k1) * w2 ** (2 * k2)
    log_p = -nbeta * k_of_w - gamma * (w1**2 + w2**2) / 2
    p = np.exp(log_p - log_p.max())
    return float((nbeta * k_of_w * p).sum() / p.sum())


def mlp(dtype=torch.float64):
    """A seeded 3-5-2 tanh network (the sampler tests' small non-linear model)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(dtype)


def mlp_data(n=48, dtype=torch.float64):
    """Seeded inputs ``[n, 3]`` and targets ``[n, 2]`` for :func:`mlp`."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=generator, dtype=dtype), torch.randn(n, 2, generator=generator, dtype=dtype)


def linreg_problem(n=1024, inputs=9, seed=0, dtype=torch.float64):
    """``Linear(inputs, 1)`` at the exact least-squares fit of ``y = xβ + 0.5·noise``; returns (model, X, Y)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inputs, generator=generator, dtype=torch.float64)
    y = x @ torch.randn(inputs, 1, generator=generator, dtype=torch.float64)
    y = y + 0.5 * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    design = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution
    model = torch.nn.Linear(inputs, 1).to(dtype)
    with torch.no_grad():
        model.weight.copy_(solution[:inputs].T)
        model.bias.copy_(solution[inputs])
    return model, x.to(dtype), y.to(dtype)


@pytest.fixture
def linreg():
    """(model, X, Y) of :func:`linreg_problem` in float64."""
    return linreg_problem()
