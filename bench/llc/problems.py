"""The benchmark problems, built once and saved, so that every tool (each in its own venv) loads identical data and
an identical w*. Needs only torch and numpy.

n = 1024 rows, nβ = n/ln n = 147.7, minibatches of 256 in order (4 per epoch), MSE loss (mean over every element).

| name   | model                              | d    | w*                                             | λ (known)   |
|--------|------------------------------------|------|------------------------------------------------|-------------|
| linreg | Linear(9, 1) with bias             | 10   | exact least squares (float64, rounded)         | d/2 = 5     |
| dln    | 4-3-3-4 bias-free linear, r = 1    | 33   | zero-padded rank-1 factorisation, y = W x      | 5.5 (global)|
| mlp    | 8-32-1 ReLU MLP                    | 321  | Adam, 3000 full-batch steps, teacher + noise   | unknown     |
| mlp256 | 8-256-1 ReLU MLP                   | 2561 | same                                           | unknown     |

The DLN value is Aoyagi 2024's global RLCT (anchor note, section 2.4); the local λ at this w* may be larger.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

N = 1024
BATCH = 256
PROBLEMS = ("linreg", "dln", "mlp", "mlp256")
#: Per-problem SGLD step size and localization (identical for every tool).
SETTINGS: dict[str, dict[str, float]] = {
    "linreg": {"epsilon": 1e-4, "gamma": 1.0},
    "dln": {"epsilon": 3e-4, "gamma": 1.0},
    "mlp": {"epsilon": 1e-4, "gamma": 1.0},
    "mlp256": {"epsilon": 1e-4, "gamma": 1.0},
}
KNOWN_LAMBDA = {"linreg": 5.0, "dln": 5.5, "mlp": None, "mlp256": None}


def nbeta() -> float:
    """n/ln n for n = 1024."""
    return N / math.log(N)


def build_model(name: str) -> torch.nn.Module:
    """The architecture of problem ``name`` (parameters are overwritten by the saved w*)."""
    if name == "linreg":
        return torch.nn.Linear(9, 1)
    if name == "dln":
        return torch.nn.Sequential(
            torch.nn.Linear(4, 3, bias=False), torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 4, bias=False)
        )
    hidden = 32 if name == "mlp" else 256
    return torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


def _make(name: str) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(1234 + PROBLEMS.index(name))
    model = build_model(name)
    if name == "linreg":
        x = torch.randn(N, 9, generator=generator)
        beta = torch.randn(9, 1, generator=generator)
        y = x @ beta + 0.5 * torch.randn(N, 1, generator=generator)
        design = torch.cat([x, torch.ones(N, 1)], dim=1).double()
        solution = torch.linalg.lstsq(design, y.double()).solution
        with torch.no_grad():
            model.weight.copy_(solution[:9].T.float())
            model.bias.copy_(solution[9].float())
    elif name == "dln":
        x = torch.randn(N, 4, generator=generator)
        u, v = torch.randn(4, generator=generator), torch.randn(4, generator=generator)
        y = x @ torch.outer(u, v).T
        first, middle, last = model[0], model[1], model[2]
        with torch.no_grad():
            for layer in (first, middle, last):
                layer.weight.zero_()
            first.weight[0] = v
            middle.weight[0, 0] = 1.0
            last.weight[:, 0] = u
    else:
        x = torch.randn(N, 8, generator=generator)
        teacher = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        for p in teacher.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator))
        with torch.no_grad():
            y = teacher(x) + 0.1 * torch.randn(N, 1, generator=generator)
        torch.manual_seed(1234)
        model = build_model(name)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(3000):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    return {"name": name, "x": x, "y": y, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def problem_path(root: Path, name: str) -> Path:
    """Where problem ``name`` is saved under ``root``."""
    return root / "problems" / f"{name}.pt"


def ensure(root: Path, name: str) -> Path:
    """Build and save problem ``name`` unless it exists; return its path."""
    path = problem_path(root, name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_make(name), path)
    return path


def load(path: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """``(model at w*, x, y)`` from a saved problem."""
    saved = torch.load(path, weights_only=True)
    model = build_model(saved["name"])
    model.load_state_dict(saved["state"])
    return model, saved["x"], saved["y"]


def full_data_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean of the per-batch MSE over the 4 minibatches at w*: the common L0 of every tool here."""
    with torch.no_grad():
        losses = [
            torch.nn.functional.mse_loss(model(x[s : s + BATCH]), y[s : s + BATCH]).item() for s in range(0, N, BATCH)
        ]
    return sum(losses) / len(losses)
