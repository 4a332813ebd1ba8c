"""Problems with known answers for the LLC tests: linear regression at its least-squares fit, potentials ``K(w)``
written as a module whose output *is* the loss (used with ``loss=identity``), reduced-rank regression and a deep
linear network with their closed-form learning coefficients, and the exact finite-ε expectation for a quadratic
loss (anchor note shared/anchors/llc.md, sections 2 and 3)."""

from __future__ import annotations

import itertools
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


def rrr_lambda(m: int, h: int, n: int, r: int) -> float:
    """Aoyagi & Watanabe 2005: RLCT of y = B·A·x, input dim ``m``, hidden ``h``, output ``n``, true rank ``r``."""
    if n + r <= m + h and m + r <= n + h and h + r <= m + n:
        value = 2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2
        return (value + (1 if (m + h + n + r) % 2 else 0)) / 8
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2
    return m * n / 2


def dln_lambda(widths: list[int], r: int) -> tuple[float, int]:
    """Aoyagi 2024, Thm 1: RLCT and multiplicity of a deep linear network with layer widths ``widths`` (input
    first, output last) and true rank ``r``."""
    n_in, n_out = widths[0], widths[-1]
    reduced = [w - r for w in widths]
    layers = range(len(widths))
    for size in range(2, len(widths) + 1):
        for subset in itertools.combinations(layers, size):
            inside = [reduced[j] for j in subset]
            outside = [reduced[j] for j in layers if j not in subset]
            ell = size - 1
            total = sum(inside)
            low = min(outside) if outside else math.inf
            if max(inside) < low and total >= ell * max(inside) and total < ell * low:
                m_bar = -(-total // ell)
                a = total - (m_bar - 1) * ell
                pairs = sum(inside[i] * inside[j] for i in range(size) for j in range(i + 1, size))
                value = (
                    (-(r**2) + r * (n_in + n_out)) / 2
                    + a * (ell - a) / (4 * ell)
                    - ell * (ell - 1) / 4 * (total / ell) ** 2
                    + pairs / 2
                )
                return value, 1 if a == ell else 2
    raise AssertionError(f"no admissible subset for {widths}, r={r}")


def quadratic_expectation(hessian_eigs: np.ndarray, nbeta: float, gamma: float, eps: float, steps: np.ndarray) -> float:
    """Anchor section 3: exact E[λ̂] of full-batch SGLD from w* on ``L0 + ½ wᵀHw``, averaged over ``steps``."""
    total = 0.0
    for h in hessian_eigs:
        if h <= 0:
            continue
        a = nbeta * h + gamma
        rho = 1 - eps * a / 2
        assert eps * a < 4, "unstable"
        stationary = nbeta * h / (2 * a * (1 - eps * a / 4))
        total += stationary * float(np.mean(1 - rho ** (2 * steps.astype(np.float64))))
    return total


def linear_stack(widths: list[int]) -> torch.nn.Sequential:
    """Bias-free linear layers of the given widths (input first), every weight zero."""
    layers = [torch.nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
    return model


#: The deep linear network of the anchor's worked example: widths 4-3-3-4, true rank 1, λ = 5.5 (m = 2).
DLN_WIDTHS, DLN_RANK = [4, 3, 3, 4], 1


def dln_problem(n=256, seed=3):
    """(model, X, Y, nβ): the 4-3-3-4 network at the zero-padded rank-1 factorisation of a noise-free rank-1
    target ``Y = X (u vᵀ)ᵀ`` (every layer of rank 1), ``n`` rows, and the anchor's nβ = 1024/ln 1024."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    u, v = torch.randn(4, generator=generator), torch.randn(4, generator=generator)
    y = x @ torch.outer(u, v).T
    model = linear_stack(DLN_WIDTHS)
    with torch.no_grad():
        model[0].weight[0] = v
        model[1].weight[0, 0] = 1.0
        model[2].weight[:, 0] = u
    return model, x, y, 1024 / math.log(1024)
